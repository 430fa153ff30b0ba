"""Depthwise convolution kernels for channels_first arrays, one image plane at a time.

In channels_first layout a depthwise convolution is a set of independent
single-channel 2-D correlations: output plane ``(n, f)`` reads input plane
``(n, f // M)`` only (``M = F // C``, the depth multiplier).

Arrays (C-contiguous, all float32 or all float64 in one call):

* ``x``, ``grad_input``: ``(N, C, H, W)``;
* ``out``, ``grad_output``: ``(N, F, OH, OW)``;
* ``kernel``, ``grad_kernel``: ``(KH, KW, 1, F)`` (Keras layout, cross-correlation);
* ``bias``: ``(F,)``;
* ``stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left``: ints.  The
  bottom and right padding follow from the output size.  Taps landing in the
  padding are skipped, never multiplied by zero.

Signatures::

    depthwise_planes_forward(x, kernel, bias, out, stride_h, stride_w,
                             dilation_h, dilation_w, pad_top, pad_left)
    depthwise_planes_grad_input(grad_output, kernel, grad_input, ...same scalars...)
    depthwise_planes_grad_kernel(x, grad_output, grad_kernel, ...same scalars...)

Each writes every element of its last array argument.  Each has a
``parallel=True`` build (the names above) and a ``..._serial`` build of the
same tiles; both give bit-identical results whatever the thread count.  The
kernels trust their arguments (checked by :mod:`numconv.nn`).  From a user's
``@njit(cache=True)`` function, call the ``..._serial`` builds (numba/numba#8578).

Three ways through a plane, chosen by shape (and, for the input gradient, by
the weights):

* flat: unit strides, output no wider than input (the 'same' and 'valid'
  cases).  Output rows (in ``out`` itself, or in a scratch block of
  input-width rows for a narrower output) share the input's row pitch, so a
  tap is a constant offset between flat indices and a group of three taps one
  long loop over a block of rows.  The few edge columns, where those loops read
  across a row end, are then recomputed column by column.  The kernel gradient
  keeps its products in input-width rows the same way and leaves the edge
  columns out of its sums.  The input gradient runs flat when grad_output and
  grad_input have the same width.
* padded (input gradient, unit strides, other widths, finite weights): the
  grad_output rows a tile needs are copied into a zero-padded buffer whose
  pitch is the input width plus the kernel's reach, computed flat in that
  pitch and copied out.  The padding zeros enter as 0 * weight, exact only for
  finite weights, so a filter with an inf or nan takes the row way.
* rows: anything else; one short loop per (row, tap), taps in the padding
  skipped by index bounds.
"""

import numpy as np
from numba import prange

from . import jit

# Output elements per tile of the forward pass and of the input gradient (at
# least one row): whole planes on typical shapes, blocks of rows on large ones,
# so that a few planes still feed every thread.
TILE_ELEMENTS = 4096
# Fewer filters than this: the kernel gradient runs one tile per (filter, kernel
# row) instead of per filter.  Each (kh, kw) sum sees the same terms in the same
# order either way, so the choice never changes a result.
FILTER_TILES_MIN = 16
# Kernel gradient: products are accumulated elementwise into per-tap buffers
# of about this many elements (whole output rows), ...
PRODUCT_BLOCK_ELEMENTS = 384
# ... each element over at most this many blocks (rows on the row path) before
# the buffers are added, in a fixed order, into float64 totals.  A float32
# partial sum thus never has more than this many terms.
MAX_PARTIAL_TERMS = 256


# ---------------------------------------------------------------------------
# Loops over flat (1-D) views of the arrays, made once per call: a view made
# per row costs two atomic reference-count updates, more than the arithmetic
# of a short row.  Positions are int64 >= 0; they become uint64 before
# indexing, which spares Numba's negative-index wraparound and lets LLVM
# vectorise.


@jit.kernel()
def _fill(dst, start, count, value):
    a = np.uint64(start)
    for i in range(np.uint64(max(count, 0))):
        dst[a + i] = value


@jit.kernel()
def _copy(dst, a0, src, b0, count):
    a, b = np.uint64(a0), np.uint64(b0)
    for i in range(np.uint64(max(count, 0))):
        dst[a + i] = src[b + i]


@jit.kernel()
def _add_tap(dst, d0, src, s0, w0, stride, count):
    """dst[d0 + i] += w0 * src[s0 + i * stride] for i < count."""
    if stride == 1:
        _add_tap_unit(dst, d0, src, s0, w0, count)
    else:
        _add_tap_strided(dst, d0, src, s0, w0, stride, count)


@jit.kernel()
def _add_tap_unit(dst, d0, src, s0, w0, count):
    """dst[d0 + i] += w0 * src[s0 + i] for i < count."""
    a, b = np.uint64(d0), np.uint64(s0)
    for i in range(np.uint64(max(count, 0))):
        dst[a + i] = dst[a + i] + w0 * src[b + i]


@jit.kernel()
def _add_tap_strided(dst, d0, src, s0, w0, stride, count):
    """dst[d0 + i] += w0 * src[s0 + i * stride] for i < count."""
    a, b, step = np.uint64(d0), np.uint64(s0), np.uint64(stride)
    for i in range(np.uint64(max(count, 0))):
        dst[a + i] = dst[a + i] + w0 * src[b + i * step]


@jit.kernel()
def _add_taps3(dst, d0, src, s0, s1, s2, w0, w1, w2, count):
    """Three taps in one pass: dst + w0 * src0 + w1 * src1 + w2 * src2, in that order."""
    a, b0, b1, b2 = np.uint64(d0), np.uint64(s0), np.uint64(s1), np.uint64(s2)
    for i in range(np.uint64(count)):
        dst[a + i] = dst[a + i] + w0 * src[b0 + i] + w1 * src[b1 + i] + w2 * src[b2 + i]


@jit.kernel()
def _add_tap_column(dst, d0, src, s0, w0, pitch, count):
    """dst[d0 + i * pitch] += w0 * src[s0 + i * pitch] for i < count (one column)."""
    a, b, step = np.uint64(d0), np.uint64(s0), np.uint64(pitch)
    for i in range(np.uint64(max(count, 0))):
        dst[a + i * step] = dst[a + i * step] + w0 * src[b + i * step]


@jit.kernel()
def _add_row(acc, a0, b0, count):
    """acc[a0 + i] += acc[b0 + i] for i < count (disjoint ranges)."""
    a, b = np.uint64(a0), np.uint64(b0)
    for i in range(np.uint64(max(count, 0))):
        acc[a + i] = acc[a + i] + acc[b + i]


@jit.kernel()
def _add_products(acc, a0, src, s0, grad, g0, count):
    """acc[a0 + i] += src[s0 + i] * grad[g0 + i] for i < count."""
    a, b, g = np.uint64(a0), np.uint64(s0), np.uint64(g0)
    for i in range(np.uint64(max(count, 0))):
        acc[a + i] = acc[a + i] + src[b + i] * grad[g + i]


@jit.kernel()
def _add_products_strided(acc, a0, src, s0, stride, grad, g0, count):
    """acc[a0 + i] += src[s0 + i * stride] * grad[g0 + i] for i < count."""
    a, b, g, step = np.uint64(a0), np.uint64(s0), np.uint64(g0), np.uint64(stride)
    for i in range(np.uint64(max(count, 0))):
        acc[a + i] = acc[a + i] + src[b + i * step] * grad[g + i]


# ---------------------------------------------------------------------------
# Index bounds.


@jit.kernel()
def _tap_columns(stride, offset, src_size, dst_size):
    """[lo, hi) of the o in [0, dst_size) with 0 <= o * stride + offset < src_size."""
    last = src_size - 1 - offset
    if stride == 1:  # no integer division on the common path
        lo = min(max(-offset, 0), dst_size)
        hi = 0 if last < 0 else min(last + 1, dst_size)
        return lo, max(hi, lo)
    lo = 0 if offset >= 0 else (-offset + stride - 1) // stride
    hi = 0 if last < 0 else min(last // stride + 1, dst_size)
    lo = min(lo, dst_size)
    return lo, max(hi, lo)


@jit.kernel()
def _tap_rows(first, stop, shift, src_h):
    """[lo, hi) of the rows o in [first, stop) with 0 <= o + shift < src_h."""
    lo = max(first, -shift)
    hi = min(stop, src_h - shift)
    return lo, max(hi, lo)


@jit.kernel()
def _column_plan(count, stride, step, shift, src_size, dst_size):
    """Columns of each tap t (reading src[o * stride + t * step + shift]), shape-only.

    Row t: [first, stop) of its valid output columns o, then, on the first tap of
    each group of three, [lo, hi) where the whole group is valid (lo >= hi: none).
    """
    plan = np.zeros((count, 4), dtype=np.int64)
    for t in range(count):
        plan[t, 0], plan[t, 1] = _tap_columns(stride, t * step + shift, src_size, dst_size)
    for t0 in range(0, count, 3):
        lo, hi = 0, dst_size
        for t in range(t0, min(t0 + 3, count)):
            lo, hi = max(lo, plan[t, 0]), min(hi, plan[t, 1])
        plan[t0, 2], plan[t0, 3] = lo, hi
    return plan


@jit.kernel()
def _rows_per_tile(rows, cols):
    return max(1, min(rows, TILE_ELEMENTS // max(cols, 1)))


@jit.kernel()
def _taps_by_filter(kernel, rotate):
    """(F, KH, KW) copy of kernel[:, :, 0, :], turned by 180 degrees when ``rotate``."""
    kernel_h, kernel_w, filters = kernel.shape[0], kernel.shape[1], kernel.shape[3]
    taps = np.empty((filters, kernel_h, kernel_w), dtype=kernel.dtype)
    for kh in range(kernel_h):
        for kw in range(kernel_w):
            for f in range(filters):
                if rotate:
                    taps[f, kernel_h - 1 - kh, kernel_w - 1 - kw] = kernel[kh, kw, 0, f]
                else:
                    taps[f, kh, kw] = kernel[kh, kw, 0, f]
    return taps


@jit.kernel()
def _finite_filters(taps):
    """Whether every tap of filter f is finite, per f."""
    finite = np.ones(taps.shape[0], dtype=np.bool_)
    for f in range(taps.shape[0]):
        for kh in range(taps.shape[1]):
            for kw in range(taps.shape[2]):
                if not np.isfinite(taps[f, kh, kw]):
                    finite[f] = False
    return finite


# ---------------------------------------------------------------------------
# Unit strides: a correlation of a source plane with one filter's taps,
#   dst[o, p] += sum over (kh, kw) of taps[f, kh, kw] * src[o + kh*dh - top, p + kw*dw - left],
# with dst and src sharing the row pitch ``width`` (flat way, or padded way in
# the buffer's pitch).


@jit.kernel()
def _correlate_flat(dst, d_plane, src, s_plane, src_h, width, first, stop, taps, f,
                    dilation_h, dilation_w, top, left):
    """Add the taps to dst rows [first, stop), kernel rows in order, three taps per pass.

    Rows whose source row lies outside the plane skip the kernel row.  Columns
    whose tap falls off a row end read the neighbouring row instead (or nothing
    at the plane's ends): _fix_edge_columns recomputes them afterwards.
    """
    kernel_h, kernel_w = taps.shape[1], taps.shape[2]
    size = src_h * width
    for kh in range(kernel_h):
        lo_row, hi_row = _tap_rows(first, stop, kh * dilation_h - top, src_h)
        if lo_row >= hi_row:
            continue
        row_offset = (kh * dilation_h - top) * width
        for t0 in range(0, kernel_w, 3):
            group = min(3, kernel_w - t0)
            offset = row_offset + t0 * dilation_w - left
            lo = max(lo_row * width, -offset)
            hi = min(hi_row * width, size - offset - (group - 1) * dilation_w)
            if hi <= lo:
                continue
            s0 = s_plane + lo + offset
            if group == 3:
                _add_taps3(dst, d_plane + lo, src, s0, s0 + dilation_w, s0 + 2 * dilation_w,
                           taps[f, kh, t0], taps[f, kh, t0 + 1], taps[f, kh, t0 + 2], hi - lo)
            else:
                for t in range(group):  # one or two taps left over
                    _add_tap_unit(dst, d_plane + lo, src, s0 + t * dilation_w,
                                  taps[f, kh, t0 + t], hi - lo)


@jit.kernel()
def _fix_edge_columns(dst, d_plane, src, s_plane, plane_size, src_h, width, columns, first,
                      stop, taps, f_first, f_stop, dilation_h, dilation_w, top, left, bases,
                      base):
    """Recompute dst rows [first, stop), columns [0, columns), where some tap falls off the row.

    Each such element becomes bases[base] + the valid taps of filters
    f_first..f_stop-1 (filter f reading the source plane at s_plane + (f - f_first)
    * plane_size), in (filter, kh, kw) order like the flat passes.  One element at
    a time: loops down a column would be vectorised into slow gathers and scatters.
    """
    kernel_h, kernel_w = taps.shape[1], taps.shape[2]
    taps_flat = taps.reshape(taps.size)
    step = np.uint64(dilation_w)
    left_stop = min(max(left, 0), columns)
    right_first = max(min(width - (kernel_w - 1) * dilation_w + left, columns), left_stop)
    p = 0
    while p < columns:
        if p == left_stop:  # skip the columns where every tap is valid
            p = right_first
            if p >= columns:
                break
        kw_first, kw_stop = _tap_columns(dilation_w, p - left, width, kernel_w)
        for o in range(first, stop):
            kh_first, kh_stop = _tap_columns(dilation_h, o - top, src_h, kernel_h)
            total = bases[base]
            for f in range(f_first, f_stop):
                plane = s_plane + (f - f_first) * plane_size
                for kh in range(kh_first, kh_stop):
                    row = np.uint64(plane + (o + kh * dilation_h - top) * width + p - left)
                    tap_row = np.uint64((f * kernel_h + kh) * kernel_w)
                    for kw in range(np.uint64(kw_first), np.uint64(kw_stop)):
                        total += taps_flat[tap_row + kw] * src[row + kw * step]
            dst[np.uint64(d_plane + o * width + p)] = total
        p += 1


@jit.kernel()
def _pad_plane(src, s_plane, src_h, src_w, buf, rows, pitch, top, left):
    """buf[:rows * pitch] = the (src_h, src_w) plane at src[s_plane:], moved down by
    ``top`` rows and right by ``left`` columns (either may be negative), zeros around."""
    lo = min(max(left, 0), pitch)
    hi = min(max(left + src_w, lo), pitch)
    for b in range(rows):
        r = b - top
        if r < 0 or r >= src_h:
            _fill(buf, b * pitch, pitch, 0.0)
            continue
        _fill(buf, b * pitch, lo, 0.0)
        _copy(buf, b * pitch + lo, src, s_plane + r * src_w + lo - left, hi - lo)
        _fill(buf, b * pitch + hi, pitch - hi, 0.0)


@jit.kernel()
def _copy_out(dst, d0, dst_w, scratch, pitch, rows):
    """Rows of a pitch-``pitch`` scratch block into consecutive dst rows of width dst_w."""
    for r in range(rows):
        _copy(dst, d0 + r * dst_w, scratch, r * pitch, dst_w)


@jit.kernel()
def _padded_block(src, s_plane, src_h, src_w, buf, scratch, rows, dst_w, taps, f, dilation_h,
                  dilation_w, top, left, init, base):
    """Padded way: scratch rows [0, rows) (pitch dst_w + reach) (+)= taps over the source.

    ``top``/``left``: where the source plane's origin lands in the block's frame.
    With ``init`` scratch starts from ``base``.
    """
    kernel_h, kernel_w = taps.shape[1], taps.shape[2]
    buf_rows = rows + (kernel_h - 1) * dilation_h
    pitch = dst_w + (kernel_w - 1) * dilation_w
    _pad_plane(src, s_plane, src_h, src_w, buf, buf_rows, pitch, top, left)
    if init:
        _fill(scratch, 0, rows * pitch, base)
    _correlate_flat(scratch, 0, buf, 0, buf_rows, pitch, 0, rows, taps, f, dilation_h,
                    dilation_w, 0, 0)


# ---------------------------------------------------------------------------
# Other strides: rows.  A "tap" reads src[o * stride + offset] for column o.


@jit.kernel()
def _correlate_row(dst, d_row, src, s_row, taps, f, kh, stride, step, shift, plan):
    """dst row += sum over t of taps[f, kh, t] * src[o * stride + t * step + shift] (valid t).

    With a unit stride, taps go in groups of three (``plan``, from
    :func:`_column_plan`): one pass over the columns where the whole group is
    valid, single-tap passes over the few edge columns.  Every column adds its
    valid taps in increasing t either way.
    """
    count = taps.shape[2]
    for t0 in range(0, count, 3):
        group = min(3, count - t0)
        lo, hi = plan[t0, 2], plan[t0, 3]
        grouped = stride == 1 and group == 3 and lo < hi
        for t in range(t0, t0 + group):
            first, stop = plan[t, 0], plan[t, 1]
            offset = t * step + shift
            for side in range(2 if grouped else 1):
                if grouped:  # the edge columns left and right of the grouped pass
                    first, stop = (plan[t, 0], lo) if side == 0 else (hi, plan[t, 1])
                _add_tap(dst, d_row + first, src, s_row + first * stride + offset,
                         taps[f, kh, t], stride, stop - first)
        if grouped:
            s0 = s_row + lo + t0 * step + shift
            _add_taps3(dst, d_row + lo, src, s0, s0 + step, s0 + 2 * step, taps[f, kh, t0],
                       taps[f, kh, t0 + 1], taps[f, kh, t0 + 2], hi - lo)


@jit.kernel()
def _scatter_row(dst, d_row, src, s_row, taps, f, kh, stride, step, shift, plan):
    """dst[o * stride + t * step + shift] += taps[f, kh, t] * src[o], tap after tap.

    ``plan[t, :2]``: [first, stop) of the src columns o whose target is in the row.
    """
    jump = np.uint64(stride)
    for t in range(taps.shape[2]):
        first, stop = plan[t, 0], plan[t, 1]
        a = np.uint64(d_row + first * stride + t * step + shift)
        b = np.uint64(s_row + first)
        weight = taps[f, kh, t]
        for i in range(np.uint64(max(stop - first, 0))):
            dst[a + i * jump] = dst[a + i * jump] + weight * src[b + i]


# ---------------------------------------------------------------------------
# Forward pass: a tile is a block of rows of one output plane out[n, f].


@jit.kernel()
def _forward_tile(x, x_flat, taps, plan, bias, out, out_flat, tile, blocks, rows_per_tile,
                  stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left):
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    filters, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    plane = tile // blocks
    n, f = plane // filters, plane % filters
    x_plane = (n * channels + f // (filters // channels)) * height * width
    d_plane = plane * out_h * out_w
    first = (tile % blocks) * rows_per_tile
    stop = min(first + rows_per_tile, out_h)
    if stride_h == 1 and stride_w == 1 and out_w <= width:
        # Flat, in out itself or, for a narrower output, in a scratch block of
        # input-width rows whose first out_w columns are then copied out.
        dst, d0 = out_flat, d_plane
        if out_w < width:
            dst, d0 = np.empty((stop - first) * width, dtype=out.dtype), -first * width
        _fill(dst, d0 + first * width, (stop - first) * width, bias[f])
        _correlate_flat(dst, d0, x_flat, x_plane, height, width, first, stop, taps, f,
                        dilation_h, dilation_w, pad_top, pad_left)
        _fix_edge_columns(dst, d0, x_flat, x_plane, 0, height, width, out_w, first, stop, taps,
                          f, f + 1, dilation_h, dilation_w, pad_top, pad_left, bias, f)
        if out_w < width:
            _copy_out(out_flat, d_plane + first * out_w, out_w, dst, width, stop - first)
        return
    for oh in range(first, stop):
        d_row = d_plane + oh * out_w
        _fill(out_flat, d_row, out_w, bias[f])
        for kh in range(taps.shape[1]):
            ih = oh * stride_h + kh * dilation_h - pad_top
            if 0 <= ih < height:
                _correlate_row(out_flat, d_row, x_flat, x_plane + ih * width, taps, f, kh,
                               stride_w, dilation_w, -pad_left, plan)


@jit.kernel()
def _forward_setup(x, kernel, out, stride_w, dilation_w, pad_left):
    """Tables of the forward pass, shared read-only by its tiles."""
    taps = _taps_by_filter(kernel, False)
    plan = _column_plan(kernel.shape[1], stride_w, dilation_w, -pad_left, x.shape[3],
                        out.shape[3])
    rows_per_tile = _rows_per_tile(out.shape[2], out.shape[3])
    return taps, plan, rows_per_tile, -(-out.shape[2] // rows_per_tile)


@jit.kernel(parallel=True)
def depthwise_planes_forward(x, kernel, bias, out, stride_h, stride_w, dilation_h, dilation_w,
                             pad_top, pad_left):
    """Depthwise convolution plus bias, channels_first, into ``out`` (N, F, OH, OW)."""
    taps, plan, rows_per_tile, blocks = _forward_setup(x, kernel, out, stride_w, dilation_w,
                                                       pad_left)
    x_flat, out_flat = x.reshape(x.size), out.reshape(out.size)
    for tile in prange(out.shape[0] * out.shape[1] * blocks):
        _forward_tile(x, x_flat, taps, plan, bias, out, out_flat, np.int64(tile), blocks,
                      rows_per_tile, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                      pad_left)


@jit.kernel()
def depthwise_planes_forward_serial(x, kernel, bias, out, stride_h, stride_w, dilation_h,
                                    dilation_w, pad_top, pad_left):
    """Serial build of :func:`depthwise_planes_forward`."""
    taps, plan, rows_per_tile, blocks = _forward_setup(x, kernel, out, stride_w, dilation_w,
                                                       pad_left)
    x_flat, out_flat = x.reshape(x.size), out.reshape(out.size)
    for tile in range(out.shape[0] * out.shape[1] * blocks):
        _forward_tile(x, x_flat, taps, plan, bias, out, out_flat, np.int64(tile), blocks,
                      rows_per_tile, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                      pad_left)


# ---------------------------------------------------------------------------
# Input gradient, gathered: a tile is a block of rows of one plane
# grad_input[n, c], summing its channel's M filters in order.  With unit
# strides it is the forward pass of the kernel turned by 180 degrees over
# grad_output, whose origin then sits at (KH-1)*dilation_h - pad_top,
# (KW-1)*dilation_w - pad_left.  Otherwise row by row: with a unit horizontal
# stride a grad_output row is correlated with the kernel row reversed; else it
# is scattered into the tile's own row, tap after tap.


@jit.kernel()
def _grad_input_tile(grad_output, go_flat, taps, finite, plan, zero, grad_input, gi_flat, tile,
                     blocks, rows_per_tile, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                     pad_left):
    channels, height, width = grad_input.shape[1], grad_input.shape[2], grad_input.shape[3]
    filters, out_h, out_w = grad_output.shape[1], grad_output.shape[2], grad_output.shape[3]
    multiplier = filters // channels
    kernel_h, kernel_w = taps.shape[1], taps.shape[2]
    plane = tile // blocks
    n, c = plane // channels, plane % channels
    f_first, f_stop = c * multiplier, (c + 1) * multiplier
    go_plane = (n * filters + f_first) * out_h * out_w
    d_plane = plane * height * width
    first = (tile % blocks) * rows_per_tile
    stop = min(first + rows_per_tile, height)
    top = (kernel_h - 1) * dilation_h - pad_top
    left = (kernel_w - 1) * dilation_w - pad_left
    unit_strides = stride_h == 1 and stride_w == 1
    if unit_strides and out_w == width:
        _fill(gi_flat, d_plane + first * width, (stop - first) * width, 0.0)
        for f in range(f_first, f_stop):
            _correlate_flat(gi_flat, d_plane, go_flat, go_plane + (f - f_first) * out_h * out_w,
                            out_h, width, first, stop, taps, f, dilation_h, dilation_w, top,
                            left)
        _fix_edge_columns(gi_flat, d_plane, go_flat, go_plane, out_h * out_w, out_h, width,
                          width, first, stop, taps, f_first, f_stop, dilation_h, dilation_w, top,
                          left, zero, 0)
        return
    padded = unit_strides
    for f in range(f_first, f_stop):
        padded = padded and finite[f]
    if padded:
        pitch = width + (kernel_w - 1) * dilation_w
        buf = np.empty((stop - first + (kernel_h - 1) * dilation_h) * pitch,
                       dtype=grad_input.dtype)
        scratch = np.empty((stop - first) * pitch, dtype=grad_input.dtype)
        for f in range(f_first, f_stop):
            _padded_block(go_flat, go_plane + (f - f_first) * out_h * out_w, out_h, out_w, buf,
                          scratch, stop - first, width, taps, f, dilation_h, dilation_w,
                          top - first, left, f == f_first, 0.0)
        _copy_out(gi_flat, d_plane + first * width, width, scratch, pitch, stop - first)
        return
    for ih in range(first, stop):
        d_row = d_plane + ih * width
        _fill(gi_flat, d_row, width, 0.0)
        for f in range(f_first, f_stop):
            for kh in range(kernel_h):
                shifted = ih + pad_top - kh * dilation_h
                if shifted < 0:
                    continue
                oh = shifted
                if stride_h != 1:
                    if shifted % stride_h != 0:
                        continue
                    oh = shifted // stride_h
                if oh >= out_h:
                    continue
                s_row = go_plane + ((f - f_first) * out_h + oh) * out_w
                # taps is turned: its row kernel_h - 1 - kh is kernel row kh reversed
                if stride_w == 1:
                    _correlate_row(gi_flat, d_row, go_flat, s_row, taps, f, kernel_h - 1 - kh,
                                   1, dilation_w, -left, plan)
                else:
                    _scatter_row(gi_flat, d_row, go_flat, s_row, taps, f, kernel_h - 1 - kh,
                                 stride_w, -dilation_w, left, plan)


@jit.kernel()
def _grad_input_setup(grad_output, kernel, grad_input, stride_w, dilation_w, pad_left):
    """Tables of the input gradient, shared read-only by its tiles."""
    kernel_w, out_w, width = kernel.shape[1], grad_output.shape[3], grad_input.shape[3]
    left = (kernel_w - 1) * dilation_w - pad_left
    taps = _taps_by_filter(kernel, True)
    if stride_w == 1:
        plan = _column_plan(kernel_w, 1, dilation_w, -left, out_w, width)
    else:  # scattered: tap t of the reversed row is kernel column kernel_w - 1 - t
        plan = _column_plan(kernel_w, stride_w, -dilation_w, left, width, out_w)
    rows_per_tile = _rows_per_tile(grad_input.shape[2], width)
    blocks = -(-grad_input.shape[2] // rows_per_tile)
    zero = np.zeros(1, dtype=grad_input.dtype)  # the edge columns' starting value
    return taps, _finite_filters(taps), plan, zero, rows_per_tile, blocks


@jit.kernel(parallel=True)
def depthwise_planes_grad_input(grad_output, kernel, grad_input, stride_h, stride_w, dilation_h,
                                dilation_w, pad_top, pad_left):
    """Gradient of :func:`depthwise_planes_forward` w.r.t. ``x``, into ``grad_input``."""
    taps, finite, plan, zero, rows_per_tile, blocks = _grad_input_setup(
        grad_output, kernel, grad_input, stride_w, dilation_w, pad_left)
    go_flat, gi_flat = grad_output.reshape(grad_output.size), grad_input.reshape(grad_input.size)
    for tile in prange(grad_input.shape[0] * grad_input.shape[1] * blocks):
        _grad_input_tile(grad_output, go_flat, taps, finite, plan, zero, grad_input, gi_flat,
                         np.int64(tile), blocks, rows_per_tile, stride_h, stride_w, dilation_h,
                         dilation_w, pad_top, pad_left)


@jit.kernel()
def depthwise_planes_grad_input_serial(grad_output, kernel, grad_input, stride_h, stride_w,
                                       dilation_h, dilation_w, pad_top, pad_left):
    """Serial build of :func:`depthwise_planes_grad_input`."""
    taps, finite, plan, zero, rows_per_tile, blocks = _grad_input_setup(
        grad_output, kernel, grad_input, stride_w, dilation_w, pad_left)
    go_flat, gi_flat = grad_output.reshape(grad_output.size), grad_input.reshape(grad_input.size)
    for tile in range(grad_input.shape[0] * grad_input.shape[1] * blocks):
        _grad_input_tile(grad_output, go_flat, taps, finite, plan, zero, grad_input, gi_flat,
                         np.int64(tile), blocks, rows_per_tile, stride_h, stride_w, dilation_h,
                         dilation_w, pad_top, pad_left)


# ---------------------------------------------------------------------------
# Kernel gradient: a tile is one filter f, or one (f, kh) with few filters.
# Each tap (kh, kw) has a buffer of `lanes` elements; the products
# x * grad_output of a block of output rows are added into it elementwise, in
# block order (images, then rows).  Flat way (unit strides, equal widths): a
# block is several whole rows, processed as one long loop per tap; lanes in a
# column where the tap falls off the row collect junk and are left out of the
# sum.  Row way: a block is one row, only the valid columns are added.  After
# at most MAX_PARTIAL_TERMS blocks the buffer's rows are added into its first
# row and the valid columns of that row, in order, into a float64 total.  All
# of this depends on the shapes only, so the sums never depend on the tiling
# or the thread count.


@jit.kernel()
def _flush_products(acc, lanes, rows, pitch, kernel_w, col_first, col_stop, totals):
    """Add each tap's buffer (``rows`` rows of ``pitch`` lanes) into totals; zero the buffers."""
    for k in range(totals.shape[0]):
        start = k * lanes
        for r in range(1, rows):
            _add_row(acc, start, start + r * pitch, pitch)
        kw = k % kernel_w
        total = 0.0
        for i in range(start + col_first[kw], start + col_stop[kw]):
            total += acc[i]
        totals[k] += total
        _fill(acc, start, lanes, 0.0)


@jit.kernel()
def _grad_kernel_tile(x, x_flat, grad_output, go_flat, grad_kernel, f, kh_first, kh_stop,
                      stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left):
    batch, channels, height, width = x.shape
    filters, out_h, out_w = grad_output.shape[1], grad_output.shape[2], grad_output.shape[3]
    kernel_w = grad_kernel.shape[1]
    c = f // (filters // channels)
    flat = stride_h == 1 and stride_w == 1 and out_w <= width
    pitch = width if flat else out_w
    rows = max(1, min(out_h, PRODUCT_BLOCK_ELEMENTS // max(pitch, 1))) if flat else 1
    lanes = rows * pitch
    taps = (kh_stop - kh_first) * kernel_w
    acc = np.zeros(taps * lanes, dtype=grad_kernel.dtype)
    # A narrower grad_output is copied a block at a time into input-width rows
    # (the extra columns stay zero and are never summed).
    grad_rows = np.zeros(lanes if flat and out_w < width else 0, dtype=grad_kernel.dtype)
    totals = np.zeros(taps, dtype=np.float64)
    col_first = np.empty(kernel_w, dtype=np.int64)
    col_stop = np.empty(kernel_w, dtype=np.int64)
    for kw in range(kernel_w):
        col_first[kw], col_stop[kw] = _tap_columns(stride_w, kw * dilation_w - pad_left, width,
                                                   out_w)
    terms = 0
    for n in range(batch):
        x_plane = (n * channels + c) * height * width
        g_plane = (n * filters + f) * out_h * out_w
        for first in range(0, out_h, rows):
            stop = min(first + rows, out_h)
            grad, g0 = go_flat, g_plane
            if flat and out_w < width:
                for r in range(stop - first):
                    _copy(grad_rows, r * width, go_flat, g_plane + (first + r) * out_w, out_w)
                grad, g0 = grad_rows, -first * width
            for kh in range(kh_first, kh_stop):
                for kw in range(kernel_w):
                    a0 = ((kh - kh_first) * kernel_w + kw) * lanes
                    if flat:
                        shift = kh * dilation_h - pad_top
                        lo_row, hi_row = _tap_rows(first, stop, shift, height)
                        offset = shift * width + kw * dilation_w - pad_left
                        lo = max(lo_row * width, -offset)
                        hi = min(hi_row * width, height * width - offset)
                        _add_products(acc, a0 + lo - first * width, x_flat, x_plane + lo + offset,
                                      grad, g0 + lo, hi - lo)
                        continue
                    ih = first * stride_h + kh * dilation_h - pad_top
                    lo = col_first[kw]
                    if 0 <= ih < height:
                        _add_products_strided(acc, a0 + lo, x_flat,
                                              x_plane + ih * width + lo * stride_w
                                              + kw * dilation_w - pad_left, stride_w, go_flat,
                                              g_plane + first * out_w + lo, col_stop[kw] - lo)
            terms += 1
            if terms == MAX_PARTIAL_TERMS:
                _flush_products(acc, lanes, rows, pitch, kernel_w, col_first, col_stop, totals)
                terms = 0
    _flush_products(acc, lanes, rows, pitch, kernel_w, col_first, col_stop, totals)
    for kh in range(kh_first, kh_stop):
        for kw in range(kernel_w):
            grad_kernel[kh, kw, 0, f] = totals[(kh - kh_first) * kernel_w + kw]


@jit.kernel()
def _kernel_rows_per_tile(grad_kernel):
    """Kernel rows per tile of the kernel gradient: all of them, or one with few filters."""
    return grad_kernel.shape[0] if grad_kernel.shape[3] >= FILTER_TILES_MIN else 1


@jit.kernel(parallel=True)
def depthwise_planes_grad_kernel(x, grad_output, grad_kernel, stride_h, stride_w, dilation_h,
                                 dilation_w, pad_top, pad_left):
    """Gradient of :func:`depthwise_planes_forward` w.r.t. ``kernel``, into ``grad_kernel``."""
    kernel_h = grad_kernel.shape[0]
    x_flat, go_flat = x.reshape(x.size), grad_output.reshape(grad_output.size)
    rows = _kernel_rows_per_tile(grad_kernel)
    blocks = -(-kernel_h // rows)
    for tile in prange(grad_kernel.shape[3] * blocks):
        kh_first = (tile % blocks) * rows
        _grad_kernel_tile(x, x_flat, grad_output, go_flat, grad_kernel, np.int64(tile // blocks),
                          kh_first, min(kh_first + rows, kernel_h), stride_h, stride_w,
                          dilation_h, dilation_w, pad_top, pad_left)


@jit.kernel()
def depthwise_planes_grad_kernel_serial(x, grad_output, grad_kernel, stride_h, stride_w,
                                        dilation_h, dilation_w, pad_top, pad_left):
    """Serial build of :func:`depthwise_planes_grad_kernel`."""
    kernel_h = grad_kernel.shape[0]
    x_flat, go_flat = x.reshape(x.size), grad_output.reshape(grad_output.size)
    rows = _kernel_rows_per_tile(grad_kernel)
    blocks = -(-kernel_h // rows)
    for tile in range(grad_kernel.shape[3] * blocks):
        kh_first = (tile % blocks) * rows
        _grad_kernel_tile(x, x_flat, grad_output, go_flat, grad_kernel, np.int64(tile // blocks),
                          kh_first, min(kh_first + rows, kernel_h), stride_h, stride_w,
                          dilation_h, dilation_w, pad_top, pad_left)
