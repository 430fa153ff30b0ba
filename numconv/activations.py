"""Activation functions with Keras 3 semantics, differentiable on the tape.

Each activation is one op built on :func:`numconv.autograd.tensor.record`: a
NumPy forward in a numerically stable form and an analytic backward.  They
accept arrays, Tensors and Variables and return a Tensor of the input's float
dtype (integer and boolean inputs give ``numconv.config.floatx()``); float16
is computed in float32 and rounded once at the end.

``get(identifier)`` resolves a name, a config dict, a callable or None
(``linear``, as Keras does); ``serialize``/``deserialize`` map functions to
and from their names.
"""

import math
import numbers

import numpy as np

from . import config
from ._registry import Registry
from .autograd.tensor import Tensor, Variable, as_array, record
from .kernels.special import erfc_into

_registry = Registry("activation")

# Klambauer et al. (2017), the constants Keras uses.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


# -- input handling ----------------------------------------------------------------------

def _prepared(x):
    """(array to compute with, dtype of the result) for an activation input."""
    array = as_array(x)
    kind = array.dtype.kind
    if kind == "f":
        out_dtype = array.dtype
    elif kind in "biu":
        out_dtype = np.dtype(config.floatx())
    else:
        raise TypeError(
            f"x must hold real numbers; received an array of dtype {array.dtype}"
        )
    # float16 exps and logs lose too much: compute in at least float32.
    return array.astype(np.promote_types(out_dtype, np.float32), copy=False), out_dtype


def _grad_like(grad, x):
    """A gradient cast to the float dtype of the input it belongs to."""
    dtype = as_array(x).dtype
    return grad.astype(dtype if dtype.kind == "f" else grad.dtype, copy=False)


def _elementwise(x, forward, derivative):
    """Record ``y = forward(a)`` whose backward is ``grad * derivative(a, y)``.

    ``forward`` and ``derivative`` see the compute array ``a`` (float32 or
    wider) and ``y`` in that same precision.
    """
    array, out_dtype = _prepared(x)
    # Saturating exps overflow to inf by design, and NaN inputs give NaN quietly (as TF).
    with np.errstate(over="ignore", invalid="ignore"):
        value = forward(array)

    def backward(grad, needs):
        with np.errstate(over="ignore", invalid="ignore"):
            local = derivative(array, value)
        return (_grad_like(grad * local, x),)

    return record(value.astype(out_dtype, copy=False), (x,), backward)


def _check_real(value, name, allow_none=False):
    if allow_none and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; received {name}={value!r}")
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN; received {name}={value!r}")
    return float(value)


def _check_axes(axis, ndim):
    """``axis`` (int or tuple of ints) as a tuple of non-negative axes of an ndim-array."""
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    normalized = []
    for item in axes:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise TypeError(
                f"axis must be an integer or a tuple of integers; received axis={axis!r}"
            )
        if not -ndim <= item < ndim:
            raise ValueError(
                f"axis is out of range for an input of rank {ndim}; received axis={axis!r}"
            )
        normalized.append(int(item) % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axis must not repeat an axis; received axis={axis!r}")
    return tuple(normalized)


def _sigmoid(a):
    # exp of a non-positive number never overflows.
    positive = a >= 0
    decay = np.exp(np.where(positive, -a, a))
    return np.where(positive, 1.0, decay) / (1.0 + decay)


# -- activations ---------------------------------------------------------------------------

@_registry.register("relu")
def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Rectified linear unit, as ``keras.activations.relu``.

    ``x`` where ``x > threshold``, else 0; clipped to ``[0, max_value]`` when
    ``max_value`` is given; minus ``negative_slope * max(threshold - x, 0)``.

    Raises
    ------
    ValueError
        If ``max_value`` or ``negative_slope`` is negative or an argument is NaN.
    """
    negative_slope = _check_real(negative_slope, "negative_slope")
    max_value = _check_real(max_value, "max_value", allow_none=True)
    threshold = _check_real(threshold, "threshold")
    if negative_slope < 0:
        raise ValueError(f"negative_slope must be >= 0; received negative_slope={negative_slope!r}")
    if max_value is not None and max_value < 0:
        raise ValueError(f"max_value must be >= 0; received max_value={max_value!r}")

    def forward(a):
        # "<=" rather than ">" so that NaN inputs stay NaN.
        value = np.where(a <= threshold, 0.0, a).astype(a.dtype, copy=False)
        if max_value is not None:
            value = np.clip(value, 0.0, max_value)
        if negative_slope != 0.0:
            value = value - negative_slope * np.maximum(threshold - a, 0.0)
        return value

    def derivative(a, value):
        passed = a > threshold
        if max_value is not None:
            passed &= (a > 0.0) & (a < max_value)
        local = passed.astype(a.dtype)
        if negative_slope != 0.0:
            local += negative_slope * (a < threshold)
        return local

    return _elementwise(x, forward, derivative)


@_registry.register("relu6")
def relu6(x):
    """``min(max(x, 0), 6)``."""
    return relu(x, max_value=6.0)


@_registry.register("leaky_relu")
def leaky_relu(x, negative_slope=0.2):
    """``x`` where ``x > 0``, else ``negative_slope * x`` (Keras's default slope 0.2)."""
    negative_slope = _check_real(negative_slope, "negative_slope")
    return _elementwise(
        x,
        lambda a: np.where(a > 0, a, negative_slope * a),
        lambda a, y: np.where(a > 0, 1.0, negative_slope).astype(a.dtype),
    )


@_registry.register("elu")
def elu(x, alpha=1.0):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    alpha = _check_real(alpha, "alpha")
    return _elementwise(
        x,
        lambda a: np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0.0))),
        lambda a, y: np.where(a > 0, 1.0, alpha * np.exp(np.minimum(a, 0.0))),
    )


@_registry.register("selu")
def selu(x):
    """Scaled ELU: ``scale * elu(x, alpha)`` with Klambauer et al.'s constants."""
    return _elementwise(
        x,
        lambda a: SELU_SCALE * np.where(a > 0, a, SELU_ALPHA * np.expm1(np.minimum(a, 0.0))),
        lambda a, y: SELU_SCALE * np.where(a > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(a, 0.0))),
    )


def _erfc(values):
    flat = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    out = np.empty_like(flat)
    erfc_into(flat, out)
    return out.reshape(values.shape)


@_registry.register("gelu")
def gelu(x, approximate=False):
    """Gaussian error linear unit ``x * Phi(x)``.

    Exact (``0.5 * x * (1 + erf(x / sqrt(2)))``) by default;
    ``approximate=True`` uses the tanh form
    ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))``.
    """
    if not isinstance(approximate, (bool, np.bool_)):
        raise TypeError(f"approximate must be a bool; received approximate={approximate!r}")
    if approximate:
        def forward(a):
            inner = _SQRT_2_OVER_PI * (a + _GELU_CUBIC * a**3)
            return 0.5 * a * (1.0 + np.tanh(inner))

        def derivative(a, y):
            tanh = np.tanh(_SQRT_2_OVER_PI * (a + _GELU_CUBIC * a**3))
            # Capping x**2 avoids inf * 0 where tanh has saturated (1 - tanh**2 == 0 there).
            d_inner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * np.minimum(a * a, 1e30))
            return 0.5 * (1.0 + tanh) + 0.5 * a * (1.0 - tanh * tanh) * d_inner

        return _elementwise(x, forward, derivative)

    def cdf(a):
        # 1 + erf(z) == erfc(-z), which keeps its precision for very negative x.
        return (0.5 * _erfc(-_SQRT_HALF * a)).astype(a.dtype, copy=False)

    def derivative(a, y):
        return cdf(a) + a * (_INV_SQRT_2PI * np.exp(-0.5 * a * a))

    return _elementwise(x, lambda a: a * cdf(a), derivative)


@_registry.register("silu", "swish")
def silu(x):
    """Sigmoid linear unit (swish): ``x * sigmoid(x)``."""

    def derivative(a, y):
        s = _sigmoid(a)
        return s * (1.0 + a * (1.0 - s))

    return _elementwise(x, lambda a: a * _sigmoid(a), derivative)


swish = silu


@_registry.register("sigmoid")
def sigmoid(x):
    """``1 / (1 + exp(-x))``, without overflow for large ``|x|``."""
    return _elementwise(x, _sigmoid, lambda a, y: y * (1.0 - y))


@_registry.register("hard_sigmoid")
def hard_sigmoid(x):
    """``clip(x / 6 + 0.5, 0, 1)`` (Keras 3's definition)."""
    return _elementwise(
        x,
        lambda a: np.clip(a / 6.0 + 0.5, 0.0, 1.0),
        lambda a, y: ((a > -3.0) & (a < 3.0)).astype(a.dtype) / 6.0,
    )


@_registry.register("hard_silu", "hard_swish")
def hard_silu(x):
    """``x * hard_sigmoid(x)``."""

    def derivative(a, y):
        inside = (a > -3.0) & (a < 3.0)
        return np.clip(a / 6.0 + 0.5, 0.0, 1.0) + np.where(inside, a / 6.0, 0.0)

    return _elementwise(x, lambda a: a * np.clip(a / 6.0 + 0.5, 0.0, 1.0), derivative)


hard_swish = hard_silu


@_registry.register("tanh")
def tanh(x):
    """Hyperbolic tangent."""
    return _elementwise(x, np.tanh, lambda a, y: 1.0 - y * y)


@_registry.register("softplus")
def softplus(x):
    """``log(1 + exp(x))``, computed as ``logaddexp(0, x)``."""
    return _elementwise(x, lambda a: np.logaddexp(0.0, a), lambda a, y: _sigmoid(a))


@_registry.register("softsign")
def softsign(x):
    """``x / (1 + |x|)``."""
    return _elementwise(
        x,
        lambda a: a / (1.0 + np.abs(a)),
        lambda a, y: 1.0 / (1.0 + np.abs(a)) ** 2,
    )


@_registry.register("exponential")
def exponential(x):
    """``exp(x)``."""
    return _elementwise(x, np.exp, lambda a, y: y)


@_registry.register("mish")
def mish(x):
    """``x * tanh(softplus(x))``."""

    def derivative(a, y):
        tanh_sp = np.tanh(np.logaddexp(0.0, a))
        return tanh_sp + a * (1.0 - tanh_sp * tanh_sp) * _sigmoid(a)

    return _elementwise(x, lambda a: a * np.tanh(np.logaddexp(0.0, a)), derivative)


@_registry.register("linear")
def linear(x):
    """The identity (what ``get(None)`` returns)."""
    array, out_dtype = _prepared(x)
    # Only a plain Tensor is immutable; arrays and Variables get a copy.
    shares_safely = isinstance(x, Tensor) and not isinstance(x, Variable)
    value = array.astype(out_dtype, copy=not shares_safely)
    return record(value, (x,), lambda grad, needs: (_grad_like(grad, x),))


def _shifted(a, axes):
    # Subtracting the maximum keeps every exp <= 1; initial= makes empty axes work.
    return a - np.max(a, axis=axes, keepdims=True, initial=-np.inf)


@_registry.register("softmax")
def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x), axis)``, over the last axis by default.

    Raises
    ------
    ValueError
        If ``axis`` is out of range for ``x``.
    """
    array, out_dtype = _prepared(x)
    axes = _check_axes(axis, array.ndim)
    exps = np.exp(_shifted(array, axes))
    probs = exps / np.sum(exps, axis=axes, keepdims=True)

    def backward(grad, needs):
        grad = grad.astype(probs.dtype, copy=False)
        inner = np.sum(grad * probs, axis=axes, keepdims=True)
        return (_grad_like(probs * (grad - inner), x),)

    return record(probs.astype(out_dtype, copy=False), (x,), backward)


@_registry.register("log_softmax")
def log_softmax(x, axis=-1):
    """``x - log(sum(exp(x), axis))``, over the last axis by default.

    Raises
    ------
    ValueError
        If ``axis`` is out of range for ``x``.
    """
    array, out_dtype = _prepared(x)
    axes = _check_axes(axis, array.ndim)
    shifted = _shifted(array, axes)
    value = shifted - np.log(np.sum(np.exp(shifted), axis=axes, keepdims=True))

    def backward(grad, needs):
        grad = grad.astype(value.dtype, copy=False)
        total = np.sum(grad, axis=axes, keepdims=True)
        return (_grad_like(grad - np.exp(value) * total, x),)

    return record(value.astype(out_dtype, copy=False), (x,), backward)


# -- registry --------------------------------------------------------------------------

def get(identifier):
    """The activation function named or configured by ``identifier``.

    Parameters
    ----------
    identifier : str, dict, callable or None
        A registered name ("relu", "gelu", ...), a config dict, any callable
        (returned as is) or None (``linear``).

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid names).
    TypeError
        For anything else.
    """
    if identifier is None:
        return linear
    return _registry.get(identifier)


def serialize(activation):
    """The registered name of ``activation`` (e.g. ``serialize(relu) == "relu"``)."""
    return _registry.serialize(activation)


def deserialize(config):
    """The activation named by ``config`` (a name or a config dict)."""
    return _registry.deserialize(config)
