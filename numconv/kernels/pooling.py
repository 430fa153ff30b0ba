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
do not depend on the thread count.  A NaN in a window is its maximum.
"""

import numpy as np
from numba import prange

from .jit import kernel


@kernel()
def _is_better(value, best):
    # NaN beats everything and, once found, stays: the max propagates NaN.
    return value > best or (value != value and best == best)


@kernel()
def max_pool2d_row(x, out, tile, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Max-pool output row ``tile`` (= image * out_height + oh) of ``x`` into ``out``."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    b = tile // out_h
    oh = tile % out_h
    top = oh * stride_h - pad_top
    h_lo, h_hi = max(top, 0), min(top + pool_h, height)
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
    for ow in range(out_w):
        left = ow * stride_w - pad_left
        w_lo, w_hi = max(left, 0), min(left + pool_w, width)
        count = (h_hi - h_lo) * (w_hi - w_lo)
        for c in range(channels):
            out[b, oh, ow, c] = 0
        for h in range(h_lo, h_hi):
            for w in range(w_lo, w_hi):
                for c in range(channels):
                    out[b, oh, ow, c] += x[b, h, w, c]
        for c in range(channels):
            out[b, oh, ow, c] /= count


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
def max_pool2d_grad_image(x, grad_out, grad_in, b, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Gradient of max pooling for image ``b``: each window's gradient goes to its first maximum."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    for h in range(height):
        for w in range(width):
            for c in range(channels):
                grad_in[b, h, w, c] = 0
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
def max_pool2d_grad_serial(x, grad_out, grad_in, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Gradient of max pooling w.r.t. ``x`` into ``grad_in`` (shaped like ``x``), one thread."""
    for b in range(x.shape[0]):
        max_pool2d_grad_image(x, grad_out, grad_in, b, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)


@kernel(parallel=True)
def max_pool2d_grad_parallel(x, grad_out, grad_in, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Gradient of max pooling w.r.t. ``x`` into ``grad_in``, images in parallel."""
    for b in prange(x.shape[0]):
        max_pool2d_grad_image(x, grad_out, grad_in, b, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)


@kernel()
def _covering_windows(position, pool, stride, pad_before, out_size):
    """First and one-past-last output index whose window covers input ``position``."""
    # Window o covers o * stride - pad_before ... o * stride - pad_before + pool - 1.
    first = -((pad_before + position - pool + 1) // -stride)  # ceiling division
    last = (position + pad_before) // stride
    return max(first, 0), min(last + 1, out_size)


@kernel()
def avg_pool2d_grad_row(grad_out, grad_in, tile, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Gradient of average pooling for input row ``tile`` (= image * height + h), by gathering."""
    height, width, channels = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    b = tile // height
    h = tile % height
    oh_lo, oh_hi = _covering_windows(h, pool_h, stride_h, pad_top, out_h)
    for w in range(width):
        ow_lo, ow_hi = _covering_windows(w, pool_w, stride_w, pad_left, out_w)
        for c in range(channels):
            grad_in[b, h, w, c] = 0
        for oh in range(oh_lo, oh_hi):
            top = oh * stride_h - pad_top
            rows = min(top + pool_h, height) - max(top, 0)
            for ow in range(ow_lo, ow_hi):
                left = ow * stride_w - pad_left
                count = rows * (min(left + pool_w, width) - max(left, 0))
                for c in range(channels):
                    grad_in[b, h, w, c] += grad_out[b, oh, ow, c] / count


@kernel(parallel=False)
def avg_pool2d_grad_serial(grad_out, grad_in, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Gradient of average pooling into ``grad_in`` (N, H, W, C), one thread."""
    for tile in range(grad_in.shape[0] * grad_in.shape[1]):
        avg_pool2d_grad_row(grad_out, grad_in, tile, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)


@kernel(parallel=True)
def avg_pool2d_grad_parallel(grad_out, grad_in, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Gradient of average pooling into ``grad_in`` (N, H, W, C), input rows in parallel."""
    for tile in prange(grad_in.shape[0] * grad_in.shape[1]):
        avg_pool2d_grad_row(grad_out, grad_in, tile, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
