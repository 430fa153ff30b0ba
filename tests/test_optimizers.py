"""Optimizers: updates against steps computed by hand from Keras 3's formulas."""

import math

import numpy as np
import pytest

from numconv import optimizers
from numconv.autograd.tape import GradientTape
from numconv.autograd.tensor import Tensor, Variable

GRADS = [np.array([0.5, -1.0]), np.array([0.25, 2.0]), np.array([-1.0, 0.0])]
START = np.array([1.0, -2.0])


def run(optimizer, grads=GRADS, start=START):
    variable = Variable(start, dtype=np.float64)
    history = []
    for grad in grads:
        optimizer.apply_gradients([(grad, variable)])
        history.append(variable.numpy())
    return history


def test_sgd_plain():
    history = run(optimizers.SGD(learning_rate=0.1))
    w = START.copy()
    for grad, got in zip(GRADS, history):
        w = w - 0.1 * grad
        np.testing.assert_allclose(got, w, rtol=1e-15)


def test_sgd_momentum_hand_steps():
    history = run(optimizers.SGD(learning_rate=0.1, momentum=0.9))
    # velocity_1 = -0.1 g1; velocity_2 = 0.9 velocity_1 - 0.1 g2
    v1 = np.array([-0.05, 0.1])
    w1 = START + v1
    v2 = 0.9 * v1 - 0.1 * GRADS[1]
    w2 = w1 + v2
    np.testing.assert_allclose(history[0], [0.95, -1.9])
    np.testing.assert_allclose(history[0], w1)
    np.testing.assert_allclose(history[1], w2)


def test_sgd_nesterov_hand_steps():
    history = run(optimizers.SGD(learning_rate=0.1, momentum=0.5, nesterov=True), GRADS[:2])
    v1 = -0.1 * GRADS[0]
    w1 = START + 0.5 * v1 - 0.1 * GRADS[0]
    v2 = 0.5 * v1 - 0.1 * GRADS[1]
    w2 = w1 + 0.5 * v2 - 0.1 * GRADS[1]
    np.testing.assert_allclose(history[0], w1)
    np.testing.assert_allclose(history[1], w2)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_hand_steps(amsgrad):
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    history = run(optimizers.Adam(learning_rate=lr, amsgrad=amsgrad))
    w, m, v, v_max = START.copy(), np.zeros(2), np.zeros(2), np.zeros(2)
    for t, (grad, got) in enumerate(zip(GRADS, history), start=1):
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad**2
        v_max = np.maximum(v_max, v)
        m_hat = m / (1 - b1**t)
        # Keras's epsilon is "epsilon hat": added to sqrt(v) before the bias correction of v.
        denominator = np.sqrt(v_max if amsgrad else v) / math.sqrt(1 - b2**t) + eps / math.sqrt(
            1 - b2**t
        )
        w = w - lr * m_hat / denominator
        np.testing.assert_allclose(got, w, rtol=1e-12)
    # First step of Adam moves each weight by lr * sign(g) (up to epsilon).
    np.testing.assert_allclose(history[0], START - 0.1 * np.sign(GRADS[0]), rtol=1e-6)


def test_amsgrad_differs_once_velocity_shrinks():
    grads = [np.array([10.0, 10.0]), np.array([0.1, 0.1])] + [np.array([0.1, 0.1])] * 3
    plain = run(optimizers.Adam(learning_rate=0.1, beta_2=0.5), grads)[-1]
    ams = run(optimizers.Adam(learning_rate=0.1, beta_2=0.5, amsgrad=True), grads)[-1]
    assert not np.allclose(plain, ams)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop_hand_steps(centered, momentum):
    lr, rho, eps = 0.01, 0.9, 1e-7
    history = run(
        optimizers.RMSprop(learning_rate=lr, rho=rho, momentum=momentum, centered=centered)
    )
    w, ms, mean_grad, buffer = START.copy(), np.zeros(2), np.zeros(2), np.zeros(2)
    for grad, got in zip(GRADS, history):
        ms = rho * ms + (1 - rho) * grad**2
        mean_grad = rho * mean_grad + (1 - rho) * grad
        variance = ms - mean_grad**2 if centered else ms
        step = lr * grad / np.sqrt(variance + eps)
        buffer = momentum * buffer + step
        w = w - buffer
        np.testing.assert_allclose(got, w, rtol=1e-12)


def test_rmsprop_keras_docstring_example():
    # Keras's RMSprop docstring: lr 0.1 on loss var**2 / 2 from 10.0 gives 9.683772.
    variable = Variable(10.0, dtype=np.float32)
    optimizer = optimizers.RMSprop(learning_rate=0.1)
    optimizer.minimize(lambda: (variable * variable) * 0.5, [variable])
    assert float(variable.numpy()) == pytest.approx(9.683772, abs=1e-6)


def test_iterations_and_float32_dtype_kept():
    optimizer = optimizers.Adam()
    variable = Variable(np.ones(3, dtype=np.float32))
    for _ in range(4):
        optimizer.apply_gradients([(Tensor(np.ones(3)), variable)])
    assert optimizer.iterations == 4
    assert variable.dtype == np.float32
    assert len(optimizer.variables) == 2


def test_constraint_applied_after_update():
    seen = []

    def clip_to_unit(value):
        seen.append(value.copy())
        return np.clip(value, -1.0, 1.0)

    variable = Variable(np.array([0.9, -0.5]), constraint=clip_to_unit)
    optimizers.SGD(learning_rate=1.0).apply_gradients([(np.array([-0.5, 0.1]), variable)])
    # The constraint saw the updated value, and its result is what the variable holds.
    np.testing.assert_allclose(seen[0], [1.4, -0.6])
    np.testing.assert_allclose(variable.numpy(), [1.0, -0.6])


def test_frozen_variables_and_none_gradients_skipped():
    frozen = Variable(np.array([1.0, 2.0]), trainable=False)
    untouched = Variable(np.array([3.0]))
    moved = Variable(np.array([4.0]))
    optimizer = optimizers.Adam(learning_rate=0.5)
    optimizer.apply_gradients([(np.ones(2), frozen), (None, untouched), (np.ones(1), moved)])
    np.testing.assert_array_equal(frozen.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(untouched.numpy(), [3.0])
    np.testing.assert_allclose(moved.numpy(), [3.5], rtol=1e-6)
    assert optimizer.iterations == 1


def test_training_reduces_a_quadratic():
    target = np.array([3.0, -1.0])
    for optimizer in (
        optimizers.SGD(0.1, momentum=0.9),
        optimizers.Adam(0.1),
        optimizers.RMSprop(0.05),
    ):
        variable = Variable(np.zeros(2))
        for _ in range(300):
            with GradientTape() as tape:
                diff = variable - Tensor(target)
                loss = diff * diff
            optimizer.apply_gradients(zip([tape.gradient(loss, variable)], [variable]))
        np.testing.assert_allclose(variable.numpy(), target, atol=0.05)


def test_get_config_round_trip():
    for optimizer in (
        optimizers.SGD(0.2, momentum=0.3, nesterov=True),
        optimizers.Adam(0.01, beta_1=0.8, amsgrad=True),
        optimizers.RMSprop(0.02, rho=0.5, momentum=0.1, centered=True),
    ):
        config = optimizer.get_config()
        clone = type(optimizer).from_config(config)
        assert clone.get_config() == config
        restored = optimizers.deserialize(optimizers.serialize(optimizer))
        assert type(restored) is type(optimizer) and restored.get_config() == config


@pytest.mark.parametrize(
    "name, cls",
    [
        ("sgd", optimizers.SGD),
        ("adam", optimizers.Adam),
        ("Adam", optimizers.Adam),
        ("rmsprop", optimizers.RMSprop),
    ],
)
def test_get(name, cls):
    optimizer = optimizers.get(name)
    assert isinstance(optimizer, cls)
    assert optimizers.get(optimizer) is optimizer


def test_default_hyperparameters_match_keras():
    assert optimizers.SGD().get_config() == {
        "name": "sgd",
        "learning_rate": 0.01,
        "momentum": 0.0,
        "nesterov": False,
    }
    assert optimizers.Adam().get_config() == {
        "name": "adam",
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "amsgrad": False,
    }
    assert optimizers.RMSprop().get_config() == {
        "name": "rmsprop",
        "learning_rate": 0.001,
        "rho": 0.9,
        "momentum": 0.0,
        "epsilon": 1e-7,
        "centered": False,
    }


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"learning_rate": 0.0}, r"learning_rate=0.0"),
        ({"learning_rate": -1}, r"learning_rate=-1.0"),
        ({"learning_rate": float("nan")}, r"learning_rate=nan"),
        ({"learning_rate": float("inf")}, r"learning_rate=inf"),
        ({"momentum": 1.5}, r"momentum must be in \[0.0, 1.0\]; received momentum=1.5"),
        ({"momentum": -0.1}, r"momentum=-0.1"),
    ],
)
def test_sgd_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optimizers.SGD(**kwargs)


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (optimizers.Adam, {"beta_1": 1.0}, r"beta_1=1.0"),
        (optimizers.Adam, {"beta_2": -0.5}, r"beta_2=-0.5"),
        (optimizers.Adam, {"epsilon": -1e-7}, r"epsilon=-1e-07"),
        (optimizers.RMSprop, {"rho": 2.0}, r"rho=2.0"),
        (optimizers.RMSprop, {"momentum": float("nan")}, r"momentum=nan"),
    ],
)
def test_bad_hyperparameters(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_bad_types():
    with pytest.raises(TypeError, match="learning_rate='fast'"):
        optimizers.Adam(learning_rate="fast")
    with pytest.raises(TypeError, match="nesterov=1"):
        optimizers.SGD(nesterov=1)
    with pytest.raises(TypeError, match="amsgrad=None"):
        optimizers.Adam(amsgrad=None)
    optimizer = optimizers.SGD()
    with pytest.raises(ValueError, match="learning_rate=-0.5"):
        optimizer.learning_rate = -0.5


def test_gradient_shape_mismatch_names_variable_and_shapes():
    variable = Variable(np.zeros((2, 3)), name="kernel")
    with pytest.raises(
        ValueError, match=r"'kernel' has shape \(3, 2\).*variable has shape \(2, 3\)"
    ):
        optimizers.SGD().apply_gradients([(np.zeros((3, 2)), variable)])
    np.testing.assert_array_equal(variable.numpy(), np.zeros((2, 3)))


def test_bad_pairs_and_all_none():
    with pytest.raises(TypeError, match="variable=array"):
        optimizers.SGD().apply_gradients([(np.zeros(2), np.zeros(2))])
    with pytest.raises(TypeError, match="pairs"):
        optimizers.SGD().apply_gradients([np.zeros(2)])
    with pytest.raises(ValueError, match="no gradients provided.*'w'"):
        optimizers.SGD().apply_gradients([(None, Variable(np.zeros(2), name="w"))])


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'.*adam"):
        optimizers.get("adamw")
    with pytest.raises(TypeError, match="optimizer=0.1"):
        optimizers.get(0.1)
