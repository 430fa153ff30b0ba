"""numconv.nn max/avg pooling and their gradients against tests/reference_pooling.py."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numconv
from numconv.kernels import pooling as kernels
from numconv.nn import avg_pool2d, avg_pool2d_grad, max_pool2d, max_pool2d_grad

import reference_pooling as reference

POOLS = {"max": (max_pool2d, reference.max_pool), "avg": (avg_pool2d, reference.avg_pool)}
GRADS = {
    "max": (max_pool2d_grad, reference.max_pool_grad),
    "avg": (avg_pool2d_grad, reference.avg_pool_grad),
}
TOLERANCE = {np.float64: 1e-12, np.float32: 2e-6, np.float16: 2e-3}


# -- layout helpers: any layout <-> the reference's (N, H, W, C) ------------------------
def to_reference_layout(array, data_format):
    if data_format == "channels_first":
        array = np.moveaxis(array, -3, -1)
    images = int(np.prod(array.shape[:-3], dtype=np.int64))
    return np.asarray(array, dtype=np.float64).reshape((images,) + array.shape[-3:])


def from_reference_layout(array, batch_shape, data_format):
    array = array.reshape(tuple(batch_shape) + array.shape[1:])
    if data_format == "channels_first":
        array = np.moveaxis(array, -1, -3)
    return array


def make_input(rng, batch_shape, height, width, channels, data_format, dtype, ties):
    last = data_format == "channels_last"
    spatial = (height, width, channels) if last else (channels, height, width)
    shape = tuple(batch_shape) + spatial
    # Small integers make ties frequent, which exercises "first maximum wins".
    values = rng.integers(-2, 3, size=shape) if ties else rng.standard_normal(shape)
    return values.astype(dtype)


def normalized(pool_size, strides):
    pool = (pool_size, pool_size) if isinstance(pool_size, int) else tuple(pool_size)
    if strides is None:
        return pool, pool
    stride = (strides, strides) if isinstance(strides, int) else tuple(strides)
    return pool, stride


def check_against_reference(kind, x, grad_output, pool_size, strides, padding, data_format):
    forward, reference_forward = POOLS[kind]
    backward, reference_backward = GRADS[kind]
    pool, stride = normalized(pool_size, strides)
    batch_shape = x.shape[:-3]
    rtol = TOLERANCE[x.dtype.type]

    out = forward(x, pool_size, strides, padding, data_format)
    expected = reference_forward(to_reference_layout(x, data_format), pool, stride, padding)
    expected = from_reference_layout(expected, batch_shape, data_format)
    assert out.dtype == x.dtype
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.astype(np.float64), expected, rtol=rtol, atol=rtol)

    grad_output = grad_output(out.shape).astype(x.dtype)
    grad = backward(x, grad_output, pool_size, strides, padding, data_format)
    expected_grad = reference_backward(
        to_reference_layout(x, data_format), to_reference_layout(grad_output, data_format),
        pool, stride, padding,
    )
    expected_grad = from_reference_layout(expected_grad, batch_shape, data_format)
    assert grad.dtype == x.dtype
    assert grad.shape == x.shape
    np.testing.assert_allclose(grad.astype(np.float64), expected_grad, rtol=rtol, atol=4 * rtol)


@st.composite
def pooling_cases(draw):
    pool = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pool_size = pool[0] if pool[0] == pool[1] and draw(st.booleans()) else pool
    pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))
    strides = draw(st.one_of(st.none(), st.integers(1, 3), pairs))
    padding = draw(st.sampled_from(["valid", "same"]))
    smallest = pool if padding == "valid" else (1, 1)
    return dict(
        kind=draw(st.sampled_from(["max", "avg"])),
        pool_size=pool_size,
        strides=strides,
        padding=padding,
        data_format=draw(st.sampled_from(["channels_last", "channels_first"])),
        batch_shape=tuple(draw(st.lists(st.integers(1, 2), min_size=1, max_size=3))),
        height=draw(st.integers(smallest[0], 7)),
        width=draw(st.integers(smallest[1], 7)),
        channels=draw(st.integers(1, 3)),
        dtype=draw(st.sampled_from([np.float64, np.float32, np.float16])),
        ties=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@given(pooling_cases())
def test_matches_reference_for_random_options(case):
    rng = np.random.default_rng(case["seed"])
    x = make_input(
        rng, case["batch_shape"], case["height"], case["width"], case["channels"],
        case["data_format"], case["dtype"], case["ties"],
    )
    check_against_reference(
        case["kind"], x, lambda shape: rng.standard_normal(shape),
        case["pool_size"], case["strides"], case["padding"], case["data_format"],
    )


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("pool_size, strides", [
    (1, None), (2, None), (3, 1), (3, 2), ((2, 3), (1, 2)), ((3, 1), (2, 1)), (2, 3), (4, (3, 1)),
])
def test_grid_of_window_options(kind, padding, pool_size, strides):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 7, 8, 3))
    check_against_reference(
        kind, x, rng.standard_normal, pool_size, strides, padding, "channels_last"
    )


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_window_larger_than_input_with_same_padding(data_format):
    rng = np.random.default_rng(3)
    x = make_input(rng, (2,), 2, 3, 2, data_format, np.float64, ties=False)
    for kind in ("max", "avg"):
        check_against_reference(kind, x, rng.standard_normal, 5, 1, "same", data_format)


def test_keras_documented_examples():
    # keras.layers.MaxPooling2D docs: 3x3 input 1..9, pool 2, stride 1.
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    assert max_pool2d(x, 2, 1, "valid")[0, :, :, 0].tolist() == [[5, 6], [8, 9]]
    assert max_pool2d(x, 2, 1, "same")[0, :, :, 0].tolist() == [[5, 6, 6], [8, 9, 9], [8, 9, 9]]
    # Average pooling with 'same' divides by the real pixels of each window.
    same_avg = avg_pool2d(x, 2, 1, "same")[0, :, :, 0]
    np.testing.assert_allclose(same_avg, [[3, 4, 4.5], [6, 7, 7.5], [7.5, 8.5, 9]])


def test_padding_never_wins_a_maximum():
    x = -1.0 - np.arange(16.0).reshape(1, 4, 4, 1)  # all negative: a zero pad would win
    out = max_pool2d(x, 3, 2, "same")
    assert (out < 0).all()
    np.testing.assert_array_equal(out, reference.max_pool(x, (3, 3), (2, 2), "same"))


def test_max_gradient_goes_to_first_maximum_in_row_major_order():
    x = np.ones((1, 2, 2, 1))
    grad = max_pool2d_grad(x, np.full((1, 1, 1, 1), 5.0), 2)
    np.testing.assert_array_equal(grad[0, :, :, 0], [[5.0, 0.0], [0.0, 0.0]])
    # Overlapping windows accumulate into the pixel they share.
    x = np.array([[0.0, 9.0, 0.0]]).reshape(1, 1, 3, 1)
    grad = max_pool2d_grad(x, np.array([1.0, 2.0]).reshape(1, 1, 2, 1), (1, 2), 1)
    np.testing.assert_array_equal(grad.ravel(), [0.0, 3.0, 0.0])


def test_nan_propagates_and_receives_the_gradient():
    x = np.array([[1.0, np.nan], [5.0, 2.0]]).reshape(1, 2, 2, 1)
    assert np.isnan(max_pool2d(x, 2)).all()
    grad = max_pool2d_grad(x, np.ones((1, 1, 1, 1)), 2)
    np.testing.assert_array_equal(grad.ravel(), [0.0, 1.0, 0.0, 0.0])


def test_minus_infinity_windows():
    x = np.full((1, 2, 2, 1), -np.inf)
    assert max_pool2d(x, 2).ravel().tolist() == [-np.inf]
    grad = max_pool2d_grad(x, np.ones((1, 1, 1, 1)), 2)
    np.testing.assert_array_equal(grad.ravel(), [1.0, 0, 0, 0])


def test_non_contiguous_input_and_tensor_input():
    rng = np.random.default_rng(11)
    base = rng.standard_normal((2, 6, 10, 4))
    x = base[:, :, ::2, 1:3]
    expected = reference.max_pool(x, (2, 2), (2, 2), "valid")
    np.testing.assert_array_equal(max_pool2d(x, 2), expected)
    np.testing.assert_array_equal(max_pool2d(numconv.constant(x), 2), expected)


def test_empty_batch():
    x = np.zeros((0, 5, 5, 2), dtype=np.float32)
    assert max_pool2d(x, 2).shape == (0, 2, 2, 2)
    assert avg_pool2d_grad(x, np.zeros((0, 3, 3, 2)), 2, padding="same").shape == x.shape


def test_serial_and_parallel_builds_agree_bitwise_for_any_thread_count():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 9, 8, 2))
    geometry = (3, 2, 2, 1, 1, 0)  # pool 3x2, strides 2x1, pad_top 1, pad_left 0 ('same' here)
    out_shape = (3, 5, 8, 2)
    grad_output = rng.standard_normal(out_shape)
    for serial, parallel in [
        (kernels.max_pool2d_serial, kernels.max_pool2d_parallel),
        (kernels.avg_pool2d_serial, kernels.avg_pool2d_parallel),
    ]:
        results = []
        for build, threads in [(serial, 1), (parallel, 1), (parallel, 2)]:
            out = np.empty(out_shape)
            with numconv.num_threads(threads):
                build(x, out, *geometry)
            results.append(out)
        assert all(np.array_equal(results[0], other) for other in results[1:])
    for serial, parallel, args in [
        (kernels.max_pool2d_grad_serial, kernels.max_pool2d_grad_parallel, (x, grad_output)),
        (kernels.avg_pool2d_grad_serial, kernels.avg_pool2d_grad_parallel, (grad_output,)),
    ]:
        results = []
        for build, threads in [(serial, 1), (parallel, 1), (parallel, 2)]:
            grad = np.empty_like(x)
            with numconv.num_threads(threads):
                build(*args, grad, *geometry)
            results.append(grad)
        assert all(np.array_equal(results[0], other) for other in results[1:])
    # And the kernels compute what the reference does for that geometry.
    expected = reference.max_pool(x, (3, 2), (2, 1), "same")
    out = np.empty(out_shape)
    kernels.max_pool2d_serial(x, out, *geometry)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_both_layouts_give_the_same_bits(kind):
    # The single-channel (channels_first) path sums in the same order and precision.
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    grad_output = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    forward, _ = POOLS[kind]
    backward, _ = GRADS[kind]
    first = lambda array: np.ascontiguousarray(np.moveaxis(array, -1, 1))  # noqa: E731
    out_last = forward(x, 3, 2, "same")
    out_first = forward(first(x), 3, 2, "same", "channels_first")
    np.testing.assert_array_equal(first(out_last), out_first)
    grad_last = backward(x, grad_output, 3, 2, "same")
    grad_first = backward(first(x), first(grad_output), 3, 2, "same", "channels_first")
    np.testing.assert_array_equal(first(grad_last), grad_first)


def test_pure_python_tiles_match_reference():
    # The tiles' Python source (no Numba) on a tiny input: catches index mistakes readably.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 4, 5, 2))
    geometry = (2, 3, 2, 2, 0, 1)  # 'same' for 4x5 with pool 2x3 and stride 2
    out = np.empty((1, 2, 3, 2))
    for tile in range(2):
        kernels.avg_pool2d_row.py_func(x, out, tile, *geometry)
    np.testing.assert_allclose(out, reference.avg_pool(x, (2, 3), (2, 2), "same"), rtol=1e-12)
    grad_output = rng.standard_normal(out.shape)
    grad = np.empty_like(x)
    rows = kernels.covering_windows.py_func(4, 2, 2, 0, 2)
    cols = kernels.covering_windows.py_func(5, 3, 2, 1, 3)
    for tile in range(4):
        kernels.avg_pool2d_grad_row.py_func(grad_output, grad, tile, rows, cols)
    expected = reference.avg_pool_grad(x, grad_output, (2, 3), (2, 2), "same")
    np.testing.assert_allclose(grad, expected, rtol=1e-12)
    kernels.max_pool2d_grad_image.py_func(x, grad_output, grad, 0, *geometry)
    expected = reference.max_pool_grad(x, grad_output, (2, 3), (2, 2), "same")
    np.testing.assert_array_equal(grad, expected)


# -- errors -----------------------------------------------------------------------------
@pytest.mark.parametrize("function", [max_pool2d, avg_pool2d])
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(x=np.zeros((4, 4, 1))), ValueError, r"rank >= 4.*x.shape=\(4, 4, 1\)"),
    (dict(x=np.zeros((1, 4, 4, 1), dtype=np.int64)), TypeError, "dtype int64"),
    (dict(pool_size=0), ValueError, r"pool_size=0"),
    (dict(pool_size=-2), ValueError, r"pool_size=-2"),
    (dict(pool_size=(1, 2, 3)), ValueError, r"pool_size=\(1, 2, 3\)"),
    (dict(pool_size=1.5), TypeError, r"pool_size=1.5"),
    (dict(pool_size=True), TypeError, r"pool_size=True"),
    (dict(strides=0), ValueError, r"strides=0"),
    (dict(strides=(1, "2")), TypeError, r"strides=\(1, '2'\)"),
    (dict(padding="full"), ValueError, r"padding='full'"),
    (dict(padding=((1, 1), (1, 1))), ValueError, r"padding=\(\(1, 1\), \(1, 1\)\)"),
    (dict(data_format="NHWC"), ValueError, r"data_format='NHWC'"),
    (dict(pool_size=5), ValueError, r"pool_size=\(5, 5\).*x.shape=\(1, 4, 4, 1\)"),
    (dict(pool_size=(2, 5), data_format="channels_first", x=np.zeros((1, 1, 4, 4))), ValueError,
     r"pool_size=\(2, 5\).*x.shape=\(1, 1, 4, 4\)"),
])
def test_bad_arguments_are_refused_with_their_value(function, kwargs, error, match):
    arguments = dict(x=np.zeros((1, 4, 4, 1)), pool_size=2)
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        function(**arguments)


@pytest.mark.parametrize("function", [max_pool2d_grad, avg_pool2d_grad])
def test_gradient_checks_grad_output(function):
    x = np.zeros((1, 4, 4, 1))
    with pytest.raises(ValueError, match=r"\(1, 2, 2, 1\).*grad_output.shape=\(1, 3, 3, 1\)"):
        function(x, np.zeros((1, 3, 3, 1)), 2)
    with pytest.raises(TypeError, match="grad_output with dtype <U1"):
        function(x, np.full((1, 2, 2, 1), "a"), 2)
    with pytest.raises(ValueError, match="padding='causal'"):
        function(x, np.zeros((1, 2, 2, 1)), 2, padding="causal")
