"""Array-level 2-D convolution: ``conv2d`` and its gradients ``conv2d_grads``.

Both check their arguments, bring the arrays to the kernels' canonical layout
(channels last, one batch axis, C-contiguous, float32 or float64), dispatch to
the serial or parallel build of a Numba kernel by problem size, and bring the
results back to the caller's layout and dtype.

Dtypes: float32 and float64 are computed in their own precision; float16 is
computed in float32 and returned as float16; integer and bool arrays count as
float32; mixed dtypes follow NumPy promotion.  Complex, object and string
arrays raise TypeError.
"""

import numpy as np

from .. import runtime
from .._arguments import (
    check_positive_int,
    check_strides_and_dilation,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    resolve_padding,
)
from ..kernels import conv as conv_kernels

GRADIENT_NAMES = ("input", "kernel", "bias")

# (serial build, parallel build) of each kernel, by (job, depthwise).
_KERNELS = {
    ("forward", False): (conv_kernels.conv2d_forward_serial, conv_kernels.conv2d_forward),
    ("forward", True): (conv_kernels.depthwise_conv2d_forward_serial,
                        conv_kernels.depthwise_conv2d_forward),
    ("grad_input", False): (conv_kernels.conv2d_grad_input_serial,
                            conv_kernels.conv2d_grad_input),
    ("grad_input", True): (conv_kernels.depthwise_conv2d_grad_input_serial,
                           conv_kernels.depthwise_conv2d_grad_input),
    ("grad_kernel", False): (conv_kernels.conv2d_grad_kernel_serial,
                             conv_kernels.conv2d_grad_kernel),
    ("grad_kernel", True): (conv_kernels.depthwise_conv2d_grad_kernel_serial,
                            conv_kernels.depthwise_conv2d_grad_kernel),
}


def _describe(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _real_array(value, name):
    """``np.asarray(value)`` for real numeric data; TypeError naming ``name`` otherwise."""
    if value is None:
        raise TypeError(f"{name} must be an array of real numbers; received {name}=None")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged nests, objects refusing conversion
        raise TypeError(
            f"{name} must be an array of real numbers; received {name}={_describe(value)}"
        ) from error
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind in "biu" or (kind == "f" and size in (2, 4, 8)):
        return array
    shown = f" ({name}={_describe(value)})" if array.size <= 4 else ""
    raise TypeError(
        f"{name} must be an array of real numbers (float16, float32, float64, integer or bool); "
        f"received {name} with dtype {array.dtype}{shown}"
    )


def _natural_dtype(array):
    """The dtype an array takes part in promotion with: integers and bools count as float32."""
    return np.dtype(np.float32) if array.dtype.kind in "biu" else array.dtype


def _dtypes(*arrays):
    """(result dtype, compute dtype): float16 results are computed in float32."""
    result = np.result_type(*(_natural_dtype(array) for array in arrays))
    compute = np.dtype(np.float32) if result == np.float16 else result
    return result, compute


def _canonical(array, dtype):
    """C-contiguous, aligned, writable (one Numba type per dtype) copy or view in ``dtype``."""
    return np.require(array, dtype=dtype, requirements=("C", "A", "W"))


class _Geometry:
    """Checked shapes and options of one convolution, in the kernels' terms."""

    def __init__(self, x, kernel, strides, padding, data_format, dilation_rate, groups):
        data_format = normalize_data_format(data_format)
        strides = normalize_tuple(strides, 2, "strides")
        dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate")
        check_strides_and_dilation(strides, dilation_rate)
        padding_mode = normalize_padding(padding)
        groups = check_positive_int(groups, "groups")

        if x.ndim < 4:
            layout = "(batch..., height, width, channels)" if data_format == "channels_last" \
                else "(batch..., channels, height, width)"
            raise ValueError(
                f"x must have at least 4 dimensions {layout} for data_format={data_format!r}; "
                f"received x with shape {x.shape}"
            )
        if kernel.ndim != 4:
            raise ValueError(
                "kernel must be a 4-D array (kernel_height, kernel_width, in_channels // groups, "
                f"filters); received kernel with shape {kernel.shape}"
            )
        if data_format == "channels_last":
            height, width, channels = x.shape[-3:]
        else:
            channels, height, width = x.shape[-3:]
        kernel_h, kernel_w, kernel_channels, filters = kernel.shape
        if channels == 0:
            raise ValueError(f"x must have at least one channel; received x with shape {x.shape}")
        if min(kernel.shape) == 0:
            raise ValueError(
                f"kernel dimensions must be positive; received kernel with shape {kernel.shape}"
            )
        if channels % groups:
            raise ValueError(
                f"the input channels must be divisible by groups; received groups={groups} "
                f"and x with shape {x.shape} ({channels} channels, data_format={data_format!r})"
            )
        if filters % groups:
            raise ValueError(
                "the filters (kernel.shape[3]) must be divisible by groups; "
                f"received groups={groups} and kernel with shape {kernel.shape}"
            )
        if kernel_channels != channels // groups:
            raise ValueError(
                f"kernel.shape[2] must equal input channels // groups = {channels} // {groups} = "
                f"{channels // groups}; received kernel with shape {kernel.shape} and x with shape "
                f"{x.shape} (data_format={data_format!r})"
            )
        pads, (out_h, out_w) = resolve_padding(
            padding_mode, (height, width), (kernel_h, kernel_w), strides, dilation_rate
        )
        if out_h <= 0 or out_w <= 0:
            raise ValueError(
                f"the convolution output would be empty: x with shape {x.shape} "
                f"(height={height}, width={width}), kernel size {(kernel_h, kernel_w)}, "
                f"dilation_rate {dilation_rate} and strides {strides} with padding={padding!r} "
                f"give an output of {out_h} x {out_w}"
            )
        self.data_format = data_format
        self.batch_shape = x.shape[:-3]
        self.batch = int(np.prod(self.batch_shape, dtype=np.int64))
        self.height, self.width, self.channels = height, width, channels
        self.kernel_h, self.kernel_w, self.filters = kernel_h, kernel_w, filters
        self.groups = groups
        self.out_h, self.out_w = out_h, out_w
        self.pad_top, self.pad_left = pads[0][0], pads[1][0]
        self.strides, self.dilation_rate = strides, dilation_rate
        # Depthwise gets its own kernels; a single channel is an ordinary convolution.
        self.depthwise = groups == channels and groups > 1

    @property
    def scalars(self):
        """The int arguments every kernel takes after its arrays."""
        return (*self.strides, *self.dilation_rate, self.pad_top, self.pad_left)

    @property
    def multiply_adds(self):
        return (self.batch * self.out_h * self.out_w * self.kernel_h * self.kernel_w
                * (self.channels // self.groups) * self.filters)

    def output_shape(self):
        """Shape of conv2d's result in the caller's layout."""
        if self.data_format == "channels_last":
            return (*self.batch_shape, self.out_h, self.out_w, self.filters)
        return (*self.batch_shape, self.filters, self.out_h, self.out_w)

    def to_canonical(self, array, dtype):
        """Caller's layout (batch..., spatial, channels) -> C-contiguous (N, H, W, C)."""
        if self.data_format == "channels_first":
            array = np.moveaxis(array, -3, -1)
        array = array.reshape((self.batch, *array.shape[-3:]))
        return _canonical(array, dtype)

    def from_canonical(self, array, dtype):
        """(N, H, W, C) kernel result -> caller's layout and dtype, never aliasing an input."""
        array = array.reshape((*self.batch_shape, *array.shape[1:]))
        if self.data_format == "channels_first":
            array = np.moveaxis(array, -1, -3)
        return np.ascontiguousarray(array, dtype=dtype)


def _check_bias(bias, filters):
    if bias.shape != (filters,):
        raise ValueError(
            f"bias must have shape (filters,) = ({filters},); received bias with shape {bias.shape}"
        )


def conv2d(x, kernel, bias=None, strides=1, padding="valid", data_format="channels_last",
           dilation_rate=1, groups=1):
    """2-D convolution (cross-correlation) with Keras semantics.

    Parameters
    ----------
    x : array_like, shape (batch..., H, W, C) or (batch..., C, H, W)
        Any number (at least one) of leading batch dimensions.
    kernel : array_like, shape (KH, KW, C // groups, filters)
    bias : array_like, shape (filters,), optional
    strides, dilation_rate : int or pair of ints
        A stride > 1 cannot be combined with a dilation > 1.
    padding : "valid", "same", int, (pad_h, pad_w) or ((top, bottom), (left, right))
        Mode names are case-insensitive.
        "same" pads like TensorFlow: the extra pixel goes to the bottom/right.
    data_format : "channels_last" or "channels_first"
    groups : int
        Group ``g`` reads input channels ``[g*C/G, (g+1)*C/G)`` and writes filters
        ``[g*F/G, (g+1)*F/G)``.

    Returns
    -------
    ndarray, shape (batch..., OH, OW, filters) or (batch..., filters, OH, OW)

    Raises
    ------
    TypeError
        An argument that is not a real numeric array, or an option of the wrong type.
    ValueError
        Inconsistent shapes, bad options, or an empty output.
    """
    x = _real_array(x, "x")
    kernel = _real_array(kernel, "kernel")
    geometry = _Geometry(x, kernel, strides, padding, data_format, dilation_rate, groups)
    if bias is not None:
        bias = _real_array(bias, "bias")
        _check_bias(bias, geometry.filters)
        result_dtype, dtype = _dtypes(x, kernel, bias)
        bias = _canonical(bias, dtype)
    else:
        result_dtype, dtype = _dtypes(x, kernel)
        bias = np.zeros(geometry.filters, dtype=dtype)
    x = geometry.to_canonical(x, dtype)
    kernel = _canonical(kernel, dtype)
    out = np.empty((geometry.batch, geometry.out_h, geometry.out_w, geometry.filters), dtype=dtype)
    runtime.run(*_KERNELS["forward", geometry.depthwise], geometry.multiply_adds,
                x, kernel, bias, out, *geometry.scalars)
    return geometry.from_canonical(out, result_dtype)


def _check_wrt(wrt):
    """The set of gradient names in ``wrt`` (a name or a sequence of names)."""
    try:
        names = (wrt,) if isinstance(wrt, str) else tuple(wrt)
    except TypeError:
        raise TypeError(
            f"wrt must be a sequence of names from {GRADIENT_NAMES}; received wrt={wrt!r}"
        ) from None
    for name in names:
        if not isinstance(name, str) or name not in GRADIENT_NAMES:
            raise ValueError(f"wrt entries must be among {GRADIENT_NAMES}; received wrt={wrt!r}")
    return frozenset(names)


def conv2d_grads(x, kernel, grad_output, strides=1, padding="valid", data_format="channels_last",
                 dilation_rate=1, groups=1, wrt=GRADIENT_NAMES):
    """Gradients of ``sum(conv2d(x, kernel, bias, ...) * grad_output)``.

    Takes the arguments of :func:`conv2d` (the bias does not enter the
    gradients) plus ``grad_output``, shaped like conv2d's result, and ``wrt``,
    the names among "input", "kernel", "bias" to compute.

    Returns
    -------
    (grad_input, grad_kernel, grad_bias)
        Shaped like ``x``, ``kernel`` and ``(filters,)``; ``None`` for each name
        not in ``wrt`` (which is then not computed).  Their dtype is the
        promotion of those of ``x``, ``kernel`` and ``grad_output`` (float16
        computed in float32).

    Raises
    ------
    TypeError, ValueError
        As :func:`conv2d`; also a ``grad_output`` of the wrong shape and
        unknown ``wrt`` entries.
    """
    wanted = _check_wrt(wrt)
    x = _real_array(x, "x")
    kernel = _real_array(kernel, "kernel")
    grad_output = _real_array(grad_output, "grad_output")
    geometry = _Geometry(x, kernel, strides, padding, data_format, dilation_rate, groups)
    if grad_output.shape != geometry.output_shape():
        raise ValueError(
            f"grad_output must have the shape of conv2d's output, {geometry.output_shape()}; "
            f"received grad_output with shape {grad_output.shape}"
        )
    result_dtype, dtype = _dtypes(x, kernel, grad_output)
    grad_output_c = geometry.to_canonical(grad_output, dtype)
    work = geometry.multiply_adds
    scalars = geometry.scalars
    grad_input = grad_kernel = grad_bias = None

    if "input" in wanted:
        kernel_c = _canonical(kernel, dtype)
        grad_input_c = np.empty(
            (geometry.batch, geometry.height, geometry.width, geometry.channels), dtype=dtype)
        runtime.run(*_KERNELS["grad_input", geometry.depthwise], work,
                    grad_output_c, kernel_c, grad_input_c, *scalars)
        grad_input = geometry.from_canonical(grad_input_c, result_dtype)

    if "kernel" in wanted:
        x_c = geometry.to_canonical(x, dtype)
        grad_kernel_c = np.empty(kernel.shape, dtype=dtype)
        runtime.run(*_KERNELS["grad_kernel", geometry.depthwise], work,
                    x_c, grad_output_c, grad_kernel_c, *scalars)
        grad_kernel = grad_kernel_c.astype(result_dtype, copy=False)

    if "bias" in wanted:
        grad_bias_c = np.empty(geometry.filters, dtype=dtype)
        runtime.run(conv_kernels.conv2d_grad_bias_serial, conv_kernels.conv2d_grad_bias,
                    grad_output_c.size, grad_output_c, grad_bias_c)
        grad_bias = grad_bias_c.astype(result_dtype, copy=False)

    return grad_input, grad_kernel, grad_bias
