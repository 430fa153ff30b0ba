"""Tensor and Variable: ndarrays that differentiable ops can record on a tape.

A ``Tensor`` is an immutable wrapper of an ndarray.  A ``Variable`` is a
``Tensor`` whose value can be replaced (``assign``); trainable variables read
inside a ``GradientTape`` are watched automatically.

Ops create their outputs through :func:`record`, which computes nothing: it
wraps the forward value and, when some active tape tracks an input, stores the
op's backward function on that tape.
"""

import itertools

import numpy as np

from . import tape as _tape


def _check_value_dtype(array, name):
    if array.dtype.kind in "OSUVMm":
        raise TypeError(
            f"{name} must hold numbers; received an array of dtype {array.dtype} ({name}={_short(array)})"
        )
    return array


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_array(value):
    """The ndarray behind a Tensor, or ``np.asarray(value)`` for anything else."""
    if isinstance(value, Tensor):
        return value._value
    return np.asarray(value)


class Tensor:
    """An immutable n-dimensional array that differentiable ops accept and return.

    ``np.asarray(tensor)`` and ``tensor.numpy()`` give the ndarray.
    """

    __slots__ = ("_value", "__weakref__")
    # Makes ``ndarray + Tensor`` call Tensor.__radd__ instead of NumPy's add.
    __array_priority__ = 1000

    def __init__(self, value):
        array = value._value if isinstance(value, Tensor) else np.asarray(value)
        self._value = _check_value_dtype(array, "value")

    # -- ndarray-like read access -------------------------------------------------
    @property
    def shape(self):
        return self._value.shape

    @property
    def dtype(self):
        return self._value.dtype

    @property
    def ndim(self):
        return self._value.ndim

    @property
    def size(self):
        return self._value.size

    def numpy(self):
        """The value as an ndarray."""
        return self._value

    def __array__(self, dtype=None, copy=None):
        if copy:
            return np.array(self._value, dtype=dtype, copy=True)
        return self._value if dtype is None else self._value.astype(dtype, copy=False)

    def __len__(self):
        return len(self._value)

    def __float__(self):
        return float(self._value)

    def __int__(self):
        return int(self._value)

    def __bool__(self):
        return bool(self._value)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        body = np.array2string(self._value, separator=", ", threshold=20)
        return f"<{type(self).__name__} shape={self.shape} dtype={self.dtype} {body}>"

    # -- differentiable operators (implemented in math_ops) -----------------------
    def __add__(self, other):
        return _math.add(self, other)

    def __radd__(self, other):
        return _math.add(other, self)

    def __sub__(self, other):
        return _math.subtract(self, other)

    def __rsub__(self, other):
        return _math.subtract(other, self)

    def __mul__(self, other):
        return _math.multiply(self, other)

    def __rmul__(self, other):
        return _math.multiply(other, self)

    def __truediv__(self, other):
        return _math.divide(self, other)

    def __rtruediv__(self, other):
        return _math.divide(other, self)

    def __pow__(self, other):
        return _math.power(self, other)

    def __rpow__(self, other):
        return _math.power(other, self)

    def __matmul__(self, other):
        return _math.matmul(self, other)

    def __rmatmul__(self, other):
        return _math.matmul(other, self)

    def __neg__(self):
        return _math.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _math.abs(self)

    def __getitem__(self, index):
        return _math.getitem(self, index)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _math.reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _math.transpose(self, axes or None)

    @property
    def T(self):
        return _math.transpose(self, None)

    # Comparisons are not differentiable: they return boolean Tensors.
    def __lt__(self, other):
        return Tensor(self._value < as_array(other))

    def __le__(self, other):
        return Tensor(self._value <= as_array(other))

    def __gt__(self, other):
        return Tensor(self._value > as_array(other))

    def __ge__(self, other):
        return Tensor(self._value >= as_array(other))

    # Tensors are hashable by identity (the tape keys on identity), so == is not overloaded.
    __hash__ = object.__hash__


_variable_ids = itertools.count()


class Variable(Tensor):
    """A Tensor whose value can be replaced; what layers and optimizers update.

    Parameters
    ----------
    initial_value : array_like or callable returning one
    trainable : bool
        Trainable variables read inside a ``GradientTape`` are watched
        automatically; optimizers skip non-trainable ones.
    name : str, optional
    constraint : callable, optional
        Applied by optimizers right after each update.
    dtype : dtype, optional
    """

    __slots__ = ("trainable", "name", "constraint", "_id")

    def __init__(self, initial_value, trainable=True, name=None, constraint=None, dtype=None):
        if initial_value is None:
            raise TypeError("initial_value must be an array; received initial_value=None")
        if callable(initial_value):
            initial_value = initial_value()
        array = np.array(as_array(initial_value), dtype=dtype, copy=True)
        super().__init__(array)
        if constraint is not None and not callable(constraint):
            raise TypeError(f"constraint must be callable; received constraint={constraint!r}")
        self.trainable = bool(trainable)
        self._id = next(_variable_ids)
        self.name = name if name is not None else f"Variable:{self._id}"
        self.constraint = constraint

    def value(self):
        """The current value as a Tensor; reading it inside a tape is recorded."""
        return _math.identity(self)

    def read_value(self):
        return self.value()

    def numpy(self):
        """A copy of the current value (later assignments do not change it)."""
        return self._value.copy()

    def _checked(self, value, name="value"):
        array = _check_value_dtype(np.asarray(as_array(value)), name)
        if array.shape != self._value.shape:
            raise ValueError(
                f"cannot assign a value of shape {array.shape} to variable {self.name!r} "
                f"of shape {self._value.shape}"
            )
        return array.astype(self._value.dtype, copy=False)

    def assign(self, value):
        """Replace the value (same shape; cast to the variable's dtype)."""
        # A fresh array, never a write into the old one: tapes may still hold it.
        self._value = np.array(self._checked(value), copy=True)
        return self

    def assign_add(self, delta):
        self._value = self._value + self._checked(delta, "delta")
        return self

    def assign_sub(self, delta):
        self._value = self._value - self._checked(delta, "delta")
        return self

    def __repr__(self):
        body = np.array2string(self._value, separator=", ", threshold=20)
        return f"<Variable {self.name!r} shape={self.shape} dtype={self.dtype} {body}>"


def constant(value, dtype=None):
    """A new Tensor holding a copy of ``value``."""
    return Tensor(np.array(as_array(value), dtype=dtype, copy=True))


def convert_to_tensor(value, dtype=None):
    """``value`` as a Tensor: Tensors pass through (cast if ``dtype`` differs)."""
    if isinstance(value, Tensor):
        if dtype is None or value.dtype == np.dtype(dtype):
            return value
        return _math.cast(value, dtype)
    if value is None:
        raise TypeError("value must be an array or a Tensor; received value=None")
    return Tensor(np.asarray(value, dtype=dtype))


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``, undoing NumPy broadcasting."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, size in enumerate(shape) if size == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def record(value, inputs, backward):
    """Wrap an op's forward ``value`` and record it on every tape that tracks an input.

    Parameters
    ----------
    value : ndarray
        The op's output.
    inputs : tuple
        The op's inputs as passed by the user; non-Tensors are constants.
    backward : callable ``backward(grad_output, needs) -> tuple``
        Given the gradient of the output (an ndarray shaped like ``value``)
        and a tuple of bools saying which inputs need a gradient, returns one
        ndarray (shaped like that input) or None per input.  It is called
        only while a tape computes gradients, and only when some input needs one.
    """
    output = Tensor(value)
    _tape.record_on_active_tapes(output, inputs, backward)
    return output


from . import math_ops as _math  # noqa: E402  (math_ops needs Tensor and record defined)
