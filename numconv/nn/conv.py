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
from ..kernels import conv as conv_kernels
from ..kernels import planes as plane_kernels
from . import _conv_paths as _paths
from . import _winograd_strided as _strided
from ._arrays import canonical, real_array, result_and_compute_dtypes
from ._conv_geometry import ConvGeometry, written_out_padding

GRADIENT_NAMES = ("input", "kernel", "bias")

# (serial build, parallel build) of each kernel, by (job, depthwise).
_KERNELS = {
    ("forward", False): (conv_kernels.conv2d_forward_serial, conv_kernels.conv2d_forward),
    ("forward", True): (
        conv_kernels.depthwise_conv2d_forward_serial,
        conv_kernels.depthwise_conv2d_forward,
    ),
    ("grad_input", False): (conv_kernels.conv2d_grad_input_serial, conv_kernels.conv2d_grad_input),
    ("grad_input", True): (
        conv_kernels.depthwise_conv2d_grad_input_serial,
        conv_kernels.depthwise_conv2d_grad_input,
    ),
    ("grad_kernel", False): (
        conv_kernels.conv2d_grad_kernel_serial,
        conv_kernels.conv2d_grad_kernel,
    ),
    ("grad_kernel", True): (
        conv_kernels.depthwise_conv2d_grad_kernel_serial,
        conv_kernels.depthwise_conv2d_grad_kernel,
    ),
}


# channels_first grouped convolutions, depthwise included: (serial build, parallel
# build) working on the planes.
_PLANE_KERNELS = {
    "forward": (
        plane_kernels.grouped_planes_forward_serial,
        plane_kernels.grouped_planes_forward,
    ),
    "grad_input": (
        plane_kernels.grouped_planes_grad_input_serial,
        plane_kernels.grouped_planes_grad_input,
    ),
    "grad_kernel": (
        plane_kernels.grouped_planes_grad_kernel_serial,
        plane_kernels.grouped_planes_grad_kernel,
    ),
}


# (channel, filter) pairs per group up to which a grouped kernel gradient runs on the
# planes (see _planes_jobs).
GROUPED_PLANES_MAX_PAIRS = 64


def _planes_jobs(geometry):
    """The jobs that run on the channels_first planes kernels (numconv.kernels.planes).

    Depthwise: all three.  Other groups: the forward pass and the input gradient,
    which beat the channels_last grouped kernels and their transposing copies
    (float32 grouped32: forward 1.55 -> 1.08 ms, channels_last 1.07; 8 channels
    per group: 9.7 -> 2.3), and the kernel gradient with unit strides and at most
    GROUPED_PLANES_MAX_PAIRS (channel, filter) pairs per group (grouped32: 4.3 ->
    2.9 ms; 64 x 64 pairs took 2.7x as long, strides 2 1.5x).  One input channel
    and a small kernel (lenet1) is a depthwise convolution with a depth multiplier
    of ``filters``: its forward pass and input gradient run on the planes too
    (float32 lenet1: 1.35 -> 0.69 ms and 1.29 -> 0.88, with no transposing copy);
    its kernel gradient stays on the BLAS path, which the planes did not beat (and
    lost to with 8 filters).  Kernels of more taps (5x5, 7x7) stay on im2col for
    all jobs (2-4x faster there).
    """
    if geometry.data_format != "channels_first":
        return ()
    if geometry.depthwise:
        return ("forward", "grad_input", "grad_kernel")
    if geometry.groups > 1:
        pairs = geometry.channels * geometry.filters // geometry.groups**2
        if geometry.strides == (1, 1) and pairs <= GROUPED_PLANES_MAX_PAIRS:
            return ("forward", "grad_input", "grad_kernel")
        return ("forward", "grad_input")
    if geometry.channels == 1 and _paths.few_columns(geometry):
        return ("forward", "grad_input")
    return ()


def _check_bias(bias, filters):
    if bias.shape != (filters,):
        raise ValueError(
            f"bias must have shape (filters,) = ({filters},); received bias with shape {bias.shape}"
        )


def conv2d(
    x,
    kernel,
    bias=None,
    strides=1,
    padding="valid",
    data_format="channels_last",
    dilation_rate=1,
    groups=1,
):
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
    x = real_array(x, "x")
    kernel = real_array(kernel, "kernel")
    geometry = ConvGeometry(x, kernel, strides, padding, data_format, dilation_rate, groups)
    if bias is not None:
        bias = real_array(bias, "bias")
        _check_bias(bias, geometry.filters)
        result_dtype, dtype = result_and_compute_dtypes(x, kernel, bias)
        bias = canonical(bias, dtype)
    else:
        result_dtype, dtype = result_and_compute_dtypes(x, kernel)
    path = _paths.forward_path(geometry)
    if path == "matmul" and geometry.data_format == "channels_first":
        return _paths.pointwise_channels_first(geometry, x, kernel, bias, dtype, result_dtype)
    planes = "forward" in _planes_jobs(geometry)
    # The planes kernels skip padded taps: a non-finite weight takes a path that
    # multiplies the padding's zeros, as TensorFlow's does (0 * inf = nan).
    kernel_is_finite = not (path == "direct" or planes) or np.isfinite(kernel).all()
    if planes and kernel_is_finite:
        out_planes = allocate(
            (geometry.batch, geometry.filters, geometry.out_h, geometry.out_w),
            dtype,
            "conv2d output",
        )
        runtime.run(
            *_PLANE_KERNELS["forward"],
            geometry.multiply_adds,
            geometry.toplanes(x, dtype),
            canonical(kernel, dtype),
            np.zeros(geometry.filters, dtype=dtype) if bias is None else bias,
            out_planes,
            *geometry.scalars,
        )
        return out_planes.reshape(geometry.output_shape()).astype(result_dtype, copy=False)
    winograd_planes = path == "winograd" and _paths.winograd_on_planes(geometry)
    if geometry.data_format == "channels_first" and (path == "gemm" or winograd_planes):
        out_planes = allocate(
            (geometry.batch, geometry.filters, geometry.out_h * geometry.out_w),
            dtype,
            "conv2d output",
        )
        x_planes, kernel = geometry.toplanes(x, dtype), canonical(kernel, dtype)
        with _paths.blas_warnings_off():
            # Winograd declines Inf or NaN in the data: im2col keeps them where they belong.
            if not winograd_planes or not _paths.winograd_forward_planes(
                x_planes,
                kernel,
                bias,
                out_planes.reshape((geometry.batch, geometry.filters, geometry.out_h, -1)),
                geometry.dilation_rate,
                geometry.pad_top,
                geometry.pad_left,
                geometry.single_threaded,
            ):
                _paths.gemm_forward_planes(
                    x_planes,
                    kernel,
                    bias,
                    out_planes,
                    geometry.out_h,
                    geometry.out_w,
                    geometry.scalars,
                    geometry.single_threaded,
                )
        return out_planes.reshape(geometry.output_shape()).astype(result_dtype, copy=False)
    out = allocate(
        (geometry.batch, geometry.out_h, geometry.out_w, geometry.filters), dtype, "conv2d output"
    )
    x = geometry.tocanonical(x, dtype)
    kernel = canonical(kernel, dtype)
    # (channels_first stays on the planes: moving stem7x7s2's batch to channels last
    # and back around few_channels_forward took 23.9 ms against 17.7, float32.)
    if _paths.few_channels_blocks(geometry, dtype):
        runtime.run(
            conv_kernels.few_channels_forward_serial,
            conv_kernels.few_channels_forward,
            geometry.multiply_adds,
            x,
            kernel,
            np.zeros(geometry.filters, dtype=dtype) if bias is None else bias,
            out,
            *geometry.scalars,
        )
    elif path in ("gemm", "winograd", "winograd_strided"):
        with _paths.blas_warnings_off():
            if path == "winograd":
                done = _paths.winograd_forward(
                    x,
                    kernel,
                    bias,
                    out,
                    geometry.dilation_rate,
                    geometry.pad_top,
                    geometry.pad_left,
                    geometry.single_threaded,
                )
            elif path == "winograd_strided":
                done = _strided.forward(x, kernel, bias, out, geometry)
            else:
                done = False
            # Winograd declines Inf or NaN in the data: im2col keeps them where they belong.
            if not done:
                _paths.gemm_forward(
                    x,
                    kernel,
                    bias,
                    out,
                    geometry.out_h,
                    geometry.out_w,
                    geometry.scalars,
                    geometry.single_threaded,
                )
    elif path == "matmul":
        out_rows = out.reshape(-1, geometry.filters)
        with _paths.blas_warnings_off():
            np.matmul(
                x.reshape(-1, geometry.channels),
                kernel.reshape(geometry.channels, -1),
                out=out_rows,
            )
            if bias is not None:
                _paths.add_bias(out_rows, bias, geometry.single_threaded)
    else:
        if bias is None:
            bias = np.zeros(geometry.filters, dtype=dtype)
        scalars = geometry.scalars
        if not kernel_is_finite:
            x, scalars = written_out_padding(x, geometry) or (x, scalars)
        kernels = _KERNELS["forward", geometry.depthwise]
        if _paths.three_by_three_blocks(geometry, dtype):
            kernels = (conv_kernels.few_terms_forward_serial, conv_kernels.few_terms_forward)
        elif _paths.groups_of_four(geometry, dtype):
            kernels = (
                conv_kernels.groups_of_four_forward_serial,
                conv_kernels.groups_of_four_forward,
            )
        runtime.run(
            *kernels,
            geometry.multiply_adds,
            x,
            kernel,
            bias,
            out,
            *scalars,
        )
    return geometry.fromcanonical(out, result_dtype)


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


def conv2d_grads(
    x,
    kernel,
    grad_output,
    strides=1,
    padding="valid",
    data_format="channels_last",
    dilation_rate=1,
    groups=1,
    wrt=GRADIENT_NAMES,
):
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
    x = real_array(x, "x")
    kernel = real_array(kernel, "kernel")
    grad_output = real_array(grad_output, "grad_output")
    geometry = ConvGeometry(x, kernel, strides, padding, data_format, dilation_rate, groups)
    if grad_output.shape != geometry.output_shape():
        raise ValueError(
            f"grad_output must have the shape of conv2d's output, {geometry.output_shape()}; "
            f"received grad_output with shape {grad_output.shape}"
        )
    result_dtype, dtype = result_and_compute_dtypes(x, kernel, grad_output)
    if _paths.grad_kernel_path(geometry) == "matmul" and geometry.data_format == "channels_first":
        return _paths.pointwise_channels_first_grads(
            geometry, x, kernel, grad_output, wanted, dtype, result_dtype
        )
    channels_first = geometry.data_format == "channels_first"
    gin_path = _paths.grad_input_path(geometry)
    if gin_path == "flipped" and not np.isfinite(kernel).all():
        # The flipped kernel runs over zero-padded grad_output: 0 * Inf would put a
        # NaN where the input gradient has no term.
        gin_path = "col2im"
    gker_path = _paths.grad_kernel_path(geometry)
    # channels_first data stays in planes on the col2im and im2col paths, for the
    # planes kernels and for the bias; only the other paths need the channels_last copies.
    planes_jobs = _planes_jobs(geometry)
    gin_on_planes = "grad_input" in planes_jobs
    winograd_planes = _paths.winograd_on_planes(geometry)
    gin_planes = (
        channels_first and gin_path == "col2im"
        or gin_path == "flipped" and winograd_planes
        or gin_on_planes
    )
    # An Inf or NaN of grad_output meeting the padding must give NaN (see
    # written_out_padding): the channels_last kernel gradient does that.
    gker_on_planes = (
        "grad_kernel" in planes_jobs and "kernel" in wanted and np.isfinite(grad_output).all()
    )
    gker_winograd_planes = gker_path == "winograd" and winograd_planes
    gker_planes = (
        channels_first and (gker_path == "gemm" or gker_winograd_planes) or gker_on_planes
    )
    # The results first: a far-too-large request fails before any work or scratch.
    grad_input_c = grad_kernel_c = grad_bias_c = None
    if "input" in wanted:
        grad_input_c = allocate(
            (geometry.batch, geometry.channels, geometry.height, geometry.width)
            if gin_planes
            else (geometry.batch, geometry.height, geometry.width, geometry.channels),
            dtype,
            "conv2d input gradient",
        )
    if "kernel" in wanted:
        grad_kernel_c = allocate(kernel.shape, dtype, "conv2d kernel gradient")
    if "bias" in wanted:
        grad_bias_c = allocate((geometry.filters,), dtype, "conv2d bias gradient")
    grad_planes = (
        geometry.toplanes(grad_output, dtype).reshape(
            (geometry.batch, geometry.filters, geometry.out_h * geometry.out_w)
        )
        if channels_first
        else None
    )
    needs_canonical = (
        (grad_input_c is not None and not gin_planes)
        or (grad_kernel_c is not None and not gker_planes)
        or (grad_bias_c is not None and not channels_first)
    )
    grad_output_c = geometry.tocanonical(grad_output, dtype) if needs_canonical else None
    work = geometry.multiply_adds
    scalars = geometry.scalars
    grad_input = grad_kernel = grad_bias = None
    out_h, out_w, filters = geometry.out_h, geometry.out_w, geometry.filters

    with _paths.blas_warnings_off():
        if grad_input_c is not None:
            kernel_c = canonical(kernel, dtype)
            if gin_on_planes:
                runtime.run(
                    *_PLANE_KERNELS["grad_input"],
                    work,
                    grad_planes.reshape((geometry.batch, filters, out_h, out_w)),
                    kernel_c,
                    grad_input_c,
                    *scalars,
                )
            elif gin_path == "flipped" and gin_planes:
                _paths.flipped_grad_input(
                    grad_planes.reshape((geometry.batch, filters, out_h, out_w)),
                    kernel_c,
                    grad_input_c,
                    geometry,
                    planes=True,
                )
            elif gin_path == "flipped":
                _paths.flipped_grad_input(grad_output_c, kernel_c, grad_input_c, geometry)
            elif gin_path == "col2im":
                col2im, grads = (
                    (_paths.col2im_grad_input_planes, grad_planes)
                    if gin_planes
                    else (_paths.col2im_grad_input, grad_output_c)
                )
                col2im(
                    grads, kernel_c, grad_input_c, out_h, out_w, scalars, geometry.single_threaded
                )
            elif gin_path == "winograd_strided":
                _strided.grad_input(grad_output_c, kernel_c, grad_input_c, geometry)
            elif gin_path == "matmul":
                np.matmul(
                    grad_output_c.reshape(-1, filters),
                    kernel_c.reshape(geometry.channels, filters).T,
                    out=grad_input_c.reshape(-1, geometry.channels),
                )
            else:
                runtime.run(
                    *_KERNELS["grad_input", geometry.depthwise],
                    work,
                    grad_output_c,
                    kernel_c,
                    grad_input_c,
                    *scalars,
                )
            if gin_planes:
                grad_input = grad_input_c.reshape(x.shape).astype(result_dtype, copy=False)
            else:
                grad_input = geometry.fromcanonical(grad_input_c, result_dtype)

        if grad_kernel_c is not None:
            if gker_on_planes:
                runtime.run(
                    *_PLANE_KERNELS["grad_kernel"],
                    work,
                    geometry.toplanes(x, dtype),
                    grad_planes.reshape((geometry.batch, filters, out_h, out_w)),
                    grad_kernel_c,
                    *scalars,
                )
            elif gker_planes:
                x_planes = geometry.toplanes(x, dtype)
                # Winograd declines Inf or NaN in the data: im2col keeps them where they belong.
                if not gker_winograd_planes or not _paths.winograd_grad_kernel_planes(
                    x_planes,
                    grad_planes.reshape((geometry.batch, filters, out_h, out_w)),
                    grad_kernel_c,
                    geometry.dilation_rate,
                    geometry.pad_top,
                    geometry.pad_left,
                    geometry.single_threaded,
                ):
                    _paths.gemm_grad_kernel_planes(
                        x_planes,
                        grad_planes,
                        grad_kernel_c,
                        out_h,
                        out_w,
                        scalars,
                        geometry.single_threaded,
                    )
            else:
                x_c = geometry.tocanonical(x, dtype)
                _grad_kernel_into(grad_kernel_c, x_c, grad_output_c, geometry)
            grad_kernel = grad_kernel_c.astype(result_dtype, copy=False)

    if grad_bias_c is not None:
        if channels_first:
            np.sum(grad_planes, axis=(0, 2), out=grad_bias_c)
        else:
            runtime.run(
                conv_kernels.conv2d_grad_bias_serial,
                conv_kernels.conv2d_grad_bias,
                work,
                grad_output_c,
                grad_bias_c,
            )
        grad_bias = grad_bias_c.astype(result_dtype, copy=False)

    return grad_input, grad_kernel, grad_bias


def _grad_kernel_into(grad_kernel, x, grad_output, geometry):
    """Write the kernel gradient of ``geometry`` (canonical arrays) into ``grad_kernel``."""
    path = _paths.grad_kernel_path(geometry)
    if path == "winograd":
        if _paths.winograd_grad_kernel(
            x,
            grad_output,
            grad_kernel,
            geometry.dilation_rate,
            geometry.pad_top,
            geometry.pad_left,
            geometry.single_threaded,
        ):
            return
        path = "gemm"  # Inf or NaN in the data
    if path == "winograd_strided":
        if _strided.grad_kernel(x, grad_output, grad_kernel, geometry):
            return
        path = "gemm"  # Inf or NaN in the data
    if path == "gemm":
        _paths.gemm_grad_kernel(
            x,
            grad_output,
            grad_kernel,
            geometry.out_h,
            geometry.out_w,
            geometry.scalars,
            geometry.single_threaded,
        )
    elif path == "matmul":
        np.matmul(
            x.reshape(-1, geometry.channels).T,
            grad_output.reshape(-1, geometry.filters),
            out=grad_kernel.reshape(geometry.channels, geometry.filters),
        )
    else:
        scalars = geometry.scalars
        if not np.isfinite(grad_output).all():
            x, scalars = written_out_padding(x, geometry) or (x, scalars)
        runtime.run(
            *_KERNELS["grad_kernel", geometry.depthwise],
            geometry.multiply_adds,
            x,
            grad_output,
            grad_kernel,
            *scalars,
        )
