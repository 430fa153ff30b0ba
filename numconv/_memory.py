"""Allocation with an up-front size check.

A request larger than the machine's physical memory can never succeed; on
Linux it may even "succeed" lazily and get the process killed later.  So it
fails at once, before anything else is allocated or written, with a
MemoryError stating how many bytes were requested.
"""

import math
import os

import numpy as np


def physical_memory_bytes():
    """Total physical memory, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _human(nbytes):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.1f} {unit}" if unit != "bytes" else f"{nbytes} bytes"
        nbytes /= 1024
    return f"{nbytes} bytes"


def check_request(nbytes, what):
    """Raise MemoryError when ``nbytes`` exceeds the machine's physical memory."""
    limit = physical_memory_bytes()
    if limit is not None and nbytes > limit:
        raise MemoryError(
            f"numconv: {what} needs {nbytes} bytes ({_human(nbytes)}), more than this machine's "
            f"{limit} bytes ({_human(limit)}) of physical memory"
        )


def allocate(shape, dtype, what):
    """``np.empty(shape, dtype)`` that fails early and says how many bytes it asked for."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(int(size) for size in shape) * dtype.itemsize  # Python ints: no overflow
    check_request(nbytes, what)
    try:
        return np.empty(shape, dtype=dtype)
    except MemoryError as error:
        raise MemoryError(
            f"numconv: {what} needs {nbytes} bytes ({_human(nbytes)}) for an array of shape "
            f"{tuple(shape)} and dtype {dtype}, which could not be allocated"
        ) from error
