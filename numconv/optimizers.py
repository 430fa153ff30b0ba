"""Optimizers with Keras 3's update rules: SGD, Adam, RMSprop.

``optimizer.apply_gradients(zip(grads, variables))`` updates each trainable
Variable in place (``Variable.assign``) and then applies the variable's
constraint.  Gradients may be Tensors or arrays; None gradients and
non-trainable variables are skipped.  The per-variable state (momentum,
velocity...) is created on a variable's first update, in its dtype.
"""

import math
import numbers

import numpy as np

from ._registry import Configurable, Registry
from .autograd.tensor import Variable, as_array

_registry = Registry("optimizer")


def _check_float(value, name, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a float in the given interval; TypeError/ValueError naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; received {name}={value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if math.isnan(value) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        bounds = f"{left}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}{right}"
        raise ValueError(f"{name} must be in {bounds}; received {name}={value!r}")
    return value


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool; received {name}={value!r}")
    return bool(value)


def _check_learning_rate(value):
    value = _check_float(value, "learning_rate", low=0.0, low_open=True)
    if math.isinf(value):
        raise ValueError(f"learning_rate must be finite; received learning_rate={value!r}")
    return value


class Optimizer(Configurable):
    """Base class: holds the learning rate, the step counter and per-variable state.

    Subclasses implement ``_update(variable_value, gradient, state) -> new_value``
    working on ndarrays, where ``state`` is the dict of that variable's slots.

    Parameters
    ----------
    learning_rate : float
        Positive and finite.
    name : str, optional
    """

    _slot_names = ()

    def __init__(self, learning_rate, name=None):
        self.learning_rate = learning_rate
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string; received name={name!r}")
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        # id(variable) -> (variable, {slot name: ndarray}); the variable is kept so ids stay unique.
        self._states = {}

    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = _check_learning_rate(value)

    # -- state --------------------------------------------------------------------------
    def _state(self, variable):
        entry = self._states.get(id(variable))
        if entry is None:
            slots = {name: np.zeros_like(variable.numpy()) for name in self._slots()}
            entry = self._states[id(variable)] = (variable, slots)
        return entry[1]

    def _slots(self):
        return self._slot_names

    @property
    def variables(self):
        """The state arrays, in the order the variables were first updated."""
        return [slot for _, slots in self._states.values() for slot in slots.values()]

    # -- updates ------------------------------------------------------------------------
    def apply_gradients(self, grads_and_vars):
        """Apply one step to each ``(gradient, variable)`` pair.

        Raises
        ------
        TypeError
            If a variable is not a numconv Variable.
        ValueError
            If a gradient's shape differs from its variable's, or if every
            gradient is None.
        """
        try:
            pairs = list(grads_and_vars)
        except TypeError:
            raise TypeError(
                "grads_and_vars must be an iterable of (gradient, variable) pairs; "
                f"received grads_and_vars={grads_and_vars!r:.80}"
            ) from None
        checked = []
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(
                    "grads_and_vars must be (gradient, variable) pairs; "
                    f"received an item {pair!r:.80}"
                )
            grad, variable = pair
            if not isinstance(variable, Variable):
                raise TypeError(
                    f"variables must be numconv Variables; received variable={variable!r:.80}"
                )
            if grad is None:
                continue
            try:
                grad = np.asarray(as_array(grad))
            except (TypeError, ValueError):  # ragged nests
                grad = np.asarray(None)
            if grad.dtype.kind not in "biuf":
                raise TypeError(
                    f"the gradient of variable {variable.name!r} must hold real numbers; "
                    f"received dtype {grad.dtype}"
                )
            if grad.shape != variable.shape:
                raise ValueError(
                    f"the gradient of variable {variable.name!r} has shape {grad.shape}, "
                    f"but the variable has shape {variable.shape}"
                )
            checked.append((grad.astype(variable.dtype, copy=False), variable))
        if pairs and not checked:
            raise ValueError(
                "no gradients provided for any variable (every gradient is None); received "
                f"variables {[variable.name for _, variable in pairs]}"
            )
        # Keras counts the step before computing bias corrections (step t = iterations + 1).
        step = self.iterations + 1
        for grad, variable in checked:
            if not variable.trainable:
                continue
            value = variable.numpy()
            new_value = self._update(value, grad, self._state(variable), step)
            variable.assign(new_value)
            if variable.constraint is not None:
                variable.assign(as_array(variable.constraint(variable.numpy())))
        self.iterations = step
        return self.iterations

    def minimize(self, loss, var_list):
        """Compute the gradients of ``loss()`` (a callable) with respect to ``var_list`` and apply them."""
        from .autograd.tape import GradientTape

        if not callable(loss):
            raise TypeError(
                f"loss must be a callable taking no arguments; received loss={loss!r:.80}"
            )
        var_list = list(var_list)
        with GradientTape() as tape:
            value = loss()
        grads = tape.gradient(value, var_list)
        return self.apply_gradients(zip(grads, var_list))

    def _update(self, value, grad, state, step):
        raise NotImplementedError

    # -- config -------------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "learning_rate": self.learning_rate}


@_registry.register("SGD", "sgd")
class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum.

    ``velocity = momentum * velocity - lr * g``; then ``w += velocity``, or
    ``w += momentum * velocity - lr * g`` with ``nesterov=True``; plain
    ``w -= lr * g`` when ``momentum == 0``.

    Parameters
    ----------
    learning_rate : float, default 0.01
    momentum : float in [0, 1], default 0.0
    nesterov : bool, default False
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None):
        super().__init__(learning_rate, name)
        self.momentum = _check_float(momentum, "momentum", 0.0, 1.0)
        self.nesterov = _check_bool(nesterov, "nesterov")

    def _slots(self):
        return ("momentum",) if self.momentum != 0 else ()

    def _update(self, value, grad, state, step):
        lr = self.learning_rate
        if self.momentum == 0:
            return value - lr * grad
        velocity = self.momentum * state["momentum"] - lr * grad
        state["momentum"] = velocity
        if self.nesterov:
            return value + (self.momentum * velocity - lr * grad)
        return value + velocity

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


@_registry.register("Adam", "adam")
class Adam(Optimizer):
    """Adam, as Keras 3 computes it.

    With ``t`` the step number (from 1): ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``,
    ``m += (g - m) * (1 - beta_1)``, ``v += (g**2 - v) * (1 - beta_2)``
    (``v_hat = max(v_hat, v)`` used instead of ``v`` with ``amsgrad``),
    ``w -= alpha * m / (sqrt(v) + epsilon)``.

    Parameters
    ----------
    learning_rate : float, default 0.001
    beta_1, beta_2 : float in [0, 1), defaults 0.9 and 0.999
    epsilon : float >= 0, default 1e-7
    amsgrad : bool, default False
    """

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, name=None
    ):
        super().__init__(learning_rate, name)
        self.beta_1 = _check_float(beta_1, "beta_1", 0.0, 1.0, high_open=True)
        self.beta_2 = _check_float(beta_2, "beta_2", 0.0, 1.0, high_open=True)
        self.epsilon = _check_float(epsilon, "epsilon", low=0.0)
        self.amsgrad = _check_bool(amsgrad, "amsgrad")

    def _slots(self):
        return (
            ("momentum", "velocity", "velocity_hat") if self.amsgrad else ("momentum", "velocity")
        )

    def _update(self, value, grad, state, step):
        alpha = self.learning_rate * math.sqrt(1.0 - self.beta_2**step) / (1.0 - self.beta_1**step)
        momentum = state["momentum"] + (grad - state["momentum"]) * (1.0 - self.beta_1)
        velocity = state["velocity"] + (grad * grad - state["velocity"]) * (1.0 - self.beta_2)
        state["momentum"], state["velocity"] = momentum, velocity
        if self.amsgrad:
            velocity = state["velocity_hat"] = np.maximum(state["velocity_hat"], velocity)
        return value - alpha * momentum / (np.sqrt(velocity) + self.epsilon)

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


@_registry.register("RMSprop", "rmsprop")
class RMSprop(Optimizer):
    """RMSprop, as Keras 3 computes it.

    ``v = rho * v + (1 - rho) * g**2``; with ``centered``, ``a = rho * a + (1 - rho) * g``
    and the denominator is ``sqrt(v - a**2 + epsilon)``, else ``sqrt(v + epsilon)``;
    ``increment = lr * g / denominator``; with momentum ``m = momentum * m + increment``
    and ``w -= m``, else ``w -= increment``.

    Parameters
    ----------
    learning_rate : float, default 0.001
    rho : float in [0, 1], default 0.9
    momentum : float in [0, 1], default 0.0
    epsilon : float >= 0, default 1e-7
    centered : bool, default False
    """

    def __init__(
        self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, name=None
    ):
        super().__init__(learning_rate, name)
        self.rho = _check_float(rho, "rho", 0.0, 1.0)
        self.momentum = _check_float(momentum, "momentum", 0.0, 1.0)
        self.epsilon = _check_float(epsilon, "epsilon", low=0.0)
        self.centered = _check_bool(centered, "centered")

    def _slots(self):
        names = ["velocity"]
        if self.momentum > 0:
            names.append("momentum")
        if self.centered:
            names.append("average_gradient")
        return tuple(names)

    def _update(self, value, grad, state, step):
        rho = self.rho
        velocity = state["velocity"] = rho * state["velocity"] + (1.0 - rho) * grad * grad
        if self.centered:
            average = state["average_gradient"] = (
                rho * state["average_gradient"] + (1.0 - rho) * grad
            )
            denominator = velocity - average * average + self.epsilon
        else:
            denominator = velocity + self.epsilon
        increment = self.learning_rate * grad / np.sqrt(denominator)
        if self.momentum > 0:
            increment = state["momentum"] = self.momentum * state["momentum"] + increment
        return value - increment

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


def get(identifier):
    """An optimizer from a name ("sgd", "adam", "rmsprop"), a config dict or an instance.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones).
    TypeError
        For anything else.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if not isinstance(identifier, (str, dict)):
        raise TypeError(
            "optimizer must be a name, a config dict or an Optimizer instance; "
            f"received optimizer={identifier!r:.80}"
        )
    return _registry.get(identifier)


def serialize(optimizer):
    """``{"class_name", "config"}`` of an optimizer."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"optimizer must be an Optimizer instance; received optimizer={optimizer!r:.80}"
        )
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config):
    """Inverse of :func:`serialize` (a name is accepted too)."""
    return _registry.deserialize(config)


__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "get", "serialize", "deserialize"]
