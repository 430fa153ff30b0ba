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


# Numba indexes with unsigned integers without its negative-index wraparound
# (a select per element that stops LLVM from vectorising a copy loop), so the
# copy helpers below count in uint64; these are their constant offsets.
_U1, _U2, _U3, _U4, _U5, _U6, _U7, _U8 = (np.uint64(k) for k in range(1, 9))


@jit.kernel()
def _copy_run(dst, dst_start, src, src_start, length):
    """``dst[dst_start:][:length] = src[src_start:][:length]``, exactly."""
    d = np.uint64(dst_start)
    s = np.uint64(src_start)
    for j in range(np.uint64(length)):
        dst[d + j] = src[s + j]


@jit.kernel()
def _copy_blocks(dst, dst_start, src, src_start, length):
    """Like ``_copy_run`` but copies ``length`` rounded up to a multiple of 8 values.

    Each block of 8 is loaded whole before it is stored, so it becomes one
    vector move even though LLVM cannot rule out that dst and src overlap.
    A short run (kernel_w * C = 21 for a 7x7 kernel on RGB) then costs three
    moves instead of a scalar tail; the caller makes sure the values written
    past ``length`` are overwritten later by the same thread.
    """
    d = np.uint64(dst_start)
    s = np.uint64(src_start)
    n = np.uint64(length)
    j = np.uint64(0)
    while j < n:
        a0 = src[s + j]
        a1 = src[s + j + _U1]
        a2 = src[s + j + _U2]
        a3 = src[s + j + _U3]
        a4 = src[s + j + _U4]
        a5 = src[s + j + _U5]
        a6 = src[s + j + _U6]
        a7 = src[s + j + _U7]
        dst[d + j] = a0
        dst[d + j + _U1] = a1
        dst[d + j + _U2] = a2
        dst[d + j + _U3] = a3
        dst[d + j + _U4] = a4
        dst[d + j + _U5] = a5
        dst[d + j + _U6] = a6
        dst[d + j + _U7] = a7
        j += _U8


@jit.kernel()
def _zero_run(dst, dst_start, length):
    d = np.uint64(dst_start)
    for j in range(np.uint64(length)):
        dst[d + j] = 0.0


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
    ih0 = oh * stride_h - pad_top
    # Kernel rows [kh_lo, kh_hi) fall inside the image; the others are zeros.
    kh_lo = 0
    while kh_lo < kernel_h and ih0 + kh_lo * dilation_h < 0:
        kh_lo += 1
    kh_hi = kernel_h
    while kh_hi > kh_lo and ih0 + (kh_hi - 1) * dilation_h >= height:
        kh_hi -= 1
    # Output columns [ow_lo, ow_hi) have every tap of their window inside the
    # image: no per-tap bounds checks there.
    ow_lo = 0
    while ow_lo < out_w and ow_lo * stride_w - pad_left < 0:
        ow_lo += 1
    ow_hi = out_w
    while ow_hi > ow_lo and (ow_hi - 1) * stride_w - pad_left + (kernel_w - 1) * dilation_w >= width:
        ow_hi -= 1
    first_pixel = (row - row0) * out_w * columns
    row_end = first_pixel + out_w * columns
    padded_tap_row = (tap_row + 7) // 8 * 8
    image_row0 = (n * height + ih0) * width
    # This row's part of cols is written in increasing address order, so a
    # rounded-up copy (_copy_blocks) that stays inside it spills only onto
    # values written after it.
    for ow in range(out_w):
        pixel = first_pixel + ow * columns
        _zero_run(flat_cols, pixel, kh_lo * tap_row)
        iw0 = ow * stride_w - pad_left
        inside = ow >= ow_lo and ow < ow_hi
        for kh in range(kh_lo, kh_hi):
            dst = pixel + kh * tap_row
            src = (image_row0 + kh * dilation_h * width + iw0) * channels
            if inside and dilation_w == 1:
                # The kernel_w taps of one kernel row are tap_row contiguous inputs.
                if dst + padded_tap_row <= row_end and src + padded_tap_row <= flat_x.size:
                    _copy_blocks(flat_cols, dst, flat_x, src, tap_row)
                else:
                    _copy_run(flat_cols, dst, flat_x, src, tap_row)
                continue
            for kw in range(kernel_w):
                iw = iw0 + kw * dilation_w
                if inside or (iw >= 0 and iw < width):
                    _copy_run(flat_cols, dst, flat_x, src + kw * dilation_w * channels, channels)
                else:
                    _zero_run(flat_cols, dst, channels)
                dst += channels
        _zero_run(flat_cols, pixel + kh_hi * tap_row, (kernel_h - kh_hi) * tap_row)


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
def _add_run(dst, d0, src, s0, count):
    """dst[d0 + i] += src[s0 + i] for i < count."""
    a, b = np.uint64(d0), np.uint64(s0)
    for i in range(np.uint64(count)):
        dst[a + i] = dst[a + i] + src[b + i]


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
    # The tile owns input row (n, ih): it scatters within that row, kernel rows in
    # order, so every element receives its terms in a fixed order.
    for kh in range(kernel_h):
        oh = _output_position(ih, kh, pad_top, stride_h, dilation_h, out_h)
        if oh < 0:
            continue
        row = n * out_h + oh
        if row < row0 or row >= row1:
            continue
        base = (row - row0) * out_w
        if dilation_w == 1:
            # One output pixel's taps of a kernel row land on kernel_w adjacent input
            # pixels: one run of kernel_w * channels values (stem7x7s2: 21 instead of
            # seven runs of three).  Terms by output pixel, then by tap.
            first_tap = kh * kernel_w * channels
            for ow in range(out_w):
                left = ow * stride_w - pad_left
                kw_lo, kw_hi = max(0, -left), min(kernel_w, width - left)
                if kw_lo >= kw_hi:
                    continue
                _add_run(grad_row, (left + kw_lo) * channels, cols[base + ow],
                         first_tap + kw_lo * channels, (kw_hi - kw_lo) * channels)
            continue
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
# channels_first data: the same two kernels on planes, transposed.  With x
# C-contiguous (N, C, H, W), the receptive fields of output rows [oh0, oh1) of
# image n go to ``cols_t[(kh * kernel_w + kw) * C + c, (oh - oh0) * out_w + ow]``:
# row k of cols_t is one input plane read at one tap, so the copies run along
# input rows and the products ``kernel^T @ cols_t`` (forward) and
# ``cols_t @ grad_output_plane^T`` (kernel gradient) read channels_first data
# without a transpose.  col2im_planes_add is the adjoint; its tile is one input
# row (c, ih) of image n, gathering its taps in (kh, kw) order.


@jit.kernel()
def _valid_outputs(offset, stride, size, out_size):
    """``[lo, hi)``: the outputs o with ``0 <= o * stride + offset < size``."""
    lo = 0 if offset >= 0 else (stride - 1 - offset) // stride
    hi = 0 if size - 1 - offset < 0 else (size - 1 - offset) // stride + 1
    lo = min(lo, out_size)
    return lo, max(lo, min(hi, out_size))


@jit.kernel()
def _im2col_plane_row(x, cols_t, k, n, oh0, oh1, kernel_w, out_w, stride_h, stride_w,
                      dilation_h, dilation_w, pad_top, pad_left):
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    c = k % channels
    kw = k // channels % kernel_w
    kh = k // (channels * kernel_w)
    offset = kw * dilation_w - pad_left
    ow_lo, ow_hi = _valid_outputs(offset, stride_w, width, out_w)
    plane = x[n, c].reshape(height * width)
    dst = cols_t[k]
    step = np.uint64(stride_w)
    for oh in range(oh0, oh1):
        base = (oh - oh0) * out_w
        ih = oh * stride_h + kh * dilation_h - pad_top
        if ih < 0 or ih >= height:
            _zero_run(dst, base, out_w)
            continue
        _zero_run(dst, base, ow_lo)
        _zero_run(dst, base + ow_hi, out_w - ow_hi)
        if stride_w == 1:
            _copy_run(dst, base + ow_lo, plane, ih * width + ow_lo + offset, ow_hi - ow_lo)
            continue
        d = np.uint64(base + ow_lo)
        src = np.uint64(ih * width + ow_lo * stride_w + offset)
        for j in range(np.uint64(ow_hi - ow_lo)):
            dst[d + j] = plane[src + j * step]


@jit.kernel()
def _im2col_plane_rows_stride2(x, cols_t, task, n, oh0, oh1, kernel_w, out_w, stride_h,
                               dilation_h, pad_top, pad_left, phases):
    """``_im2col_plane_row`` for all kw of (kh, c) = divmod(task, C), horizontal stride 2.

    A strided gather of each tap's row left LLVM a scalar loop, and the taps of a
    kernel row read the same input row.  So the input row is first split into its
    even and odd columns, in a loop reading both (an interleaved pair of loads that
    LLVM vectorises with shuffles), and each tap then copies a contiguous run of
    one phase.  ``phases``: scratch of at least 2 * ((width + 1) // 2).
    """
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    kh, c = task // channels, task % channels
    half = (width + 1) // 2
    plane = x[n, c].reshape(height * width)
    for oh in range(oh0, oh1):
        base = (oh - oh0) * out_w
        ih = oh * stride_h + kh * dilation_h - pad_top
        if ih < 0 or ih >= height:
            for kw in range(kernel_w):
                _zero_run(cols_t[(kh * kernel_w + kw) * channels + c], base, out_w)
            continue
        row = np.uint64(ih * width)
        for j in range(np.uint64(width // 2)):
            phases[j] = plane[row + np.uint64(2) * j]
            phases[np.uint64(half) + j] = plane[row + np.uint64(2) * j + _U1]
        if width % 2:
            phases[half - 1] = plane[ih * width + width - 1]
        for kw in range(kernel_w):
            dst = cols_t[(kh * kernel_w + kw) * channels + c]
            offset = kw - pad_left
            ow_lo, ow_hi = _valid_outputs(offset, 2, width, out_w)
            _zero_run(dst, base, ow_lo)
            _zero_run(dst, base + ow_hi, out_w - ow_hi)
            phase = offset % 2  # column 2 * ow + offset is phase[ow + (offset - phase) // 2]
            _copy_run(dst, base + ow_lo, phases, phase * half + ow_lo + (offset - phase) // 2,
                      ow_hi - ow_lo)


@jit.kernel()
def _stride2_rows(kernel_w, stride_w, dilation_w):
    """Whether im2col_planes splits input rows into column phases (shape-only).

    Only from four taps a row: with three (strided3x3) the split cost more than the
    gathers it saved (8 images, float32: 0.76 -> 0.90 ms), with seven (stem7x7s2) it
    saves a third (2.35 -> 1.65 ms; one thread 4.85 -> 2.76 ms).
    """
    return kernel_w >= 4 and stride_w == 2 and dilation_w == 1


@jit.kernel(parallel=True)
def im2col_planes(x, cols_t, n, oh0, oh1, kernel_h, kernel_w, out_w, stride_h, stride_w,
                  dilation_h, dilation_w, pad_top, pad_left):
    """Receptive fields of output rows ``[oh0, oh1)`` of image ``n`` into ``cols_t``."""
    if _stride2_rows(kernel_w, stride_w, dilation_w):
        for task in prange(kernel_h * x.shape[1]):
            phases = np.empty(2 * ((x.shape[3] + 1) // 2), dtype=x.dtype)
            _im2col_plane_rows_stride2(x, cols_t, np.int64(task), n, oh0, oh1, kernel_w, out_w,
                                       stride_h, dilation_h, pad_top, pad_left, phases)
        return
    for k in prange(kernel_h * kernel_w * x.shape[1]):
        _im2col_plane_row(x, cols_t, np.int64(k), n, oh0, oh1, kernel_w, out_w, stride_h,
                          stride_w, dilation_h, dilation_w, pad_top, pad_left)


@jit.kernel()
def im2col_planes_serial(x, cols_t, n, oh0, oh1, kernel_h, kernel_w, out_w, stride_h,
                         stride_w, dilation_h, dilation_w, pad_top, pad_left):
    """Serial build of :func:`im2col_planes`."""
    if _stride2_rows(kernel_w, stride_w, dilation_w):
        phases = np.empty(2 * ((x.shape[3] + 1) // 2), dtype=x.dtype)
        for task in range(kernel_h * x.shape[1]):
            _im2col_plane_rows_stride2(x, cols_t, task, n, oh0, oh1, kernel_w, out_w, stride_h,
                                       dilation_h, pad_top, pad_left, phases)
        return
    for k in range(kernel_h * kernel_w * x.shape[1]):
        _im2col_plane_row(x, cols_t, k, n, oh0, oh1, kernel_w, out_w, stride_h, stride_w,
                          dilation_h, dilation_w, pad_top, pad_left)


@jit.kernel()
def _col2im_plane_row(cols_t, grad_input, tile, first, rows, n, oh0, oh1, kernel_h, kernel_w,
                      out_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left):
    """Tile ``tile`` is input row ``first + tile % rows`` of plane ``tile // rows``."""
    channels, width = grad_input.shape[1], grad_input.shape[3]
    c = tile // rows
    ih = first + tile % rows
    grad_row = grad_input[n, c, ih]
    for kh in range(kernel_h):
        oh = _output_position(ih, kh, pad_top, stride_h, dilation_h, oh1)
        if oh < oh0:
            continue
        base = (oh - oh0) * out_w
        for kw in range(kernel_w):
            src = cols_t[(kh * kernel_w + kw) * channels + c]
            offset = kw * dilation_w - pad_left
            ow_lo, ow_hi = _valid_outputs(offset, stride_w, width, out_w)
            for ow in range(ow_lo, ow_hi):
                grad_row[ow * stride_w + offset] += src[base + ow]


@jit.kernel()
def _col2im_plane_rows(grad_input, oh0, oh1, kernel_h, stride_h, dilation_h, pad_top):
    """First and stop input rows that output rows [oh0, oh1) touch."""
    height = grad_input.shape[2]
    first = min(max(oh0 * stride_h - pad_top, 0), height)
    stop = min(max((oh1 - 1) * stride_h + (kernel_h - 1) * dilation_h - pad_top + 1, 0), height)
    return first, max(first, stop)


@jit.kernel(parallel=True)
def col2im_planes_add(cols_t, grad_input, n, oh0, oh1, kernel_h, kernel_w, out_w, stride_h,
                      stride_w, dilation_h, dilation_w, pad_top, pad_left):
    """Add the columns of output rows ``[oh0, oh1)`` of image ``n`` into ``grad_input``."""
    first, stop = _col2im_plane_rows(grad_input, oh0, oh1, kernel_h, stride_h, dilation_h,
                                     pad_top)
    for tile in prange(grad_input.shape[1] * (stop - first)):
        _col2im_plane_row(cols_t, grad_input, np.int64(tile), first, stop - first, n, oh0, oh1,
                          kernel_h, kernel_w, out_w, stride_h, stride_w, dilation_h, dilation_w,
                          pad_top, pad_left)


@jit.kernel()
def col2im_planes_add_serial(cols_t, grad_input, n, oh0, oh1, kernel_h, kernel_w, out_w,
                             stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left):
    """Serial build of :func:`col2im_planes_add`."""
    first, stop = _col2im_plane_rows(grad_input, oh0, oh1, kernel_h, stride_h, dilation_h,
                                     pad_top)
    for tile in range(grad_input.shape[1] * (stop - first)):
        _col2im_plane_row(cols_t, grad_input, tile, first, stop - first, n, oh0, oh1, kernel_h,
                          kernel_w, out_w, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                          pad_left)


# ---------------------------------------------------------------------------
# Layout change between channels_first and channels_last: dst[n] = src[n].T for
# 3-D src (N, A, B) and dst (N, B, A), by strips of source rows: for each
# column j of a strip, dst[n, j, a0:a1] = src[n, a0:a1, j] is one contiguous run
# of 32 values read down the strip (LLVM gathers them into vectors).  In cache,
# 1.3-2x faster than the 8 x 8 pieces this replaced (float32 64 x 3136: 0.086 ->
# 0.059 ms, 3136 x 64: 0.091 -> 0.059).  Source rows a multiple of 4 KiB apart
# (pix2pix's 64 x 16384 planes) fall into one L1 set, which holds 8 lines, so
# a strip of 32 such rows evicts its own lines at every column: their strips are
# cut to 8 rows (16 for rows 2 KiB apart; 64 x 16384: 1.79 ms in strips of 32,
# 0.35 in strips of 8).

STRIP_ROWS = 32
STRIP_COLUMNS = 256  # columns per parallel tile
L1_SETS = 64  # 4 KiB / 64-byte lines
L1_WAYS = 8
LINE_BYTES = 64


@jit.kernel()
def _strip_rows(src):
    """Source rows per strip of :func:`swap_last_axes`."""
    row_bytes = src.shape[2] * src.itemsize
    if row_bytes % LINE_BYTES:
        return STRIP_ROWS
    # Rows row_bytes apart step through the L1 sets by row_bytes / 64 lines, so
    # they visit L1_SETS / gcd(that, L1_SETS) sets before they come back.
    a, b = row_bytes // LINE_BYTES, L1_SETS
    while b:
        a, b = b, a % b
    return min(STRIP_ROWS, L1_WAYS * (L1_SETS // a))


@jit.kernel()
def _transpose_strip(src_flat, dst_flat, rows, cols, tile, strip_rows):
    """One tile: columns [b0, b1) of strip (n, a0) of src (N, rows, cols), flattened."""
    strips = -(-rows // strip_rows)
    blocks = -(-cols // STRIP_COLUMNS)
    n = tile // (strips * blocks)
    a0 = tile // blocks % strips * strip_rows
    b0 = tile % blocks * STRIP_COLUMNS
    b1 = min(b0 + STRIP_COLUMNS, cols)
    count = np.uint64(min(strip_rows, rows - a0))
    step = np.uint64(cols)
    base = n * rows * cols
    for j in range(b0, b1):
        d = np.uint64(base + j * rows + a0)
        s = np.uint64(base + a0 * cols + j)
        for k in range(count):
            dst_flat[d + k] = src_flat[s + k * step]


@jit.kernel()
def _strip_tiles(src, strip_rows):
    n, rows, cols = src.shape
    return n * -(-rows // strip_rows) * -(-cols // STRIP_COLUMNS)


@jit.kernel(parallel=True)
def swap_last_axes(src, dst):
    """``dst[n] = src[n].T`` for C-contiguous ``src`` (N, A, B) and ``dst`` (N, B, A)."""
    strip_rows = _strip_rows(src)
    src_flat, dst_flat = src.reshape(src.size), dst.reshape(dst.size)
    for tile in prange(_strip_tiles(src, strip_rows)):
        _transpose_strip(src_flat, dst_flat, src.shape[1], src.shape[2], np.int64(tile),
                         strip_rows)


@jit.kernel()
def swap_last_axes_serial(src, dst):
    """Serial build of :func:`swap_last_axes`."""
    strip_rows = _strip_rows(src)
    src_flat, dst_flat = src.reshape(src.size), dst.reshape(dst.size)
    for tile in range(_strip_tiles(src, strip_rows)):
        _transpose_strip(src_flat, dst_flat, src.shape[1], src.shape[2], tile, strip_rows)


# Rows per parallel tile of add_bias_rows: a few KiB of a 128-filter output.
BIAS_ROWS_PER_TILE = 64


@jit.kernel()
def _add_bias_tile(rows, bias, tile):
    for i in range(tile * BIAS_ROWS_PER_TILE, min(rows.shape[0], (tile + 1) * BIAS_ROWS_PER_TILE)):
        row = rows[i]
        for f in range(row.shape[0]):
            row[f] += bias[f]


@jit.kernel(parallel=True)
def add_bias_rows(rows, bias):
    """``rows[i] += bias`` for a C-contiguous (rows, F) product, both cores at once.

    NumPy's ``np.add`` runs on the calling thread alone: after the BLAS product of
    resnet1x1 (6272 x 128) it took 0.15 ms float32, this 0.03.
    """
    for tile in prange(-(-rows.shape[0] // BIAS_ROWS_PER_TILE)):
        _add_bias_tile(rows, bias, np.int64(tile))


@jit.kernel()
def add_bias_rows_serial(rows, bias):
    """Serial build of :func:`add_bias_rows`."""
    for tile in range(-(-rows.shape[0] // BIAS_ROWS_PER_TILE)):
        _add_bias_tile(rows, bias, tile)


@jit.kernel()
def _add_bias_plane_row(planes, bias, row, n0, p0, p1):
    filters = planes.shape[1]
    n, f = n0 + row // filters, row % filters
    plane, value = planes[n, f], bias[f]
    for p in range(p0, p1):
        plane[p] += value


@jit.kernel(parallel=True)
def add_bias_planes(planes, bias, n0, n1, p0, p1):
    """``planes[n, f, p0:p1] += bias[f]`` for ``n0 <= n < n1``, ``planes`` C-contiguous
    (N, F, P): the channels_first form of :func:`add_bias_rows`, both cores at once."""
    for row in prange((n1 - n0) * planes.shape[1]):
        _add_bias_plane_row(planes, bias, np.int64(row), n0, p0, p1)


@jit.kernel()
def add_bias_planes_serial(planes, bias, n0, n1, p0, p1):
    """Serial build of :func:`add_bias_planes`."""
    for row in range((n1 - n0) * planes.shape[1]):
        _add_bias_plane_row(planes, bias, row, n0, p0, p1)
