"""Strided convolutions whose kernel spans two strides, by Winograd F(3x3, 2x2).

With strides ``(s_h, s_w)``, a kernel of at most ``2 * s_h`` rows and ``2 *
s_w`` columns (pix2pix4x4: 4x4 at stride 2) is a 2x2 stride-1 convolution of
the input's space-to-depth rearrangement ``Z`` (``s_h * s_w * C`` channels,
see :mod:`numconv.kernels.winograd_strided`), and F(3x3, 2x2) computes that
with 16 multiplies per 3x3 output tile instead of 36.  ``Z`` is read from the
input in place; only the kernel is rearranged (``phase_kernel``).

* forward: Winograd tiles of ``Z`` with the phase kernel;
* input gradient: ``dZ`` is the stride-1 'full' convolution of
  ``grad_output`` with the flipped, transposed phase kernel (Winograd again),
  and each entry of ``dZ`` is written to the pixel it was read from
  (``transform_output_scatter``; ``dZ`` is never stored whole);
* kernel gradient: the tiles' gradient of the transformed kernel, transformed
  back and un-rearranged.

An Inf or NaN meeting a transform would spread to neighbouring outputs: then
``forward`` and ``grad_kernel`` return False and the caller takes the im2col
path; ``grad_input`` takes col2im itself.
Channels-last canonical arrays, as in :mod:`numconv.nn._conv_paths`.
"""

import numpy as np

from .._memory import allocate
from ..kernels import winograd_strided as kernels
from ._conv_paths import (
    TILINGS,
    col2im_grad_input,
    winograd_tiles,
    winograd_tiles_forward,
    winograd_tiles_grad_kernel,
)

TILE_SIZE = 3  # outputs per tile side of F(3x3, 2x2)
TILING = TILINGS[TILE_SIZE]


def phase_kernel(kernel, strides):
    """``K'[q, p, (rh, rw, c), f] = kernel[s_h * q + rh, s_w * p + rw, c, f]`` (2, 2, C', F),
    zero past the kernel's edge."""
    kernel_h, kernel_w, channels, filters = kernel.shape
    stride_h, stride_w = strides
    padded = np.zeros((2 * stride_h, 2 * stride_w, channels, filters), dtype=kernel.dtype)
    padded[:kernel_h, :kernel_w] = kernel
    padded = padded.reshape(2, stride_h, 2, stride_w, channels, filters)
    return np.ascontiguousarray(padded.transpose(0, 2, 1, 3, 4, 5)).reshape(
        2, 2, stride_h * stride_w * channels, filters
    )


def _unphase_kernel(phased, kernel_shape, strides):
    """The inverse of ``phase_kernel``: taps past the kernel's edge are dropped."""
    kernel_h, kernel_w, channels, filters = kernel_shape
    stride_h, stride_w = strides
    spread = phased.reshape(2, 2, stride_h, stride_w, channels, filters).transpose(0, 2, 1, 3, 4, 5)
    return spread.reshape(2 * stride_h, 2 * stride_w, channels, filters)[:kernel_h, :kernel_w]


def _transformed(phased):
    """The 16 F(3x3, 2x2) weight matrices (16, C', F) of a 2x2 kernel."""
    weights = allocate((TILING.elements, *phased.shape[2:]), phased.dtype, "conv2d Winograd kernel")
    TILING.transform_kernel(phased, weights)
    return weights


def forward(x, kernel, bias, out, geometry):
    """``out`` (N, OH, OW, F) of the convolution of ``geometry``."""
    if not np.isfinite(kernel).all():
        return False
    weights = _transformed(phase_kernel(kernel, geometry.strides))
    return winograd_tiles_forward(
        x, weights, bias, out, geometry.pad_top, geometry.pad_left, geometry.single_threaded,
        TILE_SIZE, geometry.strides,
    )


def grad_input(grad_output, kernel, grad_input, geometry):
    """``grad_input`` (N, H, W, C) of the convolution of ``geometry``; by col2im when an
    Inf or NaN meets the transforms."""
    if not _winograd_grad_input(grad_output, kernel, grad_input, geometry):
        col2im_grad_input(
            grad_output, kernel, grad_input, geometry.out_h, geometry.out_w, geometry.scalars,
            geometry.single_threaded,
        )


def _winograd_grad_input(grad_output, kernel, grad_input, geometry):
    if not np.isfinite(kernel).all():
        return False
    stride_h, stride_w = geometry.strides
    pad_top, pad_left = geometry.pad_top, geometry.pad_left
    height, width = geometry.height, geometry.width
    phased = phase_kernel(kernel, geometry.strides)
    weights = _transformed(np.ascontiguousarray(phased[::-1, ::-1].transpose(0, 1, 3, 2)))
    batch, out_h, out_w, _ = grad_output.shape
    # Pixels of Z: the full convolution has out_h + 1 rows, the image needs those up to
    # its last row; rows of the image past Z's last one get no gradient.
    z_h = min(out_h + 1, (height - 1 + pad_top) // stride_h + 1)
    z_w = min(out_w + 1, (width - 1 + pad_left) // stride_w + 1)
    grad_input[:, max(0, stride_h * z_h - pad_top):] = 0.0
    grad_input[:, :, max(0, stride_w * z_w - pad_left):] = 0.0

    def write(products, tile0, tile1, tiles_h, tiles_w):
        kernels.transform_output_scatter(
            products, grad_input, tile0, tile1, tiles_h, tiles_w, z_h, z_w, stride_h,
            stride_w, pad_top, pad_left,
        )

    return winograd_tiles(
        grad_output, weights, (batch, z_h, z_w), write, 1, 1, geometry.single_threaded,
        TILE_SIZE,
    )


def grad_kernel(x, grad_output, grad_kernel, geometry):
    """``grad_kernel`` (KH, KW, C, F) of the convolution of ``geometry``."""
    sums = winograd_tiles_grad_kernel(
        x, grad_output, geometry.channels, geometry.pad_top, geometry.pad_left,
        geometry.single_threaded, TILE_SIZE, geometry.strides,
    )
    if sums is None:
        return False
    phased = allocate((2, 2, *sums.shape[1:]), sums.dtype, "conv2d Winograd kernel gradient")
    TILING.transform_weights_grad(sums, phased)
    grad_kernel[...] = _unphase_kernel(phased, grad_kernel.shape, geometry.strides)
    return True
