"""The conv kernels called directly (canonical layout) on the paths the speed work added.

The forward kernel takes four pixels at a time where their windows lie inside the
image and one at a time at the borders, and windows of at most nine terms (one group)
in one pass per pixel, the missing terms zero products (3x3 windows on one channel
with weights held in vector registers, numconv.kernels.simd; groups of four
channels and filters by simd.spread; few input channels in blocks of six
pixels); the input gradient has a filter-vectorised
path for few channels per group; groups with few filters each are vectorised across
all groups (forward and kernel gradient through expanded input rows); with a unit
horizontal stride, the forward pass (and with unit strides the input gradient) of
such groups is vectorised over output pixels of a zero-padded transposed copy;
depthwise kernels with multiplier 1 add four taps per pass.  Each case is compared with
tests/reference.py, and serial with parallel.
"""

import numpy as np
import pytest

from numconv.kernels import conv as conv_kernels, simd

from reference import conv2d_grads_reference, conv2d_reference, same_padding_reference

# (batch, height, width, channels, groups, filters, kernel_size, stride, dilation, padding)
CASES = [
    (2, 8, 8, 1, 1, 16, (3, 3), 1, 1, "same"),       # digits' first layer: C=1
    (2, 8, 9, 16, 1, 32, (3, 3), 1, 1, "same"),      # digits' second layer
    (3, 11, 13, 1, 1, 20, (3, 3), 1, 1, "valid"),    # lenet-like, F not a vector multiple
    (2, 12, 11, 3, 1, 9, (2, 4), 2, 1, "same"),      # stride 2, even kernel width
    (2, 13, 14, 2, 1, 12, (3, 3), 1, 2, "same"),     # dilation, few channels
    (2, 9, 10, 8, 4, 40, (3, 2), 1, 1, "same"),      # groups of 2 channels, 10 filters
    (2, 9, 10, 8, 4, 8, (3, 3), 1, 1, "same"),       # groups of 2 channels, 2 filters
    (2, 9, 11, 16, 4, 16, (3, 3), 2, 1, "same"),     # groups of 4 x 4 (vectorised across groups)
    (1, 10, 12, 12, 3, 12, (3, 3), 1, 2, "same"),    # groups of 4 x 4, dilated
    (3, 6, 7, 8, 2, 12, (2, 3), 1, 1, "valid"),      # 4 channels, 6 filters per group; bands
                                                     # of rows cross images (5 rows each)
    (2, 9, 11, 16, 4, 16, (3, 3), 1, 1, "same"),     # groups of 4 x 4 by pixels, 3 taps a pass
    (5, 6, 9, 32, 4, 20, (3, 3), 1, 1, "valid"),     # 8 channels, 5 filters per group by pixels
    (3, 3, 200, 48, 12, 84, (3, 3), 1, 1, "same"),   # by pixels, one image per tile
    (2, 10, 9, 24, 24, 24, (3, 3), 1, 1, "same"),    # depthwise, multiplier 1
    (2, 10, 9, 6, 6, 12, (3, 3), 2, 1, "same"),      # depthwise, multiplier 2
    (1, 7, 15, 16, 16, 16, (5, 3), 1, (1, 2), "valid"),  # depthwise, dilated width
    (2, 12, 11, 1, 1, 7, (3, 3), 2, 2, "same"),      # nine terms: strided, dilated, borders
    (2, 5, 6, 4, 1, 9, (1, 1), 1, 1, "valid"),       # four terms (zero rows pad the pass)
    (3, 7, 9, 2, 1, 17, (2, 2), 1, 1, "same"),       # eight terms, padding only bottom-right
    (2, 6, 7, 4, 2, 128, (3, 3), 1, 1, "same"),     # 64 filters per group: per-group loops
    (2, 10, 12, 1, 1, 40, (3, 3), 1, 1, "same"),     # 3x3 on one channel in register blocks,
                                                     # the last one partly spilled; borders
    (2, 11, 13, 1, 1, 32, (3, 3), 2, 1, "valid"),    # register blocks, stride 2
    (2, 12, 10, 1, 1, 64, (3, 3), 1, (2, 1), "same"),  # register blocks, dilated rows
    (2, 9, 11, 64, 16, 64, (3, 3), 1, 1, "same"),    # groups of 4 x 4 by simd.spread
    (2, 10, 12, 128, 32, 128, (3, 3), 2, 1, "same"),  # ... strided
    (1, 9, 10, 64, 16, 64, (3, 2), 1, 2, "valid"),   # ... dilated, even kernel width
    (2, 17, 19, 3, 1, 64, (7, 7), 2, 1, "same"),     # few channels: six pixels in registers
    (2, 12, 14, 1, 1, 64, (5, 5), 1, 1, "valid"),    # ... a row of 10 (the last six overlap)
    (1, 11, 13, 4, 1, 128, (3, 4), 1, 1, "same"),    # ... even kernel width, 128 filters
]


def _geometry(case):
    batch, height, width, channels, groups, filters, (kh, kw), stride, dilation, padding = case
    dilation = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    if padding == "same":
        pad_top = same_padding_reference(height, kh, stride, dilation[0])
        pad_left = same_padding_reference(width, kw, stride, dilation[1])
    else:
        pad_top = pad_left = (0, 0)
    out_h = (height + sum(pad_top) - (kh - 1) * dilation[0] - 1) // stride + 1
    out_w = (width + sum(pad_left) - (kw - 1) * dilation[1] - 1) // stride + 1
    scalars = (stride, stride, dilation[0], dilation[1], pad_top[0], pad_left[0])
    options = dict(strides=stride, padding=padding, dilation_rate=dilation, groups=groups)
    return (out_h, out_w), scalars, options


def _run(case, dtype, suffix, x, kernel, bias, grad_output):
    channels, groups = case[3], case[4]
    prefix = "depthwise_conv2d" if groups == channels and groups > 1 else "conv2d"
    scalars = _geometry(case)[1]

    def kernel_named(job):
        return getattr(conv_kernels, prefix + job + suffix)

    out = np.empty(grad_output.shape, dtype=dtype)
    kernel_named("_forward")(x, kernel, bias, out, *scalars)
    grad_input = np.empty_like(x)
    kernel_named("_grad_input")(grad_output, kernel, grad_input, *scalars)
    grad_kernel = np.empty_like(kernel)
    kernel_named("_grad_kernel")(x, grad_output, grad_kernel, *scalars)
    return out, grad_input, grad_kernel


def _arrays(case, dtype, rng):
    batch, height, width, channels, groups, filters, (kh, kw) = case[:7]
    (out_h, out_w), _, _ = _geometry(case)
    x = rng.standard_normal((batch, height, width, channels)).astype(dtype)
    kernel = rng.standard_normal((kh, kw, channels // groups, filters)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype)
    grad_output = rng.standard_normal((batch, out_h, out_w, filters)).astype(dtype)
    return x, kernel, bias, grad_output


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_kernels_match_reference_and_serial_equals_parallel(case, dtype):
    rng = np.random.default_rng(7)
    x, kernel, bias, grad_output = _arrays(case, dtype, rng)
    options = _geometry(case)[2]
    serial = _run(case, dtype, "_serial", x, kernel, bias, grad_output)
    parallel = _run(case, dtype, "", x, kernel, bias, grad_output)
    for s, p in zip(serial, parallel):
        assert np.array_equal(s, p)
    expected_out = conv2d_reference(x, kernel, bias, **options)
    expected_grads = conv2d_grads_reference(x, kernel, grad_output, **options)
    tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(serial[0], expected_out, **tolerance)
    np.testing.assert_allclose(serial[1], expected_grads[0], **tolerance)
    np.testing.assert_allclose(serial[2], expected_grads[1], **tolerance)
    for name in _register_kernels(case, dtype):
        # The same pass by the kernels that hold values in vector registers.  Their
        # two builds share the tile function whatever the dtype: the parallel build
        # is compared in float32 only (each parallel compile costs the suite seconds).
        scalars = _geometry(case)[1]
        blocked = np.empty_like(serial[0])
        getattr(conv_kernels, name + "_serial")(x, kernel, bias, blocked, *scalars)
        np.testing.assert_allclose(blocked, expected_out, **tolerance)
        if dtype == np.float32:
            threaded = np.empty_like(blocked)
            getattr(conv_kernels, name)(x, kernel, bias, threaded, *scalars)
            assert np.array_equal(blocked, threaded)


def _register_kernels(case, dtype):
    """Names of the register-block forward kernels that can take ``case``."""
    channels, groups, filters = case[3], case[4], case[5]
    kernel = np.empty((case[6][0], case[6][1], channels // groups, filters))
    names = []
    if conv_kernels._few_terms(kernel, channels):
        names.append("few_terms_forward")  # blocks for the 3x3 one-channel windows
    lanes = simd.lanes(np.empty(1, dtype=dtype))
    if channels == filters == 4 * groups and groups > 1 and filters % (4 * lanes) == 0:
        names.append("groups_of_four_forward")
    out_w = _geometry(case)[0][1]
    if (groups == 1 and channels <= 4 and case[6][0] * case[6][1] * channels > 9
            and case[8] == 1 and out_w >= 6 and filters % (4 * lanes) == 0):
        names.append("few_channels_forward")
    return names


def test_cases_cover_the_paths_vectorised_across_groups():
    def kernel_of(case):
        return np.empty((case[6][0], case[6][1], case[3] // case[4], case[5]))

    grouped = [case for case in CASES if 1 < case[4] < case[3]]
    forward = [case for case in grouped if conv_kernels._few_group_filters(kernel_of(case),
                                                                           case[3])]
    grad_input = [case for case in grouped if conv_kernels._by_filters(kernel_of(case), case[3])]
    grad_kernel = [case for case in grouped
                   if conv_kernels._across_groups(kernel_of(case), case[3], case[2],
                                                  _geometry(case)[1][2])]
    for cases in (forward, grad_input, grad_kernel):
        assert len(cases) >= 3
        assert any(case[7] > 1 for case in cases)
        assert any(_geometry(case)[1][2] > 1 for case in cases)
    assert len(forward) < len(grouped)  # the per-group loops are still exercised


def test_cases_cover_the_forward_paths_vectorised_over_pixels():
    def by_pixels(case):
        x = np.empty(case[:4])
        kernel = np.empty((case[6][0], case[6][1], case[3] // case[4], case[5]))
        (out_h, out_w), scalars, _ = _geometry(case)
        out = np.empty((case[0], out_h, out_w, case[5]))
        stride, dilation_h, dilation_w = scalars[0], scalars[2], scalars[3]
        if not conv_kernels._by_pixels(x, kernel, out, stride, stride, dilation_h, dilation_w):
            return None
        return conv_kernels._padded_geometry(kernel, out, stride, dilation_h, dilation_w)

    grouped = [case for case in CASES if 1 < case[4] < case[3]]
    covered = [case for case in grouped if by_pixels(case) is not None]
    three_taps = [case for case in covered
                  if case[6][1] == 3 and case[8] == 1 and (case[3] // case[4]) % 4 == 0]
    assert len(three_taps) >= 2
    assert any(case[8] != 1 for case in covered)  # dilation: one pass per tap
    assert any((case[3] // case[4]) % 4 != 0 for case in covered)  # channels left over
    assert any(by_pixels(case)[2] < case[0] for case in covered)  # several tiles per row
    assert len(covered) < len(grouped)  # stride 2 keeps the by-channels loops

    def grad_input_by_pixels(case):
        kernel = np.zeros((case[6][0], case[6][1], case[3] // case[4], case[5]))
        (out_h, out_w), scalars, _ = _geometry(case)
        grad_output = np.empty((case[0], out_h, out_w, case[5]))
        return conv_kernels._grad_input_by_pixels(grad_output, kernel, np.empty(case[:4]),
                                                  *scalars[:4])

    flipped = [case for case in grouped if grad_input_by_pixels(case)]
    assert len(flipped) >= 3
    assert any(case[8] != 1 for case in flipped)
    assert any(case[9] == "valid" for case in flipped)
    assert len(flipped) < len(grouped)


def test_cases_cover_the_forward_pass_of_few_terms():
    def few_terms(case):
        kernel = np.empty((case[6][0], case[6][1], case[3] // case[4], case[5]))
        return conv_kernels._few_terms(kernel, case[3])

    covered = [case for case in CASES if few_terms(case)]
    terms = {case[6][0] * case[6][1] * case[3] for case in covered}
    assert len(covered) >= 4
    assert max(terms) == conv_kernels.FEW_TERMS and min(terms) < conv_kernels.FEW_TERMS
    assert any(case[9] == "same" and case[7] > 1 and case[8] > 1 for case in covered)
    assert not few_terms((1, 5, 5, 2, 2, 4, (2, 2)))  # groups keep the per-group loops


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cases_cover_the_groups_of_four_by_spread(dtype):
    covered = [case for case in CASES if "groups_of_four_forward" in _register_kernels(case, dtype)]
    assert any(case[7] > 1 for case in covered)
    assert any(case[8] != 1 for case in covered)
    assert any(case[9] == "same" for case in covered)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cases_cover_few_channels_in_six_pixel_blocks(dtype):
    covered = [case for case in CASES if "few_channels_forward" in _register_kernels(case, dtype)]
    assert any(case[7] > 1 for case in covered)
    assert any(_geometry(case)[0][1] % 6 for case in covered)  # overlapping last group
    assert any(case[9] == "same" for case in covered) and any(case[9] == "valid"
                                                              for case in covered)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cases_cover_the_register_blocks_of_three_by_three_windows(dtype):
    # few_terms_forward's _three_by_three_pixels: 3x3 on one channel, consecutive
    # columns; cases with whole blocks, a spilled last block, strides, borders.
    block = 2 * simd.lanes(np.empty(1, dtype=dtype))

    def blocked(case):
        dilation_w = case[8][1] if isinstance(case[8], tuple) else case[8]
        return case[3] == 1 and case[6] == (3, 3) and dilation_w == 1 and case[5] >= block

    covered = [case for case in CASES if blocked(case)]
    # (few_terms_forward runs the blocks for fewer filters too, a block partly spilled.)
    assert any(case[5] % block == 0 for case in covered)
    assert any(case[5] % block != 0 for case in covered)
    assert any(case[7] > 1 for case in covered)
    assert any(case[9] == "same" for case in covered)


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[7], CASES[10], CASES[13],
                                  CASES[16], CASES[17], CASES[20], CASES[24], CASES[27]])
def test_nan_and_inf_reach_the_same_elements_as_in_the_reference(case):
    rng = np.random.default_rng(8)
    x, kernel, bias, grad_output = _arrays(case, np.float64, rng)
    kernel[...] = 0.0  # 0 * inf is nan: no product may be skipped
    x[0, 2, 3, 0] = np.inf
    x[-1, -1, -1, -1] = np.nan
    grad_output[0, 1, 2, 0] = np.inf
    options = _geometry(case)[2]
    out, grad_input, grad_kernel = _run(case, np.float64, "_serial", x, kernel, bias,
                                        grad_output)
    expected = (conv2d_reference(x, kernel, bias, **options),
                *conv2d_grads_reference(x, kernel, grad_output, **options)[:2])
    results = [out, grad_input, grad_kernel]
    for name in _register_kernels(case, np.float64):
        blocked = np.empty_like(out)
        getattr(conv_kernels, name + "_serial")(x, kernel, bias, blocked, *_geometry(case)[1])
        results.append(blocked)
        expected = (*expected, expected[0])
    for actual, wanted in zip(results, expected):
        np.testing.assert_array_equal(np.isnan(actual), np.isnan(wanted))
        np.testing.assert_array_equal(np.isinf(actual), np.isinf(wanted))


@pytest.mark.parametrize("case", [CASES[10], CASES[11], CASES[17]])
def test_inf_in_the_kernel_reaches_the_same_elements_as_in_the_reference(case):
    # The by-pixels paths add products of written zeros, and the few-terms pass
    # zero products past a window's terms: an infinite weight must give nan only
    # where padded arithmetic does (forward) and nowhere else.  (The other direct
    # loops skip the padding: nn.conv2d writes it out when the kernel is not finite.)
    rng = np.random.default_rng(9)
    x, kernel, bias, grad_output = _arrays(case, np.float64, rng)
    kernel[0, 0, 0, 0] = np.inf
    kernel[-1, -1, -1, -1] = -np.inf
    options = _geometry(case)[2]
    out, grad_input, _ = _run(case, np.float64, "_serial", x, kernel, bias, grad_output)
    expected = (conv2d_reference(x, kernel, bias, **options),
                conv2d_grads_reference(x, kernel, grad_output, **options)[0])
    for actual, wanted in zip((out, grad_input), expected):
        np.testing.assert_array_equal(np.isnan(actual), np.isnan(wanted))
        np.testing.assert_array_equal(np.isinf(actual), np.isinf(wanted))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_by_pixels_forward_with_a_vertical_stride_matches_the_reference(dtype):
    # Strides (2, 1): rows are skipped, pixels of a row stay vectorised.
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 10, 10, 16)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 4, 12)).astype(dtype)
    bias = rng.standard_normal(12).astype(dtype)
    pad_top, pad_bottom = same_padding_reference(10, 3, 2, 1)
    out_h = (10 + pad_top + pad_bottom - 3) // 2 + 1
    out = np.empty((3, out_h, 10, 12), dtype=dtype)
    assert conv_kernels._by_pixels(x, kernel, out, 1, 2, 1, 1)
    serial = np.empty_like(out)
    conv_kernels.conv2d_forward(x, kernel, bias, out, 2, 1, 1, 1, pad_top, 1)
    conv_kernels.conv2d_forward_serial(x, kernel, bias, serial, 2, 1, 1, 1, pad_top, 1)
    assert np.array_equal(out, serial)
    expected = conv2d_reference(x, kernel, bias, strides=(2, 1), padding="same", groups=4)
    tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(out, expected, **tolerance)
