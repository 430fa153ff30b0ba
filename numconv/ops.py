"""Differentiable ops on Tensors: the public namespace ``numconv.ops``.

Every function returns a Tensor and is recorded by an active
``GradientTape``.  See :mod:`numconv.autograd.math_ops` and
:mod:`numconv.autograd.nn_ops` for the definitions.
"""

from .autograd.math_ops import (
    InvalidIndexError, abs, add, cast, clip, concat, divide, exp, getitem, identity, log, matmul,
    maximum, minimum, multiply, negative, power, reduce_max, reduce_mean, reduce_sum, reshape, sqrt,
    square, stack, subtract, transpose, where,
)
from .autograd.nn_ops import (
    avg_pool2d, bias_add, conv2d, max_pool2d, softmax_cross_entropy_with_logits,
    sparse_softmax_cross_entropy_with_logits,
)
from .autograd.tape import stop_gradient

__all__ = [
    "InvalidIndexError", "abs", "add", "avg_pool2d", "bias_add", "cast", "clip", "concat", "conv2d",
    "divide", "exp", "getitem", "identity", "log", "matmul", "max_pool2d", "maximum", "minimum",
    "multiply", "negative", "power", "reduce_max", "reduce_mean", "reduce_sum", "reshape",
    "softmax_cross_entropy_with_logits", "sparse_softmax_cross_entropy_with_logits", "sqrt",
    "square",
    "stack", "stop_gradient", "subtract", "transpose", "where",
]
