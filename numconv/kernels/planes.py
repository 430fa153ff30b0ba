"""Grouped convolution kernels for channels_first arrays, one image plane at a time.

In channels_first layout a grouped convolution is a set of single-channel 2-D
correlations: output plane ``(n, f)`` is the sum over the ``Cg`` input planes
of its group of their correlations with filter f's taps on them.  A depthwise
convolution is the case ``Cg = 1`` (output plane ``(n, f)`` reads input plane
``(n, f // M)`` only, ``M = F // C`` the depth multiplier).

Arrays (C-contiguous, all float32 or all float64 in one call):

* ``x``, ``grad_input``: ``(N, C, H, W)``;
* ``out``, ``grad_output``: ``(N, F, OH, OW)``;
* ``kernel``, ``grad_kernel``: ``(KH, KW, Cg, F)`` (Keras layout, cross-correlation;
  ``C // Cg`` groups of ``Cg`` channels and ``F * Cg // C`` filters);
* ``bias``: ``(F,)``;
* ``stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left``: ints.  The
  bottom and right padding follow from the output size.  Taps landing in the
  padding are skipped, never multiplied by zero.

Signatures::

    grouped_planes_forward(x, kernel, bias, out, stride_h, stride_w,
                           dilation_h, dilation_w, pad_top, pad_left)
    grouped_planes_grad_input(grad_output, kernel, grad_input, ...same scalars...)
    grouped_planes_grad_kernel(x, grad_output, grad_kernel, ...same scalars...)

Each writes every element of its last array argument.  Each has a
``parallel=True`` build (the names above) and a ``..._serial`` build of the
same tiles; both give bit-identical results whatever the thread count.  The
kernels trust their arguments (checked by :mod:`numconv.nn`).  From a user's
``@njit(cache=True)`` function, call the ``..._serial`` builds (numba/numba#8578).

Three ways through a plane, chosen by shape (and, for the forward pass and the
input gradient, by the weights):

* flat: unit strides, output no wider than input (the 'same' and 'valid'
  cases), one channel per group for the forward pass and the input gradient.
  Output rows (in ``out`` itself, or in a scratch block of input-width rows
  for a narrower output) share the input's row pitch, so a tap is a constant
  offset between flat indices and a group of three taps (nine for a 3x3
  kernel) one long loop over a block of rows.  The few edge columns, where
  those loops read across a row end, are then recomputed element by element.
  A 3x3 forward pass with every tap inside ('valid') writes its narrower
  rows directly instead, one short loop a row.
  The kernel gradient keeps its products in input-width rows the same way and
  leaves the edge columns out of its sums.  The input gradient runs flat when
  grad_output and grad_input have the same width.
* phases: any other strides and dilations, and groups of several channels
  (whose edge columns would be recomputed over all of them).  The source rows
  a tile needs are copied, split by phase (row mod stride_h, column mod
  stride_w), into zero-padded buffers whose pitch is the output width plus the
  kernel's reach; each phase is then a unit-stride correlation with the taps of
  that phase, computed flat in that pitch.  A forward tile holds all the
  output planes of one group, an input-gradient tile all its input planes, so
  each copy serves the whole group.  Forward pass and input gradient: the padding
  zeros enter as 0 * weight, exact only for finite weights.  Kernel gradient:
  products with padding land in lanes left out of the sums, so any values do.
* direct: the forward pass and the input gradient of a filter with an inf or
  nan weight, when not flat; plain loops over the valid taps of each element.
"""

import numpy as np
from numba import prange

from . import jit

# Output elements per tile of the forward pass and of the input gradient (at
# least one row): whole planes on typical shapes, blocks of rows on large ones,
# so that a few planes still feed every thread.
TILE_ELEMENTS = 4096
# Fewer (filter, channel) pairs than this: the kernel gradient runs one tile per (pair, kernel
# row) instead of per pair.  Each (kh, kw) sum sees the same terms in the same
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
def _zero(dst, start, count):
    a = np.uint64(start)
    for i in range(np.uint64(max(count, 0))):
        dst[a + i] = 0


@jit.kernel()
def _gather(dst, a0, src, b0, step, count):
    """dst[a0 + i] = src[b0 + i * step] for i < count."""
    if step == 1:
        _copy(dst, a0, src, b0, count)
        return
    a, b, jump = np.uint64(a0), np.uint64(b0), np.uint64(step)
    for i in range(np.uint64(max(count, 0))):
        dst[a + i] = src[b + i * jump]


@jit.kernel()
def _scatter(dst, a0, step, src, b0, count):
    """dst[a0 + i * step] = src[b0 + i] for i < count."""
    if step == 1:
        _copy(dst, a0, src, b0, count)
        return
    a, b, jump = np.uint64(a0), np.uint64(b0), np.uint64(step)
    for i in range(np.uint64(max(count, 0))):
        dst[a + i * jump] = src[b + i]


@jit.kernel()
def _add_tap(dst, d0, src, s0, w0, count):
    """dst[d0 + i] += w0 * src[s0 + i] for i < count."""
    a, b = np.uint64(d0), np.uint64(s0)
    for i in range(np.uint64(max(count, 0))):
        dst[a + i] = dst[a + i] + w0 * src[b + i]


@jit.kernel()
def _add_taps3(dst, d0, src, s0, s1, s2, w0, w1, w2, count):
    """Three taps in one pass: dst + w0 * src0 + w1 * src1 + w2 * src2, in that order."""
    a, b0, b1, b2 = np.uint64(d0), np.uint64(s0), np.uint64(s1), np.uint64(s2)
    for i in range(np.uint64(count)):
        dst[a + i] = dst[a + i] + w0 * src[b0 + i] + w1 * src[b1 + i] + w2 * src[b2 + i]


@jit.kernel()
def _add_products(acc, a0, src, s0, grad, g0, count):
    """acc[a0 + i] += src[s0 + i] * grad[g0 + i] for i < count."""
    a, b, g = np.uint64(a0), np.uint64(s0), np.uint64(g0)
    for i in range(np.uint64(max(count, 0))):
        acc[a + i] = acc[a + i] + src[b + i] * grad[g + i]


@jit.kernel()
def _add_row(acc, a0, b0, count):
    """acc[a0 + i] += acc[b0 + i] for i < count (disjoint ranges)."""
    a, b = np.uint64(a0), np.uint64(b0)
    for i in range(np.uint64(max(count, 0))):
        acc[a + i] = acc[a + i] + acc[b + i]


# ---------------------------------------------------------------------------
# Index bounds and tables.


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
def _rows_per_tile(rows, cols):
    return max(1, min(rows, TILE_ELEMENTS // max(cols, 1)))


@jit.kernel()
def _planes_taps(kernel, rotate):
    """(F * Cg, KH, KW) copy of the taps, a row per (filter f, group channel c).

    Forward: ``taps[f * Cg + c] = kernel[:, :, c, f]``, a filter's channels side by
    side.  ``rotate`` (input gradient): ``taps[c * F + f]`` = ``kernel[:, :, c, f]``
    turned by 180 degrees, a channel's filters side by side.
    """
    kernel_h, kernel_w, group_channels, filters = kernel.shape
    taps = np.empty((filters * group_channels, kernel_h, kernel_w), dtype=kernel.dtype)
    for kh in range(kernel_h):
        for kw in range(kernel_w):
            for c in range(group_channels):
                for f in range(filters):
                    if rotate:
                        taps[c * filters + f, kernel_h - 1 - kh, kernel_w - 1 - kw] = \
                            kernel[kh, kw, c, f]
                    else:
                        taps[f * group_channels + c, kh, kw] = kernel[kh, kw, c, f]
    return taps


@jit.kernel()
def _finite_by_filter(taps, per_filter):
    """Whether all taps of rows ``f * per_filter ...`` are finite, per f."""
    rows = _finite_filters(taps)
    finite = np.ones(taps.shape[0] // per_filter, dtype=np.bool_)
    for f in range(finite.shape[0]):
        for r in range(per_filter):
            finite[f] = finite[f] and rows[f * per_filter + r]
    return finite


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
# Flat way: a correlation of a source plane with one filter's taps,
#   dst[o, p] += sum over (kh, kw) of taps[f, kh, kw] * src[o + kh*dh - top, p + kw*dw - left],
# with dst and src sharing the row pitch ``width``.


@jit.kernel()
def _correlate_flat(dst, d_plane, src, s_plane, src_h, width, first, stop, taps, f,
                    dilation_h, dilation_w, top, left, columns):
    """Add the taps to dst rows [first, stop), kernel rows in order, three taps per pass.

    Rows whose source row lies outside the plane skip the kernel row.  Columns
    whose tap falls off a row end read the neighbouring row instead (or nothing
    at the plane's ends): _fix_edge_columns recomputes them afterwards.  A 3x3
    kernel takes the elements every tap reaches in one pass of nine (the same
    sums in the same order, with one read and write of dst instead of three).
    Only the first ``columns`` of the last row are computed: a narrower output
    never reads the rest.
    """
    kernel_h, kernel_w = taps.shape[1], taps.shape[2]
    size = src_h * width
    end = (stop - 1) * width + columns
    lo9 = hi9 = np.int64(0)
    if kernel_h == 3 and kernel_w == 3:
        lo9, hi9 = first * width, end
        for kh in range(3):
            lo_row, hi_row = _tap_rows(first, stop, kh * dilation_h - top, src_h)
            offset = (kh * dilation_h - top) * width - left
            lo9 = max(lo9, lo_row * width, -offset)
            hi9 = min(hi9, hi_row * width, size - offset - 2 * dilation_w)
        if hi9 > lo9:
            _add_taps9(dst, d_plane, src, s_plane, taps, f, dilation_h * width, dilation_w,
                       -top * width - left, lo9, hi9)
        else:
            lo9 = hi9 = np.int64(0)
    for kh in range(kernel_h):
        lo_row, hi_row = _tap_rows(first, stop, kh * dilation_h - top, src_h)
        if lo_row >= hi_row:
            continue
        row_offset = (kh * dilation_h - top) * width
        for t0 in range(0, kernel_w, 3):
            group = min(3, kernel_w - t0)
            offset = row_offset + t0 * dilation_w - left
            lo = max(lo_row * width, -offset)
            hi = min(hi_row * width, size - offset - (group - 1) * dilation_w, end)
            # the part of [lo, hi) the nine-tap pass did not take: before it, then after
            # it (without that pass, lo9 = hi9 = 0 and the second part is all of it)
            for part in range(2):
                part_lo = lo if part == 0 else max(lo, hi9)
                part_hi = min(hi, lo9) if part == 0 else hi
                if part_hi <= part_lo:
                    continue
                s0 = s_plane + part_lo + offset
                if group == 3:
                    _add_taps3(dst, d_plane + part_lo, src, s0, s0 + dilation_w,
                               s0 + 2 * dilation_w, taps[f, kh, t0], taps[f, kh, t0 + 1],
                               taps[f, kh, t0 + 2], part_hi - part_lo)
                else:
                    for t in range(group):  # one or two taps left over
                        _add_tap(dst, d_plane + part_lo, src, s0 + t * dilation_w,
                                 taps[f, kh, t0 + t], part_hi - part_lo)


@jit.kernel()
def _add_taps9(dst, d_plane, src, s_plane, taps, f, row_step, col_step, origin, lo, hi):
    """dst[d_plane + i] += the nine taps of a 3x3 filter for i in [lo, hi), in (kh, kw)
    order: tap (kh, kw) reads src[s_plane + i + origin + kh * row_step + kw * col_step]."""
    w00, w01, w02 = taps[f, 0, 0], taps[f, 0, 1], taps[f, 0, 2]
    w10, w11, w12 = taps[f, 1, 0], taps[f, 1, 1], taps[f, 1, 2]
    w20, w21, w22 = taps[f, 2, 0], taps[f, 2, 1], taps[f, 2, 2]
    a = np.uint64(d_plane + lo)
    b0 = np.uint64(s_plane + lo + origin)
    b1 = b0 + np.uint64(row_step)
    b2 = b1 + np.uint64(row_step)
    c1, c2 = np.uint64(col_step), np.uint64(2 * col_step)
    for i in range(np.uint64(hi - lo)):
        dst[a + i] = (dst[a + i] + w00 * src[b0 + i] + w01 * src[b0 + c1 + i]
                      + w02 * src[b0 + c2 + i] + w10 * src[b1 + i] + w11 * src[b1 + c1 + i]
                      + w12 * src[b1 + c2 + i] + w20 * src[b2 + i] + w21 * src[b2 + c1 + i]
                      + w22 * src[b2 + c2 + i])


@jit.kernel()
def _valid_rows9(dst, d0, dst_w, src, s0, src_w, taps, f, dilation_h, dilation_w, bias, rows):
    """dst rows of width dst_w = bias + the nine taps of a 3x3 filter, where every tap
    falls inside src (rows of src_w; 'valid' padding): row r of dst at d0 + r * dst_w
    reads src from s0 + r * src_w.  The sums of _fill then _add_taps9, in their order,
    without the scratch rows of src's width and their copy to the narrower dst."""
    w00, w01, w02 = taps[f, 0, 0], taps[f, 0, 1], taps[f, 0, 2]
    w10, w11, w12 = taps[f, 1, 0], taps[f, 1, 1], taps[f, 1, 2]
    w20, w21, w22 = taps[f, 2, 0], taps[f, 2, 1], taps[f, 2, 2]
    c1, c2 = np.uint64(dilation_w), np.uint64(2 * dilation_w)
    for r in range(rows):
        a = np.uint64(d0 + r * dst_w)
        b0 = np.uint64(s0 + r * src_w)
        b1 = b0 + np.uint64(dilation_h * src_w)
        b2 = b1 + np.uint64(dilation_h * src_w)
        for i in range(np.uint64(dst_w)):
            dst[a + i] = (bias + w00 * src[b0 + i] + w01 * src[b0 + c1 + i]
                          + w02 * src[b0 + c2 + i] + w10 * src[b1 + i] + w11 * src[b1 + c1 + i]
                          + w12 * src[b1 + c2 + i] + w20 * src[b2 + i] + w21 * src[b2 + c1 + i]
                          + w22 * src[b2 + c2 + i])


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
    left_stop = min(max(left, 0), columns)
    right_first = max(min(width - (kernel_w - 1) * dilation_w + left, columns), left_stop)
    if left_stop == 0 and right_first >= columns:  # every tap valid in every column
        return
    taps_flat = taps.reshape(taps.size)
    step = np.uint64(dilation_w)
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
def _copy_out(dst, d0, dst_w, scratch, s0, pitch, rows):
    """Rows of a pitch-``pitch`` scratch block at ``s0`` into consecutive dst rows of
    width dst_w."""
    for r in range(rows):
        _copy(dst, d0 + r * dst_w, scratch, s0 + r * pitch, dst_w)


# ---------------------------------------------------------------------------
# Phases.  With strides (sh, sw), tap (kh, kw) of output (o, p) reads the
# padded source at (o*sh + kh*dh, p*sw + kw*dw): phase (kh*dh % sh, kw*dw % sw)
# of the source, at (o + kh*dh // sh, p + kw*dw // sw).  Each phase is copied
# into a buffer of `reach_h - 1` extra rows and a pitch of `reach_w - 1` extra
# columns, where reach = (K - 1) * d // s + 1, and its taps become constant
# offsets in that buffer.


@jit.kernel()
def _reach(kernel_size, dilation, stride):
    return (kernel_size - 1) * dilation // stride + 1


@jit.kernel()
def _phase_has_taps(kh_first, kh_stop, kernel_w, row_phase, col_phase, stride_h, stride_w,
                    dilation_h, dilation_w):
    """Whether kernel rows [kh_first, kh_stop) have a tap in the phase."""
    rows = cols = False
    for kh in range(kh_first, kh_stop):
        rows = rows or (kh * dilation_h) % stride_h == row_phase
    for kw in range(kernel_w):
        cols = cols or (kw * dilation_w) % stride_w == col_phase
    return rows and cols


@jit.kernel()
def _phase_block(src, s_plane, src_h, src_w, buf, rows, pitch, row0, row_step, col0, col_step,
                 zeros):
    """buf[b * pitch + j] = plane[row0 + b * row_step, col0 + j * col_step] for b < rows,
    j < pitch, where that lies inside the (src_h, src_w) plane at s_plane; with
    ``zeros`` the rest of buf[:rows * pitch] is zero, else left as it was."""
    if zeros:
        _zero(buf, np.int64(0), rows * pitch)
    lo, hi = _tap_columns(col_step, col0, src_w, pitch)
    first, stop = _tap_columns(row_step, row0, src_h, rows)
    for b in range(first, stop):
        _gather(buf, b * pitch + lo, src,
                s_plane + (row0 + b * row_step) * src_w + col0 + lo * col_step, col_step, hi - lo)


@jit.kernel()
def _phase_taps(dst, d0, buf, b0, taps, f, row_phase, col_phase, stride_h, stride_w,
                dilation_h, dilation_w, pitch, reach_h, reach_w, rotated, length):
    """dst[d0 + i] += the taps of one phase, each weight times buf[b0 + i + its offset].

    Taps in (kh, kw) order, three per pass.  ``rotated``: the taps array holds the
    kernel turned by 180 degrees, and the offsets count from the buffer's far end
    (the input gradient's correlation).
    """
    kernel_h, kernel_w = taps.shape[1], taps.shape[2]
    if kernel_h == 3 and kernel_w == 3 and stride_h == 1 and stride_w == 1 and not rotated:
        _add_taps9(dst, d0, buf, b0, taps, f, dilation_h * pitch, dilation_w, np.int64(0),
                   np.int64(0), length)
        return
    for kh in range(kernel_h):
        if (kh * dilation_h) % stride_h != row_phase:
            continue
        a = (kh * dilation_h) // stride_h
        row = b0 + (reach_h - 1 - a if rotated else a) * pitch
        pending = 0
        o0 = o1 = row  # (placeholders until set)
        w0 = w1 = taps[f, 0, 0]
        for kw in range(kernel_w):
            if (kw * dilation_w) % stride_w != col_phase:
                continue
            b = (kw * dilation_w) // stride_w
            offset = row + (reach_w - 1 - b if rotated else b)
            weight = taps[f, kernel_h - 1 - kh, kernel_w - 1 - kw] if rotated else taps[f, kh, kw]
            if pending == 0:
                o0, w0, pending = offset, weight, 1
            elif pending == 1:
                o1, w1, pending = offset, weight, 2
            else:
                _add_taps3(dst, d0, buf, o0, o1, offset, w0, w1, weight, length)
                pending = 0
        if pending >= 1:
            _add_tap(dst, d0, buf, o0, w0, length)
        if pending == 2:
            _add_tap(dst, d0, buf, o1, w1, length)


# ---------------------------------------------------------------------------
# Forward pass: a tile is a block of rows of one output plane out[n, f].


@jit.kernel()
def _forward_direct(x_flat, x_plane, height, width, taps, f, group_channels, bias, out_flat,
                    d_plane, out_w, first, stop, stride_h, stride_w, dilation_h, dilation_w,
                    pad_top, pad_left):
    for o in range(first, stop):
        for p in range(out_w):
            total = bias[f]
            for c in range(group_channels):
                plane = x_plane + c * height * width
                for kh in range(taps.shape[1]):
                    ih = o * stride_h + kh * dilation_h - pad_top
                    if 0 <= ih < height:
                        for kw in range(taps.shape[2]):
                            iw = p * stride_w + kw * dilation_w - pad_left
                            if 0 <= iw < width:
                                total += taps[f * group_channels + c, kh, kw] \
                                    * x_flat[plane + ih * width + iw]
            out_flat[d_plane + o * out_w + p] = total


@jit.kernel()
def _forward_tile(x, x_flat, taps, finite, bias, out, out_flat, tile, blocks, rows_per_tile,
                  stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left):
    """Rows [first, stop) of the output planes of one group of one image."""
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    filters, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    kernel_h, kernel_w = taps.shape[1], taps.shape[2]
    group_channels = taps.shape[0] // filters
    groups = channels // group_channels
    group_filters = filters // groups
    n, g = tile // blocks // groups, tile // blocks % groups
    x_plane = (n * channels + g * group_channels) * height * width  # the group's first
    plane_size = height * width
    f_first, f_stop = g * group_filters, (g + 1) * group_filters
    first = (tile % blocks) * rows_per_tile
    stop = min(first + rows_per_tile, out_h)
    rows = stop - first
    if stride_h == 1 and stride_w == 1 and out_w <= width and group_channels == 1:
        # Flat, in out itself or, for a narrower output, in a scratch block of
        # input-width rows whose first out_w columns are then copied out.  A 3x3
        # kernel with every tap inside (out + 2 * dilation <= in: no padding on
        # either side) writes the narrower rows directly instead (float32
        # lenet1, one thread: 1.06 -> 0.79 ms).  (Several input channels would
        # recompute the edge columns over all of them, one element at a time:
        # the padded phase buffer below is faster.)
        if (kernel_h == 3 and kernel_w == 3 and out_h + 2 * dilation_h <= height
                and out_w + 2 * dilation_w <= width):
            for f in range(f_first, f_stop):
                _valid_rows9(out_flat, (n * filters + f) * out_h * out_w + first * out_w, out_w,
                             x_flat, x_plane + first * width, width, taps, f, dilation_h,
                             dilation_w, bias[f], rows)
            return
        scratch = np.empty(rows * width if out_w < width else 0, dtype=out.dtype)
        for f in range(f_first, f_stop):
            d_plane = (n * filters + f) * out_h * out_w
            dst, d0 = out_flat, d_plane
            if out_w < width:
                dst, d0 = scratch, -first * width
            _fill(dst, d0 + first * width, rows * width, bias[f])
            _correlate_flat(dst, d0, x_flat, x_plane, height, width, first, stop, taps, f,
                            dilation_h, dilation_w, pad_top, pad_left, out_w)
            _fix_edge_columns(dst, d0, x_flat, x_plane, plane_size, height, width, out_w, first,
                              stop, taps, f, f + 1, dilation_h, dilation_w, pad_top, pad_left,
                              bias, f)
            if out_w < width:
                _copy_out(out_flat, d_plane + first * out_w, out_w, dst, np.int64(0), width,
                          rows)
        return
    all_finite = True
    for f in range(f_first, f_stop):
        all_finite = all_finite and finite[f]
    if not all_finite:
        for f in range(f_first, f_stop):
            _forward_direct(x_flat, x_plane, height, width, taps, f, group_channels, bias,
                            out_flat, (n * filters + f) * out_h * out_w, out_w, first, stop,
                            stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left)
        return
    # Phases: each input plane's phase block is copied once, for all the group's filters.
    reach_h = _reach(kernel_h, dilation_h, stride_h)
    reach_w = _reach(kernel_w, dilation_w, stride_w)
    pitch = out_w + reach_w - 1
    block = rows * pitch
    buf = np.empty((rows + reach_h - 1) * pitch, dtype=out.dtype)
    scratch = np.empty(group_filters * block, dtype=out.dtype)
    origin = np.int64(0)  # a variable, not a literal: one compiled version of each helper
    for f in range(f_first, f_stop):
        _fill(scratch, (f - f_first) * block, block, bias[f])
    for row_phase in range(stride_h):
        for col_phase in range(stride_w):
            if not _phase_has_taps(origin, kernel_h, kernel_w, row_phase, col_phase, stride_h,
                                   stride_w, dilation_h, dilation_w):
                continue
            for c in range(group_channels):
                _phase_block(x_flat, x_plane + c * plane_size, height, width, buf,
                             rows + reach_h - 1, pitch, first * stride_h + row_phase - pad_top,
                             stride_h, col_phase - pad_left, stride_w, np.bool_(True))
                for f in range(f_first, f_stop):
                    _phase_taps(scratch, (f - f_first) * block, buf, origin, taps,
                                f * group_channels + c, row_phase, col_phase, stride_h, stride_w,
                                dilation_h, dilation_w, pitch, reach_h, reach_w,
                                np.bool_(False), (rows - 1) * pitch + out_w)
    for f in range(f_first, f_stop):
        _copy_out(out_flat, (n * filters + f) * out_h * out_w + first * out_w, out_w, scratch,
                  (f - f_first) * block, pitch, rows)


@jit.kernel()
def _forward_setup(kernel, out):
    """Tables of the forward pass, shared read-only by its tiles."""
    taps = _planes_taps(kernel, np.bool_(False))
    rows_per_tile = _rows_per_tile(out.shape[2], out.shape[3])
    return (taps, _finite_by_filter(taps, kernel.shape[2]), rows_per_tile,
            -(-out.shape[2] // rows_per_tile))


@jit.kernel(parallel=True)
def grouped_planes_forward(x, kernel, bias, out, stride_h, stride_w, dilation_h, dilation_w,
                           pad_top, pad_left):
    """Depthwise convolution plus bias, channels_first, into ``out`` (N, F, OH, OW)."""
    taps, finite, rows_per_tile, blocks = _forward_setup(kernel, out)
    x_flat, out_flat = x.reshape(x.size), out.reshape(out.size)
    for tile in prange(out.shape[0] * (x.shape[1] // kernel.shape[2]) * blocks):
        _forward_tile(x, x_flat, taps, finite, bias, out, out_flat, np.int64(tile), blocks,
                      rows_per_tile, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                      pad_left)


@jit.kernel()
def grouped_planes_forward_serial(x, kernel, bias, out, stride_h, stride_w, dilation_h,
                                  dilation_w, pad_top, pad_left):
    """Serial build of :func:`grouped_planes_forward`."""
    taps, finite, rows_per_tile, blocks = _forward_setup(kernel, out)
    x_flat, out_flat = x.reshape(x.size), out.reshape(out.size)
    for tile in range(out.shape[0] * (x.shape[1] // kernel.shape[2]) * blocks):
        _forward_tile(x, x_flat, taps, finite, bias, out, out_flat, np.int64(tile), blocks,
                      rows_per_tile, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                      pad_left)


# ---------------------------------------------------------------------------
# Input gradient, gathered: a tile is a block of rows of one plane
# grad_input[n, c], summing its channel's M filters in order.  It is a
# correlation of grad_output with the kernel turned by 180 degrees:
#   grad_input[i, j] = sum of kernel[kh, kw] * grad_output[o, p]
#   over o*sh = i + pad_top - kh*dh, p*sw = j + pad_left - kw*dw.
# With unit strides and equal widths that is the flat way, grad_output's
# origin sitting at ((KH-1)*dh - pad_top, (KW-1)*dw - pad_left).  Otherwise
# grad_input is split by phase: the rows with (i + pad_top) % sh == rho (I =
# (i + pad_top) // sh) and the columns with (j + pad_left) % sw == kappa
# take only the taps with kh*dh % sh == rho and kw*dw % sw == kappa, at
# o = I - kh*dh // sh, p = J - kw*dw // sw: a unit-stride correlation.


@jit.kernel()
def _grad_input_direct(go_flat, go_plane, out_h, out_w, taps, f_first, f_stop, gi_flat,
                       d_plane, width, first, stop, stride_h, stride_w, dilation_h, dilation_w,
                       pad_top, pad_left, zero):
    kernel_h, kernel_w = taps.shape[1], taps.shape[2]
    for i in range(first, stop):
        for j in range(width):
            total = zero[0]
            for f in range(f_first, f_stop):
                plane = go_plane + (f - f_first) * out_h * out_w
                for kh in range(kernel_h):
                    rows = i + pad_top - kh * dilation_h
                    if rows < 0 or rows % stride_h != 0 or rows // stride_h >= out_h:
                        continue
                    for kw in range(kernel_w):
                        cols = j + pad_left - kw * dilation_w
                        if cols < 0 or cols % stride_w != 0 or cols // stride_w >= out_w:
                            continue
                        total += taps[f, kernel_h - 1 - kh, kernel_w - 1 - kw] \
                            * go_flat[plane + rows // stride_h * out_w + cols // stride_w]
            gi_flat[d_plane + i * width + j] = total


@jit.kernel()
def _grad_input_phases(go_flat, go_plane, out_h, out_w, taps, f_first, f_stop, gi_flat,
                       d_plane, width, first, stop, stride_h, stride_w, dilation_h, dilation_w,
                       pad_top, pad_left, planes, plane_size):
    """Phase way of the input gradient for grad_input rows [first, stop) of ``planes``
    consecutive planes from ``d_plane`` (one group's channels).

    One zero-padded copy of the grad_output rows they need per filter, shared by
    the phases (each at its own offset) and the planes (plane ``j`` takes the taps
    of rows ``f + j * F``, see ``_planes_taps``); each phase of each plane sums
    into its own scratch block, written back into its rows and columns at the end.
    """
    filters = taps.shape[0] // planes
    kernel_h, kernel_w = taps.shape[1], taps.shape[2]
    reach_h = _reach(kernel_h, dilation_h, stride_h)
    reach_w = _reach(kernel_w, dilation_w, stride_w)
    i_min = (first + pad_top) // stride_h
    j_min = pad_left // stride_w
    pitch = (width - 1 + pad_left) // stride_w + 1 - j_min + reach_w - 1
    buf_rows = (stop - 1 + pad_top) // stride_h + 1 - i_min + reach_h - 1
    rows_max = -(-(stop - first) // stride_h)
    phases = stride_h * stride_w
    block = phases * rows_max * pitch
    buf = np.empty(buf_rows * pitch, dtype=gi_flat.dtype)
    scratch = np.zeros(planes * block, dtype=gi_flat.dtype)
    one = np.int64(1)
    for f in range(f_first, f_stop):
        _phase_block(go_flat, go_plane + (f - f_first) * out_h * out_w, out_h, out_w, buf,
                     buf_rows, pitch, i_min - (reach_h - 1), one, j_min - (reach_w - 1), one,
                     np.bool_(True))
        for phase in range(phases):
            row_phase, col_phase = phase // stride_w, phase % stride_w
            i0 = first + (row_phase - first - pad_top) % stride_h
            j0 = (col_phase - pad_left) % stride_w
            if i0 >= stop or j0 >= width or not _phase_has_taps(
                    np.int64(0), kernel_h, kernel_w, row_phase, col_phase, stride_h, stride_w,
                    dilation_h, dilation_w):
                continue
            rows = (stop - 1 - i0) // stride_h + 1
            cols = (width - 1 - j0) // stride_w + 1
            base = ((i0 + pad_top) // stride_h - i_min) * pitch + (j0 + pad_left) // stride_w \
                - j_min
            for j in range(planes):
                _phase_taps(scratch, j * block + phase * rows_max * pitch, buf, base, taps,
                            f + j * filters, row_phase, col_phase, stride_h, stride_w,
                            dilation_h, dilation_w, pitch, reach_h, reach_w, np.bool_(True),
                            (rows - 1) * pitch + cols)
    for phase in range(phases):
        row_phase, col_phase = phase // stride_w, phase % stride_w
        i0 = first + (row_phase - first - pad_top) % stride_h
        j0 = (col_phase - pad_left) % stride_w
        if i0 >= stop or j0 >= width:
            continue
        cols = (width - 1 - j0) // stride_w + 1
        for j in range(planes):
            for r in range((stop - 1 - i0) // stride_h + 1):
                _scatter(gi_flat, d_plane + j * plane_size + (i0 + r * stride_h) * width + j0,
                         stride_w, scratch, j * block + (phase * rows_max + r) * pitch, cols)


@jit.kernel()
def _grad_input_tile(grad_output, go_flat, taps, finite, zero, grad_input, gi_flat, tile,
                     blocks, rows_per_tile, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                     pad_left):
    """Rows [first, stop) of the input-gradient planes of one group of one image."""
    channels, height, width = grad_input.shape[1], grad_input.shape[2], grad_input.shape[3]
    filters, out_h, out_w = grad_output.shape[1], grad_output.shape[2], grad_output.shape[3]
    kernel_h, kernel_w = taps.shape[1], taps.shape[2]
    group_channels = taps.shape[0] // filters
    groups = channels // group_channels
    group_filters = filters // groups
    n, g = tile // blocks // groups, tile // blocks % groups
    f_first, f_stop = g * group_filters, (g + 1) * group_filters
    go_plane = (n * filters + f_first) * out_h * out_w
    plane_size = height * width
    d_plane = (n * channels + g * group_channels) * plane_size  # the group's first
    first = (tile % blocks) * rows_per_tile
    stop = min(first + rows_per_tile, height)
    if stride_h == 1 and stride_w == 1 and out_w == width and group_channels == 1:
        # (Several channels: the edge columns of each would be recomputed over all
        # the group's filters one element at a time; the phase way is faster.)
        top = (kernel_h - 1) * dilation_h - pad_top
        left = (kernel_w - 1) * dilation_w - pad_left
        _zero(gi_flat, d_plane + first * width, (stop - first) * width)
        for f in range(f_first, f_stop):
            _correlate_flat(gi_flat, d_plane, go_flat, go_plane + (f - f_first) * out_h * out_w,
                            out_h, width, first, stop, taps, f, dilation_h, dilation_w, top,
                            left, width)
        _fix_edge_columns(gi_flat, d_plane, go_flat, go_plane, out_h * out_w, out_h, width,
                          width, first, stop, taps, f_first, f_stop, dilation_h, dilation_w, top,
                          left, zero, np.int64(0))
        return
    all_finite = True
    for c in range(group_channels):
        for f in range(f_first, f_stop):
            all_finite = all_finite and finite[c * filters + f]
    if all_finite:
        _grad_input_phases(go_flat, go_plane, out_h, out_w, taps, f_first, f_stop, gi_flat,
                           d_plane, width, first, stop, stride_h, stride_w, dilation_h,
                           dilation_w, pad_top, pad_left, group_channels, plane_size)
    else:
        for c in range(group_channels):
            _grad_input_direct(go_flat, go_plane, out_h, out_w, taps, c * filters + f_first,
                               c * filters + f_stop, gi_flat, d_plane + c * plane_size, width,
                               first, stop, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                               pad_left, zero)


@jit.kernel()
def _grad_input_setup(kernel, grad_input):
    """Tables of the input gradient, shared read-only by its tiles."""
    taps = _planes_taps(kernel, np.bool_(True))
    zero = np.zeros(1, dtype=grad_input.dtype)  # where every element's sum starts
    rows_per_tile = _rows_per_tile(grad_input.shape[2], grad_input.shape[3])
    blocks = -(-grad_input.shape[2] // rows_per_tile)
    return taps, _finite_filters(taps), zero, rows_per_tile, blocks


@jit.kernel(parallel=True)
def grouped_planes_grad_input(grad_output, kernel, grad_input, stride_h, stride_w, dilation_h,
                              dilation_w, pad_top, pad_left):
    """Gradient of :func:`grouped_planes_forward` w.r.t. ``x``, into ``grad_input``."""
    taps, finite, zero, rows_per_tile, blocks = _grad_input_setup(kernel, grad_input)
    go_flat, gi_flat = grad_output.reshape(grad_output.size), grad_input.reshape(grad_input.size)
    for tile in prange(grad_input.shape[0] * (grad_input.shape[1] // kernel.shape[2]) * blocks):
        _grad_input_tile(grad_output, go_flat, taps, finite, zero, grad_input, gi_flat,
                         np.int64(tile), blocks, rows_per_tile, stride_h, stride_w, dilation_h,
                         dilation_w, pad_top, pad_left)


@jit.kernel()
def grouped_planes_grad_input_serial(grad_output, kernel, grad_input, stride_h, stride_w,
                                     dilation_h, dilation_w, pad_top, pad_left):
    """Serial build of :func:`grouped_planes_grad_input`."""
    taps, finite, zero, rows_per_tile, blocks = _grad_input_setup(kernel, grad_input)
    go_flat, gi_flat = grad_output.reshape(grad_output.size), grad_input.reshape(grad_input.size)
    for tile in range(grad_input.shape[0] * (grad_input.shape[1] // kernel.shape[2]) * blocks):
        _grad_input_tile(grad_output, go_flat, taps, finite, zero, grad_input, gi_flat,
                         np.int64(tile), blocks, rows_per_tile, stride_h, stride_w, dilation_h,
                         dilation_w, pad_top, pad_left)


# ---------------------------------------------------------------------------
# Kernel gradient: a tile is one (filter, group channel) pair, or one (pair, kh) with few pairs.
# Each tap (kh, kw) has a buffer of `lanes` elements: a block of output rows
# in some row pitch.  The products x * grad_output of each block are added
# into it elementwise, in block order (images, then rows), one long loop per
# tap.  Flat way: the pitch is the input width and x is read in place.  Phase
# way: the pitch is the output width plus the reach, x is read from phase
# buffers and grad_output from a copy in that pitch.  Lanes whose column is
# not valid for the tap (it falls off a row end, or reads padding) collect
# junk and are left out of the sums.  After at most MAX_PARTIAL_TERMS blocks
# the buffer's rows are added into its first row and the valid columns of
# that row, in order, into a float64 total.  All of this depends on the shapes
# only, so the sums never depend on the tiling or the thread count.


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
        _zero(acc, start, lanes)


@jit.kernel()
def _grad_kernel_tile(x, x_flat, grad_output, go_flat, grad_kernel, pair, kh_first, kh_stop,
                      stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left):
    """Kernel rows [kh_first, kh_stop) of ``grad_kernel[:, :, j, f]``, ``pair = f * Cg + j``:
    filter f's taps on its group's input channel j."""
    batch, channels, height, width = x.shape
    filters, out_h, out_w = grad_output.shape[1], grad_output.shape[2], grad_output.shape[3]
    kernel_h, kernel_w, group_channels = grad_kernel.shape[:3]
    f, j = pair // group_channels, pair % group_channels
    c = f // (filters // (channels // group_channels)) * group_channels + j
    flat = stride_h == 1 and stride_w == 1 and out_w <= width
    reach_h = _reach(kernel_h, dilation_h, stride_h)
    reach_w = _reach(kernel_w, dilation_w, stride_w)
    pitch = width if flat else out_w + reach_w - 1
    rows = max(1, min(out_h, PRODUCT_BLOCK_ELEMENTS // max(pitch, 1)))
    lanes = rows * pitch
    taps = (kh_stop - kh_first) * kernel_w
    acc = np.zeros(taps * lanes, dtype=grad_kernel.dtype)
    totals = np.zeros(taps, dtype=np.float64)
    # grad_output rows in the pitch when it is not out_w (the extra columns
    # stay zero), and the phase buffer of x, whose elements outside the plane
    # are only ever read into lanes that are never summed.
    grad_rows = np.zeros(lanes if pitch != out_w else 0, dtype=grad_kernel.dtype)
    buf = np.zeros(0 if flat else (rows + reach_h - 1) * pitch, dtype=grad_kernel.dtype)
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
            if pitch != out_w:
                for r in range(stop - first):
                    _copy(grad_rows, r * pitch, go_flat, g_plane + (first + r) * out_w, out_w)
                grad, g0 = grad_rows, -first * pitch
            for row_phase in range(1 if flat else stride_h):
                for col_phase in range(1 if flat else stride_w):
                    if not flat and _phase_has_taps(kh_first, kh_stop, kernel_w, row_phase,
                                                    col_phase, stride_h, stride_w, dilation_h,
                                                    dilation_w):
                        _phase_block(x_flat, x_plane, height, width, buf,
                                     stop - first + reach_h - 1, pitch,
                                     first * stride_h + row_phase - pad_top, stride_h,
                                     col_phase - pad_left, stride_w, np.bool_(False))
                    for kh in range(kh_first, kh_stop):
                        if (kh * dilation_h) % stride_h != row_phase and not flat:
                            continue
                        lo_row, hi_row = _tap_columns(stride_h, kh * dilation_h - pad_top,
                                                      height, out_h)
                        lo_row, hi_row = max(lo_row, first), min(hi_row, stop)
                        for kw in range(kernel_w):
                            if (kw * dilation_w) % stride_w != col_phase and not flat:
                                continue
                            if flat:  # x read in place
                                source = x_flat
                                offset = x_plane + (kh * dilation_h - pad_top) * width \
                                    + kw * dilation_w - pad_left
                                lo = max(lo_row * width, x_plane - offset)
                                hi = min(hi_row * width, x_plane + height * width - offset)
                            else:  # from the phase buffer, whose row 0 is output row first
                                source = buf
                                offset = ((kh * dilation_h) // stride_h - first) * pitch \
                                    + (kw * dilation_w) // stride_w
                                lo = lo_row * pitch
                                hi = (hi_row - 1) * pitch + out_w if lo_row < hi_row else lo
                            a0 = ((kh - kh_first) * kernel_w + kw) * lanes - first * pitch
                            _add_products(acc, a0 + lo, source, lo + offset, grad, g0 + lo,
                                          hi - lo)
            terms += 1
            if terms == MAX_PARTIAL_TERMS:
                _flush_products(acc, lanes, rows, pitch, kernel_w, col_first, col_stop, totals)
                terms = 0
    _flush_products(acc, lanes, rows, pitch, kernel_w, col_first, col_stop, totals)
    for kh in range(kh_first, kh_stop):
        for kw in range(kernel_w):
            grad_kernel[kh, kw, j, f] = totals[(kh - kh_first) * kernel_w + kw]


@jit.kernel()
def _kernel_rows_per_tile(grad_kernel):
    """Kernel rows per tile of the kernel gradient: all of them, or one with few
    (filter, channel) pairs."""
    pairs = grad_kernel.shape[2] * grad_kernel.shape[3]
    return grad_kernel.shape[0] if pairs >= FILTER_TILES_MIN else 1


@jit.kernel(parallel=True)
def grouped_planes_grad_kernel(x, grad_output, grad_kernel, stride_h, stride_w, dilation_h,
                               dilation_w, pad_top, pad_left):
    """Gradient of :func:`grouped_planes_forward` w.r.t. ``kernel``, into ``grad_kernel``."""
    kernel_h = grad_kernel.shape[0]
    x_flat, go_flat = x.reshape(x.size), grad_output.reshape(grad_output.size)
    rows = _kernel_rows_per_tile(grad_kernel)
    blocks = -(-kernel_h // rows)
    for tile in prange(grad_kernel.shape[2] * grad_kernel.shape[3] * blocks):
        kh_first = (tile % blocks) * rows
        _grad_kernel_tile(x, x_flat, grad_output, go_flat, grad_kernel, np.int64(tile // blocks),
                          kh_first, min(kh_first + rows, kernel_h), stride_h, stride_w,
                          dilation_h, dilation_w, pad_top, pad_left)


@jit.kernel()
def grouped_planes_grad_kernel_serial(x, grad_output, grad_kernel, stride_h, stride_w,
                                      dilation_h, dilation_w, pad_top, pad_left):
    """Serial build of :func:`grouped_planes_grad_kernel`."""
    kernel_h = grad_kernel.shape[0]
    x_flat, go_flat = x.reshape(x.size), grad_output.reshape(grad_output.size)
    rows = _kernel_rows_per_tile(grad_kernel)
    blocks = -(-kernel_h // rows)
    for tile in range(grad_kernel.shape[2] * grad_kernel.shape[3] * blocks):
        kh_first = (tile % blocks) * rows
        _grad_kernel_tile(x, x_flat, grad_output, go_flat, grad_kernel, np.int64(tile // blocks),
                          kh_first, min(kh_first + rows, kernel_h), stride_h, stride_w,
                          dilation_h, dilation_w, pad_top, pad_left)
