"""Weight constraints with Keras semantics.

A constraint maps a weight (ndarray, Tensor or Variable) to a new ndarray of
the same shape and float dtype (integer input gives
``numconv.config.floatx()``); optimizers apply it after each update.  Norms
are Euclidean over ``axis`` (an int or a tuple of ints, kept as size-1 axes),
and ``EPSILON = 1e-7`` guards divisions, as in Keras:

* ``MaxNorm(max_value=2, axis=0)``: ``w * clip(n, 0, max_value) / (eps + n)``
* ``MinMaxNorm(min_value=0.0, max_value=1.0, rate=1.0, axis=0)``:
  ``w * (rate * clip(n, min_value, max_value) + (1 - rate) * n) / (eps + n)``
* ``NonNeg()``: negative entries set to 0
* ``UnitNorm(axis=0)``: ``w / (eps + n)``
* ``RadialConstraint()``: for a square 4-D kernel, each ``(KH, KW)`` slice
  made constant on concentric square rings, as tf.keras 2 does.
"""

import math
import numbers

import numpy as np

from . import config
from ._registry import Configurable, Registry
from .autograd.tensor import as_array

_registry = Registry("constraint")

EPSILON = 1e-7


def _weight_array(weight):
    """(array to compute with, dtype of the result) of a weight."""
    array = as_array(weight)
    kind = array.dtype.kind
    if kind == "f":
        out_dtype = array.dtype
    elif kind in "biu":
        out_dtype = np.dtype(config.floatx())
    else:
        raise TypeError(f"weight must hold real numbers; received an array of dtype {array.dtype}")
    # float16 squares overflow above 256: compute norms in at least float32.
    return array.astype(np.promote_types(out_dtype, np.float32), copy=False), out_dtype


def _check_number(value, name, minimum=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; received {name}={value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; received {name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; received {name}={value!r}")
    return value


def _check_axis(axis):
    """``axis`` as an int or a tuple of ints (what get_config returns)."""
    items = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)

    def is_int(item):
        return isinstance(item, numbers.Integral) and not isinstance(item, (bool, np.bool_))

    if not items or not all(is_int(item) for item in items):
        raise TypeError(f"axis must be an integer or a tuple of integers; received axis={axis!r}")
    items = tuple(int(item) for item in items)
    return items if isinstance(axis, (tuple, list)) else items[0]


def _norms(array, axis):
    """Euclidean norms over ``axis`` with size-1 axes kept."""
    axes = axis if isinstance(axis, tuple) else (axis,)
    for item in axes:
        if not -array.ndim <= item < array.ndim:
            raise ValueError(
                f"axis is out of range for a weight of shape {array.shape}; received axis={axis!r}"
            )
    if len({item % array.ndim for item in axes}) != len(axes):
        raise ValueError(f"axis must not repeat an axis; received axis={axis!r}")
    return np.sqrt(np.sum(array * array, axis=axes, keepdims=True))


class Constraint(Configurable):
    """Base class: ``__call__(weight) -> ndarray`` and ``get_config``."""

    def __call__(self, weight):
        array, out_dtype = _weight_array(weight)
        return array.astype(out_dtype)


@_registry.register("MaxNorm", "max_norm")
class MaxNorm(Constraint):
    """Scale each slice over ``axis`` down to a norm of at most ``max_value``.

    Raises
    ------
    ValueError
        If ``max_value`` is negative or not finite, or ``axis`` is out of range
        for the weight (at call time).
    """

    def __init__(self, max_value=2, axis=0):
        self.max_value = _check_number(max_value, "max_value", minimum=0)
        self.axis = _check_axis(axis)

    def __call__(self, weight):
        array, out_dtype = _weight_array(weight)
        norms = _norms(array, self.axis)
        desired = np.clip(norms, 0.0, self.max_value)
        return (array * (desired / (EPSILON + norms))).astype(out_dtype, copy=False)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


@_registry.register("MinMaxNorm", "min_max_norm")
class MinMaxNorm(Constraint):
    """Move each slice's norm over ``axis`` into ``[min_value, max_value]`` at ``rate``.

    ``rate=1`` enforces the bounds strictly; ``rate < 1`` moves the norm only
    part of the way on each call.

    Raises
    ------
    ValueError
        If a bound or the rate is negative or not finite, or
        ``min_value > max_value``.
    """

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _check_number(min_value, "min_value", minimum=0)
        self.max_value = _check_number(max_value, "max_value", minimum=0)
        if self.min_value > self.max_value:
            raise ValueError(
                "min_value must be <= max_value; received "
                f"min_value={min_value!r}, max_value={max_value!r}"
            )
        self.rate = _check_number(rate, "rate", minimum=0)
        self.axis = _check_axis(axis)

    def __call__(self, weight):
        array, out_dtype = _weight_array(weight)
        norms = _norms(array, self.axis)
        clipped = np.clip(norms, self.min_value, self.max_value)
        desired = self.rate * clipped + (1.0 - self.rate) * norms
        return (array * (desired / (EPSILON + norms))).astype(out_dtype, copy=False)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


@_registry.register("NonNeg", "non_neg")
class NonNeg(Constraint):
    """Negative entries set to zero."""

    def __call__(self, weight):
        array, out_dtype = _weight_array(weight)
        return (array * (array >= 0)).astype(out_dtype, copy=False)


@_registry.register("UnitNorm", "unit_norm")
class UnitNorm(Constraint):
    """Each slice over ``axis`` scaled to unit norm (``w / (eps + norm)``).

    Raises
    ------
    ValueError
        If ``axis`` is out of range for the weight (at call time).
    """

    def __init__(self, axis=0):
        self.axis = _check_axis(axis)

    def __call__(self, weight):
        array, out_dtype = _weight_array(weight)
        return (array / (EPSILON + _norms(array, self.axis))).astype(out_dtype, copy=False)

    def get_config(self):
        return {"axis": self.axis}


def _radial_sources(size):
    """For each kernel row (or column) ``r`` of a ``size``-wide square kernel, the
    diagonal index whose value fills ring ``ring[r, c]``, as an index map.

    tf.keras 2 builds the result from the centre outwards by padding with
    diagonal entries: the centre (1x1 for odd sizes, 2x2 for even) takes
    ``k[h - 1, h - 1]`` (h = size // 2) and ring j >= 1 around it takes
    ``k[h - 1 + j, h - 1 + j]`` (odd) or ``k[h + j, h + j]`` (even).
    """
    half = size // 2
    positions = np.arange(size)
    if size % 2:
        distance = np.abs(positions - half)
    else:
        # Distance in rings from the central 2x2 block.
        distance = np.floor(np.abs(positions - half + 0.5)).astype(np.intp)
    ring = np.maximum(distance[:, None], distance[None, :])
    if size % 2:
        source = half - 1 + ring
    else:
        source = np.where(ring == 0, half - 1, half + ring)
    # A 1x1 kernel is its own centre.
    return np.maximum(source, 0)


@_registry.register("RadialConstraint", "radial_constraint")
class RadialConstraint(Constraint):
    """Make each ``(KH, KW)`` slice of a conv kernel constant on square rings.

    For a kernel of shape ``(K, K, C_in, filters)``, every entry of a slice
    on the ring at Chebyshev distance j from the centre takes the value of one
    diagonal entry, chosen exactly as tf.keras 2's ``RadialConstraint`` does
    (see ``_radial_sources``); a K-wide kernel ends with ``ceil(K / 2)``
    distinct values per slice.

    Raises
    ------
    ValueError
        If the weight is not 4-D or its kernel is not square.
    """

    def __call__(self, weight):
        array, out_dtype = _weight_array(weight)
        if array.ndim != 4:
            raise ValueError(
                "RadialConstraint needs a 4-D kernel (KH, KW, C_in, filters); "
                f"received a weight of shape {array.shape}"
            )
        height, width = array.shape[:2]
        if height != width:
            raise ValueError(
                "RadialConstraint needs a square kernel (KH == KW); "
                f"received a weight of shape {array.shape}"
            )
        source = _radial_sources(height)
        return array[source, source].astype(out_dtype, copy=False)


max_norm, min_max_norm, non_neg = MaxNorm, MinMaxNorm, NonNeg
unit_norm, radial_constraint = UnitNorm, RadialConstraint


def get(identifier):
    """The constraint named or configured by ``identifier``.

    Parameters
    ----------
    identifier : str, dict, callable or None
        A name ("max_norm" or "MaxNorm") gives an instance with default
        settings; a config dict one with those settings; a callable is
        returned as is; None stays None.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid names).
    """
    return _registry.get(identifier)


def serialize(constraint):
    """``{"class_name": ..., "config": ...}`` of a constraint instance."""
    return _registry.serialize(constraint)


def deserialize(config):
    """The constraint described by ``config`` (a name or a config dict)."""
    return _registry.deserialize(config)
