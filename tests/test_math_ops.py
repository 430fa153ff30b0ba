"""numconv.ops elementwise, reduction, shape and indexing ops: values against NumPy,
gradients against finite differences (tests/gradient_check.py), TF's edge rules, dtypes, errors."""

import numpy as np
import pytest

import numconv
from numconv import GradientTape, Tensor, Variable, constant
from numconv import ops

from gradient_check import assert_gradients_close

RNG = np.random.default_rng(20240601)


def away_from_zero(shape, low=0.2, high=2.0):
    return RNG.uniform(low, high, size=shape) * RNG.choice([-1.0, 1.0], size=shape)


def positive(shape):
    return RNG.uniform(0.3, 2.0, size=shape)


def normal_pair(shape_x, shape_y):
    return RNG.standard_normal(shape_x), RNG.standard_normal(shape_y)


def distinct_pair(shape_x, shape_y):
    """Two arrays whose broadcast elements differ by more than the finite-difference step."""
    x = RNG.standard_normal(shape_x)
    y = RNG.standard_normal(shape_y)
    gap = np.abs(np.broadcast_to(x, np.broadcast_shapes(x.shape, y.shape)) - y)
    while gap.min() < 1e-3:
        y = RNG.standard_normal(shape_y)
        gap = np.abs(np.broadcast_to(x, np.broadcast_shapes(x.shape, y.shape)) - y)
    return x, y


def tape_gradients(op, inputs, output_weights):
    variables = [Variable(x) for x in inputs]
    with GradientTape() as tape:
        out = op(*variables)
    return out, tape.gradient(out, variables, output_gradients=output_weights)


def check_gradients(op, *inputs):
    """Analytic gradients of sum(op(*inputs) * w), for a random w, against finite differences."""
    inputs = [np.asarray(x, dtype=np.float64) for x in inputs]
    weights = RNG.standard_normal(np.shape(op(*inputs)))
    out, grads = tape_gradients(op, inputs, weights)
    assert all(grad is not None for grad in grads)
    for grad, x in zip(grads, inputs):
        assert grad.shape == x.shape and grad.dtype == np.float64
    assert_gradients_close(
        lambda *xs: np.asarray(op(*xs)) * weights, inputs, [grad.numpy() for grad in grads],
        rtol=1e-6, atol=1e-8,
    )
    return out


# -- elementwise ops: values and gradients ---------------------------------------------------
BINARY_CASES = [
    ("add", ops.add, np.add, normal_pair),
    ("subtract", ops.subtract, np.subtract, normal_pair),
    ("multiply", ops.multiply, np.multiply, normal_pair),
    ("divide", ops.divide, np.divide, lambda sx, sy: (RNG.standard_normal(sx), away_from_zero(sy))),
    ("power", ops.power, np.power, lambda sx, sy: (positive(sx), RNG.standard_normal(sy))),
    ("maximum", ops.maximum, np.maximum, distinct_pair),
    ("minimum", ops.minimum, np.minimum, distinct_pair),
]
BROADCAST_SHAPES = [
    ((2, 3), (2, 3)), ((2, 3), (3,)), ((4, 1, 3), (2, 1)), ((), (2, 2)), ((3, 1), ()),
]


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize(
    "name, op, reference, make", BINARY_CASES, ids=[case[0] for case in BINARY_CASES]
)
def test_binary_ops(name, op, reference, make, shapes):
    x, y = make(*shapes)
    out = check_gradients(op, x, y)
    np.testing.assert_allclose(out.numpy(), reference(x, y), rtol=1e-15)


UNARY_CASES = [
    ("negative", ops.negative, np.negative, RNG.standard_normal),
    ("square", ops.square, np.square, RNG.standard_normal),
    ("sqrt", ops.sqrt, np.sqrt, positive),
    ("exp", ops.exp, np.exp, RNG.standard_normal),
    ("log", ops.log, np.log, positive),
    ("abs", ops.abs, np.abs, away_from_zero),
    ("identity", ops.identity, lambda x: x, RNG.standard_normal),
]


@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 2)], ids=str)
@pytest.mark.parametrize(
    "name, op, reference, make", UNARY_CASES, ids=[case[0] for case in UNARY_CASES]
)
def test_unary_ops(name, op, reference, make, shape):
    x = make(shape)
    out = check_gradients(op, x)
    np.testing.assert_allclose(out.numpy(), reference(x), rtol=1e-15)


def test_where():
    condition = RNG.random((3, 4)) > 0.5
    x, y = RNG.standard_normal((3, 4)), RNG.standard_normal((4,))
    out = check_gradients(lambda a, b: ops.where(condition, a, b), x, y)
    np.testing.assert_array_equal(out.numpy(), np.where(condition, x, y))
    # The condition gets no gradient even when it is a watched tensor.
    mask = constant(condition)
    with GradientTape() as tape:
        tape.watch(mask)
        z = ops.where(mask, Variable(x), 0.0)
    assert tape.gradient(z, mask) is None


def test_clip_with_tensor_bounds():
    x = RNG.uniform(-3, 3, size=(3, 4))
    low, high = np.full((4,), -1.0), np.full((3, 1), 1.0)
    # Keep x off the bounds so finite differences see a smooth function.
    x[np.abs(np.abs(x) - 1.0) < 1e-2] = 0.5
    out = check_gradients(ops.clip, x, low, high)
    np.testing.assert_array_equal(out.numpy(), np.clip(x, -1.0, 1.0))


def test_clip_gradient_goes_to_the_bound_that_wins():
    x, low, high = Variable([-2.0, 0.0, 2.0, -1.0, 1.0]), Variable(-1.0), Variable(1.0)
    with GradientTape() as tape:
        y = ops.clip(x, low, high)
    grad_x, grad_low, grad_high = tape.gradient(y, [x, low, high])
    # As TF: values on a bound count as inside, so x gets their gradient.
    np.testing.assert_array_equal(grad_x.numpy(), [0.0, 1.0, 0.0, 1.0, 1.0])
    assert float(grad_low) == 1.0 and float(grad_high) == 1.0


@pytest.mark.parametrize("shape_x, shape_y", [
    ((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,)),
    ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 4, 2)),
], ids=str)
def test_matmul(shape_x, shape_y):
    x, y = RNG.standard_normal(shape_x), RNG.standard_normal(shape_y)
    out = check_gradients(ops.matmul, x, y)
    np.testing.assert_allclose(out.numpy(), x @ y, rtol=1e-14)


# -- shape ops ------------------------------------------------------------------------
def test_reshape_and_transpose():
    x = RNG.standard_normal((2, 3, 4))
    assert check_gradients(lambda a: ops.reshape(a, (4, -1)), x).shape == (4, 6)
    out = check_gradients(lambda a: ops.transpose(a, (1, 2, 0)), x)
    np.testing.assert_array_equal(out.numpy(), np.transpose(x, (1, 2, 0)))
    out = check_gradients(lambda a: ops.transpose(a, [-1, 0, 1]), x)
    np.testing.assert_array_equal(out.numpy(), np.transpose(x, (2, 0, 1)))
    np.testing.assert_array_equal(check_gradients(ops.transpose, x).numpy(), x.T)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis):
    shapes = [(2, 3), (2, 3), (2, 3)]
    shapes = [
        tuple(size + i if d == axis % 2 else size for d, size in enumerate(shape))
        for i, shape in enumerate(shapes)
    ]
    values = [RNG.standard_normal(shape) for shape in shapes]
    out = check_gradients(lambda *xs: ops.concat(list(xs), axis), *values)
    np.testing.assert_array_equal(out.numpy(), np.concatenate(values, axis=axis))


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(axis):
    values = [RNG.standard_normal((2, 3)) for _ in range(3)]
    out = check_gradients(lambda *xs: ops.stack(xs, axis=axis), *values)
    np.testing.assert_array_equal(out.numpy(), np.stack(values, axis=axis))


# -- reductions ------------------------------------------------------------------------
REDUCTIONS = [
    ("sum", ops.reduce_sum, np.sum),
    ("mean", ops.reduce_mean, np.mean),
    ("max", ops.reduce_max, np.max),
]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), [2, 1], ()], ids=str)
@pytest.mark.parametrize("name, op, reference", REDUCTIONS, ids=[case[0] for case in REDUCTIONS])
def test_reductions(name, op, reference, axis, keepdims):
    x = RNG.standard_normal((2, 3, 4))  # distinct values: max has no ties
    out = check_gradients(lambda a: op(a, axis=axis, keepdims=keepdims), x)
    expected = reference(x, axis=tuple(axis) if isinstance(axis, list) else axis, keepdims=keepdims)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-14)


def test_reduce_max_splits_the_gradient_equally_among_ties():
    x = Variable([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    with GradientTape() as tape:
        y = ops.reduce_max(x, axis=1)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


def test_reductions_keep_dtypes():
    assert ops.reduce_sum(np.ones(4, dtype=np.int32)).dtype == np.int32
    assert ops.reduce_sum(np.ones(3, dtype=np.float32)).dtype == np.float32
    half = np.full(5000, 0.1, dtype=np.float16)
    assert ops.reduce_sum(half).dtype == np.float16
    # Accumulated in float32: a float16 running sum would get stuck near 256.
    assert float(ops.reduce_sum(half)) == pytest.approx(500, rel=1e-3)
    assert ops.reduce_mean(half).dtype == np.float16
    assert float(ops.reduce_mean(half)) == pytest.approx(0.1, rel=1e-3)
    assert ops.reduce_mean(np.arange(4)).dtype == np.float64


# -- cast, getitem ------------------------------------------------------------------------
def test_cast():
    x = RNG.standard_normal((2, 3))
    check_gradients(lambda a: ops.cast(a, np.float64), x)
    variable = Variable(x)
    with GradientTape() as tape:
        y = ops.cast(variable, "float32")
    assert y.dtype == np.float32
    grad = tape.gradient(y, variable)
    assert grad.dtype == np.float64
    np.testing.assert_array_equal(grad.numpy(), np.ones((2, 3)))
    # As TF: no gradient through a cast to or from an integer dtype.
    with GradientTape() as tape:
        y = ops.cast(ops.cast(variable, "int32"), "float64")
    assert tape.gradient(y, variable) is None


@pytest.mark.parametrize("index", [
    1, -1, (1, 2), slice(None, None, -1), (Ellipsis, 1), (None, slice(1, 3)),
    (slice(None), None, 0),
    [0, 0, 2], ([1, 0, 1], [2, 2, 2]), (Ellipsis, [3, 0, 3]), np.array([True, False, True]),
], ids=repr)
def test_getitem(index):
    x = RNG.standard_normal((3, 4))
    out = check_gradients(lambda a: ops.getitem(a, index), x)
    np.testing.assert_array_equal(out.numpy(), x[index])


def test_getitem_accumulates_repeated_elements_and_accepts_tensor_indices():
    x = Variable([1.0, 2.0, 3.0])
    with GradientTape() as tape:
        y = x[constant([0, 0, 2, 0])]
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [3.0, 0.0, 1.0])
    mask = constant([True, False, True])
    np.testing.assert_array_equal(x[mask].numpy(), [1.0, 3.0])


# -- TF's edge gradients ---------------------------------------------------------------------
def gradients_of(op, *values):
    variables = [Variable(np.asarray(v, dtype=np.float64)) for v in values]
    with GradientTape() as tape:
        y = op(*variables)
    return [None if g is None else g.numpy() for g in tape.gradient(y, variables)]


def test_maximum_and_minimum_ties_go_to_x():
    grad_x, grad_y = gradients_of(ops.maximum, [1.0, 2.0, 3.0], [1.0, 5.0, 0.0])
    np.testing.assert_array_equal(grad_x, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(grad_y, [0.0, 1.0, 0.0])
    grad_x, grad_y = gradients_of(ops.minimum, [1.0, 2.0, 3.0], [1.0, 5.0, 0.0])
    np.testing.assert_array_equal(grad_x, [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(grad_y, [0.0, 0.0, 1.0])


def test_abs_gradient_at_zero_is_zero():
    np.testing.assert_array_equal(gradients_of(ops.abs, [-2.0, 0.0, 3.0])[0], [-1.0, 0.0, 1.0])


def test_power_edge_gradients_are_finite():
    with np.errstate(all="raise"):
        grad_x, grad_y = gradients_of(ops.power, [0.0, 0.0, -2.0, 2.0], [0.0, 2.0, 2.0, 3.0])
    np.testing.assert_array_equal(grad_x, [0.0, 0.0, -4.0, 12.0])
    np.testing.assert_allclose(grad_y, [0.0, 0.0, 0.0, 8.0 * np.log(2.0)])


# -- Tensor operators ---------------------------------------------------------------------
def test_tensor_operators_are_the_differentiable_ops():
    a_values, b_values = RNG.standard_normal((2, 3)), away_from_zero((3,))
    a, b = Variable(a_values), Variable(b_values)
    with GradientTape() as tape:
        y = (
            (a + b) * (a - b) / b - (-a) ** 2 + abs(b) + 2.0 * a - 1.0 / b + 2.0 ** b - 3.0 + a[0]
        ) @ b
        z = a.reshape(3, 2).T.transpose() + a.reshape((3, 2))
    grads = tape.gradient([y, z], [a, b])
    # d/da of sum(y) + sum(z), by hand; d/db checked by finite differences below.
    assert grads[0] is not None and grads[1] is not None

    def f(av, bv):
        y = (
            (av + bv) * (av - bv) / bv - av ** 2 + np.abs(bv) + 2 * av - 1 / bv + 2 ** bv - 3
            + av[0]
        ) @ bv
        return np.sum(y) + np.sum(av.reshape(3, 2).T.T + av.reshape(3, 2))

    assert_gradients_close(f, [a_values, b_values], [g.numpy() for g in grads])


def test_numpy_arrays_on_the_left_give_tensors():
    t = constant([1.0, 2.0])
    left = np.ones(2)
    for result in (left + t, left - t, left * t, left / t, np.ones((2, 2)) @ t):
        assert isinstance(result, Tensor)
    comparison = t > 1.5
    assert isinstance(comparison, Tensor) and comparison.dtype == bool


# -- dtypes: Python scalars are weak (NumPy 2) ---------------------------------------------
@pytest.mark.parametrize("function", [
    lambda t: t + 2.0, lambda t: 2.0 + t, lambda t: t - 1, lambda t: 3.0 - t, lambda t: t * 0.5,
    lambda t: 0.5 * t, lambda t: t / 3.0, lambda t: 3.0 / t, lambda t: t ** 2.0, lambda t: 2.0 ** t,
    lambda t: ops.maximum(t, 0.0), lambda t: ops.minimum(1.0, t),
    lambda t: ops.where(t > 0, t, 0.0),
    lambda t: ops.clip(t, 0.0, 1.0), lambda t: ops.power(t, 3), lambda t: ops.stack([t[0], 1.0]),
])
def test_python_scalars_do_not_upcast_float32(function):
    x = Variable(np.array([0.5, 1.5], dtype=np.float32))
    with GradientTape() as tape:
        y = function(x)
    assert y.dtype == np.float32
    assert tape.gradient(y, x).dtype == np.float32


def test_numpy_promotion_rules_otherwise():
    x = constant(np.array([1.0], dtype=np.float32))
    assert (x + np.float64(1.0)).dtype == np.float64  # NumPy scalars are not weak
    assert (x + np.ones(1)).dtype == np.float64
    assert (constant([1, 2]) * 2.5).dtype == np.float64
    assert (constant(np.array([1], dtype=np.int8)) + 1).dtype == np.int8


# -- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "op", [ops.add, ops.subtract, ops.multiply, ops.divide, ops.power, ops.maximum, ops.minimum]
)
def test_binary_shape_mismatch_names_both_shapes(op):
    with pytest.raises(ValueError, match=r"x.shape=\(2, 3\), y.shape=\(4,\)"):
        op(np.ones((2, 3)), np.ones(4))


@pytest.mark.parametrize("call, error, match", [
    (lambda: ops.where(np.ones(3, bool), np.ones(2), 0.0), ValueError,
     r"condition.shape=\(3,\), x.shape=\(2,\)"),
    (lambda: ops.clip(np.ones(2), np.zeros((3, 2)), 1.0), ValueError,
     r"clip_value_min.shape=\(3, 2\)"),
    (lambda: ops.matmul(np.ones((2, 3)), np.ones((2, 3))), ValueError,
     r"x.shape=\(2, 3\), y.shape=\(2, 3\)"),
    (lambda: ops.matmul(np.ones((2, 2, 3)), np.ones((3, 3, 2))), ValueError,
     r"x.shape=\(2, 2, 3\)"),
    (lambda: ops.matmul(2.0, np.ones(2)), ValueError, r"x.shape=\(\)"),
    (lambda: ops.reshape(np.ones(6), (4, -1)), ValueError, r"shape \(6,\).*shape=\(4, -1\)"),
    (lambda: ops.reshape(np.ones(6), "6"), ValueError, r"shape='6'"),
    (lambda: ops.transpose(np.ones((2, 3)), (0, 0)), ValueError, r"perm=\(0, 0\)"),
    (lambda: ops.transpose(np.ones((2, 3)), (0, 1, 2)), ValueError, r"perm=\(0, 1, 2\)"),
    (lambda: ops.transpose(np.ones((2, 3)), "ab"), TypeError, r"perm='ab'"),
    (lambda: ops.concat([np.ones((2, 3)), np.ones((3, 2))], 0), ValueError,
     r"\[\(2, 3\), \(3, 2\)\]"),
    (lambda: ops.concat([np.ones(2), np.ones(2)], 1), ValueError, "axis=1"),
    (lambda: ops.concat([], 0), TypeError, r"values=\[\]"),
    (lambda: ops.concat(np.ones(2), 0), TypeError, "values=array"),
    (lambda: ops.concat([1.0, 2.0], 0), ValueError, r"shapes \[\(\), \(\)\]"),
    (lambda: ops.stack([np.ones(2), np.ones(3)]), ValueError, r"\[\(2,\), \(3,\)\]"),
    (lambda: ops.stack([np.ones(2)], axis=3), ValueError, "axis=3"),
    (lambda: ops.reduce_sum(np.ones((2, 3)), axis=2), ValueError, "axis=2"),
    (lambda: ops.reduce_mean(np.ones((2, 3)), axis=(0, -2)), ValueError, r"axis=\(0, -2\)"),
    (lambda: ops.reduce_max(np.ones((2, 3)), axis=1.0), TypeError, "axis=1.0"),
    (lambda: ops.reduce_max(np.ones((0, 3)), axis=0), ValueError, r"x.shape=\(0, 3\), axis=0"),
    (lambda: ops.cast(np.ones(2), "float99"), TypeError, "dtype='float99'"),
    (lambda: ops.cast(np.ones(2), str), TypeError, "dtype=<class 'str'>"),
    (lambda: ops.add("a", 1.0), TypeError, "x='a'"),
    (lambda: ops.multiply(1.0, None), TypeError, "y=None"),
    (lambda: ops.exp(np.array(["a"])), TypeError, "dtype <U1"),
])
def test_bad_arguments_are_refused_with_their_value(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_out_of_range_index_is_an_index_and_a_value_error():
    x = constant(np.ones((2, 3)))
    with pytest.raises(IndexError, match=r"index=\(0, 5\).*shape \(2, 3\)"):
        x[0, 5]
    with pytest.raises(ValueError, match=r"index=\[7\]"):
        ops.getitem(x, [7])
    with pytest.raises(ops.InvalidIndexError, match="index=1.5"):
        x[1.5]


def test_ops_are_exported_by_numconv_ops():
    from numconv.autograd import math_ops

    for name in ops.__all__:
        assert callable(getattr(ops, name)), name
    assert ops.add is math_ops.add
    assert ops.stop_gradient is numconv.stop_gradient
