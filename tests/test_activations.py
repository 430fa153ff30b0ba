"""numconv.activations: values against closed forms, gradients against finite differences."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numconv import activations, config
from numconv.autograd.tape import GradientTape
from numconv.autograd.tensor import Tensor, Variable

from gradient_check import assert_gradients_close

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


# -- independent per-element references (plain math on Python floats) ----------------------

def _ref_sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


def _ref_softplus(v):
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


def _ref_relu(v, negative_slope=0.0, max_value=None, threshold=0.0):
    # Keras 3: keep x above the threshold, clip to [0, max_value], subtract the leak.
    out = v if v > threshold else 0.0
    if max_value is not None:
        out = min(max(out, 0.0), max_value)
    return out - negative_slope * max(threshold - v, 0.0)


REFERENCES = {
    "relu": (lambda v: max(v, 0.0), {}, [0.0]),
    "relu6": (lambda v: min(max(v, 0.0), 6.0), {}, [0.0, 6.0]),
    "leaky_relu": (lambda v: v if v > 0 else 0.2 * v, {}, [0.0]),
    "elu": (lambda v: v if v > 0 else math.exp(v) - 1.0, {}, [0.0]),
    "selu": (lambda v: SELU_SCALE * (v if v > 0 else SELU_ALPHA * (math.exp(v) - 1.0)), {}, [0.0]),
    "gelu": (lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))), {}, []),
    "silu": (lambda v: v * _ref_sigmoid(v), {}, []),
    "swish": (lambda v: v / (1.0 + math.exp(-v)), {}, []),
    "sigmoid": (_ref_sigmoid, {}, []),
    "hard_sigmoid": (lambda v: min(max(v / 6.0 + 0.5, 0.0), 1.0), {}, [-3.0, 3.0]),
    "hard_silu": (lambda v: v * min(max(v / 6.0 + 0.5, 0.0), 1.0), {}, [-3.0, 3.0]),
    "tanh": (math.tanh, {}, []),
    "softplus": (lambda v: math.log(1.0 + math.exp(v)), {}, []),
    "softsign": (lambda v: v / (1.0 + abs(v)), {}, []),
    "exponential": (math.exp, {}, []),
    "mish": (lambda v: v * math.tanh(math.log(1.0 + math.exp(v))), {}, []),
    "linear": (lambda v: v, {}, []),
}

# (function name, keyword arguments, reference, kinks)
PARAMETRISED = [
    ("relu", {"negative_slope": 0.1}, lambda v: _ref_relu(v, 0.1), [0.0]),
    ("relu", {"max_value": 2.5}, lambda v: _ref_relu(v, max_value=2.5), [0.0, 2.5]),
    ("relu", {"threshold": 1.0}, lambda v: _ref_relu(v, threshold=1.0), [1.0]),
    ("relu", {"threshold": -1.0}, lambda v: _ref_relu(v, threshold=-1.0), [-1.0]),
    ("relu", {"negative_slope": 0.3, "max_value": 2.0, "threshold": 0.5},
     lambda v: _ref_relu(v, 0.3, 2.0, 0.5), [0.5, 2.0]),
    ("relu", {"negative_slope": 0.3, "max_value": 2.0, "threshold": -0.5},
     lambda v: _ref_relu(v, 0.3, 2.0, -0.5), [-0.5, 0.0, 2.0]),
    ("leaky_relu", {"negative_slope": 0.05}, lambda v: v if v > 0 else 0.05 * v, [0.0]),
    ("elu", {"alpha": 0.5}, lambda v: v if v > 0 else 0.5 * (math.exp(v) - 1.0), [0.0]),
    ("gelu", {"approximate": True},
     lambda v: 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3))), []),
] + [(name, kwargs, ref, kinks) for name, (ref, kwargs, kinks) in REFERENCES.items()]

CASE_IDS = [f"{name}-{kwargs}" for name, kwargs, _, _ in PARAMETRISED]


def _sample_away_from(kinks, shape, seed, low=-4.0, high=4.0):
    """Random values at least 1e-2 away from the activation's kinks."""
    values = np.random.default_rng(seed).uniform(low, high, shape)
    for kink in kinks:
        close = np.abs(values - kink) < 1e-2
        values[close] = kink + np.where(values[close] >= kink, 2e-2, -2e-2)
    return values


def _reference(ref, values):
    return np.vectorize(ref, otypes=[np.float64])(values)


def _analytic_grad(function, values, weights):
    """Gradient of sum(weights * function(x)) at ``values`` through the tape."""
    variable = Variable(values)
    with GradientTape() as tape:
        output = function(variable)
    return tape.gradient(output, variable, output_gradients=weights).numpy()


# -- elementwise activations ---------------------------------------------------------

@pytest.mark.parametrize("name, kwargs, ref, kinks", PARAMETRISED, ids=CASE_IDS)
def test_value_matches_closed_form(name, kwargs, ref, kinks):
    values = _sample_away_from(kinks, (3, 5, 4), seed=1, low=-8.0, high=8.0)
    result = getattr(activations, name)(values, **kwargs)
    assert isinstance(result, Tensor)
    assert result.dtype == np.float64 and result.shape == values.shape
    np.testing.assert_allclose(result.numpy(), _reference(ref, values), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, kwargs, ref, kinks", PARAMETRISED, ids=CASE_IDS)
def test_gradient_matches_finite_differences(name, kwargs, ref, kinks):
    function = getattr(activations, name)
    values = _sample_away_from(kinks, (2, 3, 4), seed=2)
    weights = np.random.default_rng(3).normal(size=values.shape)
    analytic = _analytic_grad(lambda t: function(t, **kwargs), values, weights)
    assert_gradients_close(
        lambda x: weights * function(x, **kwargs).numpy(), [values], [analytic],
        rtol=1e-6, atol=1e-8,
    )


@pytest.mark.parametrize("name, kwargs, ref, kinks", PARAMETRISED, ids=CASE_IDS)
def test_float32_and_float16_keep_their_dtype(name, kwargs, ref, kinks):
    values = _sample_away_from(kinks, (4, 6), seed=4)
    function = getattr(activations, name)
    for dtype, rtol, atol in ((np.float32, 2e-6, 1e-6), (np.float16, 1e-3, 1e-4)):
        x = values.astype(dtype)
        result = function(x, **kwargs)
        assert result.dtype == dtype
        # Compare with the reference at the rounded input, to within the dtype's precision.
        rounded = _reference(ref, x.astype(np.float64))
        np.testing.assert_allclose(result.numpy().astype(np.float64), rounded, rtol=rtol, atol=atol)
        variable = Variable(x)
        with GradientTape() as tape:
            output = function(variable, **kwargs)
        assert tape.gradient(output, variable).dtype == dtype


def test_exact_gelu_is_the_default_and_differs_from_the_tanh_form():
    values = np.linspace(-5, 5, 101)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in values])
    np.testing.assert_allclose(activations.gelu(values).numpy(), exact, rtol=1e-13, atol=1e-15)
    difference = activations.gelu(values, approximate=True).numpy() - exact
    assert np.max(np.abs(difference)) > 1e-5


def test_gelu_keeps_precision_far_in_the_negative_tail():
    # 1 + erf(x / sqrt(2)) cancels to 0 here; x * Phi(x) is ~1e-23 (Mills' ratio bound).
    x = -10.0
    value = float(activations.gelu(np.array(x)))
    phi = math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    lower, upper = x * phi / abs(x), x * phi * abs(x) / (x * x + 1)
    assert lower <= value <= upper


# -- large inputs: finite, exact limits, no warnings --------------------------------------

BOUNDED = ["relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "sigmoid", "hard_sigmoid",
           "hard_silu", "tanh", "softplus", "softsign", "mish", "linear"]

# Value at -1000 and at +1000.
LIMITS = {
    "relu": (0.0, 1000.0), "relu6": (0.0, 6.0), "leaky_relu": (-200.0, 1000.0),
    "elu": (-1.0, 1000.0),
    "selu": (-SELU_SCALE * SELU_ALPHA, SELU_SCALE * 1000.0), "gelu": (0.0, 1000.0),
    "silu": (0.0, 1000.0), "sigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0),
    "hard_silu": (0.0, 1000.0), "tanh": (-1.0, 1.0), "softplus": (0.0, 1000.0),
    "softsign": (-1000.0 / 1001.0, 1000.0 / 1001.0), "mish": (0.0, 1000.0),
    "linear": (-1000.0, 1000.0),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("name", BOUNDED)
def test_extreme_inputs_give_limits_without_warnings(name, dtype):
    big = float(np.finfo(dtype).max) / 4
    values = np.array([-big, -1000.0, -50.0, 50.0, 1000.0, big]).astype(dtype)
    function = getattr(activations, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = function(values).numpy()
        variable = Variable(values)
        with GradientTape() as tape:
            output = function(variable)
        grad = tape.gradient(output, variable).numpy()
    assert np.all(np.isfinite(result)) and np.all(np.isfinite(grad))
    low, high = LIMITS[name]
    np.testing.assert_allclose(result[[1, 4]].astype(np.float64), [low, high],
                               rtol=1e-3, atol=1e-30)


def test_approximate_gelu_saturates_without_nan():
    values = np.array([-1e200, -1e20, 1e20, 1e200])
    variable = Variable(values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with GradientTape() as tape:
            output = activations.gelu(variable, approximate=True)
        grad = tape.gradient(output, variable).numpy()
    np.testing.assert_array_equal(output.numpy(), [0.0, 0.0, 1e20, 1e200])
    np.testing.assert_array_equal(grad, [0.0, 0.0, 1.0, 1.0])


def test_softplus_is_exact_for_large_positive_and_negative_inputs():
    result = activations.softplus(np.array([1000.0, -1000.0, -30.0])).numpy()
    assert result[0] == 1000.0
    assert 0.0 <= result[1] < 1e-300
    np.testing.assert_allclose(result[2], math.exp(-30.0), rtol=1e-12)


def test_exponential_overflows_to_inf_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isinf(activations.exponential(np.array([1000.0])).numpy()[0])


def test_nan_propagates():
    for name in BOUNDED + ["exponential"]:
        assert np.isnan(getattr(activations, name)(np.array([np.nan])).numpy()[0]), name


# -- softmax and log_softmax -------------------------------------------------------------

def _ref_softmax(values, axes):
    """softmax by explicit loops over all slices, with math.exp."""
    values = np.asarray(values, dtype=np.float64)
    moved = np.moveaxis(values, axes, tuple(range(values.ndim - len(axes), values.ndim)))
    batch_shape = moved.shape[: values.ndim - len(axes)]
    flat = moved.reshape(batch_shape + (-1,))
    out = np.empty_like(flat)
    for index in np.ndindex(*batch_shape):
        row = [float(v) for v in flat[index]]
        top = max(row)
        exps = [math.exp(v - top) for v in row]
        total = math.fsum(exps)
        out[index] = [e / total for e in exps]
    out = out.reshape(moved.shape)
    return np.moveaxis(out, tuple(range(values.ndim - len(axes), values.ndim)), axes)


@pytest.mark.parametrize("axis, axes", [(-1, (2,)), (0, (0,)), (1, (1,)), ((0, 2), (0, 2)),
                                        ([-1, -2], (2, 1))])
def test_softmax_and_log_softmax_match_reference(axis, axes):
    values = np.random.default_rng(5).normal(scale=3.0, size=(3, 4, 5))
    expected = _ref_softmax(values, axes)
    np.testing.assert_allclose(activations.softmax(values, axis=axis).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(activations.log_softmax(values, axis=axis).numpy(), np.log(expected),
                               rtol=1e-12, atol=1e-12)
    weights = np.random.default_rng(6).normal(size=values.shape)
    for function in (activations.softmax, activations.log_softmax):
        analytic = _analytic_grad(lambda t: function(t, axis=axis), values, weights)
        assert_gradients_close(lambda x: weights * function(x, axis=axis).numpy(), [values],
                               [analytic], rtol=1e-6, atol=1e-8)


@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    axis_choice=st.integers(-3, 2),
    scale=st.sampled_from([1.0, 100.0, 1e4]),
)
def test_softmax_sums_to_one_over_any_axis(shape, axis_choice, scale):
    axis = axis_choice % len(shape)
    values = np.random.default_rng(len(shape) + axis).normal(scale=scale, size=shape)
    probs = activations.softmax(values, axis=axis).numpy()
    np.testing.assert_allclose(probs.sum(axis=axis), 1.0, rtol=1e-12)
    np.testing.assert_allclose(probs, _ref_softmax(values, (axis,)), rtol=1e-10, atol=1e-300)


def test_softmax_is_stable_for_huge_logits():
    values = np.array([[1000.0, 1000.0, -1000.0], [-1e30, 0.0, 1e30]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probs = activations.softmax(values).numpy()
        logs = activations.log_softmax(values).numpy()
    np.testing.assert_allclose(probs, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], atol=1e-7)
    log_half = -math.log(2)
    np.testing.assert_allclose(logs[0], [log_half, log_half, -2000.0 + log_half], rtol=1e-6)
    assert logs[1, 2] == 0.0 and logs[1, 1] == np.float32(-1e30)


def test_softmax_of_a_vector_and_of_an_empty_batch():
    np.testing.assert_allclose(activations.softmax(np.array([0.0, 0.0])).numpy(), [0.5, 0.5])
    assert activations.softmax(np.zeros((0, 3))).shape == (0, 3)


# -- input kinds and the tape -----------------------------------------------------------

def test_accepts_arrays_lists_tensors_and_variables():
    expected = np.array([0.0, 0.0, 2.0])
    for value in ([-1.0, 0.0, 2.0], np.array([-1.0, 0.0, 2.0]), Tensor(np.array([-1.0, 0.0, 2.0])),
                  Variable(np.array([-1.0, 0.0, 2.0]))):
        result = activations.relu(value)
        assert isinstance(result, Tensor)
        np.testing.assert_array_equal(result.numpy(), expected)


def test_integer_input_gives_floatx():
    assert activations.sigmoid(np.array([1, 2])).dtype == np.float32
    previous = config.floatx()
    config.set_floatx("float64")
    try:
        assert activations.tanh([1, 2]).dtype == np.float64
    finally:
        config.set_floatx(previous)


def test_linear_copies_a_mutable_array_input():
    values = np.array([1.0, 2.0])
    result = activations.linear(values)
    values[0] = 5.0
    assert result.numpy()[0] == 1.0


def test_gradient_flows_through_a_chain_of_activations():
    values = np.array([[0.3, -1.2, 2.0], [1.5, 0.1, -0.7]])
    weights = np.random.default_rng(7).normal(size=values.shape)

    def chain(x):
        return activations.softmax(activations.gelu(activations.elu(x)) * 2.0, axis=0)

    analytic = _analytic_grad(chain, values, weights)
    assert_gradients_close(lambda x: weights * chain(x).numpy(), [values], [analytic], rtol=1e-6)


def test_watched_tensor_gets_a_gradient():
    x = Tensor(np.array([0.5, -0.5]))
    with GradientTape() as tape:
        tape.watch(x)
        y = activations.sigmoid(x)
    s = np.array([_ref_sigmoid(0.5), _ref_sigmoid(-0.5)])
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), s * (1 - s), rtol=1e-12)


# -- registry ---------------------------------------------------------------------------

def test_get_serialize_deserialize():
    assert activations.get("relu") is activations.relu
    assert activations.serialize(activations.relu) == "relu"
    assert activations.deserialize("relu") is activations.relu
    assert activations.get(None) is activations.linear
    assert activations.get("swish") is activations.silu is activations.swish
    assert activations.serialize(activations.swish) == "silu"
    assert activations.get("hard_swish") is activations.hard_silu
    assert activations.get({"class_name": "gelu", "config": {}}) is activations.gelu

    def custom(x):
        return x

    assert activations.get(custom) is custom
    for name in ("relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "sigmoid",
                 "hard_sigmoid", "tanh", "softplus", "softsign", "softmax", "log_softmax",
                 "exponential", "mish", "linear"):
        function = activations.get(name)
        assert function is getattr(activations, name)
        assert activations.deserialize(activations.serialize(function)) is function


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"'relu7'.*valid names are:.*\brelu6\b.*\bsoftmax\b"):
        activations.get("relu7")


def test_uninterpretable_identifier_is_a_type_error():
    with pytest.raises(TypeError, match="received 5"):
        activations.get(5)


def test_unserializable_function_is_a_value_error():
    with pytest.raises(ValueError, match="cannot serialize"):
        activations.serialize(lambda x: x)


# -- bad arguments ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda x: activations.relu(x, max_value=-1.0), ValueError, r"max_value.*max_value=-1\.0"),
        (lambda x: activations.relu(x, negative_slope=-0.1), ValueError, r"negative_slope=-0\.1"),
        (lambda x: activations.relu(x, threshold=float("nan")), ValueError, r"threshold=nan"),
        (lambda x: activations.relu(x, max_value="6"), TypeError, r"max_value='6'"),
        (lambda x: activations.leaky_relu(x, negative_slope="a"), TypeError, r"negative_slope='a'"),
        (lambda x: activations.elu(x, alpha=None), TypeError, r"alpha=None"),
        (lambda x: activations.gelu(x, approximate="yes"), TypeError, r"approximate='yes'"),
        (lambda x: activations.softmax(x, axis=2), ValueError, r"rank 2.*axis=2"),
        (lambda x: activations.log_softmax(x, axis=-3), ValueError, r"rank 2.*axis=-3"),
        (lambda x: activations.softmax(x, axis=1.0), TypeError, r"axis=1\.0"),
        (lambda x: activations.softmax(x, axis=(0, -2)), ValueError, r"axis=\(0, -2\)"),
    ],
)
def test_bad_arguments_name_argument_and_value(call, error, message):
    with pytest.raises(error, match=message):
        call(np.ones((2, 3)))


@pytest.mark.parametrize("name", ["relu", "gelu", "softmax", "linear"])
def test_non_real_inputs_are_rejected(name):
    with pytest.raises(TypeError, match="dtype complex128"):
        getattr(activations, name)(np.array([1 + 1j]))
    with pytest.raises(TypeError, match="dtype"):
        getattr(activations, name)(np.array(["a"]))


def test_config_dict_with_a_non_string_class_name_is_a_value_error():
    with pytest.raises(ValueError, match=r"unknown activation \['relu'\]"):
        activations.deserialize({"class_name": ["relu"], "config": {}})
    with pytest.raises(ValueError, match=r"config must be a name or a dict.*received 3"):
        activations.deserialize(3)


def test_erfc_kernel_matches_math_and_is_callable_from_user_njit_code():
    import numba

    from numconv.kernels.special import erfc_into

    values = np.concatenate([np.linspace(-30.0, 30.0, 241), [0.0, -0.0, np.inf, -np.inf]])
    expected = np.array([math.erfc(v) for v in values])
    for kernel in (erfc_into, erfc_into.py_func):
        out = np.empty_like(values)
        kernel(values, out)
        np.testing.assert_allclose(out, expected, rtol=1e-15, atol=0)

    @numba.njit
    def user_code(values):
        out = np.empty_like(values)
        erfc_into(values, out)
        return out

    np.testing.assert_allclose(user_code(values), expected, rtol=1e-15, atol=0)
