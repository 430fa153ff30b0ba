"""asv suite: conv2d forward and backward on normal vs denormal (subnormal) inputs.

Subnormal operands can take a slow microcode path on x86 CPUs when the
result stays subnormal.  The target (issue "Hardening", section 3) is that a
denormal-filled call takes at most 2x the time of the same call on normal
values; compare ``time_*`` for ``values="denormal"`` against ``"normal"``.
"""

import numpy as np

from numconv import nn

# (batch, height, width, channels) and the 3x3 kernel's filters: a mid-sized layer.
SHAPE = (4, 32, 32, 32)
FILTERS = 32


def make_arrays(values, dtype):
    """x, kernel and grad_output; with "denormal", x and grad_output are subnormal.

    The kernel stays normal, so every product and every partial sum of the
    forward pass and of both gradients is itself subnormal (the slow case).
    """
    rng = np.random.default_rng(0)
    dtype = np.dtype(dtype)
    x = rng.uniform(0.5, 1.0, SHAPE)
    kernel = rng.uniform(-0.1, 0.1, (3, 3, SHAPE[-1], FILTERS))
    grad_output = rng.uniform(0.5, 1.0, SHAPE[:-1] + (FILTERS,))
    if values == "denormal":
        tiny = np.finfo(dtype).smallest_normal
        x, grad_output = x * tiny / 64, grad_output * tiny / 64
    x, kernel, grad_output = (a.astype(dtype) for a in (x, kernel, grad_output))
    if values == "denormal":
        assert np.all((x != 0) & (np.abs(x) < np.finfo(dtype).smallest_normal))
    return x, kernel, grad_output


class TimeDenormals:
    params = [["normal", "denormal"], ["float32", "float64"]]
    param_names = ["values", "dtype"]
    number = 0
    repeat = (3, 10, 5.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self, values, dtype):
        self.x, self.kernel, self.grad_output = make_arrays(values, dtype)
        # Compile and warm up outside the timing.
        nn.conv2d(self.x, self.kernel, padding="same")
        nn.conv2d_grads(self.x, self.kernel, self.grad_output, padding="same")

    def time_forward(self, values, dtype):
        nn.conv2d(self.x, self.kernel, padding="same")

    def time_backward(self, values, dtype):
        nn.conv2d_grads(self.x, self.kernel, self.grad_output, padding="same")
