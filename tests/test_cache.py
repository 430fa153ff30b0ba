"""Kernel cache behaviour: read-only installs, the off switch, concurrent compilation.

Each scenario runs numconv in a fresh subprocess on a private copy of the
package, so the suite's own cache is neither used nor disturbed.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import numconv

PACKAGE = Path(numconv.__file__).parent

# A small forward pass (its kernels compile in ~10 s; the gradients would double
# that in each of the file's five processes); prints the package location and a
# checksum.
SNIPPET = """
import warnings, numpy as np
warnings.simplefilter("always")
import numconv
x = np.arange(2 * 6 * 6 * 3, dtype=np.float64).reshape(2, 6, 6, 3) / 10
k = np.linspace(-1, 1, 3 * 3 * 3 * 4).reshape(3, 3, 3, 4)
y = numconv.nn.conv2d(x, k, np.ones(4), padding="same")
print(numconv.__file__)
print(repr(float(y.sum())))
"""


def copy_package(destination):
    shutil.copytree(PACKAGE, destination / "numconv",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    return destination


def environment(site, home, **extra):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("NUMBA_CACHE_DIR", "NUMCONV_", "XDG_CACHE_HOME"))}
    env.update(PYTHONPATH=str(site), HOME=str(home), PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def run_python(env, cwd, timeout=300):
    return subprocess.run([sys.executable, "-c", SNIPPET], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def cache_files(root):
    return sorted(str(p) for p in Path(root).rglob("*") if p.suffix in (".nbi", ".nbc"))


@pytest.fixture(scope="module")
def uncached_run(tmp_path_factory):
    """The snippet run once with the cache switched off (a fresh compile takes ~20 s):
    ``(result, site, folder)``; its checksum is what every cached run must print."""
    folder = tmp_path_factory.mktemp("uncached")
    site = copy_package(folder / "site")
    cache_dir = folder / "numba_cache"
    cache_dir.mkdir()
    env = environment(site, folder, NUMCONV_CACHE="0", NUMBA_CACHE_DIR=str(cache_dir))
    return run_python(env, folder), site, folder


@pytest.fixture(scope="module")
def expected_checksum(uncached_run):
    result = uncached_run[0]
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


def can_mount_read_only():
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


def run_with_read_only(paths, env, cwd):
    """Run the snippet in a private mount namespace where ``paths`` are read-only."""
    binds = " && ".join(f"mount --bind {p} {p} && mount -o remount,ro,bind {p}" for p in paths)
    command = f"{binds} && exec {sys.executable} -c '{SNIPPET}'"
    return subprocess.run(["unshare", "--mount", "sh", "-c", command], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cache_switched_off_writes_nothing(uncached_run):
    result, site, folder = uncached_run
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(str(site))
    assert cache_files(folder) == []


@pytest.mark.slow
def test_two_processes_compiling_into_one_empty_cache_both_succeed(tmp_path, expected_checksum):
    site = copy_package(tmp_path / "site")
    cache_dir = tmp_path / "shared_cache"
    env = environment(site, tmp_path, NUMBA_CACHE_DIR=str(cache_dir))
    command = [sys.executable, "-c", SNIPPET]
    first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    for process, (stdout, stderr) in zip((first, second), outputs):
        assert process.returncode == 0, stderr
    assert outputs[0][0].split()[-1] == outputs[1][0].split()[-1] == expected_checksum
    assert cache_files(cache_dir), "the shared cache folder should now hold compiled kernels"


@pytest.mark.slow
@pytest.mark.skipif(not can_mount_read_only(), reason="needs root and unshare to mount read-only")
def test_read_only_install_caches_in_the_user_folder(tmp_path, expected_checksum):
    site = copy_package(tmp_path / "site")
    home = tmp_path / "home"
    home.mkdir()
    result = run_with_read_only([site], environment(site, home), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cache disabled" not in result.stderr
    assert result.stdout.split()[-1] == expected_checksum
    assert cache_files(home), "Numba should fall back to the per-user cache folder"
    assert cache_files(site) == []


@pytest.mark.slow
@pytest.mark.skipif(not can_mount_read_only(), reason="needs root and unshare to mount read-only")
def test_read_only_install_and_home_runs_uncached_with_one_warning(tmp_path, expected_checksum):
    site = copy_package(tmp_path / "site")
    home = tmp_path / "home"
    home.mkdir()
    result = run_with_read_only([site, home], environment(site, home), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("kernel cache disabled") == 1, result.stderr
    assert result.stdout.split()[-1] == expected_checksum
    assert cache_files(tmp_path) == []
