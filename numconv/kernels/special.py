"""Elementwise special functions NumPy lacks (the exact gelu needs erfc).

Kernels take a 1-D contiguous float64 input and write into a same-sized
output; callers ravel and cast first, so each kernel compiles once.
"""

import math

from .jit import kernel


@kernel(parallel=False)
def erfc_into(values, out):
    """``out[i] = erfc(values[i])`` (complementary error function)."""
    for i in range(values.shape[0]):
        out[i] = math.erfc(values[i])
