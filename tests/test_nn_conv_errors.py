"""Every bad argument of conv2d / conv2d_grads: the right exception, naming argument and value."""

import re

import numpy as np
import pytest

import numconv.nn as nn

X = np.ones((2, 8, 8, 4))
KERNEL = np.ones((3, 3, 4, 6))


def call_conv2d(**changes):
    arguments = dict(x=X, kernel=KERNEL)
    arguments.update(changes)
    return nn.conv2d(**arguments)


def call_grads(**changes):
    arguments = dict(x=X, kernel=KERNEL, grad_output=np.ones((2, 6, 6, 6)))
    arguments.update(changes)
    return nn.conv2d_grads(**arguments)


CASES = [
    # (changes, exception, message pattern)
    (dict(x=None), TypeError, "x must be an array of real numbers; received x=None"),
    (dict(kernel=None), TypeError, "kernel must be an array of real numbers; received kernel=None"),
    (
        dict(x=X.astype(complex)),
        TypeError,
        "x must be an array of real numbers .* dtype " "complex128",
    ),
    (dict(kernel=KERNEL.astype(object)), TypeError, "kernel .* dtype object"),
    (dict(x="abc"), TypeError, "x .* dtype <U3 .*x='abc'"),
    (dict(x=object()), TypeError, "x .* dtype object .*x=<object object"),
    (
        dict(x=[[1, 2], [3]]),
        TypeError,
        r"x must be an array of real numbers; received x=\[\[1, " r"2\], \[3\]\]",
    ),
    (dict(x=X.astype(np.longdouble)), TypeError, "x .* dtype float128"),
    (dict(bias=np.ones(6, dtype=complex)), TypeError, "bias .* dtype complex128"),
    (dict(bias="b"), TypeError, "bias .* dtype <U1"),
    (
        dict(x=np.ones((8, 8, 4))),
        ValueError,
        r"x must have at least 4 dimensions .* received x with shape \(8, 8, 4\)",
    ),
    (
        dict(x=np.ones((8, 8, 4)), data_format="channels_first"),
        ValueError,
        r"\(batch..., channels, height, width\) for data_format='channels_first'; received x with "
        r"shape \(8, 8, 4\)",
    ),
    (dict(x=5.0), ValueError, r"received x with shape \(\)"),
    (
        dict(kernel=np.ones((3, 3, 4))),
        ValueError,
        r"kernel must be a 4-D array .* received kernel with shape \(3, 3, 4\)",
    ),
    (
        dict(kernel=np.ones((1, 3, 3, 3, 4))),
        ValueError,
        r"received kernel with shape \(1, 3, 3, " r"3, 4\)",
    ),
    (
        dict(kernel=np.ones((3, 3, 2, 6))),
        ValueError,
        r"kernel.shape\[2\] must equal input channels // groups = 4 // 1 = 4; received kernel with "
        r"shape \(3, 3, 2, 6\) and x with shape \(2, 8, 8, 4\)",
    ),
    (
        dict(kernel=np.ones((3, 3, 4, 6)), groups=2),
        ValueError,
        r"kernel.shape\[2\] must equal input channels // groups = 4 // 2 = 2; received kernel with "
        r"shape \(3, 3, 4, 6\)",
    ),
    (
        dict(groups=3),
        ValueError,
        r"input channels must be divisible by groups; received groups=3 and x with shape \(2, 8, "
        r"8, 4\)",
    ),
    (
        dict(kernel=np.ones((3, 3, 1, 6)), groups=4),
        ValueError,
        r"filters \(kernel.shape\[3\]\) must be divisible by groups; received groups=4 and kernel "
        r"with shape \(3, 3, 1, 6\)",
    ),
    (dict(groups=0), ValueError, "groups must be a positive integer; received groups=0"),
    (dict(groups=-2), ValueError, "groups must be a positive integer; received groups=-2"),
    (dict(groups=1.0), TypeError, "groups must be an integer; received groups=1.0"),
    (dict(groups=True), TypeError, "groups must be an integer; received groups=True"),
    (
        dict(kernel=np.ones((3, 0, 4, 6))),
        ValueError,
        r"kernel dimensions must be positive; received kernel with shape \(3, 0, 4, 6\)",
    ),
    (
        dict(x=np.ones((2, 8, 8, 0)), kernel=np.ones((3, 3, 0, 6))),
        ValueError,
        r"x must have at least one channel; received x with shape \(2, 8, 8, 0\)",
    ),
    (
        dict(bias=np.ones(5)),
        ValueError,
        r"bias must have shape \(filters,\) = \(6,\); received bias with shape \(5,\)",
    ),
    (dict(bias=np.ones((1, 6))), ValueError, r"received bias with shape \(1, 6\)"),
    (dict(strides=0), ValueError, "strides values must be positive; received strides=0"),
    (
        dict(strides=(1, -1)),
        ValueError,
        r"strides values must be positive; received " r"strides=\(1, -1\)",
    ),
    (
        dict(strides=(1, 2, 3)),
        ValueError,
        r"strides must be an integer or a tuple of 2 " r"integers; received strides=\(1, 2, 3\)",
    ),
    (dict(strides=1.5), TypeError, "received strides=1.5"),
    (dict(strides="2"), TypeError, "received strides='2'"),
    (
        dict(dilation_rate=0),
        ValueError,
        "dilation_rate values must be positive; received " "dilation_rate=0",
    ),
    (dict(dilation_rate=(2, None)), TypeError, r"received dilation_rate=\(2, None\)"),
    (
        dict(strides=2, dilation_rate=2),
        ValueError,
        r"strides > 1 is incompatible with dilation_rate > 1; received strides=\(2, 2\) and "
        r"dilation_rate=\(2, 2\)",
    ),
    (
        dict(strides=(1, 2), dilation_rate=(2, 1)),
        ValueError,
        r"received strides=\(1, 2\) and dilation_rate=\(2, 1\)",
    ),
    (dict(padding="causal"), ValueError, "padding must be .* received padding='causal'"),
    (dict(padding="full"), ValueError, "received padding='full'"),
    (dict(padding=-1), ValueError, "padding must be a non-negative integer; received padding=-1"),
    (dict(padding=(1, 2, 3)), ValueError, r"received padding=\(1, 2, 3\)"),
    (dict(padding=((1, 2), (3,))), ValueError, r"received padding=\(\(1, 2\), \(3,\)\)"),
    (dict(padding=((1, -2), (3, 0))), ValueError, r"received padding=\(\(1, -2\), \(3, 0\)\)"),
    (dict(padding=1.0), TypeError, "received padding=1.0"),
    (dict(padding=None), TypeError, "received padding=None"),
    (
        dict(data_format="NHWC"),
        ValueError,
        "data_format must be one of .* received " "data_format='NHWC'",
    ),
    (dict(data_format=None), ValueError, "received data_format=None"),
    (
        dict(x=np.ones((2, 2, 2, 4))),
        ValueError,
        r"output would be empty: x with shape \(2, 2, 2, 4\) \(height=2, width=2\), "
        r"kernel size \(3, 3\), dilation_rate \(1, 1\) and strides \(1, 1\) "
        r"with padding='valid' give an output of 0 x 0",
    ),
    (
        dict(x=np.ones((1, 9, 4, 4)), dilation_rate=(1, 2)),
        ValueError,
        r"x with shape \(1, 9, 4, 4\) \(height=9, width=4\), kernel size \(3, 3\), "
        r"dilation_rate \(1, 2\) and strides \(1, 1\) .* output of 7 x 0",
    ),
    (
        dict(
            x=np.ones((1, 4, 2, 9)),
            kernel=np.ones((3, 2, 4, 6)),
            data_format="channels_first",
            strides=2,
            padding="VALID",
        ),
        ValueError,
        r"x with shape \(1, 4, 2, 9\) \(height=2, width=9\), kernel size \(3, 2\), "
        r"dilation_rate \(1, 1\) and strides \(2, 2\) with padding='VALID' "
        r"give an output of 0 x 4",
    ),
    (
        dict(x=np.ones((1, 3, 3, 4)), kernel=np.ones((5, 5, 4, 6)), padding=((0, 1), (1, 0))),
        ValueError,
        r"output would be empty: .* kernel size \(5, 5\)",
    ),
    (
        dict(x=np.ones((1, 0, 3, 4)), padding="same"),
        ValueError,
        r"output would be empty: x with shape \(1, 0, 3, 4\)",
    ),
]


@pytest.mark.parametrize("changes, exception, pattern", CASES)
def test_conv2d_errors(changes, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call_conv2d(**changes)


@pytest.mark.parametrize(
    "changes, exception, pattern", [case for case in CASES if "bias" not in case[0]]
)
def test_conv2d_grads_errors(changes, exception, pattern):
    # conv2d_grads checks x, kernel and options exactly as conv2d does.
    with pytest.raises(exception, match=pattern):
        call_grads(**changes)


@pytest.mark.parametrize(
    "changes, exception, pattern",
    [
        (
            dict(grad_output=None),
            TypeError,
            "grad_output must be an array of real numbers; received " "grad_output=None",
        ),
        (
            dict(grad_output=np.ones((2, 6, 6, 6), dtype=complex)),
            TypeError,
            "grad_output .* dtype " "complex128",
        ),
        (
            dict(grad_output=np.ones((2, 6, 6, 5))),
            ValueError,
            r"grad_output must have the shape of conv2d's output, \(2, 6, 6, 6\); received grad_output "
            r"with shape \(2, 6, 6, 5\)",
        ),
        (
            dict(
                grad_output=np.ones((2, 6, 8, 6)),
                data_format="channels_first",
                x=np.ones((2, 4, 8, 10)),
            ),
            ValueError,
            r"grad_output must have the shape of conv2d's output, \(2, 6, 6, 8\); received grad_output "
            r"with shape \(2, 6, 8, 6\)",
        ),
        (
            dict(
                grad_output=np.ones((2, 6, 4, 4)),
                x=np.ones((2, 4, 8, 6)),
                data_format="channels_first",
            ),
            ValueError,
            r"output, \(2, 6, 6, 4\); received grad_output with shape \(2, 6, 4, 4\)",
        ),
        (
            dict(grad_output=np.ones((1, 2, 6, 6, 6))),
            ValueError,
            r"received grad_output with shape " r"\(1, 2, 6, 6, 6\)",
        ),
        (
            dict(wrt=("input", "weights")),
            ValueError,
            r"wrt entries must be among \('input', 'kernel', 'bias'\); received wrt=\('input', "
            r"'weights'\)",
        ),
        (dict(wrt="x"), ValueError, "received wrt='x'"),
        (dict(wrt=[0]), ValueError, r"received wrt=\[0\]"),
        (dict(wrt=None), TypeError, "wrt must be a sequence of names .* received wrt=None"),
        (dict(wrt=3), TypeError, "received wrt=3"),
    ],
)
def test_conv2d_grads_own_errors(changes, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call_grads(**changes)


def test_errors_leave_inputs_untouched_and_are_not_numba_errors():
    x = X.copy()
    with pytest.raises(ValueError) as info:
        nn.conv2d(x, KERNEL, groups=3)
    assert "numba" not in type(info.value).__module__
    assert not re.search("numba", str(info.value), re.IGNORECASE)
    np.testing.assert_array_equal(x, X)
