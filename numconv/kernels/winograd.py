"""Winograd F(2x2, 3x3) transforms for 3x3, stride-1, undilated convolutions
and their kernel gradients.

A 4x4 input tile ``d`` (rows ``2*th - pad_top ...``, columns ``2*tw - pad_left
...``) and a 3x3 kernel ``g`` give a 2x2 output tile
``A^T [(G g G^T) * (B^T d B)] A``: 16 multiplies per tile and channel pair
instead of 36.  The 16 elementwise products, summed over channels, are 16
matrix products that the caller hands to BLAS:
``products[e] = tiles[e] @ weights[e]`` with ``tiles[e]`` of shape
``(T, C)`` and ``weights[e]`` of shape ``(C, F)``.

* ``transform_kernel(kernel, weights)``: ``weights[e, c, f]`` = ``(G g G^T)``
  of ``kernel[:, :, c, f]`` (``e = 4 * i + j``).
* ``transform_input(x, tiles, finite, tile0, tile1, tiles_h, tiles_w,
  pad_top, pad_left, tile_size, stride_h, stride_w, dilation_h, dilation_w)``:
  ``tiles[e, t - tile0, :]`` = ``(B^T d B)`` of flat tile ``t = (n * tiles_h
  + th) * tiles_w + tw`` for ``tile0 <= t < tile1``; zero outside the image
  (padding by index bounds).  ``finite[t - tile0]`` is NaN when the input
  rows of the tile's row of tiles hold an Inf or NaN (then the tile is not
  transformed), 0 otherwise: the transforms would spread it to outputs whose
  windows do not contain it, so the caller then falls back to a path without
  transforms.  F(2x2, 3x3) with unit strides (``tile_size`` 2; the strides
  are 1).
* ``transform_input_phases(...)``, the same signature: any ``tile_size`` and
  strides, the window read through the stride phases (F(3x3, 2x2)), tile by
  tile, ``finite`` flagging each tile's own window.
* ``transform_output(products, bias, out, tile0, tile1, tiles_h, tiles_w,
  dilation_h, dilation_w)``: writes ``A^T m A + bias`` of those tiles into
  ``out`` (N, OH, OW, F), dropping the outputs past ``OH`` / ``OW``.
* ``transform_grad_output(grad_output, gtiles, finite, tile0, tile1,
  tiles_h, tiles_w, dilation_h, dilation_w)``: ``gtiles[e, t - tile0, :]`` =
  ``(A dY A^T)`` of the 2x2 ``grad_output`` tile ``t`` (zero past ``OH`` /
  ``OW``), with ``finite`` flags as ``transform_input``'s; for the kernel gradient
  ``weights_grad[e] = sum over tiles of tiles[e]^T @ gtiles[e]``.
* ``transform_weights_grad(weights_grad, grad_kernel)``: ``G^T m G`` of each
  ``weights_grad[:, c, f]``, the adjoint of ``transform_kernel``.

Dilated kernels need no copies: a tile's outputs and window elements are
``dilation`` apart (``tile_origin``), so each tile reads one polyphase
component of the input in place.  With unit dilation the tiles are the plain
ones.

The tile transforms are serial: ``numconv.nn`` runs them in lanes of tiles,
one Python thread per lane, next to the BLAS products of the same lane
(``numconv.runtime.run_lanes``); every element has one writer.  Layouts as
in :mod:`numconv.kernels.conv`; ``tiles`` and ``products`` are C-contiguous
3-D buffers.
"""

import numpy as np

from . import jit


@jit.kernel()
def transform_kernel(kernel, weights):
    """``weights`` (16, C, F) = G g G^T of each 3x3 ``kernel[:, :, c, f]``."""
    channels, filters = kernel.shape[2], kernel.shape[3]
    for c in range(channels):
        for f in range(filters):
            # rows: t = G g (4x3)
            t = np.empty((4, 3), dtype=weights.dtype)
            for j in range(3):
                g0, g1, g2 = kernel[0, j, c, f], kernel[1, j, c, f], kernel[2, j, c, f]
                t[0, j] = g0
                t[1, j] = 0.5 * (g0 + g1 + g2)
                t[2, j] = 0.5 * (g0 - g1 + g2)
                t[3, j] = g2
            for i in range(4):
                t0, t1, t2 = t[i, 0], t[i, 1], t[i, 2]
                weights[4 * i + 0, c, f] = t0
                weights[4 * i + 1, c, f] = 0.5 * (t0 + t1 + t2)
                weights[4 * i + 2, c, f] = 0.5 * (t0 - t1 + t2)
                weights[4 * i + 3, c, f] = t2


@jit.kernel()
def tile_position(t, tiles_h, tiles_w):
    """(image, tile row, tile column) of flat tile ``t = (n * tiles_h + th) * tiles_w + tw``."""
    return t // (tiles_h * tiles_w), (t // tiles_w) % tiles_h, t % tiles_w


@jit.kernel()
def tile_origin(t, tiles_h, tiles_w, tile_size, dilation_h, dilation_w):
    """(image, first output row, first output column) of flat tile ``t``, whose
    ``tile_size`` x ``tile_size`` outputs lie ``dilation`` rows and columns apart.

    Tile rows ``th`` take the output rows' phases in turn: tile row ``th``
    covers the rows ``a + dilation_h * (tile_size * (th // dilation_h) + i)``
    with ``a = th % dilation_h``: one polyphase component each, which a dilated
    3x3 kernel reads as an undilated one (see ``tile_grid`` in numconv.nn).
    """
    n, th, tw = tile_position(t, tiles_h, tiles_w)
    return n, _tile_start(th, tile_size, dilation_h), _tile_start(tw, tile_size, dilation_w)


@jit.kernel()
def _tile_start(index, tile_size, dilation):
    return index // dilation * tile_size * dilation + index % dilation


@jit.kernel()
def _load_window(array, patch, flags, n, top, left, size, stride_h, stride_w, dilation_h,
                 dilation_w):
    """Copy a ``size`` x ``size`` window of ``array[n]`` into ``patch`` rows
    ``0 .. size * size - 1`` (zeros outside the array).

    Window element ``(i, j)`` holds the ``stride_h * stride_w`` pixels
    ``(top + dilation_h * (stride_h * i + rh), left + dilation_w * (stride_w * j
    + rw))``, one after the other (``rh``, then ``rw``, then the channels): the
    window of the image's space-to-depth rearrangement, read in place.  With
    unit strides it is the window of ``dilation``-spaced pixels at ``(top, left)``.

    Returns 0 when the window's values are all finite, NaN otherwise: ``v - v``
    is 0 for a finite ``v`` and NaN for Inf or NaN, summed into ``flags`` per
    channel (a vector loop), then over the channels once.
    """
    height, width, depth = array.shape[1], array.shape[2], array.shape[3]
    flags[:] = 0.0
    if stride_h == 1 and stride_w == 1:  # the plain window, without the phase loops (10 % faster)
        for i in range(size):
            y = top + dilation_h * i
            for j in range(size):
                x = left + dilation_w * j
                row = patch[size * i + j]
                if y < 0 or y >= height or x < 0 or x >= width:
                    for d in range(depth):
                        row[d] = 0.0
                else:
                    src = array[n, y, x]
                    for d in range(depth):
                        row[d] = src[d]
                        flags[d] += src[d] - src[d]
        return _flags_sum(flags, depth)
    for i in range(size):
        for j in range(size):
            row = patch[size * i + j]
            for rh in range(stride_h):
                y = top + dilation_h * (stride_h * i + rh)
                for rw in range(stride_w):
                    x = left + dilation_w * (stride_w * j + rw)
                    base = (rh * stride_w + rw) * depth
                    if y < 0 or y >= height or x < 0 or x >= width:
                        for d in range(depth):
                            row[base + d] = 0.0
                    else:
                        src = array[n, y, x]
                        for d in range(depth):
                            row[base + d] = src[d]
                            flags[d] += src[d] - src[d]
    return _flags_sum(flags, depth)


@jit.kernel()
def _flags_sum(flags, depth):
    check = 0.0
    for d in range(depth):
        check += flags[d]
    return check


@jit.kernel()
def load_tile(x, patch, t, tiles_h, tiles_w, pad_top, pad_left, tile_size, size, stride_h,
              stride_w, dilation_h, dilation_w):
    """The ``size`` x ``size`` input window of flat tile ``t`` (``tile_size`` outputs per
    side, see ``tile_origin``) into ``patch`` rows ``0 .. size * size - 1``, with row
    ``size * size`` as the flags of ``_load_window``; returns its finiteness (0 or NaN)."""
    n, oh, ow = tile_origin(t, tiles_h, tiles_w, tile_size, dilation_h, dilation_w)
    return _load_window(x, patch, patch[size * size], n, stride_h * oh - pad_top,
                        stride_w * ow - pad_left, size, stride_h, stride_w, dilation_h,
                        dilation_w)


@jit.kernel()
def _input_tile(x, tiles, finite, t, tile0, tiles_h, tiles_w, pad_top, pad_left, patch,
                tile_size, stride_h, stride_w, dilation_h, dilation_w):
    channels = tiles.shape[2]
    # patch rows 0-15: the 4x4 input tile; row 16: finiteness flags.
    slot = t - tile0
    finite[slot] = load_tile(x, patch, t, tiles_h, tiles_w, pad_top, pad_left, tile_size, 4,
                             stride_h, stride_w, dilation_h, dilation_w)
    # B^T d B, B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]].
    for j in range(4):
        for c in range(channels):
            d0, d1 = patch[j, c], patch[4 + j, c]
            d2, d3 = patch[8 + j, c], patch[12 + j, c]
            patch[j, c] = d0 - d2
            patch[4 + j, c] = d1 + d2
            patch[8 + j, c] = d2 - d1
            patch[12 + j, c] = d1 - d3
    for i in range(4):
        for c in range(channels):
            r0, r1 = patch[4 * i, c], patch[4 * i + 1, c]
            r2, r3 = patch[4 * i + 2, c], patch[4 * i + 3, c]
            tiles[4 * i, slot, c] = r0 - r2
            tiles[4 * i + 1, slot, c] = r1 + r2
            tiles[4 * i + 2, slot, c] = r2 - r1
            tiles[4 * i + 3, slot, c] = r1 - r3


@jit.kernel()
def transform_input_phases(x, tiles, finite, tile0, tile1, tiles_h, tiles_w, pad_top, pad_left,
                           tile_size, stride_h, stride_w, dilation_h, dilation_w):
    """B^T d B of flat tiles ``[tile0, tile1)`` into ``tiles`` (16, T, C * stride_h * stride_w).

    A tile gives ``tile_size`` x ``tile_size`` outputs (2 for F(2x2, 3x3), 3 for
    F(3x3, 2x2)) starting at ``(oh, ow)`` (``tile_origin``); its 4x4 input window
    starts at row ``stride_h * oh - pad_top`` and reads ``x`` through its stride
    phases and dilation (``_load_window``).
    ``finite[t - tile0]`` is 0 when the tile's inputs are finite, NaN otherwise.
    """
    patch = np.empty((17, tiles.shape[2]), dtype=tiles.dtype)
    for t in range(tile0, tile1):
        _input_tile(x, tiles, finite, t, tile0, tiles_h, tiles_w, pad_top, pad_left, patch,
                    tile_size, stride_h, stride_w, dilation_h, dilation_w)


# F(2x2, 3x3) tiles one tile row at a time.  Per tile, _input_tile runs 16 loops over
# the channels plus the window copy: short loops, and with four rows stored per loop
# LLVM left them mostly scalar (lenet2: about 1000 cycles per tile of 32 channels).
# Here B^T is applied once down the whole band of four input rows a tile row reads,
# in long loops, then B along each tile's four columns of that band, one output row
# per loop, on flat arrays with unsigned offsets (no views, no negative-index
# wraparound).  The sums are _input_tile's, in the same order: bit-identical.
# All of lenet2's tiles in chunks of 256: float32 0.78 -> 0.33 ms, float64 1.43 ->
# 0.59 ms; resnet3x3: 3.63 -> 1.80 ms, 4.66 -> 2.66 ms.


@jit.kernel()
def _band_columns(tiles_w, pad_left, dilation_w, window):
    """(first column, columns) that the ``window``-wide windows of one tile row span."""
    last = 0
    for tw in range(tiles_w):
        last = max(last, _tile_start(tw, 2, dilation_w))
    return -pad_left, last + (window - 1) * dilation_w + 1


@jit.kernel()
def transform_input(x, tiles, finite, tile0, tile1, tiles_h, tiles_w, pad_top, pad_left,
                    tile_size, stride_h, stride_w, dilation_h, dilation_w):
    """B^T d B of the F(2x2, 3x3) tiles ``[tile0, tile1)`` (unit strides) into ``tiles``
    (16, T, C), a row of tiles at a time (see above); ``finite`` as in the module
    docstring."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    first_col, columns = _band_columns(tiles_w, pad_left, dilation_w, 4)
    # band: row k of B^T d over the band, flat (k, column, channel).
    size = columns * channels
    band = np.zeros(4 * size, dtype=tiles.dtype)
    flags = np.empty(channels, dtype=tiles.dtype)
    x_flat = x.reshape(x.size)
    tiles_flat = tiles.reshape(tiles.size)
    plane = tiles.shape[1] * channels  # elements of one tiles[e]
    col0, col1 = max(first_col, 0), min(first_col + columns, width)  # inside the image
    run = max(col1 - col0, 0) * channels
    skip = (col0 - first_col) * channels  # band elements before the image's first column
    t = tile0
    while t < tile1:
        n, th, tw = tile_position(t, tiles_h, tiles_w)
        stop = min(tile1, t + tiles_w - tw)  # the rest of this tile row in the chunk
        top = _tile_start(th, 2, dilation_h) - pad_top
        # Flat offsets of the band's four rows (from col0), -1 for a row of zeros.
        r0 = _row_offset(n, top, col0, height, width, channels)
        r1 = _row_offset(n, top + dilation_h, col0, height, width, channels)
        r2 = _row_offset(n, top + 2 * dilation_h, col0, height, width, channels)
        r3 = _row_offset(n, top + 3 * dilation_h, col0, height, width, channels)
        rows = (r0, r1, r2, r3)
        finite[t - tile0:stop - tile0] = _band_check(x_flat, rows, run, flags)
        if finite[t - tile0] != 0.0:  # an Inf or NaN: the caller falls back
            t = stop
            continue
        for k in range(4):
            a, b, sign = _B_TRANSPOSED_TERMS[k]
            _band_row(x_flat, rows[a], rows[b], sign, band, skip + k * size, run)
        for u in range(t, stop):
            slot = u - tile0
            c0 = _tile_start(u % tiles_w, 2, dilation_w) * channels  # the window's columns
            c1 = c0 + dilation_w * channels
            c2 = c1 + dilation_w * channels
            c3 = c2 + dilation_w * channels
            for k in range(4):  # four calls per row, inlined: a call per row cost 2x
                row = k * size
                out = (4 * k * tiles.shape[1] + slot) * channels
                _band_combination(band, row + c0, row + c2, -1.0, tiles_flat, out, channels)
                _band_combination(band, row + c1, row + c2, 1.0, tiles_flat, out + plane,
                                  channels)
                _band_combination(band, row + c2, row + c1, -1.0, tiles_flat, out + 2 * plane,
                                  channels)
                _band_combination(band, row + c1, row + c3, -1.0, tiles_flat, out + 3 * plane,
                                  channels)
        t = stop


# (a, b, sign): element k of B^T v is v[a] + sign * v[b] (sign +-1: exact), with
# B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]].
_B_TRANSPOSED_TERMS = ((0, 2, -1.0), (1, 2, 1.0), (2, 1, -1.0), (1, 3, -1.0))
# (a, b, sign): element k of A v is v[a] + sign * v[b] for a pair v, with
# A = [[1, 0], [1, 1], [1, -1], [0, -1]]; index 2 stands for a missing term (zero).
_A_TERMS = ((0, 2, 1.0), (0, 1, 1.0), (0, 1, -1.0), (2, 1, -1.0))


@jit.kernel()
def _band_check(flat, rows, count, flags):
    """0.0 when the runs flat[r:][:count] of the rows r >= 0 hold only finite values,
    NaN otherwise.

    v - v is 0 for a finite v and NaN otherwise, summed into ``flags`` (one slot
    per channel, a vector loop), then over the channels once.
    """
    channels = flags.shape[0]
    flags[:] = 0.0
    for r in rows:
        if r >= 0:
            for col in range(count // channels):
                for c in range(channels):
                    v = flat[np.uint64(r + col * channels + c)]
                    flags[c] += v - v
    check = 0.0
    for c in range(channels):
        check += flags[c]
    return check


@jit.kernel()
def _row_offset(n, y, col0, height, width, channels):
    """Flat offset of pixel (n, y, col0), or -1 when row y is outside the image."""
    if y < 0 or y >= height:
        return -1
    return ((n * height + y) * width + col0) * channels


@jit.kernel(inline=True)
def _band_row(x_flat, a, b, sign, band, target, count):
    """band[target:][:count] = row a + sign * row b (offsets into x_flat, -1: zeros).

    The band's columns outside the image stay zero (np.zeros)."""
    t = np.uint64(target)
    if a >= 0 and b >= 0:
        ua, ub = np.uint64(a), np.uint64(b)
        for i in range(np.uint64(count)):
            band[t + i] = x_flat[ua + i] + sign * x_flat[ub + i]
    elif a >= 0:
        ua = np.uint64(a)
        for i in range(np.uint64(count)):
            band[t + i] = x_flat[ua + i] + sign * 0.0
    elif b >= 0:
        ub = np.uint64(b)
        for i in range(np.uint64(count)):
            band[t + i] = 0.0 + sign * x_flat[ub + i]
    else:
        for i in range(np.uint64(count)):
            band[t + i] = 0.0


@jit.kernel(inline=True)
def _band_combination(band, a, b, sign, tiles_flat, target, count):
    """tiles_flat[target:][:count] = band[a:][:count] + sign * band[b:][:count] (sign +-1:
    exact, the same sum as a +- b).  Inlined: a call passing arrays costs more than
    this loop over a few dozen channels."""
    ua, ub, t = np.uint64(a), np.uint64(b), np.uint64(target)
    for c in range(np.uint64(count)):
        tiles_flat[t + c] = band[ua + c] + sign * band[ub + c]


@jit.kernel(inline=True)
def _band_scaled(band, a, sign, tiles_flat, target, count):
    """tiles_flat[target:][:count] = sign * band[a:][:count] (sign +-1: exact)."""
    ua, t = np.uint64(a), np.uint64(target)
    for c in range(np.uint64(count)):
        tiles_flat[t + c] = sign * band[ua + c]


@jit.kernel()
def _output_tile(products, bias, out, t, tile0, tiles_h, tiles_w, dilation_h, dilation_w):
    out_h, out_w = out.shape[1], out.shape[2]
    n, oh, ow = tile_origin(t, tiles_h, tiles_w, 2, dilation_h, dilation_w)
    if oh >= out_h or ow >= out_w:  # a phase with no outputs left in this tile
        return
    slot = t - tile0
    # A^T m A, A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]: first the rows, then the columns.
    # One loop per output pixel: with the four stores in one loop, LLVM could not
    # rule out their overlap and left it mostly scalar (lenet2's 2304 tiles in
    # chunks of 256: float32 0.57 -> 0.48 ms, float64 1.41 -> 0.73 ms).
    for pixel in range(4):  # (row, column) = divmod(pixel, 2) of the tile
        y = oh + pixel // 2 * dilation_h
        x = ow + pixel % 2 * dilation_w
        if y < out_h and x < out_w:
            _output_pixel(products, bias, out, n, y, x, slot, 4 * (pixel // 2),
                          1 - 2 * (pixel % 2))


@jit.kernel(inline=True)
def _output_pixel(products, bias, out, n, oh, ow, slot, row, column):
    """One output of a tile: row 0 (sums s0j = m0j + m4j + m8j) or 4 (s1j = m4j - m8j -
    m12j) of A^T m, then column 1 (s0 + s1 + s2) or -1 (s1 - s2 - s3) of (A^T m) A."""
    for f in range(out.shape[3]):
        if row == 0:
            s0 = products[0, slot, f] + products[4, slot, f] + products[8, slot, f]
            s1 = products[1, slot, f] + products[5, slot, f] + products[9, slot, f]
            s2 = products[2, slot, f] + products[6, slot, f] + products[10, slot, f]
            s3 = products[3, slot, f] + products[7, slot, f] + products[11, slot, f]
        else:
            s0 = products[4, slot, f] - products[8, slot, f] - products[12, slot, f]
            s1 = products[5, slot, f] - products[9, slot, f] - products[13, slot, f]
            s2 = products[6, slot, f] - products[10, slot, f] - products[14, slot, f]
            s3 = products[7, slot, f] - products[11, slot, f] - products[15, slot, f]
        if column == 1:
            out[n, oh, ow, f] = s0 + s1 + s2 + bias[f]
        else:
            out[n, oh, ow, f] = s1 - s2 - s3 + bias[f]


@jit.kernel()
def transform_output(products, bias, out, tile0, tile1, tiles_h, tiles_w, dilation_h,
                     dilation_w):
    """A^T m A + bias of flat tiles ``[tile0, tile1)`` into ``out`` (N, OH, OW, F)."""
    for t in range(tile0, tile1):
        _output_tile(products, bias, out, t, tile0, tiles_h, tiles_w, dilation_h, dilation_w)


# ---------------------------------------------------------------------------
# Kernel gradient.  The forward pass is linear in U = G g G^T: per tile,
# Y = A^T (U * V) A.  So dL/dU[e] sums V[e]^T @ (A dY A^T)[e] over the tiles
# (16 BLAS products again, summed over tiles instead of channels), and
# dL/dg = G^T (dL/dU) G.  Outputs past OH / OW, which the forward pass drops,
# enter as dY = 0.


@jit.kernel()
def transform_grad_output(grad_output, gtiles, finite, tile0, tile1, tiles_h, tiles_w,
                          dilation_h, dilation_w):
    """A dY A^T of the 2x2 ``grad_output`` tiles ``[tile0, tile1)`` into ``gtiles`` (16, T, F),
    a row of tiles at a time, as ``transform_input``: A down the band of the tile row's
    two grad_output rows in long loops, then A^T along each tile's two columns of the
    band.  ``finite`` as in the module docstring.

    A = [[1, 0], [1, 1], [1, -1], [0, -1]] spreads a pair (y0, y1) to (y0, y0 + y1,
    y0 - y1, -y1).  All tiles in chunks of 256, lenet2's grad_output: float32 0.74 ->
    0.53 ms, float64 0.83 -> 0.60 ms; resnet3x3's: 2.13 -> 1.46 ms, 3.30 -> 2.26 ms
    (against a loop per tile).
    """
    out_h, out_w, filters = grad_output.shape[1], grad_output.shape[2], grad_output.shape[3]
    _, columns = _band_columns(tiles_w, 0, dilation_w, 2)
    size = columns * filters
    band = np.zeros(4 * size, dtype=gtiles.dtype)  # rows y0, y0 + y1, y0 - y1, -y1
    flags = np.empty(filters, dtype=gtiles.dtype)
    g_flat = grad_output.reshape(grad_output.size)
    tiles_flat = gtiles.reshape(gtiles.size)
    plane = gtiles.shape[1] * filters
    run = min(columns, out_w) * filters  # the band's columns inside grad_output
    t = tile0
    while t < tile1:
        n, th, tw = tile_position(t, tiles_h, tiles_w)
        stop = min(tile1, t + tiles_w - tw)
        top = _tile_start(th, 2, dilation_h)
        rows = (_row_offset(n, top, 0, out_h, out_w, filters),
                _row_offset(n, top + dilation_h, 0, out_h, out_w, filters), -1)
        finite[t - tile0:stop - tile0] = _band_check(g_flat, rows, run, flags)
        if finite[t - tile0] != 0.0:  # an Inf or NaN: the caller falls back
            t = stop
            continue
        for k in range(4):
            a, b, sign = _A_TERMS[k]
            _band_row(g_flat, rows[a], rows[b], sign, band, k * size, run)
        for u in range(t, stop):
            slot = u - tile0
            c0 = _tile_start(u % tiles_w, 2, dilation_w) * filters  # the tile's columns
            c1 = c0 + dilation_w * filters
            for k in range(4):
                row = k * size
                out = (4 * k * gtiles.shape[1] + slot) * filters
                _band_scaled(band, row + c0, 1.0, tiles_flat, out, filters)
                _band_combination(band, row + c0, row + c1, 1.0, tiles_flat, out + plane,
                                  filters)
                _band_combination(band, row + c0, row + c1, -1.0, tiles_flat, out + 2 * plane,
                                  filters)
                _band_scaled(band, row + c1, -1.0, tiles_flat, out + 3 * plane, filters)
        t = stop


@jit.kernel()
def transform_weights_grad(weights_grad, grad_kernel):
    """``grad_kernel[:, :, c, f]`` (3x3) = G^T m G of each 4x4 ``weights_grad[:, c, f]``.

    G^T = [[1, 1/2, 1/2, 0], [0, 1/2, -1/2, 0], [0, 1/2, 1/2, 1]]: the adjoint of
    :func:`transform_kernel`.
    """
    channels, filters = grad_kernel.shape[2], grad_kernel.shape[3]
    for c in range(channels):
        for f in range(filters):
            # rows: r = G^T m (3x4)
            r = np.empty((3, 4), dtype=grad_kernel.dtype)
            for j in range(4):
                m0, m1 = weights_grad[j, c, f], weights_grad[4 + j, c, f]
                m2, m3 = weights_grad[8 + j, c, f], weights_grad[12 + j, c, f]
                r[0, j] = m0 + 0.5 * (m1 + m2)
                r[1, j] = 0.5 * (m1 - m2)
                r[2, j] = 0.5 * (m1 + m2) + m3
            for i in range(3):
                r0, r1, r2, r3 = r[i, 0], r[i, 1], r[i, 2], r[i, 3]
                grad_kernel[i, 0, c, f] = r0 + 0.5 * (r1 + r2)
                grad_kernel[i, 1, c, f] = 0.5 * (r1 - r2)
                grad_kernel[i, 2, c, f] = 0.5 * (r1 + r2) + r3
