"""Central finite differences, the independent reference for every gradient test.

``numerical_gradient`` perturbs one element at a time; for large inputs,
``directional_derivative`` checks the gradient along a random direction
instead (as Chainer's gradient_check does).
"""

import numpy as np


def numerical_gradient(function, x, eps=1e-6):
    """d sum(function(x)) / dx by central differences; ``x`` is a float64 array."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)
    for i in range(flat_x.size):
        saved = flat_x[i]
        flat_x[i] = saved + eps
        plus = np.sum(function(x))
        flat_x[i] = saved - eps
        minus = np.sum(function(x))
        flat_x[i] = saved
        flat_grad[i] = (plus - minus) / (2 * eps)
    return grad


def directional_derivative(function, x, direction, eps=1e-6):
    """d/dt sum(function(x + t * direction)) at t = 0, by central differences."""
    x = np.asarray(x, dtype=np.float64)
    plus = np.sum(function(x + eps * direction))
    minus = np.sum(function(x - eps * direction))
    return (plus - minus) / (2 * eps)


def assert_gradients_close(function, inputs, analytic, eps=1e-6, rtol=1e-5, atol=1e-7):
    """Compare analytic gradients with finite differences of ``sum(function(*inputs))``.

    ``analytic`` is a list with one gradient (or None to skip) per input.
    """
    inputs = [np.array(x, dtype=np.float64) for x in inputs]
    for index, expected_shape_grad in enumerate(analytic):
        if expected_shape_grad is None:
            continue

        def partial(value, index=index):
            args = list(inputs)
            args[index] = value
            return function(*args)

        numeric = numerical_gradient(partial, inputs[index], eps)
        np.testing.assert_allclose(
            np.asarray(expected_shape_grad), numeric, rtol=rtol, atol=atol,
            err_msg=f"gradient of input {index}",
        )
