"""Weight regularizers with Keras 3 semantics.

A regularizer called on a weight (Variable, Tensor or array) returns a scalar
Tensor, the penalty, differentiable on the tape:

* ``L1(l1=0.01)``: ``l1 * sum(|w|)``
* ``L2(l2=0.01)``: ``l2 * sum(w**2)`` (no factor 1/2, as Keras)
* ``L1L2(l1=0.0, l2=0.0)``: both terms

The names "l1", "l2" and "l1_l2" give factors of 0.01 each (so
``get("l1_l2")`` is ``L1L2(l1=0.01, l2=0.01)``, unlike ``L1L2()``).
"""

import math
import numbers

import numpy as np

from . import config
from ._registry import Configurable, Registry
from .autograd.tensor import as_array, record

_registry = Registry("regularizer")

_DEFAULT_FACTOR = 0.01


def _check_factor(value, name, default):
    if value is None:
        return default
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a non-negative number; received {name}={value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{name} must be a non-negative finite number; received {name}={value!r}"
        )
    return value


def _penalty(weight, l1, l2):
    """``l1 * sum(|w|) + l2 * sum(w**2)`` as a scalar op on the tape (zero factors skipped)."""
    array = as_array(weight)
    kind = array.dtype.kind
    if kind not in "biuf":
        raise TypeError(f"weight must hold real numbers; received an array of dtype {array.dtype}")
    out_dtype = array.dtype if kind == "f" else np.dtype(config.floatx())
    # float16 sums of squares overflow early: accumulate in at least float32.
    values = array.astype(np.promote_types(out_dtype, np.float32), copy=False)
    total = np.zeros((), dtype=values.dtype)
    if l1:
        total = total + l1 * np.sum(np.abs(values))
    if l2:
        total = total + l2 * np.sum(values * values)

    def backward(grad, needs):
        local = np.zeros_like(values)
        if l1:
            local += l1 * np.sign(values)
        if l2:
            local += (2.0 * l2) * values
        grad_weight = grad * local
        return (grad_weight.astype(out_dtype if kind == "f" else grad_weight.dtype, copy=False),)

    return record(np.asarray(total, dtype=out_dtype), (weight,), backward)


class Regularizer(Configurable):
    """Base class: ``__call__(weight) -> scalar Tensor`` and ``get_config``."""

    def __call__(self, weight):
        raise NotImplementedError


@_registry.register("L1", "l1")
class L1(Regularizer):
    """``l1 * sum(|w|)``.

    Raises
    ------
    ValueError
        If ``l1`` is negative, NaN or infinite.
    """

    def __init__(self, l1=_DEFAULT_FACTOR):
        self.l1 = _check_factor(l1, "l1", _DEFAULT_FACTOR)

    def __call__(self, weight):
        return _penalty(weight, self.l1, 0.0)

    def get_config(self):
        return {"l1": self.l1}


@_registry.register("L2", "l2")
class L2(Regularizer):
    """``l2 * sum(w**2)``.

    Raises
    ------
    ValueError
        If ``l2`` is negative, NaN or infinite.
    """

    def __init__(self, l2=_DEFAULT_FACTOR):
        self.l2 = _check_factor(l2, "l2", _DEFAULT_FACTOR)

    def __call__(self, weight):
        return _penalty(weight, 0.0, self.l2)

    def get_config(self):
        return {"l2": self.l2}


@_registry.register("L1L2", "l1_l2")
class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w**2)``; both factors default to 0 (as Keras's class).

    Raises
    ------
    ValueError
        If a factor is negative, NaN or infinite.
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _check_factor(l1, "l1", 0.0)
        self.l2 = _check_factor(l2, "l2", 0.0)

    def __call__(self, weight):
        return _penalty(weight, self.l1, self.l2)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


l1 = L1
l2 = L2


def l1_l2(l1=_DEFAULT_FACTOR, l2=_DEFAULT_FACTOR):
    """``L1L2`` with factors defaulting to 0.01 each (what the name "l1_l2" gives)."""
    return L1L2(l1=l1, l2=l2)


def get(identifier):
    """The regularizer named or configured by ``identifier``.

    Parameters
    ----------
    identifier : str, dict, callable or None
        "l1", "l2", "l1_l2" (factors 0.01), a class name ("L1L2": Keras's
        defaults), a config dict, a callable (returned as is) or None.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid names).
    """
    if isinstance(identifier, str) and identifier.lower() == "l1_l2":
        return l1_l2()
    return _registry.get(identifier)


def serialize(regularizer):
    """``{"class_name": ..., "config": ...}`` of a regularizer instance."""
    return _registry.serialize(regularizer)


def deserialize(config):
    """The regularizer described by ``config`` (a name or a config dict)."""
    if isinstance(config, str):
        return get(config)
    return _registry.deserialize(config)
