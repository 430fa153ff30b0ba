"""Requests far beyond memory fail at once with a MemoryError stating the bytes requested.

The inputs are zero-stride views (np.broadcast_to), so a "batch" of 10**12
values costs no memory here; nothing may try to copy or allocate it.
"""

import re

import numpy as np
import pytest

from numconv import initializers, layers, nn, ops

HUGE = (10**6, 1000, 1000, 1)  # 10**12 values: 4 TB in float32


def huge_batch(dtype=np.float32):
    return np.broadcast_to(np.zeros((1, 1, 1, 1), dtype), HUGE)


def requested_bytes(error_info):
    """The byte count the MemoryError states."""
    found = re.search(r"needs (\d+) bytes", str(error_info.value))
    assert found, str(error_info.value)
    return int(found.group(1))


@pytest.mark.parametrize("call, at_least", [
    (lambda x: nn.conv2d(x, np.ones((1, 1, 1, 2), np.float32)), 10**12 * 2 * 4),
    (lambda x: nn.conv2d_grads(x, np.ones((1, 1, 1, 1), np.float32), x), 10**12 * 4),
    (lambda x: nn.max_pool2d(x, 1), 10**12 * 4),
    (lambda x: nn.avg_pool2d(x, 2), 10**12 // 4 * 4),
    (lambda x: nn.max_pool2d_grad(x, x, 1), 10**12 * 4),
    (lambda x: nn.avg_pool2d_grad(x, x, 1), 10**12 * 4),
    (lambda x: ops.max_pool2d(x, (2, 1)), 10**12 // 2 * 4),
], ids=["conv2d", "conv2d_grads", "max_pool2d", "avg_pool2d", "max_pool2d_grad",
        "avg_pool2d_grad", "ops.max_pool2d"])
def test_huge_batch_fails_at_once_with_the_byte_count(call, at_least):
    with pytest.raises(MemoryError, match=r"needs \d+ bytes") as error_info:
        call(huge_batch())
    assert requested_bytes(error_info) >= at_least


@pytest.mark.parametrize("make_layer", [
    lambda: layers.Conv2D(2, 1),
    lambda: layers.MaxPooling2D(1),
    lambda: layers.AveragePooling2D(2),
], ids=["Conv2D", "MaxPooling2D", "AveragePooling2D"])
def test_layer_call_on_huge_batch_leaves_the_layer_unchanged(make_layer):
    layer = make_layer()
    state_before = {
        key: value.copy() if isinstance(value, (list, dict)) else value
        for key, value in vars(layer).items()
    }
    with pytest.raises(MemoryError, match=r"needs \d+ bytes"):
        layer(huge_batch())
    assert layer.built == state_before["built"]
    assert layer.weights == []
    assert layer.losses == []
    assert dict(vars(layer)).keys() == state_before.keys()
    for key, value in state_before.items():
        assert vars(layer)[key] is value or vars(layer)[key] == value, key


def test_conv2d_huge_padding_fails_with_the_byte_count():
    x = np.ones((1, 4, 4, 1), np.float32)
    with pytest.raises(MemoryError) as error_info:
        nn.conv2d(x, np.ones((1, 1, 1, 1), np.float32), padding=10**7)
    assert requested_bytes(error_info) >= (2 * 10**7) ** 2 * 4


@pytest.mark.parametrize("make_layer, shape", [
    (lambda: layers.Dense(10**7, input_shape=(10**7,)), (10**7, 10**7)),
    (lambda: layers.Conv2D(10**6, 3, input_shape=(8, 8, 10**6)), (3, 3, 10**6, 10**6)),
], ids=["Dense", "Conv2D"])
def test_huge_weights_fail_with_the_byte_count(make_layer, shape):
    with pytest.raises(MemoryError, match=r"weight 'kernel' of layer .* with shape") as error_info:
        make_layer()
    assert requested_bytes(error_info) >= np.prod(shape, dtype=object) * 4


@pytest.mark.parametrize("name", ["zeros", "ones", "glorot_uniform", "he_normal", "orthogonal",
                                  "random_normal", "truncated_normal", "constant"])
def test_initializers_refuse_huge_shapes_with_the_byte_count(name):
    with pytest.raises(MemoryError, match=r"initializing a weight of shape \(1000000, 10000000\)"
                       ) as error_info:
        initializers.get(name)((10**6, 10**7), dtype="float32")
    assert requested_bytes(error_info) >= 10**13 * 4


def test_a_request_that_fits_still_works():
    x = np.broadcast_to(np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1), (3, 2, 2, 1))
    np.testing.assert_array_equal(nn.max_pool2d(x, 2), np.full((3, 1, 1, 1), 3.0, np.float32))
