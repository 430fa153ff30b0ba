"""2-D convolution kernels: forward pass and the input, kernel and bias gradients.

All kernels work on one canonical layout and write into an output array the
caller allocates (nothing is returned):

* ``x``, ``out``, ``grad_output``, ``grad_input``: C-contiguous 4-D arrays
  ``(batch, height, width, channels)`` (channels last);
* ``kernel``, ``grad_kernel``: C-contiguous ``(kernel_height, kernel_width,
  in_channels // groups, filters)`` (Keras layout, cross-correlation);
* ``bias``, ``grad_bias``: ``(filters,)``;
* every array float32, or every array float64 (one dtype per call);
* ``stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left``: ints.

Padding is handled by index bounds: ``pad_top`` / ``pad_left`` shift the
windows, and the output height and width (read from ``out`` or
``grad_output``) fix the bottom and right padding.  ``groups`` is implied by
the shapes: ``in_channels // kernel.shape[2]``.

Signatures::

    conv2d_forward(x, kernel, bias, out, stride_h, stride_w,
                   dilation_h, dilation_w, pad_top, pad_left)
    depthwise_conv2d_forward(...same...)          # kernel.shape[2] == 1, groups == in_channels
    conv2d_grad_input(grad_output, kernel, grad_input, stride_h, stride_w,
                      dilation_h, dilation_w, pad_top, pad_left)
    depthwise_conv2d_grad_input(...same...)
    conv2d_grad_kernel(x, grad_output, grad_kernel, stride_h, stride_w,
                       dilation_h, dilation_w, pad_top, pad_left)
    depthwise_conv2d_grad_kernel(...same...)
    conv2d_grad_bias(grad_output, grad_bias)
    few_terms_forward(...same as conv2d_forward...)   # KH * KW * C <= 9, one group
    groups_of_four_forward(...same...)                # 4 channels, 4 filters per group,
                                                      # filters a multiple of 4 * simd.lanes
    few_channels_forward(...same...)                  # one group, no dilation, OW >= 6,
                                                      # filters a multiple of 4 * simd.lanes

Each exists as a ``parallel=True`` build (the names above) and a serial build
(``..._serial``) of the same loops; both give bit-identical results, whatever
the thread count.  The kernels trust their arguments: shapes, dtypes and
layouts are checked by :mod:`numconv.nn`, not here.

From a user's ``@njit(cache=True)`` function, call the ``..._serial`` builds:
a cached serial function calling a parallel one can crash when loaded from
the cache before Numba's threads start (numba/numba#8578).  See docs/design.md.
"""

import numpy as np
from numba import prange

from . import jit, simd

# Upper bound on the number of batch chunks of a kernel or bias gradient, and
# on the elements of their per-chunk partial buffers.  Both depend on nothing
# but the problem's shape, so the summation order never depends on threads.
MAX_REDUCTION_CHUNKS = 64
PARTIAL_BUFFER_ELEMENTS = 1 << 22
# Elements per parallel tile when the partial buffers are added up.
MERGE_BLOCK = 4096


@jit.kernel()
def reduction_chunks(rows, partial_elements):
    """Number of row chunks a cross-batch reduction is split into (shape-only)."""
    chunks = PARTIAL_BUFFER_ELEMENTS // max(partial_elements, 1)
    chunks = min(chunks, MAX_REDUCTION_CHUNKS, rows)
    return max(chunks, 1)


# ---------------------------------------------------------------------------
# Forward pass: one tile is one output row out[n, oh, :, :].  For each output
# pixel, the filters of a group accumulate in a contiguous row; the innermost
# loop runs over those filters, reading kernel[kh, kw, c, :].


@jit.kernel()
def _valid_taps(o, stride, dilation, pad, kernel_size, size):
    """[first, stop) of the taps k whose input o * stride + k * dilation - pad is in [0, size)."""
    start = o * stride - pad
    last = size - 1 - start
    if dilation == 1:  # no integer division on the common path
        first = min(max(-start, 0), kernel_size)
        stop = 0 if last < 0 else min(last + 1, kernel_size)
        return first, max(stop, first)
    first = 0
    if start < 0:
        first = min((-start + dilation - 1) // dilation, kernel_size)
    stop = 0 if last < 0 else min(last // dilation + 1, kernel_size)
    return first, max(stop, first)


@jit.kernel()
def _window_terms(term_x, term_w, kh_first, kh_stop, kw_first, kw_stop, group_channels,
                  dilation_h, dilation_w, width, channels, kernel_w):
    """Fill the (kh, kw, c) terms of a window, in summation order; returns their count.

    term_x: offset of the term's input value from the window's first pixel in the
    flattened image; term_w: the term's row in the kernel seen as (KH*KW*Cg, F).
    """
    count = 0
    for kh in range(kh_first, kh_stop):
        for kw in range(kw_first, kw_stop):
            for c in range(group_channels):
                term_x[count] = (kh * dilation_h * width + kw * dilation_w) * channels + c
                term_w[count] = (kh * kernel_w + kw) * group_channels + c
                count += 1
    return count


@jit.kernel()
def _forward_row(x, weights, bias, out, n, oh, stride_h, stride_w, dilation_h, dilation_w,
                 pad_top, pad_left):
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    kernel_h, kernel_w, group_channels, filters = weights.shape
    out_w = out.shape[2]
    groups = channels // group_channels
    group_filters = filters // groups
    # The terms of a window are a flat list consumed four at a time, so each pass
    # over a pixel's accumulator row adds four products (a quarter of the loads and
    # stores), and four pixels share each kernel row loaded.
    term_x = np.empty(kernel_h * kernel_w * group_channels, dtype=np.int64)
    term_w = np.empty(kernel_h * kernel_w * group_channels, dtype=np.int64)
    x_image = x[n].reshape(height * width * channels)
    w_rows = weights.reshape((kernel_h * kernel_w * group_channels, filters))
    acc = np.empty((4, group_filters), dtype=out.dtype)
    acc0, acc1, acc2, acc3 = acc[0], acc[1], acc[2], acc[3]
    kh_first, kh_stop = _valid_taps(oh, stride_h, dilation_h, pad_top, kernel_h, height)
    row_base = (oh * stride_h + kh_first * dilation_h - pad_top) * width * channels \
        - kh_first * dilation_h * width * channels
    step = stride_w * channels
    for g in range(groups):
        channel0 = g * group_channels
        filter0 = g * group_filters
        terms_kw = (-1, -1)
        terms = 0
        ow = 0
        while ow < out_w:
            kw_first, kw_stop = _valid_taps(ow, stride_w, dilation_w, pad_left, kernel_w, width)
            if (kw_first, kw_stop) != terms_kw:
                terms = _window_terms(term_x, term_w, kh_first, kh_stop, kw_first, kw_stop,
                                      group_channels, dilation_h, dilation_w, width, channels,
                                      kernel_w)
                terms_kw = (kw_first, kw_stop)
            block = 1
            if ow + 3 < out_w:
                if _valid_taps(ow + 3, stride_w, dilation_w, pad_left, kernel_w,
                               width) == terms_kw:
                    block = 4  # the valid taps range shrinks only at the borders
            base = row_base + (ow * stride_w - pad_left) * channels + channel0
            acc0[:] = 0.0
            t = 0
            if block == 4:
                acc1[:] = 0.0
                acc2[:] = 0.0
                acc3[:] = 0.0
                while t + 4 <= terms:
                    w0 = w_rows[term_w[t], filter0:filter0 + group_filters]
                    w1 = w_rows[term_w[t + 1], filter0:filter0 + group_filters]
                    w2 = w_rows[term_w[t + 2], filter0:filter0 + group_filters]
                    w3 = w_rows[term_w[t + 3], filter0:filter0 + group_filters]
                    i0, i1 = base + term_x[t], base + term_x[t + 1]
                    i2, i3 = base + term_x[t + 2], base + term_x[t + 3]
                    a0, a1, a2, a3 = x_image[i0], x_image[i1], x_image[i2], x_image[i3]
                    b0, b1 = x_image[i0 + step], x_image[i1 + step]
                    b2, b3 = x_image[i2 + step], x_image[i3 + step]
                    c0, c1 = x_image[i0 + 2 * step], x_image[i1 + 2 * step]
                    c2, c3 = x_image[i2 + 2 * step], x_image[i3 + 2 * step]
                    d0, d1 = x_image[i0 + 3 * step], x_image[i1 + 3 * step]
                    d2, d3 = x_image[i2 + 3 * step], x_image[i3 + 3 * step]
                    for f in range(group_filters):
                        acc0[f] = acc0[f] + a0 * w0[f] + a1 * w1[f] + a2 * w2[f] + a3 * w3[f]
                        acc1[f] = acc1[f] + b0 * w0[f] + b1 * w1[f] + b2 * w2[f] + b3 * w3[f]
                        acc2[f] = acc2[f] + c0 * w0[f] + c1 * w1[f] + c2 * w2[f] + c3 * w3[f]
                        acc3[f] = acc3[f] + d0 * w0[f] + d1 * w1[f] + d2 * w2[f] + d3 * w3[f]
                    t += 4
                while t < terms:
                    w0 = w_rows[term_w[t], filter0:filter0 + group_filters]
                    i0 = base + term_x[t]
                    a0, b0 = x_image[i0], x_image[i0 + step]
                    c0, d0 = x_image[i0 + 2 * step], x_image[i0 + 3 * step]
                    for f in range(group_filters):
                        acc0[f] = acc0[f] + a0 * w0[f]
                        acc1[f] = acc1[f] + b0 * w0[f]
                        acc2[f] = acc2[f] + c0 * w0[f]
                        acc3[f] = acc3[f] + d0 * w0[f]
                    t += 1
            else:
                while t + 4 <= terms:
                    w0 = w_rows[term_w[t], filter0:filter0 + group_filters]
                    w1 = w_rows[term_w[t + 1], filter0:filter0 + group_filters]
                    w2 = w_rows[term_w[t + 2], filter0:filter0 + group_filters]
                    w3 = w_rows[term_w[t + 3], filter0:filter0 + group_filters]
                    a0, a1 = x_image[base + term_x[t]], x_image[base + term_x[t + 1]]
                    a2, a3 = x_image[base + term_x[t + 2]], x_image[base + term_x[t + 3]]
                    for f in range(group_filters):
                        acc0[f] = acc0[f] + a0 * w0[f] + a1 * w1[f] + a2 * w2[f] + a3 * w3[f]
                    t += 4
                while t < terms:
                    w0 = w_rows[term_w[t], filter0:filter0 + group_filters]
                    a0 = x_image[base + term_x[t]]
                    for f in range(group_filters):
                        acc0[f] = acc0[f] + a0 * w0[f]
                    t += 1
            bias_row = bias[filter0:filter0 + group_filters]
            for p in range(block):
                out_pixel = out[n, oh, ow + p, filter0:filter0 + group_filters]
                acc_p = acc[p]
                for f in range(group_filters):
                    out_pixel[f] = acc_p[f] + bias_row[f]
            ow += block


# Windows of at most nine terms (KH * KW * channels, one group: lenet1's 3x3 on
# one channel).  There _forward_row's passes into its accumulators cost more than
# the products: here each output pixel is one pass of nine products per filter,
# in a vector over the filters, written straight to the output.  The weights are
# rows of one packed array and the input values scalars loaded before the pass,
# so LLVM vectorises it behind a single overlap check (rows gathered through an
# index array would each need a check), and a row's pixels sharing a window run
# in a loop that makes no call.  Float32 lenet1: 0.61 -> 0.44 ms.  (With groups,
# the packing per group and window cost more than it saved.)  The column runs
# and each run's packed weights are built once per tile, not per row: float32
# lenet1 0.58 -> 0.44 ms ('valid'), 1.13 -> 0.65 ms ('same').  Never inline the
# pass through a helper taking out_row[ow]: that doubled the time.
FEW_TERMS = 9
# Output rows per tile: the scratch and the packed window serve all of them.
FEW_TERMS_ROWS_PER_TILE = 8


@jit.kernel()
def _few_terms(weights, channels):
    """Whether the forward pass runs one nine-term pass per pixel (shape-only)."""
    return (weights.shape[2] == channels
            and weights.shape[0] * weights.shape[1] * channels <= FEW_TERMS)


@jit.kernel()
def _pack_few_terms(w_rows, term_w, terms, packed):
    """packed[t, :F] = weight row term_w[t]; zeros from row ``terms`` on and past F."""
    filters = w_rows.shape[1]
    for t in range(FEW_TERMS):
        target = packed[t]
        if t < terms:
            source = w_rows[term_w[t]]
            for f in range(filters):  # (a slice assignment checks for overlap)
                target[f] = source[f]
        else:
            for f in range(filters):
                target[f] = 0.0
        for f in range(filters, target.shape[0]):
            target[f] = 0.0


@jit.kernel()
def _tap_vectors(w, first, filters):
    """Nine weight vectors from element ``first`` of ``w``, ``filters`` elements apart."""
    return (simd.load(w, first), simd.load(w, first + filters),
            simd.load(w, first + 2 * filters), simd.load(w, first + 3 * filters),
            simd.load(w, first + 4 * filters), simd.load(w, first + 5 * filters),
            simd.load(w, first + 6 * filters), simd.load(w, first + 7 * filters),
            simd.load(w, first + 8 * filters))


@jit.kernel()
def _three_by_three(term_x):
    """Whether nine terms are three rows of three consecutive inputs (one channel)."""
    return (term_x[1] == term_x[0] + 1 and term_x[2] == term_x[0] + 2
            and term_x[4] == term_x[3] + 1 and term_x[5] == term_x[3] + 2
            and term_x[7] == term_x[6] + 1 and term_x[8] == term_x[6] + 2)


@jit.kernel()
def _three_by_three_pixels(x, term_x, packed, bias, out, spill, n, oh, ow0, ow1, base0, step):
    """``_few_terms_pixels`` for full windows of three rows of three consecutive inputs.

    Filters go in blocks of two vectors whose eighteen weight vectors stay in
    registers across the pixels of the run: a loop over the filters reloads
    them for every pixel and is bound by those loads (float32 lenet1, one
    thread: 0.68 -> 0.27 ms).  ``packed`` and ``bias`` are zero-padded to whole
    blocks; a last block wider than the filters left goes through ``spill``.
    Inputs are read as three row offsets plus constants (nine offsets in
    registers crowd out the rest), and ``x`` and ``out`` by flat indices: a view
    per row costs two atomic reference counts.  Each sum runs in tap order,
    one rounding per product and sum, then the bias.
    """
    filters, padded_filters = out.shape[3], packed.shape[1]
    lanes = simd.lanes(out)
    zero = simd.splat(out, 0.0)
    one, two = np.uint64(1), np.uint64(2)
    # Every term is inside the image: unsigned indices skip Numba's negative-index
    # wraparound, a compare and a select per load.
    image = np.uint64(n * x.shape[1] * x.shape[2] * x.shape[3] + base0)
    rows = (np.uint64(term_x[0]), np.uint64(term_x[3]), np.uint64(term_x[6]))
    out_first = (n * out.shape[1] + oh) * out.shape[2] * filters
    for f0 in range(0, filters, 2 * lanes):
        w_a = _tap_vectors(packed, f0, padded_filters)
        w_b = _tap_vectors(packed, f0 + lanes, padded_filters)
        bias_a, bias_b = simd.load(bias, f0), simd.load(bias, f0 + lanes)
        for ow in range(ow0, ow1):
            base = image + np.uint64(ow * step)
            sum_a, sum_b = zero, zero
            for kh in range(3):  # unrolled by LLVM: constant trip count
                p = base + rows[kh]
                value = simd.broadcast(x, p)
                sum_a = simd.fma(value, w_a[3 * kh], sum_a)
                sum_b = simd.fma(value, w_b[3 * kh], sum_b)
                value = simd.broadcast(x, p + one)
                sum_a = simd.fma(value, w_a[3 * kh + 1], sum_a)
                sum_b = simd.fma(value, w_b[3 * kh + 1], sum_b)
                value = simd.broadcast(x, p + two)
                sum_a = simd.fma(value, w_a[3 * kh + 2], sum_a)
                sum_b = simd.fma(value, w_b[3 * kh + 2], sum_b)
            first = out_first + ow * filters + f0
            if f0 + 2 * lanes <= filters:
                simd.store(out, first, simd.add(sum_a, bias_a))
                simd.store(out, first + lanes, simd.add(sum_b, bias_b))
            else:
                simd.store(spill, 0, simd.add(sum_a, bias_a))
                simd.store(spill, lanes, simd.add(sum_b, bias_b))
                for f in range(filters - f0):
                    out[n, oh, ow, f0 + f] = spill[f]


@jit.kernel()
def _few_terms_pixels(x_image, term_x, terms, packed, values, bias, out_row, ow0, ow1, base0,
                      step):
    """Output pixels [ow0, ow1) of a row whose windows share one list of terms.

    A missing term is 0.0 (``values`` is zeroed past ``terms``) times a zero
    weight row, never a read input, which could be inf.
    """
    w = packed
    filters = out_row.shape[1]
    if terms == FEW_TERMS:
        # Every term is inside the image, so every index is >= 0: as unsigned
        # indices they skip Numba's negative-index wraparound, a compare and a
        # select per load (float32 lenet1 forward 0.42 -> 0.34 ms).
        t0, t1, t2, t3, t4 = term_x[0], term_x[1], term_x[2], term_x[3], term_x[4]
        t5, t6, t7, t8 = term_x[5], term_x[6], term_x[7], term_x[8]
        for ow in range(ow0, ow1):
            base = base0 + ow * step
            a0, a1 = x_image[np.uint64(base + t0)], x_image[np.uint64(base + t1)]
            a2, a3 = x_image[np.uint64(base + t2)], x_image[np.uint64(base + t3)]
            a4, a5 = x_image[np.uint64(base + t4)], x_image[np.uint64(base + t5)]
            a6, a7 = x_image[np.uint64(base + t6)], x_image[np.uint64(base + t7)]
            a8 = x_image[np.uint64(base + t8)]
            out_pixel = out_row[ow]
            for f in range(filters):
                out_pixel[f] = (a0 * w[0, f] + a1 * w[1, f] + a2 * w[2, f] + a3 * w[3, f]
                                + a4 * w[4, f] + a5 * w[5, f] + a6 * w[6, f] + a7 * w[7, f]
                                + a8 * w[8, f]) + bias[f]  # the bias after the sum, as bias_add
        return
    for t in range(terms, FEW_TERMS):
        values[t] = 0.0
    for ow in range(ow0, ow1):
        base = base0 + ow * step
        for t in range(terms):
            values[t] = x_image[base + term_x[t]]
        a0, a1, a2, a3, a4 = values[0], values[1], values[2], values[3], values[4]
        a5, a6, a7, a8 = values[5], values[6], values[7], values[8]
        out_pixel = out_row[ow]
        for f in range(filters):
            out_pixel[f] = (a0 * w[0, f] + a1 * w[1, f] + a2 * w[2, f] + a3 * w[3, f]
                            + a4 * w[4, f] + a5 * w[5, f] + a6 * w[6, f] + a7 * w[7, f]
                            + a8 * w[8, f]) + bias[f]


@jit.kernel()
def _column_runs(out_w, stride_w, dilation_w, pad_left, kernel_w, width):
    """Runs of output columns whose windows keep the same kw taps inside the image.

    Row r: (ow0, ow1, kw_first, kw_stop).  A few runs at each border, and the
    interior; the same for every output row.
    """
    runs = np.empty((out_w, 4), dtype=np.int64)
    count = 0
    ow0 = 0
    while ow0 < out_w:
        kw_first, kw_stop = _valid_taps(ow0, stride_w, dilation_w, pad_left, kernel_w, width)
        ow1 = ow0 + 1
        while ow1 < out_w and _valid_taps(ow1, stride_w, dilation_w, pad_left, kernel_w,
                                          width) == (kw_first, kw_stop):
            ow1 += 1
        runs[count, 0], runs[count, 1] = ow0, ow1
        runs[count, 2], runs[count, 3] = kw_first, kw_stop
        count += 1
        ow0 = ow1
    return runs[:count]


@jit.kernel()
def _forward_few_terms_tile(x, weights, bias, out, tile, stride_h, stride_w, dilation_h,
                            dilation_w, pad_top, pad_left, spill):
    """Output rows [tile * FEW_TERMS_ROWS_PER_TILE, ...) (batch-major) when _few_terms.

    ``spill``: None, or scratch of one block of filters for _three_by_three_pixels.
    With None, Numba prunes that branch: conv2d_forward never compiles the blocks
    (2-3 s of a cold compile), only few_terms_forward does.
    """
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    kernel_h, kernel_w, filters = weights.shape[0], weights.shape[1], weights.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    w_rows = weights.reshape((kernel_h * kernel_w * channels, filters))
    runs = _column_runs(out_w, stride_w, dilation_w, pad_left, kernel_w, width)
    # Each run's terms and packed weights, rebuilt only when the kh range changes
    # (at the top and bottom borders): with 'same' padding a row has three runs,
    # and packing them for every row cost more than the row's products.
    run_terms = np.empty(runs.shape[0], dtype=np.int64)
    term_x = np.empty((runs.shape[0], FEW_TERMS), dtype=np.int64)
    term_w = np.empty(FEW_TERMS, dtype=np.int64)
    # Filters padded to whole blocks of two vectors for _three_by_three_pixels.
    block = 1 if spill is None else spill.shape[0]
    padded_filters = (filters + block - 1) // block * block
    packed = np.empty((runs.shape[0], FEW_TERMS, padded_filters), dtype=out.dtype)
    padded_bias = np.zeros(padded_filters, dtype=out.dtype)
    for f in range(filters):
        padded_bias[f] = bias[f]
    values = np.empty(FEW_TERMS, dtype=out.dtype)
    packed_for = (-1, -1)  # (kh_first, kh_stop)
    row0 = tile * FEW_TERMS_ROWS_PER_TILE
    for row in range(row0, min(out.shape[0] * out_h, row0 + FEW_TERMS_ROWS_PER_TILE)):
        n, oh = row // out_h, row % out_h
        kh_first, kh_stop = _valid_taps(oh, stride_h, dilation_h, pad_top, kernel_h, height)
        row_base = (oh * stride_h + kh_first * dilation_h - pad_top) * width * channels \
            - kh_first * dilation_h * width * channels
        if packed_for != (kh_first, kh_stop):
            for r in range(runs.shape[0]):
                run_terms[r] = _window_terms(term_x[r], term_w, kh_first, kh_stop, runs[r, 2],
                                             runs[r, 3], channels, dilation_h, dilation_w,
                                             width, channels, kernel_w)
                _pack_few_terms(w_rows, term_w, run_terms[r], packed[r])
            packed_for = (kh_first, kh_stop)
        base0, step = row_base - pad_left * channels, stride_w * channels
        for r in range(runs.shape[0]):
            if spill is not None:
                if run_terms[r] == FEW_TERMS and _three_by_three(term_x[r]):
                    _three_by_three_pixels(x, term_x[r], packed[r], padded_bias, out, spill, n,
                                           oh, runs[r, 0], runs[r, 1], base0, step)
                    continue
            _few_terms_pixels(x[n].reshape(height * width * channels), term_x[r], run_terms[r],
                              packed[r], values, bias, out[n, oh], runs[r, 0], runs[r, 1], base0,
                              step)


# Groups with few filters each (grouped32: 4 channels and 4 filters per group) give
# vectors of a few filters, which LLVM leaves scalar.  These paths vectorise across
# all groups instead:
# * forward: over the input channels of all groups, one pass per filter of a group
#   (weights copied to _weights_by_channels), then each group's channel sums;
# * input gradient: over the filters of all groups (_grad_input_row_by_filters);
# * kernel gradient: over the filters of all groups.  Filter f reads input channel
#   (f // group_filters) * group_channels + c, so input rows are first copied
#   expanded: expanded[iw, c, f] = x[n, ih, iw, (f // group_filters) * group_channels + c],
#   into a ring shared by the rows of a chunk: each input row is expanded about once.
# Above this many elements of expanded rows per tile, the per-group loops are used.
EXPANDED_ELEMENTS = 1 << 20
# The kernel gradient's per-group vectors pay from this many filters per group on
# (and the across-groups paths need at least this many channels).
FEW_GROUP_FILTERS = 8
# The forward pass and the input gradient vectorise across groups below this many
# filters (and channels) per group: per-group vectors of 8-32 filters were 2-4x
# slower (float32, 28x28x128, 3x3: 8 per group 9.6 -> 2.4 ms forward, 14.9 -> 2.5
# input gradient; 16: 11.9 -> 4.4, 15.0 -> 4.4; 32: 13.0 -> 7.3, 15.1 -> 7.6).
ACROSS_GROUPS_FILTERS = 64


@jit.kernel()
def _ring_slots(kernel_h, dilation_h):
    """Expanded rows kept per tile: the kernel rows of one output row never share a slot."""
    return (kernel_h - 1) * dilation_h + 1


@jit.kernel()
def _across_groups(weights, channels, width, dilation_h):
    """Whether the kernel gradient is vectorised across groups (shape-only)."""
    kernel_h, group_channels, filters = weights.shape[0], weights.shape[2], weights.shape[3]
    groups = channels // group_channels
    if groups == 1 or filters // groups >= FEW_GROUP_FILTERS or filters < FEW_GROUP_FILTERS:
        return False
    slots = _ring_slots(kernel_h, dilation_h)
    return slots * width * group_channels * filters <= EXPANDED_ELEMENTS


@jit.kernel()
def _expanded_sources(group_channels, filters, groups):
    """sources[c, f]: the input channel filter f reads as its group's channel c."""
    group_filters = filters // groups
    sources = np.empty((group_channels, filters), dtype=np.int64)
    for c in range(group_channels):
        for f in range(filters):
            sources[c, f] = (f // group_filters) * group_channels + c
    return sources


@jit.kernel()
def _expand_row(x_row, sources, expanded):
    """expanded[iw, c, f] = x_row[iw, sources[c, f]] for a (width, channels) input row."""
    for iw in range(x_row.shape[0]):
        pixel = x_row[iw]
        for c in range(sources.shape[0]):
            source_row = sources[c]
            target = expanded[iw, c]
            for f in range(source_row.shape[0]):
                target[f] = pixel[source_row[f]]


@jit.kernel()
def _ring_rows(x, sources, ring, ring_tags, ring_of_kh, n, oh, stride_h, dilation_h, pad_top):
    """Expand the input rows output row (n, oh) reads into the ring; returns its kh range.

    ring_of_kh[kh] is set to the slot holding kernel row kh's input row.
    """
    height = x.shape[1]
    kernel_h = ring_of_kh.shape[0]
    slots = ring.shape[0]
    kh_first, kh_stop = _valid_taps(oh, stride_h, dilation_h, pad_top, kernel_h, height)
    for kh in range(kh_first, kh_stop):
        ih = oh * stride_h + kh * dilation_h - pad_top
        slot = ih % slots
        if ring_tags[slot] != n * height + ih:
            _expand_row(x[n, ih], sources, ring[slot])
            ring_tags[slot] = n * height + ih
        ring_of_kh[kh] = slot
    return kh_first, kh_stop


@jit.kernel()
def _few_group_filters(weights, channels):
    """Whether the forward pass is vectorised over input channels of all groups (shape-only)."""
    groups = channels // weights.shape[2]
    return (groups > 1 and weights.shape[3] // groups < ACROSS_GROUPS_FILTERS
            and channels >= FEW_GROUP_FILTERS)


@jit.kernel()
def _weights_by_channels(weights, groups):
    """Copy (KH, KW, group_filters, channels): [kh, kw, j, g*Cg+c] = weights[kh, kw, c, g*Fg+j]."""
    kernel_h, kernel_w, group_channels, filters = weights.shape
    group_filters = filters // groups
    by_channels = np.empty((kernel_h, kernel_w, group_filters, groups * group_channels),
                           dtype=weights.dtype)
    for kh in range(kernel_h):
        for kw in range(kernel_w):
            for j in range(group_filters):
                for g in range(groups):
                    for c in range(group_channels):
                        by_channels[kh, kw, j, g * group_channels + c] = \
                            weights[kh, kw, c, g * group_filters + j]
    return by_channels


@jit.kernel()
def _forward_row_by_channels(x, weights_c, bias, out, n, oh, stride_h, stride_w, dilation_h,
                             dilation_w, pad_top, pad_left):
    """``_forward_row`` for few filters per group: vectorised over the input channels.

    weights_c: ``_weights_by_channels(kernel, groups)``.  For each filter j of every
    group, the products of each input channel are summed over the taps (four taps
    per pass, in a vector over all channels), then each group's channel sums are
    added in channel order, then the bias.
    """
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    kernel_h, kernel_w, group_filters = weights_c.shape[0], weights_c.shape[1], weights_c.shape[2]
    out_w, filters = out.shape[2], out.shape[3]
    groups = filters // group_filters
    group_channels = channels // groups
    x_image = x[n].reshape(height * width * channels)
    w_taps = weights_c.reshape((kernel_h * kernel_w, group_filters, channels))
    taps = np.empty(kernel_h * kernel_w, dtype=np.int64)
    starts = np.empty(kernel_h * kernel_w, dtype=np.int64)
    partial = np.empty(channels, dtype=out.dtype)
    totals = np.empty(groups, dtype=out.dtype)
    kh_first, kh_stop = _valid_taps(oh, stride_h, dilation_h, pad_top, kernel_h, height)
    terms_kw = (-1, -1)
    terms = 0
    for ow in range(out_w):
        kw_first, kw_stop = _valid_taps(ow, stride_w, dilation_w, pad_left, kernel_w, width)
        if (kw_first, kw_stop) != terms_kw:
            terms = 0
            for kh in range(kh_first, kh_stop):
                for kw in range(kw_first, kw_stop):
                    taps[terms] = kh * kernel_w + kw
                    starts[terms] = (kh * dilation_h * width + kw * dilation_w) * channels
                    terms += 1
            terms_kw = (kw_first, kw_stop)
        base = ((oh * stride_h - pad_top) * width + ow * stride_w - pad_left) * channels
        out_pixel = out[n, oh, ow]
        for j in range(group_filters):
            acc = partial
            acc[:] = 0.0
            t = 0
            while t + 4 <= terms:
                i0, i1 = base + starts[t], base + starts[t + 1]
                i2, i3 = base + starts[t + 2], base + starts[t + 3]
                x0, x1 = x_image[i0:i0 + channels], x_image[i1:i1 + channels]
                x2, x3 = x_image[i2:i2 + channels], x_image[i3:i3 + channels]
                w0, w1 = w_taps[taps[t], j], w_taps[taps[t + 1], j]
                w2, w3 = w_taps[taps[t + 2], j], w_taps[taps[t + 3], j]
                for k in range(channels):
                    acc[k] = acc[k] + x0[k] * w0[k] + x1[k] * w1[k] + x2[k] * w2[k] \
                        + x3[k] * w3[k]
                t += 4
            while t < terms:
                i0 = base + starts[t]
                x0 = x_image[i0:i0 + channels]
                w0 = w_taps[taps[t], j]
                for k in range(channels):
                    acc[k] = acc[k] + x0[k] * w0[k]
                t += 1
            # Each group's channel sums in channel order; the groups innermost.
            for g in range(groups):
                totals[g] = acc[g * group_channels]
            for c in range(1, group_channels):
                for g in range(groups):
                    totals[g] += acc[g * group_channels + c]
            for g in range(groups):
                out_pixel[g * group_filters + j] = totals[g] + bias[g * group_filters + j]


# Few filters per group and unit horizontal stride: vectorised over output pixels.
# The input is first copied zero-padded and transposed to (rows, C, N, cols), so for
# one output row, the pixels of a chunk of images lie at one stride (cols) in a
# contiguous segment of each (input row, channel): every tap of a filter is one long
# vector loop (four channels per pass) over that segment, whose lanes between the
# images (cols - out_w per image) are computed and dropped.  Padding is arithmetic on
# written zeros, as in the padded definition of the convolution (0 * inf gives nan
# there, as in nn.conv2d).
# Above this many elements of the padded copy, the by-channels loops are used.
PADDED_COPY_ELEMENTS = 1 << 24
# Bound on the elements of a tile's accumulators (filters x lanes): L2-resident.
PIXEL_TILE_ELEMENTS = 1 << 15
# A tile's lanes are rounded up to a multiple of this (one 512-bit vector of
# float32), so the vector loops run no remainder: a scalar tail of up to 15 lanes
# cost as much as the vector body (grouped32: 238 lanes, 25.7 -> 21 cycles per 16).
# The lanes past the tile's own are computed and dropped; the padded copy ends
# with as many spare elements, so the last plane's reads stay inside it.
PIXEL_LANES_MULTIPLE = 16


@jit.kernel()
def _padded_geometry(weights, out, stride_h, dilation_h, dilation_w):
    """(rows, cols, images per tile) of the transposed padded input copy (shape-only)."""
    out_h, out_w, filters = out.shape[1], out.shape[2], out.shape[3]
    rows = (out_h - 1) * stride_h + (weights.shape[0] - 1) * dilation_h + 1
    cols = out_w + (weights.shape[1] - 1) * dilation_w
    images = max(1, min(out.shape[0], PIXEL_TILE_ELEMENTS // (filters * cols)))
    return rows, cols, images


@jit.kernel()
def _by_pixels(x, weights, out, stride_w, stride_h, dilation_h, dilation_w):
    """Whether the forward pass is vectorised over output pixels (shape-only)."""
    if stride_w != 1 or not _few_group_filters(weights, x.shape[3]):
        return False
    rows, cols, _ = _padded_geometry(weights, out, stride_h, dilation_h, dilation_w)
    return x.shape[0] * rows * cols * x.shape[3] <= PADDED_COPY_ELEMENTS


@jit.kernel()
def _pad_transposed_row(x, padded, row, pad_top, pad_left):
    """padded[row, c, n, q] = x[n, row - pad_top, q - pad_left, c], zero outside the image."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    cols = padded.shape[3]
    target = padded[row]
    ih = row - pad_top
    target[:, :, :] = 0.0
    if ih < 0 or ih >= height:
        return
    iw_first = max(0, -pad_left)
    iw_stop = min(width, cols - pad_left)
    for n in range(x.shape[0]):
        source = x[n, ih]
        for iw in range(iw_first, iw_stop):
            pixel = source[iw]
            q = iw + pad_left
            for c in range(channels):
                target[c, n, q] = pixel[c]


@jit.kernel()
def _pixel_lanes(images, cols, kernel_w, dilation_w):
    """Lanes a tile computes: its images' segment less the last taps' reach, rounded up."""
    lanes = images * cols - (kernel_w - 1) * dilation_w
    return (lanes + PIXEL_LANES_MULTIPLE - 1) // PIXEL_LANES_MULTIPLE * PIXEL_LANES_MULTIPLE


@jit.kernel()
def _padded_copy(x, rows, cols):
    """(flat buffer, its (rows, C, N, cols) view) of the padded copy, spare lanes zeroed."""
    size = rows * x.shape[3] * x.shape[0] * cols
    flat = np.empty(size + PIXEL_LANES_MULTIPLE, dtype=x.dtype)
    flat[size:] = 0.0
    return flat, flat[:size].reshape((rows, x.shape[3], x.shape[0], cols))


@jit.kernel()
def _forward_rows_by_pixels(flat, padded, weights, bias, out, oh, n0, images, stride_h,
                            dilation_h, dilation_w):
    """Output row oh of images [n0, n0 + images), vectorised over their pixels.

    ``padded`` is the (rows, C, N, cols) view of ``flat``, whose spare elements
    past it take the reads of the rounded lanes.
    """
    kernel_h, kernel_w, group_channels, filters = weights.shape
    channels, batch, cols = padded.shape[1], padded.shape[2], padded.shape[3]
    groups = channels // group_channels
    group_filters = filters // groups
    out_w = out.shape[2]
    # Lanes k of the segment starting at image n0; lane k reads k + kw * dilation_w.
    lanes = _pixel_lanes(images, cols, kernel_w, dilation_w)
    reach = lanes + (kernel_w - 1) * dilation_w
    acc = np.empty((filters, lanes), dtype=out.dtype)
    row0 = oh * stride_h
    plane_size = batch * cols
    start = n0 * cols
    for f in range(filters):
        channel0 = (f // group_filters) * group_channels
        acc_f = acc[f]
        acc_f[:] = 0.0
        for kh in range(kernel_h):
            segment0 = ((row0 + kh * dilation_h) * channels + channel0) * plane_size + start
            if kernel_w == 3 and dilation_w == 1 and group_channels % 4 == 0:
                # The three taps of a kernel row in one pass: twelve products per
                # accumulator load and store (constant offsets: with a variable
                # dilation LLVM leaves this loop scalar), summed as three chains of
                # four, one per tap, so that the chains' latencies overlap.
                w_row = weights[kh]
                for c in range(0, group_channels, 4):
                    segment = segment0 + c * plane_size
                    x0 = flat[segment:segment + reach]
                    x1 = flat[segment + plane_size:segment + plane_size + reach]
                    x2 = flat[segment + 2 * plane_size:segment + 2 * plane_size + reach]
                    x3 = flat[segment + 3 * plane_size:segment + 3 * plane_size + reach]
                    w00, w01, w02 = w_row[0, c, f], w_row[1, c, f], w_row[2, c, f]
                    w10, w11, w12 = w_row[0, c + 1, f], w_row[1, c + 1, f], w_row[2, c + 1, f]
                    w20, w21, w22 = w_row[0, c + 2, f], w_row[1, c + 2, f], w_row[2, c + 2, f]
                    w30, w31, w32 = w_row[0, c + 3, f], w_row[1, c + 3, f], w_row[2, c + 3, f]
                    for k in range(lanes):
                        tap0 = x0[k] * w00 + x1[k] * w10 + x2[k] * w20 + x3[k] * w30
                        tap1 = x0[k + 1] * w01 + x1[k + 1] * w11 + x2[k + 1] * w21 \
                            + x3[k + 1] * w31
                        tap2 = x0[k + 2] * w02 + x1[k + 2] * w12 + x2[k + 2] * w22 \
                            + x3[k + 2] * w32
                        acc_f[k] = acc_f[k] + (tap0 + tap1 + tap2)
                continue
            for kw in range(kernel_w):
                q = segment0 + kw * dilation_w
                w_tap = weights[kh, kw]
                c = 0
                while c + 4 <= group_channels:
                    segment = q + c * plane_size
                    x0 = flat[segment:segment + lanes]
                    x1 = flat[segment + plane_size:segment + plane_size + lanes]
                    x2 = flat[segment + 2 * plane_size:segment + 2 * plane_size + lanes]
                    x3 = flat[segment + 3 * plane_size:segment + 3 * plane_size + lanes]
                    w0, w1 = w_tap[c, f], w_tap[c + 1, f]
                    w2, w3 = w_tap[c + 2, f], w_tap[c + 3, f]
                    for k in range(lanes):
                        acc_f[k] = acc_f[k] + x0[k] * w0 + x1[k] * w1 + x2[k] * w2 \
                            + x3[k] * w3
                    c += 4
                while c < group_channels:
                    segment = q + c * plane_size
                    x0 = flat[segment:segment + lanes]
                    w0 = w_tap[c, f]
                    for k in range(lanes):
                        acc_f[k] = acc_f[k] + x0[k] * w0
                    c += 1
    for i in range(images):
        for ow in range(out_w):
            out_pixel = out[n0 + i, oh, ow]
            k = i * cols + ow
            for f in range(filters):
                out_pixel[f] = acc[f, k] + bias[f]


@jit.kernel()
def _depthwise_forward_row(x, weights, bias, out, n, oh, stride_h, stride_w, dilation_h,
                           dilation_w, pad_top, pad_left):
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    kernel_h, kernel_w, filters = weights.shape[0], weights.shape[1], weights.shape[3]
    multiplier = filters // channels
    out_w = out.shape[2]
    kh_first, kh_stop = _valid_taps(oh, stride_h, dilation_h, pad_top, kernel_h, height)
    if multiplier == 1:
        # Channel c reads channel c: four taps per pass over the output pixel's row.
        x_image = x[n].reshape(height * width * channels)
        w_taps = weights.reshape((kernel_h * kernel_w, channels))
        term_x = np.empty(kernel_h * kernel_w, dtype=np.int64)
        term_w = np.empty(kernel_h * kernel_w, dtype=np.int64)
        terms = _window_terms(term_x, term_w, kh_first, kh_stop, 0, 0, 1, dilation_h,
                              dilation_w, width, channels, kernel_w)
        terms_kw = (-1, -1)
        for ow in range(out_w):
            kw_first, kw_stop = _valid_taps(ow, stride_w, dilation_w, pad_left, kernel_w, width)
            if (kw_first, kw_stop) != terms_kw:
                terms = _window_terms(term_x, term_w, kh_first, kh_stop, kw_first, kw_stop, 1,
                                      dilation_h, dilation_w, width, channels, kernel_w)
                terms_kw = (kw_first, kw_stop)
            base = ((oh * stride_h - pad_top) * width + ow * stride_w - pad_left) * channels
            acc = out[n, oh, ow]
            acc[:] = 0.0
            t = 0
            while t + 4 <= terms:
                x0 = x_image[base + term_x[t]:base + term_x[t] + channels]
                x1 = x_image[base + term_x[t + 1]:base + term_x[t + 1] + channels]
                x2 = x_image[base + term_x[t + 2]:base + term_x[t + 2] + channels]
                x3 = x_image[base + term_x[t + 3]:base + term_x[t + 3] + channels]
                w0, w1 = w_taps[term_w[t]], w_taps[term_w[t + 1]]
                w2, w3 = w_taps[term_w[t + 2]], w_taps[term_w[t + 3]]
                for c in range(channels):
                    acc[c] = acc[c] + x0[c] * w0[c] + x1[c] * w1[c] + x2[c] * w2[c] \
                        + x3[c] * w3[c]
                t += 4
            while t < terms:
                x0 = x_image[base + term_x[t]:base + term_x[t] + channels]
                w0 = w_taps[term_w[t]]
                for c in range(channels):
                    acc[c] = acc[c] + x0[c] * w0[c]
                t += 1
            for c in range(channels):
                acc[c] = acc[c] + bias[c]
        return
    acc = np.empty(filters, dtype=out.dtype)
    for ow in range(out_w):
        acc[:] = 0.0
        for kh in range(kh_first, kh_stop):
            ih = oh * stride_h + kh * dilation_h - pad_top
            for kw in range(kernel_w):
                iw = ow * stride_w + kw * dilation_w - pad_left
                if iw < 0 or iw >= width:
                    continue
                x_pixel = x[n, ih, iw]
                weight_row = weights[kh, kw, 0]
                for c in range(channels):
                    value = x_pixel[c]
                    for j in range(multiplier):
                        acc[c * multiplier + j] += value * weight_row[c * multiplier + j]
        out_pixel = out[n, oh, ow]
        for f in range(filters):
            out_pixel[f] = acc[f] + bias[f]


@jit.kernel(parallel=True)
def _forward_by_pixels(x, weights, bias, out, stride_h, dilation_h, dilation_w, pad_top,
                       pad_left):
    """Forward pass vectorised over output pixels (see _forward_rows_by_pixels), in parallel.

    Copies ``x`` zero-padded and transposed to (rows, C, N, cols), then computes
    tiles of (output row, chunk of images).  Used by the forward pass and, with
    the flipped kernel over grad_output, by the input gradient.
    """
    rows, cols, images = _padded_geometry(weights, out, stride_h, dilation_h, dilation_w)
    batch = x.shape[0]
    flat, padded = _padded_copy(x, rows, cols)
    for row in prange(rows):
        _pad_transposed_row(x, padded, row, pad_top, pad_left)
    chunks = (batch + images - 1) // images
    for tile in prange(out.shape[1] * chunks):
        n0 = (tile % chunks) * images
        _forward_rows_by_pixels(flat, padded, weights, bias, out, tile // chunks, n0,
                                min(images, batch - n0), stride_h, dilation_h, dilation_w)


@jit.kernel()
def _forward_by_pixels_serial(x, weights, bias, out, stride_h, dilation_h, dilation_w, pad_top,
                              pad_left):
    """Serial build of :func:`_forward_by_pixels` (same tiles, same sums)."""
    rows, cols, images = _padded_geometry(weights, out, stride_h, dilation_h, dilation_w)
    batch = x.shape[0]
    flat, padded = _padded_copy(x, rows, cols)
    for row in range(rows):
        _pad_transposed_row(x, padded, row, pad_top, pad_left)
    chunks = (batch + images - 1) // images
    for tile in range(out.shape[1] * chunks):
        n0 = (tile % chunks) * images
        _forward_rows_by_pixels(flat, padded, weights, bias, out, tile // chunks, n0,
                                min(images, batch - n0), stride_h, dilation_h, dilation_w)


@jit.kernel(parallel=True)
def conv2d_forward(x, kernel, bias, out, stride_h, stride_w, dilation_h, dilation_w,
                   pad_top, pad_left):
    """Grouped 2-D cross-correlation plus bias, written into ``out`` (N, OH, OW, F)."""
    out_h = out.shape[1]
    if _by_pixels(x, kernel, out, stride_w, stride_h, dilation_h, dilation_w):
        _forward_by_pixels(x, kernel, bias, out, stride_h, dilation_h, dilation_w, pad_top,
                           pad_left)
        return
    if _few_group_filters(kernel, x.shape[3]):
        weights_c = _weights_by_channels(kernel, x.shape[3] // kernel.shape[2])
        for tile in prange(out.shape[0] * out_h):
            _forward_row_by_channels(x, weights_c, bias, out, tile // out_h, tile % out_h,
                                     stride_h, stride_w, dilation_h, dilation_w, pad_top,
                                     pad_left)
        return
    if _few_terms(kernel, x.shape[3]):
        tiles = (out.shape[0] * out_h + FEW_TERMS_ROWS_PER_TILE - 1) // FEW_TERMS_ROWS_PER_TILE
        for tile in prange(tiles):
            _forward_few_terms_tile(x, kernel, bias, out, tile, stride_h, stride_w, dilation_h,
                                    dilation_w, pad_top, pad_left, None)
        return
    for tile in prange(out.shape[0] * out_h):
        _forward_row(x, kernel, bias, out, tile // out_h, tile % out_h, stride_h, stride_w,
                     dilation_h, dilation_w, pad_top, pad_left)


@jit.kernel()
def conv2d_forward_serial(x, kernel, bias, out, stride_h, stride_w, dilation_h, dilation_w,
                          pad_top, pad_left):
    """Serial build of :func:`conv2d_forward`."""
    out_h = out.shape[1]
    if _by_pixels(x, kernel, out, stride_w, stride_h, dilation_h, dilation_w):
        _forward_by_pixels_serial(x, kernel, bias, out, stride_h, dilation_h, dilation_w,
                                  pad_top, pad_left)
        return
    if _few_group_filters(kernel, x.shape[3]):
        weights_c = _weights_by_channels(kernel, x.shape[3] // kernel.shape[2])
        for tile in range(out.shape[0] * out_h):
            _forward_row_by_channels(x, weights_c, bias, out, tile // out_h, tile % out_h,
                                     stride_h, stride_w, dilation_h, dilation_w, pad_top,
                                     pad_left)
        return
    if _few_terms(kernel, x.shape[3]):
        tiles = (out.shape[0] * out_h + FEW_TERMS_ROWS_PER_TILE - 1) // FEW_TERMS_ROWS_PER_TILE
        for tile in range(tiles):
            _forward_few_terms_tile(x, kernel, bias, out, tile, stride_h, stride_w, dilation_h,
                                    dilation_w, pad_top, pad_left, None)
        return
    for tile in range(out.shape[0] * out_h):
        _forward_row(x, kernel, bias, out, tile // out_h, tile % out_h, stride_h, stride_w,
                     dilation_h, dilation_w, pad_top, pad_left)


@jit.kernel(parallel=True)
def few_terms_forward(x, kernel, bias, out, stride_h, stride_w, dilation_h, dilation_w,
                      pad_top, pad_left):
    """:func:`conv2d_forward` for windows of at most nine terms (``_few_terms``), with the
    full 3x3 one-channel windows in register blocks (_three_by_three_pixels)."""
    tiles = (out.shape[0] * out.shape[1] + FEW_TERMS_ROWS_PER_TILE - 1) \
        // FEW_TERMS_ROWS_PER_TILE
    for tile in prange(tiles):
        _forward_few_terms_tile(x, kernel, bias, out, tile, stride_h, stride_w, dilation_h,
                                dilation_w, pad_top, pad_left,
                                np.empty(2 * simd.lanes(out), dtype=out.dtype))


@jit.kernel()
def few_terms_forward_serial(x, kernel, bias, out, stride_h, stride_w, dilation_h, dilation_w,
                             pad_top, pad_left):
    """Serial build of :func:`few_terms_forward`."""
    tiles = (out.shape[0] * out.shape[1] + FEW_TERMS_ROWS_PER_TILE - 1) \
        // FEW_TERMS_ROWS_PER_TILE
    spill = np.empty(2 * simd.lanes(out), dtype=out.dtype)
    for tile in range(tiles):
        _forward_few_terms_tile(x, kernel, bias, out, tile, stride_h, stride_w, dilation_h,
                                dilation_w, pad_top, pad_left, spill)


# Groups of four channels and four filters (grouped32, ResNeXt's 32 x 4d) with the
# filters a multiple of four vectors: groups_of_four_forward.  A vector of lanes
# filters spans lanes / 4 groups, and reads the same lanes of the input pixel's
# channels: simd.spread(x_vector, 4, c) gives every filter its group's channel c,
# a shuffle in registers, against the by-pixels path's transposed padded copy.
# Four vectors of filters at a time keep four independent sums in flight (one sum
# waits on its last product: 0.70 of the by-pixels time with one, 0.49 with four,
# float32 grouped32).


@jit.kernel()
def _forward_row_groups_of_four(x, weights, bias, out, n, oh, stride_h, stride_w, dilation_h,
                                dilation_w, pad_top, pad_left):
    """Output row (n, oh) for groups of four channels and four filters, by simd.spread.

    Each sum adds its products in (kh, kw, channel) order, one rounding each, then
    the bias.
    """
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    kernel_h, kernel_w, filters = weights.shape[0], weights.shape[1], weights.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    lanes = simd.lanes(out)
    zero = simd.splat(out, 0.0)
    kh_first, kh_stop = _valid_taps(oh, stride_h, dilation_h, pad_top, kernel_h, height)
    for ow in range(out_w):
        kw_first, kw_stop = _valid_taps(ow, stride_w, dilation_w, pad_left, kernel_w, width)
        out_first = ((n * out_h + oh) * out_w + ow) * filters
        for f0 in range(0, filters, 4 * lanes):
            sum0, sum1, sum2, sum3 = zero, zero, zero, zero
            for kh in range(kh_first, kh_stop):
                ih = oh * stride_h + kh * dilation_h - pad_top
                for kw in range(kw_first, kw_stop):
                    iw = ow * stride_w + kw * dilation_w - pad_left
                    first = ((n * height + ih) * width + iw) * channels + f0
                    x0, x1 = simd.load(x, first), simd.load(x, first + lanes)
                    x2, x3 = simd.load(x, first + 2 * lanes), simd.load(x, first + 3 * lanes)
                    w = (kh * kernel_w + kw) * 4 * filters + f0
                    # Channel c of each group: four products per vector of filters,
                    # the channels written out (spread takes literal lanes).
                    sum0 = simd.fma(simd.spread(x0, 4, 0), simd.load(weights, w), sum0)
                    sum1 = simd.fma(simd.spread(x1, 4, 0), simd.load(weights, w + lanes), sum1)
                    sum2 = simd.fma(simd.spread(x2, 4, 0), simd.load(weights, w + 2 * lanes), sum2)
                    sum3 = simd.fma(simd.spread(x3, 4, 0), simd.load(weights, w + 3 * lanes), sum3)
                    w += filters
                    sum0 = simd.fma(simd.spread(x0, 4, 1), simd.load(weights, w), sum0)
                    sum1 = simd.fma(simd.spread(x1, 4, 1), simd.load(weights, w + lanes), sum1)
                    sum2 = simd.fma(simd.spread(x2, 4, 1), simd.load(weights, w + 2 * lanes), sum2)
                    sum3 = simd.fma(simd.spread(x3, 4, 1), simd.load(weights, w + 3 * lanes), sum3)
                    w += filters
                    sum0 = simd.fma(simd.spread(x0, 4, 2), simd.load(weights, w), sum0)
                    sum1 = simd.fma(simd.spread(x1, 4, 2), simd.load(weights, w + lanes), sum1)
                    sum2 = simd.fma(simd.spread(x2, 4, 2), simd.load(weights, w + 2 * lanes), sum2)
                    sum3 = simd.fma(simd.spread(x3, 4, 2), simd.load(weights, w + 3 * lanes), sum3)
                    w += filters
                    sum0 = simd.fma(simd.spread(x0, 4, 3), simd.load(weights, w), sum0)
                    sum1 = simd.fma(simd.spread(x1, 4, 3), simd.load(weights, w + lanes), sum1)
                    sum2 = simd.fma(simd.spread(x2, 4, 3), simd.load(weights, w + 2 * lanes), sum2)
                    sum3 = simd.fma(simd.spread(x3, 4, 3), simd.load(weights, w + 3 * lanes), sum3)
            first = out_first + f0
            simd.store(out, first, simd.add(sum0, simd.load(bias, f0)))
            simd.store(out, first + lanes, simd.add(sum1, simd.load(bias, f0 + lanes)))
            simd.store(out, first + 2 * lanes, simd.add(sum2, simd.load(bias, f0 + 2 * lanes)))
            simd.store(out, first + 3 * lanes, simd.add(sum3, simd.load(bias, f0 + 3 * lanes)))


@jit.kernel(parallel=True)
def groups_of_four_forward(x, kernel, bias, out, stride_h, stride_w, dilation_h, dilation_w,
                           pad_top, pad_left):
    """:func:`conv2d_forward` for groups of four channels and four filters, the filters a
    multiple of four vectors (_forward_row_groups_of_four)."""
    out_h = out.shape[1]
    for tile in prange(out.shape[0] * out_h):
        _forward_row_groups_of_four(x, kernel, bias, out, tile // out_h, tile % out_h, stride_h,
                                    stride_w, dilation_h, dilation_w, pad_top, pad_left)


@jit.kernel()
def groups_of_four_forward_serial(x, kernel, bias, out, stride_h, stride_w, dilation_h,
                                  dilation_w, pad_top, pad_left):
    """Serial build of :func:`groups_of_four_forward`."""
    out_h = out.shape[1]
    for tile in range(out.shape[0] * out_h):
        _forward_row_groups_of_four(x, kernel, bias, out, tile // out_h, tile % out_h, stride_h,
                                    stride_w, dilation_h, dilation_w, pad_top, pad_left)


# Dense convolutions of few input channels and large kernels (stem7x7s2: 3 channels,
# 7x7, 64 filters): few_channels_forward.  Six output pixels of a row times four
# vectors of filters are 24 sums held in registers through the window's
# KH * KW * C terms; per term, four weight vectors and six broadcast inputs feed 24
# products.  The input is first copied zero-padded, so that every window is whole
# and a kernel row's terms are one contiguous run (kw, c).  Against im2col and a
# product of 147 columns (OpenBLAS 120-170 GFLOP/s at 64 filters): float32 stem
# 18.1 -> 11.7 ms, float64 45 -> 22 (interleaved, a noisy hour).
BLOCK_PIXELS = 6


@jit.kernel()
def _forward_row_six_pixels(padded, weights, bias, out, n, oh, stride_h, stride_w):
    """Output row (n, oh) from the zero-padded input, six pixels by four vectors of filters.

    A row not a multiple of six ends with six pixels overlapping the previous
    group: the same sums, written again.  Each sum adds its products in (kh, kw,
    c) order, one rounding each, then the bias.
    """
    padded_h, padded_w, channels = padded.shape[1], padded.shape[2], padded.shape[3]
    kernel_h, kernel_w, filters = weights.shape[0], weights.shape[1], weights.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    lanes = simd.lanes(out)
    run = kernel_w * channels
    step = stride_w * channels
    zero = simd.splat(out, 0.0)
    for f0 in range(0, filters, 4 * lanes):
        for ow in range(0, out_w, BLOCK_PIXELS):
            ow = min(ow, out_w - BLOCK_PIXELS)
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = s20 = s21 = s22 = s23 = zero
            s30 = s31 = s32 = s33 = s40 = s41 = s42 = s43 = s50 = s51 = s52 = s53 = zero
            for kh in range(kernel_h):
                x_first = ((n * padded_h + oh * stride_h + kh) * padded_w + ow * stride_w) \
                    * channels
                w_first = kh * run * filters + f0
                for k in range(run):
                    w = w_first + k * filters
                    w0, w1 = simd.load(weights, w), simd.load(weights, w + lanes)
                    w2, w3 = simd.load(weights, w + 2 * lanes), simd.load(weights, w + 3 * lanes)
                    i = x_first + k
                    v = simd.broadcast(padded, i)
                    s00, s01 = simd.fma(v, w0, s00), simd.fma(v, w1, s01)
                    s02, s03 = simd.fma(v, w2, s02), simd.fma(v, w3, s03)
                    v = simd.broadcast(padded, i + step)
                    s10, s11 = simd.fma(v, w0, s10), simd.fma(v, w1, s11)
                    s12, s13 = simd.fma(v, w2, s12), simd.fma(v, w3, s13)
                    v = simd.broadcast(padded, i + 2 * step)
                    s20, s21 = simd.fma(v, w0, s20), simd.fma(v, w1, s21)
                    s22, s23 = simd.fma(v, w2, s22), simd.fma(v, w3, s23)
                    v = simd.broadcast(padded, i + 3 * step)
                    s30, s31 = simd.fma(v, w0, s30), simd.fma(v, w1, s31)
                    s32, s33 = simd.fma(v, w2, s32), simd.fma(v, w3, s33)
                    v = simd.broadcast(padded, i + 4 * step)
                    s40, s41 = simd.fma(v, w0, s40), simd.fma(v, w1, s41)
                    s42, s43 = simd.fma(v, w2, s42), simd.fma(v, w3, s43)
                    v = simd.broadcast(padded, i + 5 * step)
                    s50, s51 = simd.fma(v, w0, s50), simd.fma(v, w1, s51)
                    s52, s53 = simd.fma(v, w2, s52), simd.fma(v, w3, s53)
            b0, b1 = simd.load(bias, f0), simd.load(bias, f0 + lanes)
            b2, b3 = simd.load(bias, f0 + 2 * lanes), simd.load(bias, f0 + 3 * lanes)
            o = ((n * out_h + oh) * out_w + ow) * filters + f0
            _store_four(out, o, lanes, s00, s01, s02, s03, b0, b1, b2, b3)
            _store_four(out, o + filters, lanes, s10, s11, s12, s13, b0, b1, b2, b3)
            _store_four(out, o + 2 * filters, lanes, s20, s21, s22, s23, b0, b1, b2, b3)
            _store_four(out, o + 3 * filters, lanes, s30, s31, s32, s33, b0, b1, b2, b3)
            _store_four(out, o + 4 * filters, lanes, s40, s41, s42, s43, b0, b1, b2, b3)
            _store_four(out, o + 5 * filters, lanes, s50, s51, s52, s53, b0, b1, b2, b3)


@jit.kernel(inline=True)
def _store_four(out, first, lanes, s0, s1, s2, s3, b0, b1, b2, b3):
    """Four vectors of sums plus their bias, to out's elements from ``first``."""
    simd.store(out, first, simd.add(s0, b0))
    simd.store(out, first + lanes, simd.add(s1, b1))
    simd.store(out, first + 2 * lanes, simd.add(s2, b2))
    simd.store(out, first + 3 * lanes, simd.add(s3, b3))


@jit.kernel()
def _zero_padded_image(x, padded, n, pad_top, pad_left):
    """padded[n] = x[n] with pad_top rows and pad_left columns of zeros before it, zeros after."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    target = padded[n]
    target[:, :, :] = 0.0
    for h in range(min(height, padded.shape[1] - pad_top)):
        for w in range(min(width, padded.shape[2] - pad_left)):
            for c in range(channels):
                target[h + pad_top, w + pad_left, c] = x[n, h, w, c]


@jit.kernel()
def _padded_shape(x, weights, out, stride_h, stride_w):
    return (x.shape[0], (out.shape[1] - 1) * stride_h + weights.shape[0],
            (out.shape[2] - 1) * stride_w + weights.shape[1], x.shape[3])


@jit.kernel(parallel=True)
def few_channels_forward(x, kernel, bias, out, stride_h, stride_w, dilation_h, dilation_w,
                         pad_top, pad_left):
    """:func:`conv2d_forward` for one group, no dilation, at least BLOCK_PIXELS output
    columns and filters a multiple of four vectors (_forward_row_six_pixels)."""
    padded = np.empty(_padded_shape(x, kernel, out, stride_h, stride_w), dtype=x.dtype)
    for n in prange(x.shape[0]):
        _zero_padded_image(x, padded, n, pad_top, pad_left)
    out_h = out.shape[1]
    for tile in prange(out.shape[0] * out_h):
        _forward_row_six_pixels(padded, kernel, bias, out, tile // out_h, tile % out_h,
                                stride_h, stride_w)


@jit.kernel()
def few_channels_forward_serial(x, kernel, bias, out, stride_h, stride_w, dilation_h,
                                dilation_w, pad_top, pad_left):
    """Serial build of :func:`few_channels_forward`."""
    padded = np.empty(_padded_shape(x, kernel, out, stride_h, stride_w), dtype=x.dtype)
    for n in range(x.shape[0]):
        _zero_padded_image(x, padded, n, pad_top, pad_left)
    out_h = out.shape[1]
    for tile in range(out.shape[0] * out_h):
        _forward_row_six_pixels(padded, kernel, bias, out, tile // out_h, tile % out_h,
                                stride_h, stride_w)


@jit.kernel(parallel=True)
def depthwise_conv2d_forward(x, kernel, bias, out, stride_h, stride_w, dilation_h, dilation_w,
                             pad_top, pad_left):
    """Depthwise convolution (groups == channels, F = channels * multiplier) plus bias."""
    out_h = out.shape[1]
    for tile in prange(out.shape[0] * out_h):
        _depthwise_forward_row(x, kernel, bias, out, tile // out_h, tile % out_h, stride_h,
                               stride_w, dilation_h, dilation_w, pad_top, pad_left)


@jit.kernel()
def depthwise_conv2d_forward_serial(x, kernel, bias, out, stride_h, stride_w, dilation_h,
                                    dilation_w, pad_top, pad_left):
    """Serial build of :func:`depthwise_conv2d_forward`."""
    out_h = out.shape[1]
    for tile in range(out.shape[0] * out_h):
        _depthwise_forward_row(x, kernel, bias, out, tile // out_h, tile % out_h, stride_h,
                               stride_w, dilation_h, dilation_w, pad_top, pad_left)


# ---------------------------------------------------------------------------
# Input gradient, gathered per input pixel so that every element of
# grad_input has one writer: grad_input[n, ih, iw, c] sums
# grad_output[n, oh, ow, f] * kernel[kh, kw, c, f] over the (kh, kw) whose
# window lands on (ih, iw) and over f, in that fixed order.  The innermost
# loop runs over the input channels of a group, so the kernel is read through
# a transposed copy (kernel_h, kernel_w, filters, in_channels // groups).


@jit.kernel()
def _output_index(i, k, pad, stride, dilation, out_size):
    """Output position whose window puts tap ``k`` on input ``i``, or -1."""
    shifted = i + pad - k * dilation
    if shifted < 0:
        return -1
    o = shifted
    if stride != 1:  # an integer division costs more than a pass over a short row
        if shifted % stride != 0:
            return -1
        o = shifted // stride
    if o >= out_size:
        return -1
    return o


@jit.kernel()
def _transposed_kernel(weights):
    kernel_h, kernel_w, group_channels, filters = weights.shape
    transposed = np.empty((kernel_h, kernel_w, filters, group_channels), dtype=weights.dtype)
    for kh in range(kernel_h):
        for kw in range(kernel_w):
            for c in range(group_channels):
                for f in range(filters):
                    transposed[kh, kw, f, c] = weights[kh, kw, c, f]
    return transposed


@jit.kernel()
def _grad_input_row(grad_output, weights_t, grad_input, n, ih, stride_h, stride_w, dilation_h,
                    dilation_w, pad_top, pad_left):
    out_h, out_w = grad_output.shape[1], grad_output.shape[2]
    width, channels = grad_input.shape[2], grad_input.shape[3]
    kernel_h, kernel_w, filters, group_channels = weights_t.shape
    groups = channels // group_channels
    group_filters = filters // groups
    acc = np.empty(group_channels, dtype=grad_input.dtype)
    for iw in range(width):
        for g in range(groups):
            channel0 = g * group_channels
            filter0 = g * group_filters
            acc[:] = 0.0
            for kh in range(kernel_h):
                oh = _output_index(ih, kh, pad_top, stride_h, dilation_h, out_h)
                if oh < 0:
                    continue
                for kw in range(kernel_w):
                    ow = _output_index(iw, kw, pad_left, stride_w, dilation_w, out_w)
                    if ow < 0:
                        continue
                    grad_pixel = grad_output[n, oh, ow, filter0:filter0 + group_filters]
                    for f in range(group_filters):
                        value = grad_pixel[f]
                        weight_row = weights_t[kh, kw, filter0 + f]
                        for c in range(group_channels):
                            acc[c] += value * weight_row[c]
            grad_pixel_in = grad_input[n, ih, iw, channel0:channel0 + group_channels]
            for c in range(group_channels):
                grad_pixel_in[c] = acc[c]


@jit.kernel()
def _depthwise_grad_input_row(grad_output, weights, grad_input, n, ih, stride_h, stride_w,
                              dilation_h, dilation_w, pad_top, pad_left):
    out_h, out_w = grad_output.shape[1], grad_output.shape[2]
    width, channels = grad_input.shape[2], grad_input.shape[3]
    kernel_h, kernel_w, filters = weights.shape[0], weights.shape[1], weights.shape[3]
    multiplier = filters // channels
    if multiplier == 1:
        # The taps landing on a pixel are listed in (kh, kw) order, then added four
        # per pass over the pixel's row: a quarter of the accumulator loads and stores.
        grad_image = grad_output[n].reshape(out_h * out_w * channels)
        w_taps = weights.reshape((kernel_h * kernel_w, channels))
        taps = np.empty(kernel_h * kernel_w, dtype=np.int64)
        starts = np.empty(kernel_h * kernel_w, dtype=np.int64)
        for iw in range(width):
            terms = 0
            for kh in range(kernel_h):
                oh = _output_index(ih, kh, pad_top, stride_h, dilation_h, out_h)
                if oh < 0:
                    continue
                for kw in range(kernel_w):
                    ow = _output_index(iw, kw, pad_left, stride_w, dilation_w, out_w)
                    if ow < 0:
                        continue
                    taps[terms] = kh * kernel_w + kw
                    starts[terms] = (oh * out_w + ow) * channels
                    terms += 1
            acc = grad_input[n, ih, iw]
            acc[:] = 0.0
            t = 0
            while t + 4 <= terms:
                g0 = grad_image[starts[t]:starts[t] + channels]
                g1 = grad_image[starts[t + 1]:starts[t + 1] + channels]
                g2 = grad_image[starts[t + 2]:starts[t + 2] + channels]
                g3 = grad_image[starts[t + 3]:starts[t + 3] + channels]
                w0, w1 = w_taps[taps[t]], w_taps[taps[t + 1]]
                w2, w3 = w_taps[taps[t + 2]], w_taps[taps[t + 3]]
                for c in range(channels):
                    acc[c] = acc[c] + g0[c] * w0[c] + g1[c] * w1[c] + g2[c] * w2[c] \
                        + g3[c] * w3[c]
                t += 4
            while t < terms:
                g0 = grad_image[starts[t]:starts[t] + channels]
                w0 = w_taps[taps[t]]
                for c in range(channels):
                    acc[c] = acc[c] + g0[c] * w0[c]
                t += 1
        return
    acc = np.empty(channels, dtype=grad_input.dtype)
    for iw in range(width):
        acc[:] = 0.0
        for kh in range(kernel_h):
            oh = _output_index(ih, kh, pad_top, stride_h, dilation_h, out_h)
            if oh < 0:
                continue
            for kw in range(kernel_w):
                ow = _output_index(iw, kw, pad_left, stride_w, dilation_w, out_w)
                if ow < 0:
                    continue
                grad_pixel = grad_output[n, oh, ow]
                weight_row = weights[kh, kw, 0]
                for c in range(channels):
                    for j in range(c * multiplier, (c + 1) * multiplier):
                        acc[c] += grad_pixel[j] * weight_row[j]
        grad_pixel_in = grad_input[n, ih, iw]
        for c in range(channels):
            grad_pixel_in[c] = acc[c]


@jit.kernel()
def _grad_input_row_by_filters(grad_output, weights, grad_input, n, ih, stride_h, stride_w,
                               dilation_h, dilation_w, pad_top, pad_left):
    """``_grad_input_row`` for few channels per group: vectorised over the filters.

    For each input element, the products of each filter are summed over the taps
    (four taps per pass, in a vector over all filters of all groups), then each
    group's filter sums are added in filter order.
    """
    out_h, out_w = grad_output.shape[1], grad_output.shape[2]
    width, channels = grad_input.shape[2], grad_input.shape[3]
    kernel_h, kernel_w, group_channels, filters = weights.shape
    groups = channels // group_channels
    group_filters = filters // groups
    taps = np.empty(kernel_h * kernel_w, dtype=np.int64)  # kh * kernel_w + kw
    rows = np.empty(kernel_h * kernel_w, dtype=np.int64)  # oh * out_w + ow
    partial = np.empty((group_channels, filters), dtype=grad_input.dtype)
    totals = np.empty(groups, dtype=grad_input.dtype)
    grad_image = grad_output[n].reshape((out_h * out_w, filters))
    w_rows = weights.reshape((kernel_h * kernel_w * group_channels, filters))
    for iw in range(width):
        terms = 0
        for kh in range(kernel_h):
            oh = _output_index(ih, kh, pad_top, stride_h, dilation_h, out_h)
            if oh < 0:
                continue
            for kw in range(kernel_w):
                ow = _output_index(iw, kw, pad_left, stride_w, dilation_w, out_w)
                if ow < 0:
                    continue
                taps[terms] = kh * kernel_w + kw
                rows[terms] = oh * out_w + ow
                terms += 1
        for c in range(group_channels):
            acc = partial[c]
            acc[:] = 0.0
            t = 0
            while t + 4 <= terms:
                g0, g1 = grad_image[rows[t]], grad_image[rows[t + 1]]
                g2, g3 = grad_image[rows[t + 2]], grad_image[rows[t + 3]]
                w0 = w_rows[taps[t] * group_channels + c]
                w1 = w_rows[taps[t + 1] * group_channels + c]
                w2 = w_rows[taps[t + 2] * group_channels + c]
                w3 = w_rows[taps[t + 3] * group_channels + c]
                for f in range(filters):
                    acc[f] = acc[f] + g0[f] * w0[f] + g1[f] * w1[f] + g2[f] * w2[f] \
                        + g3[f] * w3[f]
                t += 4
            while t < terms:
                g0 = grad_image[rows[t]]
                w0 = w_rows[taps[t] * group_channels + c]
                for f in range(filters):
                    acc[f] = acc[f] + g0[f] * w0[f]
                t += 1
        grad_pixel_in = grad_input[n, ih, iw]
        # Each group's filter sums, added in filter order.  With more groups than
        # filters per group, the loop over the groups is innermost (strided loads
        # LLVM can vectorise) rather than a loop over a group's few filters.
        for c in range(group_channels):
            acc = partial[c]
            if groups > group_filters:
                for g in range(groups):
                    totals[g] = acc[g * group_filters]
                for j in range(1, group_filters):
                    for g in range(groups):
                        totals[g] += acc[g * group_filters + j]
            else:
                for g in range(groups):
                    total = acc[g * group_filters]
                    for f in range(g * group_filters + 1, (g + 1) * group_filters):
                        total += acc[f]
                    totals[g] = total
            for g in range(groups):
                grad_pixel_in[g * group_channels + c] = totals[g]


# Below this many channels per group (and with at least as many filters in all),
# the input gradient is vectorised over the filters of all groups instead of the
# channels of a group: a vector of one to a few channels does not pay.
FEW_GROUP_CHANNELS = 8


@jit.kernel()
def _by_filters(weights, channels):
    return weights.shape[2] < FEW_GROUP_CHANNELS and weights.shape[3] >= FEW_GROUP_CHANNELS


@jit.kernel()
def _grad_input_by_pixels(grad_output, weights, grad_input, stride_h, stride_w, dilation_h,
                          dilation_w):
    """Whether the input gradient runs as a forward pass by pixels (shape, finite kernel).

    With unit strides it is the convolution of the grad_output with the kernel flipped
    and transposed (_flipped_kernel), over the grad_output padded by (KH-1)*dilation_h
    - pad_top rows and (KW-1)*dilation_w - pad_left columns.  The padding is then
    arithmetic on zeros, so it is used only when the kernel is finite (0 * inf there
    would be nan where the gradient has no term).
    """
    kernel_h, kernel_w, group_channels, filters = weights.shape
    channels = grad_input.shape[3]
    groups = channels // group_channels
    if stride_h != 1 or stride_w != 1 or groups == 1 or channels < FEW_GROUP_FILTERS:
        return False
    if group_channels >= ACROSS_GROUPS_FILTERS or filters // groups >= ACROSS_GROUPS_FILTERS:
        return False
    rows = grad_input.shape[1] + (kernel_h - 1) * dilation_h
    cols = grad_input.shape[2] + (kernel_w - 1) * dilation_w
    if grad_input.shape[0] * rows * cols * filters > PADDED_COPY_ELEMENTS:
        return False
    for value in weights.ravel():
        if not np.isfinite(value):
            return False
    return True


@jit.kernel()
def _flipped_kernel(weights, groups):
    """(KH, KW, F // groups, C): [kh, kw, j, g*Cg+c] = weights[KH-1-kh, KW-1-kw, c, g*Fg+j]."""
    return _weights_by_channels(weights[::-1, ::-1], groups)


@jit.kernel(parallel=True)
def conv2d_grad_input(grad_output, kernel, grad_input, stride_h, stride_w, dilation_h,
                      dilation_w, pad_top, pad_left):
    """Gradient of the grouped convolution with respect to its input, into ``grad_input``."""
    height = grad_input.shape[1]
    if _grad_input_by_pixels(grad_output, kernel, grad_input, stride_h, stride_w, dilation_h,
                             dilation_w):
        # The convolution of grad_output with the flipped, transposed kernel (unit strides).
        weights_f = _flipped_kernel(kernel, grad_input.shape[3] // kernel.shape[2])
        zeros = np.zeros(grad_input.shape[3], dtype=grad_input.dtype)
        pad_h = (kernel.shape[0] - 1) * dilation_h - pad_top
        pad_w = (kernel.shape[1] - 1) * dilation_w - pad_left
        _forward_by_pixels(grad_output, weights_f, zeros, grad_input, 1, dilation_h,
                           dilation_w, pad_h, pad_w)
        return
    if _by_filters(kernel, grad_input.shape[3]):
        for tile in prange(grad_input.shape[0] * height):
            _grad_input_row_by_filters(grad_output, kernel, grad_input, tile // height,
                                       tile % height, stride_h, stride_w, dilation_h,
                                       dilation_w, pad_top, pad_left)
        return
    kernel_t = _transposed_kernel(kernel)
    for tile in prange(grad_input.shape[0] * height):
        _grad_input_row(grad_output, kernel_t, grad_input, tile // height, tile % height,
                        stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left)


@jit.kernel()
def conv2d_grad_input_serial(grad_output, kernel, grad_input, stride_h, stride_w, dilation_h,
                             dilation_w, pad_top, pad_left):
    """Serial build of :func:`conv2d_grad_input`."""
    height = grad_input.shape[1]
    if _grad_input_by_pixels(grad_output, kernel, grad_input, stride_h, stride_w, dilation_h,
                             dilation_w):
        # The convolution of grad_output with the flipped, transposed kernel (unit strides).
        weights_f = _flipped_kernel(kernel, grad_input.shape[3] // kernel.shape[2])
        zeros = np.zeros(grad_input.shape[3], dtype=grad_input.dtype)
        pad_h = (kernel.shape[0] - 1) * dilation_h - pad_top
        pad_w = (kernel.shape[1] - 1) * dilation_w - pad_left
        _forward_by_pixels_serial(grad_output, weights_f, zeros, grad_input, 1, dilation_h,
                                  dilation_w, pad_h, pad_w)
        return
    if _by_filters(kernel, grad_input.shape[3]):
        for tile in range(grad_input.shape[0] * height):
            _grad_input_row_by_filters(grad_output, kernel, grad_input, tile // height,
                                       tile % height, stride_h, stride_w, dilation_h,
                                       dilation_w, pad_top, pad_left)
        return
    kernel_t = _transposed_kernel(kernel)
    for tile in range(grad_input.shape[0] * height):
        _grad_input_row(grad_output, kernel_t, grad_input, tile // height, tile % height,
                        stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left)


@jit.kernel(parallel=True)
def depthwise_conv2d_grad_input(grad_output, kernel, grad_input, stride_h, stride_w, dilation_h,
                                dilation_w, pad_top, pad_left):
    """Gradient of the depthwise convolution with respect to its input."""
    height = grad_input.shape[1]
    for tile in prange(grad_input.shape[0] * height):
        _depthwise_grad_input_row(grad_output, kernel, grad_input, tile // height, tile % height,
                                  stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left)


@jit.kernel()
def depthwise_conv2d_grad_input_serial(grad_output, kernel, grad_input, stride_h, stride_w,
                                       dilation_h, dilation_w, pad_top, pad_left):
    """Serial build of :func:`depthwise_conv2d_grad_input`."""
    height = grad_input.shape[1]
    for tile in range(grad_input.shape[0] * height):
        _depthwise_grad_input_row(grad_output, kernel, grad_input, tile // height, tile % height,
                                  stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left)


# ---------------------------------------------------------------------------
# Kernel gradient: a sum over every output pixel of the batch.  The output
# rows (n, oh) are cut into reduction_chunks(...) chunks, a number that depends
# on the shapes only.  A tile is one (chunk, kh, kw): it sums its chunk's rows
# in order into its own slice of a partial buffer; the partials are then added
# chunk by chunk in a fixed order.  No two tiles write the same element.


@jit.kernel()
def _grad_kernel_tile(x, grad_output, partial, tile, rows_per_chunk, stride_h, stride_w,
                      dilation_h, dilation_w, pad_top, pad_left):
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w, filters = grad_output.shape[1], grad_output.shape[2], grad_output.shape[3]
    kernel_h, kernel_w, group_channels = partial.shape[1], partial.shape[2], partial.shape[3]
    groups = channels // group_channels
    group_filters = filters // groups
    chunk = tile // (kernel_h * kernel_w)
    kh = (tile // kernel_w) % kernel_h
    kw = tile % kernel_w
    tap = partial[chunk, kh, kw]
    tap[:, :] = 0.0
    row_stop = min((chunk + 1) * rows_per_chunk, grad_output.shape[0] * out_h)
    for row in range(chunk * rows_per_chunk, row_stop):
        n = row // out_h
        oh = row % out_h
        ih = oh * stride_h + kh * dilation_h - pad_top
        if ih < 0 or ih >= height:
            continue
        for ow in range(out_w):
            iw = ow * stride_w + kw * dilation_w - pad_left
            if iw < 0 or iw >= width:
                continue
            for g in range(groups):
                channel0 = g * group_channels
                filter0 = g * group_filters
                grad_pixel = grad_output[n, oh, ow, filter0:filter0 + group_filters]
                for c in range(group_channels):
                    value = x[n, ih, iw, channel0 + c]
                    tap_row = tap[c, filter0:filter0 + group_filters]
                    for f in range(group_filters):
                        tap_row[f] += value * grad_pixel[f]


@jit.kernel()
def _valid_outputs(k, stride, dilation, pad, out_size, size):
    """[first, stop) of the outputs o whose input o * stride + k * dilation - pad is in [0, size).
    """
    offset = k * dilation - pad
    first = 0 if offset >= 0 else (-offset + stride - 1) // stride
    last = size - 1 - offset
    stop = 0 if last < 0 else min(last // stride + 1, out_size)
    return first, max(stop, first)


@jit.kernel()
def _grad_kernel_chunk_across_groups(x, grad_output, partial, sources, chunk, rows_per_chunk,
                                     stride_h, stride_w, dilation_h, dilation_w, pad_top,
                                     pad_left):
    """``_grad_kernel_tile`` for all taps of a chunk at once, vectorised over all filters.

    Every element sums its chunk's pixels in the same order as ``_grad_kernel_tile``.
    """
    width = x.shape[2]
    out_h, out_w = grad_output.shape[1], grad_output.shape[2]
    kernel_h, kernel_w, group_channels, filters = partial.shape[1:]
    taps = partial[chunk]
    taps.reshape(taps.size)[:] = 0.0
    slots = _ring_slots(kernel_h, dilation_h)
    ring = np.empty((slots, width, group_channels, filters), dtype=partial.dtype)
    ring_tags = np.full(slots, -1, dtype=np.int64)
    ring_of_kh = np.zeros(kernel_h, dtype=np.int64)
    ow_first = np.empty(kernel_w, dtype=np.int64)
    ow_stop = np.empty(kernel_w, dtype=np.int64)
    for kw in range(kernel_w):
        ow_first[kw], ow_stop[kw] = _valid_outputs(kw, stride_w, dilation_w, pad_left, out_w,
                                                   width)
    row_stop = min((chunk + 1) * rows_per_chunk, grad_output.shape[0] * out_h)
    for row in range(chunk * rows_per_chunk, row_stop):
        n = row // out_h
        oh = row % out_h
        kh_first, kh_stop = _ring_rows(x, sources, ring, ring_tags, ring_of_kh, n, oh,
                                       stride_h, dilation_h, pad_top)
        for kh in range(kh_first, kh_stop):
            x_row = ring[ring_of_kh[kh]]
            for kw in range(kernel_w):
                iw0 = kw * dilation_w - pad_left
                for c in range(group_channels):
                    tap_row = taps[kh, kw, c]
                    # Four pixels per pass, added in pixel order.
                    ow = ow_first[kw]
                    while ow + 4 <= ow_stop[kw]:
                        x0 = x_row[ow * stride_w + iw0, c]
                        x1 = x_row[(ow + 1) * stride_w + iw0, c]
                        x2 = x_row[(ow + 2) * stride_w + iw0, c]
                        x3 = x_row[(ow + 3) * stride_w + iw0, c]
                        g0, g1 = grad_output[n, oh, ow], grad_output[n, oh, ow + 1]
                        g2, g3 = grad_output[n, oh, ow + 2], grad_output[n, oh, ow + 3]
                        for f in range(filters):
                            tap_row[f] = tap_row[f] + x0[f] * g0[f] + x1[f] * g1[f] \
                                + x2[f] * g2[f] + x3[f] * g3[f]
                        ow += 4
                    while ow < ow_stop[kw]:
                        x0 = x_row[ow * stride_w + iw0, c]
                        g0 = grad_output[n, oh, ow]
                        for f in range(filters):
                            tap_row[f] = tap_row[f] + x0[f] * g0[f]
                        ow += 1


@jit.kernel()
def _depthwise_grad_kernel_tile(x, grad_output, partial, tile, rows_per_chunk, stride_h,
                                stride_w, dilation_h, dilation_w, pad_top, pad_left):
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w, filters = grad_output.shape[1], grad_output.shape[2], grad_output.shape[3]
    kernel_h, kernel_w = partial.shape[1], partial.shape[2]
    multiplier = filters // channels
    chunk = tile // (kernel_h * kernel_w)
    kh = (tile // kernel_w) % kernel_h
    kw = tile % kernel_w
    tap_row = partial[chunk, kh, kw, 0]
    tap_row[:] = 0.0
    row_stop = min((chunk + 1) * rows_per_chunk, grad_output.shape[0] * out_h)
    for row in range(chunk * rows_per_chunk, row_stop):
        n = row // out_h
        oh = row % out_h
        ih = oh * stride_h + kh * dilation_h - pad_top
        if ih < 0 or ih >= height:
            continue
        for ow in range(out_w):
            iw = ow * stride_w + kw * dilation_w - pad_left
            if iw < 0 or iw >= width:
                continue
            x_pixel = x[n, ih, iw]
            grad_pixel = grad_output[n, oh, ow]
            if multiplier == 1:
                for c in range(channels):
                    tap_row[c] += x_pixel[c] * grad_pixel[c]
            else:
                for c in range(channels):
                    value = x_pixel[c]
                    for j in range(multiplier):
                        tap_row[c * multiplier + j] += value * grad_pixel[c * multiplier + j]


@jit.kernel()
def _chunking(grad_output, partial_elements):
    """(chunks, rows_per_chunk) of a reduction over the output rows of ``grad_output``."""
    rows = grad_output.shape[0] * grad_output.shape[1]
    chunks = reduction_chunks(rows, partial_elements)
    return chunks, -(-rows // chunks)


@jit.kernel()
def _merge_partials(partial, total, block):
    """Block ``block`` of total = partial[0] + partial[1] + ..., added in chunk order."""
    start = block * MERGE_BLOCK
    stop = min(start + MERGE_BLOCK, total.size)
    for i in range(start, stop):
        total[i] = partial[0, i]
    for chunk in range(1, partial.shape[0]):
        for i in range(start, stop):
            total[i] += partial[chunk, i]


@jit.kernel(parallel=True)
def conv2d_grad_kernel(x, grad_output, grad_kernel, stride_h, stride_w, dilation_h, dilation_w,
                       pad_top, pad_left):
    """Gradient of the grouped convolution with respect to its kernel, into ``grad_kernel``."""
    chunks, rows_per_chunk = _chunking(grad_output, grad_kernel.size)
    partial = np.empty((chunks,) + grad_kernel.shape, dtype=grad_kernel.dtype)
    if _across_groups(grad_kernel, x.shape[3], x.shape[2], dilation_h):
        sources = _expanded_sources(grad_kernel.shape[2], grad_kernel.shape[3],
                                    x.shape[3] // grad_kernel.shape[2])
        for chunk in prange(chunks):
            _grad_kernel_chunk_across_groups(x, grad_output, partial, sources, np.int64(chunk),
                                             rows_per_chunk, stride_h, stride_w, dilation_h,
                                             dilation_w, pad_top, pad_left)
    else:
        for tile in prange(chunks * grad_kernel.shape[0] * grad_kernel.shape[1]):
            _grad_kernel_tile(x, grad_output, partial, np.int64(tile), rows_per_chunk, stride_h,
                              stride_w, dilation_h, dilation_w, pad_top, pad_left)
    flat_partial = partial.reshape((chunks, grad_kernel.size))
    flat_total = grad_kernel.reshape(grad_kernel.size)
    for block in prange(-(-grad_kernel.size // MERGE_BLOCK)):
        _merge_partials(flat_partial, flat_total, np.int64(block))


@jit.kernel()
def conv2d_grad_kernel_serial(x, grad_output, grad_kernel, stride_h, stride_w, dilation_h,
                              dilation_w, pad_top, pad_left):
    """Serial build of :func:`conv2d_grad_kernel` (same chunks, same sums)."""
    chunks, rows_per_chunk = _chunking(grad_output, grad_kernel.size)
    partial = np.empty((chunks,) + grad_kernel.shape, dtype=grad_kernel.dtype)
    if _across_groups(grad_kernel, x.shape[3], x.shape[2], dilation_h):
        sources = _expanded_sources(grad_kernel.shape[2], grad_kernel.shape[3],
                                    x.shape[3] // grad_kernel.shape[2])
        for chunk in range(chunks):
            _grad_kernel_chunk_across_groups(x, grad_output, partial, sources, chunk,
                                             rows_per_chunk, stride_h, stride_w, dilation_h,
                                             dilation_w, pad_top, pad_left)
    else:
        for tile in range(chunks * grad_kernel.shape[0] * grad_kernel.shape[1]):
            _grad_kernel_tile(x, grad_output, partial, tile, rows_per_chunk, stride_h,
                              stride_w, dilation_h, dilation_w, pad_top, pad_left)
    flat_partial = partial.reshape((chunks, grad_kernel.size))
    flat_total = grad_kernel.reshape(grad_kernel.size)
    for block in range(-(-grad_kernel.size // MERGE_BLOCK)):
        _merge_partials(flat_partial, flat_total, block)


@jit.kernel(parallel=True)
def depthwise_conv2d_grad_kernel(x, grad_output, grad_kernel, stride_h, stride_w, dilation_h,
                                 dilation_w, pad_top, pad_left):
    """Gradient of the depthwise convolution with respect to its kernel."""
    chunks, rows_per_chunk = _chunking(grad_output, grad_kernel.size)
    partial = np.empty((chunks,) + grad_kernel.shape, dtype=grad_kernel.dtype)
    for tile in prange(chunks * grad_kernel.shape[0] * grad_kernel.shape[1]):
        _depthwise_grad_kernel_tile(x, grad_output, partial, np.int64(tile), rows_per_chunk,
                                    stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left)
    flat_partial = partial.reshape((chunks, grad_kernel.size))
    flat_total = grad_kernel.reshape(grad_kernel.size)
    for block in prange(-(-grad_kernel.size // MERGE_BLOCK)):
        _merge_partials(flat_partial, flat_total, np.int64(block))


@jit.kernel()
def depthwise_conv2d_grad_kernel_serial(x, grad_output, grad_kernel, stride_h, stride_w,
                                        dilation_h, dilation_w, pad_top, pad_left):
    """Serial build of :func:`depthwise_conv2d_grad_kernel`."""
    chunks, rows_per_chunk = _chunking(grad_output, grad_kernel.size)
    partial = np.empty((chunks,) + grad_kernel.shape, dtype=grad_kernel.dtype)
    for tile in range(chunks * grad_kernel.shape[0] * grad_kernel.shape[1]):
        _depthwise_grad_kernel_tile(x, grad_output, partial, tile, rows_per_chunk,
                                    stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left)
    flat_partial = partial.reshape((chunks, grad_kernel.size))
    flat_total = grad_kernel.reshape(grad_kernel.size)
    for block in range(-(-grad_kernel.size // MERGE_BLOCK)):
        _merge_partials(flat_partial, flat_total, block)


# ---------------------------------------------------------------------------
# Bias gradient: grad_output summed over batch, height and width, with the
# same chunk-then-merge scheme (one tile per chunk of output rows).


@jit.kernel()
def _grad_bias_chunk(grad_output, partial, chunk, rows_per_chunk):
    out_h, out_w = grad_output.shape[1], grad_output.shape[2]
    sums = partial[chunk]
    sums[:] = 0.0
    row_stop = min((chunk + 1) * rows_per_chunk, grad_output.shape[0] * out_h)
    for row in range(chunk * rows_per_chunk, row_stop):
        n = row // out_h
        oh = row % out_h
        for ow in range(out_w):
            grad_pixel = grad_output[n, oh, ow]
            for f in range(sums.shape[0]):
                sums[f] += grad_pixel[f]


@jit.kernel(parallel=True)
def conv2d_grad_bias(grad_output, grad_bias):
    """Sum of ``grad_output`` over all but its channel axis, into ``grad_bias``."""
    chunks, rows_per_chunk = _chunking(grad_output, grad_bias.size)
    partial = np.empty((chunks, grad_bias.size), dtype=grad_bias.dtype)
    for chunk in prange(chunks):
        _grad_bias_chunk(grad_output, partial, np.int64(chunk), rows_per_chunk)
    for block in range(-(-grad_bias.size // MERGE_BLOCK)):
        _merge_partials(partial, grad_bias, block)


@jit.kernel()
def conv2d_grad_bias_serial(grad_output, grad_bias):
    """Serial build of :func:`conv2d_grad_bias`."""
    chunks, rows_per_chunk = _chunking(grad_output, grad_bias.size)
    partial = np.empty((chunks, grad_bias.size), dtype=grad_bias.dtype)
    for chunk in range(chunks):
        _grad_bias_chunk(grad_output, partial, chunk, rows_per_chunk)
    for block in range(-(-grad_bias.size // MERGE_BLOCK)):
        _merge_partials(partial, grad_bias, block)
