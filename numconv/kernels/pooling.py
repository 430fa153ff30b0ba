"""Numba kernels of 2-D max and average pooling and their gradients.

Layout: images are ``(batch, height, width, channels)`` C-contiguous arrays
of one float dtype (float32 or float64); a channels_first input is passed as
``(batch * channels, height, width, 1)``.  Output pixel ``(oh, ow)`` pools
rows ``oh * stride_h - pad_top`` to ``... + pool_h - 1`` and the matching
columns, clipped to the image: padded positions never enter a maximum or a
mean, and a mean divides by the number of real pixels in the window.  Every
window must hold at least one real pixel, which "valid" and TensorFlow's
"same" padding guarantee.

Each operation has a serial and a parallel build sharing one tile function:

* forward: one tile is an output row ``(image, oh)``;
* max gradient: one tile is an image; the gradient of each window goes to its
  first maximum in row-major order (TensorFlow's choice), and only the tile
  of that image writes into it;
* average gradient: one tile is an input row ``(image, h)``, which gathers
  from the windows covering it.

Every output element has one writer and a fixed summation order, so results
do not depend on the thread count.  Averages are summed in float64.  A NaN
in a window is its maximum.  Single-channel images (channels_first planes)
take a path that keeps running values in registers, with the same results.
"""

import numpy as np
from numba import prange

from .jit import kernel


@kernel()
def _is_better(value, best):
    # value > best, except that NaN beats everything and, once found, stays:
    # the max propagates NaN.  This form ran several times faster than
    # ``value > best or (value != value and best == best)``.
    return not (value <= best) and best == best


@kernel()
def max_pool2d_row(x, out, tile, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Max-pool output row ``tile`` (= image * out_height + oh) of ``x`` into ``out``."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    b = tile // out_h
    oh = tile % out_h
    top = oh * stride_h - pad_top
    h_lo, h_hi = max(top, 0), min(top + pool_h, height)
    if channels == 1:  # channels_first planes: keep the running max in a register
        for ow in range(out_w):
            left = ow * stride_w - pad_left
            w_lo, w_hi = max(left, 0), min(left + pool_w, width)
            best = x[b, h_lo, w_lo, 0]
            for h in range(h_lo, h_hi):
                for w in range(w_lo, w_hi):
                    if _is_better(x[b, h, w, 0], best):
                        best = x[b, h, w, 0]
            out[b, oh, ow, 0] = best
        return
    for ow in range(out_w):
        left = ow * stride_w - pad_left
        w_lo, w_hi = max(left, 0), min(left + pool_w, width)
        for c in range(channels):
            out[b, oh, ow, c] = x[b, h_lo, w_lo, c]
        for h in range(h_lo, h_hi):
            for w in range(w_lo, w_hi):
                for c in range(channels):
                    value = x[b, h, w, c]
                    if _is_better(value, out[b, oh, ow, c]):
                        out[b, oh, ow, c] = value


@kernel(parallel=False)
def max_pool2d_serial(x, out, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Max pooling of ``x`` (N, H, W, C) into ``out`` (N, OH, OW, C) on one thread."""
    for tile in range(out.shape[0] * out.shape[1]):
        max_pool2d_row(x, out, tile, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)


@kernel(parallel=True)
def max_pool2d_parallel(x, out, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Max pooling of ``x`` (N, H, W, C) into ``out`` (N, OH, OW, C), rows in parallel."""
    for tile in prange(out.shape[0] * out.shape[1]):
        max_pool2d_row(x, out, tile, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)


@kernel()
def avg_pool2d_row(x, out, tile, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Average-pool output row ``tile`` (= image * out_height + oh) of ``x`` into ``out``."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    b = tile // out_h
    oh = tile % out_h
    top = oh * stride_h - pad_top
    h_lo, h_hi = max(top, 0), min(top + pool_h, height)
    if channels == 1:  # channels_first planes: keep the running sum in a register
        for ow in range(out_w):
            left = ow * stride_w - pad_left
            w_lo, w_hi = max(left, 0), min(left + pool_w, width)
            total = 0.0
            for h in range(h_lo, h_hi):
                for w in range(w_lo, w_hi):
                    total += x[b, h, w, 0]
            out[b, oh, ow, 0] = total / ((h_hi - h_lo) * (w_hi - w_lo))
        return
    # float64 sums in the same order as above, so both layouts give the same bits.
    totals = np.empty(channels, dtype=np.float64)
    for ow in range(out_w):
        left = ow * stride_w - pad_left
        w_lo, w_hi = max(left, 0), min(left + pool_w, width)
        totals[:] = 0.0
        for h in range(h_lo, h_hi):
            for w in range(w_lo, w_hi):
                for c in range(channels):
                    totals[c] += x[b, h, w, c]
        count = (h_hi - h_lo) * (w_hi - w_lo)
        for c in range(channels):
            out[b, oh, ow, c] = totals[c] / count


@kernel(parallel=False)
def avg_pool2d_serial(x, out, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Average pooling of ``x`` (N, H, W, C) into ``out`` (N, OH, OW, C) on one thread."""
    for tile in range(out.shape[0] * out.shape[1]):
        avg_pool2d_row(x, out, tile, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)


@kernel(parallel=True)
def avg_pool2d_parallel(x, out, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Average pooling of ``x`` (N, H, W, C) into ``out`` (N, OH, OW, C), rows in parallel."""
    for tile in prange(out.shape[0] * out.shape[1]):
        avg_pool2d_row(x, out, tile, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)


@kernel()
def max_pool2d_grad_image(
    x, grad_out, grad_in, b, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left
):
    """Gradient of max pooling for image ``b``: each window's gradient goes to its first maximum."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    for h in range(height):
        for w in range(width):
            for c in range(channels):
                grad_in[b, h, w, c] = 0
    if channels == 1:  # channels_first planes: the running argmax stays in registers
        for oh in range(out_h):
            top = oh * stride_h - pad_top
            h_lo, h_hi = max(top, 0), min(top + pool_h, height)
            for ow in range(out_w):
                left = ow * stride_w - pad_left
                w_lo, w_hi = max(left, 0), min(left + pool_w, width)
                best, arg_h, arg_w = x[b, h_lo, w_lo, 0], h_lo, w_lo
                for h in range(h_lo, h_hi):
                    for w in range(w_lo, w_hi):
                        if _is_better(x[b, h, w, 0], best):
                            best, arg_h, arg_w = x[b, h, w, 0], h, w
                grad_in[b, arg_h, arg_w, 0] += grad_out[b, oh, ow, 0]
        return
    best = np.empty(channels, dtype=x.dtype)
    best_h = np.empty(channels, dtype=np.int64)
    best_w = np.empty(channels, dtype=np.int64)
    for oh in range(out_h):
        top = oh * stride_h - pad_top
        h_lo, h_hi = max(top, 0), min(top + pool_h, height)
        for ow in range(out_w):
            left = ow * stride_w - pad_left
            w_lo, w_hi = max(left, 0), min(left + pool_w, width)
            for c in range(channels):
                best[c] = x[b, h_lo, w_lo, c]
                best_h[c] = h_lo
                best_w[c] = w_lo
            for h in range(h_lo, h_hi):
                for w in range(w_lo, w_hi):
                    for c in range(channels):
                        value = x[b, h, w, c]
                        if _is_better(value, best[c]):
                            best[c] = value
                            best_h[c] = h
                            best_w[c] = w
            for c in range(channels):
                grad_in[b, best_h[c], best_w[c], c] += grad_out[b, oh, ow, c]


@kernel(parallel=False)
def max_pool2d_grad_serial(
    x, grad_out, grad_in, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left
):
    """Gradient of max pooling w.r.t. ``x`` into ``grad_in`` (shaped like ``x``), one thread."""
    for b in range(x.shape[0]):
        max_pool2d_grad_image(
            x, grad_out, grad_in, b, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left
        )


@kernel(parallel=True)
def max_pool2d_grad_parallel(
    x, grad_out, grad_in, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left
):
    """Gradient of max pooling w.r.t. ``x`` into ``grad_in``, images in parallel."""
    for b in prange(x.shape[0]):
        max_pool2d_grad_image(
            x, grad_out, grad_in, b, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left
        )


@kernel()
def covering_windows(size, pool, stride, pad_before, out_size):
    """Along one axis: ``first[i], stop[i]``, the output windows covering input ``i``,
    and ``counts[o]``, the real (unpadded) pixels of window ``o``."""
    first = np.empty(size, dtype=np.int64)
    stop = np.empty(size, dtype=np.int64)
    for i in range(size):
        # Window o covers o * stride - pad_before ... o * stride - pad_before + pool - 1.
        first[i] = max(-((pad_before + i - pool + 1) // -stride), 0)  # ceiling division
        stop[i] = min((i + pad_before) // stride + 1, out_size)
    counts = np.empty(out_size, dtype=np.int64)
    for o in range(out_size):
        start = o * stride - pad_before
        counts[o] = min(start + pool, size) - max(start, 0)
    return first, stop, counts


@kernel()
def avg_pool2d_grad_row(grad_out, grad_in, tile, rows, cols):
    """Gradient of average pooling for input row ``tile`` (= image * height + h), by gathering.

    ``rows`` and ``cols`` are :func:`covering_windows` of the height and width axes.
    """
    height, width, channels = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    row_first, row_stop, row_counts = rows
    col_first, col_stop, col_counts = cols
    b = tile // height
    h = tile % height
    # float64 sums in a fixed order (the same for any channel count).
    if channels == 1:  # channels_first planes: keep the running sum in a register
        for w in range(width):
            total = 0.0
            for oh in range(row_first[h], row_stop[h]):
                for ow in range(col_first[w], col_stop[w]):
                    total += grad_out[b, oh, ow, 0] / (row_counts[oh] * col_counts[ow])
            grad_in[b, h, w, 0] = total
        return
    totals = np.empty(channels, dtype=np.float64)
    for w in range(width):
        totals[:] = 0.0
        for oh in range(row_first[h], row_stop[h]):
            for ow in range(col_first[w], col_stop[w]):
                count = row_counts[oh] * col_counts[ow]
                for c in range(channels):
                    totals[c] += grad_out[b, oh, ow, c] / count
        for c in range(channels):
            grad_in[b, h, w, c] = totals[c]


@kernel(parallel=False)
def avg_pool2d_grad_serial(
    grad_out, grad_in, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left
):
    """Gradient of average pooling into ``grad_in`` (N, H, W, C), one thread."""
    rows = covering_windows(grad_in.shape[1], pool_h, stride_h, pad_top, grad_out.shape[1])
    cols = covering_windows(grad_in.shape[2], pool_w, stride_w, pad_left, grad_out.shape[2])
    for tile in range(grad_in.shape[0] * grad_in.shape[1]):
        avg_pool2d_grad_row(grad_out, grad_in, tile, rows, cols)


@kernel(parallel=True)
def avg_pool2d_grad_parallel(
    grad_out, grad_in, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left
):
    """Gradient of average pooling into ``grad_in`` (N, H, W, C), input rows in parallel."""
    rows = covering_windows(grad_in.shape[1], pool_h, stride_h, pad_top, grad_out.shape[1])
    cols = covering_windows(grad_in.shape[2], pool_w, stride_w, pad_left, grad_out.shape[2])
    for tile in prange(grad_in.shape[0] * grad_in.shape[1]):
        avg_pool2d_grad_row(grad_out, grad_in, tile, rows, cols)
