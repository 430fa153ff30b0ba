"""Weight initializers with Keras 3 semantics.

An initializer is called as ``init(shape, dtype=None) -> ndarray`` (dtype
defaults to ``numconv.config.floatx()``).  Random initializers take a
``seed``: an integer seed gives the same values on every call and in every
instance built with it; ``seed=None`` draws fresh values each call.

Fans follow Keras: a 1-D shape ``(n,)`` has fan_in = fan_out = n; a 2-D shape
is ``(fan_in, fan_out)``; for more dimensions (a conv kernel ``(KH, KW,
C_in // groups, filters)``) the leading axes form the receptive field, so
fan_in = KH * KW * C_in // groups and fan_out = KH * KW * filters.

Names resolve both as Keras class names ("GlorotUniform") and snake_case
("glorot_uniform"); ``get("glorot_uniform")`` returns a GlorotUniform instance.
"""

import math
import numbers

import numpy as np

from . import config
from ._memory import check_request
from ._registry import Configurable, Registry

_registry = Registry("initializer")

# Standard deviation of a standard normal truncated to [-2, 2]: dividing by it
# makes the truncated draw have the requested variance (as Keras does).
_TRUNCATED_NORMAL_STDDEV = 0.87962566103423978

_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


# -- argument checks ---------------------------------------------------------------------

def _check_shape(shape):
    """``shape`` as a tuple of positive Python ints (an int is a 1-D shape)."""
    is_int = isinstance(shape, numbers.Integral) and not isinstance(shape, bool)
    entries = (shape,) if is_int else shape
    try:
        entries = tuple(entries)
    except TypeError:
        raise TypeError(
            f"shape must be a tuple of positive integers; received shape={shape!r}"
        ) from None
    for entry in entries:
        if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, numbers.Integral):
            raise TypeError(
                f"shape must be a tuple of positive integers; received shape={shape!r}"
            )
        if entry <= 0:
            raise ValueError(
                f"shape entries must be positive integers; received shape={shape!r}"
            )
    return tuple(int(entry) for entry in entries)


def _check_size(shape, dtype):
    """MemoryError with the byte count before drawing a weight that cannot fit in memory."""
    # Random draws are float64 before the cast: that is the peak request.
    check_request(
        math.prod(shape) * max(dtype.itemsize, 8),
        f"initializing a weight of shape {shape} and dtype {dtype}",
    )
    return shape, dtype


def _check_dtype(dtype, float_only):
    if dtype is None:
        dtype = config.floatx()
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a NumPy dtype; received dtype={dtype!r}") from None
    allowed = "f" if float_only else "biuf"
    if resolved.kind not in allowed:
        expected = "a floating-point dtype" if float_only else "a numeric dtype"
        raise TypeError(f"dtype must be {expected}; received dtype={dtype!r}")
    return resolved


def _check_number(value, name, minimum=None, positive=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; received {name}={value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; received {name}={value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive; received {name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; received {name}={value!r}")
    return value


def _check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer or None; received seed={seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None; received seed={seed!r}")
    return int(seed)


def compute_fans(shape):
    """``(fan_in, fan_out)`` of a weight of ``shape``, as Keras computes them.

    A scalar shape ``()`` has fans (1, 1).
    """
    shape = _check_shape(shape)
    if not shape:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


# -- base --------------------------------------------------------------------------------

class Initializer(Configurable):
    """Base class: ``__call__(shape, dtype=None) -> ndarray`` and ``get_config``."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError


class _Seeded(Initializer):
    def __init__(self, seed=None):
        self.seed = _check_seed(seed)

    def _rng(self):
        # A new generator from the seed on every call: same seed, same values.
        return np.random.default_rng(self.seed)


def _truncated_standard_normal(rng, size):
    """Standard normal samples in [-2, 2]; samples outside are drawn again."""
    # np.asarray: for shape () the generator returns a scalar, which could not be updated.
    samples = np.asarray(rng.standard_normal(size))
    flat = samples.reshape(-1)
    outside = np.flatnonzero(np.abs(flat) > 2.0)
    while outside.size:
        flat[outside] = rng.standard_normal(outside.size)
        outside = outside[np.abs(flat[outside]) > 2.0]
    return samples


# -- constant initializers ----------------------------------------------------------------

@_registry.register("Zeros", "zeros", "zero")
class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=None):
        return np.zeros(*_check_size(_check_shape(shape), _check_dtype(dtype, float_only=False)))


@_registry.register("Ones", "ones", "one")
class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=None):
        return np.ones(*_check_size(_check_shape(shape), _check_dtype(dtype, float_only=False)))


@_registry.register("Constant", "constant")
class Constant(Initializer):
    """``value`` everywhere (a scalar, or an array broadcastable to the shape)."""

    def __init__(self, value=0.0):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"value must be a real number or array; received value={value!r}")
        self.value = array.item() if array.ndim == 0 else array.tolist()
        self._array = array

    def __call__(self, shape, dtype=None):
        shape, dtype = _check_size(_check_shape(shape), _check_dtype(dtype, float_only=False))
        try:
            return np.array(np.broadcast_to(self._array.astype(dtype), shape))
        except ValueError:
            raise ValueError(
                f"value of shape {self._array.shape} cannot fill a weight of shape {shape}; "
                f"received value={self.value!r}"
            ) from None

    def get_config(self):
        return {"value": self.value}


# -- random initializers ------------------------------------------------------------------

@_registry.register("RandomNormal", "random_normal", "normal")
class RandomNormal(_Seeded):
    """Normal distribution ``N(mean, stddev**2)``."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = _check_number(mean, "mean")
        self.stddev = _check_number(stddev, "stddev", minimum=0.0)

    def __call__(self, shape, dtype=None):
        shape, dtype = _check_size(_check_shape(shape), _check_dtype(dtype, float_only=True))
        values = self._rng().normal(self.mean, self.stddev, shape)
        return np.asarray(values, dtype=dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@_registry.register("RandomUniform", "random_uniform", "uniform")
class RandomUniform(_Seeded):
    """Uniform distribution on ``[minval, maxval)``."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval = _check_number(minval, "minval")
        self.maxval = _check_number(maxval, "maxval")
        if self.maxval < self.minval:
            raise ValueError(
                f"maxval must be >= minval; received minval={minval!r}, maxval={maxval!r}"
            )

    def __call__(self, shape, dtype=None):
        shape, dtype = _check_size(_check_shape(shape), _check_dtype(dtype, float_only=True))
        return np.asarray(self._rng().uniform(self.minval, self.maxval, shape), dtype=dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


@_registry.register("TruncatedNormal", "truncated_normal")
class TruncatedNormal(_Seeded):
    """``N(mean, stddev**2)`` restricted to two standard deviations (others redrawn)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = _check_number(mean, "mean")
        self.stddev = _check_number(stddev, "stddev", minimum=0.0)

    def __call__(self, shape, dtype=None):
        shape, dtype = _check_size(_check_shape(shape), _check_dtype(dtype, float_only=True))
        samples = _truncated_standard_normal(self._rng(), shape)
        return np.asarray(self.mean + self.stddev * samples, dtype=dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@_registry.register("VarianceScaling", "variance_scaling")
class VarianceScaling(_Seeded):
    """Samples whose variance is ``scale / n``, n the fan chosen by ``mode``.

    Parameters
    ----------
    scale : positive float
    mode : {"fan_in", "fan_out", "fan_avg"}
    distribution : {"truncated_normal", "untruncated_normal", "uniform"}
        "normal" is accepted as "truncated_normal" (as Keras).  Truncated
        normal: stddev ``sqrt(scale / n) / 0.8796...`` before truncation at two
        stddevs; untruncated: stddev ``sqrt(scale / n)``; uniform: limits
        ``+-sqrt(3 * scale / n)``.
    seed : int or None

    Raises
    ------
    ValueError
        For a non-positive scale or an unknown mode or distribution.
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        self.scale = _check_number(scale, "scale", positive=True)
        if not isinstance(mode, str) or mode.lower() not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}; received mode={mode!r}")
        accepted = _DISTRIBUTIONS + ("normal",)
        if not isinstance(distribution, str) or distribution.lower() not in accepted:
            raise ValueError(
                f"distribution must be one of {_DISTRIBUTIONS}; "
                f"received distribution={distribution!r}"
            )
        self.mode = mode.lower()
        self.distribution = distribution.lower()
        if self.distribution == "normal":
            self.distribution = "truncated_normal"

    def __call__(self, shape, dtype=None):
        shape, dtype = _check_size(_check_shape(shape), _check_dtype(dtype, float_only=True))
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, fan)
        rng = self._rng()
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(variance) / _TRUNCATED_NORMAL_STDDEV
            values = stddev * _truncated_standard_normal(rng, shape)
        elif self.distribution == "untruncated_normal":
            values = rng.normal(0.0, math.sqrt(variance), shape)
        else:
            limit = math.sqrt(3.0 * variance)
            values = rng.uniform(-limit, limit, shape)
        return np.asarray(values, dtype=dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


class _FixedVarianceScaling(VarianceScaling):
    """VarianceScaling with fixed settings; its config is only the seed."""

    _settings = {}

    def __init__(self, seed=None):
        super().__init__(seed=seed, **self._settings)

    def get_config(self):
        return {"seed": self.seed}


@_registry.register("GlorotUniform", "glorot_uniform")
class GlorotUniform(_FixedVarianceScaling):
    """Uniform on ``+-sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio, 2010)."""

    _settings = {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform"}


@_registry.register("GlorotNormal", "glorot_normal")
class GlorotNormal(_FixedVarianceScaling):
    """Truncated normal with variance ``2 / (fan_in + fan_out)``."""

    _settings = {"scale": 1.0, "mode": "fan_avg", "distribution": "truncated_normal"}


@_registry.register("HeUniform", "he_uniform")
class HeUniform(_FixedVarianceScaling):
    """Uniform on ``+-sqrt(6 / fan_in)`` (He et al., 2015)."""

    _settings = {"scale": 2.0, "mode": "fan_in", "distribution": "uniform"}


@_registry.register("HeNormal", "he_normal")
class HeNormal(_FixedVarianceScaling):
    """Truncated normal with variance ``2 / fan_in``."""

    _settings = {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"}


@_registry.register("LecunUniform", "lecun_uniform")
class LecunUniform(_FixedVarianceScaling):
    """Uniform on ``+-sqrt(3 / fan_in)`` (LeCun et al., 1998)."""

    _settings = {"scale": 1.0, "mode": "fan_in", "distribution": "uniform"}


@_registry.register("LecunNormal", "lecun_normal")
class LecunNormal(_FixedVarianceScaling):
    """Truncated normal with variance ``1 / fan_in``."""

    _settings = {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"}


@_registry.register("Orthogonal", "orthogonal")
class Orthogonal(_Seeded):
    """A (semi-)orthogonal matrix times ``gain``, reshaped to ``shape`` (>= 2-D).

    The weight is viewed as a matrix of ``prod(shape[:-1])`` rows and
    ``shape[-1]`` columns; its columns (or rows, when there are fewer rows
    than columns) are orthonormal before scaling by ``gain``.
    """

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = _check_number(gain, "gain")

    def __call__(self, shape, dtype=None):
        shape, dtype = _check_size(_check_shape(shape), _check_dtype(dtype, float_only=True))
        if len(shape) < 2:
            raise ValueError(
                "orthogonal initialization needs a shape of at least 2 dimensions; "
                f"received shape={shape!r}"
            )
        rows, cols = math.prod(shape[:-1]), shape[-1]
        matrix = self._rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(matrix)
        # Fixing the signs of diag(r) makes q uniformly distributed (Mezzadri, 2007).
        q *= np.where(np.diag(r) < 0, -1.0, 1.0)
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(dtype)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


@_registry.register("Identity", "identity")
class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only; rectangular allowed)."""

    def __init__(self, gain=1.0):
        self.gain = _check_number(gain, "gain")

    def __call__(self, shape, dtype=None):
        shape, dtype = _check_size(_check_shape(shape), _check_dtype(dtype, float_only=False))
        if len(shape) != 2:
            raise ValueError(
                f"identity initialization needs a 2-D shape; received shape={shape!r}"
            )
        return (self.gain * np.eye(*shape)).astype(dtype)

    def get_config(self):
        return {"gain": self.gain}


# snake_case aliases of the classes, as keras.initializers exports them.
zeros, ones, constant = Zeros, Ones, Constant
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
variance_scaling, orthogonal, identity = VarianceScaling, Orthogonal, Identity
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
he_uniform, he_normal = HeUniform, HeNormal
lecun_uniform, lecun_normal = LecunUniform, LecunNormal


# -- registry --------------------------------------------------------------------------

def get(identifier):
    """The initializer named or configured by ``identifier``.

    Parameters
    ----------
    identifier : str, dict, callable or None
        A name ("glorot_uniform" or "GlorotUniform") gives a new instance with
        default settings; a config dict ``{"class_name": ..., "config": ...}``
        an instance with those settings; a callable is returned as is; None
        stays None.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid names).
    """
    return _registry.get(identifier)


def serialize(initializer):
    """``{"class_name": ..., "config": ...}`` of an initializer instance."""
    return _registry.serialize(initializer)


def deserialize(config):
    """The initializer described by ``config`` (a name or a config dict)."""
    return _registry.deserialize(config)
