"""Compile numconv's convolution kernels ahead of the first real call."""

import numpy as np

from .nn import conv as nn_conv

# (x shape, kernel shape, options): one call per path and threading regime of
# numconv.nn.conv (see docs/design.md, "Fast paths").  The large cases pass
# runtime.PARALLEL_MIN_WORK, so they compile the parallel builds and threaded
# packing kernels; the small ones compile the serial builds.
_CASES = (
    ((1, 5, 5, 2), (2, 2, 2, 3), {}),                                    # direct
    ((1, 5, 5, 2), (2, 2, 1, 2), {"groups": 2}),                         # depthwise
    ((1, 16, 16, 32), (3, 3, 32, 32), {"padding": "same"}),              # winograd (one lane)
    ((8, 6, 6, 32), (3, 3, 32, 32), {"padding": "same"}),                # ... F(2x2, 3x3) in float64
    ((1, 32, 32, 32), (3, 3, 32, 32), {"strides": 2, "padding": "same"}),  # gemm + col2im
    ((1, 16, 16, 32), (3, 3, 32, 32), {"padding": "same", "data_format": "channels_first"}),
    ((1, 40, 40, 64), (3, 3, 64, 64), {"padding": "same"}),              # winograd, in lanes
    ((1, 40, 40, 64), (3, 3, 64, 64), {"strides": 2, "padding": "same"}),
    ((1, 40, 40, 64), (3, 3, 64, 64), {"padding": "same", "data_format": "channels_first"}),
    ((1, 40, 40, 128), (1, 1, 128, 128), {}),                            # matmul
    ((1, 32, 32, 32), (4, 4, 32, 32), {"strides": 2, "padding": "same"}),  # winograd_strided
    ((2, 64, 64, 32), (4, 4, 32, 32), {"strides": 2, "padding": "same"}),  # ... threaded
    ((5, 64, 64, 64), (3, 3, 1, 64), {"groups": 64, "padding": "same"}),  # depthwise, threaded
    ((5, 32, 32, 64), (3, 3, 4, 64), {"groups": 16, "padding": "same"}),  # grouped, threaded
    # (groups of four channels and filters: groups_of_four_forward)
    ((8, 28, 28, 1), (3, 3, 1, 32), {}),                                 # few_terms_forward
    ((2, 40, 40, 3), (7, 7, 3, 64), {"strides": 2, "padding": "same"}),  # few_channels_forward
)


def warmup(dtypes=("float32", "float64")):
    """Compile (or load from the cache) every convolution kernel for ``dtypes``.

    Runs one small forward and backward pass per computation path and
    threading regime, so later calls start without compiling.

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
        for x_shape, kernel_shape, options in _CASES:
            if options.get("data_format") == "channels_first":
                x_shape = (x_shape[0], x_shape[3], x_shape[1], x_shape[2])
            x = np.zeros(x_shape, dtype=dtype)
            kernel = np.zeros(kernel_shape, dtype=dtype)
            out = nn_conv.conv2d(x, kernel, np.zeros(kernel_shape[-1], dtype=dtype), **options)
            nn_conv.conv2d_grads(x, kernel, out, **options)
