"""numconv.nn.conv2d / conv2d_grads against the slow reference and finite differences."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numconv.nn as nn
from numconv.kernels import conv as conv_kernels
from numconv.kernels import winograd as winograd_kernels
from numconv.kernels import winograd4x4 as winograd4x4_kernels
from numconv.kernels import winograd_strided as winograd_strided_kernels
from numconv import runtime

from gradient_check import assert_gradients_close
from reference import conv2d_grads_reference, conv2d_reference

# Relative tolerances by result dtype (float16 results are rounded float32 sums).
TOLERANCE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5, np.dtype(np.float16): 2e-3}


def assert_close(actual, expected, dtype):
    """Elementwise within ``tol`` of the reference, relative to the largest value."""
    tol = TOLERANCE[np.dtype(dtype)]
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    scale = np.abs(expected[np.isfinite(expected)]).max(initial=0.0)
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=tol, atol=tol * scale)


def spatial_shape(shape, data_format):
    return shape[-3:-1] if data_format == "channels_last" else shape[-2:]


def input_shape(batch_shape, height, width, channels, data_format):
    if data_format == "channels_last":
        return (*batch_shape, height, width, channels)
    return (*batch_shape, channels, height, width)


def check_against_reference(rng, x, kernel, bias, dtype, **options):
    """Forward and all three gradients of numconv vs the reference, at ``dtype``'s tolerance."""
    out = nn.conv2d(x, kernel, bias, **options)
    expected = conv2d_reference(x, kernel, bias, **options)
    assert out.dtype == dtype
    assert_close(out, expected, dtype)
    grad_output = rng.standard_normal(out.shape).astype(dtype)
    grads = nn.conv2d_grads(x, kernel, grad_output, **options)
    expected_grads = conv2d_grads_reference(x, kernel, grad_output, **options)
    for grad, expected_grad, like in zip(grads, expected_grads, (x, kernel, expected_grads[2])):
        assert grad.dtype == dtype
        assert grad.shape == np.shape(like)
        assert_close(grad, expected_grad, dtype)
    return out, grads


# --------------------------------------------------------------------------- parameter grid

GRID = [
    # (channels, groups, filters), kernel size, strides, dilation_rate, padding
    *itertools.product(
        [(3, 1, 4), (4, 2, 6), (6, 3, 3), (4, 4, 4), (3, 3, 6), (1, 1, 2)],
        [(3, 3), (2, 2), (1, 4)],
        [1, 2, (2, 1)],
        [1],
        ["valid", "same"],
    ),
    *itertools.product(
        [(3, 1, 4), (4, 2, 6), (4, 4, 8)],
        [(3, 3), (2, 4)],
        [1],
        [2, (1, 3)],
        ["valid", "same", 1, ((2, 0), (1, 3))],
    ),
    *itertools.product([(2, 1, 3)], [(3, 2)], [3, (1, 2)], [1], [2, (1, 0), ((0, 1), (2, 0))]),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("channel_config, kernel_size, strides, dilation_rate, padding", GRID)
def test_grid_matches_reference(
    channel_config, kernel_size, strides, dilation_rate, padding, data_format, dtype
):
    rng = np.random.default_rng(abs(hash((channel_config, kernel_size, str(padding)))) % 2**32)
    channels, groups, filters = channel_config
    x = rng.standard_normal(input_shape((2,), 9, 11, channels, data_format)).astype(dtype)
    kernel = rng.standard_normal((*kernel_size, channels // groups, filters)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype)
    check_against_reference(
        rng,
        x,
        kernel,
        bias,
        np.dtype(dtype),
        strides=strides,
        padding=padding,
        data_format=data_format,
        dilation_rate=dilation_rate,
        groups=groups,
    )


# --------------------------------------------------------------------------- hypothesis

DTYPES = {
    "float64": np.float64,
    "float32": np.float32,
    "float16": np.float16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "bool": np.bool_,
}


def natural_dtype(name):
    """Integers and bools count as float32; floats as themselves (the spec's rule)."""
    return np.dtype(np.float32) if name in ("int32", "int64", "uint8", "bool") else np.dtype(name)


def random_values(rng, shape, name):
    if name == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if name == "uint8":
        return rng.integers(0, 6, shape).astype(np.uint8)
    if name.startswith("int"):
        return rng.integers(-3, 4, shape).astype(DTYPES[name])
    return rng.standard_normal(shape).astype(DTYPES[name])


def relayout(array, how):
    """The same values in another memory layout: what conv2d must not care about."""
    if how == "fortran":
        return np.asfortranarray(array)
    if how == "strided":  # a non-contiguous view into a larger buffer
        padded = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=array.dtype)
        padded[..., ::2] = array
        return padded[..., ::2]
    if how == "negative":
        flipped = np.ascontiguousarray(array[..., ::-1, :])
        return flipped[..., ::-1, :]
    if how == "readonly":
        array = array.copy()
        array.flags.writeable = False
        return array
    return array


@st.composite
def conv_problems(draw):
    data_format = draw(st.sampled_from(["channels_last", "channels_first"]))
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 3))
    if draw(st.booleans()):
        groups = channels  # depthwise
    filters = groups * draw(st.integers(1, 3))
    kernel_size = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    strides = draw(st.sampled_from([1, 2, 3, (1, 2), (2, 1)]))
    dilation_rate = 1
    if strides == 1:
        dilation_rate = draw(st.sampled_from([1, 2, (1, 3), (2, 1)]))
    padding = draw(
        st.sampled_from(["valid", "same", "SAME", "Valid", 0, 1, (2, 0), ((0, 2), (1, 0))])
    )
    batch_shape = tuple(draw(st.lists(st.integers(0, 3), min_size=1, max_size=3)))
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    floats = st.sampled_from(["float64", "float32", "float16"])
    x_dtype = draw(st.one_of(floats, st.sampled_from(list(DTYPES))))
    kernel_dtype = draw(st.one_of(floats, st.sampled_from(["int32", "bool"])))
    grad_dtype = draw(floats)
    layouts = ["contiguous", "fortran", "strided", "negative", "readonly"]
    return dict(
        options=dict(
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            groups=groups,
        ),
        x_shape=input_shape(batch_shape, height, width, channels, data_format),
        kernel_shape=(*kernel_size, channels // groups, filters),
        dtypes=(x_dtype, kernel_dtype, grad_dtype),
        layouts=(draw(st.sampled_from(layouts)), draw(st.sampled_from(layouts))),
        bias_dtype=draw(st.sampled_from([None, "float64", "float32", "float16"])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=80)
@given(conv_problems())
def test_random_configurations_match_reference(problem):
    rng = np.random.default_rng(problem["seed"])
    options = problem["options"]
    x_dtype, kernel_dtype, grad_dtype = problem["dtypes"]
    x = random_values(rng, problem["x_shape"], x_dtype)
    kernel = random_values(rng, problem["kernel_shape"], kernel_dtype)
    filters = kernel.shape[-1]
    bias = None
    if problem["bias_dtype"] is not None:
        bias = rng.standard_normal(filters).astype(problem["bias_dtype"])
    x_copy, kernel_copy = x.copy(), kernel.copy()
    x, kernel = relayout(x, problem["layouts"][0]), relayout(kernel, problem["layouts"][1])

    expected = None
    try:
        expected = conv2d_reference(x, kernel, bias, **options)
    except ValueError:  # the reference cannot build an empty output
        pass
    if expected is None or min(spatial_shape(expected.shape, options["data_format"])) <= 0:
        with pytest.raises(ValueError, match="output would be empty"):
            nn.conv2d(x, kernel, bias, **options)
        return

    dtypes = [natural_dtype(x_dtype), natural_dtype(kernel_dtype)]
    if bias is not None:
        dtypes.append(bias.dtype)
    out_dtype = np.result_type(*dtypes)
    out = nn.conv2d(x, kernel, bias, **options)
    assert out.dtype == out_dtype
    assert out.flags.writeable and not np.shares_memory(out, x)
    assert_close(out, expected, out_dtype)

    grad_output = rng.standard_normal(out.shape).astype(grad_dtype)
    grad_dtype_expected = np.result_type(
        natural_dtype(x_dtype), natural_dtype(kernel_dtype), np.dtype(grad_dtype)
    )
    grads = nn.conv2d_grads(x, kernel, grad_output, **options)
    expected_grads = conv2d_grads_reference(x, kernel, grad_output, **options)
    for grad, expected_grad in zip(grads, expected_grads):
        assert grad.dtype == grad_dtype_expected
        assert_close(grad, expected_grad, grad_dtype_expected)
    assert grads[0].shape == x.shape and grads[1].shape == kernel.shape
    assert grads[2].shape == (filters,)
    # Inputs are never modified.
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(kernel, kernel_copy)


# --------------------------------------------------------------------------- specific cases


def test_extended_batch_shape_from_the_spec():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 7, 28, 28, 3))
    kernel = rng.standard_normal((3, 3, 3, 2))
    out = nn.conv2d(x, kernel)
    assert out.shape == (4, 7, 26, 26, 2)
    assert_close(out, conv2d_reference(x, kernel), np.float64)
    # Each batch element is an independent convolution.
    assert_close(out[2, 5], conv2d_reference(x[2, 5:6], kernel)[0], np.float64)


@pytest.mark.parametrize(
    "size, kernel_size, stride, pad_top",
    [
        (6, 3, 2, 0),
        (224, 7, 2, 2),
        (5, 2, 1, 0),
        (7, 4, 3, 1),
        (8, 4, 2, 1),
        (9, 1, 4, 0),
    ],
)
@pytest.mark.parametrize("tap", ["first", "last"])
def test_same_padding_puts_the_smaller_half_on_top(size, kernel_size, stride, pad_top, tap):
    # A kernel that is 1 at a single tap copies one input row per output row:
    # output row o reads input row o * stride - pad_top + tap (zero outside).
    x = np.arange(size, dtype=np.float64).reshape(1, size, 1, 1) + 1.0
    kernel = np.zeros((kernel_size, 1, 1, 1))
    offset = 0 if tap == "first" else kernel_size - 1
    kernel[offset, 0, 0, 0] = 1.0
    out = nn.conv2d(x, kernel, strides=(stride, 1), padding="same")[0, :, 0, 0]
    out_size = -(-size // stride)
    assert out.shape == (out_size,)
    rows = np.arange(out_size) * stride - pad_top + offset
    expected = np.where((rows >= 0) & (rows < size), rows + 1.0, 0.0)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("kernel_size", [(2, 2), (4, 3)])
def test_stride_two_same_even_kernel_gradients_by_finite_differences(kernel_size, data_format):
    rng = np.random.default_rng(7)
    options = dict(strides=2, padding="same", data_format=data_format)
    x = rng.standard_normal(input_shape((2,), 6, 5, 3, data_format))
    kernel = rng.standard_normal((*kernel_size, 3, 2))
    bias = rng.standard_normal(2)
    grad_output = rng.standard_normal(nn.conv2d(x, kernel, **options).shape)

    def objective(x, kernel, bias):
        return nn.conv2d(x, kernel, bias, **options) * grad_output

    grads = nn.conv2d_grads(x, kernel, grad_output, **options)
    assert_gradients_close(objective, [x, kernel, bias], list(grads), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "options",
    [
        dict(dilation_rate=(2, 1), padding="same", groups=2),
        dict(strides=(1, 2), padding=((1, 0), (2, 1)), groups=4, data_format="channels_first"),
        dict(strides=3, padding="valid"),
        dict(dilation_rate=2, padding="same", groups=4),
    ],
)
def test_gradients_by_finite_differences(options):
    rng = np.random.default_rng(11)
    data_format = options.get("data_format", "channels_last")
    groups = options.get("groups", 1)
    x = rng.standard_normal(input_shape((1, 2), 7, 6, 4, data_format))
    kernel = rng.standard_normal((3, 2, 4 // groups, 4))
    bias = rng.standard_normal(4)
    grad_output = rng.standard_normal(nn.conv2d(x, kernel, **options).shape)

    def objective(x, kernel, bias):
        return nn.conv2d(x, kernel, bias, **options) * grad_output

    grads = nn.conv2d_grads(x, kernel, grad_output, **options)
    assert_gradients_close(objective, [x, kernel, bias], list(grads), rtol=1e-6, atol=1e-7)
    # The reference's own backward agrees with finite differences too.
    assert_gradients_close(
        objective,
        [x, kernel, bias],
        list(conv2d_grads_reference(x, kernel, grad_output, **options)),
        rtol=1e-6,
        atol=1e-7,
    )


def test_parallel_builds_match_reference(monkeypatch):
    # Every call takes the parallel builds, whatever its size.
    monkeypatch.setattr(runtime, "PARALLEL_MIN_WORK", 0)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((24, 17, 15, 8)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 4, 16)).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    assert runtime.use_parallel(24 * 9 * 8 * 9 * 4 * 16)
    check_against_reference(
        rng, x, kernel, bias, np.dtype(np.float32), strides=2, padding="same", groups=2
    )


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_builds_are_bit_identical(dtype, depthwise):
    rng = np.random.default_rng(3)
    channels, filters = (6, 12) if depthwise else (8, 13)
    kernel_channels = 1 if depthwise else channels
    x = rng.standard_normal((3, 11, 9, channels)).astype(dtype)
    kernel = rng.standard_normal((3, 2, kernel_channels, filters)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype)
    grad_output = rng.standard_normal((3, 6, 5, filters)).astype(dtype)
    scalars = (2, 2, 1, 1, 1, 0)
    prefix = "depthwise_conv2d" if depthwise else "conv2d"
    results = []
    for suffix in ("_serial", ""):
        out = np.empty((3, 6, 5, filters), dtype=dtype)
        getattr(conv_kernels, prefix + "_forward" + suffix)(x, kernel, bias, out, *scalars)
        grad_x = np.empty_like(x)
        getattr(conv_kernels, prefix + "_grad_input" + suffix)(
            grad_output, kernel, grad_x, *scalars
        )
        grad_kernel = np.empty_like(kernel)
        getattr(conv_kernels, prefix + "_grad_kernel" + suffix)(
            x, grad_output, grad_kernel, *scalars
        )
        grad_bias = np.empty_like(bias)
        getattr(conv_kernels, "conv2d_grad_bias" + suffix)(grad_output, grad_bias)
        results.append((out, grad_x, grad_kernel, grad_bias))
    for serial, parallel in zip(*results):
        assert np.array_equal(serial, parallel)


def test_pure_python_kernel_path_matches_compiled_one():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 4, 5, 2))
    kernel = rng.standard_normal((2, 3, 2, 3))
    bias = rng.standard_normal(3)
    compiled, interpreted = np.empty((1, 4, 4, 3)), np.empty((1, 4, 4, 3))
    scalars = (1, 1, 1, 1, 1, 1)
    conv_kernels.conv2d_forward_serial(x, kernel, bias, compiled, *scalars)
    for row in range(4):
        conv_kernels._forward_row.py_func(x, kernel, bias, interpreted, 0, row, *scalars)
    np.testing.assert_allclose(interpreted, compiled, rtol=1e-14)


@pytest.mark.parametrize(
    "wrt",
    [
        (),
        ("input",),
        ("kernel",),
        ("bias",),
        ("input", "bias"),
        ("kernel", "input"),
        "kernel",
    ],
)
def test_wrt_subsets_compute_only_what_is_asked(wrt, monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 6, 3))
    kernel = rng.standard_normal((3, 3, 3, 2))
    grad_output = rng.standard_normal((2, 4, 4, 2))
    full = nn.conv2d_grads(x, kernel, grad_output)
    launched = []
    real_run = runtime.run

    def recording_run(serial, parallel, work, *args):
        launched.append(serial.__name__)
        return real_run(serial, parallel, work, *args)

    monkeypatch.setattr(runtime, "run", recording_run)
    grads = nn.conv2d_grads(x, kernel, grad_output, wrt=wrt)
    wanted = {wrt} if isinstance(wrt, str) else set(wrt)
    kernel_names = {
        "input": "conv2d_grad_input_serial",
        "kernel": "conv2d_grad_kernel_serial",
        "bias": "conv2d_grad_bias_serial",
    }
    assert sorted(launched) == sorted(kernel_names[name] for name in wanted)
    for name, grad, full_grad in zip(("input", "kernel", "bias"), grads, full):
        if name in wanted:
            np.testing.assert_array_equal(grad, full_grad)
        else:
            assert grad is None


@pytest.mark.parametrize("batch_shape", [(0,), (2, 0), (0, 3, 1)])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_zero_size_batch(batch_shape, data_format):
    x = np.ones(input_shape(batch_shape, 5, 4, 4, data_format), dtype=np.float32)
    kernel = np.ones((3, 2, 2, 6), dtype=np.float32)
    out = nn.conv2d(x, kernel, np.ones(6), padding="valid", data_format=data_format, groups=2)
    expected_shape = input_shape(batch_shape, 3, 3, 6, data_format)
    assert out.shape == expected_shape and out.dtype == np.float64
    grad_input, grad_kernel, grad_bias = nn.conv2d_grads(
        x, kernel, np.ones(expected_shape, dtype=np.float32), data_format=data_format, groups=2
    )
    assert grad_input.shape == x.shape
    np.testing.assert_array_equal(grad_kernel, np.zeros((3, 2, 2, 6)))
    np.testing.assert_array_equal(grad_bias, np.zeros(6))


@pytest.mark.parametrize("depthwise", [False, True])
def test_nan_and_inf_propagate_even_through_zero_weights(depthwise):
    channels = 3
    x = np.ones((1, 5, 5, channels))
    x[0, 2, 2, 1] = np.nan
    x[0, 0, 4, 0] = np.inf
    kernel_channels = 1 if depthwise else channels
    kernel = np.zeros((2, 2, kernel_channels, channels))  # 0 * inf and 0 * nan are nan
    options = dict(groups=channels if depthwise else 1)
    out = nn.conv2d(x, kernel, **options)
    expected = conv2d_reference(x, kernel, **options)
    assert np.isnan(out).any() and not np.isnan(out).all()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(out[~np.isnan(out)], 0.0)
    grad_output = np.ones(out.shape)
    grad_output[0, 0, 0, 0] = np.inf
    grads = nn.conv2d_grads(x, kernel, grad_output, **options)
    expected_grads = conv2d_grads_reference(x, kernel, grad_output, **options)
    for grad, expected_grad in zip(grads, expected_grads):
        np.testing.assert_array_equal(np.isnan(grad), np.isnan(expected_grad))
        np.testing.assert_array_equal(np.isinf(grad), np.isinf(expected_grad))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_inf_meeting_the_padding_of_a_depthwise_convolution_gives_nan(data_format):
    # 'same' padding: an Inf weight (forward) or Inf grad_output (kernel gradient) times
    # a padded zero is NaN, as in the padded definition; channels_first depthwise
    # kernels skip padded taps, so these calls must take the padded route.
    rng = np.random.default_rng(21)
    x = rng.standard_normal(input_shape((2,), 6, 7, 3, data_format))
    kernel = rng.standard_normal((3, 3, 1, 6))
    kernel[0, 0, 0, 1] = np.inf
    options = dict(groups=3, padding="same", data_format=data_format)
    out = nn.conv2d(x, kernel, **options)
    expected = conv2d_reference(x, kernel, **options)
    assert np.isnan(expected).any()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    kernel[0, 0, 0, 1] = 1.0
    grad_output = rng.standard_normal(out.shape)
    grad_output[(0, 0, 0, 4) if data_format == "channels_last" else (0, 4, 0, 0)] = np.inf
    grads = nn.conv2d_grads(x, kernel, grad_output, **options)
    expected_grads = conv2d_grads_reference(x, kernel, grad_output, **options)
    assert np.isnan(expected_grads[1]).any()
    for grad, expected_grad in zip(grads, expected_grads):
        np.testing.assert_array_equal(np.isnan(grad), np.isnan(expected_grad))
        np.testing.assert_array_equal(np.isinf(grad), np.isinf(expected_grad))


def test_float16_is_computed_in_float32_and_returned_as_float16():
    rng = np.random.default_rng(9)
    # 300 terms per output: float16 accumulation would be far off, float32 is not.
    x = rng.uniform(0.5, 1.5, (1, 10, 10, 12)).astype(np.float16)
    kernel = rng.uniform(0.5, 1.5, (5, 5, 12, 2)).astype(np.float16)
    out = nn.conv2d(x, kernel)
    assert out.dtype == np.float16
    expected = conv2d_reference(x, kernel).astype(np.float32).astype(np.float16)
    # Only the final rounding to float16 separates the two: at most one float16 ulp.
    ulp = np.spacing(np.abs(expected).astype(np.float16)).astype(np.float64)
    assert np.all(np.abs(out.astype(np.float64) - expected.astype(np.float64)) <= ulp)


@pytest.mark.parametrize(
    "x_dtype, kernel_dtype, expected",
    [
        (np.int64, np.float64, np.float64),
        (np.int32, np.int32, np.float32),
        (np.bool_, np.float16, np.float32),
        (np.float16, np.float64, np.float64),
        (np.float32, np.float64, np.float64),
        (np.uint8, np.float16, np.float32),
        (np.float16, np.float16, np.float16),
    ],
)
def test_result_dtypes_follow_promotion(x_dtype, kernel_dtype, expected):
    x = np.ones((1, 3, 3, 2), dtype=x_dtype)
    kernel = np.ones((2, 2, 2, 1), dtype=kernel_dtype)
    out = nn.conv2d(x, kernel)
    assert out.dtype == expected
    np.testing.assert_array_equal(out, np.full((1, 2, 2, 1), 8.0))


def test_float64_is_computed_in_float64():
    # 1 + 2**-40 is not representable in float32: a float32 computation would lose it.
    x = np.full((1, 1, 2, 1), 1.0 + 2.0**-40)
    kernel = np.ones((1, 2, 1, 1))
    assert nn.conv2d(x, kernel)[0, 0, 0, 0] == 2.0 + 2.0**-39


def test_array_likes_lists_and_tensors_are_accepted():
    from numconv.autograd.tensor import Tensor

    x = [[[[1.0], [2.0]], [[3.0], [4.0]]]]
    kernel = Tensor(np.ones((2, 2, 1, 1)))
    np.testing.assert_array_equal(nn.conv2d(x, kernel, bias=[0.5]), [[[[10.5]]]])


def test_warmup_compiles_every_kernel_for_the_requested_dtypes():
    import numconv

    assert numconv.warmup() is None
    assert numconv.warmup("float16") is None  # float16 uses the float32 kernels
    serial_and_parallel = [
        getattr(conv_kernels, prefix + job + suffix)
        for prefix in ("conv2d", "depthwise_conv2d")
        for job in ("_forward", "_grad_input", "_grad_kernel")
        for suffix in ("", "_serial")
    ] + [conv_kernels.conv2d_grad_bias, conv_kernels.conv2d_grad_bias_serial]
    winograd = [
        getattr(winograd_kernels, "transform_" + name)
        for name in ("kernel", "input", "input_phases", "output", "grad_output", "weights_grad")
    ] + [
        getattr(winograd_strided_kernels, name)
        for name in (
            "transform_kernel",
            "transform_output",
            "transform_grad_output",
            "transform_weights_grad",
            "transform_output_scatter",
        )
    ]
    for dispatcher in serial_and_parallel + winograd:
        dtypes = {signature[0].dtype.name for signature in dispatcher.signatures}
        assert dtypes == {"float32", "float64"}, dispatcher.__name__
    # F(4x4, 3x3) serves float64 only (see numconv.nn._conv_paths.winograd_tile_size).
    for name in ("kernel", "input", "output", "grad_output", "weights_grad"):
        dispatcher = getattr(winograd4x4_kernels, "transform_" + name)
        dtypes = {signature[0].dtype.name for signature in dispatcher.signatures}
        assert "float64" in dtypes, dispatcher.__name__
    with pytest.raises(ValueError, match=r"received dtypes=\('float32', 'int8'\)"):
        numconv.warmup(("float32", "int8"))
