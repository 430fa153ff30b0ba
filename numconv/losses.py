"""Loss functions with Keras semantics.

Each loss class computes a per-sample loss (the functional forms below, one
value per sample), then reduces it as Keras does: ``"sum_over_batch_size"``
(the default) is ``sum(loss * sample_weight) / number of per-sample values``.

Every per-sample loss is one differentiable op built on
:func:`numconv.autograd.tensor.record`: a NumPy forward and an analytic
backward, numerically stable for large logits.

Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` when ``from_logits=False``
(categorical probabilities are first renormalised to sum to one over the last
axis), as Keras does; the gradient is zero where clipping is active.
"""

import numpy as np

from . import config
from ._naming import snake_case
from ._registry import Configurable, Registry
from .autograd.tensor import as_array, record

EPSILON = 1e-7
REDUCTIONS = ("sum_over_batch_size", "sum", "none")

_registry = Registry("loss")


# -- input normalisation ---------------------------------------------------------------


def _float_dtype(y_pred):
    """The dtype the loss is returned in: y_pred's float dtype, else floatx."""
    dtype = as_array(y_pred).dtype
    return dtype if dtype.kind == "f" else np.dtype(config.floatx())


def _compute_dtype(dtype):
    # float16 logs and exps lose too much; compute in at least float32.
    return np.promote_types(dtype, np.float32)


def _check_numeric(value, name):
    array = as_array(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; received an array of dtype {array.dtype}")
    return array


def _matched_pair(y_true, y_pred):
    """y_true and y_pred as compute-dtype arrays of one shape (Keras squeezes a trailing 1)."""
    true = _check_numeric(y_true, "y_true")
    pred = _check_numeric(y_pred, "y_pred")
    if true.ndim == pred.ndim + 1 and true.shape[-1:] == (1,):
        true = true.reshape(true.shape[:-1])
    elif pred.ndim == true.ndim + 1 and pred.shape[-1:] == (1,):
        pred = pred.reshape(pred.shape[:-1])
    if true.shape != pred.shape:
        raise ValueError(
            "y_true and y_pred must have the same shape; received "
            f"y_true.shape={as_array(y_true).shape}, y_pred.shape={as_array(y_pred).shape}"
        )
    if pred.ndim == 0:
        raise ValueError("y_true and y_pred must have at least one axis; received scalars")
    dtype = _compute_dtype(_float_dtype(y_pred))
    return true.astype(dtype, copy=False), pred.astype(dtype, copy=False)


def _grad_as(grad, original):
    """A gradient reshaped and cast like the input it belongs to."""
    array = as_array(original)
    dtype = array.dtype if array.dtype.kind == "f" else grad.dtype
    return grad.reshape(array.shape).astype(dtype, copy=False)


def _inside_clip(values):
    # Like clip_by_value's gradient: it passes where the value was not clipped.
    return (values >= EPSILON) & (values <= 1.0 - EPSILON)


def _clip(values):
    return np.clip(values, EPSILON, 1.0 - EPSILON)


def _log_softmax(logits):
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _sigmoid(logits):
    # exp of a non-positive number never overflows.
    decay = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1.0 / (1.0 + decay), decay / (1.0 + decay))


def _renormalised_probability_grad(grad_q, probs, total):
    """Gradient through ``q = probs / total`` with total = sum(probs, -1)."""
    return grad_q / total - np.sum(grad_q * probs, axis=-1, keepdims=True) / total**2


# -- per-sample losses (functional forms) ------------------------------------------


def mean_squared_error(y_true, y_pred):
    """``mean((y_pred - y_true) ** 2, axis=-1)``: one value per sample, shape ``y_pred.shape[:-1]``.

    Raises
    ------
    ValueError
        If the shapes differ (beyond a trailing axis of size 1).
    """
    true, pred = _matched_pair(y_true, y_pred)
    out_dtype = _float_dtype(y_pred)
    diff = pred - true
    size = diff.shape[-1]
    value = np.mean(diff * diff, axis=-1)

    def backward(grad, needs):
        grad_pred = grad[..., None] * (2.0 / size) * diff
        return (
            _grad_as(-grad_pred, y_true) if needs[0] else None,
            _grad_as(grad_pred, y_pred) if needs[1] else None,
        )

    return record(value.astype(out_dtype), (y_true, y_pred), backward)


def mean_absolute_error(y_true, y_pred):
    """``mean(abs(y_pred - y_true), axis=-1)``: one value per sample."""
    true, pred = _matched_pair(y_true, y_pred)
    out_dtype = _float_dtype(y_pred)
    diff = pred - true
    size = diff.shape[-1]
    value = np.mean(np.abs(diff), axis=-1)

    def backward(grad, needs):
        grad_pred = grad[..., None] * np.sign(diff) / size
        return (
            _grad_as(-grad_pred, y_true) if needs[0] else None,
            _grad_as(grad_pred, y_pred) if needs[1] else None,
        )

    return record(value.astype(out_dtype), (y_true, y_pred), backward)


def binary_crossentropy(y_true, y_pred, from_logits=False):
    """Binary cross-entropy averaged over the last axis: one value per sample.

    With ``from_logits=True`` it is ``max(x, 0) - x * y + log(1 + exp(-|x|))``,
    exact for any logit; otherwise probabilities are clipped to
    ``[1e-7, 1 - 1e-7]``.
    """
    true, pred = _matched_pair(y_true, y_pred)
    out_dtype = _float_dtype(y_pred)
    size = pred.shape[-1]
    if from_logits:
        elementwise = np.maximum(pred, 0.0) - pred * true + np.log1p(np.exp(-np.abs(pred)))

        def local_grads():
            return _sigmoid(pred) - true, -pred

    else:
        clipped = _clip(pred)
        log_q, log_not_q = np.log(clipped), np.log(1.0 - clipped)
        elementwise = -(true * log_q + (1.0 - true) * log_not_q)

        def local_grads():
            grad_pred = (-true / clipped + (1.0 - true) / (1.0 - clipped)) * _inside_clip(pred)
            return grad_pred, log_not_q - log_q

    value = np.mean(elementwise, axis=-1)

    def backward(grad, needs):
        grad_pred, grad_true = local_grads()
        scale = grad[..., None] / size
        return (
            _grad_as(scale * grad_true, y_true) if needs[0] else None,
            _grad_as(scale * grad_pred, y_pred) if needs[1] else None,
        )

    return record(value.astype(out_dtype), (y_true, y_pred), backward)


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    """``-sum(y_true * log(p), axis=-1)`` with one-hot (or soft) labels: one value per sample.

    ``p`` is ``softmax(y_pred)`` (computed as a stable log-softmax) when
    ``from_logits``, else ``y_pred`` renormalised to sum to one and clipped.
    """
    true, pred = _matched_pair(y_true, y_pred)
    out_dtype = _float_dtype(y_pred)
    if from_logits:
        log_prob = _log_softmax(pred)

        def grad_wrt_pred(grad):
            weight = grad[..., None] * true
            return np.exp(log_prob) * np.sum(weight, axis=-1, keepdims=True) - weight

    else:
        total = np.sum(pred, axis=-1, keepdims=True)
        ratio = pred / total
        clipped = _clip(ratio)
        log_prob = np.log(clipped)

        def grad_wrt_pred(grad):
            grad_q = grad[..., None] * (-true / clipped) * _inside_clip(ratio)
            return _renormalised_probability_grad(grad_q, pred, total)

    value = -np.sum(true * log_prob, axis=-1)

    def backward(grad, needs):
        return (
            _grad_as(-grad[..., None] * log_prob, y_true) if needs[0] else None,
            _grad_as(grad_wrt_pred(grad), y_pred) if needs[1] else None,
        )

    return record(value.astype(out_dtype), (y_true, y_pred), backward)


def _sparse_labels(y_true, y_pred):
    """Integer class indices shaped like ``y_pred.shape[:-1]``, checked against the class count."""
    labels = _check_numeric(y_true, "y_true")
    pred_shape = as_array(y_pred).shape
    if len(pred_shape) == 0:
        raise ValueError("y_pred must have a class axis; received a scalar y_pred")
    if labels.shape != pred_shape[:-1]:
        if labels.shape == pred_shape[:-1] + (1,):
            labels = labels.reshape(pred_shape[:-1])
        else:
            raise ValueError(
                "sparse labels must have shape y_pred.shape[:-1] (or with a trailing 1); received "
                f"y_true.shape={labels.shape}, y_pred.shape={pred_shape}"
            )
    num_classes = pred_shape[-1]
    if labels.dtype.kind == "f":
        not_integer = ~np.isfinite(labels) | (labels != np.round(labels))
        if np.any(not_integer):
            bad = labels[not_integer].flat[0].item()
            raise ValueError(
                f"labels must be integer class indices; received labels containing {bad!r}"
            )
    bad_mask = (labels < 0) | (labels >= num_classes)
    if np.any(bad_mask):
        bad = labels[bad_mask].flat[0].item()
        raise ValueError(
            f"labels must be in [0, {num_classes}) for {num_classes} classes; "
            f"received labels containing {bad!r}"
        )
    return labels.astype(np.intp)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Categorical cross-entropy with integer labels: one value per sample.

    ``y_true`` holds class indices (integers, or floats with integer values)
    of shape ``y_pred.shape[:-1]`` or ``y_pred.shape[:-1] + (1,)``.

    Raises
    ------
    ValueError
        For a wrong label shape, or labels that are not integers in ``[0, classes)``.
    """
    labels = _sparse_labels(y_true, y_pred)
    out_dtype = _float_dtype(y_pred)
    pred = _check_numeric(y_pred, "y_pred").astype(_compute_dtype(out_dtype), copy=False)
    picked = labels[..., None]
    if from_logits:
        log_prob = _log_softmax(pred)

        def grad_wrt_pred(grad):
            grad_logits = np.exp(log_prob)
            np.put_along_axis(
                grad_logits, picked, np.take_along_axis(grad_logits, picked, axis=-1) - 1.0, axis=-1
            )
            return grad[..., None] * grad_logits

    else:
        total = np.sum(pred, axis=-1, keepdims=True)
        ratio = pred / total
        clipped = _clip(ratio)
        log_prob = np.log(clipped)

        def grad_wrt_pred(grad):
            grad_q = np.zeros_like(pred)
            inside = np.take_along_axis(_inside_clip(ratio), picked, axis=-1)
            chosen = np.take_along_axis(clipped, picked, axis=-1)
            np.put_along_axis(grad_q, picked, -grad[..., None] * inside / chosen, axis=-1)
            return _renormalised_probability_grad(grad_q, pred, total)

    value = -np.take_along_axis(log_prob, picked, axis=-1)[..., 0]

    def backward(grad, needs):
        # Labels are indices: they have no gradient.
        return None, _grad_as(grad_wrt_pred(grad), y_pred) if needs[1] else None

    return record(value.astype(out_dtype), (y_true, y_pred), backward)


# -- reduction ------------------------------------------------------------------------


def _check_reduction(reduction):
    if reduction is None:
        return "none"
    if not isinstance(reduction, str) or reduction.lower() not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}; received reduction={reduction!r}")
    return reduction.lower()


def _weights_like(sample_weight, values):
    """sample_weight broadcast to the per-sample values (Keras squeezes or expands one axis)."""
    weights = _check_numeric(sample_weight, "sample_weight").astype(values.dtype)
    if weights.ndim == values.ndim + 1 and weights.shape[-1:] == (1,):
        weights = weights.reshape(weights.shape[:-1])
    while weights.ndim < values.ndim:
        weights = weights[..., None]
    try:
        return np.broadcast_to(weights, values.shape)
    except ValueError:
        raise ValueError(
            "sample_weight must broadcast to the per-sample losses; received "
            f"sample_weight.shape={as_array(sample_weight).shape}, per-sample loss shape {values.shape}"
        ) from None


def reduce_losses(values, sample_weight=None, reduction="sum_over_batch_size"):
    """Weight and reduce per-sample losses as Keras does.

    ``"sum_over_batch_size"``: ``sum(values * w) / values.size``; ``"sum"``:
    ``sum(values * w)``; ``"none"``: ``values * w``.
    """
    reduction = _check_reduction(reduction)
    array = as_array(values)
    weights = None if sample_weight is None else _weights_like(sample_weight, array)
    weighted = array if weights is None else array * weights
    if reduction == "none":
        scale = 1.0
        result = weighted
    else:
        # An empty batch gives 0, not 0/0.
        scale = 1.0 / max(array.size, 1) if reduction == "sum_over_batch_size" else 1.0
        result = np.asarray(np.sum(weighted) * scale, dtype=array.dtype)

    def backward(grad, needs):
        full = np.broadcast_to(grad * scale, array.shape)
        return ((full if weights is None else full * weights).astype(array.dtype),)

    return record(result, (values,), backward)


# -- loss classes ---------------------------------------------------------------------


class Loss(Configurable):
    """Base class: ``loss(y_true, y_pred, sample_weight=None)`` -> reduced Tensor.

    Subclasses implement ``call(y_true, y_pred)`` returning per-sample losses.

    Parameters
    ----------
    reduction : {"sum_over_batch_size", "sum", "none"}
    name : str, optional
    """

    def __init__(self, reduction="sum_over_batch_size", name=None):
        self.reduction = _check_reduction(reduction)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string; received name={name!r}")
        self.name = name or snake_case(type(self).__name__)

    def call(self, y_true, y_pred):
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        if y_true is None or y_pred is None:
            raise ValueError(
                f"y_true and y_pred must be arrays; received y_true={y_true!r:.60}, y_pred={y_pred!r:.60}"
            )
        values = self.call(y_true, y_pred)
        return reduce_losses(values, sample_weight, self.reduction)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool; received {name}={value!r}")
    return bool(value)


@_registry.register("MeanSquaredError", "mean_squared_error", "mse")
class MeanSquaredError(Loss):
    """Mean of squared errors over the last axis, then reduced over the batch."""

    def call(self, y_true, y_pred):
        return mean_squared_error(y_true, y_pred)


@_registry.register("MeanAbsoluteError", "mean_absolute_error", "mae")
class MeanAbsoluteError(Loss):
    """Mean of absolute errors over the last axis, then reduced over the batch."""

    def call(self, y_true, y_pred):
        return mean_absolute_error(y_true, y_pred)


class _LogitsLoss(Loss):
    def __init__(self, from_logits=False, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction=reduction, name=name)
        self.from_logits = _check_bool(from_logits, "from_logits")

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


@_registry.register("BinaryCrossentropy", "binary_crossentropy", "bce")
class BinaryCrossentropy(_LogitsLoss):
    """Binary cross-entropy (targets in [0, 1]); ``from_logits=True`` for raw scores."""

    def call(self, y_true, y_pred):
        return binary_crossentropy(y_true, y_pred, from_logits=self.from_logits)


@_registry.register("CategoricalCrossentropy", "categorical_crossentropy")
class CategoricalCrossentropy(_LogitsLoss):
    """Cross-entropy with one-hot labels over the last axis."""

    def call(self, y_true, y_pred):
        return categorical_crossentropy(y_true, y_pred, from_logits=self.from_logits)


@_registry.register("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(_LogitsLoss):
    """Cross-entropy with integer labels of shape ``(N,)`` or ``(N, 1)``."""

    def call(self, y_true, y_pred):
        return sparse_categorical_crossentropy(y_true, y_pred, from_logits=self.from_logits)


def get(identifier):
    """A loss from a name ("mse", "sparse_categorical_crossentropy", ...), a config dict,
    an instance or a callable ``fn(y_true, y_pred)``.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones).
    TypeError
        For anything else.
    """
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if (
        identifier is not None
        and not isinstance(identifier, (str, dict))
        and not callable(identifier)
    ):
        raise TypeError(
            f"loss must be a name, a config dict, a Loss instance or a callable; received loss={identifier!r}"
        )
    return _registry.get(identifier)


def serialize(loss):
    """``{"class_name", "config"}`` of a Loss instance (or the name of a registered loss)."""
    return _registry.serialize(loss)


def deserialize(config):
    """Inverse of :func:`serialize`."""
    return _registry.deserialize(config)


__all__ = [
    "Loss",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "mean_squared_error",
    "mean_absolute_error",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "reduce_losses",
    "get",
    "serialize",
    "deserialize",
]
