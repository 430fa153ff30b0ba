"""numconv in multiprocessing pools after the parent ran parallel kernels.

Usage: process_worker.py START_METHOD.  Prints "ok <method> <layer>" when every
worker's result equals the parent's.
"""

import multiprocessing
import sys

import numba
import numpy as np

import numconv


def compute(seed):
    rng = np.random.default_rng(seed)
    # Large enough that the parent runs the parallel build of the kernels.
    x = rng.standard_normal((4, 32, 32, 16))
    kernel = rng.standard_normal((3, 3, 16, 16))
    out = numconv.nn.conv2d(x, kernel, padding="same")
    grad_input, grad_kernel, grad_bias = numconv.nn.conv2d_grads(x, kernel, out, padding="same")
    # Depthwise convolutions always run on numconv's own Numba kernels (dense ones may go
    # through BLAS), and this one is large enough for the parallel builds: it is the call
    # that launches Numba's parallel region.
    images = rng.standard_normal((8, 64, 64, 64))
    depthwise_kernel = rng.standard_normal((3, 3, 1, 64))
    depthwise = numconv.nn.conv2d(images, depthwise_kernel, padding="same", groups=64)
    depthwise_grads = numconv.nn.conv2d_grads(images, depthwise_kernel, depthwise,
                                              padding="same", groups=64)
    return (out, grad_input, grad_kernel, grad_bias, depthwise, *depthwise_grads)


def main(method):
    expected = [compute(seed) for seed in range(4)]
    layer = numba.threading_layer()  # raises if no parallel region ran in the parent
    context = multiprocessing.get_context(method)
    with context.Pool(2) as pool:
        results = pool.map(compute, range(4), chunksize=1)
    for want, got in zip(expected, results):
        for a, b in zip(want, got):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
    print("ok", method, layer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
