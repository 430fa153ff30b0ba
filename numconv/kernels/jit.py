"""The one place that decides how numconv's kernels are compiled.

Every kernel is ``@njit`` (nopython) with:

* ``cache=True`` unless ``NUMCONV_CACHE`` is 0/false/no/off, or no folder can
  hold the cache (a read-only install with a read-only home): then caching is
  switched off with a single warning instead of failing at import;
* ``nogil=True`` so that Python threads calling kernels run concurrently;
* ``fastmath`` restricted to flags that keep NaN/Inf propagation and a fixed
  reduction order (no ``nnan``/``ninf``/``reassoc``).

This module imports nothing of numconv, so kernels stay usable from a user's
own ``@njit`` code.
"""

import os
import warnings

import numba

CACHE_ENV_VAR = "NUMCONV_CACHE"

# "contract" lets LLVM fuse a*b+c into an FMA; "nsz" and "arcp" only touch
# the sign of zero and reciprocals.  Reassociation is left out on purpose: it
# would let LLVM reorder sums, and results must not depend on how a loop was
# vectorised or split across threads.
FASTMATH = frozenset({"contract", "nsz", "arcp"})

_cache_warning_given = False


def cache_enabled():
    """Whether kernels are cached on disk (``NUMCONV_CACHE`` not set to off)."""
    value = os.environ.get(CACHE_ENV_VAR, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def kernel(parallel=False, inline=False):
    """Decorator compiling a numconv kernel with the project's settings.

    ``inline=True`` inlines the function into its callers in Numba's own IR, for
    small helpers called per tile: a call that passes arrays costs about 40
    cycles, more than a loop over a few dozen channels.
    """

    def decorate(function):
        global _cache_warning_given
        options = dict(nogil=True, fastmath=set(FASTMATH), parallel=parallel, error_model="numpy")
        if inline:
            options["inline"] = "always"
        if not cache_enabled():
            return numba.njit(cache=False, **options)(function)
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError as error:  # Numba found no writable cache folder
            if not _cache_warning_given:
                _cache_warning_given = True
                warnings.warn(
                    f"numconv: kernel cache disabled, no writable cache folder ({error}); "
                    "kernels are compiled in every process",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return numba.njit(cache=False, **options)(function)

    return decorate
