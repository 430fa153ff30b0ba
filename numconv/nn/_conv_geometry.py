"""ConvGeometry: the checked shapes and options of one convolution, in the kernels' terms.

It also moves arrays between the caller's layout (channels first or last, any
number of batch axes) and the kernels' canonical one (N, H, W, C), C-contiguous.
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
from .._memory import allocate
from ..kernels import gemm as gemm_kernels
from ._arrays import canonical


class ConvGeometry:
    """Checked shapes and options of one convolution, in the kernels' terms."""

    def __init__(self, x, kernel, strides, padding, data_format, dilation_rate, groups):
        data_format = normalize_data_format(data_format)
        strides = normalize_tuple(strides, 2, "strides")
        dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate")
        check_strides_and_dilation(strides, dilation_rate)
        padding_mode = normalize_padding(padding)
        groups = check_positive_int(groups, "groups")

        if x.ndim < 4:
            layout = (
                "(batch..., height, width, channels)"
                if data_format == "channels_last"
                else "(batch..., channels, height, width)"
            )
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
    def single_threaded(self):
        """A problem small enough that thread hand-offs would cost more than they save."""
        return not runtime.use_parallel(self.multiply_adds)

    @property
    def is_pointwise(self):
        """A 1x1 kernel with stride 1 and no padding: a plain matrix product per pixel."""
        return (
            self.kernel_h == self.kernel_w == 1
            and self.strides == (1, 1)
            and self.pad_top == self.pad_left == 0
            and (self.out_h, self.out_w) == (self.height, self.width)
        )

    @property
    def multiply_adds(self):
        return (
            self.batch
            * self.out_h
            * self.out_w
            * self.kernel_h
            * self.kernel_w
            * (self.channels // self.groups)
            * self.filters
        )

    def output_shape(self):
        """Shape of conv2d's result in the caller's layout."""
        if self.data_format == "channels_last":
            return (*self.batch_shape, self.out_h, self.out_w, self.filters)
        return (*self.batch_shape, self.filters, self.out_h, self.out_w)

    def _moves_channels(self, shape):
        """channels_first data whose channel axis really moves (not 1 channel or 1 pixel)."""
        return self.data_format == "channels_first" and shape[-3] > 1 and shape[-2] * shape[-1] > 1

    def toplanes(self, array, dtype):
        """channels_first (batch..., C, H, W) -> C-contiguous (N, C, H, W), never a transpose."""
        return canonical(array.reshape((self.batch, *array.shape[-3:])), dtype)

    def tocanonical(self, array, dtype):
        """Caller's layout (batch..., spatial, channels) -> C-contiguous (N, H, W, C)."""
        if self._moves_channels(array.shape):
            channels, height, width = array.shape[-3:]
            planes = canonical(array.reshape((self.batch, channels, height * width)), dtype)
            pixels = allocate(
                (self.batch, height * width, channels), dtype, "conv2d channels_last copy"
            )
            runtime.launch(
                not self.single_threaded,
                gemm_kernels.swap_last_axes_serial,
                gemm_kernels.swap_last_axes,
                planes,
                pixels,
            )
            return pixels.reshape((self.batch, height, width, channels))
        if self.data_format == "channels_first":
            array = np.moveaxis(array, -3, -1)
        array = array.reshape((self.batch, *array.shape[-3:]))
        return canonical(array, dtype)

    def fromcanonical(self, array, dtype):
        """(N, H, W, C) kernel result -> caller's layout and dtype, never aliasing an input."""
        batch, height, width, channels = array.shape
        if self._moves_channels((channels, height, width)):
            planes = allocate(
                (batch, channels, height * width), array.dtype, "conv2d channels_first result"
            )
            runtime.launch(
                not self.single_threaded,
                gemm_kernels.swap_last_axes_serial,
                gemm_kernels.swap_last_axes,
                array.reshape((batch, height * width, channels)),
                planes,
            )
            planes = planes.reshape((*self.batch_shape, channels, height, width))
            return planes.astype(dtype, copy=False)
        array = array.reshape((*self.batch_shape, *array.shape[1:]))
        if self.data_format == "channels_first":
            array = np.moveaxis(array, -1, -3)
        return np.ascontiguousarray(array, dtype=dtype)


def written_out_padding(x, geometry):
    """``x`` (canonical) with its zero padding materialised, and kernel scalars without padding.

    The direct kernels skip padded taps instead of multiplying by zero.  That
    is the same except where an Inf or NaN of the kernel (forward) or of
    grad_output (kernel gradient) meets the padding: arithmetic on padded
    patches, as TensorFlow does it, gives 0 * Inf = NaN there.  Returns None
    when the convolution has no padding.
    """
    stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left = geometry.scalars
    pad_bottom = max(
        0,
        (geometry.out_h - 1) * stride_h
        + (geometry.kernel_h - 1) * dilation_h
        + 1
        - geometry.height
        - pad_top,
    )
    pad_right = max(
        0,
        (geometry.out_w - 1) * stride_w
        + (geometry.kernel_w - 1) * dilation_w
        + 1
        - geometry.width
        - pad_left,
    )
    if pad_top == pad_left == pad_bottom == pad_right == 0:
        return None
    batch, height, width, channels = x.shape
    padded = allocate(
        (batch, pad_top + height + pad_bottom, pad_left + width + pad_right, channels),
        x.dtype,
        "conv2d zero-padded input",
    )
    padded.fill(0)
    padded[:, pad_top : pad_top + height, pad_left : pad_left + width] = x
    return padded, (stride_h, stride_w, dilation_h, dilation_w, 0, 0)
