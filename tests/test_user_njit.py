"""Users can call numconv's kernels from their own @njit functions (canonical layout)."""

import numba
import numpy as np

from numconv.kernels.conv import (
    conv2d_forward,
    conv2d_forward_serial,
    conv2d_grad_bias_serial,
    conv2d_grad_input_serial,
    conv2d_grad_kernel_serial,
    depthwise_conv2d_forward_serial,
)

from reference import conv2d_grads_reference, conv2d_reference


@numba.njit(cache=True)
def conv_relu_same_3x3(x, kernel, bias):
    """A user's fused layer: 3x3 'same' convolution, stride 1, then ReLU."""
    out = np.empty((x.shape[0], x.shape[1], x.shape[2], kernel.shape[3]), dtype=x.dtype)
    conv2d_forward_serial(x, kernel, bias, out, 1, 1, 1, 1, 1, 1)
    flat = out.reshape(out.size)
    for i in range(flat.size):
        if flat[i] < 0.0:
            flat[i] = 0.0
    return out


# Not cached: a cached serial function that calls a parallel one crashes when it is
# loaded from the cache in a process whose Numba threads have not started yet
# (numba/numba#8578).  See docs/design.md.
@numba.njit
def strided_conv_and_grads(x, kernel, bias, grad_output):
    """Stride-2 'valid' convolution and its three gradients, all from inside @njit."""
    n, out_h, out_w, filters = grad_output.shape
    out = np.empty((n, out_h, out_w, filters), dtype=x.dtype)
    conv2d_forward(x, kernel, bias, out, 2, 2, 1, 1, 0, 0)  # the parallel build
    grad_input = np.empty_like(x)
    conv2d_grad_input_serial(grad_output, kernel, grad_input, 2, 2, 1, 1, 0, 0)
    grad_kernel = np.empty_like(kernel)
    conv2d_grad_kernel_serial(x, grad_output, grad_kernel, 2, 2, 1, 1, 0, 0)
    grad_bias = np.empty_like(bias)
    conv2d_grad_bias_serial(grad_output, grad_bias)
    return out, grad_input, grad_kernel, grad_bias


@numba.njit(cache=True)
def depthwise_dilated(x, kernel, bias, out_h, out_w):
    out = np.empty((x.shape[0], out_h, out_w, kernel.shape[3]), dtype=x.dtype)
    depthwise_conv2d_forward_serial(x, kernel, bias, out, 1, 1, 2, 2, 0, 0)
    return out


def test_user_njit_function_calls_the_forward_kernel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 6, 3))
    kernel = rng.standard_normal((3, 3, 3, 4))
    bias = rng.standard_normal(4)
    out = conv_relu_same_3x3(x, kernel, bias)
    expected = np.maximum(conv2d_reference(x, kernel, bias, padding="same"), 0.0)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_user_njit_function_calls_the_gradient_kernels():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 9, 8, 4)).astype(np.float32)
    kernel = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    grad_output = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
    out, *grads = strided_conv_and_grads(x, kernel, bias, grad_output)
    np.testing.assert_allclose(out, conv2d_reference(x, kernel, bias, strides=2),
                               rtol=1e-5, atol=1e-5)
    expected_grads = conv2d_grads_reference(x, kernel, grad_output, strides=2)
    for grad, expected in zip(grads, expected_grads):
        assert grad.dtype == np.float32
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5)


def test_user_njit_function_calls_the_depthwise_kernel():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 8, 9, 3))
    kernel = rng.standard_normal((2, 3, 1, 6))  # channel multiplier 2
    bias = rng.standard_normal(6)
    out = depthwise_dilated(x, kernel, bias, 6, 5)
    expected = conv2d_reference(x, kernel, bias, dilation_rate=2, groups=3)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
