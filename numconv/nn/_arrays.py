"""Turning array arguments into ndarrays the kernels accept, with errors naming the argument."""

import numpy as np


def describe(value):
    """A short repr for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def real_array(value, name, floats_only=False):
    """``np.asarray(value)`` for real numeric data; TypeError naming ``name`` otherwise.

    Accepts float16/32/64 and, unless ``floats_only``, integer and bool arrays.
    """
    if value is None:
        raise TypeError(f"{name} must be an array of real numbers; received {name}=None")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged nests, objects refusing conversion
        raise TypeError(
            f"{name} must be an array of real numbers; received {name}={describe(value)}"
        ) from error
    kind, size = array.dtype.kind, array.dtype.itemsize
    if (kind == "f" and size in (2, 4, 8)) or (kind in "biu" and not floats_only):
        return array
    accepted = (
        "float16, float32 or float64"
        if floats_only
        else "float16, float32, float64, integer or bool"
    )
    shown = f" ({name}={describe(value)})" if array.size <= 4 else ""
    raise TypeError(
        f"{name} must be an array of real numbers ({accepted}); "
        f"received {name} with dtype {array.dtype}{shown}"
    )


def _natural_dtype(array):
    """The dtype an array takes part in promotion with: integers and bools count as float32."""
    return np.dtype(np.float32) if array.dtype.kind in "biu" else array.dtype


def result_and_compute_dtypes(*arrays):
    """(result dtype, compute dtype) by NumPy promotion; float16 is computed in float32."""
    result = np.result_type(*(_natural_dtype(array) for array in arrays))
    compute = np.dtype(np.float32) if result == np.float16 else result
    return result, compute


def canonical(array, dtype):
    """C-contiguous, aligned, writable (one Numba type per dtype) copy or view in ``dtype``."""
    return np.require(array, dtype=dtype, requirements=("C", "A", "W"))
