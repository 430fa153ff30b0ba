"""Numba kernels: plain loops over NumPy arrays, no Python objects.

Every public kernel here is a Numba dispatcher that a user may call from their
own ``@njit`` function.  Kernels do no validation: they trust the shapes,
dtypes and layouts prepared by :mod:`numconv.nn`.
"""
