"""numconv.kernels.gemm.im2col against a slow loop reference, on every kind of window.

The kernel copies interior windows by whole kernel rows and short runs by
blocks of 8 values that may spill onto values written later; these tests pin
borders, negative pads, dilation, strides and few or many channels, over
chunks of output rows, in both builds, and check that nothing past the chunk's
rows of the buffer is touched.  Reads past the end of ``x`` (the block copies'
other guard) only show under ``NUMBA_BOUNDSCHECK=1 NUMCONV_CACHE=0``, where this
file passes too.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numconv.kernels import gemm as gemm_kernels

BUILDS = {"serial": gemm_kernels.im2col_serial, "parallel": gemm_kernels.im2col}


def out_size(size, kernel, stride, dilation, pad_before, pad_after):
    return (size + pad_before + pad_after - (kernel - 1) * dilation - 1) // stride + 1


def im2col_reference(x, row0, row1, out_h, out_w, kernel_h, kernel_w, stride_h, stride_w,
                     dilation_h, dilation_w, pad_top, pad_left):
    """cols[(r - row0) * out_w + ow, (kh * KW + kw) * C + c], zero where the tap is padding."""
    _, height, width, channels = x.shape
    cols = np.zeros(((row1 - row0) * out_w, kernel_h * kernel_w * channels), dtype=x.dtype)
    for r in range(row0, row1):
        n, oh = divmod(r, out_h)
        for ow in range(out_w):
            pixel = (r - row0) * out_w + ow
            for kh in range(kernel_h):
                ih = oh * stride_h + kh * dilation_h - pad_top
                for kw in range(kernel_w):
                    iw = ow * stride_w + kw * dilation_w - pad_left
                    if 0 <= ih < height and 0 <= iw < width:
                        start = (kh * kernel_w + kw) * channels
                        cols[pixel, start : start + channels] = x[n, ih, iw]
    return cols


def check_im2col(x, kernel_h, kernel_w, strides, dilation, pads, chunk_rows, build):
    """Compare every chunk of output rows with the reference; rows past the chunk stay NaN."""
    (pad_top, pad_bottom), (pad_left, pad_right) = pads
    batch, height, width, channels = x.shape
    out_h = out_size(height, kernel_h, strides[0], dilation[0], pad_top, pad_bottom)
    out_w = out_size(width, kernel_w, strides[1], dilation[1], pad_left, pad_right)
    assert out_h > 0 and out_w > 0
    scalars = (*strides, *dilation, pad_top, pad_left)
    total = batch * out_h
    # One spare output row in the buffer: the kernel must not write into it.
    cols = np.empty(((chunk_rows + 1) * out_w, kernel_h * kernel_w * channels), dtype=x.dtype)
    for row0 in range(0, total, chunk_rows):
        row1 = min(row0 + chunk_rows, total)
        cols.fill(np.nan)
        BUILDS[build](x, cols, row0, row1, out_h, kernel_h, kernel_w, out_w, *scalars)
        used = (row1 - row0) * out_w
        expected = im2col_reference(x, row0, row1, out_h, out_w, kernel_h, kernel_w, *scalars)
        np.testing.assert_array_equal(cols[:used], expected)
        assert np.isnan(cols[used:]).all()


CASES = {
    # name: (x shape, kernel_h, kernel_w, strides, dilation, ((top, bottom), (left, right)))
    "stem_7x7_s2_rgb": ((2, 13, 14, 3), 7, 7, (2, 2), (1, 1), ((2, 3), (2, 3))),
    "gray_5x5_same": ((2, 9, 11, 1), 5, 5, (1, 1), (1, 1), ((2, 2), (2, 2))),
    "rgba_3x3_s2": ((3, 10, 9, 4), 3, 3, (2, 2), (1, 1), ((0, 1), (0, 0))),
    "valid_ends_at_last_input": ((2, 8, 9, 3), 3, 7, (1, 1), (1, 1), ((0, 0), (0, 0))),
    "wide_c64_3x3": ((2, 6, 7, 64), 3, 3, (1, 1), (1, 1), ((1, 1), (1, 1))),
    "c64_4x4_s2": ((2, 8, 8, 64), 4, 4, (2, 2), (1, 1), ((1, 1), (1, 1))),
    # an odd width and an odd left pad: both column phases, the even one longer
    "odd_width_5x5_s2": ((2, 9, 11, 2), 5, 5, (2, 2), (1, 1), ((2, 2), (-1, 3))),
    "dilated_c3": ((2, 11, 10, 3), 3, 3, (1, 1), (2, 3), ((2, 2), (3, 3))),
    "dilated_c64": ((1, 9, 9, 64), 3, 3, (1, 1), (2, 2), ((2, 2), (2, 2))),
    "negative_pads": ((2, 10, 11, 5), 3, 3, (1, 1), (1, 1), ((-1, -2), (-2, -1))),
    "mixed_pads_strides": ((2, 12, 10, 2), 4, 3, (3, 2), (1, 2), ((-1, 3), (2, -1))),
    "kernel_wider_than_image": ((2, 5, 3, 3), 3, 7, (1, 1), (1, 1), ((1, 1), (3, 3))),
    "windows_all_padding": ((1, 2, 6, 3), 5, 3, (1, 1), (1, 1), ((6, 6), (4, 4))),
}


@pytest.mark.parametrize("build", sorted(BUILDS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_im2col_matches_reference(name, build):
    shape, kernel_h, kernel_w, strides, dilation, pads = CASES[name]
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal(shape).astype(np.float32)
    for chunk_rows in (1, 3, 1000):
        check_im2col(x, kernel_h, kernel_w, strides, dilation, pads, chunk_rows, build)


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_im2col_float64(build):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 10, 3))
    check_im2col(x, 7, 7, (2, 2), (1, 1), ((2, 3), (2, 3)), 4, build)
    x = rng.standard_normal((2, 6, 7, 16))
    check_im2col(x, 3, 3, (1, 1), (1, 1), ((1, 1), (1, 1)), 5, build)


# Geometry drawn by both random-geometry tests (channels_last and planes).
RANDOM_GEOMETRY = dict(
    batch=st.integers(1, 2),
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    kernel_h=st.integers(1, 5),
    kernel_w=st.integers(1, 7),
    strides=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    pads=st.tuples(st.integers(-2, 4), st.integers(-2, 4), st.integers(-2, 4), st.integers(-2, 4)),
    chunk_rows=st.integers(1, 5),
)


@given(
    channels=st.sampled_from([1, 2, 3, 4, 5, 8, 9]),
    build=st.sampled_from(sorted(BUILDS)),
    **RANDOM_GEOMETRY,
)
def test_im2col_matches_reference_on_random_geometry(
    batch, height, width, channels, kernel_h, kernel_w, strides, dilation, pads, chunk_rows, build
):
    pad_top, pad_bottom, pad_left, pad_right = pads
    out_h = out_size(height, kernel_h, strides[0], dilation[0], pad_top, pad_bottom)
    out_w = out_size(width, kernel_w, strides[1], dilation[1], pad_left, pad_right)
    if out_h < 1 or out_w < 1:
        return
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, height, width, channels)).astype(np.float32)
    check_im2col(
        x,
        kernel_h,
        kernel_w,
        strides,
        dilation,
        ((pad_top, pad_bottom), (pad_left, pad_right)),
        chunk_rows,
        build,
    )


# channels_first planes: im2col_planes writes the transpose of the reference's
# columns for one image's output rows, read from (N, C, H, W) data; col2im_planes_add
# is its adjoint, checked by <im2col(x), y> = <x, col2im(y)> against the reference.
PLANE_BUILDS = {
    "serial": (gemm_kernels.im2col_planes_serial, gemm_kernels.col2im_planes_add_serial),
    "parallel": (gemm_kernels.im2col_planes, gemm_kernels.col2im_planes_add),
}


def check_planes(x_planes, kernel_h, kernel_w, strides, dilation, pads, chunk_rows, build):
    """Every chunk of every image against the reference; spare buffer columns stay NaN."""
    im2col_planes, col2im_planes_add = PLANE_BUILDS[build]
    (pad_top, pad_bottom), (pad_left, pad_right) = pads
    batch, channels, height, width = x_planes.shape
    x = np.ascontiguousarray(np.moveaxis(x_planes, 1, -1))
    out_h = out_size(height, kernel_h, strides[0], dilation[0], pad_top, pad_bottom)
    out_w = out_size(width, kernel_w, strides[1], dilation[1], pad_left, pad_right)
    assert out_h > 0 and out_w > 0
    scalars = (*strides, *dilation, pad_top, pad_left)
    columns = kernel_h * kernel_w * channels
    cols_t = np.empty((columns, (chunk_rows + 1) * out_w), dtype=x.dtype)
    rng = np.random.default_rng(7)
    for n in range(batch):
        for oh0 in range(0, out_h, chunk_rows):
            oh1 = min(oh0 + chunk_rows, out_h)
            used = (oh1 - oh0) * out_w
            row0 = n * out_h
            expected = im2col_reference(
                x, row0 + oh0, row0 + oh1, out_h, out_w, kernel_h, kernel_w, *scalars
            ).T
            cols_t.fill(np.nan)
            im2col_planes(x_planes, cols_t, n, oh0, oh1, kernel_h, kernel_w, out_w, *scalars)
            np.testing.assert_array_equal(cols_t[:, :used], expected)
            assert np.isnan(cols_t[:, used:]).all()

            y = np.full_like(cols_t, np.nan)  # columns past the chunk must not be read
            y[:, :used] = rng.standard_normal((columns, used))
            start = rng.standard_normal(x_planes.shape).astype(x.dtype)
            grad = start.copy()
            col2im_planes_add(y, grad, n, oh0, oh1, kernel_h, kernel_w, out_w, *scalars)
            added = (grad - start).astype(np.float64)
            assert not added[np.arange(batch) != n].any()  # other images untouched
            np.testing.assert_allclose(
                np.sum(added * x_planes), np.sum(expected * y[:, :used]), rtol=1e-4, atol=1e-4
            )


@pytest.mark.parametrize("build", sorted(PLANE_BUILDS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_planes_im2col_and_col2im_match_reference(name, build):
    shape, kernel_h, kernel_w, strides, dilation, pads = CASES[name]
    rng = np.random.default_rng(len(name))
    batch, height, width, channels = shape
    x_planes = rng.standard_normal((batch, channels, height, width)).astype(np.float32)
    for chunk_rows in (1, 3, 1000):
        check_planes(x_planes, kernel_h, kernel_w, strides, dilation, pads, chunk_rows, build)


@given(
    channels=st.sampled_from([1, 2, 3, 5]),
    build=st.sampled_from(sorted(PLANE_BUILDS)),
    **RANDOM_GEOMETRY,
)
def test_planes_match_reference_on_random_geometry(
    batch, height, width, channels, kernel_h, kernel_w, strides, dilation, pads, chunk_rows, build
):
    pad_top, pad_bottom, pad_left, pad_right = pads
    if out_size(height, kernel_h, strides[0], dilation[0], pad_top, pad_bottom) < 1:
        return
    if out_size(width, kernel_w, strides[1], dilation[1], pad_left, pad_right) < 1:
        return
    x_planes = np.random.default_rng(0).standard_normal((batch, channels, height, width))
    check_planes(
        x_planes,
        kernel_h,
        kernel_w,
        strides,
        dilation,
        ((pad_top, pad_bottom), (pad_left, pad_right)),
        chunk_rows,
        build,
    )
