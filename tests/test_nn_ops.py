"""numconv.ops conv2d, bias_add, pooling and cross-entropies: values against slow references
and closed forms, gradients against finite differences, only needed gradients computed, errors."""

import numpy as np
import pytest

import numconv
from numconv import GradientTape, Variable, constant
from numconv import ops
from numconv.autograd import nn_ops

import reference_pooling
from gradient_check import assert_gradients_close
from reference import conv2d_reference

RNG = np.random.default_rng(8)


def check_gradients(op, *inputs, rtol=1e-6):
    """Analytic gradients of sum(op(*inputs) * w), for a random w, against finite differences."""
    inputs = [np.asarray(x, dtype=np.float64) for x in inputs]
    weights = RNG.standard_normal(np.shape(op(*inputs)))
    variables = [Variable(x) for x in inputs]
    with GradientTape() as tape:
        out = op(*variables)
    grads = tape.gradient(out, variables, output_gradients=weights)
    for grad, x in zip(grads, inputs):
        assert grad is not None and grad.shape == x.shape and grad.dtype == np.float64
    assert_gradients_close(
        lambda *xs: np.asarray(op(*xs)) * weights, inputs, [grad.numpy() for grad in grads],
        rtol=rtol, atol=1e-8,
    )
    return out


# -- conv2d ------------------------------------------------------------------------------
CONV_CASES = [
    dict(),
    dict(strides=2, padding="same"),
    dict(strides=(2, 1), padding="same", data_format="channels_first"),
    dict(dilation_rate=2, padding="same"),
    dict(groups=2, data_format="channels_first"),
    dict(padding=((1, 0), (2, 1)), strides=(1, 2)),
]


@pytest.mark.parametrize("options", CONV_CASES, ids=str)
def test_conv2d_values_and_gradients(options):
    channels = 4 if options.get("groups") else 3
    data_format = options.get("data_format", "channels_last")
    shape = (2, 5, 6, channels) if data_format == "channels_last" else (2, channels, 5, 6)
    x = RNG.standard_normal(shape)
    kernel = RNG.standard_normal((3, 2, channels // options.get("groups", 1), 4))
    out = check_gradients(lambda a, k: ops.conv2d(a, k, **options), x, kernel)
    expected = conv2d_reference(x, kernel, **options)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_conv2d_with_extended_batch_dims():
    x = RNG.standard_normal((2, 1, 4, 4, 2))
    kernel = RNG.standard_normal((2, 2, 2, 3))
    out = check_gradients(lambda a, k: ops.conv2d(a, k, padding="same"), x, kernel)
    assert out.shape == (2, 1, 4, 4, 3)


@pytest.fixture
def conv_spies(monkeypatch):
    """Record the needs each recorded backward is asked for and the wrt conv2d_grads receives."""
    seen = {"needs": [], "wrt": []}
    real_grads, real_record = numconv.nn.conv2d_grads, nn_ops.record

    def spying_grads(*args, **kwargs):
        seen["wrt"].append(kwargs["wrt"])
        return real_grads(*args, **kwargs)

    def spying_record(value, inputs, backward):
        def logged_backward(grad, needs):
            seen["needs"].append(needs)
            return backward(grad, needs)

        return real_record(value, inputs, logged_backward)

    monkeypatch.setattr(numconv.nn, "conv2d_grads", spying_grads)
    monkeypatch.setattr(nn_ops, "record", spying_record)
    return seen


def test_conv2d_backward_computes_only_needed_gradients(conv_spies):
    x = constant(RNG.standard_normal((1, 4, 4, 2)))
    kernel = Variable(RNG.standard_normal((3, 3, 2, 2)))
    with GradientTape() as tape:
        y = ops.conv2d(x, kernel)
    grad_x, grad_kernel = tape.gradient(y, [x, kernel])
    assert grad_x is None and grad_kernel.shape == (3, 3, 2, 2)
    assert conv_spies["needs"] == [(False, True)]
    assert conv_spies["wrt"] == [("kernel",)]


def test_conv2d_backward_for_a_watched_input(conv_spies):
    x = constant(RNG.standard_normal((1, 4, 4, 2)))
    kernel = Variable(RNG.standard_normal((3, 3, 2, 2)), trainable=False)
    with GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = ops.conv2d(x, kernel)
    assert tape.gradient(y, x).shape == x.shape
    assert tape.gradient(y, kernel) is None
    assert conv_spies["needs"] == [(True, False)]
    assert conv_spies["wrt"] == [("input",)]


def test_conv2d_keeps_float32():
    x = Variable(RNG.standard_normal((1, 4, 4, 2)).astype(np.float32))
    kernel = Variable(RNG.standard_normal((2, 2, 2, 3)).astype(np.float32))
    with GradientTape() as tape:
        y = ops.conv2d(x, kernel)
    assert y.dtype == np.float32
    assert all(g.dtype == np.float32 for g in tape.gradient(y, [x, kernel]))


# -- bias_add -----------------------------------------------------------------------------
@pytest.mark.parametrize("shape, data_format, axis", [
    ((3, 4), "channels_last", -1),
    ((2, 3, 4, 5), "channels_last", -1),
    ((2, 2, 3, 4, 5), "channels_last", -1),
    ((2, 5, 3, 4), "channels_first", -3),
    ((2, 2, 5, 3, 4), "channels_first", -3),
    ((5, 3, 4), "channels_first", -3),
], ids=str)
def test_bias_add(shape, data_format, axis):
    x = RNG.standard_normal(shape)
    bias = RNG.standard_normal(shape[axis])
    out = check_gradients(lambda a, b: ops.bias_add(a, b, data_format=data_format), x, bias)
    expected = np.moveaxis(np.moveaxis(x, axis, -1) + bias, -1, axis)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-15)


@pytest.mark.parametrize("call, error, match", [
    (lambda: ops.bias_add(np.ones((2, 3)), np.ones(4)), ValueError,
     r"shape \(3,\).*bias.shape=\(4,\)"),
    (lambda: ops.bias_add(np.ones((2, 3)), np.ones((1, 3))), ValueError, r"bias.shape=\(1, 3\)"),
    (lambda: ops.bias_add(np.ones((2, 3)), np.ones(2), data_format="channels_first"), ValueError,
     r"x.shape=\(2, 3\)"),
    (lambda: ops.bias_add(np.ones((2, 3)), np.ones(3), data_format="NCHW"), ValueError,
     "data_format='NCHW'"),
    (lambda: ops.bias_add(1.0, np.ones(1)), ValueError, r"x.shape=\(\)"),
])
def test_bias_add_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- pooling ops ---------------------------------------------------------------------------
POOL_CASES = [
    dict(pool_size=2),
    dict(pool_size=3, strides=2, padding="same"),
    dict(pool_size=(2, 3), strides=1, padding="same", data_format="channels_first"),
    dict(pool_size=(3, 1), strides=(1, 2)),
]


@pytest.mark.parametrize("options", POOL_CASES, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_values_and_gradients(kind, options):
    op = ops.max_pool2d if kind == "max" else ops.avg_pool2d
    reference = reference_pooling.max_pool if kind == "max" else reference_pooling.avg_pool
    channels_first = options.get("data_format") == "channels_first"
    x = RNG.standard_normal((2, 3, 5, 6) if channels_first else (2, 5, 6, 3))
    out = check_gradients(lambda a: op(a, **options), x)
    pool = options["pool_size"]
    pool = pool if isinstance(pool, tuple) else (pool, pool)
    strides = options.get("strides", pool)
    strides = strides if isinstance(strides, tuple) else (strides, strides)
    x_last = np.moveaxis(x, 1, -1) if channels_first else x
    expected = reference(x_last, pool, strides, options.get("padding", "valid"))
    if channels_first:
        expected = np.moveaxis(expected, -1, 1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-14)


def test_pooling_errors_pass_through():
    with pytest.raises(ValueError, match=r"x.shape=\(4, 4, 1\)"):
        ops.max_pool2d(np.ones((4, 4, 1)), 2)
    with pytest.raises(ValueError, match="padding='full'"):
        ops.avg_pool2d(np.ones((1, 4, 4, 1)), 2, padding="full")


# -- cross-entropies -------------------------------------------------------------------------
def softmax_cross_entropy_reference(labels, logits, axis):
    exponentials = np.exp(logits - logits.max(axis=axis, keepdims=True))
    probabilities = exponentials / exponentials.sum(axis=axis, keepdims=True)
    return -(labels * np.log(probabilities)).sum(axis=axis)


@pytest.mark.parametrize(
    "shape, axis", [((4, 5), -1), ((4, 5), 0), ((2, 3, 4), 1), ((6,), 0)], ids=str
)
def test_softmax_cross_entropy_values_and_gradients(shape, axis):
    logits = 3 * RNG.standard_normal(shape)
    labels = RNG.random(shape)  # not normalised: the gradient must still be exact
    out = check_gradients(
        lambda y, z: ops.softmax_cross_entropy_with_logits(y, z, axis=axis), labels, logits,
    )
    expected = softmax_cross_entropy_reference(labels, logits, axis)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [1000.0, 0.0, -1000.0]])
    labels = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    loss = ops.softmax_cross_entropy_with_logits(labels, logits).numpy()
    np.testing.assert_allclose(loss, [0.0, 1000.0], atol=1e-12)
    z = Variable(logits.astype(np.float32))
    with GradientTape() as tape:
        loss = ops.softmax_cross_entropy_with_logits(labels, z)
    grad = tape.gradient(loss, z).numpy()
    assert loss.dtype == np.float32 and grad.dtype == np.float32
    # softmax - labels, in closed form.
    np.testing.assert_allclose(grad, [[0, 0, 0], [1, -1, 0]], atol=1e-6)


def test_sparse_softmax_cross_entropy_values_and_gradients():
    logits = 2 * RNG.standard_normal((2, 3, 4))
    labels = RNG.integers(0, 4, size=(2, 3))
    out = check_gradients(lambda z: ops.sparse_softmax_cross_entropy_with_logits(labels, z), logits)
    one_hot = np.eye(4)[labels]
    expected = softmax_cross_entropy_reference(one_hot, logits, -1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)


def test_sparse_labels_get_no_gradient_and_may_be_whole_floats():
    labels = Variable([2.0, 0.0])
    logits = Variable(np.array([[0.0, 1000.0, -5.0], [3.0, 3.0, 3.0]], dtype=np.float32))
    with GradientTape() as tape:
        loss = ops.sparse_softmax_cross_entropy_with_logits(labels, logits)
    grad_labels, grad_logits = tape.gradient(loss, [labels, logits])
    assert grad_labels is None
    assert loss.dtype == np.float32 and grad_logits.dtype == np.float32
    np.testing.assert_allclose(loss.numpy(), [1005.0, np.log(3.0)], rtol=1e-6)
    np.testing.assert_allclose(grad_logits.numpy(), [[0, 1, -1], [-2 / 3, 1 / 3, 1 / 3]], atol=1e-6)


def test_half_precision_logits():
    logits = RNG.standard_normal((3, 5)).astype(np.float16)
    labels = np.array([0, 4, 2])
    loss = ops.sparse_softmax_cross_entropy_with_logits(labels, logits)
    assert loss.dtype == np.float16
    expected = softmax_cross_entropy_reference(np.eye(5)[labels], logits.astype(np.float64), -1)
    np.testing.assert_allclose(loss.numpy().astype(np.float64), expected, rtol=2e-3)


sparse_ce = ops.sparse_softmax_cross_entropy_with_logits
dense_ce = ops.softmax_cross_entropy_with_logits


@pytest.mark.parametrize("call, error, match", [
    (lambda: sparse_ce(np.array([0, 3]), np.zeros((2, 3))), ValueError,
     r"labels.*\[0, 3\).*labels containing 3"),
    (lambda: sparse_ce(np.array([-1, 0]), np.zeros((2, 3))), ValueError,
     "labels containing -1"),
    (lambda: sparse_ce(np.array([0.5, 1.0]), np.zeros((2, 3))), ValueError,
     "labels containing 0.5"),
    (lambda: sparse_ce(np.array([0, 1, 2]), np.zeros((2, 3))), ValueError,
     r"labels.shape=\(3,\), logits.shape=\(2, 3\)"),
    (lambda: sparse_ce(np.array(["a", "b"]), np.zeros((2, 3))), TypeError,
     "labels.*dtype <U1"),
    (lambda: sparse_ce(np.array([0, 1]), np.zeros((2, 3), int)), TypeError,
     "logits of dtype int64"),
    (lambda: ops.softmax_cross_entropy_with_logits(np.ones((2, 3)), np.zeros((2, 4))), ValueError,
     r"labels.shape=\(2, 3\), logits.shape=\(2, 4\)"),
    (lambda: dense_ce(np.ones((2, 3)), np.zeros((2, 3)), axis=2), ValueError,
     "axis=2"),
    (lambda: ops.softmax_cross_entropy_with_logits(1.0, 1.0), ValueError, r"logits.shape=\(\)"),
    (lambda: ops.softmax_cross_entropy_with_logits(np.full(2, "x"), np.zeros(2)), TypeError,
     "labels.*dtype <U1"),
])
def test_cross_entropy_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
