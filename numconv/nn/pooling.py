"""Array-level 2-D max and average pooling and their gradients (Keras semantics).

``x`` is ``(*batch, height, width, channels)`` (channels_last) or
``(*batch, channels, height, width)`` (channels_first), with any number of
leading batch dims.  ``pool_size`` is an int or a pair; ``strides`` defaults
to ``pool_size``; ``padding`` is "valid" or TensorFlow's "same" (the extra
row/column of padding goes after).  Padded positions never win a maximum,
and an average over a window that overlaps the padding divides by the number
of real pixels in it, as TensorFlow does.  float16 is computed in float32.
"""

import numpy as np

from .. import runtime
from .._memory import allocate, check_request
from .._arguments import normalize_data_format, normalize_tuple, resolve_padding
from ..kernels import pooling as _kernels
from ._arrays import real_array


def _check_input(x):
    array = real_array(x, "x", floats_only=True)
    if array.ndim < 4:
        raise ValueError(
            "x must have rank >= 4 (batch dims, two spatial dims and a channel dim); "
            f"received x.shape={array.shape}"
        )
    return array


def _check_padding(padding):
    if isinstance(padding, str) and padding.lower() in ("valid", "same"):
        return padding.lower()
    raise ValueError(f'padding must be "valid" or "same"; received padding={padding!r}')


class _Plan:
    """Checked arguments and the kernel-side layout of one pooling call."""

    def __init__(self, x, pool_size, strides, padding, data_format):
        self.x = _check_input(x)
        self.pool = normalize_tuple(pool_size, 2, "pool_size")
        self.strides = self.pool if strides is None else normalize_tuple(strides, 2, "strides")
        self.padding = _check_padding(padding)
        self.channels_last = normalize_data_format(data_format) == "channels_last"
        shape = self.x.shape
        if self.channels_last:
            self.batch_shape, (height, width), channels = shape[:-3], shape[-3:-1], shape[-1]
        else:
            self.batch_shape, channels, (height, width) = shape[:-3], shape[-3], shape[-2:]
        pads, (out_h, out_w) = resolve_padding(
            self.padding, (height, width), self.pool, self.strides, (1, 1)
        )
        if self.padding == "valid" and (out_h <= 0 or out_w <= 0):
            raise ValueError(
                f"pool_size={self.pool} does not fit the input with padding='valid': "
                f"spatial size {(height, width)} of x.shape={shape} gives an output of "
                f"size {(out_h, out_w)}"
            )
        self.pad_top, self.pad_left = pads[0][0], pads[1][0]
        self.channels, self.out_h, self.out_w = channels, out_h, out_w
        self.compute_dtype = np.dtype(np.float32 if self.x.dtype == np.float16 else self.x.dtype)
        images = int(np.prod(self.batch_shape, dtype=np.int64))
        # channels_first pools every (height, width) plane on its own: one plane
        # is one single-channel image of the channels_last kernels.
        if self.channels_last:
            self.kernel_in_shape = (images, height, width, channels)
            self.kernel_out_shape = (images, out_h, out_w, channels)
            self.out_shape = self.batch_shape + (out_h, out_w, channels)
        else:
            self.kernel_in_shape = (images * channels, height, width, 1)
            self.kernel_out_shape = (images * channels, out_h, out_w, 1)
            self.out_shape = self.batch_shape + (channels, out_h, out_w)
        outputs = int(np.prod(self.kernel_out_shape, dtype=np.int64))
        self.work = outputs * self.pool[0] * self.pool[1]

    def to_kernel(self, array, shape):
        return np.ascontiguousarray(array.reshape(shape), dtype=self.compute_dtype)

    def check_memory(self, what, arrays):
        """Fail before allocating anything if the kernel-side copies and results cannot fit.

        ``arrays`` are (array or None, kernel shape) pairs: an array that is
        already C-contiguous in the compute dtype is passed without a copy;
        None stands for a new result array.
        """
        itemsize = self.compute_dtype.itemsize
        nbytes = 0
        for array, shape in arrays:
            if array is None or not (
                array.flags.c_contiguous and array.dtype == self.compute_dtype
            ):
                nbytes += int(np.prod(shape, dtype=object)) * itemsize
        check_request(nbytes, f"{what} on x with shape {self.x.shape} and dtype {self.x.dtype}")

    def geometry(self):
        return (*self.pool, *self.strides, self.pad_top, self.pad_left)


def _pool(what, kernels, x, pool_size, strides, padding, data_format):
    plan = _Plan(x, pool_size, strides, padding, data_format)
    plan.check_memory(what, [(plan.x, plan.kernel_in_shape), (None, plan.kernel_out_shape)])
    x_kernel = plan.to_kernel(plan.x, plan.kernel_in_shape)
    out = allocate(plan.kernel_out_shape, plan.compute_dtype, what)
    runtime.run(*kernels, plan.work, x_kernel, out, *plan.geometry())
    return out.reshape(plan.out_shape).astype(plan.x.dtype, copy=False)


def _check_grad_output(plan, grad_output):
    grad = real_array(grad_output, "grad_output")
    if grad.shape != plan.out_shape:
        raise ValueError(
            f"grad_output must have the pooling output's shape {plan.out_shape}; "
            f"received grad_output.shape={grad.shape}"
        )
    return grad


def max_pool2d(x, pool_size, strides=None, padding="valid", data_format="channels_last"):
    """2-D max pooling, as ``keras.layers.MaxPooling2D``.

    Parameters
    ----------
    x : ndarray, float16/32/64, ``(*batch, H, W, C)`` or ``(*batch, C, H, W)``
    pool_size : int or (int, int)
    strides : int or (int, int), optional
        Defaults to ``pool_size``.
    padding : "valid" or "same"
    data_format : "channels_last" or "channels_first"

    Returns
    -------
    ndarray of ``x``'s dtype, ``(*batch, OH, OW, C)`` or ``(*batch, C, OH, OW)``.

    Raises
    ------
    TypeError, ValueError
        For a non-float ``x``, rank < 4, a bad argument, or a window that does
        not fit with "valid".
    """
    return _pool(
        "max_pool2d",
        (_kernels.max_pool2d_serial, _kernels.max_pool2d_parallel),
        x,
        pool_size,
        strides,
        padding,
        data_format,
    )


def avg_pool2d(x, pool_size, strides=None, padding="valid", data_format="channels_last"):
    """2-D average pooling, as ``keras.layers.AveragePooling2D``.

    Same arguments and errors as :func:`max_pool2d`.  With "same", a window
    overlapping the padding averages its real pixels only.
    """
    return _pool(
        "avg_pool2d",
        (_kernels.avg_pool2d_serial, _kernels.avg_pool2d_parallel),
        x,
        pool_size,
        strides,
        padding,
        data_format,
    )


def max_pool2d_grad(
    x, grad_output, pool_size, strides=None, padding="valid", data_format="channels_last"
):
    """Gradient of :func:`max_pool2d` w.r.t. ``x``.

    Each window's gradient goes to the first maximum of the window in
    row-major order (TensorFlow's choice).

    Parameters
    ----------
    x : ndarray
        The forward input.
    grad_output : ndarray shaped like the forward output
    pool_size, strides, padding, data_format
        As for :func:`max_pool2d`.

    Returns
    -------
    ndarray shaped like ``x``, of ``x``'s dtype.
    """
    plan = _Plan(x, pool_size, strides, padding, data_format)
    grad = _check_grad_output(plan, grad_output)
    plan.check_memory(
        "max_pool2d_grad",
        [
            (plan.x, plan.kernel_in_shape),
            (grad, plan.kernel_out_shape),
            (None, plan.kernel_in_shape),
        ],
    )
    x_kernel = plan.to_kernel(plan.x, plan.kernel_in_shape)
    grad = plan.to_kernel(grad, plan.kernel_out_shape)
    grad_input = allocate(plan.kernel_in_shape, plan.compute_dtype, "max_pool2d_grad")
    runtime.run(
        _kernels.max_pool2d_grad_serial,
        _kernels.max_pool2d_grad_parallel,
        plan.work,
        x_kernel,
        grad,
        grad_input,
        *plan.geometry(),
    )
    return grad_input.reshape(plan.x.shape).astype(plan.x.dtype, copy=False)


def avg_pool2d_grad(
    x, grad_output, pool_size, strides=None, padding="valid", data_format="channels_last"
):
    """Gradient of :func:`avg_pool2d` w.r.t. ``x``: each window spreads its gradient evenly.

    Same arguments and errors as :func:`max_pool2d_grad`.
    """
    plan = _Plan(x, pool_size, strides, padding, data_format)
    grad = _check_grad_output(plan, grad_output)
    plan.check_memory(
        "avg_pool2d_grad",
        [
            (grad, plan.kernel_out_shape),
            (None, plan.kernel_in_shape),
        ],
    )
    grad = plan.to_kernel(grad, plan.kernel_out_shape)
    grad_input = allocate(plan.kernel_in_shape, plan.compute_dtype, "avg_pool2d_grad")
    runtime.run(
        _kernels.avg_pool2d_grad_serial,
        _kernels.avg_pool2d_grad_parallel,
        plan.work,
        grad,
        grad_input,
        *plan.geometry(),
    )
    return grad_input.reshape(plan.x.shape).astype(plan.x.dtype, copy=False)
