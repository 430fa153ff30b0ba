"""KernelLayer: the part Dense and Conv2D share.

Both own a kernel, an optional bias and an activation, each with Keras's
initializer / regularizer / constraint options, and both fold any leading
batch axes into one before their op.
"""

import math

from .. import activations as _activations
from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import ops as _ops
from .. import regularizers as _regularizers
from .base import Layer


def fold_leading_axes(inputs, trailing_rank):
    """Reshape to ``(prod(leading axes),) + trailing shape``; returns (tensor, leading shape)."""
    leading = inputs.shape[: inputs.ndim - trailing_rank]
    if len(leading) == 1:
        return inputs, leading
    return _ops.reshape(inputs, (math.prod(leading),) + inputs.shape[-trailing_rank:]), leading


def unfold_leading_axes(outputs, leading):
    """Inverse of :func:`fold_leading_axes` for an output with the same folded first axis."""
    if len(leading) == 1:
        return outputs
    return _ops.reshape(outputs, tuple(leading) + outputs.shape[1:])


class KernelLayer(Layer):
    """Base of layers computing ``activation(op(inputs, kernel) + bias)``."""

    def _set_kernel_options(self, activation, use_bias, kernel_initializer, bias_initializer,
                            kernel_regularizer, bias_regularizer, kernel_constraint,
                            bias_constraint):
        self.activation = _activations.get(activation)
        if not isinstance(use_bias, bool):
            raise TypeError(f"use_bias must be a bool; received use_bias={use_bias!r}")
        self.use_bias = use_bias
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.kernel_constraint = _constraints.get(kernel_constraint)
        self.bias_constraint = _constraints.get(bias_constraint)
        self._kernel = None
        self._bias = None

    @property
    def kernel(self):
        """The kernel Variable (AttributeError until the layer is built)."""
        if not self.built:
            raise AttributeError(
                f"layer {self.name!r} has no kernel until it is built; call it on an input first"
            )
        return self._kernel

    @property
    def bias(self):
        """The bias Variable, or None when ``use_bias=False``."""
        if not self.built and self.use_bias:
            raise AttributeError(
                f"layer {self.name!r} has no bias until it is built; call it on an input first"
            )
        return self._bias

    def _add_kernel_and_bias(self, kernel_shape, bias_size):
        self._kernel = self.add_weight(
            "kernel",
            kernel_shape,
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self._bias = self.add_weight(
                "bias",
                (bias_size,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def _activate(self, outputs):
        return outputs if self.activation is None else self.activation(outputs)

    def _kernel_options_config(self):
        return {
            "activation": _activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": _regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": _constraints.serialize(self.kernel_constraint),
            "bias_constraint": _constraints.serialize(self.bias_constraint),
        }
