"""Core layers: Dense, Flatten, Reshape, Activation, ReLU, Dropout."""

import math
import numbers

import numpy as np

from .. import _arguments
from .. import activations as _activations
from .. import config as _config
from .. import ops as _ops
from .base import Layer, shape_tuple
from .kernel_layer import KernelLayer, fold_leading_axes, unfold_leading_axes


class Dense(KernelLayer):
    """Densely connected layer on the last axis, as ``keras.layers.Dense``.

    ``outputs = activation(inputs @ kernel + bias)`` with kernel
    ``(input_dim, units)`` and bias ``(units,)``; inputs ``(..., input_dim)``
    with at least 2 dimensions give outputs ``(..., units)``.

    Raises
    ------
    ValueError or TypeError
        For an invalid argument (named with the value received); for inputs
        of rank < 2, or whose last dimension is unknown or differs from the
        one the layer was built for.
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = _arguments.check_positive_int(units, "units")
        self._set_kernel_options(activation, use_bias, kernel_initializer, bias_initializer,
                                 kernel_regularizer, bias_regularizer, kernel_constraint,
                                 bias_constraint)
        self._build_at_construction()

    def _check_input_shape(self, shape):
        shape = shape_tuple(shape)
        if len(shape) < 2:
            raise ValueError(
                f"layer {self.name!r} expects inputs with at least 2 dimensions (batch, features); "
                f"received inputs with shape {shape}"
            )
        if shape[-1] is None:
            raise ValueError(
                f"the last dimension of the inputs of layer {self.name!r} must be known; "
                f"received input shape {shape}"
            )
        if self.built and shape[-1] != self._kernel.shape[0]:
            raise ValueError(
                f"layer {self.name!r} was built for inputs with last dimension "
                f"{self._kernel.shape[0]} (input shape {self._build_input_shape}); "
                f"received input shape {shape}"
            )

    def compute_output_shape(self, input_shape):
        shape = shape_tuple(input_shape)
        self._check_input_shape(shape)
        return shape[:-1] + (self.units,)

    def build(self, input_shape):
        self._add_kernel_and_bias((shape_tuple(input_shape)[-1], self.units), self.units)

    def call(self, inputs, training=None):
        folded, leading = fold_leading_axes(inputs, 1)
        outputs = _ops.matmul(folded, self._kernel)
        if self.use_bias:
            outputs = _ops.add(outputs, self._bias)
        return self._activate(unfold_leading_axes(outputs, leading))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                **self._kernel_options_config(),
            }
        )
        return config


class Flatten(Layer):
    """Flatten all axes but the first, as ``keras.layers.Flatten``.

    ``(batch, d1, ..., dk)`` -> ``(batch, d1 * ... * dk)``; ``(batch,)`` ->
    ``(batch, 1)``.  With ``data_format="channels_first"`` the channel axis is
    moved last before flattening (as Keras 3 does), so the flat order is the
    channels_last order.
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _arguments.normalize_data_format(
            _config.image_data_format() if data_format is None else data_format
        )
        self.built = True

    def _check_input_shape(self, shape):
        if len(shape_tuple(shape)) < 1:
            raise ValueError(
                f"layer {self.name!r} expects inputs with at least 1 dimension; "
                f"received inputs with shape {shape_tuple(shape)}"
            )

    def compute_output_shape(self, input_shape):
        shape = shape_tuple(input_shape)
        self._check_input_shape(shape)
        rest = shape[1:]
        if any(size is None for size in rest):
            return (shape[0], None)
        return (shape[0], math.prod(rest))

    def call(self, inputs, training=None):
        if self.data_format == "channels_first" and inputs.ndim > 2:
            inputs = _ops.transpose(inputs, (0,) + tuple(range(2, inputs.ndim)) + (1,))
        return _ops.reshape(inputs, (inputs.shape[0], math.prod(inputs.shape[1:])))

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class Reshape(Layer):
    """Reshape all axes but the first to ``target_shape``, as ``keras.layers.Reshape``.

    One entry of ``target_shape`` may be -1: it is inferred from the input size.
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        if isinstance(target_shape, numbers.Integral) and not isinstance(target_shape, bool):
            target_shape = (target_shape,)
        if not isinstance(target_shape, (tuple, list)):
            raise TypeError(
                f"target_shape must be a tuple of integers; received target_shape={target_shape!r}"
            )
        for size in target_shape:
            if isinstance(size, bool) or not isinstance(size, numbers.Integral):
                raise TypeError(
                    "target_shape must be a tuple of integers; "
                    f"received target_shape={target_shape!r}"
                )
            if size <= 0 and size != -1:
                raise ValueError(
                    "target_shape entries must be positive integers or -1; "
                    f"received target_shape={tuple(target_shape)!r}"
                )
        if list(target_shape).count(-1) > 1:
            raise ValueError(
                "target_shape must not contain more than one -1; "
                f"received target_shape={tuple(target_shape)!r}"
            )
        self.target_shape = tuple(int(size) for size in target_shape)
        self.built = True

    def _resolve(self, sample_shape):
        """The target shape for one sample of ``sample_shape`` (None if unknown)."""
        known = math.prod(size for size in self.target_shape if size != -1)
        if any(size is None for size in sample_shape):
            return tuple(None if size == -1 else size for size in self.target_shape)
        total = math.prod(sample_shape)
        if -1 in self.target_shape:
            if known == 0 or total % known != 0:
                raise ValueError(
                    f"cannot reshape samples of shape {tuple(sample_shape)} ({total} values) "
                    f"to target_shape={self.target_shape}"
                )
            return tuple(total // known if size == -1 else size for size in self.target_shape)
        if total != known:
            raise ValueError(
                f"cannot reshape samples of shape {tuple(sample_shape)} ({total} values) "
                f"to target_shape={self.target_shape} ({known} values)"
            )
        return self.target_shape

    def _check_input_shape(self, shape):
        shape = shape_tuple(shape)
        if len(shape) < 1:
            raise ValueError(
                f"layer {self.name!r} expects inputs with a batch axis; received shape {shape}"
            )
        self._resolve(shape[1:])

    def compute_output_shape(self, input_shape):
        shape = shape_tuple(input_shape)
        self._check_input_shape(shape)
        return (shape[0],) + self._resolve(shape[1:])

    def call(self, inputs, training=None):
        return _ops.reshape(inputs, (inputs.shape[0],) + self._resolve(inputs.shape[1:]))

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = self.target_shape
        return config


class Activation(Layer):
    """Apply an activation function, as ``keras.layers.Activation``."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        if activation is None:
            raise ValueError(
                "activation must be a name, config or callable; received activation=None"
            )
        self.activation = _activations.get(activation)
        self.built = True

    def compute_output_shape(self, input_shape):
        return shape_tuple(input_shape)

    def call(self, inputs, training=None):
        return self.activation(inputs)

    def get_config(self):
        config = super().get_config()
        config["activation"] = _activations.serialize(self.activation)
        return config


def _check_non_negative_number(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise (TypeError if not isinstance(value, numbers.Real) else ValueError)(
            f"{name} of a ReLU layer must be a non-negative number; received {name}={value!r}"
        )
    if value < 0:
        raise ValueError(
            f"{name} of a ReLU layer must be a non-negative number; received {name}={value!r}"
        )
    return float(value)


class ReLU(Layer):
    """Rectified linear unit, as ``keras.layers.ReLU``.

    ``f(x) = min(x, max_value)`` for ``x > threshold`` and
    ``negative_slope * (x - threshold)`` otherwise.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _check_non_negative_number(max_value, "max_value", allow_none=True)
        self.negative_slope = _check_non_negative_number(negative_slope, "negative_slope")
        self.threshold = _check_non_negative_number(threshold, "threshold")
        self.built = True

    def compute_output_shape(self, input_shape):
        return shape_tuple(input_shape)

    def call(self, inputs, training=None):
        dtype = inputs.dtype
        above = inputs
        if self.max_value is not None:
            above = _ops.minimum(inputs, np.asarray(self.max_value, dtype=dtype))
        if self.negative_slope == 0.0:
            below = np.zeros((), dtype=dtype)
        else:
            shifted = _ops.subtract(inputs, np.asarray(self.threshold, dtype=dtype))
            below = _ops.multiply(shifted, np.asarray(self.negative_slope, dtype=dtype))
        return _ops.where(np.asarray(inputs) > self.threshold, above, below)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_value": self.max_value,
                "negative_slope": self.negative_slope,
                "threshold": self.threshold,
            }
        )
        return config


class Dropout(Layer):
    """Inverted dropout, as ``keras.layers.Dropout``; active only with ``training=True``.

    Each kept element is scaled by ``1 / (1 - rate)``.  ``noise_shape`` (None
    entries taken from the input) shares a mask along axes of size 1.  Layers
    with the same ``seed`` draw the same sequence of masks.

    Raises
    ------
    ValueError
        If ``rate`` is outside [0, 1), or ``noise_shape`` does not broadcast
        to the input.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
            raise TypeError(f"rate must be a number in [0, 1); received rate={rate!r}")
        if not 0 <= rate < 1:
            raise ValueError(f"rate must be a number in [0, 1); received rate={rate!r}")
        self.rate = float(rate)
        if noise_shape is not None:
            if not isinstance(noise_shape, (tuple, list)) or any(
                size is not None
                and (isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0)
                for size in noise_shape
            ):
                raise ValueError(
                    "noise_shape must be None or a tuple of positive integers or None; "
                    f"received noise_shape={noise_shape!r}"
                )
            noise_shape = tuple(None if size is None else int(size) for size in noise_shape)
        self.noise_shape = noise_shape
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0
        ):
            raise ValueError(f"seed must be None or a non-negative integer; received seed={seed!r}")
        self.seed = None if seed is None else int(seed)
        self._generator = np.random.default_rng(self.seed)
        self.built = True

    def _mask_shape(self, shape):
        if self.noise_shape is None:
            return shape
        if len(self.noise_shape) != len(shape):
            raise ValueError(
                f"noise_shape must have one entry per input dimension; received noise_shape="
                f"{self.noise_shape} for inputs of shape {shape}"
            )
        resolved = tuple(
            size if noise is None else noise for size, noise in zip(shape, self.noise_shape)
        )
        for size, noise in zip(shape, resolved):
            if noise not in (1, size):
                raise ValueError(
                    f"noise_shape must broadcast to the input shape; received noise_shape="
                    f"{self.noise_shape} for inputs of shape {shape}"
                )
        return resolved

    def _check_input_shape(self, shape):
        self._mask_shape(shape_tuple(shape))

    def compute_output_shape(self, input_shape):
        return shape_tuple(input_shape)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = self._generator.random(self._mask_shape(inputs.shape)) >= self.rate
        mask = keep.astype(inputs.dtype) * np.asarray(1.0 / (1.0 - self.rate), dtype=inputs.dtype)
        return _ops.multiply(inputs, mask)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed})
        return config
