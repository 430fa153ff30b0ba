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
from .._memory import allocate
from .._arguments import (
    check_positive_int,
    check_strides_and_dilation,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    resolve_padding,
)
from ..kernels import conv as conv_kernels
from ..kernels import gemm as gemm_kernels
from ..kernels import winograd as winograd_kernels

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


def _written_out_padding(x, geometry):
    """``x`` (canonical) with its zero padding materialised, and kernel scalars without padding.

    The direct kernels skip padded taps instead of multiplying by zero.  That
    is the same except where an Inf or NaN of the kernel (forward) or of
    grad_output (kernel gradient) meets the padding: arithmetic on padded
    patches, as TensorFlow does it, gives 0 * Inf = NaN there.  Returns None
    when the convolution has no padding.
    """
    stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left = geometry.scalars
    pad_bottom = max(0, (geometry.out_h - 1) * stride_h + (geometry.kernel_h - 1) * dilation_h
                     + 1 - geometry.height - pad_top)
    pad_right = max(0, (geometry.out_w - 1) * stride_w + (geometry.kernel_w - 1) * dilation_w
                    + 1 - geometry.width - pad_left)
    if pad_top == pad_left == pad_bottom == pad_right == 0:
        return None
    batch, height, width, channels = x.shape
    padded = allocate((batch, pad_top + height + pad_bottom, pad_left + width + pad_right,
                       channels), x.dtype, "conv2d zero-padded input")
    padded.fill(0)
    padded[:, pad_top:pad_top + height, pad_left:pad_left + width] = x
    return padded, (stride_h, stride_w, dilation_h, dilation_w, 0, 0)


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
    def single_threaded(self):
        """A problem small enough that thread hand-offs would cost more than they save."""
        return not runtime.use_parallel(self.multiply_adds)

    @property
    def is_pointwise(self):
        """A 1x1 kernel with stride 1 and no padding: a plain matrix product per pixel."""
        return (self.kernel_h == self.kernel_w == 1 and self.strides == (1, 1)
                and self.pad_top == self.pad_left == 0
                and (self.out_h, self.out_w) == (self.height, self.width))

    @property
    def multiply_adds(self):
        return (self.batch * self.out_h * self.out_w * self.kernel_h * self.kernel_w
                * (self.channels // self.groups) * self.filters)

    def output_shape(self):
        """Shape of conv2d's result in the caller's layout."""
        if self.data_format == "channels_last":
            return (*self.batch_shape, self.out_h, self.out_w, self.filters)
        return (*self.batch_shape, self.filters, self.out_h, self.out_w)

    def _moves_channels(self, shape):
        """channels_first data whose channel axis really moves (not 1 channel or 1 pixel)."""
        return (self.data_format == "channels_first" and shape[-3] > 1
                and shape[-2] * shape[-1] > 1)

    def to_canonical(self, array, dtype):
        """Caller's layout (batch..., spatial, channels) -> C-contiguous (N, H, W, C)."""
        if self._moves_channels(array.shape):
            channels, height, width = array.shape[-3:]
            planes = _canonical(array.reshape((self.batch, channels, height * width)), dtype)
            pixels = allocate((self.batch, height * width, channels), dtype,
                              "conv2d channels_last copy")
            runtime.launch(not self.single_threaded, gemm_kernels.swap_last_axes_serial,
                           gemm_kernels.swap_last_axes, planes, pixels)
            return pixels.reshape((self.batch, height, width, channels))
        if self.data_format == "channels_first":
            array = np.moveaxis(array, -3, -1)
        array = array.reshape((self.batch, *array.shape[-3:]))
        return _canonical(array, dtype)

    def from_canonical(self, array, dtype):
        """(N, H, W, C) kernel result -> caller's layout and dtype, never aliasing an input."""
        batch, height, width, channels = array.shape
        if self._moves_channels((channels, height, width)):
            planes = allocate((batch, channels, height * width), array.dtype,
                              "conv2d channels_first result")
            runtime.launch(not self.single_threaded, gemm_kernels.swap_last_axes_serial,
                           gemm_kernels.swap_last_axes,
                           array.reshape((batch, height * width, channels)), planes)
            planes = planes.reshape((*self.batch_shape, channels, height, width))
            return planes.astype(dtype, copy=False)
        array = array.reshape((*self.batch_shape, *array.shape[1:]))
        if self.data_format == "channels_first":
            array = np.moveaxis(array, -1, -3)
        return np.ascontiguousarray(array, dtype=dtype)


# --------------------------------------------------------------------------- fast paths
#
# Which path computes what (docs/design.md, "Fast paths"):
#   "direct":  the Numba kernels of numconv.kernels.conv (small problems, groups > 1);
#   "matmul":  1x1 kernel, stride 1, no padding: one BLAS product on the reshaped arrays;
#   "gemm":    im2col of a bounded chunk of output rows, then a BLAS product per chunk;
#   "winograd": 3x3 stride 1 undilated: Winograd F(2x2, 3x3) tiles, 16 BLAS products per chunk;
#   "flipped": (input gradient, stride 1) the forward "gemm" path run on grad_output
#              with the spatially flipped, transposed kernel;
#   "col2im":  (input gradient) grad_output @ kernel^T per chunk, added back by col2im.
# Every choice depends on the shapes and dtype only, never on the thread count.

# Problems below runtime.PARALLEL_MIN_WORK multiply-adds run on the calling
# thread alone: serial Numba builds, and BLAS products cut below
# BLAS_SINGLE_THREAD_WORK so that OpenBLAS runs them on the calling thread too.
# OpenBLAS computes a product of m * n * k < 2 * 65536 * 4 multiply-adds on one thread.
BLAS_SINGLE_THREAD_WORK = (1 << 19) - 1
# A forward product with fewer columns (KH * KW * C; lenet1: 9) is mostly writing
# its output: the direct kernel does that without the im2col copy.
GEMM_MIN_COLUMNS = 16
# Winograd needs this many input channels and filters: its 16 products have them
# as their inner and outer sizes.
WINOGRAD_MIN_CHANNELS = 16
# Dilations up to this run as dilation**2 undilated Winograd convolutions.
WINOGRAD_MAX_DILATION = 4
# Bytes of the Winograd tile buffer of one chunk (the product buffer is as large
# times filters / channels).
WINOGRAD_BUFFER_BYTES = 2 << 20
# Bytes of one im2col / col2im chunk buffer (L2-sized: the BLAS product reads it right away).
COLUMN_BUFFER_BYTES = 2 << 20
# Below this many multiply-adds a call stays on the direct kernels: BLAS calls and
# buffer set-up would cost more than they save.
GEMM_MIN_WORK = 1 << 20


def _blas_warnings_off():
    """NumPy warns about inf/nan met inside a BLAS product; the direct kernels never do."""
    return np.errstate(all="ignore")


def _winograd_fits(kernel_h, kernel_w, strides, dilation_rate, channels, filters):
    """F(2x2, 3x3) applies, and its 16 products have enough rows and columns for BLAS.

    A dilated kernel is split into undilated convolutions of the input's
    polyphase components (see ``_winograd_dilated``).
    """
    return ((kernel_h, kernel_w) == (3, 3) and strides == (1, 1)
            and max(dilation_rate) <= WINOGRAD_MAX_DILATION
            and channels >= WINOGRAD_MIN_CHANNELS and filters >= WINOGRAD_MIN_CHANNELS)


def _dense_path(geometry):
    """The path of a job that is a plain product: direct, matmul or gemm."""
    if geometry.groups != 1 or geometry.multiply_adds < GEMM_MIN_WORK:
        return "direct"
    if geometry.is_pointwise and not geometry.single_threaded:
        return "matmul"
    return "gemm"


def forward_path(geometry):
    """Name of the path that computes the forward pass of ``geometry``."""
    path = _dense_path(geometry)
    if path != "gemm":
        return path
    if _winograd_fits(geometry.kernel_h, geometry.kernel_w, geometry.strides,
                      geometry.dilation_rate, geometry.channels, geometry.filters):
        return "winograd"
    if geometry.kernel_h * geometry.kernel_w * geometry.channels < GEMM_MIN_COLUMNS:
        return "direct"
    return "gemm"


def grad_kernel_path(geometry):
    """Name of the path that computes the kernel gradient of ``geometry``."""
    return _dense_path(geometry)


def grad_input_path(geometry):
    """Name of the path that computes the input gradient of ``geometry``."""
    path = grad_kernel_path(geometry)
    if path != "gemm":
        return path
    if geometry.strides == (1, 1) and geometry.channels >= 16:
        return "flipped"
    return "col2im"


def _pack(single_threaded, serial_kernel, parallel_kernel, *args):
    """Run a packing / transform kernel next to BLAS products, threaded as its call is."""
    return runtime.launch(not single_threaded, serial_kernel, parallel_kernel, *args)


def _rows_per_chunk(out_w, columns, itemsize, total_rows, filters, single_threaded):
    """Output rows per im2col chunk: as many as fit the buffer budget, at least one.

    Single-threaded problems cut their products below BLAS_SINGLE_THREAD_WORK.
    """
    if single_threaded:
        rows = BLAS_SINGLE_THREAD_WORK // max(out_w * columns * filters, 1)
    else:
        rows = COLUMN_BUFFER_BYTES // max(out_w * columns * itemsize, 1)
    return int(max(1, min(rows, total_rows)))


def _gemm_forward(x, kernel, bias, out, out_h, out_w, scalars, single_threaded):
    """``out`` (N, OH, OW, F) = im2col(x) @ kernel + bias, chunk of output rows by chunk."""
    kernel_h, kernel_w, channels, filters = kernel.shape
    columns = kernel_h * kernel_w * channels
    weights = kernel.reshape(columns, filters)
    out_rows = out.reshape(-1, filters)
    total_rows = out.shape[0] * out_h
    chunk = _rows_per_chunk(out_w, columns, x.itemsize, total_rows, filters,
                            single_threaded)
    cols = allocate((chunk * out_w, columns), x.dtype, "conv2d im2col buffer")
    for row0 in range(0, total_rows, chunk):
        row1 = min(row0 + chunk, total_rows)
        pixels = (row1 - row0) * out_w
        _pack(single_threaded, gemm_kernels.im2col_serial, gemm_kernels.im2col, x, cols, row0, row1, out_h, kernel_h, kernel_w, out_w, *scalars)
        target = out_rows[row0 * out_w:row1 * out_w]
        np.matmul(cols[:pixels], weights, out=target)
        if bias is not None:
            np.add(target, bias, out=target)


def _gemm_forward_channels_first(x, kernel, bias, out_planes, out_h, out_w, scalars,
                                 single_threaded):
    """``out_planes`` (N, F, OH * OW) = (im2col(x) @ kernel)^T + bias, chunk by chunk.

    ``x`` is canonical (N, H, W, C); each product ``kernel^T @ cols^T`` writes a
    block of pixel columns of one image's (F, OH * OW) plane directly, so the
    channels_first result needs no transpose.  Chunks never straddle images.
    """
    kernel_h, kernel_w, channels, filters = kernel.shape
    columns = kernel_h * kernel_w * channels
    weights_t = kernel.reshape(columns, filters).T
    chunk = _rows_per_chunk(out_w, columns, x.itemsize, out_h, filters, single_threaded)
    cols = allocate((chunk * out_w, columns), x.dtype, "conv2d im2col buffer")
    for n in range(out_planes.shape[0]):
        for oh0 in range(0, out_h, chunk):
            oh1 = min(oh0 + chunk, out_h)
            pixels = (oh1 - oh0) * out_w
            row0 = n * out_h + oh0
            _pack(single_threaded, gemm_kernels.im2col_serial, gemm_kernels.im2col, x, cols, row0, row0 + oh1 - oh0, out_h, kernel_h, kernel_w, out_w, *scalars)
            target = out_planes[n, :, oh0 * out_w:oh1 * out_w]
            np.matmul(weights_t, cols[:pixels].T, out=target)
            if bias is not None:
                np.add(target, bias[:, None], out=target)


def _winograd_forward(x, kernel, bias, out, pad_top, pad_left, single_threaded):
    """``out`` (N, OH, OW, F) of a 3x3 stride-1 convolution by Winograd F(2x2, 3x3).

    Returns False, leaving ``out`` partly written, when ``x`` or ``kernel`` holds
    an Inf or NaN: the transforms would turn some finite outputs into NaN.
    """
    channels, filters = kernel.shape[2], kernel.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    tiles_h, tiles_w = -(-out_h // 2), -(-out_w // 2)
    total = out.shape[0] * tiles_h * tiles_w
    if single_threaded:
        chunk = BLAS_SINGLE_THREAD_WORK // (channels * filters)
    else:
        chunk = WINOGRAD_BUFFER_BYTES // (16 * channels * x.itemsize)
    chunk = int(max(1, min(chunk, total)))
    weights = allocate((16, channels, filters), x.dtype, "conv2d Winograd kernel")
    tiles = allocate((16, chunk, channels), x.dtype, "conv2d Winograd tile buffer")
    products = allocate((16, chunk, filters), x.dtype, "conv2d Winograd product buffer")
    if not np.isfinite(kernel).all():
        return False
    finite = allocate((chunk,), x.dtype, "conv2d Winograd check")
    winograd_kernels.transform_kernel(kernel, weights)
    if bias is None:
        bias = np.zeros(filters, dtype=x.dtype)
    for tile0 in range(0, total, chunk):
        tile1 = min(tile0 + chunk, total)
        count = tile1 - tile0
        _pack(single_threaded, winograd_kernels.transform_input_serial,
              winograd_kernels.transform_input, x, tiles, finite, tile0, tile1, tiles_h, tiles_w, pad_top, pad_left)
        if np.isnan(finite[:count]).any():
            return False
        np.matmul(tiles[:, :count], weights, out=products[:, :count])
        _pack(single_threaded, winograd_kernels.transform_output_serial,
              winograd_kernels.transform_output, products, bias, out, tile0, tile1, tiles_h, tiles_w)
    return True


def _winograd_dilated(x, kernel, bias, out, dilation_rate, pad_top, pad_left, single_threaded):
    """3x3 stride-1 convolution with any dilation by Winograd F(2x2, 3x3).

    With dilation (dh, dw), output rows ``oh = dh * p + a`` only read input
    rows ``dh * (p + kh + q) + r``, where ``a - pad_top = dh * q + r``
    (``0 <= r < dh``): an undilated convolution of the input's rows ``r::dh``
    with top padding ``-q``.  Likewise for columns.  Each of the dh * dw output
    phases is computed from a contiguous copy of its input phase.
    """
    dilation_h, dilation_w = dilation_rate
    if dilation_h == dilation_w == 1:
        return _winograd_forward(x, kernel, bias, out, pad_top, pad_left, single_threaded)
    batch, out_h, out_w, filters = out.shape
    for a in range(min(dilation_h, out_h)):
        shift_h, phase_h = divmod(a - pad_top, dilation_h)
        for b in range(min(dilation_w, out_w)):
            shift_w, phase_w = divmod(b - pad_left, dilation_w)
            x_phase = x[:, phase_h::dilation_h, phase_w::dilation_w]
            out_view = out[:, a::dilation_h, b::dilation_w]
            if x_phase.shape[1] == 0 or x_phase.shape[2] == 0:
                out_view[...] = bias if bias is not None else 0.0
                continue
            x_phase = np.ascontiguousarray(x_phase)
            out_phase = allocate(out_view.shape, out.dtype, "conv2d dilation phase")
            if not _winograd_forward(x_phase, kernel, bias, out_phase, -shift_h, -shift_w,
                                     single_threaded):
                return False
            out_view[...] = out_phase
    return True


def _gemm_grad_kernel(x, grad_output, grad_kernel, out_h, out_w, scalars, single_threaded):
    """grad_kernel = sum over chunks, in order, of im2col(x)^T @ grad_output."""
    kernel_h, kernel_w, channels, filters = grad_kernel.shape
    columns = kernel_h * kernel_w * channels
    total = grad_kernel.reshape(columns, filters)
    grad_rows = grad_output.reshape(-1, filters)
    total_rows = grad_output.shape[0] * out_h
    chunk = _rows_per_chunk(out_w, columns, x.itemsize, total_rows, filters,
                            single_threaded)
    cols = allocate((chunk * out_w, columns), x.dtype, "conv2d im2col buffer")
    partial = allocate((columns, filters), x.dtype, "conv2d kernel-gradient buffer")
    for row0 in range(0, total_rows, chunk):
        row1 = min(row0 + chunk, total_rows)
        pixels = (row1 - row0) * out_w
        _pack(single_threaded, gemm_kernels.im2col_serial, gemm_kernels.im2col, x, cols, row0, row1, out_h, kernel_h, kernel_w, out_w, *scalars)
        product = np.matmul(cols[:pixels].T, grad_rows[row0 * out_w:row1 * out_w],
                            out=total if row0 == 0 else partial)
        if row0 != 0:
            np.add(total, product, out=total)


def _col2im_grad_input(grad_output, kernel, grad_input, out_h, out_w, scalars, single_threaded):
    """grad_input = col2im(grad_output @ kernel^T), chunk of output rows by chunk, in order."""
    kernel_h, kernel_w, channels, filters = kernel.shape
    columns = kernel_h * kernel_w * channels
    weights_t = kernel.reshape(columns, filters).T
    grad_rows = grad_output.reshape(-1, filters)
    total_rows = grad_output.shape[0] * out_h
    chunk = _rows_per_chunk(out_w, columns, kernel.itemsize, total_rows, filters,
                            single_threaded)
    cols = allocate((chunk * out_w, columns), kernel.dtype, "conv2d col2im buffer")
    grad_input.fill(0.0)
    for row0 in range(0, total_rows, chunk):
        row1 = min(row0 + chunk, total_rows)
        pixels = (row1 - row0) * out_w
        np.matmul(grad_rows[row0 * out_w:row1 * out_w], weights_t, out=cols[:pixels])
        _pack(single_threaded, gemm_kernels.col2im_add_serial, gemm_kernels.col2im_add, cols, grad_input, row0, row1, out_h, kernel_h, kernel_w, out_w, *scalars)


def _flipped_grad_input(grad_output, kernel, grad_input, geometry):
    """Stride 1: grad_input is the convolution of grad_output with the flipped kernel^T."""
    flipped = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))
    dilation_h, dilation_w = geometry.dilation_rate
    pad_top = (geometry.kernel_h - 1) * dilation_h - geometry.pad_top
    pad_left = (geometry.kernel_w - 1) * dilation_w - geometry.pad_left
    if _winograd_fits(geometry.kernel_h, geometry.kernel_w, (1, 1), geometry.dilation_rate,
                      geometry.filters, geometry.channels):
        if _winograd_dilated(grad_output, flipped, None, grad_input, geometry.dilation_rate,
                             pad_top, pad_left, geometry.single_threaded):
            return
    _gemm_forward(grad_output, flipped, None, grad_input, geometry.height, geometry.width,
                  (1, 1, dilation_h, dilation_w, pad_top, pad_left), geometry.single_threaded)


def _planes(array, geometry, dtype):
    """channels_first (batch..., C, H, W) -> C-contiguous (N, C, H * W) in ``dtype``."""
    channels, height, width = array.shape[-3:]
    return _canonical(array.reshape((geometry.batch, channels, height * width)), dtype)


def _pointwise_channels_first(geometry, x, kernel, bias, dtype, result_dtype):
    """1x1 stride-1 convolution of channels_first data: ``kernel^T @ x[n]`` for each image."""
    channels, filters = geometry.channels, geometry.filters
    out = allocate((geometry.batch, filters, geometry.height * geometry.width), dtype,
                   "conv2d output")
    x = _planes(x, geometry, dtype)
    weights_t = _canonical(kernel, dtype).reshape(channels, filters).T
    with _blas_warnings_off():
        np.matmul(weights_t, x, out=out)
        if bias is not None:
            np.add(out, bias[:, None], out=out)
    return out.reshape(geometry.output_shape()).astype(result_dtype, copy=False)


def _pointwise_channels_first_grads(geometry, x, kernel, grad_output, wanted, dtype,
                                    result_dtype):
    """conv2d_grads of a 1x1 stride-1 channels_first convolution, without transposes."""
    channels, filters = geometry.channels, geometry.filters
    pixels = geometry.height * geometry.width
    grad_input = grad_kernel = grad_bias = None
    if "input" in wanted:
        grad_input = allocate((geometry.batch, channels, pixels), dtype, "conv2d input gradient")
    if "kernel" in wanted:
        per_image = allocate((geometry.batch, channels, filters), dtype,
                             "conv2d kernel-gradient buffer")
    grad_planes = _planes(grad_output, geometry, dtype)
    with _blas_warnings_off():
        if grad_input is not None:
            weights = _canonical(kernel, dtype).reshape(channels, filters)
            np.matmul(weights, grad_planes, out=grad_input)
            grad_input = grad_input.reshape(x.shape).astype(result_dtype, copy=False)
        if "kernel" in wanted:
            # One product per image, added in image order (NumPy's reduction over axis 0).
            np.matmul(_planes(x, geometry, dtype), grad_planes.transpose(0, 2, 1), out=per_image)
            grad_kernel = per_image.sum(axis=0).reshape(kernel.shape)
            grad_kernel = grad_kernel.astype(result_dtype, copy=False)
    if "bias" in wanted:
        grad_bias = grad_planes.sum(axis=(0, 2)).astype(result_dtype, copy=False)
    return grad_input, grad_kernel, grad_bias


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
    path = forward_path(geometry)
    if path == "matmul" and geometry.data_format == "channels_first":
        return _pointwise_channels_first(geometry, x, kernel, bias, dtype, result_dtype)
    if path == "gemm" and geometry.data_format == "channels_first":
        out_planes = allocate((geometry.batch, geometry.filters, geometry.out_h * geometry.out_w),
                              dtype, "conv2d output")
        x = geometry.to_canonical(x, dtype)
        with _blas_warnings_off():
            _gemm_forward_channels_first(x, _canonical(kernel, dtype), bias, out_planes,
                                         geometry.out_h, geometry.out_w, geometry.scalars,
                                         geometry.single_threaded)
        return out_planes.reshape(geometry.output_shape()).astype(result_dtype, copy=False)
    out = allocate((geometry.batch, geometry.out_h, geometry.out_w, geometry.filters), dtype,
                   "conv2d output")
    x = geometry.to_canonical(x, dtype)
    kernel = _canonical(kernel, dtype)
    if path == "gemm":
        with _blas_warnings_off():
            _gemm_forward(x, kernel, bias, out, geometry.out_h, geometry.out_w, geometry.scalars,
                          geometry.single_threaded)
    elif path == "winograd":
        with _blas_warnings_off():
            done = _winograd_dilated(x, kernel, bias, out, geometry.dilation_rate,
                                     geometry.pad_top, geometry.pad_left,
                                     geometry.single_threaded)
            if not done:  # Inf or NaN in the data: im2col keeps them where they belong
                _gemm_forward(x, kernel, bias, out, geometry.out_h, geometry.out_w,
                              geometry.scalars, geometry.single_threaded)
    elif path == "matmul":
        out_rows = out.reshape(-1, geometry.filters)
        with _blas_warnings_off():
            np.matmul(x.reshape(-1, geometry.channels), kernel.reshape(geometry.channels, -1),
                      out=out_rows)
            if bias is not None:
                np.add(out_rows, bias, out=out_rows)
    else:
        if bias is None:
            bias = np.zeros(geometry.filters, dtype=dtype)
        scalars = geometry.scalars
        if not np.isfinite(kernel).all():
            x, scalars = _written_out_padding(x, geometry) or (x, scalars)
        runtime.run(*_KERNELS["forward", geometry.depthwise], geometry.multiply_adds,
                    x, kernel, bias, out, *scalars)
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
    if grad_kernel_path(geometry) == "matmul" and geometry.data_format == "channels_first":
        return _pointwise_channels_first_grads(geometry, x, kernel, grad_output, wanted, dtype,
                                               result_dtype)
    # The results first: a far-too-large request fails before any work or scratch.
    grad_input_c = grad_kernel_c = grad_bias_c = None
    if "input" in wanted:
        grad_input_c = allocate(
            (geometry.batch, geometry.height, geometry.width, geometry.channels), dtype,
            "conv2d input gradient")
    if "kernel" in wanted:
        grad_kernel_c = allocate(kernel.shape, dtype, "conv2d kernel gradient")
    if "bias" in wanted:
        grad_bias_c = allocate((geometry.filters,), dtype, "conv2d bias gradient")
    grad_output_c = geometry.to_canonical(grad_output, dtype)
    work = geometry.multiply_adds
    scalars = geometry.scalars
    grad_input = grad_kernel = grad_bias = None
    out_h, out_w, filters = geometry.out_h, geometry.out_w, geometry.filters

    with _blas_warnings_off():
        if grad_input_c is not None:
            kernel_c = _canonical(kernel, dtype)
            path = grad_input_path(geometry)
            if path == "flipped":
                _flipped_grad_input(grad_output_c, kernel_c, grad_input_c, geometry)
            elif path == "col2im":
                _col2im_grad_input(grad_output_c, kernel_c, grad_input_c, out_h, out_w, scalars,
                                   geometry.single_threaded)
            elif path == "matmul":
                np.matmul(grad_output_c.reshape(-1, filters),
                          kernel_c.reshape(geometry.channels, filters).T,
                          out=grad_input_c.reshape(-1, geometry.channels))
            else:
                runtime.run(*_KERNELS["grad_input", geometry.depthwise], work,
                            grad_output_c, kernel_c, grad_input_c, *scalars)
            grad_input = geometry.from_canonical(grad_input_c, result_dtype)

        if grad_kernel_c is not None:
            x_c = geometry.to_canonical(x, dtype)
            path = grad_kernel_path(geometry)
            if path == "gemm":
                _gemm_grad_kernel(x_c, grad_output_c, grad_kernel_c, out_h, out_w, scalars,
                                  geometry.single_threaded)
            elif path == "matmul":
                np.matmul(x_c.reshape(-1, geometry.channels).T, grad_output_c.reshape(-1, filters),
                          out=grad_kernel_c.reshape(geometry.channels, filters))
            else:
                kernel_scalars = scalars
                if not np.isfinite(grad_output_c).all():
                    x_c, kernel_scalars = (_written_out_padding(x_c, geometry)
                                           or (x_c, scalars))
                runtime.run(*_KERNELS["grad_kernel", geometry.depthwise], work,
                            x_c, grad_output_c, grad_kernel_c, *kernel_scalars)
            grad_kernel = grad_kernel_c.astype(result_dtype, copy=False)

    if grad_bias_c is not None:
        runtime.run(conv_kernels.conv2d_grad_bias_serial, conv_kernels.conv2d_grad_bias,
                    work, grad_output_c,
                    grad_bias_c)
        grad_bias = grad_bias_c.astype(result_dtype, copy=False)

    return grad_input, grad_kernel, grad_bias
