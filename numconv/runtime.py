"""How and when kernels run in parallel: thread count, launch safety, fork.

Policy (see docs/threading.md):

* A call whose work is below ``PARALLEL_MIN_WORK`` multiply-adds runs the
  serial builds of its kernels (and cuts its BLAS products small enough for
  OpenBLAS to stay on one thread): thread hand-offs would cost more than they
  save.  The choice depends on the problem only, never on the thread count,
  so results are bit-identical whatever ``NUMBA_NUM_THREADS`` is.
* Numba's ``workqueue`` layer aborts the process when two Python threads
  launch parallel regions at once, so parallel launches are serialised with a
  lock unless the layer in use is known to be thread-safe (tbb, omp).
* In a child created by ``fork()`` after the parent ran a parallel region,
  kernels run serially: GNU OpenMP cannot survive a fork, and a pool of
  worker processes gains nothing from threads inside each worker anyway.
"""

import contextlib
import os
import sys
import threading

import numba

from ._arguments import check_positive_int
from .kernels.jit import cache_enabled

# Multiply-adds below which a call stays on the calling thread: about 0.1 ms of
# one core's BLAS, the price of a few thread hand-offs.  On a busy machine a
# hand-off to a descheduled worker can cost a whole scheduler tick (4 ms), so
# the digits example (products of ~10**6) trains 8x faster on one thread.
PARALLEL_MIN_WORK = 10_000_000

_THREADSAFE_LAYERS = ("tbb", "omp")

_launch_lock = threading.RLock()
_parallel_has_run = False
_forked_after_parallel = False


def _after_fork_in_child():
    global _forked_after_parallel, _launch_lock
    _forked_after_parallel = _forked_after_parallel or _parallel_has_run
    _launch_lock = threading.RLock()  # a lock held by another thread at fork time stays held


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def threading_layer():
    """Name of Numba's threading layer, or None before the first parallel run."""
    try:
        return numba.threading_layer()
    except ValueError:
        return None


def use_parallel(work):
    """Whether a kernel call of ``work`` multiply-adds should run in parallel."""
    return work >= PARALLEL_MIN_WORK and not _forked_after_parallel


@contextlib.contextmanager
def parallel_launch():
    """Context around every parallel kernel launch; serialises unsafe layers."""
    global _parallel_has_run
    if _parallel_has_run and threading_layer() in _THREADSAFE_LAYERS:
        yield
        return
    with _launch_lock:
        yield
        _parallel_has_run = True


def run(serial_kernel, parallel_kernel, work, *args):
    """Run the serial or the parallel build of a kernel, by the call's ``work``."""
    return launch(use_parallel(work), serial_kernel, parallel_kernel, *args)


def launch(parallel, serial_kernel, parallel_kernel, *args):
    """Run the parallel build when ``parallel`` (and this process may), else the serial one."""
    if parallel and not _forked_after_parallel:
        with parallel_launch():
            return parallel_kernel(*args)
    return serial_kernel(*args)


# Calls that interleave Numba packing with BLAS products (the Winograd paths)
# are cut into this many lanes of work, each run on one Python thread with serial
# kernels and products small enough for OpenBLAS to keep on that thread.  Handing
# both cores back and forth between Numba's and OpenBLAS's thread pools once per
# chunk costs more than it gains (resnet3x3 float32 forward: 11.1 ms with both
# pools, 11.7 ms on one thread, 7.4 ms in two lanes).  A fixed number, so that how
# the work is cut never depends on the thread count.
LANES = 2


def run_lanes(function, lanes=LANES):
    """``[function(0), ..., function(lanes - 1)]``, the lanes run on up to
    ``get_num_threads()`` Python threads (one in a child forked after a parallel run).

    A thread stops at the first exception one of its lanes raises; that
    exception is raised here once every thread has ended.
    """
    threads = 1 if _forked_after_parallel else max(1, min(lanes, numba.get_num_threads()))
    results = [None] * lanes
    errors = []

    def work(first):
        try:
            for lane in range(first, lanes, threads):
                results[lane] = function(lane)
        except BaseException as error:  # re-raised in the calling thread
            errors.append(error)

    helpers = [threading.Thread(target=work, args=(first,)) for first in range(1, threads)]
    for helper in helpers:
        helper.start()
    work(0)
    for helper in helpers:
        helper.join()
    if errors:
        raise errors[0]
    return results


def _check_thread_count(n):
    n = check_positive_int(n, "num_threads")
    limit = numba.config.NUMBA_NUM_THREADS
    if n > limit:
        raise ValueError(
            f"num_threads must be between 1 and NUMBA_NUM_THREADS={limit}; received num_threads={n}"
        )
    return n


def get_num_threads():
    """Threads a parallel kernel launched from this thread will use."""
    return numba.get_num_threads()


def set_num_threads(n):
    """Set the threads parallel kernels launched from this thread use."""
    numba.set_num_threads(_check_thread_count(n))


@contextlib.contextmanager
def num_threads(n):
    """``with numconv.num_threads(n):`` runs its body on ``n`` threads, then restores."""
    n = _check_thread_count(n)
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def cache_folder():
    """Folder Numba caches numconv's kernels in, or None when caching is off.

    Numba tries, in order: ``NUMBA_CACHE_DIR``, ``__pycache__`` next to the
    kernels, then a per-user cache folder; the first writable one wins.
    """
    if not cache_enabled():
        return None
    from numba.core import caching

    from .kernels import jit as any_kernel_module

    locators = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")
    for locator_class in locators._locator_classes:
        locator = locator_class.from_function(
            any_kernel_module.cache_enabled, any_kernel_module.__file__
        )
        if locator is not None:
            return locator.get_cache_path()
    return None


def show_config(file=None):
    """Print versions, threading layer, thread count and cache settings."""
    import numpy

    from . import __version__

    lines = [
        f"numconv:          {__version__}",
        f"numpy:            {numpy.__version__}",
        f"numba:            {numba.__version__}",
        f"python:           {sys.version.split()[0]}",
        f"threading layer:  {threading_layer() or 'not chosen yet (chosen at the first parallel run)'}",
        f"threads:          {get_num_threads()} (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS})",
        f"cache enabled:    {cache_enabled()}",
        f"cache folder:     {cache_folder() or 'none (caching off)'}",
    ]
    print("\n".join(lines), file=file or sys.stdout)
