"""Every computation path of numconv.nn.conv2d / conv2d_grads, forced on small shapes.

The dispatch (numconv.nn.conv.forward_path, grad_input_path, grad_kernel_path)
normally sends small problems to the direct kernels; here each path is forced
and compared with the float64 reference, and the dispatch rules themselves are
checked on the benchmark suite's shape classes.
"""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numconv.nn as nn
from numconv.kernels import gemm as gemm_kernels
from numconv.kernels import conv as conv_kernels
from numconv.kernels import simd
from numconv import runtime
from numconv.nn import _conv_geometry, _winograd_strided
from numconv.nn import _conv_paths as nn_conv
from numconv.nn import conv as nn_conv_module
from numconv.nn._conv_geometry import ConvGeometry

from reference import conv2d_grads_reference, conv2d_reference

TOLERANCE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def assert_close(actual, expected, dtype):
    tol = TOLERANCE[np.dtype(dtype)]
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    assert actual.dtype == dtype
    scale = np.abs(expected).max(initial=0.0)
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=tol, atol=tol * scale)


def geometry_of(
    x_shape,
    kernel_shape,
    strides=1,
    padding="valid",
    data_format="channels_last",
    dilation_rate=1,
    groups=1,
):
    return ConvGeometry(
        np.empty(x_shape),
        np.empty(kernel_shape),
        strides,
        padding,
        data_format,
        dilation_rate,
        groups,
    )


def set_chunk_budget(monkeypatch, regime, budget):
    """Threaded im2col problems chunk by buffer bytes, Winograd lanes and
    single-threaded problems by product size."""
    if regime == "threaded":
        monkeypatch.setattr(runtime, "PARALLEL_MIN_WORK", 0)
        monkeypatch.setattr(nn_conv, "COLUMN_BUFFER_BYTES", budget)
        monkeypatch.setattr(nn_conv, "LANE_COLUMN_BUFFER_BYTES", budget)
        monkeypatch.setattr(nn_conv, "BLAS_SINGLE_THREAD_WORK", budget)
    else:
        monkeypatch.setattr(runtime, "PARALLEL_MIN_WORK", 1 << 62)
        monkeypatch.setattr(nn_conv, "BLAS_SINGLE_THREAD_WORK", budget)


def poison_buffers(monkeypatch):
    """numconv.nn's results and scratch buffers start full of NaN instead of whatever
    memory held, so that an element a path forgets to write shows up."""

    def allocate_nan(shape, dtype, what):
        return np.full(shape, np.nan, dtype=dtype)

    for module in (nn_conv, nn_conv_module, _conv_geometry, _winograd_strided):
        monkeypatch.setattr(module, "allocate", allocate_nan)


def force_paths(monkeypatch, forward=None, grad_input=None, grad_kernel=None):
    """Make the dispatch pick the given paths (None keeps the normal rule)."""
    if forward is not None:
        monkeypatch.setattr(nn_conv, "forward_path", lambda geometry: forward)
    if grad_input is not None:
        monkeypatch.setattr(nn_conv, "grad_input_path", lambda geometry: grad_input)
    if grad_kernel is not None:
        monkeypatch.setattr(nn_conv, "grad_kernel_path", lambda geometry: grad_kernel)


def assert_nonfinite_where_reference_has_them(x, kernel, grad_output, **options):
    """conv2d and its gradients hold NaN and Inf exactly where the reference does."""
    out = nn.conv2d(x, kernel, **options)
    expected = conv2d_reference(x, kernel, **options)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
    grads = nn.conv2d_grads(x, kernel, grad_output, **options)
    expected_grads = conv2d_grads_reference(x, kernel, grad_output, **options)
    for grad, expected_grad in zip(grads, expected_grads):
        np.testing.assert_array_equal(np.isnan(grad), np.isnan(expected_grad))
        np.testing.assert_array_equal(np.isinf(grad), np.isinf(expected_grad))


def check_problem(rng, x_shape, kernel_shape, dtype, **options):
    x = rng.standard_normal(x_shape).astype(dtype)
    kernel = rng.standard_normal(kernel_shape).astype(dtype)
    bias = rng.standard_normal(kernel_shape[-1]).astype(dtype)
    out = nn.conv2d(x, kernel, bias, **options)
    assert_close(out, conv2d_reference(x, kernel, bias, **options), np.dtype(dtype))
    grad_output = rng.standard_normal(out.shape).astype(dtype)
    grads = nn.conv2d_grads(x, kernel, grad_output, **options)
    expected = conv2d_grads_reference(x, kernel, grad_output, **options)
    for grad, expected_grad in zip(grads, expected):
        assert_close(grad, expected_grad, np.dtype(dtype))


# Problems every general path can take: strides, dilations, asymmetric 'same'
# (stride 2 with even sizes), explicit padding wider than the kernel, 1-row images.
GENERAL_PROBLEMS = [
    ((2, 9, 11, 5), (3, 3, 5, 7), dict(padding="same")),
    ((2, 10, 8, 4), (4, 4, 4, 6), dict(strides=2, padding="same")),
    ((3, 9, 12, 3), (3, 2, 3, 5), dict(strides=(3, 2), padding="valid")),
    ((2, 11, 10, 4), (3, 3, 4, 4), dict(dilation_rate=(2, 3), padding="same")),
    ((2, 7, 6, 3), (2, 3, 3, 4), dict(padding=((4, 1), (0, 5)))),
    ((1, 1, 9, 2), (1, 3, 2, 3), dict(padding="same")),
    ((2, 16, 4, 6), (3, 3, 16, 5), dict(padding="valid", data_format="channels_first")),
    ((2, 8, 5, 3), (5, 5, 3, 2), dict(strides=2, padding="same")),  # kernel wider than image
    (
        (3, 4, 9, 7),
        (3, 2, 4, 5),
        dict(strides=(2, 1), padding="same", data_format="channels_first"),
    ),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel_shape, options", GENERAL_PROBLEMS)
@pytest.mark.parametrize(
    "forward, grad_input, grad_kernel",
    [
        ("gemm", "col2im", "gemm"),
        ("direct", "direct", "direct"),
    ],
)
def test_general_paths_match_reference(
    monkeypatch, forward, grad_input, grad_kernel, x_shape, kernel_shape, options, dtype
):
    force_paths(monkeypatch, forward, grad_input, grad_kernel)
    check_problem(np.random.default_rng(1), x_shape, kernel_shape, dtype, **options)


def as_channels_first(problem):
    x_shape, kernel_shape, options = problem
    if options.get("data_format") == "channels_first":
        return problem
    batch, height, width, channels = x_shape
    return (batch, channels, height, width), kernel_shape, dict(options, data_format="channels_first")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("regime, budget", [("threaded", 300), ("single", 2000), ("single", 1 << 19)])
@pytest.mark.parametrize(
    "x_shape, kernel_shape, options", [as_channels_first(p) for p in GENERAL_PROBLEMS]
)
def test_gemm_paths_on_channels_first_planes(
    monkeypatch, regime, budget, x_shape, kernel_shape, options, dtype
):
    # im2col, col2im and the kernel gradient read and write the planes themselves,
    # over several chunks per image.
    set_chunk_budget(monkeypatch, regime, budget)
    force_paths(monkeypatch, "gemm", "col2im", "gemm")
    check_problem(np.random.default_rng(11), x_shape, kernel_shape, dtype, **options)


# One input channel and at most 15 taps in channels_first (lenet1): the forward pass
# and the input gradient run on the depthwise planes kernels (F filters per channel).
SINGLE_CHANNEL_PROBLEMS = [
    ((2, 1, 9, 8), (3, 3, 1, 5), dict(padding="same")),
    ((2, 1, 10, 9), (3, 3, 1, 4), dict(strides=2, padding="same")),  # asymmetric 'same'
    ((1, 1, 11, 12), (3, 2, 1, 3), dict(dilation_rate=2, padding="valid")),
    ((2, 3, 1, 7, 6), (2, 2, 1, 4), dict(padding=((2, 0), (1, 3)))),  # batch (2, 3)
]


@pytest.mark.parametrize("dtype, regime", [(np.float32, "threaded"), (np.float64, "single")])
@pytest.mark.parametrize("x_shape, kernel_shape, options", SINGLE_CHANNEL_PROBLEMS)
def test_single_channel_channels_first_runs_on_the_planes(
    monkeypatch, x_shape, kernel_shape, options, dtype, regime
):
    options = dict(options, data_format="channels_first")
    geometry = geometry_of(x_shape, kernel_shape, **options)
    assert nn_conv_module._planes_jobs(geometry) == ("forward", "grad_input")
    monkeypatch.setattr(runtime, "PARALLEL_MIN_WORK", 0 if regime == "threaded" else 1 << 62)
    poison_buffers(monkeypatch)
    check_problem(np.random.default_rng(12), x_shape, kernel_shape, dtype, **options)


def test_single_channel_rule_keeps_larger_kernels_and_channels_last_off_the_planes():
    planes_jobs = nn_conv_module._planes_jobs
    cf = dict(data_format="channels_first")
    assert planes_jobs(geometry_of((2, 1, 28, 28), (5, 5, 1, 8), **cf)) == ()
    assert planes_jobs(geometry_of((2, 2, 28, 28), (3, 3, 2, 8), **cf)) == ()
    assert planes_jobs(geometry_of((2, 28, 28, 1), (3, 3, 1, 8))) == ()


def spy_on_kernels(monkeypatch, name):
    """A list that gets one entry per call of the kernel pair ``name`` (both builds)."""
    calls = []
    for build in (name, name + "_serial"):
        kernel = getattr(conv_kernels, build)
        monkeypatch.setattr(conv_kernels, build,
                            lambda *args, kernel=kernel: calls.append(kernel(*args)))
    return calls


# One input channel, 3x3, channels_last, a block of two vectors of filters or more
# (lenet1): kernels.conv.few_terms_forward, the weights in vector registers.
BLOCK_PROBLEMS = [
    ((2, 9, 8, 1), (3, 3, 1, 40), dict(padding="same"), True),
    ((2, 3, 10, 9, 1), (3, 3, 1, 32), dict(strides=2, padding="valid"), True),  # batch (2, 3)
    ((2, 9, 12, 1), (3, 3, 1, 48), dict(dilation_rate=(2, 1), padding="same"), True),
    ((2, 9, 12, 1), (3, 3, 1, 48), dict(dilation_rate=(1, 2), padding="same"), False),
    ((2, 9, 8, 1), (3, 3, 1, 8), dict(padding="same"), False),  # fewer filters than a block
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel_shape, options, blocks", BLOCK_PROBLEMS)
def test_three_by_three_one_channel_runs_in_register_blocks(
    monkeypatch, x_shape, kernel_shape, options, blocks, dtype
):
    geometry = geometry_of(x_shape, kernel_shape, **options)
    assert nn_conv.forward_path(geometry) == "direct"
    assert nn_conv.three_by_three_blocks(geometry, dtype) == blocks
    calls = spy_on_kernels(monkeypatch, "few_terms_forward")
    check_problem(np.random.default_rng(14), x_shape, kernel_shape, dtype, **options)
    assert len(calls) == int(blocks)


# Groups of four channels and four filters, the filters a multiple of four vectors
# (grouped32): kernels.conv.groups_of_four_forward.
GROUPS_OF_FOUR_PROBLEMS = [
    ((2, 9, 8, 64), (3, 3, 4, 64), dict(padding="same", groups=16), True),
    ((2, 10, 9, 128), (3, 3, 4, 128), dict(strides=2, padding="same", groups=32), True),
    ((2, 9, 8, 64), (3, 3, 4, 64), dict(dilation_rate=2, padding="valid", groups=16), True),
    ((2, 9, 8, 16), (3, 3, 4, 16), dict(padding="same", groups=4), False),  # under 4 vectors
    ((2, 9, 8, 64), (3, 3, 8, 32), dict(padding="same", groups=8), False),  # 8 x 4 groups
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel_shape, options, spread", GROUPS_OF_FOUR_PROBLEMS)
def test_groups_of_four_run_by_spread(monkeypatch, x_shape, kernel_shape, options, spread, dtype):
    geometry = geometry_of(x_shape, kernel_shape, **options)
    assert nn_conv.forward_path(geometry) == "direct"
    calls = spy_on_kernels(monkeypatch, "groups_of_four_forward")
    check_problem(np.random.default_rng(15), x_shape, kernel_shape, dtype, **options)
    assert len(calls) == int(spread)


# One group of at most four channels, a window of more than nine terms, no dilation
# (stem7x7s2): kernels.conv.few_channels_forward, in channels_last only.
FEW_CHANNELS_PROBLEMS = [
    ((2, 17, 19, 3), (7, 7, 3, 64), dict(strides=2, padding="same"), True),
    ((2, 3, 12, 14, 1), (5, 5, 1, 64), dict(padding="valid"), True),  # batch (2, 3)
    ((1, 11, 13, 4), (3, 4, 4, 128), dict(strides=(1, 2), padding=((2, 0), (1, 3))), True),
    ((2, 17, 19, 3), (7, 7, 3, 64), dict(dilation_rate=2, padding="same"), False),
    ((2, 17, 19, 3), (7, 7, 3, 40), dict(padding="same"), False),  # not whole vectors
    ((2, 17, 19, 3), (7, 7, 3, 64), dict(padding="same", data_format="channels_first"), False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel_shape, options, blocks", FEW_CHANNELS_PROBLEMS)
def test_few_channels_run_in_six_pixel_blocks(
    monkeypatch, x_shape, kernel_shape, options, blocks, dtype
):
    calls = spy_on_kernels(monkeypatch, "few_channels_forward")
    x_shape = x_shape if options.get("data_format") != "channels_first" else (
        x_shape[0], x_shape[3], x_shape[1], x_shape[2])
    check_problem(np.random.default_rng(16), x_shape, kernel_shape, dtype, **options)
    assert len(calls) == int(blocks)


def test_register_blocks_need_a_block_of_filters():
    geometry = geometry_of((1, 8, 8, 1), (3, 3, 1, 16))  # the digits example's first layer
    lanes32, lanes64 = simd.VECTOR_BITS // 32, simd.VECTOR_BITS // 64
    assert nn_conv.three_by_three_blocks(geometry, np.float32) == (16 >= 2 * lanes32)
    assert nn_conv.three_by_three_blocks(geometry, np.float64) == (16 >= 2 * lanes64)


# channels_first with groups of several channels: the planes kernels, the kernel
# gradient too with unit strides and few (channel, filter) pairs per group.
GROUPED_PROBLEMS = [
    ((2, 8, 9, 8), (3, 3, 4, 6), dict(padding="same", groups=2)),
    ((3, 6, 10, 9), (3, 3, 2, 6), dict(strides=2, padding="same", groups=3)),
    ((1, 4, 11, 12), (3, 2, 2, 4), dict(dilation_rate=2, padding="valid", groups=2)),
    ((2, 3, 4, 7, 6), (2, 2, 2, 4), dict(padding=((2, 0), (1, 3)), groups=2)),  # batch (2, 3)
]


@pytest.mark.parametrize("dtype, regime", [(np.float32, "threaded"), (np.float64, "single")])
@pytest.mark.parametrize("x_shape, kernel_shape, options", GROUPED_PROBLEMS)
def test_grouped_channels_first_runs_on_the_planes(
    monkeypatch, x_shape, kernel_shape, options, dtype, regime
):
    options = dict(options, data_format="channels_first")
    jobs = nn_conv_module._planes_jobs(geometry_of(x_shape, kernel_shape, **options))
    assert jobs[:2] == ("forward", "grad_input")
    monkeypatch.setattr(runtime, "PARALLEL_MIN_WORK", 0 if regime == "threaded" else 1 << 62)
    poison_buffers(monkeypatch)
    check_problem(np.random.default_rng(12), x_shape, kernel_shape, dtype, **options)


def test_grouped_rule_keeps_large_groups_and_strides_off_the_planes_kernel_gradient():
    planes_jobs = nn_conv_module._planes_jobs
    cf = dict(data_format="channels_first", padding="same")
    all_jobs = ("forward", "grad_input", "grad_kernel")
    # grouped32: 4 x 4 pairs per group; 8 x 8 is the most
    assert planes_jobs(geometry_of((2, 128, 28, 28), (3, 3, 4, 128), groups=32, **cf)) == all_jobs
    assert planes_jobs(geometry_of((2, 64, 28, 28), (3, 3, 8, 64), groups=8, **cf)) == all_jobs
    assert planes_jobs(geometry_of((2, 64, 28, 28), (3, 3, 16, 64), groups=4, **cf)) == (
        "forward", "grad_input")
    assert planes_jobs(geometry_of((2, 64, 28, 28), (3, 3, 4, 64), groups=16, strides=2,
                                   **cf)) == ("forward", "grad_input")
    assert planes_jobs(geometry_of((2, 28, 28, 64), (3, 3, 4, 64), groups=16,
                                   padding="same")) == ()


@pytest.mark.parametrize("where", ["x", "kernel", "grad_output"])
@pytest.mark.parametrize(
    "channels, groups, paths",
    [
        (1, 1, ("direct", "direct", "direct")),
        (1, 1, ("gemm", "col2im", "gemm")),
        (4, 2, ("direct", "direct", "direct")),  # groups: the direct kernels only
    ],
)
def test_channels_first_planes_keep_inf_and_nan_where_they_belong(
    monkeypatch, where, paths, channels, groups
):
    # A non-finite weight must meet the padding's zeros (0 * inf = nan) as in the
    # reference: the forward pass then leaves the planes, which skip padded taps.
    # (One channel, and groups of two channels.)
    force_paths(monkeypatch, *paths)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, channels, 6, 7))
    kernel = rng.standard_normal((3, 3, channels // groups, 4))
    grad_output = rng.standard_normal((2, 4, 3, 4))
    target = {"x": x, "kernel": kernel, "grad_output": grad_output}[where]
    target.flat[-1] = np.inf  # the kernel's bottom-right tap: it meets the padding
    target.flat[target.size // 2] = np.nan
    assert_nonfinite_where_reference_has_them(
        x, kernel, grad_output, strides=2, padding="same", data_format="channels_first",
        groups=groups,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape, kernel_shape, options",
    [problem for problem in GENERAL_PROBLEMS if problem[2].get("strides", 1) == 1],
)
def test_flipped_input_gradient_matches_reference(
    monkeypatch, x_shape, kernel_shape, options, dtype
):
    force_paths(monkeypatch, "gemm", "flipped", "gemm")
    check_problem(np.random.default_rng(2), x_shape, kernel_shape, dtype, **options)


# 3x3, stride 1: what Winograd F(2x2, 3x3) and F(4x4, 3x3) take.  Odd output sizes
# (partial tiles), pads wider than the kernel (negative pads in the flipped
# input gradient), one-row images, channels_first, dilations.
WINOGRAD_PROBLEMS = [
    ((2, 9, 11, 5), (3, 3, 5, 7), dict(padding="same")),
    ((2, 8, 6, 4), (3, 3, 4, 3), dict(padding="valid")),
    ((1, 7, 6, 3), (3, 3, 3, 4), dict(padding=((4, 1), (0, 5)))),
    ((3, 1, 5, 2), (3, 3, 2, 2), dict(padding="same")),
    ((2, 6, 5, 7), (3, 3, 6, 5), dict(padding="same", data_format="channels_first")),
    # channels_first by groups of images per lane (odd batches: a short last group).
    ((5, 3, 7, 6), (3, 3, 3, 4), dict(padding="same", data_format="channels_first")),
    ((3, 4, 9, 6), (3, 3, 4, 5), dict(padding=((2, 0), (1, 3)), data_format="channels_first")),
    ((2, 4, 12, 10), (3, 3, 4, 3), dict(padding="same", dilation_rate=2,
                                        data_format="channels_first")),
    # Dilated: tiles of outputs dilation apart, one polyphase component each (sizes
    # not divisible by the dilation leave some tiles part or all of a phase short).
    ((2, 11, 10, 4), (3, 3, 4, 3), dict(padding="same", dilation_rate=2)),
    ((1, 9, 13, 3), (3, 3, 3, 2), dict(padding=((5, 0), (1, 2)), dilation_rate=(2, 3))),
    ((2, 1, 7, 2), (3, 3, 2, 3), dict(padding="same", dilation_rate=(2, 1))),
    ((1, 12, 12, 2), (3, 3, 2, 2), dict(padding="valid", dilation_rate=4)),
    ((2, 12, 10, 4), (3, 3, 4, 3), dict(padding="same", dilation_rate=2)),
    ((2, 12, 10, 4), (3, 3, 4, 3), dict(padding=((1, 3), (1, 3)), dilation_rate=2)),
    ((3, 3, 8, 9), (3, 3, 3, 2), dict(padding="same", dilation_rate=(2, 3),
                                      data_format="channels_first")),
]


# (tile size, chunk regime, budget, dtype): F(4x4, 3x3) serves float64 only.
WINOGRAD_RUNS = [
    (2, regime, budget, dtype)
    for regime, budget in [
        ("threaded", 64),
        ("threaded", 2 << 20),
        ("single", 1),
        ("single", 300),
        ("single", 1 << 19),
    ]
    for dtype in (np.float32, np.float64)
] + [
    (4, regime, budget, np.float64)
    for regime, budget in [("threaded", 64), ("single", 1), ("single", 1 << 19)]
]


@pytest.mark.parametrize("x_shape, kernel_shape, options", WINOGRAD_PROBLEMS)
@pytest.mark.parametrize("tile_size, regime, budget, dtype", WINOGRAD_RUNS)
def test_winograd_paths_match_reference(
    monkeypatch, tile_size, regime, budget, x_shape, kernel_shape, options, dtype
):
    # Winograd forward and kernel gradient, and the stride-1 input gradient through
    # Winograd too, in either tiling; small budgets give one tile per chunk.
    monkeypatch.setattr(nn_conv, "winograd_tile_size", lambda *shape_and_dtype: tile_size)
    set_chunk_budget(monkeypatch, regime, budget)
    monkeypatch.setattr(nn_conv, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(nn_conv, "WINOGRAD_MIN_TILES", 1)
    poison_buffers(monkeypatch)
    force_paths(monkeypatch, "winograd", "flipped", "winograd")
    check_problem(np.random.default_rng(8), x_shape, kernel_shape, dtype, **options)


@pytest.mark.parametrize(
    "out_h, out_w, expected",
    [
        # multiplies, F(4x4, 3x3) against F(2x2, 3x3): ceil(OH / m) * ceil(OW / m) * (m + 2)**2
        (56, 56, 4),  # 196 * 36 = 7056 against 784 * 16 = 12544
        (13, 13, 4),  # lenet2's input gradient: 16 * 36 = 576 against 49 * 16 = 784
        (3, 3, 4),  # 36 against 64
        (6, 6, 2),  # 144 against 144: the tie stays on the smaller tiles
        (2, 2, 2),  # 36 against 16
        (1, 9, 2),  # 3 * 36 = 108 against 5 * 16 = 80
    ],
)
def test_winograd_tiling_takes_fewer_multiplies_in_float64_only(out_h, out_w, expected):
    assert nn_conv.winograd_tile_size(out_h, out_w, np.float64) == expected
    assert nn_conv.winograd_tile_size(out_h, out_w, np.float32) == 2


def test_winograd_float32_stays_within_tolerance_on_a_long_sum(monkeypatch):
    # 576-term sums (resnet-like channels): the transforms' rounding stays far below 1e-5.
    force_paths(monkeypatch, "winograd", "flipped", "winograd")
    check_problem(
        np.random.default_rng(9), (2, 10, 9, 64), (3, 3, 64, 32), np.float32, padding="same"
    )


# Kernels spanning two strides: Winograd F(3x3, 2x2) over the input's stride phases.
# Asymmetric 'same' pads, 'valid' with a last row and column no window reads, explicit
# pads, kernels leaving phase taps zero (3x3, 4x3 and 5x4 over strides 2 and (3, 2)),
# partial 3x3 tiles, one-row outputs, channels_first.
STRIDED_WINOGRAD_PROBLEMS = [
    ((2, 10, 8, 4), (4, 4, 4, 6), dict(strides=2, padding="same")),
    ((2, 9, 11, 3), (3, 3, 3, 5), dict(strides=2, padding="same")),
    ((1, 13, 13, 2), (4, 4, 2, 3), dict(strides=2, padding="valid")),
    ((1, 12, 11, 2), (4, 3, 2, 3), dict(strides=2, padding="valid")),
    ((2, 14, 11, 3), (5, 4, 3, 4), dict(strides=(3, 2), padding=((2, 3), (1, 0)))),
    ((2, 3, 5, 7), (4, 4, 3, 2), dict(strides=2, padding="same", data_format="channels_first")),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel_shape, options", STRIDED_WINOGRAD_PROBLEMS)
@pytest.mark.parametrize("regime, budget", [("threaded", 64), ("single", 1 << 19)])
def test_strided_winograd_paths_match_reference(
    monkeypatch, regime, budget, x_shape, kernel_shape, options, dtype
):
    set_chunk_budget(monkeypatch, regime, budget)
    poison_buffers(monkeypatch)
    force_paths(monkeypatch, "winograd_strided", "winograd_strided", "winograd_strided")
    check_problem(np.random.default_rng(14), x_shape, kernel_shape, dtype, **options)


@settings(max_examples=40)
@given(st.data())
def test_random_problems_on_the_strided_winograd_path(data):
    # Any kernel spanning two strides on each axis: 2 < K / s <= 2 rounds up to 2.
    strides = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    kernel_size = tuple(data.draw(st.integers(s + 1, 2 * s)) for s in strides)
    padding = data.draw(st.sampled_from(["valid", "same", 1, ((0, 3), (2, 1))]))
    height, width = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    batch, channels, filters = (data.draw(st.integers(1, 3)) for _ in range(3))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    options = dict(strides=strides, padding=padding)
    try:
        geometry_of((batch, height, width, channels), (*kernel_size, channels, filters), **options)
    except ValueError:
        return  # empty output: covered by tests/test_nn_conv.py
    problem = ((batch, height, width, channels), (*kernel_size, channels, filters), options)
    if data.draw(st.booleans()):
        problem = as_channels_first(problem)
    with pytest.MonkeyPatch.context() as monkeypatch:
        set_chunk_budget(monkeypatch, data.draw(st.sampled_from(["threaded", "single"])), 64)
        poison_buffers(monkeypatch)
        force_paths(monkeypatch, "winograd_strided", "winograd_strided", "winograd_strided")
        check_problem(np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))), *problem[:2],
                      dtype, **problem[2])


def test_winograd_kernel_gradient_blocks_rows_when_few_tiles_fit_one_thread(monkeypatch):
    # pix2pix4x4's 256 phase channels x 128 filters: 15 tiles would fit one thread's
    # product; chunks take 64 tiles instead, in products of 32 channel rows.
    assert nn_conv._grad_kernel_blocking(256, 128) == (64, 32)
    assert nn_conv._grad_kernel_blocking(64, 64) == (127, 64)  # resnet3x3: unchanged
    assert nn_conv._grad_kernel_blocking(2 * 67, 128) == (30, 134)  # no divisor in 8..63
    # The same on small problems (16 channels or phase channels, 6 filters): blocks of 8.
    monkeypatch.setattr(runtime, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(nn_conv, "BLAS_SINGLE_THREAD_WORK", 300)
    monkeypatch.setattr(nn_conv, "GRAD_KERNEL_TILES", 5)
    monkeypatch.setattr(nn_conv, "WINOGRAD_MIN_CHANNELS", 1)
    assert nn_conv._grad_kernel_blocking(16, 6) == (5, 8)
    force_paths(monkeypatch, "winograd_strided", "winograd_strided", "winograd_strided")
    rng = np.random.default_rng(16)
    check_problem(rng, (2, 10, 8, 4), (4, 4, 4, 6), np.float64, strides=2, padding="same")
    force_paths(monkeypatch, "winograd", "flipped", "winograd")
    check_problem(rng, (2, 9, 7, 16), (3, 3, 16, 6), np.float64, padding="same")


@pytest.mark.parametrize("where", ["x", "kernel", "grad_output"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_inf_and_nan_stay_where_they_belong_on_the_strided_winograd_path(
    monkeypatch, where, data_format
):
    # Each job falls back to im2col / col2im when its transforms would meet the value.
    force_paths(monkeypatch, "winograd_strided", "winograd_strided", "winograd_strided")
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 9, 8, 3))
    kernel = rng.standard_normal((4, 4, 3, 4))
    grad_output = rng.standard_normal((2, 5, 4, 4))
    target = {"x": x, "kernel": kernel, "grad_output": grad_output}[where]
    target.flat[5] = np.inf
    target.flat[target.size // 2] = np.nan
    options = dict(strides=2, padding="same", data_format=data_format)
    if data_format == "channels_first":
        x, grad_output = np.moveaxis(x, -1, 1), np.moveaxis(grad_output, -1, 1)
    assert_nonfinite_where_reference_has_them(x, kernel, grad_output, **options)


@pytest.mark.parametrize("regime", ["threaded", "single"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pointwise_matmul_path_matches_reference(monkeypatch, data_format, dtype, regime):
    # 210 output rows: several tiles of the bias addition, serial and parallel build.
    force_paths(monkeypatch, "matmul", "matmul", "matmul")
    runtime_threshold = 0 if regime == "threaded" else 1 << 62
    monkeypatch.setattr(runtime, "PARALLEL_MIN_WORK", runtime_threshold)
    x_shape = (2, 3, 5, 7, 6) if data_format == "channels_last" else (2, 3, 6, 5, 7)
    check_problem(
        np.random.default_rng(3),
        x_shape,
        (1, 1, 6, 4),
        dtype,
        padding="same",
        data_format=data_format,
    )


def test_pointwise_channels_first_with_an_empty_batch(monkeypatch):
    force_paths(monkeypatch, "matmul", "matmul", "matmul")
    x = np.ones((0, 3, 4, 5), np.float32)
    kernel = np.ones((1, 1, 3, 2), np.float32)
    out = nn.conv2d(x, kernel, np.ones(2, np.float32), data_format="channels_first")
    assert out.shape == (0, 2, 4, 5) and out.dtype == np.float32
    grads = nn.conv2d_grads(
        x, kernel, np.ones((0, 2, 4, 5), np.float32), data_format="channels_first"
    )
    assert grads[0].shape == x.shape
    np.testing.assert_array_equal(grads[1], np.zeros(kernel.shape))
    np.testing.assert_array_equal(grads[2], np.zeros(2))


@pytest.mark.parametrize(
    "regime, budget",
    [
        ("threaded", 1),
        ("threaded", 300),
        ("threaded", 4000),
        ("single", 1),
        ("single", 3000),
    ],
)
@pytest.mark.parametrize("grad_input", ["col2im", "flipped"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_chunks_across_images_and_a_partial_last_chunk(
    monkeypatch, regime, budget, grad_input, data_format
):
    # A tiny budget: one row per chunk, or chunks that straddle two images (channels
    # last) and a last chunk shorter than the others.
    set_chunk_budget(monkeypatch, regime, budget)
    force_paths(monkeypatch, "gemm", grad_input, "gemm")
    x_shape = (3, 7, 5, 3) if data_format == "channels_last" else (3, 3, 7, 5)
    check_problem(
        np.random.default_rng(4),
        x_shape,
        (3, 3, 3, 4),
        np.float64,
        padding="same",
        dilation_rate=(1, 2),
        data_format=data_format,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "data_format, lanes_function",
    [("channels_last", "_gemm_forward_lanes"), ("channels_first", "_gemm_forward_planes_lanes")],
)
def test_gemm_forward_in_lanes_matches_reference_for_any_thread_count(
    monkeypatch, dtype, data_format, lanes_function
):
    # Few columns and filters (stem-like): the threaded im2col forward runs in lanes,
    # several chunks per lane, products in pieces of 5 pixels with a shorter last one
    # (channels_first: chunks end at image ends, out_w = 9 is not a multiple of 5).
    monkeypatch.setattr(runtime, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(nn_conv, "LANE_MIN_PIXELS", 5)
    monkeypatch.setattr(nn_conv, "BLAS_SINGLE_THREAD_WORK", 5 * 3 * 3 * 3 * 6)
    monkeypatch.setattr(nn_conv, "LANE_COLUMN_BUFFER_BYTES", 2 * 9 * 27 * 8)
    force_paths(monkeypatch, "gemm", "col2im", "gemm")
    lanes = []
    original = getattr(nn_conv, lanes_function)
    monkeypatch.setattr(nn_conv, lanes_function, lambda *args: lanes.append(1) or original(*args))
    rng = np.random.default_rng(13)
    x = rng.standard_normal((3, 17, 18, 3)).astype(dtype)
    if data_format == "channels_first":
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    kernel = rng.standard_normal((3, 3, 3, 6)).astype(dtype)
    bias = rng.standard_normal(6).astype(dtype)
    options = dict(strides=2, padding="same", data_format=data_format)
    results = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        with runtime.num_threads(threads):
            results.append(nn.conv2d(x, kernel, bias, **options))
    assert lanes == [1, 1]
    assert np.array_equal(results[0], results[1])
    assert_close(results[0], conv2d_reference(x, kernel, bias, **options), np.dtype(dtype))


@settings(max_examples=40)
@given(st.data())
def test_random_problems_on_forced_gemm_paths(data):
    channels = data.draw(st.integers(1, 5))
    filters = data.draw(st.integers(1, 5))
    kernel_size = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    strides = data.draw(st.sampled_from([1, 2, (1, 3), (2, 1)]))
    dilation_rate = data.draw(st.sampled_from([1, 2, (2, 1)])) if strides == 1 else 1
    padding = data.draw(st.sampled_from(["valid", "same", 1, ((0, 3), (2, 1))]))
    height, width = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 8))
    batch = data.draw(st.integers(1, 3))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    regime = data.draw(st.sampled_from(["threaded", "single"]))
    budget = data.draw(st.sampled_from([64, 1000, 2 << 20]))
    grad_input = "flipped" if strides == 1 and data.draw(st.booleans()) else "col2im"
    channels_first = data.draw(st.booleans())
    options = dict(strides=strides, dilation_rate=dilation_rate, padding=padding)
    try:
        conv2d_reference(
            np.zeros((1, height, width, channels)),
            np.zeros((*kernel_size, channels, filters)),
            **options,
        )
        geometry_of((batch, height, width, channels), (*kernel_size, channels, filters), **options)
    except ValueError:
        return  # empty output: covered by tests/test_nn_conv.py
    with pytest.MonkeyPatch.context() as monkeypatch:
        set_chunk_budget(monkeypatch, regime, budget)
        force_paths(monkeypatch, "gemm", grad_input, "gemm")
        problem = ((batch, height, width, channels), (*kernel_size, channels, filters), options)
        x_shape, kernel_shape, options = as_channels_first(problem) if channels_first else problem
        check_problem(
            np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))),
            x_shape,
            kernel_shape,
            dtype,
            **options,
        )


def test_nan_and_inf_propagate_through_blas(monkeypatch):
    force_paths(monkeypatch, "gemm", "col2im", "gemm")
    x = np.ones((1, 6, 6, 3))
    x[0, 2, 2, 1] = np.nan
    x[0, 0, 5, 0] = np.inf
    kernel = np.zeros((2, 2, 3, 3))  # 0 * inf and 0 * nan are nan
    out = nn.conv2d(x, kernel)
    expected = conv2d_reference(x, kernel)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    assert np.isnan(out).any() and not np.isnan(out).all()
    grads = nn.conv2d_grads(x, kernel, np.ones(out.shape))
    for grad, expected_grad in zip(grads, conv2d_grads_reference(x, kernel, np.ones(out.shape))):
        np.testing.assert_array_equal(np.isnan(grad), np.isnan(expected_grad))


@pytest.mark.parametrize("where", ["x", "kernel", "grad_output"])
@pytest.mark.parametrize("dilation_rate", [1, 2])
@pytest.mark.parametrize("height", [9, 8])  # 9: a short last row of tiles
@pytest.mark.parametrize("dtype", [np.float64, np.float32])  # F(4x4, 3x3), F(2x2, 3x3)
@pytest.mark.parametrize("padding", ["same", "valid"])  # 'valid': edge rows in one band only
def test_inf_and_nan_stay_where_they_belong_on_the_winograd_path(
    monkeypatch, where, dilation_rate, height, dtype, padding
):
    # Winograd's transforms would spread an Inf or NaN to neighbouring outputs of
    # its tile; the path notices and falls back to im2col.
    monkeypatch.setattr(nn_conv, "WINOGRAD_MIN_CHANNELS", 1)
    force_paths(monkeypatch, "winograd", "flipped", "winograd")
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, height, 8, 3)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(dtype)
    grad_output = rng.standard_normal((2, height, 8, 4)).astype(dtype)
    target = {"x": x, "kernel": kernel, "grad_output": grad_output}[where]
    if padding == "valid":
        reach = 2 * dilation_rate
        grad_output = grad_output[:, : height - reach, : 8 - reach].copy()
        target = {"x": x, "kernel": kernel, "grad_output": grad_output}[where]
    target.flat[5] = np.inf
    target.flat[target.size // 2] = np.nan
    target.flat[-1] = -np.inf  # the last row: only the last row of tiles reads it
    options = dict(padding=padding, dilation_rate=dilation_rate)
    assert_nonfinite_where_reference_has_them(x, kernel, grad_output, **options)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("where", ["x", "grad_output"])
@pytest.mark.parametrize("row", [0, 1, 3, 7])
@pytest.mark.parametrize("padding", ["same", "valid"])  # 'valid': rows in one window row only
def test_a_single_inf_in_any_row_leaves_the_winograd_path(
    monkeypatch, dtype, where, row, padding
):
    # Each row of a tile's window is checked: an Inf anywhere (here alone, so no
    # other tile of the chunk gives the fallback away) keeps the transforms off.
    monkeypatch.setattr(nn_conv, "WINOGRAD_MIN_CHANNELS", 1)
    force_paths(monkeypatch, "winograd", "flipped", "winograd")
    rng = np.random.default_rng(14)
    x = rng.standard_normal((1, 8, 6, 3)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 3, 2)).astype(dtype)
    out_shape = nn.conv2d(x, kernel, padding=padding).shape
    grad_output = rng.standard_normal(out_shape).astype(dtype)
    target = {"x": x, "grad_output": grad_output}[where]
    target[0, row % target.shape[1], 3, 1] = np.inf
    assert_nonfinite_where_reference_has_them(x, kernel, grad_output, padding=padding)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_an_infinite_kernel_keeps_the_input_gradient_off_the_flipped_path(padding):
    # The flipped path (stride 1, 16 channels or more) runs the flipped kernel over
    # zero-padded grad_output; an Inf tap there would give 0 * Inf = NaN at the
    # border, where the input gradient has no such term.
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 15, 14, 32))
    kernel = rng.standard_normal((3, 3, 32, 16))
    kernel[0, 0, 3, 1] = np.inf
    kernel[2, 2, 5, 2] = -np.inf
    geometry = geometry_of(x.shape, kernel.shape, padding=padding)
    assert nn_conv.grad_input_path(geometry) == "flipped"
    grad_output = rng.standard_normal(nn.conv2d(x, kernel, padding=padding).shape)
    assert_nonfinite_where_reference_has_them(x, kernel, grad_output, padding=padding)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dilated_winograd_does_not_depend_on_the_thread_count(monkeypatch, dtype):
    # dilated2's shape class, smaller: tiles of all four phases in lanes of several
    # chunks; one thread and two give the same bits.
    monkeypatch.setattr(runtime, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(nn_conv, "BLAS_SINGLE_THREAD_WORK", 16 * 16 * 40)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 16, 16, 16)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 16, 16)).astype(dtype)
    options = dict(padding="same", dilation_rate=2)
    assert nn_conv.forward_path(geometry_of(x.shape, kernel.shape, **options)) == "winograd"
    results = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        with runtime.num_threads(threads):
            out = nn.conv2d(x, kernel, **options)
            grad_kernel = nn.conv2d_grads(x, kernel, out, wrt=("kernel",), **options)[1]
            results.append((out, grad_kernel))
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])
    assert_close(results[0][0], conv2d_reference(x, kernel, **options), np.dtype(dtype))
    expected = conv2d_grads_reference(x, kernel, results[0][0], **options)[1]
    assert_close(results[0][1], expected, np.dtype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_packing_builds_are_bit_identical(dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 9, 8, 5)).astype(dtype)
    out_h, out_w, kernel_h, kernel_w = 5, 4, 3, 2
    scalars = (2, 2, 1, 1, 1, 0)
    rows = 3 * out_h
    columns = kernel_h * kernel_w * 5
    results = []
    for im2col, col2im in (
        (gemm_kernels.im2col_serial, gemm_kernels.col2im_add_serial),
        (gemm_kernels.im2col, gemm_kernels.col2im_add),
    ):
        cols = np.full((rows * out_w, columns), np.nan, dtype=dtype)
        im2col(x, cols, 0, rows, out_h, kernel_h, kernel_w, out_w, *scalars)
        grad_input = np.zeros_like(x)
        for row0 in range(0, rows, 4):  # chunks of 4 output rows, straddling images
            row1 = min(row0 + 4, rows)
            col2im(
                cols[row0 * out_w :],
                grad_input,
                row0,
                row1,
                out_h,
                kernel_h,
                kernel_w,
                out_w,
                *scalars,
            )
        results.append((cols, grad_input))
    (cols_serial, grad_serial), (cols_parallel, grad_parallel) = results
    assert not np.isnan(cols_serial).any()
    assert np.array_equal(cols_serial, cols_parallel)
    assert np.array_equal(grad_serial, grad_parallel)


def test_im2col_and_col2im_are_adjoint():
    # <im2col(x), c> == <x, col2im(c)> for any x and c: the two kernels are transposes.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 7, 6, 3))
    out_h, out_w, kernel_h, kernel_w = 4, 3, 3, 3
    scalars = (2, 2, 1, 1, 1, 1)
    rows, columns = 2 * out_h, kernel_h * kernel_w * 3
    cols = np.empty((rows * out_w, columns))
    gemm_kernels.im2col_serial(x, cols, 0, rows, out_h, kernel_h, kernel_w, out_w, *scalars)
    other = rng.standard_normal(cols.shape)
    back = np.zeros_like(x)
    gemm_kernels.col2im_add_serial(other, back, 0, rows, out_h, kernel_h, kernel_w, out_w, *scalars)
    np.testing.assert_allclose(np.vdot(cols, other), np.vdot(x, back), rtol=1e-12)


# --------------------------------------------------------------------------- dispatch rules

SUITE = {
    # name: (x shape, kernel shape, options, forward, grad_input, grad_kernel)
    # One input channel: a forward product of 9 columns would mostly copy; the
    # direct kernel is faster.  Its gradients still go through BLAS.
    "lenet1": ((64, 28, 28, 1), (3, 3, 1, 32), dict(), "direct", "col2im", "gemm"),
    # In channels_first the direct kernel's output would need a transposing copy.
    "lenet1_cf": (
        (64, 1, 28, 28),
        (3, 3, 1, 32),
        dict(data_format="channels_first"),
        "gemm",
        "col2im",
        "gemm",
    ),
    "lenet2": ((64, 13, 13, 32), (3, 3, 32, 64), dict(), "winograd", "flipped", "winograd"),
    "resnet3x3": (
        (8, 56, 56, 64),
        (3, 3, 64, 64),
        dict(padding="same"),
        "winograd",
        "flipped",
        "winograd",
    ),
    "resnet1x1": (
        (8, 28, 28, 256),
        (1, 1, 256, 128),
        dict(padding="same"),
        "matmul",
        "matmul",
        "matmul",
    ),
    "stem7x7s2": (
        (8, 224, 224, 3),
        (7, 7, 3, 64),
        dict(strides=2, padding="same"),
        "gemm",
        "col2im",
        "gemm",
    ),
    "strided3x3": (
        (8, 56, 56, 64),
        (3, 3, 64, 128),
        dict(strides=2, padding="same"),
        "gemm",
        "col2im",
        "gemm",
    ),
    "depthwise": (
        (8, 56, 56, 128),
        (3, 3, 1, 128),
        dict(padding="same", groups=128),
        "direct",
        "direct",
        "direct",
    ),
    "grouped32": (
        (8, 28, 28, 128),
        (3, 3, 4, 128),
        dict(padding="same", groups=32),
        "direct",
        "direct",
        "direct",
    ),
    "dilated2": (
        (8, 32, 32, 64),
        (3, 3, 64, 64),
        dict(padding="same", dilation_rate=2),
        "winograd",
        "flipped",
        "winograd",
    ),
    "dilated8": (
        (8, 32, 32, 64),
        (3, 3, 64, 64),
        dict(padding="same", dilation_rate=8),
        "gemm",
        "flipped",
        "gemm",
    ),
    # A kernel two strides wide: Winograd F(3x3, 2x2) over the stride phases.
    "pix2pix4x4": (
        (4, 128, 128, 64),
        (4, 4, 64, 128),
        dict(strides=2, padding="same"),
        "winograd_strided",
        "winograd_strided",
        "winograd_strided",
    ),
    "pix2pix4x4_cf": (
        (4, 64, 128, 128),
        (4, 4, 64, 128),
        dict(strides=2, padding="same", data_format="channels_first"),
        "winograd_strided",
        "winograd_strided",
        "winograd_strided",
    ),
    # Many channels times filters leave Winograd's one-thread products a tile or two.
    "wide3x3": ((8, 7, 7, 512), (3, 3, 512, 512), dict(padding="same"), "gemm", "flipped", "gemm"),
    "wide4x4s2": (
        (4, 32, 32, 256),
        (4, 4, 256, 256),
        dict(strides=2, padding="same"),
        "gemm",
        "col2im",
        "gemm",
    ),
    # The digits example's first layer is tiny: direct kernels, no BLAS call.
    "digits1": ((32, 8, 8, 1), (3, 3, 1, 16), dict(padding="same"), "direct", "direct", "direct"),
    # A small 1x1 problem is cut into single-threaded products by the im2col path.
    "pointwise_small": ((8, 16, 16, 64), (1, 1, 64, 64), dict(), "gemm", "flipped", "gemm"),
    # A strided 1x1 kernel reads a subsampled image: im2col, not the plain product.
    "strided1x1": ((8, 28, 28, 256), (1, 1, 256, 128), dict(strides=2), "gemm", "col2im", "gemm"),
}


@pytest.mark.parametrize("name", sorted(SUITE))
def test_dispatch_rules_pick_the_intended_path(name):
    x_shape, kernel_shape, options, forward, grad_input, grad_kernel = SUITE[name]
    geometry = geometry_of(x_shape, kernel_shape, **options)
    assert nn_conv.forward_path(geometry) == forward
    assert nn_conv.grad_input_path(geometry) == grad_input
    assert nn_conv.grad_kernel_path(geometry) == grad_kernel


# Strips of 32 source rows with a short last strip ((2, 33, 65)), columns over
# several parallel tiles of 256 ((2, 9, 515), (1, 1030, 1030)), rows of 4 KiB or
# 8 KiB (strips of 8: (2, 20, 1024)) and of 2 KiB in float32 (strips of 16:
# (1, 40, 512)), rows that are not whole cache lines ((3, 5, 7)), no images.
@pytest.mark.parametrize(
    "shape",
    [(3, 5, 7), (2, 33, 65), (1, 64, 32), (0, 4, 4), (2, 11, 1100), (2, 9, 515), (1, 1030, 1030),
     (2, 20, 1024), (1, 40, 512)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parallel", [False, True])
def test_layout_swap_is_a_transpose(shape, dtype, parallel):
    src = np.arange(np.prod(shape), dtype=dtype).reshape(shape)
    dst = np.full((shape[0], shape[2], shape[1]), np.nan, dtype=dtype)
    swap = gemm_kernels.swap_last_axes if parallel else gemm_kernels.swap_last_axes_serial
    swap(src, dst)
    np.testing.assert_array_equal(dst, src.transpose(0, 2, 1))


def test_chunk_buffer_is_bounded_and_never_the_whole_batch():
    # resnet3x3: 25088 output pixels of 576 columns; the buffer holds a few rows of one image.
    rows = nn_conv._rows_per_chunk(56, 576, 4, 8 * 56, 64, False)
    assert 1 <= rows < 56
    assert rows * 56 * 576 * 4 <= nn_conv.COLUMN_BUFFER_BYTES
    # A single output row wider than the budget still gets a (one-row) chunk.
    assert nn_conv._rows_per_chunk(10**6, 576, 8, 3, 64, False) == 1
    # Single-threaded problems cut their products below OpenBLAS's threading threshold.
    rows = nn_conv._rows_per_chunk(8, 144, 4, 32 * 8, 32, True)
    assert 1 <= rows and rows * 8 * 144 * 32 <= nn_conv.BLAS_SINGLE_THREAD_WORK


@pytest.mark.parametrize("call", ["forward", "grads"])
def test_far_too_large_batch_fails_at_once_naming_the_bytes(call):
    # A broadcast view: a huge batch that costs no memory until something is allocated.
    x = np.broadcast_to(np.zeros((1, 1, 1, 3), np.float32), (10**7, 224, 224, 3))
    kernel = np.zeros((7, 7, 3, 64), np.float32)
    with pytest.raises(MemoryError, match=r"conv2d .*needs \d+ bytes"):
        if call == "forward":
            nn.conv2d(x, kernel, strides=2, padding="same")
        else:
            grad_output = np.broadcast_to(
                np.zeros((1, 1, 1, 64), np.float32), (10**7, 112, 112, 64)
            )
            nn.conv2d_grads(x, kernel, grad_output, strides=2, padding="same")
