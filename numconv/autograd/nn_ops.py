"""Differentiable neural-network ops: conv2d, bias_add, pooling, cross-entropies.

Each op runs the array-level function of :mod:`numconv.nn` forward and
records a backward that asks :mod:`numconv.nn` only for the gradients the
tape needs.  Inputs may be Tensors, Variables or arrays.
"""

import numpy as np

from .. import nn as _nn
from .._arguments import normalize_data_format
from .math_ops import _gradient_for, _operand
from .tensor import record

_INPUT_NAMES = ("input", "kernel")


def _array(value, name):
    return np.asarray(_operand(value, name))


def conv2d(
    x, kernel, strides=1, padding="valid", data_format="channels_last", dilation_rate=1, groups=1
):
    """2-D convolution (cross-correlation) of ``x`` with ``kernel``, differentiable in both.

    Arguments and shapes as :func:`numconv.nn.conv2d` (no bias: use
    :func:`bias_add`).  The backward asks :func:`numconv.nn.conv2d_grads`
    only for the gradients the tape needs (``wrt``).
    """
    a, k = _array(x, "x"), _array(kernel, "kernel")
    options = dict(
        strides=strides, padding=padding, data_format=data_format,
        dilation_rate=dilation_rate, groups=groups,
    )
    value = _nn.conv2d(a, k, **options)

    def backward(grad, needs):
        wrt = tuple(name for name, need in zip(_INPUT_NAMES, needs) if need)
        grad_input, grad_kernel, _ = _nn.conv2d_grads(a, k, grad, wrt=wrt, **options)
        return grad_input, grad_kernel

    return record(value, (x, kernel), backward)


def _channel_axis(shape, data_format):
    if data_format == "channels_last":
        if len(shape) < 1:
            raise ValueError(f"bias_add needs x of rank >= 1; received x.shape={shape}")
        return len(shape) - 1
    if len(shape) < 3:
        raise ValueError(
            "bias_add with data_format='channels_first' needs x of shape "
            f"(*batch, channels, height, width); received x.shape={shape}"
        )
    return len(shape) - 3


def bias_add(x, bias, data_format="channels_last"):
    """``x + bias`` along the channel axis.

    Parameters
    ----------
    x : ``(..., channels)`` (channels_last) or ``(*batch, channels, H, W)`` (channels_first)
    bias : ``(channels,)``
    data_format : "channels_last" or "channels_first"

    Raises
    ------
    ValueError
        When ``bias`` is not 1-D or its length is not the channel count.
    """
    a, b = _array(x, "x"), _array(bias, "bias")
    data_format = normalize_data_format(data_format)
    axis = _channel_axis(a.shape, data_format)
    if b.ndim != 1 or b.shape[0] != a.shape[axis]:
        raise ValueError(
            f"bias must have shape ({a.shape[axis]},), the channels of x with "
            f"data_format={data_format!r}; received bias.shape={b.shape} for x.shape={a.shape}"
        )
    trailing = a.ndim - 1 - axis
    value = a + b.reshape(b.shape + (1,) * trailing)
    other_axes = tuple(i for i in range(a.ndim) if i != axis)

    def backward(grad, needs):
        return (
            _gradient_for(grad, a) if needs[0] else None,
            _gradient_for(np.sum(grad, axis=other_axes), b) if needs[1] else None,
        )

    return record(value, (x, bias), backward)


def _pooling_op(forward, backward_function, x, pool_size, strides, padding, data_format):
    a = _array(x, "x")
    options = dict(pool_size=pool_size, strides=strides, padding=padding, data_format=data_format)
    value = forward(a, **options)
    return record(value, (x,), lambda grad, needs: (backward_function(a, grad, **options),))


def max_pool2d(x, pool_size, strides=None, padding="valid", data_format="channels_last"):
    """Differentiable :func:`numconv.nn.max_pool2d` (gradient to each window's first maximum)."""
    return _pooling_op(
        _nn.max_pool2d, _nn.max_pool2d_grad, x, pool_size, strides, padding, data_format
    )


def avg_pool2d(x, pool_size, strides=None, padding="valid", data_format="channels_last"):
    """Differentiable :func:`numconv.nn.avg_pool2d`."""
    return _pooling_op(
        _nn.avg_pool2d, _nn.avg_pool2d_grad, x, pool_size, strides, padding, data_format
    )


# -- cross-entropies -----------------------------------------------------------------
def _float_logits(logits):
    z = _array(logits, "logits")
    if z.dtype.kind != "f":
        raise TypeError(
            f"logits must be a floating-point tensor; received logits of dtype {z.dtype}"
        )
    if z.ndim == 0:
        raise ValueError(
            f"logits must have a class axis (rank >= 1); received logits.shape={z.shape}"
        )
    # Half precision would lose too much in exp/log: compute in float32.
    return z, (np.float32 if z.dtype == np.float16 else z.dtype)


def _log_softmax(z, axis):
    """Log-softmax by log-sum-exp: exp never sees a positive argument."""
    shifted = z - np.max(z, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax_cross_entropy_with_logits(labels, logits, axis=-1):
    """Per-example ``-sum(labels * log_softmax(logits), axis)``, as TF.

    Parameters
    ----------
    labels : same shape as ``logits``; a probability distribution per example
        (any real values are accepted; the gradient is exact for them too)
    logits : floating tensor, the unnormalised log-probabilities
    axis : int, the class axis

    Returns
    -------
    Tensor of ``logits``' dtype, shaped like ``logits`` without ``axis``.
    Differentiable in both ``logits`` and ``labels``.
    """
    z, compute_dtype = _float_logits(logits)
    y = _array(labels, "labels")
    if y.shape != z.shape:
        raise ValueError(
            f"labels and logits must have the same shape; received labels.shape={y.shape}, "
            f"logits.shape={z.shape}"
        )
    if y.dtype.kind not in "biuf":
        raise TypeError(f"labels must hold real numbers; received labels of dtype {y.dtype}")
    integer = isinstance(axis, (int, np.integer)) and not isinstance(axis, bool)
    if not integer or not -z.ndim <= axis < z.ndim:
        raise ValueError(
            f"axis must be an integer in [-{z.ndim}, {z.ndim}); received axis={axis!r}"
        )
    z_work, y_work = z.astype(compute_dtype, copy=False), y.astype(compute_dtype, copy=False)
    log_probabilities = _log_softmax(z_work, axis)
    value = -np.sum(y_work * log_probabilities, axis=axis)

    def backward(grad, needs):
        grad = np.expand_dims(np.asarray(grad, dtype=compute_dtype), axis)
        grad_labels = grad_logits = None
        if needs[0] and y.dtype.kind == "f":
            grad_labels = (-grad * log_probabilities).astype(y.dtype, copy=False)
        if needs[1]:
            # d/dz of -sum(y * (z - lse(z))) = softmax(z) * sum(y) - y
            total = np.sum(y_work, axis=axis, keepdims=True)
            grad_logits = grad * (np.exp(log_probabilities) * total - y_work)
            grad_logits = grad_logits.astype(z.dtype, copy=False)
        return grad_labels, grad_logits

    return record(value.astype(z.dtype, copy=False), (labels, logits), backward)


def _class_indices(labels, classes):
    y = _array(labels, "labels")
    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.round(y)) if y.size else np.ones(0, bool)
        if not np.all(whole):
            bad = y[~whole].ravel()[0]
            raise ValueError(
                f"labels must be whole class indices; received labels containing {float(bad)!r}"
            )
    elif y.dtype.kind not in "iub":
        raise TypeError(f"labels must be integer class indices; received labels of dtype {y.dtype}")
    indices = y.astype(np.int64)
    out_of_range = (indices < 0) | (indices >= classes)
    if np.any(out_of_range):
        bad = indices[out_of_range].ravel()[0]
        raise ValueError(
            f"labels must be class indices in [0, {classes}) for logits with {classes} classes; "
            f"received labels containing {bad}"
        )
    return indices


def sparse_softmax_cross_entropy_with_logits(labels, logits):
    """Per-example ``-log_softmax(logits)[label]``, as TF.

    Parameters
    ----------
    labels : integer class indices in ``[0, classes)``, shape ``logits.shape[:-1]``
        (floats holding whole numbers are accepted); not differentiable
    logits : floating tensor ``(..., classes)``

    Returns
    -------
    Tensor of ``logits``' dtype and shape ``logits.shape[:-1]``.

    Raises
    ------
    ValueError
        For a shape mismatch or a label outside ``[0, classes)``.
    """
    z, compute_dtype = _float_logits(logits)
    label_shape = np.shape(_operand(labels, "labels"))
    if label_shape != z.shape[:-1]:
        raise ValueError(
            "labels must have the shape of logits without the class axis; "
            f"received labels.shape={label_shape}, logits.shape={z.shape}"
        )
    indices = _class_indices(labels, z.shape[-1])
    log_probabilities = _log_softmax(z.astype(compute_dtype, copy=False), -1)
    picked = np.take_along_axis(log_probabilities, indices[..., None], axis=-1)[..., 0]
    value = -picked

    def backward(grad, needs):
        if not needs[1]:
            return None, None
        grad_logits = np.exp(log_probabilities)
        np.put_along_axis(
            grad_logits, indices[..., None],
            np.take_along_axis(grad_logits, indices[..., None], axis=-1) - 1, axis=-1,
        )
        grad_logits *= np.asarray(grad, dtype=compute_dtype)[..., None]
        return None, grad_logits.astype(z.dtype, copy=False)

    return record(np.asarray(value).astype(z.dtype, copy=False), (labels, logits), backward)
