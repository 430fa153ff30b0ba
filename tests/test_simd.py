"""numconv.kernels.simd: vector values in @njit code and their pure-Python twins.

Compared with NumPy element by element, and ``fma`` with exact rational
arithmetic (it must round once, where ``a * b + c`` rounds twice).
"""

from fractions import Fraction

import numpy as np
import pytest
from numba import njit

from numconv.kernels import simd


@njit
def _exercise(a, b, c, out, index):
    """out[:L] = fma(a, b, c); out[L:2L] = a + splat(c[index]); out[2L:3L] = broadcast."""
    lanes = simd.lanes(a)
    va, vb, vc = simd.load(a, 0), simd.load(b, 0), simd.load(c, 0)
    simd.store(out, 0, simd.fma(va, vb, vc))
    simd.store(out, lanes, simd.add(va, simd.splat(a, c[index])))
    simd.store(out, 2 * lanes, simd.broadcast(b, index))
    return lanes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("compiled", [True, False])
def test_vector_operations_match_numpy(dtype, compiled):
    lanes = simd.VECTOR_BITS // (8 * np.dtype(dtype).itemsize)
    rng = np.random.default_rng(3)
    a, b, c = (rng.standard_normal(lanes + 3).astype(dtype) for _ in range(3))
    out = np.full(3 * lanes + 2, -7.0, dtype=dtype)
    function = _exercise if compiled else _exercise.py_func
    assert function(a, b, c, out, 2) == lanes
    wide = np.longdouble
    expected_fma = (a[:lanes].astype(wide) * b[:lanes] + c[:lanes]).astype(dtype)
    np.testing.assert_array_equal(out[:lanes], expected_fma)
    np.testing.assert_array_equal(out[lanes:2 * lanes], a[:lanes] + c[2])
    np.testing.assert_array_equal(out[2 * lanes:3 * lanes], np.full(lanes, b[2]))
    np.testing.assert_array_equal(out[3 * lanes:], [-7.0, -7.0])  # nothing past the vectors


@njit
def _fma_lane0(a, b, c):
    out = np.empty(simd.lanes(a), dtype=a.dtype)
    simd.store(out, 0, simd.fma(simd.splat(a, a[0]), simd.splat(a, b), simd.splat(a, c)))
    return out[0]


def test_fma_rounds_once():
    a, b, c = 1.0 + 2.0**-30, 1.0 - 2.0**-30, -1.0
    exact = Fraction(a) * Fraction(b) + Fraction(c)  # -2**-60
    assert a * b + c == 0.0  # two roundings lose it
    assert Fraction(_fma_lane0(np.array([a]), b, c)) == exact


@njit
def _two_d(array, index):
    simd.store(array, index, simd.add(simd.load(array, index), simd.splat(array, 1.0)))


def test_load_and_store_count_elements_in_c_order_of_a_2d_array():
    lanes = simd.VECTOR_BITS // 64
    array = np.zeros((3, lanes + 1))
    _two_d(array, lanes)  # from the last element of row 0 into row 1
    expected = np.zeros(3 * (lanes + 1))
    expected[lanes:2 * lanes] = 1.0
    np.testing.assert_array_equal(array.reshape(-1), expected)


@njit
def _spread_all(values, out):
    vector = simd.load(values, 0)
    lanes = simd.lanes(values)
    simd.store(out, 0, simd.spread(vector, 4, 0))
    simd.store(out, lanes, simd.spread(vector, 4, 3))
    simd.store(out, 2 * lanes, simd.spread(vector, 2, 1))


@pytest.mark.parametrize("compiled", [True, False])
def test_spread_fills_each_group_with_one_of_its_lanes(compiled):
    lanes = simd.VECTOR_BITS // 32
    values = np.arange(lanes, dtype=np.float32)
    out = np.empty(3 * lanes, dtype=np.float32)
    (_spread_all if compiled else _spread_all.py_func)(values, out)
    first_of_four = [4 * (j // 4) for j in range(lanes)]
    last_of_four = [4 * (j // 4) + 3 for j in range(lanes)]
    second_of_two = [2 * (j // 2) + 1 for j in range(lanes)]
    np.testing.assert_array_equal(out, first_of_four + last_of_four + second_of_two)
