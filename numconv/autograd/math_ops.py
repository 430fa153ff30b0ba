"""Differentiable elementwise, reduction, shape and indexing ops.

Every op accepts Tensors, Variables, ndarrays and Python scalars, returns a
Tensor, and records its backward on the active tapes through
:func:`~numconv.autograd.tensor.record`.  Dtypes follow NumPy 2 promotion:
Python scalars are "weak" (``float32_tensor * 2.0`` stays float32), NumPy
scalars and arrays are not.  Each backward computes only the input gradients
the tape asks for and returns them in the input's dtype and shape.

Edge gradients follow TensorFlow:

* ``maximum`` routes the gradient to ``x`` where ``x >= y``, ``minimum``
  where ``x <= y``; ``y`` gets the rest.
* ``abs`` has gradient 0 at 0 (``sign(0) = 0``).
* ``reduce_max`` splits the gradient equally among all positions equal to
  the maximum.
* ``clip`` passes the gradient to ``x`` where ``min <= x <= max``, to
  ``clip_value_min`` where ``x < min`` and to ``clip_value_max`` where
  ``x > max``.
* ``power``: d/dy is 0 where ``x <= 0``; d/dx is 0 where ``y == 0``.
* ``cast`` is differentiable only between floating (or complex) dtypes.
"""

import numbers

import numpy as np

from .tensor import Tensor, Variable, as_array, record, unbroadcast

_PYTHON_SCALARS = (bool, int, float, complex)


class InvalidIndexError(IndexError, ValueError):
    """An index that does not fit the indexed Tensor (both an IndexError and a ValueError)."""


# -- helpers --------------------------------------------------------------------
def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _operand(value, name):
    """The ndarray behind ``value``; Python scalars stay Python scalars (weak promotion)."""
    if isinstance(value, Tensor):
        return value._value
    if type(value) in _PYTHON_SCALARS:
        return value
    if value is None:
        raise TypeError(f"{name} must be a Tensor, an array or a number; received {name}=None")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):  # ragged nests, objects refusing conversion
        raise TypeError(
            f"{name} must be a Tensor, an array or a number; received {name}={_short(value)}"
        ) from None
    if array.dtype.kind in "OSUVMm":
        raise TypeError(
            f"{name} must hold numbers; received an array of dtype {array.dtype} "
            f"({name}={_short(value)})"
        )
    return array


def _is_inexact(dtype):
    return dtype.kind in "fc"


def _gradient_for(grad, operand):
    """``grad`` summed down to ``operand``'s shape, in ``operand``'s dtype when inexact."""
    grad = unbroadcast(np.asarray(grad), np.shape(operand))
    dtype = np.asarray(operand).dtype
    if _is_inexact(dtype) and grad.dtype != dtype:
        grad = grad.astype(dtype)
    return grad


def _broadcast_shape(op_name, **operands):
    shapes = {name: np.shape(value) for name, value in operands.items()}
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        described = ", ".join(f"{name}.shape={shape}" for name, shape in shapes.items())
        raise ValueError(
            f"{op_name} needs shapes that broadcast together; received {described}"
        ) from None


def _unary(x, forward, derivative):
    """An elementwise op with ``d out / d x = derivative(a, out)``."""
    a = _operand(x, "x")
    value = np.asarray(forward(a))

    def backward(grad, needs):
        return (_gradient_for(grad * derivative(a, value), a),)

    return record(value, (x,), backward)


def _binary(op_name, x, y, forward, derivative_x, derivative_y):
    """A broadcasting op; ``derivative_*(grad, a, b, out)`` give the unreduced gradients."""
    a, b = _operand(x, "x"), _operand(y, "y")
    _broadcast_shape(op_name, x=a, y=b)
    value = np.asarray(forward(a, b))

    def backward(grad, needs):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (
                _gradient_for(derivative_x(grad, a, b, value), a) if needs[0] else None,
                _gradient_for(derivative_y(grad, a, b, value), b) if needs[1] else None,
            )

    return record(value, (x, y), backward)


def _normalize_axes(axis, ndim, name="axis"):
    """``axis`` (None, int or sequence of ints) -> sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    axes = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise TypeError(
                f"{name} must be None, an integer or a tuple of integers; received {name}={axis!r}"
            )
        if not -ndim <= item < ndim:
            raise ValueError(
                f"{name} is out of range for a tensor of rank {ndim}; received {name}={axis!r}"
            )
        axes.append(int(item) % ndim)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{name} must not repeat an axis; received {name}={axis!r}")
    return tuple(sorted(axes))


def _normalize_axis(axis, ndim, name="axis"):
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name} must be an integer; received {name}={axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name} is out of range for rank {ndim}; received {name}={axis!r}")
    return int(axis) % ndim


def _expand_reduced(grad, axes, keepdims):
    """Re-insert reduced axes (as size 1) so ``grad`` broadcasts against the input."""
    return grad if keepdims else np.expand_dims(grad, axes)


# -- identity, arithmetic ---------------------------------------------------------
def identity(x):
    """``x`` as a new Tensor; the gradient passes through unchanged."""
    a = _operand(x, "x")
    # A Variable read is a snapshot, even if the variable's array is later written in place.
    value = np.array(a, copy=True) if isinstance(x, Variable) else np.asarray(a)
    return record(value, (x,), lambda grad, needs: (grad,))


def add(x, y):
    """``x + y`` with broadcasting."""
    return _binary(
        "add", x, y, np.add,
        lambda g, a, b, out: g,
        lambda g, a, b, out: g,
    )


def subtract(x, y):
    """``x - y`` with broadcasting."""
    return _binary(
        "subtract", x, y, np.subtract,
        lambda g, a, b, out: g,
        lambda g, a, b, out: -g,
    )


def multiply(x, y):
    """``x * y`` with broadcasting."""
    return _binary(
        "multiply", x, y, np.multiply,
        lambda g, a, b, out: g * b,
        lambda g, a, b, out: g * a,
    )


def divide(x, y):
    """``x / y`` (true division) with broadcasting."""
    return _binary(
        "divide", x, y, np.true_divide,
        lambda g, a, b, out: g / b,
        lambda g, a, b, out: -g * out / b,
    )


def _power_grad_x(g, a, b, out):
    # d/dx x**0 is 0 even at x = 0, where b * x**(b-1) would be 0 * inf.
    return np.where(np.equal(b, 0), 0, g * b * np.power(a, np.subtract(b, 1)))


def _power_grad_y(g, a, b, out):
    # As TF: log(x) taken as 0 where x <= 0, so the gradient there is 0, not NaN.
    positive = np.greater(a, 0)
    safe_log = np.where(positive, np.log(np.where(positive, a, 1)), 0)
    return g * out * safe_log


def power(x, y):
    """``x ** y`` with broadcasting."""
    return _binary("power", x, y, np.power, _power_grad_x, _power_grad_y)


def maximum(x, y):
    """Elementwise maximum; ties send the gradient to ``x``."""
    return _binary(
        "maximum", x, y, np.maximum,
        lambda g, a, b, out: np.where(np.greater_equal(a, b), g, 0),
        lambda g, a, b, out: np.where(np.greater_equal(a, b), 0, g),
    )


def minimum(x, y):
    """Elementwise minimum; ties send the gradient to ``x``."""
    return _binary(
        "minimum", x, y, np.minimum,
        lambda g, a, b, out: np.where(np.less_equal(a, b), g, 0),
        lambda g, a, b, out: np.where(np.less_equal(a, b), 0, g),
    )


def negative(x):
    """``-x``."""
    return _unary(x, np.negative, lambda a, out: -1)


def square(x):
    """``x * x``."""
    return _unary(x, np.square, lambda a, out: 2 * a)


def sqrt(x):
    """Square root; the gradient at 0 is inf, as in TF."""
    return _unary(x, np.sqrt, lambda a, out: 0.5 / out)


def exp(x):
    """``e ** x``."""
    return _unary(x, np.exp, lambda a, out: out)


def log(x):
    """Natural logarithm."""
    return _unary(x, np.log, lambda a, out: 1 / a)


def abs(x):  # noqa: A001  (the public name, as tf.abs)
    """``|x|``; the gradient at 0 is 0."""
    return _unary(x, np.abs, lambda a, out: np.sign(a))


def where(condition, x, y):
    """``x`` where ``condition`` is true, else ``y`` (all three broadcast).

    ``condition`` is not differentiable.
    """
    c, a, b = _operand(condition, "condition"), _operand(x, "x"), _operand(y, "y")
    _broadcast_shape("where", condition=c, x=a, y=b)
    mask = np.asarray(c).astype(bool, copy=False)
    value = np.asarray(np.where(mask, a, b))

    def backward(grad, needs):
        return (
            None,
            _gradient_for(np.where(mask, grad, 0), a) if needs[1] else None,
            _gradient_for(np.where(mask, 0, grad), b) if needs[2] else None,
        )

    return record(value, (condition, x, y), backward)


def clip(x, clip_value_min, clip_value_max):
    """``x`` limited to ``[clip_value_min, clip_value_max]`` (bounds broadcast).

    Raises ValueError when a bound makes the result larger than ``x``.
    """
    a = _operand(x, "x")
    low = _operand(clip_value_min, "clip_value_min")
    high = _operand(clip_value_max, "clip_value_max")
    shape = _broadcast_shape("clip", x=a, clip_value_min=low, clip_value_max=high)
    if shape != np.shape(a):
        raise ValueError(
            "clip bounds must broadcast to the shape of x; received "
            f"x.shape={np.shape(a)}, clip_value_min.shape={np.shape(low)}, "
            f"clip_value_max.shape={np.shape(high)}"
        )
    value = np.asarray(np.minimum(np.maximum(a, low), high))

    def backward(grad, needs):
        below, above = np.less(a, low), np.greater(a, high)
        return (
            _gradient_for(np.where(below | above, 0, grad), a) if needs[0] else None,
            _gradient_for(np.where(below, grad, 0), low) if needs[1] else None,
            _gradient_for(np.where(above, grad, 0), high) if needs[2] else None,
        )

    return record(value, (x, clip_value_min, clip_value_max), backward)


# -- linear algebra -------------------------------------------------------------------
def matmul(x, y):
    """Matrix product with NumPy's rules (1-D operands, broadcast batch dims)."""
    a, b = np.asarray(_operand(x, "x")), np.asarray(_operand(y, "y"))
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul needs operands of rank >= 1; received x.shape={a.shape}, y.shape={b.shape}"
        )
    inner_y = b.shape[0] if b.ndim == 1 else b.shape[-2]
    try:
        if a.shape[-1] != inner_y:
            raise ValueError
        value = np.asarray(np.matmul(a, b))
    except ValueError:
        raise ValueError(
            f"matmul needs x.shape[-1] == y.shape[-2] and broadcastable batch dims; "
            f"received x.shape={a.shape}, y.shape={b.shape}"
        ) from None

    def backward(grad, needs):
        # Work on the 2-D-promoted operands, then drop the promoted axes again.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        grad2 = np.asarray(grad)
        if b.ndim == 1:
            grad2 = grad2[..., None]
        if a.ndim == 1:
            grad2 = grad2[..., None, :]
        grad_x = grad_y = None
        if needs[0]:
            grad_x = _gradient_for(np.matmul(grad2, np.swapaxes(b2, -1, -2)), a2).reshape(a.shape)
        if needs[1]:
            grad_y = _gradient_for(np.matmul(np.swapaxes(a2, -1, -2), grad2), b2).reshape(b.shape)
        return grad_x, grad_y

    return record(value, (x, y), backward)


# -- shape ops ----------------------------------------------------------------------
def reshape(x, shape):
    """``x`` with a new shape (one entry may be -1)."""
    a = np.asarray(_operand(x, "x"))
    try:
        value = a.reshape(shape)
    except (ValueError, TypeError):
        raise ValueError(
            f"cannot reshape x of shape {a.shape} ({a.size} elements) to shape={shape!r}"
        ) from None
    return record(value, (x,), lambda grad, needs: (np.reshape(grad, a.shape),))


def transpose(x, perm=None):
    """``x`` with its axes permuted by ``perm`` (reversed when None)."""
    a = np.asarray(_operand(x, "x"))
    if perm is None:
        perm = tuple(range(a.ndim))[::-1]
    else:
        items = tuple(perm) if isinstance(perm, (tuple, list, np.ndarray)) else None
        if items is None or any(
            isinstance(p, bool) or not isinstance(p, numbers.Integral) for p in items
        ):
            raise TypeError(f"perm must be a sequence of integers; received perm={perm!r}")
        if (
            len(items) != a.ndim
            or any(not -a.ndim <= p < a.ndim for p in items)
            or sorted(int(p) % a.ndim for p in items) != list(range(a.ndim))
        ):
            raise ValueError(
                f"perm must be a permutation of the {a.ndim} axes of x (shape {a.shape}); "
                f"received perm={perm!r}"
            )
        perm = tuple(int(p) % a.ndim for p in items)
    inverse = tuple(np.argsort(perm))
    value = np.transpose(a, perm)
    return record(value, (x,), lambda grad, needs: (np.transpose(grad, inverse),))


def _common_operands(values, op_name):
    if isinstance(values, Tensor) or not isinstance(values, (list, tuple)) or len(values) == 0:
        raise TypeError(
            f"{op_name} needs a non-empty list of tensors; received values={_short(values)}"
        )
    operands = [_operand(value, f"values[{i}]") for i, value in enumerate(values)]
    dtype = np.result_type(*operands)  # Python scalars stay weak
    return [np.asarray(operand, dtype=dtype) for operand in operands], operands


def concat(values, axis):
    """Join tensors along an existing ``axis``; other dims must match."""
    arrays, operands = _common_operands(values, "concat")
    shapes = [array.shape for array in arrays]
    ndim = arrays[0].ndim
    if ndim == 0 or any(array.ndim != ndim for array in arrays):
        raise ValueError(f"concat needs tensors of one rank >= 1; received shapes {shapes}")
    axis = _normalize_axis(axis, ndim)
    for shape in shapes:
        if shape[:axis] + shape[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:]:
            raise ValueError(
                f"concat needs equal shapes except along axis={axis}; received shapes {shapes}"
            )
    value = np.concatenate(arrays, axis=axis)
    boundaries = np.cumsum([shape[axis] for shape in shapes])[:-1]

    def backward(grad, needs):
        pieces = np.split(grad, boundaries, axis=axis)
        return tuple(
            _gradient_for(piece, operand) if need else None
            for piece, operand, need in zip(pieces, operands, needs)
        )

    return record(value, tuple(values), backward)


def stack(values, axis=0):
    """Join tensors of one shape along a new ``axis``."""
    arrays, operands = _common_operands(values, "stack")
    shapes = [array.shape for array in arrays]
    if any(shape != shapes[0] for shape in shapes):
        raise ValueError(f"stack needs tensors of one shape; received shapes {shapes}")
    axis = _normalize_axis(axis, arrays[0].ndim + 1)
    value = np.stack(arrays, axis=axis)

    def backward(grad, needs):
        return tuple(
            _gradient_for(np.take(grad, index, axis=axis), operand) if need else None
            for index, (operand, need) in enumerate(zip(operands, needs))
        )

    return record(value, tuple(values), backward)


# -- reductions ---------------------------------------------------------------------
def _sum_dtype(dtype):
    if dtype == np.float16:
        return np.float32  # as TF: accumulate half precision in float32
    if dtype.kind in "iufc":
        return dtype  # NumPy would widen int32 to int64; TF keeps the dtype
    return None


def reduce_sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (all axes when None)."""
    a = np.asarray(_operand(x, "x"))
    axes = _normalize_axes(axis, a.ndim)
    value = np.asarray(np.sum(a, axis=axes, keepdims=keepdims, dtype=_sum_dtype(a.dtype)))
    if a.dtype == np.float16:
        value = value.astype(np.float16)

    def backward(grad, needs):
        expanded = _expand_reduced(grad, axes, keepdims)
        return (_gradient_for(np.broadcast_to(expanded, a.shape).copy(), a),)

    return record(value, (x,), backward)


def reduce_mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (all axes when None); integer inputs give float64, as NumPy."""
    a = np.asarray(_operand(x, "x"))
    axes = _normalize_axes(axis, a.ndim)
    count = int(np.prod([a.shape[i] for i in axes], dtype=np.int64))
    with np.errstate(divide="ignore", invalid="ignore"):
        total = np.sum(a, axis=axes, keepdims=keepdims, dtype=_sum_dtype(a.dtype))
        value = np.asarray(total / count)
    if _is_inexact(a.dtype):
        value = value.astype(a.dtype, copy=False)

    def backward(grad, needs):
        expanded = _expand_reduced(grad, axes, keepdims) / max(count, 1)
        return (_gradient_for(np.broadcast_to(expanded, a.shape).copy(), a),)

    return record(value, (x,), backward)


def reduce_max(x, axis=None, keepdims=False):
    """Maximum over ``axis``; the gradient is split equally among tied maxima (as TF)."""
    a = np.asarray(_operand(x, "x"))
    axes = _normalize_axes(axis, a.ndim)
    if any(a.shape[i] == 0 for i in axes):
        raise ValueError(
            f"reduce_max over an empty axis has no value; received x.shape={a.shape}, "
            f"axis={axis!r}"
        )
    value = np.asarray(np.max(a, axis=axes, keepdims=keepdims))

    def backward(grad, needs):
        is_max = a == np.max(a, axis=axes, keepdims=True)
        ties = np.sum(is_max, axis=axes, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):  # a NaN maximum has no ties
            share = _expand_reduced(grad, axes, keepdims) / ties
        return (_gradient_for(np.where(is_max, share, 0), a),)

    return record(value, (x,), backward)


# -- dtype, indexing -------------------------------------------------------------------
def cast(x, dtype):
    """``x`` converted to ``dtype``; gradients flow only between floating dtypes (as TF)."""
    a = np.asarray(_operand(x, "x"))
    try:
        target = np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"dtype must be a NumPy dtype or its name; received dtype={dtype!r}"
        ) from None
    if target.kind in "OSUVMm":
        raise TypeError(f"dtype must be a numeric dtype; received dtype={dtype!r}")
    value = a.astype(target, copy=False)

    def backward(grad, needs):
        if not (_is_inexact(a.dtype) and _is_inexact(target)):
            return (None,)
        return (np.asarray(grad).astype(a.dtype, copy=False),)

    return record(value, (x,), backward)


def _plain_index(index):
    """Tensors inside an index -> ndarrays."""
    if isinstance(index, tuple):
        return tuple(as_array(item) if isinstance(item, Tensor) else item for item in index)
    return as_array(index) if isinstance(index, Tensor) else index


def _is_basic(index):
    """Whether ``index`` is basic indexing (no element selected twice)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(
        item is None or item is Ellipsis or isinstance(item, slice)
        or (
            isinstance(item, (numbers.Integral, np.integer))
            and not isinstance(item, (bool, np.bool_))
        )
        for item in items
    )


def getitem(x, index):
    """``x[index]`` with NumPy basic and advanced indexing.

    Raises InvalidIndexError (an IndexError and a ValueError) for an index
    that does not fit ``x``.
    """
    a = np.asarray(_operand(x, "x"))
    index = _plain_index(index)
    try:
        value = np.asarray(a[index])
    except IndexError as error:
        raise InvalidIndexError(
            f"index={_short(index)} does not fit x of shape {a.shape}: {error}"
        ) from None
    basic = _is_basic(index)

    def backward(grad, needs):
        dtype = a.dtype if _is_inexact(a.dtype) else np.asarray(grad).dtype
        grad_x = np.zeros(a.shape, dtype=dtype)
        if basic:
            grad_x[index] = grad
        else:
            # Fancy indexing may select an element several times: accumulate.
            np.add.at(grad_x, index, grad)
        return (grad_x,)

    return record(value, (x,), backward)
