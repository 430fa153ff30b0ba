"""Winograd F(3x3, 2x2) transforms, for strided convolutions whose kernel spans
two strides (pix2pix's 4x4 kernel at stride 2).

Such a convolution is a 2x2 stride-1 'valid' convolution of the input's
space-to-depth rearrangement ``Z[j, i, (rh, rw, c)] = x[s_h * j - pad_top +
rh, s_w * i - pad_left + rw, c]`` with the kernel ``K'[q, p, (rh, rw, c)] =
kernel[s_h * q + rh, s_w * p + rw, c]`` (zero past the kernel's edge).  ``Z``
is never built: the input transform of :mod:`numconv.kernels.winograd` reads
its 4x4 windows from ``x`` through the stride phases.

F(3x3, 2x2) is the transpose of F(2x2, 3x3): the same input transform
``B^T d B``, the kernel transform ``U = A_k g A_k^T`` and the output
transform ``A_3^T m A_3`` with

    A_k = [[1, 0], [1/2, 1/2], [1/2, -1/2], [0, -1]]
    A_3^T = [[1, 1, 1, 0], [0, 1, -1, 0], [0, 1, 1, 1]]

(constants 1 and 1/2, exact in binary): 16 multiplies per 3x3 output tile and
channel pair instead of 36.

* ``transform_kernel(kernel, weights)``: ``weights[e, c, f]`` = ``U`` of the
  2x2 ``kernel[:, :, c, f]``.
* ``transform_output(products, bias, out, tile0, tile1, tiles_h, tiles_w,
  dilation_h, dilation_w)``: ``A_3^T m A_3 + bias`` of flat tiles ``[tile0,
  tile1)`` into ``out``, dropping the outputs past its edge.
* ``transform_grad_output(grad_output, gtiles, finite, ...)``: ``A_3 dY
  A_3^T`` of the 3x3 ``grad_output`` tiles, for the kernel gradient
  ``sum over tiles of tiles[e]^T @ gtiles[e]``.
* ``transform_weights_grad(weights_grad, grad_kernel)``: ``A_k^T m A_k``, the
  adjoint of ``transform_kernel``.
* ``transform_output_scatter(products, grad_input, ...)``: for the input
  gradient, ``A_3^T m A_3`` of tiles of the gradient of ``Z``, each entry written
  to the input pixel it was read from (depth-to-space).

Serial tile transforms as in :mod:`numconv.kernels.winograd`, run in lanes by
``numconv.nn``.  They take the dilation of the tiles (``tile_origin``) for
the shared interface; Keras refuses strides > 1 with dilation > 1, so numconv
passes 1.
"""

import numpy as np

from . import jit
from .winograd import _load_window, tile_origin, tile_position


@jit.kernel()
def transform_kernel(kernel, weights):
    """``weights`` (16, C, F) = A_k g A_k^T of each 2x2 ``kernel[:, :, c, f]``."""
    channels, filters = kernel.shape[2], kernel.shape[3]
    for c in range(channels):
        for f in range(filters):
            # rows: t = A_k g (4x2)
            t = np.empty((4, 2), dtype=weights.dtype)
            for j in range(2):
                g0, g1 = kernel[0, j, c, f], kernel[1, j, c, f]
                t[0, j] = g0
                t[1, j] = 0.5 * (g0 + g1)
                t[2, j] = 0.5 * (g0 - g1)
                t[3, j] = -g1
            for i in range(4):
                t0, t1 = t[i, 0], t[i, 1]
                weights[4 * i + 0, c, f] = t0
                weights[4 * i + 1, c, f] = 0.5 * (t0 + t1)
                weights[4 * i + 2, c, f] = 0.5 * (t0 - t1)
                weights[4 * i + 3, c, f] = -t1


@jit.kernel()
def _tile_values(products, slot, values):
    """values[3 * r + c] = output (r, c) of ``A_3^T m A_3`` for a tile's products
    ``products[:, slot]``: first down the columns (``s_rj``, 3x4), then along the rows.

    One loop per output: with the nine stores in one loop LLVM could not rule out
    their overlap and left it scalar (pix2pix4x4's whole output in chunks of 128
    tiles, one thread: float32 4.50 -> 1.26 ms, float64 3.86 -> 2.77 ms; its input
    gradient's scatter 3.51 -> 1.30 ms, 4.32 -> 2.90 ms).
    """
    for r in range(3):
        for c in range(3):
            _tile_value(products, slot, r, c, values)


@jit.kernel(inline=True)
def _tile_value(products, slot, r, c, values):
    row = values[3 * r + c]
    for f in range(row.shape[0]):
        s1 = _column_sum(products, slot, f, r, 1)
        s2 = _column_sum(products, slot, f, r, 2)
        if c == 0:
            row[f] = _column_sum(products, slot, f, r, 0) + s1 + s2
        elif c == 1:
            row[f] = s1 - s2
        else:
            row[f] = s1 + s2 + _column_sum(products, slot, f, r, 3)


@jit.kernel(inline=True)
def _column_sum(products, slot, f, r, j):
    """s_rj: row r of A_3^T = [[1, 1, 1, 0], [0, 1, -1, 0], [0, 1, 1, 1]] down column j."""
    if r == 0:
        return products[j, slot, f] + products[4 + j, slot, f] + products[8 + j, slot, f]
    if r == 1:
        return products[4 + j, slot, f] - products[8 + j, slot, f]
    return products[4 + j, slot, f] + products[8 + j, slot, f] + products[12 + j, slot, f]


@jit.kernel()
def _output_tile(products, bias, out, t, tile0, tiles_h, tiles_w, dilation_h, dilation_w,
                 values):
    out_h, out_w, filters = out.shape[1], out.shape[2], out.shape[3]
    n, oh, ow = tile_origin(t, tiles_h, tiles_w, 3, dilation_h, dilation_w)
    rows = min(3, -(-(out_h - oh) // dilation_h))
    cols = min(3, -(-(out_w - ow) // dilation_w))
    if rows <= 0 or cols <= 0:
        return
    _tile_values(products, t - tile0, values)
    for r in range(rows):
        for c in range(cols):
            row = values[3 * r + c]
            for f in range(filters):
                out[n, oh + r * dilation_h, ow + c * dilation_w, f] = row[f] + bias[f]


@jit.kernel()
def transform_output(products, bias, out, tile0, tile1, tiles_h, tiles_w, dilation_h,
                     dilation_w):
    """A_3^T m A_3 + bias of flat tiles ``[tile0, tile1)`` into ``out`` (N, OH, OW, F)."""
    values = np.empty((9, products.shape[2]), dtype=products.dtype)
    for t in range(tile0, tile1):
        _output_tile(products, bias, out, t, tile0, tiles_h, tiles_w, dilation_h, dilation_w,
                     values)


# ---------------------------------------------------------------------------
# Kernel gradient: per tile Y = A_3^T (U * V) A_3, so dL/dU[e] sums
# V[e]^T @ (A_3 dY A_3^T)[e] over the tiles and dL/dg = A_k^T (dL/dU) A_k.


@jit.kernel()
def _grad_output_tile(grad_output, gtiles, finite, t, tile0, tiles_h, tiles_w, dilation_h,
                      dilation_w, patch):
    filters = grad_output.shape[3]
    n, oh, ow = tile_origin(t, tiles_h, tiles_w, 3, dilation_h, dilation_w)
    # patch rows 0-8: the 3x3 tile dY (zero past the edge); row 9: finiteness flags;
    # rows 10-21: the 4x3 intermediate A_3 dY.
    slot = t - tile0
    finite[slot] = _load_window(grad_output, patch, patch[9], n, oh, ow, 3, 1, 1, dilation_h,
                                dilation_w)
    # A_3 = [[1, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 1]]: (y0, y1, y2) spreads to
    # (y0, y0 + y1 + y2, y0 - y1 + y2, y2), down the columns, then along the rows.
    for j in range(3):
        y0, y1, y2 = patch[j], patch[3 + j], patch[6 + j]
        for f in range(filters):
            patch[10 + j, f] = y0[f]
            patch[13 + j, f] = y0[f] + y1[f] + y2[f]
            patch[16 + j, f] = y0[f] - y1[f] + y2[f]
            patch[19 + j, f] = y2[f]
    for i in range(4):
        u0, u1, u2 = patch[10 + 3 * i], patch[11 + 3 * i], patch[12 + 3 * i]
        for f in range(filters):
            gtiles[4 * i, slot, f] = u0[f]
            gtiles[4 * i + 1, slot, f] = u0[f] + u1[f] + u2[f]
            gtiles[4 * i + 2, slot, f] = u0[f] - u1[f] + u2[f]
            gtiles[4 * i + 3, slot, f] = u2[f]


@jit.kernel()
def transform_grad_output(grad_output, gtiles, finite, tile0, tile1, tiles_h, tiles_w,
                          dilation_h, dilation_w):
    """A_3 dY A_3^T of the 3x3 ``grad_output`` tiles ``[tile0, tile1)`` into ``gtiles``
    (16, T, F); ``finite[t - tile0]`` is 0 when the tile's values are finite, NaN otherwise.
    """
    patch = np.empty((22, grad_output.shape[3]), dtype=gtiles.dtype)
    for t in range(tile0, tile1):
        _grad_output_tile(grad_output, gtiles, finite, t, tile0, tiles_h, tiles_w, dilation_h,
                          dilation_w, patch)


@jit.kernel()
def transform_weights_grad(weights_grad, grad_kernel):
    """``grad_kernel[:, :, c, f]`` (2x2) = A_k^T m A_k of each 4x4 ``weights_grad[:, c, f]``.

    A_k^T = [[1, 1/2, 1/2, 0], [0, 1/2, -1/2, -1]]: the adjoint of :func:`transform_kernel`.
    """
    channels, filters = grad_kernel.shape[2], grad_kernel.shape[3]
    for c in range(channels):
        for f in range(filters):
            r = np.empty((2, 4), dtype=grad_kernel.dtype)
            for j in range(4):
                m0, m1 = weights_grad[j, c, f], weights_grad[4 + j, c, f]
                m2, m3 = weights_grad[8 + j, c, f], weights_grad[12 + j, c, f]
                r[0, j] = m0 + 0.5 * (m1 + m2)
                r[1, j] = 0.5 * (m1 - m2) - m3
            for i in range(2):
                r0, r1, r2, r3 = r[i, 0], r[i, 1], r[i, 2], r[i, 3]
                grad_kernel[i, 0, c, f] = r0 + 0.5 * (r1 + r2)
                grad_kernel[i, 1, c, f] = 0.5 * (r1 - r2) - r3


# ---------------------------------------------------------------------------
# Input gradient: the gradient of Z is a forward pass of grad_output; each of its
# tiles goes straight back to the pixels Z's entries were read from.


@jit.kernel()
def _scatter_tile(products, grad_input, t, tile0, tiles_h, tiles_w, z_h, z_w, stride_h,
                  stride_w, pad_top, pad_left, values):
    height, width, channels = grad_input.shape[1], grad_input.shape[2], grad_input.shape[3]
    n, th, tw = tile_position(t, tiles_h, tiles_w)
    _tile_values(products, t - tile0, values)
    for a in range(min(3, z_h - 3 * th)):
        for b in range(min(3, z_w - 3 * tw)):
            source = values[3 * a + b]
            for rh in range(stride_h):
                row = stride_h * (3 * th + a) - pad_top + rh
                if row < 0 or row >= height:
                    continue
                for rw in range(stride_w):
                    col = stride_w * (3 * tw + b) - pad_left + rw
                    if col < 0 or col >= width:
                        continue
                    base = (rh * stride_w + rw) * channels
                    target = grad_input[n, row, col]
                    for c in range(channels):
                        target[c] = source[base + c]


@jit.kernel()
def transform_output_scatter(products, grad_input, tile0, tile1, tiles_h, tiles_w, z_h, z_w,
                             stride_h, stride_w, pad_top, pad_left):
    """The gradient of ``Z`` from flat tiles ``[tile0, tile1)``, ``A_3^T m A_3`` of their
    products (16, T, C'), written to the pixels of ``grad_input`` (N, H, W, C) it
    belongs to: ``Z[j, i, (rh, rw, c)]`` is pixel ``(s_h j - pad_top + rh, s_w i -
    pad_left + rw)``, channel ``c``.  ``Z`` has ``z_h`` x ``z_w`` pixels; those of
    ``grad_input`` past its last row or column are not written."""
    values = np.empty((9, products.shape[2]), dtype=products.dtype)
    for t in range(tile0, tile1):
        _scatter_tile(products, grad_input, t, tile0, tiles_h, tiles_w, z_h, z_w, stride_h,
                      stride_w, pad_top, pad_left, values)
