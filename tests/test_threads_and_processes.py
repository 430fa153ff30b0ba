"""Concurrency safety under every Numba threading layer this machine can load.

Each scenario runs in a subprocess with a timeout, so that a crash, an abort
("Concurrent access has been detected", "fork() called from a process already
using GNU OpenMP") or a hang fails one test instead of the whole run.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "hardening_scripts"
LAYERS = ("tbb", "omp", "workqueue")
TIMEOUT = 300


def run_script(layer, *args):
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer, NUMBA_NUM_THREADS="2")
    completed = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    if completed.returncode != 0 and "No threading layer could be loaded" in completed.stderr:
        pytest.skip(f"threading layer {layer!r} cannot be loaded on this machine")
    assert completed.returncode == 0, (
        f"exit {completed.returncode}\nstdout:\n{completed.stdout[-3000:]}\n"
        f"stderr:\n{completed.stderr[-3000:]}"
    )
    return completed.stdout


@pytest.mark.slow
@pytest.mark.parametrize("layer", LAYERS)
def test_eight_threads_of_mixed_calls_match_serial_results(layer):
    output = run_script(layer, str(SCRIPTS / "threads_worker.py"))
    assert output.split()[-2:] == ["ok", layer]


@pytest.mark.slow
@pytest.mark.parametrize("method", ("fork", "spawn", "forkserver"))
@pytest.mark.parametrize("layer", LAYERS)
def test_process_pools_work_after_the_parent_ran_parallel_kernels(layer, method):
    output = run_script(layer, str(SCRIPTS / "process_worker.py"), method)
    assert output.split()[-3:] == ["ok", method, layer]
