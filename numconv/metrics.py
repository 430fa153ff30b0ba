"""Training metrics: per-sample accuracy functions and the running means ``fit`` reports.

Each metric maps (y_true, y_pred) ndarrays to per-sample values; an epoch
reports their mean.
"""

import numpy as np

from . import losses as _losses
from .autograd.tensor import as_array


def _matched(y_true, y_pred):
    """y_true reshaped like y_pred when they differ only by a trailing axis of size 1."""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1:] == (1,):
        y_true = y_true.reshape(y_true.shape[:-1])
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1:] == (1,):
        y_pred = y_pred.reshape(y_pred.shape[:-1])
    return y_true, y_pred


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where ``argmax(y_pred, -1)`` equals the integer label, else 0.0."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape == y_pred.shape[:-1] + (1,):
        y_true = y_true.reshape(y_true.shape[:-1])
    return (np.argmax(y_pred, axis=-1) == y_true).astype(np.float64)


def categorical_accuracy(y_true, y_pred):
    """1.0 where ``argmax(y_pred, -1) == argmax(y_true, -1)``, else 0.0."""
    hits = np.argmax(np.asarray(y_pred), axis=-1) == np.argmax(np.asarray(y_true), axis=-1)
    return hits.astype(np.float64)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Mean over the last axis of ``y_true == (y_pred > threshold)``."""
    y_true, y_pred = _matched(np.asarray(y_true), np.asarray(y_pred))
    hits = (y_true == (y_pred > threshold)).astype(np.float64)
    return hits.mean(axis=-1) if hits.ndim > 1 else hits


_NAMED_METRICS = {
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "binary_accuracy": binary_accuracy,
}


def accuracy_for(loss, y_true, y_pred):
    """The accuracy variant Keras picks for ``loss`` (then by the label and prediction shapes)."""
    if isinstance(loss, _losses.SparseCategoricalCrossentropy):
        return sparse_categorical_accuracy
    if isinstance(loss, _losses.BinaryCrossentropy):
        threshold = 0.0 if loss.from_logits else 0.5
        return lambda t, p: binary_accuracy(t, p, threshold)
    if isinstance(loss, _losses.CategoricalCrossentropy):
        return categorical_accuracy
    if y_pred.shape[-1:] == (1,) or y_pred.ndim == 1:
        return binary_accuracy
    if y_true.ndim < y_pred.ndim or (y_true.shape[-1:] == (1,) and y_pred.shape[-1] > 1):
        return sparse_categorical_accuracy
    return categorical_accuracy


class Metric:
    """A named running mean of per-sample values."""

    def __init__(self, identifier, loss):
        self.loss = loss
        if isinstance(identifier, str):
            self.name = identifier
            key = identifier.lower()
            if key in ("accuracy", "acc"):
                self.function = None  # chosen on the first batch, from the loss and shapes
            elif key in _NAMED_METRICS:
                self.function = _NAMED_METRICS[key]
            else:
                try:
                    loss_metric = _losses.get(identifier)
                except ValueError:
                    valid = ", ".join(
                        ["accuracy", "acc", *sorted(_NAMED_METRICS), *_losses._registry.names()]
                    )
                    raise ValueError(
                        f"unknown metric {identifier!r}; valid names are: {valid}"
                    ) from None
                self.function = lambda t, p: loss_metric.call(t, p).numpy()
        elif callable(identifier):
            self.name = getattr(identifier, "__name__", type(identifier).__name__)
            self.function = identifier
        else:
            raise TypeError(
                f"metrics must be names or callables fn(y_true, y_pred); received metric={identifier!r:.80}"
            )
        self.reset()

    def reset(self):
        self.total = 0.0
        self.count = 0

    def update(self, y_true, y_pred):
        if self.function is None:
            self.function = accuracy_for(self.loss, y_true, y_pred)
        values = np.asarray(as_array(self.function(y_true, y_pred)), dtype=np.float64)
        self.total += float(values.sum())
        self.count += values.size

    def result(self):
        return self.total / self.count if self.count else 0.0


class Mean:
    """Running mean of batch values weighted by batch size (Keras's loss tracker)."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, value, weight):
        self.total += float(value) * weight
        self.count += weight

    def result(self):
        return self.total / self.count if self.count else 0.0


__all__ = [
    "sparse_categorical_accuracy",
    "categorical_accuracy",
    "binary_accuracy",
    "accuracy_for",
    "Metric",
    "Mean",
]
