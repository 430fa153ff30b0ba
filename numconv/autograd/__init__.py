"""Autograd: Tensor, Variable, GradientTape and differentiable ops.

``math_ops`` (elementwise, reductions, shapes, indexing) loads with Tensor;
``nn_ops`` (conv2d, bias_add, pooling, cross-entropies) loads Numba kernels
and is imported on first use, e.g. through ``numconv.ops``.
"""

from . import math_ops
from .tape import GradientTape, stop_gradient
from .tensor import Tensor, Variable, constant, convert_to_tensor

__all__ = [
    "GradientTape", "Tensor", "Variable", "constant", "convert_to_tensor", "math_ops",
    "stop_gradient",
]
