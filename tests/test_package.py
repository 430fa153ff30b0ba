"""The package surface: public names resolve, and importing numconv has no side effects."""

import subprocess
import sys

import numconv


def test_every_public_name_resolves():
    for name in numconv.__all__:
        assert getattr(numconv, name) is not None, name
    assert numconv.Conv2D is numconv.layers.Conv2D is numconv.layers.Convolution2D
    assert numconv.Sequential is numconv.models.Sequential


def test_import_changes_no_numba_setting():
    script = (
        "import numba\n"
        "before = {k: repr(v) for k, v in vars(numba.config).items() if k.isupper()}\n"
        "import numconv, numconv.nn, numconv.layers\n"
        "after = {k: repr(v) for k, v in vars(numba.config).items() if k.isupper()}\n"
        "changed = sorted(k for k in before if before[k] != after.get(k))\n"
        "print(changed)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"
