"""Results do not depend on the thread count: bit-identical with 1 and 2 Numba threads.

Each thread count needs its own process (NUMBA_NUM_THREADS is read at import),
so a script computes outputs and gradients, saves them, and the test compares
the files byte for byte.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

TIMEOUT = 300

SCRIPT = r"""
import sys
import numba
import numpy as np
import numconv.nn as nn
from numconv import runtime
from numconv.nn import _conv_paths as conv
from numconv.nn._conv_geometry import ConvGeometry

folder, expected_threads = sys.argv[1], int(sys.argv[2])
# Every call takes the parallel builds and threaded BLAS, the code a thread count could
# affect, while the problems stay small enough for a quick test.
runtime.PARALLEL_MIN_WORK = 0
assert numba.get_num_threads() == expected_threads, numba.get_num_threads()
rng = np.random.default_rng(0)
problems = {
    # Every kernel (bias gradient included) above the parallel threshold, 64 reduction chunks.
    "dense32": (rng.standard_normal((4, 34, 34, 16)).astype(np.float32),
                rng.standard_normal((3, 3, 16, 64)).astype(np.float32),
                dict(padding="valid")),
    "grouped64": (rng.standard_normal((2, 3, 12, 23, 21)),
                  rng.standard_normal((4, 2, 6, 8)),
                  dict(strides=2, padding="same", groups=2, data_format="channels_first")),
    "depthwise64": (rng.standard_normal((5, 33, 31, 32)),
                    rng.standard_normal((3, 4, 1, 64)),
                    dict(dilation_rate=2, padding="same", groups=32)),
    # The BLAS paths of numconv.nn.conv, each over several im2col chunks.
    "winograd32": (rng.standard_normal((3, 40, 36, 32)).astype(np.float32),
                   rng.standard_normal((3, 3, 32, 48)).astype(np.float32),
                   dict(padding="same")),
    "winograd64": (rng.standard_normal((3, 40, 36, 32)),  # F(4x4, 3x3)
                   rng.standard_normal((3, 3, 32, 48)),
                   dict(padding="same")),
    "winograd_planes32": (rng.standard_normal((5, 32, 20, 18)).astype(np.float32),  # by image
                          rng.standard_normal((3, 3, 32, 48)).astype(np.float32),  # groups
                          dict(padding="same", data_format="channels_first")),
    "gemm_flipped64": (rng.standard_normal((3, 40, 36, 32)),
                       rng.standard_normal((3, 3, 32, 48)),
                       dict(padding="same", dilation_rate=6)),
    "gemm_col2im64": (rng.standard_normal((4, 45, 38, 24)),
                      rng.standard_normal((5, 5, 24, 32)),
                      dict(strides=2, padding="same")),
    "winograd_strided32": (rng.standard_normal((4, 45, 38, 24)).astype(np.float32),
                           rng.standard_normal((4, 4, 24, 32)).astype(np.float32),
                           dict(strides=2, padding="same")),
    "pointwise32": (rng.standard_normal((2, 20, 64, 30, 32)).astype(np.float32),
                    rng.standard_normal((1, 1, 64, 96)).astype(np.float32),
                    dict(data_format="channels_first")),
}
paths = {name: (conv.forward_path(geometry), conv.grad_input_path(geometry))
         for name, geometry in (
             (name, ConvGeometry(x, kernel, options.get("strides", 1),
                                   options.get("padding", "valid"),
                                   options.get("data_format", "channels_last"),
                                   options.get("dilation_rate", 1), options.get("groups", 1)))
             for name, (x, kernel, options) in problems.items())}
assert paths["winograd32"] == ("winograd", "flipped"), paths
assert paths["winograd64"] == ("winograd", "flipped"), paths
assert paths["winograd_planes32"] == ("winograd", "flipped"), paths
assert paths["gemm_flipped64"] == ("gemm", "flipped"), paths
assert paths["gemm_col2im64"] == ("gemm", "col2im"), paths
assert paths["winograd_strided32"] == ("winograd_strided", "winograd_strided"), paths
assert paths["pointwise32"] == ("matmul", "matmul"), paths
for name, (x, kernel, options) in problems.items():
    bias = rng.standard_normal(kernel.shape[-1]).astype(x.dtype)
    out = nn.conv2d(x, kernel, bias, **options)
    assert runtime.use_parallel(out.size * kernel.shape[0] * kernel.shape[1] * kernel.shape[2])
    grad_output = rng.standard_normal(out.shape).astype(x.dtype)
    grads = nn.conv2d_grads(x, kernel, grad_output, **options)
    for label, array in zip(("out", "grad_input", "grad_kernel", "grad_bias"), (out, *grads)):
        np.save(f"{folder}/{name}_{label}.npy", array)
print("done", numba.get_num_threads(), runtime.threading_layer())
"""


def run_with_threads(threads, folder):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder), str(threads)],
        env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.split()[:2] == ["done", str(threads)]
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.slow
def test_results_are_bit_identical_for_one_and_two_threads(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    results_one = run_with_threads(1, one)
    results_two = run_with_threads(2, two)
    assert len(results_one) == 40 and results_one.keys() == results_two.keys()
    for name in results_one:
        assert results_one[name] == results_two[name], f"{name} differs between 1 and 2 threads"
    # The files hold real results, not empty or all-zero arrays.
    grad_kernel = np.load(one / "dense32_grad_kernel.npy")
    assert grad_kernel.shape == (3, 3, 16, 64) and np.abs(grad_kernel).min() > 0
