"""Autograd: Tensor, Variable, GradientTape and differentiable ops."""

from .tape import GradientTape, stop_gradient
from .tensor import Tensor, Variable, constant, convert_to_tensor
