"""The benchmark shape suite, shared by the asv suites and compare.py.

Every case is channels_last: input (N, H, W, C_in), kernel
(KH, KW, C_in // groups, C_out), cross-correlation, TensorFlow's padding
rules ('same' pads the extra row/column at the bottom/right).

This module needs NumPy only: compare.py imports it in interpreters that
have no numconv (a separate TensorFlow environment), and asv imports it for
old commits whose numconv lacks the functions used here.
"""

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConvCase:
    """One convolution: shapes and options, channels_last."""

    name: str
    batch: int
    height: int
    width: int
    in_channels: int
    filters: int
    kernel_size: int
    strides: int = 1
    dilation: int = 1
    groups: int = 1
    padding: str = "same"

    @property
    def input_shape(self):
        return (self.batch, self.height, self.width, self.in_channels)

    @property
    def kernel_shape(self):
        k = self.kernel_size
        return (k, k, self.in_channels // self.groups, self.filters)

    def padding_amounts(self):
        """((top, bottom), (left, right)) zero padding, TensorFlow's rule."""
        if self.padding == "valid":
            return (0, 0), (0, 0)
        return tuple(self._same_pad(size) for size in (self.height, self.width))

    def _same_pad(self, size):
        effective_kernel = (self.kernel_size - 1) * self.dilation + 1
        out = -(-size // self.strides)
        total = max((out - 1) * self.strides + effective_kernel - size, 0)
        return total // 2, total - total // 2

    @property
    def output_shape(self):
        effective_kernel = (self.kernel_size - 1) * self.dilation + 1
        sizes = []
        for size, (before, after) in zip((self.height, self.width), self.padding_amounts()):
            sizes.append((size + before + after - effective_kernel) // self.strides + 1)
        return (self.batch, sizes[0], sizes[1], self.filters)

    @property
    def multiply_adds(self):
        """Multiply-adds of the forward pass (bias excluded)."""
        k = self.kernel_size
        return math.prod(self.output_shape) * k * k * (self.in_channels // self.groups)

    def flops(self, pass_name="forward"):
        """Floating-point operations (2 per multiply-add) of a pass.

        Each gradient (input, kernel) costs as many multiply-adds as the forward
        pass; "forward_backward" is forward + both gradients (bias sums ignored).
        """
        factor = {"forward": 1, "grad_input": 1, "grad_kernel": 1, "forward_backward": 3}[pass_name]
        return 2 * factor * self.multiply_adds

    def describe(self):
        k = self.kernel_size
        n, h, w, c = self.input_shape
        text = f"{n}x{h}x{w}x{c}->{self.filters} {k}x{k}"
        for label, value in (("s", self.strides), ("d", self.dilation), ("g", self.groups)):
            if value != 1:
                text += f" {label}{value}"
        return f"{text} {self.padding}"


SHAPES = {
    case.name: case
    for case in (
        ConvCase("lenet1", 64, 28, 28, 1, 32, 3, padding="valid"),
        ConvCase("lenet2", 64, 13, 13, 32, 64, 3, padding="valid"),
        ConvCase("resnet3x3", 8, 56, 56, 64, 64, 3),
        ConvCase("resnet1x1", 8, 28, 28, 256, 128, 1),
        ConvCase("stem7x7s2", 8, 224, 224, 3, 64, 7, strides=2),
        ConvCase("strided3x3", 8, 56, 56, 64, 128, 3, strides=2),
        ConvCase("depthwise", 8, 56, 56, 128, 128, 3, groups=128),
        ConvCase("grouped32", 8, 28, 28, 128, 128, 3, groups=32),
        ConvCase("dilated2", 8, 32, 32, 64, 64, 3, dilation=2),
        ConvCase("pix2pix4x4", 4, 128, 128, 64, 128, 4, strides=2),
    )
}

SHAPE_NAMES = tuple(SHAPES)
DTYPES = ("float32", "float64")
PASSES = ("forward", "grad_input", "grad_kernel", "forward_backward")


def make_arrays(case, dtype, seed=0):
    """Deterministic (x, kernel, bias, grad_output) for ``case``, channels_last.

    The same seed gives the same arrays in every process, so peers measured in
    another interpreter see the very inputs numconv saw.  Values are scaled so
    outputs stay O(1) whatever the fan-in.
    """
    rng = np.random.default_rng(seed)
    fan_in = case.kernel_size ** 2 * (case.in_channels // case.groups)
    x = rng.standard_normal(case.input_shape).astype(dtype)
    kernel = (rng.standard_normal(case.kernel_shape) / math.sqrt(fan_in)).astype(dtype)
    bias = rng.standard_normal(case.filters).astype(dtype)
    grad_output = rng.standard_normal(case.output_shape).astype(dtype)
    return x, kernel, bias, grad_output


def conv_options(case):
    """Keyword arguments of numconv.nn.conv2d / conv2d_grads for ``case``."""
    return dict(
        strides=case.strides,
        padding=case.padding,
        dilation_rate=case.dilation,
        groups=case.groups,
    )
