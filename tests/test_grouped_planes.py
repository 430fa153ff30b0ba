"""The channels_first grouped (and depthwise) kernels of numconv/kernels/planes.py,
called directly.

Every case is compared with the float64 reference of tests/reference.py (padding
given explicitly), and in float32 the serial build with the parallel one, bit
for bit (float64 runs the serial builds only: compiling the parallel ones too
would double the file's time).  The cases reach the three ways through a
plane: flat (unit strides, output no wider than input), phases (other strides,
dilations and widths) and direct (weights with inf/nan), with tiles of whole
planes and of row blocks.  Non-finite values are checked against a direct loop
over the definition, which skips the taps that land in the padding.
"""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numconv.kernels import planes

from reference import conv2d_grads_reference, conv2d_reference

# (batch, groups, filters per group, (height, width), (kernel_h, kernel_w), strides,
#  dilation, ((pad_top, pad_bottom), (pad_left, pad_right))[, channels per group]);
# one channel per group (depthwise) unless given.
CASES = [
    (2, 3, 1, (9, 8), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),    # flat, 'same'
    (1, 2, 2, (7, 5), (3, 3), (1, 1), (1, 1), ((0, 0), (0, 0))),    # narrower, 'valid', M = 2
    (2, 2, 1, (7, 5), (5, 2), (2, 2), (1, 1), ((2, 1), (0, 1))),    # stride 2
    (1, 3, 2, (8, 9), (3, 3), (2, 1), (1, 1), ((1, 1), (1, 1))),    # strides (2, 1)
    (1, 3, 2, (8, 9), (3, 3), (1, 2), (1, 1), ((1, 1), (1, 1))),    # strides (1, 2)
    (2, 2, 1, (9, 11), (3, 3), (1, 1), (2, 2), ((2, 2), (2, 2))),   # flat, dilation 2
    (1, 2, 2, (7, 10), (5, 2), (1, 1), (1, 3), ((0, 3), (2, 1))),   # flat, dilation (1, 3)
    (1, 2, 1, (7, 10), (5, 2), (1, 1), (1, 3), ((1, 0), (0, 0))),   # narrower, dilation (1, 3)
    (1, 4, 1, (6, 7), (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),    # flat, 1x1
    (1, 2, 2, (7, 5), (5, 2), (1, 1), (1, 1), ((3, 0), (4, 1))),    # wider: pads > kernel
    (1, 1, 1, (5, 4), (3, 2), (1, 1), (1, 1), ((2, 2), (3, 3))),    # wider
    (1, 2, 1, (6, 9), (3, 3), (1, 1), (1, 1), ((1, 1), (2, 0))),    # narrower, edges both sides
    (1, 2, 1, (7, 10), (3, 3), (2, 2), (2, 2), ((1, 2), (2, 2))),   # stride and dilation
    (1, 2, 1, (8, 9), (2, 2), (3, 3), (1, 1), ((0, 1), (1, 0))),    # stride 3: phases without taps
    (2, 2, 2, (9, 7), (3, 2), (2, 3), (1, 2), ((1, 1), (0, 2))),    # strides (2, 3), dilation
    (2, 3, 2, (5, 6), (5, 5), (1, 1), (1, 1), ((2, 2), (2, 2))),    # flat, 5 taps a row
    (1, 2, 1, (6, 8), (2, 4), (1, 1), (1, 1), ((0, 1), (1, 2))),    # flat, 4 taps a row
    (1, 2, 1, (100, 100), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),  # flat, row-block tiles
    (1, 1, 2, (90, 70), (3, 3), (1, 1), (1, 1), ((0, 0), (0, 0))),    # narrower, row blocks
    (1, 1, 1, (300, 40), (3, 3), (1, 2), (1, 1), ((1, 1), (1, 1))),   # strided, row blocks
    (2, 1, 1, (150, 400), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),  # flat, one row per
    # block: over 256 blocks per filter
    # Several channels per group: phases for every job but the flat kernel gradient.
    (2, 2, 3, (9, 8), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), 4),   # 'same'
    (1, 3, 2, (7, 5), (3, 3), (1, 1), (1, 1), ((0, 0), (0, 0)), 2),   # 'valid'
    (2, 2, 2, (9, 7), (3, 2), (2, 3), (1, 2), ((1, 1), (0, 2)), 3),   # strides, dilation
    (1, 2, 1, (7, 10), (5, 2), (1, 1), (1, 3), ((0, 3), (2, 1)), 2),  # dilation (1, 3)
    (1, 1, 2, (90, 70), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), 3),  # row blocks
]

DTYPES = [np.float32, np.float64]
# Relative to the sum of the absolute values of the terms.
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def _geometry(case):
    _, _, _, (height, width), (kernel_h, kernel_w), (stride_h, stride_w), \
        (dilation_h, dilation_w), ((top, bottom), (left, right)) = case[:8]
    out_h = (height + top + bottom - (kernel_h - 1) * dilation_h - 1) // stride_h + 1
    out_w = (width + left + right - (kernel_w - 1) * dilation_w - 1) // stride_w + 1
    scalars = (stride_h, stride_w, dilation_h, dilation_w, top, left)
    return (out_h, out_w), scalars


def _options(case):
    groups, strides, dilation, pads = case[1], case[5], case[6], case[7]
    return dict(strides=strides, padding=pads, data_format="channels_first",
                dilation_rate=dilation, groups=groups)


def _group_channels(case):
    return case[8] if len(case) > 8 else 1


def _arrays(case, dtype, rng):
    batch, groups, multiplier, (height, width), (kernel_h, kernel_w) = case[:5]
    channels, filters = groups * _group_channels(case), groups * multiplier
    (out_h, out_w), _ = _geometry(case)
    x = rng.standard_normal((batch, channels, height, width)).astype(dtype)
    kernel = rng.standard_normal((kernel_h, kernel_w, _group_channels(case), filters)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype)
    grad_output = rng.standard_normal((batch, filters, out_h, out_w)).astype(dtype)
    return x, kernel, bias, grad_output


def _run(suffix, x, kernel, bias, grad_output, scalars):
    out = np.empty_like(grad_output)
    getattr(planes, "grouped_planes_forward" + suffix)(x, kernel, bias, out, *scalars)
    grad_input = np.empty_like(x)
    getattr(planes, "grouped_planes_grad_input" + suffix)(grad_output, kernel, grad_input,
                                                          *scalars)
    grad_kernel = np.empty_like(kernel)
    getattr(planes, "grouped_planes_grad_kernel" + suffix)(x, grad_output, grad_kernel,
                                                           *scalars)
    return out, grad_input, grad_kernel


def _assert_close(got, expected, magnitude, dtype):
    """|got - expected| within the dtype's tolerance times the terms' absolute sum."""
    error = np.abs(got.astype(np.float64) - expected)
    bound = TOLERANCE[dtype] * (magnitude + 1.0)
    assert got.shape == expected.shape
    assert np.all(error <= bound), f"worst error {np.max(error - bound) + bound.max():.3g}"


def _expected(case, x, kernel, bias, grad_output):
    """Reference results and, from the absolute values, the magnitudes of their terms."""
    options = _options(case)
    out = conv2d_reference(x, kernel, bias, **options)
    out_abs = conv2d_reference(np.abs(x), np.abs(kernel), np.abs(bias), **options)
    grads = conv2d_grads_reference(x, kernel, grad_output, **options)
    grads_abs = conv2d_grads_reference(np.abs(x), np.abs(kernel), np.abs(grad_output),
                                       **options)
    return (out, grads[0], grads[1]), (out_abs, grads_abs[0], grads_abs[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_kernels_match_reference_and_serial_equals_parallel(case, dtype):
    rng = np.random.default_rng(3)
    x, kernel, bias, grad_output = _arrays(case, dtype, rng)
    scalars = _geometry(case)[1]
    serial = _run("_serial", x, kernel, bias, grad_output, scalars)
    if dtype == np.float32:
        parallel = _run("", x, kernel, bias, grad_output, scalars)
        for s, p in zip(serial, parallel):
            assert s.dtype == dtype
            assert np.array_equal(s, p)
    expected, magnitudes = _expected(case, x, kernel, bias, grad_output)
    for got, want, magnitude in zip(serial, expected, magnitudes):
        _assert_close(got, want, magnitude, dtype)


def test_cases_reach_every_way_through_a_plane():
    def way(case):
        (out_h, out_w), (stride_h, stride_w, *_) = _geometry(case)
        if (stride_h, stride_w) != (1, 1):
            return "strided"  # phases
        width = case[3][1]
        # flat, flat in a scratch block (input gradient: phases), phases
        return "equal" if out_w == width else "narrower" if out_w < width else "wider"

    ways = [way(case) for case in CASES]
    for name in ("equal", "narrower", "wider", "strided"):
        assert ways.count(name) >= 2, name
    blocks = [case for case in CASES
              if _geometry(case)[0][0] > planes._rows_per_tile(*_geometry(case)[0])]
    assert {way(case) for case in blocks} >= {"equal", "narrower", "strided"}


# ---------------------------------------------------------------------------
# Determinism of the kernel gradient: serial, parallel, one or two threads.


# tiles by (f, c) pair, by (f, c, kh)
@pytest.mark.parametrize("channels, multiplier, groups", [(32, 1, 32), (4, 2, 4), (8, 4, 2)])
def test_grad_kernel_is_bit_identical_across_builds_and_thread_counts(channels, multiplier,
                                                                      groups):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, channels, 40, 40)).astype(np.float32)
    grad_output = rng.standard_normal((4, groups * multiplier, 40, 40)).astype(np.float32)
    scalars = (1, 1, 1, 1, 1, 1)
    serial = np.empty((3, 3, channels // groups, groups * multiplier), dtype=np.float32)
    planes.grouped_planes_grad_kernel_serial(x, grad_output, serial, *scalars)
    threads = numba.get_num_threads()
    try:
        for count in sorted({1, threads}):
            numba.set_num_threads(count)
            parallel = np.empty_like(serial)
            planes.grouped_planes_grad_kernel(x, grad_output, parallel, *scalars)
            assert np.array_equal(parallel, serial)
    finally:
        numba.set_num_threads(threads)
    expected = conv2d_grads_reference(x, np.zeros(serial.shape), grad_output, padding=1,
                                      data_format="channels_first", groups=groups)[1]
    magnitude = conv2d_grads_reference(np.abs(x), np.zeros(serial.shape), np.abs(grad_output),
                                       padding=1, data_format="channels_first",
                                       groups=groups)[1]
    _assert_close(serial, expected, magnitude, np.float32)


# ---------------------------------------------------------------------------
# Non-finite values: taps in the padding are skipped, never multiplied by zero.


def _direct(x, kernel, bias, grad_output, scalars):
    """(out, grad_input, grad_kernel) by loops over the definition, valid taps only."""
    out = np.empty(grad_output.shape)
    grad_input = np.zeros(x.shape)
    grad_kernel = np.zeros(kernel.shape)
    with np.errstate(invalid="ignore"):  # inf - inf: nan, as in the kernels
        _direct_loops(x, kernel, bias, grad_output, scalars, out, grad_input, grad_kernel)
    return out, grad_input, grad_kernel


def _direct_loops(x, kernel, bias, grad_output, scalars, out, grad_input, grad_kernel):
    stride_h, stride_w, dilation_h, dilation_w, top, left = scalars
    batch, channels, height, width = x.shape
    kernel_h, kernel_w, group_channels, filters = kernel.shape
    group_filters = filters // (channels // group_channels)
    for n, f, oh, ow in np.ndindex(batch, filters, out.shape[2], out.shape[3]):
        total = float(bias[f])
        for j, kh, kw in np.ndindex(group_channels, kernel_h, kernel_w):
            c = f // group_filters * group_channels + j
            ih = oh * stride_h + kh * dilation_h - top
            iw = ow * stride_w + kw * dilation_w - left
            if 0 <= ih < height and 0 <= iw < width:
                weight = float(kernel[kh, kw, j, f])
                total += float(x[n, c, ih, iw]) * weight
                grad = float(grad_output[n, f, oh, ow])
                grad_input[n, c, ih, iw] += grad * weight
                grad_kernel[kh, kw, j, f] += float(x[n, c, ih, iw]) * grad
        out[n, f, oh, ow] = total


NONFINITE_CASES = [
    (1, 2, 1, (6, 7), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),    # flat
    (1, 2, 2, (6, 7), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 0))),    # narrower
    (1, 2, 1, (6, 7), (3, 3), (2, 1), (1, 1), ((1, 1), (1, 1))),    # strided
    (1, 2, 2, (6, 7), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), 2),  # two channels per group
]


@pytest.mark.parametrize("case", NONFINITE_CASES)
def test_inf_weight_is_never_multiplied_by_padding(case):
    rng = np.random.default_rng(5)
    x, kernel, bias, grad_output = _arrays(case, np.float32, rng)
    kernel[0, 0, 0, 0] = np.inf
    kernel[2, 1, 0, 1] = -np.inf
    scalars = _geometry(case)[1]
    expected = _direct(x, kernel, bias, grad_output, scalars)
    for suffix in ("_serial", ""):
        out, grad_input, _ = _run(suffix, x, kernel, bias, grad_output, scalars)
        assert np.isfinite(out).any() and not np.isfinite(out).all()
        np.testing.assert_allclose(out, expected[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(grad_input, expected[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", NONFINITE_CASES)
def test_inf_data_reaches_only_the_taps_that_read_it(case):
    rng = np.random.default_rng(6)
    x, kernel, bias, grad_output = _arrays(case, np.float32, rng)
    # Next to row ends, where the flat loops of the kernel gradient read across rows.
    x[0, 0, 2, -1] = np.inf
    x[0, 1, 3, 0] = np.nan
    grad_output[0, 0, 1, 0] = -np.inf
    grad_output[0, -1, -1, -1] = np.inf
    scalars = _geometry(case)[1]
    expected = _direct(x, kernel, bias, grad_output, scalars)[2]
    for suffix in ("_serial", ""):
        grad_kernel = _run(suffix, x, kernel, bias, grad_output, scalars)[2]
        assert np.isfinite(grad_kernel).any() and not np.isfinite(grad_kernel).all()
        np.testing.assert_allclose(grad_kernel, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Odd corners.


@pytest.mark.parametrize("suffix", ["_serial", ""])
def test_empty_batch_writes_zero_kernel_gradient(suffix):
    x = np.empty((0, 2, 5, 5), dtype=np.float32)
    grad_output = np.empty((0, 2, 5, 5), dtype=np.float32)
    kernel = np.ones((3, 3, 1, 2), dtype=np.float32)
    out, grad_input = np.empty_like(grad_output), np.empty_like(x)
    getattr(planes, "grouped_planes_forward" + suffix)(x, kernel, np.zeros(2, np.float32), out,
                                                       1, 1, 1, 1, 1, 1)
    getattr(planes, "grouped_planes_grad_input" + suffix)(grad_output, kernel, grad_input,
                                                          1, 1, 1, 1, 1, 1)
    grad_kernel = np.full(kernel.shape, np.nan, dtype=np.float32)
    getattr(planes, "grouped_planes_grad_kernel" + suffix)(x, grad_output, grad_kernel,
                                                           1, 1, 1, 1, 1, 1)
    assert np.array_equal(grad_kernel, np.zeros(kernel.shape))


def test_serial_kernels_are_callable_from_user_njit_code():
    @numba.njit
    def user_forward(x, kernel, bias, stride, dilation, pad):
        out = np.empty((x.shape[0], kernel.shape[3], x.shape[2], x.shape[3]), dtype=x.dtype)
        planes.grouped_planes_forward_serial(x, kernel, bias, out, stride, stride, dilation,
                                             dilation, pad, pad)
        return out

    case = CASES[0]
    x, kernel, bias, _ = _arrays(case, np.float64, np.random.default_rng(8))
    expected = conv2d_reference(x, kernel, bias, **_options(case))
    np.testing.assert_allclose(user_forward(x, kernel, bias, 1, 1, 1), expected, rtol=1e-12,
                               atol=1e-12)


@st.composite
def geometries(draw):
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kernel_h, kernel_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    case = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 2)),
            (height, width), (kernel_h, kernel_w), strides, dilation, pads,
            draw(st.integers(1, 3)))
    (out_h, out_w), _ = _geometry(case)
    if out_h < 1 or out_w < 1:
        kernel_h, kernel_w = 1, 1  # always fits: stays a valid geometry
        case = case[:4] + ((1, 1),) + case[5:]
    return case


@given(geometries())
def test_random_geometries_match_reference(case):
    scalars = _geometry(case)[1]
    for dtype in DTYPES:
        x, kernel, bias, grad_output = _arrays(case, dtype, np.random.default_rng(9))
        serial = _run("_serial", x, kernel, bias, grad_output, scalars)
        if dtype == np.float32:
            parallel = _run("", x, kernel, bias, grad_output, scalars)
            assert all(np.array_equal(s, p) for s, p in zip(serial, parallel))
        expected, magnitudes = _expected(case, x, kernel, bias, grad_output)
        for got, want, magnitude in zip(serial, expected, magnitudes):
            _assert_close(got, want, magnitude, dtype)
