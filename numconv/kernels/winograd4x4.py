"""Winograd F(4x4, 3x3) transforms for 3x3 stride-1 convolutions and their kernel
gradients: the larger tiling of :mod:`numconv.kernels.winograd`.

A 6x6 input tile ``d`` and a 3x3 kernel ``g`` give a 4x4 output tile
``A^T [(G g G^T) * (B^T d B)] A``: 36 multiplies per tile and channel pair for
16 outputs, 2.25 per output instead of F(2x2, 3x3)'s 4 (and 9 directly).  The
matrices (interpolation points 0, 1, -1, 2, -2 and infinity) are

    B^T = [[4,  0, -5,  0, 1, 0],      G = [[ 1/4,     0,    0],
           [0, -4, -4,  1, 1, 0],           [-1/6,  -1/6, -1/6],
           [0,  4, -4, -1, 1, 0],           [-1/6,   1/6, -1/6],
           [0, -2, -1,  2, 1, 0],           [1/24,  1/12,  1/6],
           [0,  2, -1, -2, 1, 0],           [1/24, -1/12,  1/6],
           [0,  4,  0, -5, 0, 1]]           [   0,     0,    1]]

    A^T = [[1, 1,  1, 1,  1, 0],
           [0, 1, -1, 2, -2, 0],
           [0, 1,  1, 4,  4, 0],
           [0, 1, -1, 8, -8, 1]]

B and A hold small integers (exact); G's fractions are applied to the kernel
once, in float64.  The functions and their arguments are those of
:mod:`numconv.kernels.winograd` with 36 transformed elements (``e = 6 * i + j``)
instead of 16: ``tiles`` (36, T, C), ``products`` (36, T, F), ``weights``
(36, C, F); flat tile ``t = (n * tiles_h + th) * tiles_w + tw`` covers the 4x4
outputs at ``tile_origin`` (``4 * th``, ``4 * tw`` without dilation).
"""

import numpy as np

from . import jit
from .winograd import _load_window, load_tile, tile_origin


@jit.kernel()
def _constants(like):
    """2, 4, 5 and 8 in the dtype of the array ``like``: a float32 value times the
    float64 literal 4.0 would be computed in float64, twice the vector width."""
    values = np.empty(4, dtype=like.dtype)
    values[0], values[1], values[2], values[3] = 2.0, 4.0, 5.0, 8.0
    return values[0], values[1], values[2], values[3]


@jit.kernel()
def _kernel_column(g0, g1, g2):
    """G (g0, g1, g2), in float64."""
    a, b, c = np.float64(g0), np.float64(g1), np.float64(g2)
    outer, middle = a / 24.0 + c / 6.0, b / 12.0
    return (a / 4.0, -(a + b + c) / 6.0, -(a - b + c) / 6.0, outer + middle, outer - middle, c)


@jit.kernel()
def transform_kernel(kernel, weights):
    """``weights`` (36, C, F) = G g G^T of each 3x3 ``kernel[:, :, c, f]``."""
    channels, filters = kernel.shape[2], kernel.shape[3]
    t = np.empty((6, 3))
    for c in range(channels):
        for f in range(filters):
            for j in range(3):
                column = _kernel_column(kernel[0, j, c, f], kernel[1, j, c, f], kernel[2, j, c, f])
                for i in range(6):
                    t[i, j] = column[i]
            for i in range(6):
                row = _kernel_column(t[i, 0], t[i, 1], t[i, 2])
                for j in range(6):
                    weights[6 * i + j, c, f] = row[j]


@jit.kernel()
def _input_tile(x, tiles, finite, t, tile0, tiles_h, tiles_w, pad_top, pad_left, patch,
                stride_h, stride_w, dilation_h, dilation_w, constants):
    channels = tiles.shape[2]
    # patch rows 0-35: the 6x6 input tile; row 36: finiteness flags.
    slot = t - tile0
    finite[slot] = load_tile(x, patch, t, tiles_h, tiles_w, pad_top, pad_left, 4, 6,
                             stride_h, stride_w, dilation_h, dilation_w)
    two, four, five, _ = constants
    # B^T d B: first down the columns, in place, then along the rows into ``tiles``.
    for j in range(6):
        for c in range(channels):
            d0, d1, d2 = patch[j, c], patch[6 + j, c], patch[12 + j, c]
            d3, d4, d5 = patch[18 + j, c], patch[24 + j, c], patch[30 + j, c]
            a, b = d4 - four * d2, d3 - four * d1
            p, q = d4 - d2, two * (d3 - d1)
            patch[j, c] = four * d0 - five * d2 + d4
            patch[6 + j, c] = a + b
            patch[12 + j, c] = a - b
            patch[18 + j, c] = p + q
            patch[24 + j, c] = p - q
            patch[30 + j, c] = four * d1 - five * d3 + d5
    for i in range(6):
        for c in range(channels):
            d0, d1, d2 = patch[6 * i, c], patch[6 * i + 1, c], patch[6 * i + 2, c]
            d3, d4, d5 = patch[6 * i + 3, c], patch[6 * i + 4, c], patch[6 * i + 5, c]
            a, b = d4 - four * d2, d3 - four * d1
            p, q = d4 - d2, two * (d3 - d1)
            tiles[6 * i, slot, c] = four * d0 - five * d2 + d4
            tiles[6 * i + 1, slot, c] = a + b
            tiles[6 * i + 2, slot, c] = a - b
            tiles[6 * i + 3, slot, c] = p + q
            tiles[6 * i + 4, slot, c] = p - q
            tiles[6 * i + 5, slot, c] = four * d1 - five * d3 + d5


@jit.kernel()
def transform_input(x, tiles, finite, tile0, tile1, tiles_h, tiles_w, pad_top, pad_left,
                    tile_size, stride_h, stride_w, dilation_h, dilation_w):
    """B^T d B of flat tiles ``[tile0, tile1)`` into ``tiles`` (36, T, C).

    The signature of :func:`numconv.kernels.winograd.transform_input`; ``tile_size``
    is 4 here.  ``finite[t - tile0]`` is 0 when the tile's inputs are finite, NaN
    otherwise.
    """
    patch = np.empty((37, tiles.shape[2]), dtype=tiles.dtype)
    constants = _constants(tiles)
    for t in range(tile0, tile1):
        _input_tile(x, tiles, finite, t, tile0, tiles_h, tiles_w, pad_top, pad_left, patch,
                    stride_h, stride_w, dilation_h, dilation_w, constants)


@jit.kernel()
def _output_rows(products, slot, patch, constants):
    """patch rows ``6 * r + j`` (r < 4) = A^T m down each column ``j`` of a tile's products."""
    two, four, _, eight = constants
    for j in range(6):
        m0, m1, m2 = products[j, slot], products[6 + j, slot], products[12 + j, slot]
        m3, m4, m5 = products[18 + j, slot], products[24 + j, slot], products[30 + j, slot]
        s0, s1, s2, s3 = patch[j], patch[6 + j], patch[12 + j], patch[18 + j]
        for f in range(patch.shape[1]):
            plus, minus = m1[f] + m2[f], m1[f] - m2[f]
            plus2, minus2 = m3[f] + m4[f], m3[f] - m4[f]
            s0[f] = m0[f] + plus + plus2
            s1[f] = minus + two * minus2
            s2[f] = plus + four * plus2
            s3[f] = minus + eight * minus2 + m5[f]


@jit.kernel()
def _output_tile(products, bias, out, t, tile0, tiles_h, tiles_w, dilation_h, dilation_w,
                 patch, constants):
    out_h, out_w = out.shape[1], out.shape[2]
    n, oh, ow = tile_origin(t, tiles_h, tiles_w, 4, dilation_h, dilation_w)
    # The tile's outputs inside the image: rows oh + dilation_h * r, r < rows.
    rows = min(4, -(-(out_h - oh) // dilation_h))
    cols = min(4, -(-(out_w - ow) // dilation_w))
    if rows <= 0 or cols <= 0:  # a phase with no outputs left in this tile
        return
    _output_rows(products, t - tile0, patch, constants)
    for r in range(rows):
        for c in range(cols):
            _output_pixel(patch, 6 * r, c, bias, out, n, oh + dilation_h * r,
                          ow + dilation_w * c, constants)


@jit.kernel(inline=True)
def _output_pixel(patch, row, column, bias, out, n, oh, ow, constants):
    """Output ``column`` of (A^T m) A from patch rows ``row .. row + 5``, plus bias.

    One loop per output pixel: with a row's four stores in one loop LLVM could not
    rule out their overlap and left it mostly scalar (float64 resnet3x3's output
    transform, chunks of 256 tiles: 3.22 -> 2.21 ms).
    """
    two, four, _, eight = constants
    for f in range(patch.shape[1]):
        plus, minus = patch[row + 1, f] + patch[row + 2, f], patch[row + 1, f] - patch[row + 2, f]
        plus2, minus2 = patch[row + 3, f] + patch[row + 4, f], patch[row + 3, f] - patch[row + 4, f]
        if column == 0:
            out[n, oh, ow, f] = patch[row, f] + plus + plus2 + bias[f]
        elif column == 1:
            out[n, oh, ow, f] = minus + two * minus2 + bias[f]
        elif column == 2:
            out[n, oh, ow, f] = plus + four * plus2 + bias[f]
        else:
            out[n, oh, ow, f] = minus + eight * minus2 + patch[row + 5, f] + bias[f]


@jit.kernel()
def transform_output(products, bias, out, tile0, tile1, tiles_h, tiles_w, dilation_h,
                     dilation_w):
    """A^T m A + bias of flat tiles ``[tile0, tile1)`` into ``out`` (N, OH, OW, F),
    dropping the outputs past ``OH`` / ``OW``."""
    patch = np.empty((24, products.shape[2]), dtype=products.dtype)
    constants = _constants(products)
    for t in range(tile0, tile1):
        _output_tile(products, bias, out, t, tile0, tiles_h, tiles_w, dilation_h, dilation_w,
                     patch, constants)


# ---------------------------------------------------------------------------
# Kernel gradient, as in numconv.kernels.winograd: dL/dU[e] sums
# V[e]^T @ (A dY A^T)[e] over the tiles and dL/dg = G^T (dL/dU) G.


@jit.kernel()
def _grad_output_tile(grad_output, gtiles, finite, t, tile0, tiles_h, tiles_w, dilation_h,
                      dilation_w, patch, constants):
    filters = grad_output.shape[3]
    n, oh, ow = tile_origin(t, tiles_h, tiles_w, 4, dilation_h, dilation_w)
    # patch rows 0-15: the 4x4 tile dY (zero past the edge); row 16: finiteness flags;
    # rows 17-40: the 6x4 intermediate A dY.
    slot = t - tile0
    finite[slot] = _load_window(grad_output, patch, patch[16], n, oh, ow, 4, 1, 1, dilation_h,
                                dilation_w)
    two, four, _, eight = constants
    # A = (A^T)^T spreads (y0, y1, y2, y3) to (y0, y0 + y1 + y2 + y3, y0 - y1 + y2 - y3,
    # y0 + 2 y1 + 4 y2 + 8 y3, y0 - 2 y1 + 4 y2 - 8 y3, y3): down the columns, then
    # along the rows.
    for j in range(4):
        y0, y1, y2, y3 = patch[j], patch[4 + j], patch[8 + j], patch[12 + j]
        for f in range(filters):
            even, odd = y0[f] + y2[f], y1[f] + y3[f]
            even4, odd2 = y0[f] + four * y2[f], two * y1[f] + eight * y3[f]
            patch[17 + j, f] = y0[f]
            patch[21 + j, f] = even + odd
            patch[25 + j, f] = even - odd
            patch[29 + j, f] = even4 + odd2
            patch[33 + j, f] = even4 - odd2
            patch[37 + j, f] = y3[f]
    for i in range(6):
        u0, u1, u2, u3 = patch[17 + 4 * i], patch[18 + 4 * i], patch[19 + 4 * i], patch[20 + 4 * i]
        for f in range(filters):
            even, odd = u0[f] + u2[f], u1[f] + u3[f]
            even4, odd2 = u0[f] + four * u2[f], two * u1[f] + eight * u3[f]
            gtiles[6 * i, slot, f] = u0[f]
            gtiles[6 * i + 1, slot, f] = even + odd
            gtiles[6 * i + 2, slot, f] = even - odd
            gtiles[6 * i + 3, slot, f] = even4 + odd2
            gtiles[6 * i + 4, slot, f] = even4 - odd2
            gtiles[6 * i + 5, slot, f] = u3[f]


@jit.kernel()
def transform_grad_output(grad_output, gtiles, finite, tile0, tile1, tiles_h, tiles_w,
                          dilation_h, dilation_w):
    """A dY A^T of the 4x4 ``grad_output`` tiles ``[tile0, tile1)`` into ``gtiles`` (36, T, F).

    ``finite[t - tile0]`` is 0 when the tile's values are finite, NaN otherwise.
    """
    patch = np.empty((41, grad_output.shape[3]), dtype=gtiles.dtype)
    constants = _constants(gtiles)
    for t in range(tile0, tile1):
        _grad_output_tile(grad_output, gtiles, finite, t, tile0, tiles_h, tiles_w, dilation_h,
                          dilation_w, patch, constants)


@jit.kernel()
def _kernel_column_adjoint(m0, m1, m2, m3, m4, m5):
    """G^T (m0, ..., m5), in float64: the adjoint of :func:`_kernel_column`."""
    m0, m1, m2 = np.float64(m0), np.float64(m1), np.float64(m2)
    m3, m4, m5 = np.float64(m3), np.float64(m4), np.float64(m5)
    plus, minus = m1 + m2, m1 - m2
    plus2, minus2 = m3 + m4, m3 - m4
    return (m0 / 4.0 - plus / 6.0 + plus2 / 24.0,
            -minus / 6.0 + minus2 / 12.0,
            (plus2 - plus) / 6.0 + m5)


@jit.kernel()
def transform_weights_grad(weights_grad, grad_kernel):
    """``grad_kernel[:, :, c, f]`` (3x3) = G^T m G of each 6x6 ``weights_grad[:, c, f]``."""
    channels, filters = grad_kernel.shape[2], grad_kernel.shape[3]
    r = np.empty((3, 6))
    for c in range(channels):
        for f in range(filters):
            for j in range(6):
                column = _kernel_column_adjoint(
                    weights_grad[j, c, f], weights_grad[6 + j, c, f],
                    weights_grad[12 + j, c, f], weights_grad[18 + j, c, f],
                    weights_grad[24 + j, c, f], weights_grad[30 + j, c, f],
                )
                for i in range(3):
                    r[i, j] = column[i]
            for i in range(3):
                row = _kernel_column_adjoint(r[i, 0], r[i, 1], r[i, 2], r[i, 3], r[i, 4], r[i, 5])
                for j in range(3):
                    grad_kernel[i, j, c, f] = row[j]
