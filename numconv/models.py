"""Sequential: a linear stack of layers with Keras's compile / fit / evaluate / predict.

Training runs one GradientTape per batch: forward with ``training=True``,
the compiled loss plus the layers' regularization losses, gradients of the
trainable weights, one optimizer step.  Reported losses include the
regularization terms, as Keras reports them.
"""

import math
import numbers
import sys
import time

import numpy as np

from . import losses as _losses
from . import optimizers as _optimizers
from .autograd.tape import GradientTape
from .autograd.tensor import as_array
from . import _weights_io
from ._naming import unique_name
from .callbacks import CallbackList, History
from .metrics import (  # noqa: F401  (accuracy functions re-exported for compatibility)
    Mean,
    Metric,
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
)


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; received {name}={value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; received {name}={value!r}")
    return int(value)


def _check_verbose(verbose):
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto'; received verbose={verbose!r}")
    return int(verbose)


def _as_data(value, name):
    """A NumPy array of samples (first axis), refusing None and non-numeric data."""
    if value is None:
        raise ValueError(f"{name} must be an array of samples; received {name}=None")
    try:
        array = np.asarray(as_array(value))
    except (TypeError, ValueError):  # ragged nests, objects refusing conversion
        raise TypeError(
            f"{name} must be an array of real numbers; received {name}={value!r:.80}"
        ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; received an array of dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{name} must have a batch axis; received a scalar {name}={array!r}")
    return array


def _check_same_length(arrays_by_name):
    lengths = {name: len(array) for name, array in arrays_by_name.items() if array is not None}
    if len(set(lengths.values())) > 1:
        described = ", ".join(
            f"{name} with {length} samples (shape {arrays_by_name[name].shape})"
            for name, length in lengths.items()
        )
        raise ValueError(f"the inputs must have the same number of samples; received {described}")


def _format_shape(shape):
    if shape is None:
        return "?"
    return (
        "("
        + ", ".join("None" if size is None else str(size) for size in shape)
        + ("," if len(shape) == 1 else "")
        + ")"
    )


class Sequential:
    """A linear stack of layers, as ``keras.Sequential``.

    Parameters
    ----------
    layers : list of Layer, optional
    name : str, optional

    Examples
    --------
    >>> model = Sequential([layers.Conv2D(8, 3, activation="relu", input_shape=(8, 8, 1)),
    ...                     layers.Flatten(), layers.Dense(10)])
    >>> model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True),
    ...               metrics=["accuracy"])
    >>> history = model.fit(x, y, epochs=5)
    """

    def __init__(self, layers=None, name=None):
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty string; received name={name!r}")
        self.name = name or unique_name("sequential")
        self._layers = []
        self._input_shape = None  # with the batch axis, e.g. (None, 8, 8, 1)
        self.optimizer = None
        self.loss = None
        self._metric_identifiers = []
        self.compiled = False
        self.history = None
        if layers is not None:
            if not isinstance(layers, (list, tuple)):
                raise TypeError(f"layers must be a list of layers; received layers={layers!r:.80}")
            for layer in layers:
                self.add(layer)

    # -- structure ----------------------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    @property
    def built(self):
        return self._input_shape is not None and all(_is_built(layer) for layer in self._layers)

    def add(self, layer):
        """Append a layer (a numconv Layer or another Sequential).

        Raises
        ------
        TypeError
            If ``layer`` is not a layer.
        ValueError
            If a layer with the same name is already in the model.
        """
        from .layers import Layer

        if not isinstance(layer, (Layer, Sequential)):
            raise TypeError(f"add() expects a numconv layer; received layer={layer!r:.80}")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(
                "layer names in a Sequential model must be unique; "
                f"received a second layer named {layer.name!r}"
            )
        if not self._layers and self._input_shape is None:
            # A first layer given input_shape=... fixes the model's input shape, as in Keras.
            if isinstance(layer, Sequential):
                declared = layer._input_shape
            else:
                pending = getattr(layer, "_pending_input_shape", None)
                declared = None if pending is None else (None,) + tuple(pending)
            if declared is not None:
                self._input_shape = tuple(declared)
        self._layers.append(layer)
        if self._input_shape is not None:
            try:
                self.build(self._input_shape)
            except BaseException:
                self._layers.pop()
                raise

    def pop(self):
        """Remove and return the last layer."""
        if not self._layers:
            raise ValueError("pop() on a Sequential model with no layers")
        return self._layers.pop()

    def get_layer(self, name=None, index=None):
        """A layer by name or by index."""
        if index is not None:
            if (
                isinstance(index, bool)
                or not isinstance(index, numbers.Integral)
                or not -len(self._layers) <= index < len(self._layers)
            ):
                raise ValueError(
                    f"index must be an integer in [0, {len(self._layers)}); received index={index!r}"
                )
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"no layer named {name!r}; the layers are {[layer.name for layer in self._layers]}"
        )

    def build(self, input_shape):
        """Build every layer for inputs of ``input_shape`` (with the batch axis, e.g. ``(None, 8, 8, 1)``)."""
        if input_shape is None or not isinstance(input_shape, (tuple, list)):
            raise TypeError(
                "input_shape must be a tuple including the batch axis, e.g. (None, 8, 8, 1); "
                f"received input_shape={input_shape!r}"
            )
        shape = tuple(input_shape)
        for layer in self._layers:
            if isinstance(layer, Sequential):
                layer.build(shape)
            else:
                layer._maybe_build(shape)
            shape = tuple(layer.compute_output_shape(shape))
        self._input_shape = tuple(input_shape)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._layers:
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    def _output_shapes(self):
        shapes, shape = [], self._input_shape
        for layer in self._layers:
            try:
                shape = None if shape is None else tuple(layer.compute_output_shape(shape))
            except (NotImplementedError, ValueError, TypeError):
                shape = None
            shapes.append(shape)
        return shapes

    # -- weights ------------------------------------------------------------------------
    @property
    def weights(self):
        return _unique([variable for layer in self._layers for variable in layer.weights])

    @property
    def trainable_weights(self):
        return _unique([variable for layer in self._layers for variable in layer.trainable_weights])

    @property
    def non_trainable_weights(self):
        return _unique(
            [variable for layer in self._layers for variable in layer.non_trainable_weights]
        )

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights
    variables = weights

    @property
    def trainable(self):
        return all(layer.trainable for layer in self._layers)

    @trainable.setter
    def trainable(self, value):
        for layer in self._layers:
            layer.trainable = value

    @property
    def losses(self):
        """The layers' regularization losses (scalar Tensors), recomputed on access."""
        return [loss for layer in self._layers for loss in layer.losses]

    def count_params(self):
        self._require_built("count_params()")
        return int(sum(variable.size for variable in self.weights))

    def get_weights(self):
        """Copies of every weight as ndarrays, in the order of :attr:`weights`."""
        return [variable.numpy() for variable in self.weights]

    def set_weights(self, weights):
        """Assign ndarrays to every weight, in the order of :attr:`weights`.

        Raises
        ------
        ValueError
            If the count or a shape differs (nothing is assigned then).
        """
        _weights_io.assign_weights(f"model {self.name!r}", self.weights, weights)

    def _named_weights(self):
        """``("<layer index>.<weight name>", variable)`` for every weight, in layer order."""
        return [
            (f"{index}.{variable.name.rsplit('/', 1)[-1]}", variable)
            for index, layer in enumerate(self._layers)
            for variable in layer.weights
        ]

    def save_weights(self, filepath):
        """Write every weight to an ``.npz`` file (keys ``"<layer index>.<weight name>"``).

        Raises
        ------
        ValueError
            If ``filepath`` does not end in ``.npz`` or the model is not built.
        """
        filepath = self._check_npz_path(filepath)
        self._require_built("save_weights()")
        _weights_io.save_named(filepath, self._named_weights())

    def load_weights(self, filepath):
        """Read weights written by :meth:`save_weights`.

        Raises
        ------
        ValueError
            If an array is missing or mis-shaped; no weight changes then.
        """
        filepath = self._check_npz_path(filepath)
        self._require_built("load_weights()")
        _weights_io.load_named(f"model {self.name!r}", filepath, self._named_weights())

    @staticmethod
    def _check_npz_path(filepath):
        filepath = _weights_io.file_path(filepath, "filepath")
        if not str(filepath).endswith(".npz"):
            raise ValueError(f"filepath must end in .npz; received filepath={filepath!r}")
        return filepath

    def _require_built(self, what):
        if not self.built:
            raise ValueError(
                f"model {self.name!r} is not built yet, so {what} is not available; call "
                "build(input_shape), pass input_shape to the first layer, or call the model on data first"
            )

    # -- calling ------------------------------------------------------------------------
    def call(self, inputs, training=None):
        outputs = inputs
        for layer in self._layers:
            outputs = layer(outputs, training=training)
        return outputs

    def __call__(self, inputs, training=None):
        """Run the layers in order; returns a Tensor."""
        if not self._layers:
            raise ValueError(f"model {self.name!r} has no layers; add layers before calling it")
        if inputs is None:
            raise ValueError("inputs must be an array or a Tensor; received inputs=None")
        outputs = self.call(inputs, training=training)
        if self._input_shape is None:
            self._input_shape = (None,) + tuple(np.shape(as_array(inputs)))[1:]
        return outputs

    # -- summary ------------------------------------------------------------------------
    def summary(self, print_fn=None):
        """Print (with ``print_fn``, default ``print``) and return a table of the layers.

        One row per layer: name (type), output shape, parameter count; then
        total, trainable and non-trainable parameter counts.
        """
        self._require_built("summary()")
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer, shape in zip(self._layers, self._output_shapes()):
            rows.append(
                (
                    f"{layer.name} ({type(layer).__name__})",
                    _format_shape(shape),
                    f"{layer.count_params():,}",
                )
            )
        widths = [max(len(row[column]) for row in rows) + 3 for column in range(3)]
        width = sum(widths)

        def line(row):
            return "".join(cell.ljust(size) for cell, size in zip(row, widths)).rstrip()

        trainable = sum(variable.size for variable in self.trainable_weights)
        non_trainable = sum(variable.size for variable in self.non_trainable_weights)
        text = "\n".join(
            [f'Model: "{self.name}"', "_" * width, line(rows[0]), "=" * width]
            + [line(row) for row in rows[1:]]
            + [
                "=" * width,
                f"Total params: {trainable + non_trainable:,}",
                f"Trainable params: {trainable:,}",
                f"Non-trainable params: {non_trainable:,}",
                "_" * width,
            ]
        )
        (print_fn or print)(text)
        return text

    # -- training -----------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=("accuracy",)):
        """Set the optimizer, the loss and the metrics used by fit / evaluate.

        Parameters
        ----------
        optimizer : str or Optimizer
        loss : str, Loss or callable ``fn(y_true, y_pred)``
        metrics : list of str or callables, default ``["accuracy"]``
            "accuracy" picks sparse categorical, binary or categorical
            accuracy from the loss (then from the shapes), as Keras does.
            Pass ``[]`` (or None) for the loss alone.

        Raises
        ------
        ValueError
            For an unknown optimizer, loss or metric name, or a missing loss.
        """
        if loss is None:
            raise ValueError("compile() needs a loss; received loss=None")
        optimizer = _optimizers.get(optimizer)
        loss = _losses.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, str) or callable(metrics):
            metrics = [metrics]
        elif not isinstance(metrics, (list, tuple)):
            raise TypeError(
                f"metrics must be a list of names or callables; received metrics={metrics!r:.80}"
            )
        for identifier in metrics:
            Metric(identifier, loss)  # validates the names now rather than in fit
        self.optimizer, self.loss = optimizer, loss
        self._metric_identifiers = list(metrics)
        self.compiled = True

    def _make_metrics(self):
        return [Metric(identifier, self.loss) for identifier in self._metric_identifiers]

    def _require_compiled(self, what):
        if not self.compiled:
            raise ValueError(
                f"model {self.name!r} must be compiled before {what}; call "
                "model.compile(optimizer=..., loss=...) first"
            )

    def _loss_value(self, y_true, y_pred, sample_weight):
        """Compiled loss plus regularization losses, as a scalar Tensor (on the active tape)."""
        if isinstance(self.loss, _losses.Loss):
            value = self.loss(y_true, y_pred, sample_weight=sample_weight)
        else:
            value = _losses.reduce_losses(self.loss(y_true, y_pred), sample_weight)
        for penalty in self.losses:
            value = value + penalty
        return value

    def train_on_batch(self, x, y, sample_weight=None):
        """One optimizer step on one batch; returns the loss (or ``[loss, *metrics]``) of that batch."""
        self._require_compiled("train_on_batch()")
        x, y = _as_data(x, "x"), _as_data(y, "y")
        weights = None if sample_weight is None else _as_data(sample_weight, "sample_weight")
        _check_same_length({"x": x, "y": y, "sample_weight": weights})
        metrics = self._make_metrics()
        loss = self._train_step(x, y, weights, metrics)
        return loss if not metrics else [loss] + [metric.result() for metric in metrics]

    def _train_step(self, x, y, sample_weight, metrics):
        trainable = self.trainable_weights
        with GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self._loss_value(y, y_pred, sample_weight)
        if not trainable:
            trainable = self.trainable_weights  # the first call built the layers
        if trainable:
            grads = tape.gradient(loss, trainable)
            self.optimizer.apply_gradients(zip(grads, trainable))
        predictions = as_array(y_pred)
        for metric in metrics:
            metric.update(y, predictions)
        return float(as_array(loss))

    def fit(
        self,
        x=None,
        y=None,
        batch_size=32,
        epochs=1,
        verbose=1,
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        sample_weight=None,
        initial_epoch=0,
        seed=None,
    ):
        """Train for ``epochs - initial_epoch`` passes over ``(x, y)``.

        Parameters
        ----------
        x, y : array_like
            Inputs and targets with the same number of samples (first axis).
        batch_size : int
        epochs : int
        verbose : {0, 1, 2, "auto"}
            0 silent, 1 a live progress bar per epoch (on stderr), 2 one line per epoch.
        callbacks : list, optional
            Objects with any of Keras's ``on_train_begin(logs)``,
            ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``,
            ``on_train_end(logs)`` methods (``set_model(model)`` is called first).
        validation_split : float in [0, 1)
            Hold out the last fraction of the data (taken before shuffling).
        validation_data : tuple ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``
            Takes precedence over ``validation_split``.
        shuffle : bool
            Shuffle the training samples before each epoch.
        sample_weight : array_like, optional
            One weight per sample, applied to the loss.
        initial_epoch : int
            Index of the first epoch (to resume training), as Keras.
        seed : int, optional
            Seeds the shuffling; NumPy's global RNG is used when None.

        Returns
        -------
        History
            ``history.history`` holds per-epoch "loss", each metric, and
            "val_loss" / "val_<metric>" when validating.
        """
        self._require_compiled("fit()")
        x, y = _as_data(x, "x"), _as_data(y, "y")
        weights = None if sample_weight is None else _as_data(sample_weight, "sample_weight")
        _check_same_length({"x": x, "y": y, "sample_weight": weights})
        if len(x) == 0:
            raise ValueError(f"x must hold at least one sample; received x with shape {x.shape}")
        batch_size = _check_int(32 if batch_size is None else batch_size, "batch_size", 1)
        epochs = _check_int(epochs, "epochs", 0)
        initial_epoch = _check_int(initial_epoch, "initial_epoch", 0)
        verbose = _check_verbose(verbose)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool; received shuffle={shuffle!r}")
        if (
            isinstance(validation_split, bool)
            or not isinstance(validation_split, numbers.Real)
            or not 0.0 <= validation_split < 1.0
        ):
            raise ValueError(
                f"validation_split must be a number in [0, 1); received validation_split={validation_split!r}"
            )
        if seed is not None:
            _check_int(seed, "seed", 0)
        callbacks = CallbackList(callbacks, self)

        validation = None
        if validation_data is not None:
            validation = self._unpack_validation(validation_data)
        elif validation_split > 0:
            split_at = int(math.floor(len(x) * (1.0 - validation_split)))
            if split_at in (0, len(x)):
                kind = "training" if split_at == 0 else "validation"
                raise ValueError(
                    f"validation_split={validation_split!r} leaves no {kind} samples out of {len(x)}"
                )
            validation = (
                x[split_at:],
                y[split_at:],
                None if weights is None else weights[split_at:],
            )
            x, y = x[:split_at], y[:split_at]
            weights = None if weights is None else weights[:split_at]

        rng = np.random.default_rng(seed) if seed is not None else np.random
        num_samples = len(x)
        num_batches = math.ceil(num_samples / batch_size)
        history = History(self, {"epochs": epochs, "steps": num_batches, "verbose": verbose})
        self.history = history
        callbacks.call("on_train_begin", {})
        for epoch in range(initial_epoch, epochs):
            callbacks.call("on_epoch_begin", epoch, {})
            order = rng.permutation(num_samples) if shuffle else np.arange(num_samples)
            metrics = self._make_metrics()
            loss_mean = Mean()
            bar = _progress_bar(num_batches, f"Epoch {epoch + 1}/{epochs}", verbose == 1)
            started = time.perf_counter()
            try:
                for start in range(0, num_samples, batch_size):
                    batch = order[start : start + batch_size]
                    loss = self._train_step(
                        x[batch], y[batch], None if weights is None else weights[batch], metrics
                    )
                    loss_mean.update(loss, len(batch))
                    logs = {"loss": loss_mean.result(), **{m.name: m.result() for m in metrics}}
                    if bar is not None:
                        bar.set_postfix(_short_logs(logs), refresh=False)
                        bar.update(1)
                if validation is not None:
                    results = self.evaluate(
                        validation[0],
                        validation[1],
                        batch_size=batch_size,
                        sample_weight=validation[2],
                        return_dict=True,
                    )
                    logs.update({f"val_{key}": value for key, value in results.items()})
                if bar is not None:
                    bar.set_postfix(_short_logs(logs), refresh=True)
            finally:
                if bar is not None:
                    bar.close()
            if verbose == 2:
                elapsed = time.perf_counter() - started
                print(
                    f"Epoch {epoch + 1}/{epochs} - {elapsed:.2f}s - "
                    + " - ".join(f"{key}: {value:.4f}" for key, value in logs.items()),
                    flush=True,
                )
            history.append(epoch, logs)
            callbacks.call("on_epoch_end", epoch, dict(logs))
        callbacks.call("on_train_end", dict(logs) if history.epoch else {})
        return history

    @staticmethod
    def _unpack_validation(validation_data):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(
                "validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val); "
                f"received validation_data={validation_data!r:.80}"
            )
        x_val = _as_data(validation_data[0], "x_val")
        y_val = _as_data(validation_data[1], "y_val")
        weights = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            weights = _as_data(validation_data[2], "sample_weight_val")
        _check_same_length({"x_val": x_val, "y_val": y_val, "sample_weight_val": weights})
        return x_val, y_val, weights

    def evaluate(
        self, x=None, y=None, batch_size=32, verbose=0, sample_weight=None, return_dict=False
    ):
        """Loss (plus regularization losses) and metrics over ``(x, y)``, in inference mode.

        Returns the loss when no metrics were compiled, else ``[loss, *metrics]``
        (or a dict with ``return_dict=True``).  Batch losses are averaged
        weighted by batch size, as Keras does.
        """
        self._require_compiled("evaluate()")
        x, y = _as_data(x, "x"), _as_data(y, "y")
        weights = None if sample_weight is None else _as_data(sample_weight, "sample_weight")
        _check_same_length({"x": x, "y": y, "sample_weight": weights})
        batch_size = _check_int(32 if batch_size is None else batch_size, "batch_size", 1)
        verbose = _check_verbose(verbose)
        metrics = self._make_metrics()
        loss_mean = Mean()
        bar = _progress_bar(math.ceil(len(x) / batch_size), "Evaluate", verbose == 1)
        try:
            for start in range(0, len(x), batch_size):
                stop = start + batch_size
                y_pred = self(x[start:stop], training=False)
                batch_weights = None if weights is None else weights[start:stop]
                loss = self._loss_value(y[start:stop], y_pred, batch_weights)
                loss_mean.update(float(as_array(loss)), len(x[start:stop]))
                for metric in metrics:
                    metric.update(y[start:stop], as_array(y_pred))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        results = {
            "loss": loss_mean.result(),
            **{metric.name: metric.result() for metric in metrics},
        }
        if return_dict:
            return results
        values = list(results.values())
        return values[0] if len(values) == 1 else values

    def test_on_batch(self, x, y, sample_weight=None):
        """:meth:`evaluate` on one batch."""
        return self.evaluate(
            x, y, batch_size=max(len(_as_data(x, "x")), 1), sample_weight=sample_weight
        )

    def predict(self, x, batch_size=32, verbose=0):
        """Outputs for ``x`` computed batch by batch in inference mode, as one ndarray."""
        x = _as_data(x, "x")
        batch_size = _check_int(32 if batch_size is None else batch_size, "batch_size", 1)
        verbose = _check_verbose(verbose)
        if len(x) == 0:
            raise ValueError(f"x must hold at least one sample; received x with shape {x.shape}")
        outputs = []
        bar = _progress_bar(math.ceil(len(x) / batch_size), "Predict", verbose == 1)
        try:
            for start in range(0, len(x), batch_size):
                outputs.append(
                    np.asarray(as_array(self(x[start : start + batch_size], training=False)))
                )
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return np.concatenate(outputs, axis=0)

    def predict_on_batch(self, x):
        """Outputs for one batch, as an ndarray."""
        return np.asarray(as_array(self(_as_data(x, "x"), training=False)))

    def __repr__(self):
        return f"<Sequential name={self.name!r}, layers={[layer.name for layer in self._layers]}>"


def _is_built(layer):
    return layer.built


def _unique(variables):
    seen, result = set(), []
    for variable in variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            result.append(variable)
    return result


def _short_logs(logs):
    return {key: f"{value:.4f}" for key, value in logs.items()}


def _progress_bar(total, description, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=description, unit="batch", file=sys.stderr, dynamic_ncols=True, leave=True
    )


__all__ = [
    "Sequential",
    "History",
    "sparse_categorical_accuracy",
    "categorical_accuracy",
    "binary_accuracy",
]
