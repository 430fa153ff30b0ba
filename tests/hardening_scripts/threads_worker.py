"""8 Python threads x 50 mixed conv calls at once; each result must equal the serial one bit for bit.

Run as a script (in a subprocess, so a crash or hang fails one test, not the run).
Prints "ok <layer>" on success.
"""

import sys
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

import numconv

THREADS = 8
CALLS_PER_THREAD = 50

# (x shape, kernel shape, options): small and large problems, so both the serial and the
# parallel builds of the kernels, and the BLAS path, run concurrently.
CASES = [
    ((2, 9, 9, 3), (3, 3, 3, 4), dict(padding="same")),
    ((4, 32, 32, 16), (3, 3, 16, 32), dict(padding="same")),
    ((2, 16, 16, 8), (2, 2, 4, 8), dict(strides=2, groups=2)),
    ((8, 28, 28, 8), (3, 3, 1, 8), dict(groups=8, padding="same")),
    ((2, 20, 20, 4), (3, 3, 4, 6), dict(dilation_rate=2, data_format="channels_first")),
    # Large enough for the parallel Numba builds (depthwise always runs on Numba kernels) and
    # for multi-threaded BLAS (dense): concurrent parallel launches from several threads.
    ((8, 64, 64, 64), (3, 3, 1, 64), dict(groups=64, padding="same")),
    ((4, 32, 32, 64), (3, 3, 64, 64), dict(padding="same")),
]
DTYPES = (np.float32, np.float64)


def make_call(index):
    x_shape, k_shape, options = CASES[index % len(CASES)]
    dtype = DTYPES[(index // len(CASES)) % len(DTYPES)]
    rng = np.random.default_rng(index)
    if options.get("data_format") == "channels_first":
        x_shape = (x_shape[0], x_shape[3], x_shape[1], x_shape[2])
    x = rng.standard_normal(x_shape).astype(dtype)
    kernel = rng.standard_normal(k_shape).astype(dtype)
    backward = index % 2 == 1
    return x, kernel, options, backward


def run(call):
    x, kernel, options, backward = call
    out = numconv.nn.conv2d(x, kernel, **options)
    if not backward:
        return (out,)
    grads = numconv.nn.conv2d_grads(x, kernel, np.cos(out), **options)
    return (out,) + tuple(grads)


def main():
    calls = [make_call(i) for i in range(THREADS * CALLS_PER_THREAD)]
    serial = [run(call) for call in calls]
    with ThreadPoolExecutor(THREADS) as pool:
        concurrent = list(pool.map(run, calls))
    for index, (a, b) in enumerate(zip(serial, concurrent)):
        for left, right in zip(a, b):
            if left.tobytes() != right.tobytes():
                print(f"call {index}: concurrent result differs from the serial one")
                return 1
    print("ok", numba.threading_layer())
    return 0


if __name__ == "__main__":
    sys.exit(main())
