"""numconv._arguments: padding math against closed forms, and every error message."""

import itertools
import math

import numpy as np
import pytest

from numconv._arguments import (
    check_positive_int,
    check_strides_and_dilation,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    resolve_padding,
    same_padding,
)

SIZES = range(1, 26)
KERNELS = range(1, 8)
STRIDES = range(1, 5)
DILATIONS = range(1, 4)


def smallest_same_padding(size, kernel, stride, dilation):
    """Smallest total padding giving ceil(size / stride) windows, found by search."""
    effective = (kernel - 1) * dilation + 1
    wanted = math.ceil(size / stride)
    for total in itertools.count():
        if (size + total - effective) // stride + 1 >= wanted:
            return total


@pytest.mark.parametrize("size, kernel, stride, dilation, expected", [
    (6, 3, 2, 1, (0, 1)), (224, 7, 2, 1, (2, 3)), (5, 3, 1, 1, (1, 1)), (5, 2, 1, 1, (0, 1)),
    (7, 3, 1, 2, (2, 2)), (4, 1, 2, 1, (0, 0)), (1, 5, 3, 1, (2, 2)), (10, 4, 3, 1, (1, 2)),
])
def test_same_padding_known_values(size, kernel, stride, dilation, expected):
    assert same_padding(size, kernel, stride, dilation) == expected


def test_same_padding_matches_the_closed_form_and_the_search():
    for size, kernel, stride, dilation in itertools.product(SIZES, KERNELS, STRIDES, DILATIONS):
        out = math.ceil(size / stride)
        total = max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - size)
        before, after = same_padding(size, kernel, stride, dilation)
        assert (before, after) == (total // 2, total - total // 2)
        assert before + after == smallest_same_padding(size, kernel, stride, dilation)
        assert after - before in (0, 1)  # the extra pixel goes after


def test_resolve_padding_output_sizes():
    for size, kernel, stride in itertools.product(SIZES, KERNELS, STRIDES):
        dilation = 1 if stride > 1 else 2
        effective = (kernel - 1) * dilation + 1
        shape, kernels = (size, size + 3), (kernel, 1)
        strides, dilations = (stride, 1), (dilation, 1)
        pads, outs = resolve_padding("same", shape, kernels, strides, dilations)
        assert outs == (math.ceil(size / stride), size + 3)
        assert pads == (same_padding(size, kernel, stride, dilation), (0, 0))
        pads, outs = resolve_padding("valid", shape, kernels, strides, dilations)
        assert pads == ((0, 0), (0, 0))
        assert outs[0] == math.floor((size - effective) / stride) + 1
        explicit = ((1, 2), (0, 3))
        pads, outs = resolve_padding(explicit, shape, kernels, strides, dilations)
        assert pads == explicit
        assert outs == (math.floor((size + 3 - effective) / stride) + 1, size + 6)


@pytest.mark.parametrize("padding, expected", [
    ("valid", "valid"), ("VALID", "valid"), ("Same", "same"), ("same", "same"),
    (0, ((0, 0), (0, 0))), (2, ((2, 2), (2, 2))), (np.int64(1), ((1, 1), (1, 1))),
    ((1, 3), ((1, 1), (3, 3))), ([0, 2], ((0, 0), (2, 2))),
    (((1, 2), (3, 4)), ((1, 2), (3, 4))), ([[0, 1], [2, 0]], ((0, 1), (2, 0))),
    ((1, (2, 3)), ((1, 1), (2, 3))),
])
def test_normalize_padding(padding, expected):
    assert normalize_padding(padding) == expected


@pytest.mark.parametrize("padding, exception, pattern", [
    ("causal", ValueError, "received padding='causal'"),
    ("", ValueError, "received padding=''"),
    (-1, ValueError, "padding must be a non-negative integer; received padding=-1"),
    (1.0, TypeError, "received padding=1.0"),
    (True, TypeError, "received padding=True"),
    (None, TypeError, "received padding=None"),
    ((1, 2, 3), ValueError, r"received padding=\(1, 2, 3\)"),
    ((1,), ValueError, r"received padding=\(1,\)"),
    (((1, 2), (3, 4, 5)), ValueError, r"received padding=\(\(1, 2\), \(3, 4, 5\)\)"),
    (((1, -2), (3, 4)), ValueError, r"received padding=\(\(1, -2\), \(3, 4\)\)"),
    (((1, 2.5), (3, 4)), TypeError, r"received padding=\(\(1, 2.5\), \(3, 4\)\)"),
    ((1, "a"), TypeError, r"received padding=\(1, 'a'\)"),
])
def test_normalize_padding_errors(padding, exception, pattern):
    with pytest.raises(exception, match=pattern):
        normalize_padding(padding)


@pytest.mark.parametrize("value, expected", [
    (1, (1, 1)), (3, (3, 3)), ((1, 2), (1, 2)), ([2, 1], (2, 1)), (np.int32(2), (2, 2)),
])
def test_normalize_tuple(value, expected):
    assert normalize_tuple(value, 2, "strides") == expected


@pytest.mark.parametrize("value, exception, pattern", [
    (0, ValueError, "strides values must be positive; received strides=0"),
    ((1, 0), ValueError, r"strides values must be positive; received strides=\(1, 0\)"),
    ((1, 2, 3), ValueError, r"strides must be an integer or a tuple of 2 integers; received "
                            r"strides=\(1, 2, 3\)"),
    (1.0, TypeError, "received strides=1.0"),
    (True, TypeError, "received strides=True"),
    ((1, None), TypeError, r"received strides=\(1, None\)"),
    (None, TypeError, "received strides=None"),
])
def test_normalize_tuple_errors(value, exception, pattern):
    with pytest.raises(exception, match=pattern):
        normalize_tuple(value, 2, "strides")


def test_normalize_tuple_allow_zero():
    assert normalize_tuple(0, 2, "padding", allow_zero=True) == (0, 0)
    with pytest.raises(ValueError, match=r"non-negative; received padding=\(0, -1\)"):
        normalize_tuple((0, -1), 2, "padding", allow_zero=True)


@pytest.mark.parametrize("value, expected", [
    ("channels_last", "channels_last"), ("CHANNELS_FIRST", "channels_first"),
])
def test_normalize_data_format(value, expected):
    assert normalize_data_format(value) == expected


@pytest.mark.parametrize("value", ["NCHW", "", None, 1])
def test_normalize_data_format_errors(value):
    with pytest.raises(ValueError, match=f"received data_format={value!r}"):
        normalize_data_format(value)


def test_check_positive_int():
    assert check_positive_int(np.int64(3), "groups") == 3
    assert check_positive_int(0, "groups", allow_zero=True) == 0
    with pytest.raises(ValueError, match="groups must be a positive integer; received groups=0"):
        check_positive_int(0, "groups")
    with pytest.raises(ValueError, match="must be a non-negative integer; received groups=-1"):
        check_positive_int(-1, "groups", allow_zero=True)
    for bad in (1.5, True, "2", None, float("nan")):
        with pytest.raises(TypeError, match=f"groups must be an integer; received groups={bad!r}"):
            check_positive_int(bad, "groups")


def test_check_strides_and_dilation():
    check_strides_and_dilation((2, 2), (1, 1))
    check_strides_and_dilation((1, 1), (3, 2))
    with pytest.raises(ValueError, match=r"received strides=\(1, 2\) and dilation_rate=\(2, 1\)"):
        check_strides_and_dilation((1, 2), (2, 1))
