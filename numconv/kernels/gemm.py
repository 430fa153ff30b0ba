"""Packing kernels of the GEMM convolution path: im2col and col2im over row chunks.

The dense fast path of :mod:`numconv.nn` turns a convolution into matrix
products that NumPy's BLAS computes.  These kernels only move data:

* ``im2col(x, cols, row0, row1, out_h, kernel_h, kernel_w, out_w, stride_h,
  stride_w, dilation_h, dilation_w, pad_top, pad_left)`` copies the receptive
  fields of the output rows ``row0 <= r < row1`` (flat row index
  ``r = n * out_h + oh``) into
  ``cols[(r - row0) * out_w + ow, (kh * kernel_w + kw) * C + c]``, writing 0
  where a tap falls in the padding.
* ``col2im_add(cols, grad_input, row0, row1, ...)`` is its adjoint: it adds
  ``cols`` of the same rows back into ``grad_input``.  Each parallel tile is
  one input row ``(n, ih)`` and gathers the taps that land on it, so every
  element has one writer; its terms are added in (kh, kw) order, and chunks
  are added one after the other, so sums never depend on the thread count.

Layouts are numconv's canonical ones (see :mod:`numconv.kernels.conv`):
``x`` and ``grad_input`` C-contiguous ``(N, H, W, C)``, ``cols`` a
C-contiguous 2-D buffer with at least ``(row1 - row0) * out_w`` rows and
exactly ``kernel_h * kernel_w * C`` columns.  Negative pads are allowed (they
shift the windows into the image), which the stride-1 input gradient uses.
Each kernel exists as a parallel build and a ``..._serial`` build of the same
per-row function.
"""

import numpy as np
from numba import prange

from . import jit


@jit.kernel()
def _im2col_row(x, cols, row, row0, out_h, kernel_h, kernel_w, out_w, stride_h, stride_w,
                dilation_h, dilation_w, pad_top, pad_left):
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    n = row // out_h
    oh = row % out_h
    columns = cols.shape[1]
    flat_x = x.reshape(x.size)
    flat_cols = cols.reshape(cols.size)
    tap_row = kernel_w * channels
    for ow in range(out_w):
        pixel = ((row - row0) * out_w + ow) * columns
        iw0 = ow * stride_w - pad_left
        # With no dilation and the window inside the image, the kernel_w taps of
        # one kernel row are kernel_w * channels contiguous input values.
        contiguous = dilation_w == 1 and iw0 >= 0 and iw0 + kernel_w <= width
        for kh in range(kernel_h):
            dst = pixel + kh * tap_row
            ih = oh * stride_h + kh * dilation_h - pad_top
            if ih < 0 or ih >= height:
                flat_cols[dst:dst + tap_row] = 0.0
                continue
            start = ((n * height + ih) * width + iw0) * channels
            if contiguous:
                flat_cols[dst:dst + tap_row] = flat_x[start:start + tap_row]
                continue
            for kw in range(kernel_w):
                iw = iw0 + kw * dilation_w
                if iw < 0 or iw >= width:
                    flat_cols[dst:dst + channels] = 0.0
                else:
                    src = start + kw * dilation_w * channels
                    flat_cols[dst:dst + channels] = flat_x[src:src + channels]
                dst += channels


@jit.kernel(parallel=True)
def im2col(x, cols, row0, row1, out_h, kernel_h, kernel_w, out_w, stride_h, stride_w,
           dilation_h, dilation_w, pad_top, pad_left):
    """Receptive fields of output rows ``[row0, row1)`` into ``cols`` (zeros in padding)."""
    for tile in prange(row1 - row0):
        _im2col_row(x, cols, row0 + np.int64(tile), row0, out_h, kernel_h, kernel_w, out_w,
                    stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left)


@jit.kernel()
def im2col_serial(x, cols, row0, row1, out_h, kernel_h, kernel_w, out_w, stride_h, stride_w,
                  dilation_h, dilation_w, pad_top, pad_left):
    """Serial build of :func:`im2col`."""
    for row in range(row0, row1):
        _im2col_row(x, cols, row, row0, out_h, kernel_h, kernel_w, out_w, stride_h, stride_w,
                    dilation_h, dilation_w, pad_top, pad_left)


@jit.kernel()
def _output_position(i, k, pad, stride, dilation, out_size):
    """Output index whose window puts tap ``k`` on input ``i``, or -1."""
    shifted = i + pad - k * dilation
    if shifted < 0 or shifted % stride != 0:
        return -1
    o = shifted // stride
    if o >= out_size:
        return -1
    return o


@jit.kernel()
def _col2im_row(cols, grad_input, in_row, row0, row1, out_h, kernel_h, kernel_w, out_w,
                stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left):
    height, width, channels = grad_input.shape[1], grad_input.shape[2], grad_input.shape[3]
    n = in_row // height
    ih = in_row % height
    grad_row = grad_input[n, ih].reshape(width * channels)
    # The tile owns input row (n, ih): it scatters within that row, taps in
    # (kh, kw) order, so every element receives its terms in that order.
    for kh in range(kernel_h):
        oh = _output_position(ih, kh, pad_top, stride_h, dilation_h, out_h)
        if oh < 0:
            continue
        row = n * out_h + oh
        if row < row0 or row >= row1:
            continue
        base = (row - row0) * out_w
        for kw in range(kernel_w):
            k = (kh * kernel_w + kw) * channels
            offset = kw * dilation_w - pad_left
            for ow in range(out_w):
                iw = ow * stride_w + offset
                if iw < 0 or iw >= width:
                    continue
                src = cols[base + ow]
                start = iw * channels
                for c in range(channels):
                    grad_row[start + c] += src[k + c]


@jit.kernel()
def _col2im_span(grad_input, row0, row1, out_h, kernel_h, stride_h, dilation_h, pad_top):
    """First and stop flat input rows ``n * H + ih`` that output rows [row0, row1) touch."""
    height = grad_input.shape[1]
    first_n, first_oh = row0 // out_h, row0 % out_h
    last_n, last_oh = (row1 - 1) // out_h, (row1 - 1) % out_h
    first_ih = min(max(first_oh * stride_h - pad_top, 0), height - 1)
    last_ih = min(max(last_oh * stride_h + (kernel_h - 1) * dilation_h - pad_top, 0), height - 1)
    return first_n * height + first_ih, last_n * height + last_ih + 1


@jit.kernel(parallel=True)
def col2im_add(cols, grad_input, row0, row1, out_h, kernel_h, kernel_w, out_w, stride_h,
               stride_w, dilation_h, dilation_w, pad_top, pad_left):
    """Add the columns of output rows ``[row0, row1)`` into ``grad_input`` (adjoint of im2col)."""
    start, stop = _col2im_span(grad_input, row0, row1, out_h, kernel_h, stride_h, dilation_h,
                               pad_top)
    for tile in prange(stop - start):
        _col2im_row(cols, grad_input, start + np.int64(tile), row0, row1, out_h, kernel_h,
                    kernel_w, out_w, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                    pad_left)


@jit.kernel()
def col2im_add_serial(cols, grad_input, row0, row1, out_h, kernel_h, kernel_w, out_w, stride_h,
                      stride_w, dilation_h, dilation_w, pad_top, pad_left):
    """Serial build of :func:`col2im_add`."""
    start, stop = _col2im_span(grad_input, row0, row1, out_h, kernel_h, stride_h, dilation_h,
                               pad_top)
    for in_row in range(start, stop):
        _col2im_row(cols, grad_input, in_row, row0, row1, out_h, kernel_h, kernel_w, out_w,
                    stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left)


# ---------------------------------------------------------------------------
# Layout change between channels_first and channels_last: dst[n] = src[n].T for
# 3-D src (N, A, B) and dst (N, B, A), by square blocks so that both the reads
# and the writes stay within a few cache lines.

TRANSPOSE_BLOCK = 32


@jit.kernel()
def _transpose_block(src, dst, tile, blocks_a, blocks_b):
    rows, cols = src.shape[1], src.shape[2]
    per_image = blocks_a * blocks_b
    n = tile // per_image
    a0 = (tile % per_image) // blocks_b * TRANSPOSE_BLOCK
    b0 = tile % blocks_b * TRANSPOSE_BLOCK
    a1 = min(a0 + TRANSPOSE_BLOCK, rows)
    b1 = min(b0 + TRANSPOSE_BLOCK, cols)
    source = src[n]
    target = dst[n]
    for b in range(b0, b1):
        for a in range(a0, a1):
            target[b, a] = source[a, b]


@jit.kernel(parallel=True)
def swap_last_axes(src, dst):
    """``dst[n] = src[n].T`` for ``src`` (N, A, B) and ``dst`` (N, B, A)."""
    blocks_a = -(-src.shape[1] // TRANSPOSE_BLOCK)
    blocks_b = -(-src.shape[2] // TRANSPOSE_BLOCK)
    for tile in prange(src.shape[0] * blocks_a * blocks_b):
        _transpose_block(src, dst, np.int64(tile), blocks_a, blocks_b)


@jit.kernel()
def swap_last_axes_serial(src, dst):
    """Serial build of :func:`swap_last_axes`."""
    blocks_a = -(-src.shape[1] // TRANSPOSE_BLOCK)
    blocks_b = -(-src.shape[2] // TRANSPOSE_BLOCK)
    for tile in range(src.shape[0] * blocks_a * blocks_b):
        _transpose_block(src, dst, tile, blocks_a, blocks_b)
