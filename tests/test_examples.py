"""The example scripts run end to end (few epochs/steps) and produce what they promise."""

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

pytestmark = pytest.mark.slow

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
# Generous: a cold Numba cache compiles the kernels first.
TIMEOUT_SECONDS = 300


def run_example(script, *args):
    completed = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, script), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout.strip().splitlines()


def test_train_digits_few_epochs(tmp_path):
    lines = run_example(
        "train_digits.py", "--epochs", "3", "--verbose", "0", "--output-dir", str(tmp_path)
    )
    match = re.fullmatch(r"test accuracy: (0\.\d{4}|1\.0000)", lines[-1])
    assert match, lines[-1]
    assert float(match.group(1)) > 0.8
    assert any(line.startswith("per-epoch time after the first epoch") for line in lines)
    for name in ("digits_training_curves.png", "digits_first_layer_filters.png"):
        path = tmp_path / name
        assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_digits_rejects_bad_epochs(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            os.path.join(EXAMPLES, "train_digits.py"),
            "--epochs",
            "0",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    assert completed.returncode != 0
    assert "--epochs 0" in completed.stderr


def test_custom_loop_autoencoder_loss_falls(tmp_path):
    lines = run_example(
        "custom_loop_autoencoder.py", "--steps", "60", "--output-dir", str(tmp_path)
    )
    matches = (re.search(r"mean squared error ([0-9.]+)$", line) for line in lines)
    losses = [float(match.group(1)) for match in matches if match]
    assert len(losses) == 10
    assert losses[-1] < losses[0]
    summary = re.fullmatch(
        r"test mean squared error: noisy ([0-9.]+), denoised ([0-9.]+)",
        next(line for line in lines if line.startswith("test mean squared error")),
    )
    assert summary is not None
    path = tmp_path / "autoencoder_denoising.png"
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
