"""The BLAS-backed paths of numconv.nn.conv and the rules choosing between them.

See docs/design.md, "Fast paths".  Every choice depends on the shapes and
dtype only, never on the thread count.
"""

from typing import NamedTuple

import numpy as np

from .. import runtime
from .._memory import allocate
from ..kernels import gemm as gemm_kernels
from ..kernels import simd
from ..kernels import winograd as winograd_kernels
from ..kernels import winograd4x4 as winograd4x4_kernels
from ..kernels import winograd_strided as winograd_strided_kernels
from ._arrays import canonical

# Which path computes what (docs/design.md, "Fast paths"):
#   "direct":  the Numba kernels of numconv.kernels.conv (small problems, groups > 1);
#   "matmul":  1x1 kernel, stride 1, no padding: one BLAS product on the reshaped arrays;
#   "gemm":    im2col of a bounded chunk of output rows, then a BLAS product per chunk;
#   "winograd": (forward, kernel gradient) 3x3 stride 1: Winograd F(4x4, 3x3) or
#              F(2x2, 3x3) tiles, 36 or 16 BLAS products per chunk (a dilated
#              kernel's tiles read one polyphase component of the input each);
#   "winograd_strided": (all jobs) kernels spanning two strides (4x4 stride 2): Winograd
#              F(3x3, 2x2) over the input's stride phases (numconv.nn._winograd_strided);
#   "flipped": (input gradient, stride 1) the forward "gemm" path run on grad_output
#              with the spatially flipped, transposed kernel;
#   "col2im":  (input gradient) grad_output @ kernel^T per chunk, added back by col2im.

# Problems below runtime.PARALLEL_MIN_WORK multiply-adds run on the calling
# thread alone: serial Numba builds, and BLAS products cut below
# BLAS_SINGLE_THREAD_WORK so that OpenBLAS runs them on the calling thread too.
# OpenBLAS computes a product of m * n * k < 2 * 65536 * 4 multiply-adds on one thread.
BLAS_SINGLE_THREAD_WORK = (1 << 19) - 1
# A forward product with fewer columns (KH * KW * C; lenet1: 9) is mostly writing
# its output: the direct kernel does that without the im2col copy (channels_last).
GEMM_MIN_COLUMNS = 16
# Winograd needs this many input channels and filters: its products have them
# as their inner and outer sizes.
WINOGRAD_MIN_CHANNELS = 16
# ... and products of at least this many tiles that one thread may compute: with
# many channels times filters the products shrink to a tile or two, far below
# BLAS's speed (3x3, 512 -> 512 channels on 7x7 images: 48 ms against 11 by im2col;
# 256 -> 256: 7 tiles, about even).
WINOGRAD_MIN_TILES = 8
# Dilations up to this take Winograd (tiles of dilation-spaced outputs, see tile_grid).
WINOGRAD_MAX_DILATION = 4
# Bytes of one im2col / col2im chunk buffer (L2-sized: the BLAS product reads it right away).
COLUMN_BUFFER_BYTES = 2 << 20
# A threaded im2col forward whose single-thread products hold at least this many
# pixels (few columns and filters: stem7x7s2's 147 x 64 gives 55) runs in lanes
# (runtime.run_lanes); with fewer, the pieces are too thin for BLAS and the
# chunked products on both of OpenBLAS's threads are faster.
LANE_MIN_PIXELS = 32
# Tiles per chunk of a Winograd kernel gradient whose single-thread products would sum
# fewer (see _grad_kernel_blocking; pix2pix4x4, one lane: float32 products 13.6 -> 10.0 ms).
GRAD_KERNEL_TILES = 64
# Bytes of one lane's im2col buffer: half of one core's L2.
LANE_COLUMN_BUFFER_BYTES = 512 << 10
# Below this many multiply-adds a call stays on the direct kernels: BLAS calls and
# buffer set-up would cost more than they save.
GEMM_MIN_WORK = 1 << 20


def blas_warnings_off():
    """NumPy warns about inf/nan met inside a BLAS product; the direct kernels never do."""
    return np.errstate(all="ignore")


def _winograd_fits(kernel_h, kernel_w, strides, dilation_rate, channels, filters):
    """Winograd F(m x m, 3x3) applies, and its products have enough rows and columns for BLAS.

    A dilated kernel's tiles hold outputs ``dilation`` apart (``tile_grid``).
    """
    return (
        (kernel_h, kernel_w) == (3, 3)
        and strides == (1, 1)
        and max(dilation_rate) <= WINOGRAD_MAX_DILATION
        and _winograd_products_fit(channels, filters)
    )


def _winograd_products_fit(channels, filters):
    """Winograd's products (tiles, channels) @ (channels, filters) are fit for BLAS."""
    return (
        channels >= WINOGRAD_MIN_CHANNELS
        and filters >= WINOGRAD_MIN_CHANNELS
        and _single_thread_rows(channels, filters) >= WINOGRAD_MIN_TILES
    )


def _winograd_strided_fits(geometry):
    """A strided, undilated kernel exactly two strides wide and high (pix2pix4x4's 4x4 at
    stride 2), with enough phase channels and filters for F(3x3, 2x2)'s products.

    A kernel that leaves some of the phase kernel's taps zero pays for them: strided3x3's
    3x3 at stride 2 (9 of 16 taps) took 8.6 ms by F(3x3, 2x2) against 5.9 by im2col.
    """
    stride_h, stride_w = geometry.strides
    return (
        geometry.strides != (1, 1)
        and geometry.dilation_rate == (1, 1)
        and (geometry.kernel_h, geometry.kernel_w) == (2 * stride_h, 2 * stride_w)
        and _winograd_products_fit(geometry.channels * stride_h * stride_w, geometry.filters)
    )


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
    if _winograd_fits_geometry(geometry):
        return "winograd"
    if _winograd_strided_fits(geometry):
        return "winograd_strided"
    # channels_first output from the direct kernel needs a transposing copy, which
    # costs more than the planes' im2col (lenet1: 2.9 against 1.7 ms, float32).
    if few_columns(geometry) and geometry.data_format == "channels_last":
        return "direct"
    return "gemm"


def three_by_three_blocks(geometry, dtype):
    """Whether the direct forward pass runs 3x3 one-channel windows in register blocks.

    ``kernels.conv.few_terms_forward`` does, for at least one block of two vectors
    of filters (fewer, in a block of 32 float32 lanes: 1.26x slower than the plain
    pass); ``conv2d_forward`` leaves the blocks out, so that the many models
    without such a layer do not compile them.
    """
    lanes = simd.VECTOR_BITS // (8 * np.dtype(dtype).itemsize)
    return (
        geometry.channels == 1
        and geometry.groups == 1
        and (geometry.kernel_h, geometry.kernel_w) == (3, 3)
        and geometry.dilation_rate[1] == 1
        and geometry.filters >= 2 * lanes
    )


def groups_of_four(geometry, dtype):
    """Whether the direct forward pass runs kernels.conv.groups_of_four_forward: groups of
    four channels and four filters, the filters a multiple of four vectors."""
    lanes = simd.VECTOR_BITS // (8 * np.dtype(dtype).itemsize)
    return (
        geometry.groups > 1
        and geometry.channels == 4 * geometry.groups
        and geometry.filters == 4 * geometry.groups
        and geometry.filters % (4 * lanes) == 0
    )


# few_channels_forward copies the input zero-padded: at most this many elements.
FEW_CHANNELS_PADDED_ELEMENTS = 1 << 24


def few_channels_blocks(geometry, dtype):
    """Whether the forward pass runs kernels.conv.few_channels_forward (stem7x7s2):
    one group of at most four input channels, a window of more than nine terms, no
    dilation, at least six output columns, the filters a multiple of four vectors."""
    lanes = simd.VECTOR_BITS // (8 * np.dtype(dtype).itemsize)
    padded = (
        geometry.batch
        * ((geometry.out_h - 1) * geometry.strides[0] + geometry.kernel_h)
        * ((geometry.out_w - 1) * geometry.strides[1] + geometry.kernel_w)
        * geometry.channels
    )
    return (
        geometry.groups == 1
        and geometry.channels <= 4
        and geometry.kernel_h * geometry.kernel_w * geometry.channels > 9
        and geometry.dilation_rate == (1, 1)
        and geometry.out_w >= 6
        and geometry.filters % (4 * lanes) == 0
        and padded <= FEW_CHANNELS_PADDED_ELEMENTS
        and forward_path(geometry) in ("gemm", "direct")
    )


def winograd_on_planes(geometry):
    """Whether channels_first data reaches the Winograd paths as planes (by_image_groups)."""
    return geometry.data_format == "channels_first"


def few_columns(geometry):
    """Whether an im2col product would have fewer than GEMM_MIN_COLUMNS columns."""
    return geometry.kernel_h * geometry.kernel_w * geometry.channels < GEMM_MIN_COLUMNS


def _winograd_fits_geometry(geometry):
    return _winograd_fits(
        geometry.kernel_h,
        geometry.kernel_w,
        geometry.strides,
        geometry.dilation_rate,
        geometry.channels,
        geometry.filters,
    )


def grad_kernel_path(geometry):
    """Name of the path that computes the kernel gradient of ``geometry``."""
    path = _dense_path(geometry)
    if path == "gemm" and _winograd_fits_geometry(geometry):
        return "winograd"
    if path == "gemm" and _winograd_strided_fits(geometry):
        return "winograd_strided"
    return path


def grad_input_path(geometry):
    """Name of the path that computes the input gradient of ``geometry``."""
    path = _dense_path(geometry)
    if path != "gemm":
        return path
    if geometry.strides == (1, 1) and geometry.channels >= 16:
        return "flipped"
    if _winograd_strided_fits(geometry):
        return "winograd_strided"
    return "col2im"


def _pack(single_threaded, serial_kernel, parallel_kernel, *args):
    """Run a packing / transform kernel next to BLAS products, threaded as its call is."""
    return runtime.launch(not single_threaded, serial_kernel, parallel_kernel, *args)


def add_bias(rows, bias, single_threaded):
    """``rows`` (M, F) += ``bias``, on both cores unless the call is single-threaded."""
    _pack(single_threaded, gemm_kernels.add_bias_rows_serial, gemm_kernels.add_bias_rows, rows, bias)


def add_bias_planes(planes, bias, images, pixels, single_threaded):
    """``planes[n0:n1, f, p0:p1] += bias[f]`` for ``(n0, n1) = images``, ``(p0, p1) =
    pixels`` of C-contiguous (N, F, P) ``planes``, on both cores unless the call is
    single-threaded (NumPy's ``np.add`` takes one)."""
    _pack(single_threaded, gemm_kernels.add_bias_planes_serial, gemm_kernels.add_bias_planes,
          planes, bias, *images, *pixels)


def _rows_per_chunk(out_w, columns, itemsize, total_rows, filters, single_threaded):
    """Output rows per im2col chunk: as many as fit the buffer budget, at least one.

    Single-threaded problems cut their products below BLAS_SINGLE_THREAD_WORK.
    """
    if single_threaded:
        rows = BLAS_SINGLE_THREAD_WORK // max(out_w * columns * filters, 1)
    else:
        rows = COLUMN_BUFFER_BYTES // max(out_w * columns * itemsize, 1)
    return int(max(1, min(rows, total_rows)))


def _im2col_chunks(x, kernel_shape, out_h, out_w, scalars, single_threaded, per_image=False):
    """Yield ``(row0, row1, cols)``: im2col of output rows ``[row0, row1)`` in a reused buffer.

    Rows count over the whole batch (``n * out_h + oh``), in order.  With
    ``per_image`` no chunk straddles two images.
    """
    kernel_h, kernel_w, channels, filters = kernel_shape
    columns = kernel_h * kernel_w * channels
    batch = x.shape[0]
    span = out_h if per_image else batch * out_h
    chunk = _rows_per_chunk(out_w, columns, x.itemsize, span, filters, single_threaded)
    cols = allocate((chunk * out_w, columns), x.dtype, "conv2d im2col buffer")
    for start in range(0, batch * out_h, span):
        for row0 in range(start, start + span, chunk):
            row1 = min(row0 + chunk, start + span)
            _pack(
                single_threaded,
                gemm_kernels.im2col_serial,
                gemm_kernels.im2col,
                x,
                cols,
                row0,
                row1,
                out_h,
                kernel_h,
                kernel_w,
                out_w,
                *scalars,
            )
            yield row0, row1, cols[: (row1 - row0) * out_w]


def _single_thread_rows(columns, filters):
    """Rows of a ``(rows, columns) @ (columns, filters)`` product that OpenBLAS computes on
    the calling thread (below BLAS_SINGLE_THREAD_WORK multiply-adds), at least one."""
    return max(1, BLAS_SINGLE_THREAD_WORK // (columns * filters))


def _multiply_in_pieces(cols, weights, target, piece):
    """``target = cols @ weights`` as products of ``piece`` rows (one NumPy call for the
    whole ones: NumPy loops over a stack of products without the GIL)."""
    whole = cols.shape[0] // piece * piece
    if whole:
        np.matmul(
            cols[:whole].reshape(-1, piece, cols.shape[1]),
            weights,
            out=target[:whole].reshape(-1, piece, target.shape[1]),
        )
    if whole < cols.shape[0]:
        np.matmul(cols[whole:], weights, out=target[whole:])


def _gemm_forward_lanes(x, kernel, bias, out, out_h, out_w, scalars):
    """gemm_forward in lanes: each lane im2cols its own output rows and multiplies
    them in single-thread pieces on its own thread (see runtime.run_lanes)."""
    kernel_h, kernel_w, channels, filters = kernel.shape
    columns = kernel_h * kernel_w * channels
    weights = kernel.reshape(columns, filters)
    out_rows = out.reshape(-1, filters)
    total_rows = out.shape[0] * out_h
    ranges = _lane_ranges(total_rows, False)
    chunk = max(1, min(LANE_COLUMN_BUFFER_BYTES // (out_w * columns * x.itemsize), total_rows))
    piece = _single_thread_rows(columns, filters)

    def lane(index):
        first, stop = ranges[index]
        cols = allocate((chunk * out_w, columns), x.dtype, "conv2d im2col buffer")
        with blas_warnings_off():
            for row0 in range(first, stop, chunk):
                row1 = min(row0 + chunk, stop)
                gemm_kernels.im2col_serial(
                    x, cols, row0, row1, out_h, kernel_h, kernel_w, out_w, *scalars
                )
                target = out_rows[row0 * out_w : row1 * out_w]
                _multiply_in_pieces(cols[: target.shape[0]], weights, target, piece)
                if bias is not None:
                    np.add(target, bias, out=target)

    runtime.run_lanes(lane, len(ranges))


def gemm_forward(x, kernel, bias, out, out_h, out_w, scalars, single_threaded):
    """``out`` (N, OH, OW, F) = im2col(x) @ kernel + bias, chunk of output rows by chunk."""
    filters = kernel.shape[3]
    columns = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
    if not single_threaded and _single_thread_rows(columns, filters) >= LANE_MIN_PIXELS:
        _gemm_forward_lanes(x, kernel, bias, out, out_h, out_w, scalars)
        return
    weights = kernel.reshape(-1, filters)
    out_rows = out.reshape(-1, filters)
    for row0, row1, cols in _im2col_chunks(x, kernel.shape, out_h, out_w, scalars, single_threaded):
        target = out_rows[row0 * out_w : row1 * out_w]
        np.matmul(cols, weights, out=target)
        if bias is not None:
            add_bias(target, bias, single_threaded)


def _plane_chunks(first, stop, out_h, chunk):
    """``(n, oh0, oh1)``: the flat output rows ``[first, stop)`` (``n * out_h + oh``)
    in chunks of at most ``chunk`` rows that never straddle two images."""
    row = first
    while row < stop:
        n, oh0 = divmod(row, out_h)
        oh1 = min(oh0 + chunk, out_h, oh0 + stop - row)
        yield n, oh0, oh1
        row += oh1 - oh0


def _im2col_planes_chunks(x, kernel_shape, out_h, out_w, scalars, single_threaded):
    """Yield ``(n, oh0, oh1, cols_t)``: transposed im2col of channels_first ``x``
    (N, C, H, W), chunk of output rows by chunk, in a reused buffer."""
    kernel_h, kernel_w, channels, filters = kernel_shape
    columns = kernel_h * kernel_w * channels
    chunk = _rows_per_chunk(out_w, columns, x.itemsize, out_h, filters, single_threaded)
    cols_t = allocate((columns, chunk * out_w), x.dtype, "conv2d im2col buffer")
    for n, oh0, oh1 in _plane_chunks(0, x.shape[0] * out_h, out_h, chunk):
        _pack(
            single_threaded,
            gemm_kernels.im2col_planes_serial,
            gemm_kernels.im2col_planes,
            x,
            cols_t,
            n,
            oh0,
            oh1,
            kernel_h,
            kernel_w,
            out_w,
            *scalars,
        )
        yield n, oh0, oh1, cols_t[:, : (oh1 - oh0) * out_w]


def _multiply_planes_in_pieces(weights_t, cols_t, target, piece):
    """``target = weights_t @ cols_t`` as products of ``piece`` pixel columns, stacked
    into one NumPy call like :func:`_multiply_in_pieces`."""
    whole = cols_t.shape[1] // piece * piece
    if whole:
        np.matmul(
            weights_t,
            cols_t[:, :whole].reshape((cols_t.shape[0], -1, piece), copy=False).transpose(1, 0, 2),
            out=target[:, :whole].reshape((target.shape[0], -1, piece), copy=False).transpose(1, 0, 2),
        )
    if whole < cols_t.shape[1]:
        np.matmul(weights_t, cols_t[:, whole:], out=target[:, whole:])


def _gemm_forward_planes_lanes(x, kernel, bias, out_planes, out_h, out_w, scalars):
    """gemm_forward_planes in lanes, as :func:`_gemm_forward_lanes`."""
    kernel_h, kernel_w, channels, filters = kernel.shape
    columns = kernel_h * kernel_w * channels
    weights_t = kernel.reshape(columns, filters).T
    ranges = _lane_ranges(x.shape[0] * out_h, False)
    chunk = max(1, min(LANE_COLUMN_BUFFER_BYTES // (out_w * columns * x.itemsize), out_h))
    piece = _single_thread_rows(columns, filters)

    def lane(index):
        cols_t = allocate((columns, chunk * out_w), x.dtype, "conv2d im2col buffer")
        with blas_warnings_off():
            for n, oh0, oh1 in _plane_chunks(*ranges[index], out_h, chunk):
                gemm_kernels.im2col_planes_serial(
                    x, cols_t, n, oh0, oh1, kernel_h, kernel_w, out_w, *scalars
                )
                target = out_planes[n, :, oh0 * out_w : oh1 * out_w]
                _multiply_planes_in_pieces(weights_t, cols_t[:, : target.shape[1]], target, piece)
                if bias is not None:
                    np.add(target, bias[:, None], out=target)

    runtime.run_lanes(lane, len(ranges))


def gemm_forward_planes(x, kernel, bias, out_planes, out_h, out_w, scalars, single_threaded):
    """channels_first ``out_planes`` (N, F, OH * OW) = kernel^T @ im2col_t(x) + bias.

    ``x`` is C-contiguous (N, C, H, W): neither it nor the result is transposed.
    """
    filters = kernel.shape[3]
    columns = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
    if not single_threaded and _single_thread_rows(columns, filters) >= LANE_MIN_PIXELS:
        _gemm_forward_planes_lanes(x, kernel, bias, out_planes, out_h, out_w, scalars)
        return
    weights_t = kernel.reshape(columns, filters).T
    for n, oh0, oh1, cols_t in _im2col_planes_chunks(
        x, kernel.shape, out_h, out_w, scalars, single_threaded
    ):
        target = out_planes[n, :, oh0 * out_w : oh1 * out_w]
        np.matmul(weights_t, cols_t, out=target)
        if bias is not None:
            add_bias_planes(out_planes, bias, (n, n + 1), (oh0 * out_w, oh1 * out_w),
                            single_threaded)


def _lane_ranges(total, single_threaded):
    """Contiguous ``(first, stop)`` tile ranges, one per lane (one lane when single-threaded)."""
    lanes = 1 if single_threaded else runtime.LANES
    bounds = [total * lane // lanes for lane in range(lanes + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _winograd_chunks(first, stop, chunk):
    """``(tile0, tile1)`` chunks of ``chunk`` tiles of the tiles ``[first, stop)``."""
    for tile0 in range(first, stop, chunk):
        yield tile0, min(tile0 + chunk, stop)


def _grad_kernel_blocking(channels, filters):
    """``(tiles per chunk, rows per block)`` of the Winograd kernel gradient's products
    ``tiles[e]^T (C', T) @ gtiles[e] (T, F)``.

    Normally ``T`` is what keeps the whole product on one thread.  With many
    channels and filters that leaves few tiles (pix2pix4x4: 15 for 256 x 128), and
    products summing so few terms mostly write their result; then a chunk holds
    GRAD_KERNEL_TILES tiles and each product is cut into blocks of ``C'`` rows
    (a divisor of ``C'``, at least 8) small enough for one thread.
    """
    chunk = _single_thread_rows(channels, filters)
    if chunk >= GRAD_KERNEL_TILES:
        return chunk, channels
    limit = _single_thread_rows(GRAD_KERNEL_TILES, filters)
    block = max(rows for rows in range(1, min(limit, channels) + 1) if channels % rows == 0)
    if block < 8:
        return chunk, channels
    return GRAD_KERNEL_TILES, block


def tile_grid(out_h, out_w, tile_size, dilation_rate=(1, 1)):
    """``(tiles_h, tiles_w)``: tile rows and columns of an ``out_h`` x ``out_w`` output.

    With dilation ``d``, output row ``oh = d * p + a`` of a 3x3 kernel reads the input
    rows ``d * (p + kh) + a - pad_top``: the polyphase components ``a`` are undilated
    convolutions of the input's components.  So a tile holds ``tile_size`` outputs
    ``d`` apart (``winograd_kernels.tile_origin``): ``d`` tile rows per
    ``tile_size * d`` output rows, one per phase, reading the input in place.
    Without dilation these are the plain tiles.
    """
    dilation_h, dilation_w = dilation_rate
    return (
        dilation_h * -(-out_h // (tile_size * dilation_h)),
        dilation_w * -(-out_w // (tile_size * dilation_w)),
    )


def winograd_tile_size(out_h, out_w, dtype, dilation_rate=(1, 1)):
    """Outputs per side of the F(m x m, 3x3) tiles of a 3x3 stride-1 output: 4 or 2.

    F(4x4, 3x3) takes 36 multiplies per 16 outputs, F(2x2, 3x3) 16 per 4; in
    float64 the tiling with fewer multiplies over its whole tiles wins: small
    images waste more of a 4x4 tile (a 2x2 output: 16 multiplies by F(2x2, 3x3),
    36 by F(4x4, 3x3)).  float32 keeps F(2x2, 3x3): F(4x4, 3x3)'s transforms
    (coefficients up to 8, cancelling) left errors of 3-8e-6 of the largest
    output on resnet3x3, lenet2 and dilated2, 15-25x those of im2col and
    F(2x2, 3x3).  In float64 they differ from those by about 1e-14 of the largest output.
    """
    if np.dtype(dtype) != np.float64:
        return 2

    def multiplies(size):
        tiles_h, tiles_w = tile_grid(out_h, out_w, size, dilation_rate)
        return tiles_h * tiles_w * TILINGS[size].elements

    return 4 if multiplies(4) < multiplies(2) else 2


def winograd_forward(x, kernel, bias, out, dilation_rate, pad_top, pad_left, single_threaded):
    """``out`` (N, OH, OW, F) of a 3x3 stride-1 convolution, dilated or not, by Winograd
    F(4x4, 3x3) (float64) or F(2x2, 3x3) (``winograd_tile_size``).

    Returns False, leaving ``out`` partly written, when ``x`` or ``kernel``
    holds an Inf or NaN: the transforms would turn some finite outputs into NaN.
    """
    if not np.isfinite(kernel).all():
        return False
    tile_size, weights = _transformed_kernel(kernel, out.shape[1], out.shape[2], dilation_rate)
    return winograd_tiles_forward(
        x, weights, bias, out, pad_top, pad_left, single_threaded, tile_size,
        dilation_rate=dilation_rate,
    )


def _transformed_kernel(kernel, out_h, out_w, dilation_rate):
    """``(tile_size, weights)``: the tiling of an ``out_h`` x ``out_w`` output and the
    transformed ``kernel`` (E, C, F) it multiplies by."""
    tile_size = winograd_tile_size(out_h, out_w, kernel.dtype, dilation_rate)
    tiling = TILINGS[tile_size]
    weights = allocate((tiling.elements, *kernel.shape[2:]), kernel.dtype,
                       "conv2d Winograd kernel")
    tiling.transform_kernel(kernel, weights)
    return tile_size, weights


class _Tiling(NamedTuple):
    """The transforms of one Winograd tiling, by the size of its output tiles."""

    elements: int  # transformed elements per tile: 16 for 4x4 input tiles, 36 for 6x6
    transform_input: object
    transform_output: object
    transform_grad_output: object
    transform_kernel: object
    transform_weights_grad: object


# 2: F(2x2, 3x3) and 4: F(4x4, 3x3), for 3x3 stride-1 kernels; 3: F(3x3, 2x2) over
# stride phases (numconv.nn._winograd_strided).  F(2x2, 3x3) and F(3x3, 2x2) share
# their 4x4 input transform B^T d B; F(3x3, 2x2) reads its windows through the stride
# phases, tile by tile (transform_input_phases).
TILINGS = {
    2: _Tiling(16, winograd_kernels.transform_input, winograd_kernels.transform_output,
               winograd_kernels.transform_grad_output, winograd_kernels.transform_kernel,
               winograd_kernels.transform_weights_grad),
    3: _Tiling(16, winograd_kernels.transform_input_phases,
               winograd_strided_kernels.transform_output,
               winograd_strided_kernels.transform_grad_output,
               winograd_strided_kernels.transform_kernel,
               winograd_strided_kernels.transform_weights_grad),
    4: _Tiling(36, winograd4x4_kernels.transform_input, winograd4x4_kernels.transform_output,
               winograd4x4_kernels.transform_grad_output, winograd4x4_kernels.transform_kernel,
               winograd4x4_kernels.transform_weights_grad),
}


def winograd_tiles_forward(x, weights, bias, out, pad_top, pad_left, single_threaded,
                           tile_size=2, strides=(1, 1), dilation_rate=(1, 1)):
    """``out`` (N, OH, OW, F) + ``bias`` from the transformed kernel ``weights`` (E, C', F).

    See ``winograd_tiles``.  Returns False, leaving ``out`` partly written, when
    ``x`` holds an Inf or NaN.
    """
    transform_output = TILINGS[tile_size].transform_output
    if bias is None:
        bias = np.zeros(weights.shape[2], dtype=x.dtype)

    def write(products, tile0, tile1, tiles_h, tiles_w):
        transform_output(products, bias, out, tile0, tile1, tiles_h, tiles_w, *dilation_rate)

    return winograd_tiles(
        x, weights, out.shape, write, pad_top, pad_left, single_threaded, tile_size, strides,
        dilation_rate,
    )


def winograd_tiles(x, weights, out_shape, write, pad_top, pad_left, single_threaded,
                   tile_size=2, strides=(1, 1), dilation_rate=(1, 1)):
    """The Winograd products of a convolution with output shape ``out_shape`` (N, OH, OW, F).

    Tiles of ``tile_size`` x ``tile_size`` outputs (``TILINGS``); ``weights`` (E, C',
    F) is the transformed kernel, E its elements per tile, ``C' = C * stride_h *
    stride_w`` (the input is read through its stride phases, see
    ``winograd_kernels.transform_input``), ``dilation_rate`` apart (``tile_grid``).
    The tiles are cut into lanes
    (``runtime.run_lanes``); each lane transforms and multiplies its own chunks on
    its own thread and hands each chunk's products (E, chunk, F) to
    ``write(products, tile0, tile1, tiles_h, tiles_w)``.  Returns False as soon as
    ``x`` turns out to hold an Inf or NaN.
    """
    tiles_h, tiles_w = tile_grid(out_shape[1], out_shape[2], tile_size, dilation_rate)
    ranges = _lane_ranges(out_shape[0] * tiles_h * tiles_w, single_threaded)

    def lane(index):
        chunks = _WinogradChunks(x.dtype, weights, tile_size)
        first, stop = ranges[index]
        return chunks.run(x, first, stop, tiles_h, tiles_w, write, pad_top, pad_left, strides,
                          dilation_rate)

    return all(runtime.run_lanes(lane, len(ranges)))


def _winograd_chunk_tiles(channels, filters, elements):
    """Tiles per chunk of a Winograd forward pass (see _WinogradChunks)."""
    # F(2x2, 3x3)'s 16 one-thread products per chunk; F(4x4, 3x3) takes as many
    # elements in fewer tiles, so its buffers stay as large (float64 lenet2 forward,
    # 2 lanes: 3.6 ms with as many tiles, 2.1 with as many elements; F(2x2, 3x3)
    # 2.8), but no fewer than WINOGRAD_MIN_TILES tiles.
    rows = _single_thread_rows(channels, filters)
    return max(min(rows, WINOGRAD_MIN_TILES), rows * 16 // elements)


class _WinogradChunks:
    """One lane's buffers and chunk loop: transform, multiply and hand on tiles."""

    def __init__(self, dtype, weights, tile_size):
        elements, channels, filters = weights.shape
        self.chunk = chunk = _winograd_chunk_tiles(channels, filters, elements)
        self.weights = weights
        self.tile_size = tile_size
        self.tiles = allocate((elements, chunk, channels), dtype, "conv2d Winograd tile buffer")
        self.products = allocate(
            (elements, chunk, filters), dtype, "conv2d Winograd product buffer"
        )
        self.finite = allocate((chunk,), dtype, "conv2d Winograd check")

    def run(self, x, first, stop, tiles_h, tiles_w, write, pad_top, pad_left, strides=(1, 1),
            dilation_rate=(1, 1)):
        """Tiles ``[first, stop)`` of ``x``; False as soon as one holds an Inf or NaN."""
        tiles, products, finite = self.tiles, self.products, self.finite
        transform_input = TILINGS[self.tile_size].transform_input
        with blas_warnings_off():
            for tile0, tile1 in _winograd_chunks(first, stop, self.chunk):
                count = tile1 - tile0
                transform_input(
                    x, tiles, finite, tile0, tile1, tiles_h, tiles_w, pad_top, pad_left,
                    self.tile_size, *strides, *dilation_rate,
                )
                if np.isnan(finite[:count]).any():
                    return False
                np.matmul(tiles[:, :count], self.weights, out=products[:, :count])
                write(products, tile0, tile1, tiles_h, tiles_w)
        return True


def winograd_forward_planes(x_planes, kernel, bias, out_planes, dilation_rate, pad_top,
                            pad_left, single_threaded):
    """channels_first ``out_planes`` (N, F, OH, OW) of a 3x3 stride-1 convolution of
    ``x_planes`` (N, C, H, W) by Winograd, by image groups (``by_image_groups``) of
    as many images as one chunk of tiles holds (lenet2: 7 images of 36 tiles).

    Returns False, leaving ``out_planes`` partly written, on an Inf or NaN (in
    ``kernel`` too, as ``winograd_forward``).
    """
    if not np.isfinite(kernel).all():
        return False
    channels = x_planes.shape[1]
    filters, out_h, out_w = out_planes.shape[1:]
    tile_size, weights = _transformed_kernel(kernel, out_h, out_w, dilation_rate)
    tiling = TILINGS[tile_size]
    if bias is None:
        bias = np.zeros(filters, dtype=x_planes.dtype)
    tiles_h, tiles_w = tile_grid(out_h, out_w, tile_size, dilation_rate)

    def make_step():
        chunks = _WinogradChunks(x_planes.dtype, weights, tile_size)

        def step(x_group, out_group):
            def write(products, tile0, tile1, tiles_h, tiles_w):
                tiling.transform_output(products, bias, out_group, tile0, tile1, tiles_h,
                                        tiles_w, *dilation_rate)

            return chunks.run(x_group, 0, x_group.shape[0] * tiles_h * tiles_w, tiles_h,
                              tiles_w, write, pad_top, pad_left, dilation_rate=dilation_rate)

        return step

    chunk = _winograd_chunk_tiles(channels, filters, tiling.elements)
    group = _images_per_group(chunk, tiles_h * tiles_w, x_planes.shape[0])
    return by_image_groups(x_planes, out_planes, make_step, group, single_threaded)


def by_image_groups(x_planes, out_planes, make_step, images_per_group, single_threaded):
    """``out_planes`` (N, F, OH, OW) from ``x_planes`` (N, C, H, W) by a channels_last
    computation, with no whole-batch transposed copies.

    Each lane takes whole images, ``images_per_group`` at a time: it moves them to
    channels last in a small buffer, runs ``step(x_group, out_group)`` on it into
    another (``make_step()`` makes each lane's step; False means an Inf or NaN
    stopped it) and moves that back into the images' output planes.  The buffers
    stay in cache; whole-batch copies each cost a pass through memory (float32
    resnet3x3: 0.7 and 0.8 ms next to a 6.7 ms convolution).  Returns False,
    leaving ``out_planes`` partly written, when a step did.
    """
    batch, channels, height, width = x_planes.shape
    filters, out_h, out_w = out_planes.shape[1:]
    ranges = _lane_ranges(batch, single_threaded)

    def lane(index):
        step = make_step()
        first, stop = ranges[index]
        group = max(1, min(images_per_group, stop - first))
        x_group = allocate((group, height, width, channels), x_planes.dtype,
                           "conv2d channels_last image group")
        out_group = allocate((group, out_h, out_w, filters), x_planes.dtype,
                             "conv2d channels_last output group")
        for n0, n1 in _image_groups(first, stop, group):
            images = n1 - n0
            out = out_group[:images]
            if not step(_group_to_channels_last(x_planes, n0, n1, x_group), out):
                return False
            gemm_kernels.swap_last_axes_serial(
                out.reshape(images, out_h * out_w, filters),
                out_planes[n0:n1].reshape(images, filters, out_h * out_w),
            )
        return True

    return all(runtime.run_lanes(lane, len(ranges)))


def winograd_grad_kernel(x, grad_output, grad_kernel, dilation_rate, pad_top, pad_left,
                         single_threaded):
    """Kernel gradient of a 3x3 stride-1 convolution, dilated or not, by Winograd
    F(4x4, 3x3) or F(2x2, 3x3).

    Returns False, computing nothing useful, when the data hold an Inf or NaN
    (the transforms would spread it); the caller then takes the im2col path.
    """
    out_h, out_w = grad_output.shape[1], grad_output.shape[2]
    tile_size = winograd_tile_size(out_h, out_w, x.dtype, dilation_rate)
    sums = winograd_tiles_grad_kernel(
        x, grad_output, grad_kernel.shape[2], pad_top, pad_left, single_threaded, tile_size,
        dilation_rate=dilation_rate,
    )
    if sums is None:
        return False
    TILINGS[tile_size].transform_weights_grad(sums, grad_kernel)
    return True


def winograd_tiles_grad_kernel(x, grad_output, channels, pad_top, pad_left, single_threaded,
                               tile_size=2, strides=(1, 1), dilation_rate=(1, 1)):
    """The gradient (E, C', F) of the transformed kernel, tiles as in winograd_tiles_forward.

    Each lane sums ``tiles[e]^T @ gtiles[e]`` over its chunks, in chunk order
    (the first product written straight into its sum); the lanes' sums are
    then added in lane order.  So the summation order is fixed by the shapes.
    None when the data hold an Inf or NaN (the transforms would spread it).
    """
    channels *= strides[0] * strides[1]
    filters = grad_output.shape[3]
    out_h, out_w = grad_output.shape[1], grad_output.shape[2]
    tiles_h, tiles_w = tile_grid(out_h, out_w, tile_size, dilation_rate)
    ranges = _lane_ranges(grad_output.shape[0] * tiles_h * tiles_w, single_threaded)

    def lane(index):
        sums = _WinogradKernelSums(x.dtype, channels, filters, tile_size)
        first, stop = ranges[index]
        if not sums.add(x, grad_output, first, stop, tiles_h, tiles_w, pad_top, pad_left,
                        strides, dilation_rate):
            return None
        return sums.total

    return _combine_lanes(runtime.run_lanes(lane, len(ranges)))


def _combine_lanes(sums):
    """The lanes' sums added in lane order, or None if a lane met an Inf or NaN."""
    if any(lane_sum is None for lane_sum in sums):
        return None
    for lane_sum in sums[1:]:
        np.add(sums[0], lane_sum, out=sums[0])
    return sums[0]


class _WinogradKernelSums:
    """One lane's buffers and running sum of ``tiles[e]^T @ gtiles[e]`` over its chunks."""

    def __init__(self, dtype, channels, filters, tile_size):
        self.tiling = tiling = TILINGS[tile_size]
        self.tile_size = tile_size
        elements = tiling.elements
        self.chunk, self.block = _grad_kernel_blocking(channels, filters)
        chunk = self.chunk
        self.tiles = allocate((elements, chunk, channels), dtype, "conv2d Winograd tile buffer")
        self.gtiles = allocate((elements, chunk, filters), dtype,
                               "conv2d Winograd gradient tile buffer")
        self.total = allocate((elements, channels, filters), dtype,
                              "conv2d Winograd kernel gradient")
        self.partial = allocate((elements, channels, filters), dtype,
                                "conv2d Winograd kernel gradient")
        self.x_finite = allocate((chunk,), dtype, "conv2d Winograd check")
        self.grad_finite = allocate((chunk,), dtype, "conv2d Winograd check")
        self.total.fill(0.0)  # an empty lane adds nothing
        self.empty = True

    def add(self, x, grad_output, first, stop, tiles_h, tiles_w, pad_top, pad_left,
            strides=(1, 1), dilation_rate=(1, 1)):
        """Add tiles ``[first, stop)``, chunk by chunk; False on an Inf or NaN in the data."""
        tiling, tiles, gtiles, total = self.tiling, self.tiles, self.gtiles, self.total
        elements, filters = tiles.shape[0], gtiles.shape[2]
        with blas_warnings_off():
            for tile0, tile1 in _winograd_chunks(first, stop, self.chunk):
                count = tile1 - tile0
                tiling.transform_input(
                    x, tiles, self.x_finite, tile0, tile1, tiles_h, tiles_w, pad_top, pad_left,
                    self.tile_size, *strides, *dilation_rate,
                )
                tiling.transform_grad_output(
                    grad_output, gtiles, self.grad_finite, tile0, tile1, tiles_h, tiles_w,
                    *dilation_rate,
                )
                if np.isnan(self.x_finite[:count]).any() or np.isnan(
                    self.grad_finite[:count]
                ).any():
                    return False
                # (E, blocks, block, T) @ (E, 1, T, F): one product per block of rows; the
                # first product is written straight into the sum.
                product = np.matmul(
                    tiles[:, :count].transpose(0, 2, 1).reshape(elements, -1, self.block, count),
                    gtiles[:, None, :count],
                    out=(total if self.empty else self.partial).reshape(
                        elements, -1, self.block, filters
                    ),
                )
                if not self.empty:
                    np.add(total, product.reshape(total.shape), out=total)
                self.empty = False
        return True


def _image_groups(first, stop, images_per_group):
    """``(n0, n1)``: the images ``[first, stop)`` in groups of ``images_per_group``."""
    for n0 in range(first, stop, images_per_group):
        yield n0, min(n0 + images_per_group, stop)


def _images_per_group(chunk, tiles_per_image, images):
    """As many whole images as one chunk of tiles holds (no short chunk per group), at
    least one, at most ``images``."""
    return max(1, min(images, chunk // tiles_per_image))


def _group_to_channels_last(planes, n0, n1, buffer):
    """``buffer[:n1 - n0]`` (images, H, W, C) = ``planes[n0:n1]`` (images, C, H, W)."""
    images, channels = n1 - n0, planes.shape[1]
    group = buffer[:images]
    gemm_kernels.swap_last_axes_serial(
        planes[n0:n1].reshape(images, channels, -1), group.reshape(images, -1, channels)
    )
    return group


def winograd_grad_kernel_planes(x_planes, grad_planes, grad_kernel, dilation_rate, pad_top,
                                pad_left, single_threaded):
    """``winograd_grad_kernel`` of channels_first ``x_planes`` (N, C, H, W) and
    ``grad_planes`` (N, F, OH, OW), by groups of images moved to channels last in small
    buffers, as ``winograd_forward_planes``.  False on an Inf or NaN."""
    batch, channels, height, width = x_planes.shape
    filters, out_h, out_w = grad_planes.shape[1:]
    tile_size = winograd_tile_size(out_h, out_w, x_planes.dtype, dilation_rate)
    tiles_h, tiles_w = tile_grid(out_h, out_w, tile_size, dilation_rate)
    ranges = _lane_ranges(batch, single_threaded)

    def lane(index):
        sums = _WinogradKernelSums(x_planes.dtype, channels, filters, tile_size)
        first, stop = ranges[index]
        group = _images_per_group(sums.chunk, tiles_h * tiles_w, stop - first)
        x_group = allocate((group, height, width, channels), x_planes.dtype,
                           "conv2d channels_last image group")
        grad_group = allocate((group, out_h, out_w, filters), x_planes.dtype,
                              "conv2d channels_last gradient group")
        for n0, n1 in _image_groups(first, stop, group):
            if not sums.add(
                _group_to_channels_last(x_planes, n0, n1, x_group),
                _group_to_channels_last(grad_planes, n0, n1, grad_group),
                0, (n1 - n0) * tiles_h * tiles_w, tiles_h, tiles_w, pad_top, pad_left,
                dilation_rate=dilation_rate,
            ):
                return None
        return sums.total

    sums = _combine_lanes(runtime.run_lanes(lane, len(ranges)))
    if sums is None:
        return False
    TILINGS[tile_size].transform_weights_grad(sums, grad_kernel)
    return True


def gemm_grad_kernel(x, grad_output, grad_kernel, out_h, out_w, scalars, single_threaded):
    """grad_kernel = sum over chunks, in order, of im2col(x)^T @ grad_output."""
    filters = grad_kernel.shape[3]
    total = grad_kernel.reshape(-1, filters)
    grad_rows = grad_output.reshape(-1, filters)
    partial = allocate(total.shape, x.dtype, "conv2d kernel-gradient buffer")
    for row0, row1, cols in _im2col_chunks(
        x, grad_kernel.shape, out_h, out_w, scalars, single_threaded
    ):
        product = np.matmul(
            cols.T, grad_rows[row0 * out_w : row1 * out_w], out=total if row0 == 0 else partial
        )
        if row0 != 0:
            np.add(total, product, out=total)


def col2im_grad_input(grad_output, kernel, grad_input, out_h, out_w, scalars, single_threaded):
    """grad_input = col2im(grad_output @ kernel^T), chunk of output rows by chunk, in order."""
    kernel_h, kernel_w, channels, filters = kernel.shape
    columns = kernel_h * kernel_w * channels
    weights_t = kernel.reshape(columns, filters).T
    grad_rows = grad_output.reshape(-1, filters)
    total_rows = grad_output.shape[0] * out_h
    chunk = _rows_per_chunk(out_w, columns, kernel.itemsize, total_rows, filters, single_threaded)
    cols = allocate((chunk * out_w, columns), kernel.dtype, "conv2d col2im buffer")
    grad_input.fill(0.0)
    for row0 in range(0, total_rows, chunk):
        row1 = min(row0 + chunk, total_rows)
        pixels = (row1 - row0) * out_w
        np.matmul(grad_rows[row0 * out_w : row1 * out_w], weights_t, out=cols[:pixels])
        _pack(
            single_threaded,
            gemm_kernels.col2im_add_serial,
            gemm_kernels.col2im_add,
            cols,
            grad_input,
            row0,
            row1,
            out_h,
            kernel_h,
            kernel_w,
            out_w,
            *scalars,
        )


def gemm_grad_kernel_planes(x, grad_planes, grad_kernel, out_h, out_w, scalars, single_threaded):
    """gemm_grad_kernel of channels_first data: x (N, C, H, W), grad_planes (N, F, OH * OW)."""
    filters = grad_kernel.shape[3]
    total = grad_kernel.reshape(-1, filters)
    partial = allocate(total.shape, x.dtype, "conv2d kernel-gradient buffer")
    for n, oh0, oh1, cols_t in _im2col_planes_chunks(
        x, grad_kernel.shape, out_h, out_w, scalars, single_threaded
    ):
        first = n == 0 and oh0 == 0
        grad_rows_t = grad_planes[n, :, oh0 * out_w : oh1 * out_w].T
        product = np.matmul(cols_t, grad_rows_t, out=total if first else partial)
        if not first:
            np.add(total, product, out=total)


def col2im_grad_input_planes(
    grad_planes, kernel, grad_input, out_h, out_w, scalars, single_threaded
):
    """col2im_grad_input of channels_first data: grad_planes (N, F, OH * OW) and
    grad_input (N, C, H, W)."""
    kernel_h, kernel_w, channels, filters = kernel.shape
    columns = kernel_h * kernel_w * channels
    weights = kernel.reshape(columns, filters)
    chunk = _rows_per_chunk(out_w, columns, kernel.itemsize, out_h, filters, single_threaded)
    cols_t = allocate((columns, chunk * out_w), kernel.dtype, "conv2d col2im buffer")
    grad_input.fill(0.0)
    for n, oh0, oh1 in _plane_chunks(0, grad_planes.shape[0] * out_h, out_h, chunk):
        pixels = (oh1 - oh0) * out_w
        np.matmul(weights, grad_planes[n, :, oh0 * out_w : oh1 * out_w], out=cols_t[:, :pixels])
        _pack(
            single_threaded,
            gemm_kernels.col2im_planes_add_serial,
            gemm_kernels.col2im_planes_add,
            cols_t,
            grad_input,
            n,
            oh0,
            oh1,
            kernel_h,
            kernel_w,
            out_w,
            *scalars,
        )


def flipped_grad_input(grad_output, kernel, grad_input, geometry, planes=False):
    """Stride 1: grad_input is the convolution of grad_output with the flipped kernel^T.

    With ``planes`` (``winograd_on_planes``), ``grad_output`` (N, F, OH, OW) and
    ``grad_input`` (N, C, H, W) are channels_first, and no transposed copy of either
    is made.
    """
    flipped = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))
    dilation_h, dilation_w = geometry.dilation_rate
    pad_top = (geometry.kernel_h - 1) * dilation_h - geometry.pad_top
    pad_left = (geometry.kernel_w - 1) * dilation_w - geometry.pad_left
    winograd = _winograd_fits(
        geometry.kernel_h,
        geometry.kernel_w,
        (1, 1),
        geometry.dilation_rate,
        geometry.filters,
        geometry.channels,
    )
    scalars = (1, 1, dilation_h, dilation_w, pad_top, pad_left)
    if planes:
        if winograd and winograd_forward_planes(
            grad_output, flipped, None, grad_input, geometry.dilation_rate, pad_top, pad_left,
            geometry.single_threaded,
        ):
            return
        gemm_forward_planes(
            grad_output,
            flipped,
            None,
            grad_input.reshape((geometry.batch, geometry.channels, -1)),
            geometry.height,
            geometry.width,
            scalars,
            geometry.single_threaded,
        )
        return
    if winograd:
        if winograd_forward(
            grad_output,
            flipped,
            None,
            grad_input,
            geometry.dilation_rate,
            pad_top,
            pad_left,
            geometry.single_threaded,
        ):
            return
    gemm_forward(
        grad_output,
        flipped,
        None,
        grad_input,
        geometry.height,
        geometry.width,
        scalars,
        geometry.single_threaded,
    )


def _planes(array, geometry, dtype):
    """channels_first (batch..., C, H, W) -> C-contiguous (N, C, H * W) in ``dtype``."""
    channels, height, width = array.shape[-3:]
    return geometry.toplanes(array, dtype).reshape((geometry.batch, channels, height * width))


def pointwise_channels_first(geometry, x, kernel, bias, dtype, result_dtype):
    """1x1 stride-1 convolution of channels_first data: ``kernel^T @ x[n]`` for each image."""
    channels, filters = geometry.channels, geometry.filters
    out = allocate(
        (geometry.batch, filters, geometry.height * geometry.width), dtype, "conv2d output"
    )
    x = _planes(x, geometry, dtype)
    weights_t = canonical(kernel, dtype).reshape(channels, filters).T
    with blas_warnings_off():
        np.matmul(weights_t, x, out=out)
        if bias is not None:
            add_bias_planes(out, bias, (0, geometry.batch), (0, out.shape[2]),
                            geometry.single_threaded)
    return out.reshape(geometry.output_shape()).astype(result_dtype, copy=False)


def pointwise_channels_first_grads(geometry, x, kernel, grad_output, wanted, dtype, result_dtype):
    """conv2d_grads of a 1x1 stride-1 channels_first convolution, without transposes."""
    channels, filters = geometry.channels, geometry.filters
    pixels = geometry.height * geometry.width
    grad_input = grad_kernel = grad_bias = None
    if "input" in wanted:
        grad_input = allocate((geometry.batch, channels, pixels), dtype, "conv2d input gradient")
    if "kernel" in wanted:
        per_image = allocate(
            (geometry.batch, channels, filters), dtype, "conv2d kernel-gradient buffer"
        )
    grad_planes = _planes(grad_output, geometry, dtype)
    with blas_warnings_off():
        if grad_input is not None:
            weights = canonical(kernel, dtype).reshape(channels, filters)
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
