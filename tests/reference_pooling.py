"""Slow, obviously right 2-D pooling: plain loops over an explicitly padded copy.

Everything works on channels_last ``(N, H, W, C)`` arrays in float64; tests
move other layouts into this one.  Padding follows TensorFlow's documented
rule for "same": ``out = ceil(size / stride)``, total padding
``max((out - 1) * stride + pool - size, 0)``, the smaller half before.
A padded copy carries a mask of real pixels; padding never takes part in a
maximum or a mean.
"""

import math

import numpy as np


def padding_and_output(size, pool, stride, padding):
    """(pad_before, pad_after, out_size) along one spatial axis."""
    if padding == "valid":
        return 0, 0, (size - pool) // stride + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + pool - size, 0)
    return total // 2, total - total // 2, out


def _padded(x, pool, strides, padding):
    n, height, width, channels = x.shape
    top, bottom, out_h = padding_and_output(height, pool[0], strides[0], padding)
    left, right, out_w = padding_and_output(width, pool[1], strides[1], padding)
    padded = np.zeros((n, height + top + bottom, width + left + right, channels))
    padded[:, top:top + height, left:left + width, :] = x
    real = np.zeros(padded.shape[1:3], dtype=bool)
    real[top:top + height, left:left + width] = True
    return padded, real, (top, left), (out_h, out_w)


def _windows(real, pool, strides, out_shape):
    """Yield (oh, ow, [(row, col) of the real pixels in row-major order]) in padded coordinates."""
    for oh in range(out_shape[0]):
        for ow in range(out_shape[1]):
            cells = []
            for i in range(pool[0]):
                for j in range(pool[1]):
                    row, col = oh * strides[0] + i, ow * strides[1] + j
                    if real[row, col]:
                        cells.append((row, col))
            yield oh, ow, cells


def _first_max(values):
    """Index of the maximum, NaN counting as the largest; the first one on ties."""
    values = np.asarray(values)
    nan_positions = np.flatnonzero(np.isnan(values))
    return int(nan_positions[0]) if nan_positions.size else int(np.argmax(values))


def max_pool(x, pool, strides, padding):
    x = np.asarray(x, dtype=np.float64)
    padded, real, _, out_shape = _padded(x, pool, strides, padding)
    out = np.zeros((x.shape[0], *out_shape, x.shape[3]))
    for oh, ow, cells in _windows(real, pool, strides, out_shape):
        for b in range(x.shape[0]):
            for c in range(x.shape[3]):
                values = [padded[b, row, col, c] for row, col in cells]
                out[b, oh, ow, c] = values[_first_max(values)]
    return out


def avg_pool(x, pool, strides, padding):
    x = np.asarray(x, dtype=np.float64)
    padded, real, _, out_shape = _padded(x, pool, strides, padding)
    out = np.zeros((x.shape[0], *out_shape, x.shape[3]))
    for oh, ow, cells in _windows(real, pool, strides, out_shape):
        for b in range(x.shape[0]):
            for c in range(x.shape[3]):
                out[b, oh, ow, c] = sum(padded[b, row, col, c] for row, col in cells) / len(cells)
    return out


def max_pool_grad(x, grad_output, pool, strides, padding):
    x = np.asarray(x, dtype=np.float64)
    padded, real, (top, left), out_shape = _padded(x, pool, strides, padding)
    grad_padded = np.zeros_like(padded)
    for oh, ow, cells in _windows(real, pool, strides, out_shape):
        for b in range(x.shape[0]):
            for c in range(x.shape[3]):
                row, col = cells[_first_max([padded[b, r, k, c] for r, k in cells])]
                grad_padded[b, row, col, c] += grad_output[b, oh, ow, c]
    return grad_padded[:, top:top + x.shape[1], left:left + x.shape[2], :]


def avg_pool_grad(x, grad_output, pool, strides, padding):
    x = np.asarray(x, dtype=np.float64)
    padded, real, (top, left), out_shape = _padded(x, pool, strides, padding)
    grad_padded = np.zeros_like(padded)
    for oh, ow, cells in _windows(real, pool, strides, out_shape):
        for row, col in cells:
            grad_padded[:, row, col, :] += grad_output[:, oh, ow, :] / len(cells)
    return grad_padded[:, top:top + x.shape[1], left:left + x.shape[2], :]
