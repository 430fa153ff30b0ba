"""NaN and Inf propagate as plain arithmetic would; float32 long reductions stay accurate.

References are tests/reference.py and tests/reference_pooling.py, in float64
with NumPy: the positions of NaN, +Inf and -Inf must match them exactly, and
the finite values must agree closely.
"""

import zlib

import numpy as np
import pytest

import reference
import reference_pooling
from numconv import layers, nn
from numconv.autograd.tape import GradientTape


def _sprinkle(array, rng, count):
    """A copy of ``array`` with NaN, +Inf and -Inf at random positions."""
    array = array.copy()
    flat = array.reshape(-1)
    positions = rng.choice(flat.size, size=count, replace=False)
    flat[positions] = rng.choice([np.nan, np.inf, -np.inf], size=count)
    return array


def assert_same_specials(actual, expected, rtol):
    """NaN, +Inf and -Inf at the same places; the finite values close."""
    actual = np.asarray(actual, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=rtol, atol=rtol)


CONV_CASES = [
    dict(padding="valid"),
    dict(padding="same", strides=2),
    dict(padding="same", dilation_rate=2),
    dict(padding="valid", groups=3, filters=6),
]


def _rng(*labels):
    """A generator seeded by the test's parameters: results do not depend on test order."""
    return np.random.default_rng(zlib.crc32(repr(labels).encode()))


def _conv_problem(case, dtype, rng):
    case = dict(case)
    filters = case.pop("filters", 4)
    groups = case.get("groups", 1)
    x = rng.standard_normal((2, 7, 7, 3)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 3 // groups, filters)).astype(dtype)
    return x, kernel, case


def _check_conv(x, kernel, case, grad_output_specials, rng):
    dtype = x.dtype
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    out = nn.conv2d(x, kernel, **case)
    assert_same_specials(out, reference.conv2d_reference(x, kernel, **case), rtol)
    grad_output = rng.standard_normal(out.shape).astype(dtype)
    if grad_output_specials:
        grad_output = _sprinkle(grad_output, rng, grad_output_specials)
    grads = nn.conv2d_grads(x, kernel, grad_output, **case)
    expected_grads = reference.conv2d_grads_reference(x, kernel, grad_output, **case)
    for got, want in zip(grads, expected_grads):
        assert_same_specials(got, want, rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda case: str(case))
def test_conv2d_and_grads_propagate_nan_and_inf_of_x(case, dtype):
    rng = _rng(case, dtype)
    x, kernel, case = _conv_problem(case, dtype, rng)
    _check_conv(_sprinkle(x, rng, 3), kernel, case, 0, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [CONV_CASES[0], CONV_CASES[3]], ids=lambda case: str(case))
def test_conv2d_and_grads_propagate_nan_and_inf_of_kernel_and_grad_output(case, dtype):
    """Without padding every product is one plain arithmetic would form."""
    rng = _rng(case, dtype)
    x, kernel, case = _conv_problem(case, dtype, rng)
    _check_conv(_sprinkle(x, rng, 2), _sprinkle(kernel, rng, 1), case, 2, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("special", ["kernel", "grad_output"])
def test_conv2d_nan_and_inf_meet_zero_padding(special, dtype):
    rng = _rng(special, dtype)
    x, kernel, case = _conv_problem(dict(padding="same"), dtype, rng)
    if special == "kernel":
        kernel[0, 0, 0, 0] = np.inf  # the top-left tap reads the top padding row
    out = nn.conv2d(x, kernel, **case)
    expected = reference.conv2d_reference(x, kernel, **case)
    assert_same_specials(out, expected, 1e-4)
    grad_output = rng.standard_normal(out.shape).astype(dtype)
    grad_output[0, 0, 0, 0] = np.nan  # its window covers padding
    grads = nn.conv2d_grads(x, kernel, grad_output, **case)
    expected_grads = reference.conv2d_grads_reference(x, kernel, grad_output, **case)
    for got, want in zip(grads, expected_grads):
        assert_same_specials(got, want, 1e-4)


POOL_CASES = [((2, 2), None, "valid"), ((3, 3), (2, 2), "same"), ((2, 3), (1, 2), "same")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool, strides, padding", POOL_CASES)
def test_pooling_and_grads_propagate_nan_and_inf(pool, strides, padding, dtype):
    rng = _rng(pool, strides, padding, dtype)
    x = _sprinkle(rng.standard_normal((2, 7, 6, 3)).astype(dtype), rng, 8)
    steps = pool if strides is None else strides
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    got = nn.max_pool2d(x, pool, strides, padding)
    assert_same_specials(got, reference_pooling.max_pool(x, pool, steps, padding), rtol)
    got = nn.avg_pool2d(x, pool, strides, padding)
    assert_same_specials(got, reference_pooling.avg_pool(x, pool, steps, padding), rtol)

    grad_output = _sprinkle(rng.standard_normal(got.shape).astype(dtype), rng, 2)
    assert_same_specials(
        nn.max_pool2d_grad(x, grad_output, pool, strides, padding),
        reference_pooling.max_pool_grad(x, grad_output, pool, steps, padding), rtol)
    assert_same_specials(
        nn.avg_pool2d_grad(x, grad_output, pool, strides, padding),
        reference_pooling.avg_pool_grad(x, grad_output, pool, steps, padding), rtol)


def test_conv2d_layer_and_tape_gradient_propagate_nan_and_inf():
    rng = _rng("layer")
    x = _sprinkle(rng.standard_normal((2, 6, 6, 2)), rng, 2)
    layer = layers.Conv2D(3, 3, padding="same", dtype="float64")
    with GradientTape() as tape:
        out = layer(x)
    grad_kernel, grad_bias = tape.gradient(out, [layer.kernel, layer.bias])
    kernel = layer.kernel.numpy()
    assert_same_specials(out, reference.conv2d_reference(x, kernel, padding="same"), 1e-10)
    _, want_kernel, want_bias = reference.conv2d_grads_reference(
        x, kernel, np.ones(out.shape), padding="same")
    assert_same_specials(grad_kernel, want_kernel, 1e-10)
    assert_same_specials(grad_bias, want_bias, 1e-10)


# -- float32 with a long reduction -------------------------------------------------------------
def _relative_l2(actual, expected):
    return np.linalg.norm(np.asarray(actual, np.float64) - expected) / np.linalg.norm(expected)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_float32_long_reduction_matches_float64_reference(data_format):
    """C_in * KH * KW = 512 * 3 * 3 = 4608 terms per output; batch 4 for the kernel gradient."""
    rng = _rng(data_format)
    x = rng.standard_normal((4, 8, 8, 512)).astype(np.float32)
    kernel = (rng.standard_normal((3, 3, 512, 8)) / 64).astype(np.float32)
    if data_format == "channels_first":
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    options = dict(padding="same", data_format=data_format)
    out = nn.conv2d(x, kernel, **options)
    assert out.dtype == np.float32
    assert _relative_l2(out, reference.conv2d_reference(x, kernel, **options)) < 1e-4

    grad_output = rng.standard_normal(out.shape).astype(np.float32)
    grads = nn.conv2d_grads(x, kernel, grad_output, **options)
    expected = reference.conv2d_grads_reference(x, kernel, grad_output, **options)
    for name, got, want in zip(("input", "kernel", "bias"), grads, expected):
        assert got.dtype == np.float32, name
        assert _relative_l2(got, want) < 1e-4, name
