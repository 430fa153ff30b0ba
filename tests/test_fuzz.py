"""Fuzzing the array API: random shapes, options and dtypes, valid or not.

Every call either matches the independent reference (tests/reference.py,
tests/reference_pooling.py) or raises a clean ValueError or TypeError
(a well-formed but huge request, such as filters=2**63, may instead raise
the MemoryError stating its byte count); any other exception fails the test.
The example count comes from the shared hypothesis profile in tests/conftest.py.
"""

import math
import re

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import reference
import reference_pooling
from numconv import layers, nn

# Every example starts as a valid call; about half then get one argument replaced by
# an invalid value of the kinds the API must refuse cleanly.
BAD_SIZES = [0, -1, -(2**40), 2**63, 10**30, 1.0, 2.5, float("nan"), float("inf"), True, None,
             "2", (1,), (1, 2, 3), (1, float("nan")), (2, -1), [], {}]
BAD = {
    "strides": BAD_SIZES,
    "dilation_rate": BAD_SIZES,
    "pool_size": BAD_SIZES,
    "groups": [0, -1, 1.0, None, float("nan"), "1", 3],
    "padding": ["full", "causal", "", None, -1, 1.5, float("nan"), ((1, 1), (1,)),
                ((0, 1), (2, -3)), 2**70],
    "data_format": ["NCHW", None, 3, "channels_middle"],
    "x": ["dtype", "rank", "None", "string"],
    "kernel": ["dtype", "rank", "channels"],
}
REAL_DTYPES = [np.float32, np.float64, np.float32, np.float64, np.float16, np.int32, np.bool_]
BAD_DTYPES = [np.complex64, np.object_, np.str_, np.longdouble]
small = st.integers(1, 3)
size_options = st.one_of(small, st.tuples(small, small))


def _array(draw, shape, dtype):
    values = draw(st.sampled_from([0, 1])) + np.arange(int(np.prod(shape)))
    return (np.sin(values).reshape(shape) * 3).astype(dtype)


def _shape(draw, data_format, channels, min_height=0):
    height, width = draw(st.integers(min_height, 7)), draw(st.integers(1, 7))
    spatial = (height, width, channels) if data_format == "channels_last" else (
        channels, height, width)
    return (draw(st.integers(1, 2)),) * draw(st.sampled_from([1, 1, 2])) + spatial


def _corrupt(draw, arguments):
    """Replace at most one argument by an invalid value (half of the examples)."""
    names = [name for name in arguments if name in BAD]
    choice = draw(st.integers(0, 2 * len(names) - 1))
    if choice >= len(names):
        return arguments
    name = names[choice]
    bad = draw(st.sampled_from(BAD[name]))
    value = arguments[name]
    if name in ("x", "kernel"):
        if bad == "dtype":
            bad = value.astype(draw(st.sampled_from(BAD_DTYPES)))
        elif bad == "rank":
            bad = value[0] if value.ndim else value
        elif bad == "channels":
            bad = np.concatenate([value, value], axis=2)
        elif bad == "None":
            bad = None
        elif bad == "string":
            bad = "abc"
    return dict(arguments, **{name: bad})


@st.composite
def conv_calls(draw):
    data_format = draw(st.sampled_from(["channels_last", "channels_first"]))
    groups = draw(st.sampled_from([1, 1, 2]))
    channels = groups * draw(st.integers(1, 2))
    # Height >= 1: tests/reference.py loses the batch axis of empty inputs.
    x = _array(draw, _shape(draw, data_format, channels, min_height=1),
               draw(st.sampled_from(REAL_DTYPES)))
    filters = groups * draw(st.integers(1, 2))
    kernel_shape = (draw(small), draw(small), channels // groups, filters)
    kernel = _array(draw, kernel_shape, draw(st.sampled_from(REAL_DTYPES)))
    strides = draw(size_options)
    dilation_rate = 1 if strides not in (1, (1, 1)) else draw(st.sampled_from([1, 2, (1, 2)]))
    padding = draw(st.one_of(st.sampled_from(["valid", "same", "VALID", "Same"]),
                             st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2))))
    arguments = _corrupt(draw, dict(x=x, kernel=kernel, strides=strides, padding=padding,
                                    data_format=data_format, dilation_rate=dilation_rate,
                                    groups=groups))
    x, kernel = arguments.pop("x"), arguments.pop("kernel")
    return x, kernel, arguments


@st.composite
def pool_calls(draw):
    data_format = draw(st.sampled_from(["channels_last", "channels_first"]))
    x = _array(draw, _shape(draw, data_format, draw(st.integers(1, 3))),
               draw(st.sampled_from([np.float32, np.float64, np.float16])))
    arguments = _corrupt(draw, dict(
        x=x, pool_size=draw(size_options), strides=draw(st.one_of(st.none(), size_options)),
        padding=draw(st.sampled_from(["valid", "same", "SAME"])), data_format=data_format))
    return (arguments["x"], arguments["pool_size"], arguments["strides"], arguments["padding"],
            arguments["data_format"])


def _tolerance(*arrays):
    kinds = [np.asarray(a).dtype for a in arrays]
    if any(dtype == np.float16 for dtype in kinds):
        return 2e-2
    if all(dtype == np.float64 for dtype in kinds):
        return 1e-10
    return 1e-4


def _close(actual, expected, rtol):
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def _to_last(array, data_format):
    return np.moveaxis(array, -3, -1) if data_format == "channels_first" else array


def _from_last(array, data_format):
    return np.moveaxis(array, -1, -3) if data_format == "channels_first" else array


def _pool_reference(function, x, pool, strides, padding, data_format, grad_output=None):
    """Apply a channels_last (N, H, W, C) reference to any layout and batch rank."""
    pair = (lambda v: (v, v) if isinstance(v, int) else tuple(v))
    pool = pair(pool)
    strides = pool if strides is None else pair(strides)
    x_last = _to_last(np.asarray(x, np.float64), data_format)
    batch = x_last.shape[:-3]
    flat = x_last.reshape((math.prod(batch),) + x_last.shape[-3:])
    arguments = [flat]
    if grad_output is not None:
        grad_last = _to_last(np.asarray(grad_output, np.float64), data_format)
        arguments.append(grad_last.reshape((math.prod(batch),) + grad_last.shape[-3:]))
    result = function(*arguments, pool, strides, padding.lower())
    return _from_last(result.reshape(batch + result.shape[1:]), data_format)


def _valid_conv_options(options):
    """Options as the reference understands them (after numconv accepted them)."""
    return dict(options, padding=options["padding"].lower()
                if isinstance(options["padding"], str) else options["padding"],
                data_format=options["data_format"])


@given(conv_calls(), st.data())
def test_conv2d_and_grads_match_reference_or_refuse_cleanly(call, data):
    x, kernel, options = call
    try:
        out = nn.conv2d(x, kernel, **options)
    except (ValueError, TypeError):
        event("conv2d refused")
        return
    event("conv2d accepted")
    reference_options = _valid_conv_options(options)
    expected = reference.conv2d_reference(x, kernel, **reference_options)
    rtol = _tolerance(x, kernel)
    _close(out, expected, rtol)

    grad_shape = data.draw(st.sampled_from([out.shape, out.shape[:-1] + (out.shape[-1] + 1,)]))
    grad_output = np.cos(np.arange(math.prod(grad_shape))).reshape(grad_shape).astype(out.dtype)
    wrt = data.draw(st.sampled_from([("input", "kernel", "bias"), ("kernel",), "input",
                                     ("weights",), None]))
    try:
        grads = nn.conv2d_grads(x, kernel, grad_output, wrt=wrt, **options)
    except (ValueError, TypeError):
        assert grad_shape != out.shape or wrt in (("weights",), None)
        return
    expected_grads = reference.conv2d_grads_reference(x, kernel, grad_output, **reference_options)
    wanted = {wrt} if isinstance(wrt, str) else set(wrt)
    for name, got, want in zip(("input", "kernel", "bias"), grads, expected_grads):
        if name in wanted:
            _close(got, want, rtol)
        else:
            assert got is None


POOLS = [(nn.max_pool2d, nn.max_pool2d_grad, reference_pooling.max_pool,
          reference_pooling.max_pool_grad),
         (nn.avg_pool2d, nn.avg_pool2d_grad, reference_pooling.avg_pool,
          reference_pooling.avg_pool_grad)]


@pytest.mark.parametrize("forward, backward, forward_reference, backward_reference", POOLS,
                         ids=["max", "avg"])
@given(call=pool_calls())
def test_pooling_and_grads_match_reference_or_refuse_cleanly(
        forward, backward, forward_reference, backward_reference, call):
    x, pool, strides, padding, data_format = call
    try:
        out = forward(x, pool, strides, padding, data_format)
    except (ValueError, TypeError):
        event("pooling refused")
        return
    event("pooling accepted")
    rtol = _tolerance(x)
    _close(out, _pool_reference(forward_reference, x, pool, strides, padding, data_format), rtol)
    grad_output = np.cos(np.arange(out.size)).reshape(out.shape).astype(out.dtype)
    grad = backward(x, grad_output, pool, strides, padding, data_format)
    _close(grad, _pool_reference(backward_reference, x, pool, strides, padding, data_format,
                                 grad_output), rtol)


@st.composite
def layer_options(draw):
    options = dict(
        filters=draw(small), kernel_size=draw(size_options), strides=draw(size_options),
        padding=draw(st.sampled_from(["valid", "same", "SAME", 1, (1, 0)])),
        data_format=draw(st.sampled_from(["channels_last", "channels_first"])))
    # "pool_size" stands for filters so that filters too gets bad sizes.
    options = _corrupt(draw, dict(options, pool_size=options["filters"]))
    options["filters"] = options.pop("pool_size")
    return options


@given(options=layer_options(), channels=small, size=st.integers(1, 6))
def test_conv2d_layer_matches_reference_or_refuses_cleanly(options, channels, size):
    try:
        layer = layers.Conv2D(**options, dtype="float64")
    except (ValueError, TypeError):
        return
    shape = (2, size, size + 1, channels) if layer.data_format == "channels_last" else (
        2, channels, size, size + 1)
    x = np.sin(np.arange(math.prod(shape))).reshape(shape)
    try:
        out = layer(x)
    except MemoryError as error:  # a huge but well-formed request, e.g. filters=2**63
        assert re.search(r"needs \d+ bytes", str(error)) and not layer.built
        return
    except (ValueError, TypeError):
        assert not layer.built
        event("layer call refused")
        return
    event("layer call accepted")
    expected = reference.conv2d_reference(
        x, layer.kernel.numpy(), layer.bias.numpy(), strides=layer.strides,
        padding=layer.padding, data_format=layer.data_format)
    _close(out, expected, 1e-10)
