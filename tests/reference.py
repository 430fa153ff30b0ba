"""Slow, obviously-right 2-D convolution written from the definition.

Independent of numconv: padding is computed here from TensorFlow's formula,
the input is zero-padded explicitly, and every (kernel tap, group) adds one
einsum over a strided window of the padded copy.  The backward pass is the
adjoint of those same steps (scatter into the padded copy, then crop).
Everything is computed in float64.
"""

import numpy as np


def _pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def same_padding_reference(size, kernel, stride, dilation):
    """TensorFlow 'same': output ceil(size / stride), extra padding pixel after."""
    out = -(-size // stride)
    total = max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - size)
    return total // 2, total - total // 2


def _explicit_pads(padding, spatial, kernel_size, strides, dilation):
    if isinstance(padding, str):
        if padding.lower() == "valid":
            return ((0, 0), (0, 0))
        return tuple(same_padding_reference(spatial[i], kernel_size[i], strides[i], dilation[i])
                     for i in range(2))
    if np.isscalar(padding):
        return ((padding, padding), (padding, padding))
    return tuple(_pair(item) for item in padding)


def _setup(x, kernel, strides, padding, data_format, dilation_rate):
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if data_format == "channels_first":
        x = np.moveaxis(x, -3, -1)
    batch_shape = x.shape[:-3]
    x = x.reshape((-1,) + x.shape[-3:]) if x.size else np.zeros((0,) + x.shape[-3:])
    strides, dilation = _pair(strides), _pair(dilation_rate)
    kernel_size = kernel.shape[:2]
    pads = _explicit_pads(padding, x.shape[1:3], kernel_size, strides, dilation)
    out_size = tuple(
        (x.shape[1 + i] + pads[i][0] + pads[i][1] - (kernel_size[i] - 1) * dilation[i] - 1)
        // strides[i] + 1
        for i in range(2)
    )
    return x, kernel, batch_shape, strides, dilation, pads, out_size


def _window(array, kh, kw, strides, dilation, out_size):
    """The (N, OH, OW, C) slice of a padded array that kernel tap (kh, kw) reads."""
    top, left = kh * dilation[0], kw * dilation[1]
    return array[:, top:top + (out_size[0] - 1) * strides[0] + 1:strides[0],
                 left:left + (out_size[1] - 1) * strides[1] + 1:strides[1], :]


def _padded(x, pads):
    (top, bottom), (left, right) = pads
    n, h, w, c = x.shape
    padded = np.zeros((n, top + h + bottom, left + w + right, c))
    padded[:, top:top + h, left:left + w, :] = x
    return padded


def _restore_layout(canonical, batch_shape, data_format):
    result = canonical.reshape(batch_shape + canonical.shape[1:])
    if data_format == "channels_first":
        result = np.moveaxis(result, -1, -3)
    return result


def conv2d_reference(x, kernel, bias=None, strides=1, padding="valid",
                     data_format="channels_last", dilation_rate=1, groups=1):
    """float64 grouped cross-correlation (Keras kernel layout) plus bias."""
    x, kernel, batch_shape, strides, dilation, pads, out_size = _setup(
        x, kernel, strides, padding, data_format, dilation_rate)
    kernel_h, kernel_w, group_channels, filters = kernel.shape
    group_filters = filters // groups
    padded = _padded(x, pads)
    out = np.zeros((x.shape[0],) + out_size + (filters,))
    for g in range(groups):
        channels = slice(g * group_channels, (g + 1) * group_channels)
        group = slice(g * group_filters, (g + 1) * group_filters)
        for kh in range(kernel_h):
            for kw in range(kernel_w):
                window = _window(padded, kh, kw, strides, dilation, out_size)[..., channels]
                out[..., group] += np.einsum("nhwc,cf->nhwf", window, kernel[kh, kw, :, group])
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64)
    return _restore_layout(out, batch_shape, data_format)


def conv2d_grads_reference(x, kernel, grad_output, strides=1, padding="valid",
                           data_format="channels_last", dilation_rate=1, groups=1):
    """(grad_input, grad_kernel, grad_bias) of sum(conv2d_reference(...) * grad_output)."""
    x, kernel, batch_shape, strides, dilation, pads, out_size = _setup(
        x, kernel, strides, padding, data_format, dilation_rate)
    grad_output = np.asarray(grad_output, dtype=np.float64)
    if data_format == "channels_first":
        grad_output = np.moveaxis(grad_output, -3, -1)
    grad_output = grad_output.reshape((x.shape[0],) + grad_output.shape[-3:])
    kernel_h, kernel_w, group_channels, filters = kernel.shape
    group_filters = filters // groups
    padded = _padded(x, pads)
    grad_padded = np.zeros_like(padded)
    grad_kernel = np.zeros_like(kernel)
    for g in range(groups):
        channels = slice(g * group_channels, (g + 1) * group_channels)
        group = slice(g * group_filters, (g + 1) * group_filters)
        grad_group = grad_output[..., group]
        for kh in range(kernel_h):
            for kw in range(kernel_w):
                window = _window(padded, kh, kw, strides, dilation, out_size)[..., channels]
                grad_kernel[kh, kw, :, group] = np.einsum("nhwc,nhwf->cf", window, grad_group)
                grad_window = _window(grad_padded, kh, kw, strides, dilation, out_size)
                grad_window[..., channels] += np.einsum(
                    "nhwf,cf->nhwc", grad_group, kernel[kh, kw, :, group])
    (top, _), (left, _) = pads
    grad_x = grad_padded[:, top:top + x.shape[1], left:left + x.shape[2], :]
    grad_bias = grad_output.reshape(-1, filters).sum(axis=0)
    return _restore_layout(grad_x, batch_shape, data_format), grad_kernel, grad_bias
