"""Start-up costs: a fresh interpreter's first convolution, and a cold compile.

    python benchmarks/startup.py [--repeat 5]

(a) With a warm Numba cache: wall time of a fresh
    ``python -c "import numconv; <float32 forward + backward of a small conv>"``
    (best of --repeat), and the same for PyTorch and TensorFlow when installed.
(b) Cold: with an empty temporary NUMBA_CACHE_DIR, one training step of the
    digits model (everything the digits example compiles), then the same step
    again with that cache now filled.
"""

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time

BENCHMARKS_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One small conv, forward and every gradient, as a user's first call would do.
SNIPPETS = {
    "python": "pass",
    "numpy": "import numpy",
    "numconv": (
        "import numpy as np, numconv\n"
        "x = np.random.rand(2, 16, 16, 3).astype(np.float32)\n"
        "k = np.random.rand(3, 3, 3, 8).astype(np.float32)\n"
        "y = numconv.nn.conv2d(x, k, padding='same')\n"
        "numconv.nn.conv2d_grads(x, k, np.ones_like(y), padding='same')\n"
    ),
    "torch": (
        "import torch\n"
        "x = torch.rand(2, 3, 16, 16, requires_grad=True)\n"
        "k = torch.rand(8, 3, 3, 3, requires_grad=True)\n"
        "torch.nn.functional.conv2d(x, k, padding=1).sum().backward()\n"
    ),
    "tensorflow": (
        "import os\n"
        "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'\n"
        "import tensorflow as tf\n"
        "x = tf.random.uniform((2, 16, 16, 3)); k = tf.random.uniform((3, 3, 3, 8))\n"
        "with tf.GradientTape() as tape:\n"
        "    tape.watch([x, k]); y = tf.nn.conv2d(x, k, 1, 'SAME')\n"
        "tape.gradient(y, [x, k])\n"
    ),
}

DIGITS_STEP = (
    "import sys\n"
    # Appended: the installed numconv must win over any source tree on the path.
    f"sys.path.append({BENCHMARKS_PARENT!r})\n"
    "from benchmarks.bench_training import build_digits_step\n"
    "step, _ = build_digits_step()\n"
    "step()\n"
)


def run_seconds(code, env=None):
    """Wall time of ``python -c code`` in a fresh interpreter; raises on failure."""
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit status {completed.returncode}")
    return seconds


def importable(module):
    try:
        run_seconds(
            f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
        )
        return True
    except RuntimeError:
        return False


def warm_start_times(repeat):
    """Best wall time per library, after one run that fills the caches."""
    times = {}
    for name, code in SNIPPETS.items():
        if name in ("torch", "tensorflow", "numconv") and not importable(name):
            times[name] = (None, "not installed")
            continue
        try:
            run_seconds(code)  # fills Numba's cache and the OS file cache
            times[name] = (min(run_seconds(code) for _ in range(repeat)), None)
        except RuntimeError as error:
            times[name] = (None, str(error))
    return times


def cold_compile_times():
    """(cold, warm) seconds of one digits training step with a fresh Numba cache."""
    with tempfile.TemporaryDirectory(prefix="numconv-cold-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, NUMCONV_CACHE="1")
        cold = run_seconds(DIGITS_STEP, env)
        warm = run_seconds(DIGITS_STEP, env)
    return cold, warm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat", type=int, default=5, help="fresh processes per library (best is kept)"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be a positive integer; received --repeat={args.repeat}")

    print(
        f"(a) fresh process, warm caches, best of {args.repeat}: import + one small "
        "float32 conv forward + backward"
    )
    for name, (seconds, note) in warm_start_times(args.repeat).items():
        print(
            f"    {name:<11} {seconds:7.2f} s"
            if seconds is not None
            else f"    {name:<11}     n/a  ({note})"
        )
    print("(b) digits model, one training step in a fresh process with an empty NUMBA_CACHE_DIR")
    try:
        cold, warm = cold_compile_times()
        print(f"    cold cache  {cold:7.2f} s  (compiles every kernel the step needs)")
        print(f"    warm cache  {warm:7.2f} s  (same step, cache now filled)")
        if math.isfinite(cold) and math.isfinite(warm):
            print(f"    compilation {cold - warm:7.2f} s")
    except RuntimeError as error:
        print(f"    n/a  ({error})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
