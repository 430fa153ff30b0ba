"""Layer: the Keras-style base class of every numconv layer.

A layer owns Variables created by :meth:`Layer.add_weight` in :meth:`build`,
which runs lazily on the first call (or at construction when ``input_shape``
is given).  ``__call__`` converts and casts the input, builds, runs
:meth:`call` and records the activity-regularization loss.  A call that
raises leaves the layer exactly as it was before the call.
"""

import functools
import inspect
import math
import numbers
import os

import numpy as np

from .. import config as _config
from .. import regularizers as _regularizers
from .. import ops as _ops
from .. import _weights_io
from .._naming import snake_case, unique_name
from ..autograd.tensor import Tensor, Variable, as_array


@functools.lru_cache(maxsize=None)
def _call_takes_training(layer_class):
    """Whether ``layer_class.call`` accepts ``training`` (user subclasses may omit it)."""
    parameters = inspect.signature(layer_class.call).parameters
    return "training" in parameters or any(
        parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()
    )


def normalize_dtype(dtype):
    """A floating dtype name ("float16", "float32", "float64"); None means floatx()."""
    if dtype is None:
        return _config.floatx()
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.kind != "f" or resolved.itemsize > 8:
        raise ValueError(
            "dtype must be a floating-point type (float16, float32 or float64); "
            f"received dtype={dtype!r}"
        )
    return resolved.name


def _normalize_input_shape(input_shape):
    if input_shape is None:
        return None
    if isinstance(input_shape, numbers.Integral) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    if not isinstance(input_shape, (tuple, list)):
        raise TypeError(
            f"input_shape must be a tuple of integers or None (without the batch axis); "
            f"received input_shape={input_shape!r}"
        )
    for size in input_shape:
        if size is not None and (
            isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 0
        ):
            raise ValueError(
                "input_shape must hold non-negative integers or None; "
                f"received input_shape={input_shape!r}"
            )
    return tuple(None if size is None else int(size) for size in input_shape)


def _weight_shape(shape, name):
    """A weight shape as a tuple of non-negative ints; ValueError/TypeError naming it."""
    try:
        sizes = tuple(shape)
    except TypeError:
        raise TypeError(
            f"shape of weight {name!r} must be a tuple of integers; received shape={shape!r}"
        ) from None
    for size in sizes:
        if isinstance(size, (bool, np.bool_)) or not isinstance(size, numbers.Integral):
            raise TypeError(
                f"shape of weight {name!r} must be a tuple of integers; received shape={shape!r}"
            )
        if size < 0:
            raise ValueError(
                f"shape of weight {name!r} must hold non-negative integers; "
                f"received shape={shape!r}"
            )
    return tuple(int(size) for size in sizes)


def shape_tuple(shape):
    """A shape argument as a tuple of ints or None."""
    if isinstance(shape, (Tensor, np.ndarray)):
        shape = shape.shape
    try:
        return tuple(None if size is None else int(size) for size in shape)
    except TypeError:
        raise TypeError(
            f"input_shape must be a tuple of integers or None; received input_shape={shape!r}"
        ) from None


class Layer:
    """Base class of layers, as ``keras.layers.Layer``.

    Parameters
    ----------
    trainable : bool
        Whether the layer's weights are updated by training.
    name : str, optional
        Defaults to the snake-cased class name, made unique ("conv2d_1").
    dtype : str or dtype, optional
        Dtype of weights and computations; defaults to ``numconv.config.floatx()``.
    input_shape : tuple, optional
        Shape of one sample (no batch axis); builds the layer at construction.
    activity_regularizer : regularizer identifier, optional
        Applied to the output; its value divided by the output's first
        dimension is part of :attr:`losses`.

    Raises
    ------
    TypeError
        For an unknown keyword argument (named in the message).
    """

    #: Whether ``__call__`` casts inputs to the layer dtype (Keras's autocast).
    _cast_inputs = True

    def __init__(
        self,
        trainable=True,
        name=None,
        dtype=None,
        input_shape=None,
        activity_regularizer=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s): "
                f"{', '.join(sorted(kwargs))}; received "
                + ", ".join(f"{key}={value!r}" for key, value in sorted(kwargs.items()))
            )
        if name is None:
            name = unique_name(snake_case(type(self).__name__))
        elif not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string; received name={name!r}")
        if not isinstance(trainable, (bool, np.bool_)):
            raise TypeError(f"trainable must be a bool; received trainable={trainable!r}")
        self.name = name
        self.dtype = normalize_dtype(dtype)
        self.activity_regularizer = _regularizers.get(activity_regularizer)
        self._trainable = bool(trainable)
        self._weights = []  # Variables in creation order
        self._weight_names = []  # their short names ("kernel"), keys of save_weights
        self._weight_trainable = []  # the flag given to add_weight
        self._weight_regularizers = []
        self._activity_loss = None
        self.built = False
        self._build_input_shape = None
        self._pending_input_shape = _normalize_input_shape(input_shape)

    def _build_at_construction(self):
        """Subclasses call this at the end of ``__init__`` (after their own checks)."""
        if self._pending_input_shape is not None:
            self._maybe_build((None,) + self._pending_input_shape)

    # -- weights --------------------------------------------------------------------
    def add_weight(
        self,
        name,
        shape,
        initializer="zeros",
        regularizer=None,
        constraint=None,
        trainable=True,
        dtype=None,
    ):
        """Create a Variable owned by the layer and return it.

        ``initializer`` is an initializers identifier (a name, config,
        instance or ``callable(shape, dtype)``).
        """
        from .. import constraints as _constraints
        from .. import initializers as _initializers

        from .._memory import check_request

        dtype = self.dtype if dtype is None else normalize_dtype(dtype)
        shape = _weight_shape(shape, name)
        init = _initializers.get(initializer if initializer is not None else "zeros")
        # Random initializers draw float64 before casting: that is the peak request.
        check_request(
            math.prod(shape) * max(np.dtype(dtype).itemsize, 8),
            f"weight {name!r} of layer {self.name!r} with shape {shape} and dtype {dtype}",
        )
        value = np.asarray(as_array(init(shape, dtype=dtype)), dtype=dtype)
        if value.shape != shape:
            raise ValueError(
                f"initializer of weight {name!r} returned shape {value.shape}; expected {shape}"
            )
        variable = Variable(
            value,
            trainable=bool(trainable) and self._trainable,
            name=f"{self.name}/{name}",
            constraint=_constraints.get(constraint),
            dtype=dtype,
        )
        self._weights.append(variable)
        self._weight_names.append(name)
        self._weight_trainable.append(bool(trainable))
        self._weight_regularizers.append(_regularizers.get(regularizer))
        return variable

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"trainable must be a bool; received trainable={value!r}")
        self._trainable = bool(value)
        # Optimizers and tapes look at Variable.trainable, so it follows the layer.
        for variable, own_flag in zip(self._weights, self._weight_trainable):
            variable.trainable = own_flag and self._trainable

    def _ordered_weights(self, trainable):
        return [
            variable
            for variable, own_flag in zip(self._weights, self._weight_trainable)
            if (own_flag and self._trainable) == trainable
        ]

    @property
    def trainable_weights(self):
        return self._ordered_weights(True)

    @property
    def non_trainable_weights(self):
        return self._ordered_weights(False)

    @property
    def weights(self):
        """Trainable weights, then non-trainable ones (Keras's order)."""
        return self.trainable_weights + self.non_trainable_weights

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights
    variables = weights

    def _require_built(self, what):
        if not self.built:
            raise ValueError(
                f"layer {self.name!r} is not built yet, so it has no weights for {what}; "
                "call it on an input or pass input_shape first"
            )

    def count_params(self):
        """Total number of scalars in the weights."""
        self._require_built("count_params()")
        return int(sum(variable.size for variable in self._weights))

    def get_weights(self):
        """Copies of the weights as ndarrays, in the order of :attr:`weights`."""
        return [variable.numpy() for variable in self.weights]

    def set_weights(self, weights):
        """Assign ndarrays to the weights, in the order of :attr:`weights`.

        Raises
        ------
        ValueError
            If the count or a shape differs (nothing is assigned then).
        """
        _weights_io.assign_weights(f"layer {self.name!r}", self.weights, weights)

    # -- saving -----------------------------------------------------------------------
    def save_weights(self, path):
        """Write the weights to an ``.npz`` file at ``path``, one array per weight name."""
        self._require_built("save_weights()")
        _weights_io.save_named(_weights_io.file_path(path, "path"), self._named_weights())

    def _named_weights(self):
        return list(zip(self._weight_names, self._weights))

    def load_weights(self, path):
        """Read weights written by :meth:`save_weights`.

        Raises
        ------
        ValueError
            If an array is missing or mis-shaped; the weights are unchanged then.
        """
        self._require_built("load_weights()")
        path = _weights_io.file_path(path, "path")
        if not os.path.exists(path) and os.path.exists(path + ".npz"):
            path = path + ".npz"
        _weights_io.load_named(f"layer {self.name!r}", path, self._named_weights())

    # -- config -----------------------------------------------------------------------
    def get_config(self):
        """The constructor arguments as plain Python values (JSON-friendly)."""
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = _regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        """A new layer built from :meth:`get_config`'s output."""
        return cls(**config)

    # -- losses -----------------------------------------------------------------------
    @property
    def losses(self):
        """Regularization losses, recomputed from the current weights on each access.

        Weight regularizers of trainable weights (as Keras 3), then the
        activity loss of the last successful call.  Computed with ops, so a
        GradientTape active during the access differentiates them.
        """
        result = []
        for variable, own_flag, regularizer in zip(
            self._weights, self._weight_trainable, self._weight_regularizers
        ):
            if regularizer is not None and own_flag and self._trainable:
                result.append(regularizer(variable))
        if self._activity_loss is not None:
            result.append(self._activity_loss)
        return result

    # -- building and calling ------------------------------------------------------------
    def build(self, input_shape):
        """Create the weights for inputs of ``input_shape`` (batch axes may be None)."""

    def call(self, inputs, training=None):
        """The forward computation on a Tensor; returns a Tensor."""
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def compute_output_shape(self, input_shape):
        """Output shape for ``input_shape`` (None dimensions kept)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement compute_output_shape()"
        )

    def _check_input_shape(self, shape):
        """Raise ValueError if inputs of ``shape`` cannot be used (before build and call)."""

    def _maybe_build(self, input_shape):
        if not self.built:
            self._check_input_shape(input_shape)
            self.build(input_shape)
            self._build_input_shape = tuple(input_shape)
            self.built = True

    def _convert_input(self, inputs):
        if inputs is None:
            raise TypeError(
                f"inputs of layer {self.name!r} must be an array or a Tensor; received inputs=None"
            )
        if isinstance(inputs, Tensor):
            array = as_array(inputs)
        else:
            try:
                array = np.asarray(inputs)
            except (TypeError, ValueError):  # ragged nests, objects refusing conversion
                raise TypeError(
                    f"inputs of layer {self.name!r} must be an array of real numbers; "
                    f"received inputs={inputs!r:.80}"
                ) from None
        if array.dtype.kind not in "biuf":
            raise TypeError(
                f"inputs of layer {self.name!r} must hold real numbers; received an array of dtype "
                f"{array.dtype}"
            )
        target = np.dtype(self.dtype) if self._cast_inputs else None
        if isinstance(inputs, Tensor):
            if target is None or array.dtype == target:
                return inputs
            return _ops.cast(inputs, target)  # recorded, so gradients flow through the cast
        return Tensor(array if target is None else array.astype(target, copy=False))

    def _snapshot(self):
        state = {}
        for key, value in self.__dict__.items():
            if isinstance(value, (list, dict, set)):
                value = value.copy()
            state[key] = value
        generators = {
            key: value.bit_generator.state
            for key, value in self.__dict__.items()
            if isinstance(value, np.random.Generator)
        }
        # Variable.assign swaps in a new array, so keeping the old arrays is enough.
        values = [(variable, variable._value) for variable in self._weights]
        return state, generators, values

    def _restore(self, snapshot):
        state, generators, values = snapshot
        self.__dict__.clear()
        self.__dict__.update(state)
        for key, generator_state in generators.items():
            self.__dict__[key].bit_generator.state = generator_state
        for variable, value in values:
            variable._value = value

    def __call__(self, inputs, training=None):
        """Run the layer on ``inputs`` (array or Tensor); returns a Tensor.

        Builds the layer on the first call.  If anything raises, the layer is
        restored to its state before the call (weights, built flag, losses).
        """
        snapshot = self._snapshot()
        try:
            tensor = self._convert_input(inputs)
            self._maybe_build(tensor.shape)
            self._check_input_shape(tensor.shape)
            if _call_takes_training(type(self)):
                outputs = self.call(tensor, training=training)
            else:
                outputs = self.call(tensor)
            if not isinstance(outputs, Tensor):
                outputs = Tensor(as_array(outputs))
            if isinstance(inputs, np.ndarray) and np.may_share_memory(as_array(outputs), inputs):
                # Identity-like layers (Dropout at inference, Flatten, linear) return views
                # of a caller's array, which the caller may change later: give a copy.
                # Such an output depends on that constant only, so no tape records it.
                outputs = Tensor(np.array(as_array(outputs), copy=True))
            if self.activity_regularizer is not None:
                batch_size = outputs.shape[0] if outputs.ndim else 1
                penalty = self.activity_regularizer(outputs)
                # A Python float keeps the penalty's dtype (weak promotion).
                self._activity_loss = _ops.divide(penalty, float(max(batch_size, 1)))
        except BaseException:
            self._restore(snapshot)
            raise
        return outputs

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}, built={self.built}>"
