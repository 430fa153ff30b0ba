"""Normalising convolution and pooling arguments, shared by nn and layers.

Every error names the argument and quotes the value received.
"""

import numbers

DATA_FORMATS = ("channels_last", "channels_first")

# Kernels take sizes as int64; anything larger cannot describe a real array.
MAX_SIZE = 2**62


def check_positive_int(value, name, allow_zero=False):
    """Return ``value`` as an int, refusing bools, floats, NaN and out-of-range values."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; received {name}={value!r}")
    value = int(value)
    if value < 0 or (value == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {bound} integer; received {name}={value!r}")
    if value > MAX_SIZE:
        raise ValueError(f"{name} must be at most 2**62; received {name}={value!r}")
    return value


def normalize_tuple(value, n, name, allow_zero=False):
    """An int or a length-``n`` sequence of ints -> tuple of ``n`` ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        items = (value,) * n
    elif isinstance(value, (tuple, list)):
        items = tuple(value)
        if len(items) != n:
            raise ValueError(
                f"{name} must be an integer or a tuple of {n} integers; received {name}={value!r}"
            )
    else:
        raise TypeError(
            f"{name} must be an integer or a tuple of {n} integers; received {name}={value!r}"
        )
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise TypeError(
                f"{name} must be an integer or a tuple of {n} integers; received {name}={value!r}"
            )
        if item < 0 or (item == 0 and not allow_zero):
            bound = "non-negative" if allow_zero else "positive"
            raise ValueError(f"{name} values must be {bound}; received {name}={value!r}")
        if item > MAX_SIZE:
            raise ValueError(f"{name} values must be at most 2**62; received {name}={value!r}")
    return tuple(int(item) for item in items)


def normalize_data_format(value):
    """ "channels_last" / "channels_first" (case-insensitive)."""
    if isinstance(value, str) and value.lower() in DATA_FORMATS:
        return value.lower()
    raise ValueError(f"data_format must be one of {DATA_FORMATS}; received data_format={value!r}")


def normalize_padding(padding):
    """ "valid", "same" (case-insensitive), or explicit ((top, bottom), (left, right)).

    An int ``p`` pads every side by ``p``; a pair ``(ph, pw)`` pads top and
    bottom by ``ph`` and left and right by ``pw``.
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode in ("valid", "same"):
            return mode
        raise ValueError(
            f'padding must be "valid", "same" or explicit sizes; received padding={padding!r}'
        )
    message = (
        'padding must be "valid", "same", an int, a pair (pad_height, pad_width) or '
        f"((top, bottom), (left, right)); received padding={padding!r}"
    )
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        pad = check_positive_int(padding, "padding", allow_zero=True)
        return ((pad, pad), (pad, pad))
    if not isinstance(padding, (tuple, list)) or len(padding) != 2:
        raise (TypeError if not isinstance(padding, (tuple, list)) else ValueError)(message)
    sides = []
    for item in padding:
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise ValueError(message)
            pair = item
        else:
            pair = (item, item)
        for pad in pair:
            if isinstance(pad, bool) or not isinstance(pad, numbers.Integral):
                raise TypeError(message)
            if pad < 0 or pad > MAX_SIZE:
                raise ValueError(message)
        sides.append((int(pair[0]), int(pair[1])))
    return tuple(sides)


def check_strides_and_dilation(strides, dilation_rate):
    """Keras refuses any stride > 1 together with any dilation > 1."""
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise ValueError(
            "strides > 1 is incompatible with dilation_rate > 1; "
            f"received strides={strides} and dilation_rate={dilation_rate}"
        )


def same_padding(size, kernel, stride, dilation):
    """(before, after) padding of TensorFlow's "same": the extra pixel goes after."""
    out = -(-size // stride)
    effective_kernel = (kernel - 1) * dilation + 1
    total = max(0, (out - 1) * stride + effective_kernel - size)
    return total // 2, total - total // 2


def resolve_padding(padding, spatial_shape, kernel_size, strides, dilation_rate):
    """Explicit ((top, bottom), (left, right)) pads and (out_height, out_width).

    ``padding`` is the result of :func:`normalize_padding`.  Output sizes may
    be zero or less than zero when the window does not fit; callers decide
    what error to raise.
    """
    pads = []
    outs = []
    for axis in range(2):
        size, kernel, stride, dilation = (
            spatial_shape[axis],
            kernel_size[axis],
            strides[axis],
            dilation_rate[axis],
        )
        if padding == "valid":
            pair = (0, 0)
        elif padding == "same":
            pair = same_padding(size, kernel, stride, dilation)
        else:
            pair = padding[axis]
        pads.append(pair)
        effective_kernel = (kernel - 1) * dilation + 1
        outs.append((size + pair[0] + pair[1] - effective_kernel) // stride + 1)
    return tuple(pads), tuple(outs)
