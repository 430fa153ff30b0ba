"""Compile numconv's kernels ahead of the first real call."""

import numpy as np

from . import runtime
from .kernels import conv as conv_kernels
from .nn import conv as nn_conv

# Parallel builds of the convolution kernels: (general, depthwise).
_PARALLEL_FORWARD = (conv_kernels.conv2d_forward, conv_kernels.depthwise_conv2d_forward)
_PARALLEL_GRAD_INPUT = (conv_kernels.conv2d_grad_input, conv_kernels.depthwise_conv2d_grad_input)
_PARALLEL_GRAD_KERNEL = (conv_kernels.conv2d_grad_kernel, conv_kernels.depthwise_conv2d_grad_kernel)


def warmup(dtypes=("float32", "float64")):
    """Compile the forward and gradient kernels (serial and parallel builds) for ``dtypes``.

    With the on-disk cache enabled (the default), this loads the kernels
    compiled by an earlier process instead.

    Parameters
    ----------
    dtypes : str or sequence of str
        Among "float16", "float32", "float64"; float16 uses the float32 kernels.

    Raises
    ------
    ValueError
        An unknown dtype name.
    """
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    names = tuple(dtypes)
    for name in names:
        if name not in ("float16", "float32", "float64"):
            raise ValueError(
                "dtypes must name float16, float32 or float64; "
                f"received dtypes={dtypes!r}"
            )
    # float16 is computed by the float32 kernels.
    compute_dtypes = {np.dtype("float32" if name == "float16" else name) for name in names}
    for dtype in sorted(compute_dtypes, key=str):
        for depthwise in (False, True):
            channels, filters, groups = (2, 2, 2) if depthwise else (2, 3, 1)
            x = np.zeros((1, 3, 3, channels), dtype=dtype)
            kernel = np.zeros((2, 2, channels // groups, filters), dtype=dtype)
            # The array-level functions compile the builds that small calls use...
            out = nn_conv.conv2d(x, kernel, np.ones(filters, dtype=dtype), groups=groups)
            nn_conv.conv2d_grads(x, kernel, out, groups=groups)
            # ...and the parallel builds are called directly on the same canonical
            # arrays, unless this process may only run serial kernels (forked child).
            if not runtime.use_parallel(runtime.PARALLEL_MIN_WORK):
                continue
            scalars = (1, 1, 1, 1, 0, 0)
            bias = np.zeros(filters, dtype=dtype)
            with runtime.parallel_launch():
                _PARALLEL_FORWARD[depthwise](x, kernel, bias, out.copy(), *scalars)
                _PARALLEL_GRAD_INPUT[depthwise](out, kernel, np.empty_like(x), *scalars)
                _PARALLEL_GRAD_KERNEL[depthwise](x, out, np.empty_like(kernel), *scalars)
                conv_kernels.conv2d_grad_bias(out, np.empty(filters, dtype=dtype))
