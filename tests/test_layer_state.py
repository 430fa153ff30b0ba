"""Inputs are never modified, outputs never alias inputs, a failed call changes nothing.

What a failed ``Sequential.fit`` keeps: as Keras, the optimizer steps of the
batches completed before the failure stay applied (weights, optimizer
iterations and slots); the failing batch changes nothing.
"""

import numpy as np
import pytest

import numconv
from numconv import layers, nn, ops
from numconv.autograd.tape import GradientTape
from numconv.autograd.tensor import Tensor

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 6, 6, 3))
KERNEL = RNG.standard_normal((3, 3, 3, 4))
GRAD_CONV = RNG.standard_normal((2, 4, 4, 4))
GRAD_POOL = RNG.standard_normal((2, 3, 3, 3))
LAYER_INPUT = X.astype(np.float32)


def _arrays(result):
    if isinstance(result, (tuple, list)):
        return [np.asarray(item) for item in result if item is not None]
    return [np.asarray(result)]


ARRAY_CALLS = {
    "nn.conv2d": (lambda x, k, g, p: nn.conv2d(x, k, bias=np.ones(4)), "conv"),
    "nn.conv2d channels_first": (
        lambda x, k, g, p: nn.conv2d(np.moveaxis(x, -1, 1), k, data_format="channels_first"),
        "conv"),
    "nn.conv2d_grads": (lambda x, k, g, p: nn.conv2d_grads(x, k, g), "conv"),
    "nn.max_pool2d": (lambda x, k, g, p: nn.max_pool2d(x, 2), "pool"),
    "nn.avg_pool2d": (lambda x, k, g, p: nn.avg_pool2d(x, 1, padding="same"), "pool"),
    "nn.max_pool2d_grad": (lambda x, k, g, p: nn.max_pool2d_grad(x, p, 2), "pool"),
    "nn.avg_pool2d_grad": (lambda x, k, g, p: nn.avg_pool2d_grad(x, p, 2), "pool"),
    "ops.conv2d": (lambda x, k, g, p: ops.conv2d(x, k), "conv"),
    "ops.max_pool2d": (lambda x, k, g, p: ops.max_pool2d(x, 1), "pool"),
    "ops.bias_add": (lambda x, k, g, p: ops.bias_add(x, np.ones(3)), "pool"),
}


def _frozen(array, read_only):
    array = np.array(array, copy=True)
    array.flags.writeable = not read_only
    return array


@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(ARRAY_CALLS))
def test_array_entry_points_keep_inputs_and_return_fresh_arrays(name, dtype, read_only):
    call, kind = ARRAY_CALLS[name]
    inputs = [_frozen(a.astype(dtype), read_only) for a in (X, KERNEL, GRAD_CONV, GRAD_POOL)]
    copies = [array.copy() for array in inputs]
    result = call(*inputs)
    for array, copy in zip(inputs, copies):
        assert array.tobytes() == copy.tobytes()
    for output in _arrays(result):
        for array in inputs:
            assert not np.shares_memory(output, array)


LAYERS = {
    "Conv2D": lambda: layers.Conv2D(4, 3, activation="relu"),
    "Conv2D channels_first": lambda: layers.Conv2D(2, 1, data_format="channels_first"),
    "Dense": lambda: layers.Dense(5),
    "Dropout": lambda: layers.Dropout(0.5, seed=1),
    "MaxPooling2D": lambda: layers.MaxPooling2D(1),
    "AveragePooling2D": lambda: layers.AveragePooling2D(),
    "GlobalAveragePooling2D": lambda: layers.GlobalAveragePooling2D(keepdims=True),
    "Flatten": lambda: layers.Flatten(),
    "Reshape": lambda: layers.Reshape((-1,)),
    "ReLU": lambda: layers.ReLU(),
    "Activation linear": lambda: layers.Activation("linear"),
}


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_calls_keep_inputs_and_return_fresh_arrays(name, read_only, training):
    x = _frozen(LAYER_INPUT, read_only)
    copy = x.copy()
    output = np.asarray(LAYERS[name]()(x, training=training))
    assert x.tobytes() == copy.tobytes()
    assert not np.shares_memory(output, x)


def test_fit_and_predict_keep_inputs():
    model = numconv.Sequential([layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(3)])
    model.compile("adam", numconv.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _frozen(LAYER_INPUT, True), _frozen(np.array([0, 2]), True)
    copies = x.copy(), y.copy()
    model.fit(x, y, epochs=2, batch_size=1, verbose=0)
    predictions = model.predict(x)
    assert x.tobytes() == copies[0].tobytes() and y.tobytes() == copies[1].tobytes()
    assert not np.shares_memory(predictions, x)


# -- a call that raises leaves the layer as it was -----------------------------------------
def _state(layer):
    """Everything a call could change: attributes, weight values, RNG state, losses."""
    generator = getattr(layer, "_generator", None)
    return {
        "built": layer.built,
        "attributes": sorted(vars(layer)),
        "weights": [weight.numpy() for weight in layer.weights],
        "weight ids": [id(weight) for weight in layer.weights],
        "losses": [float(np.asarray(loss)) for loss in layer.losses],
        "input shape": layer._build_input_shape,
        "rng": None if generator is None else str(generator.bit_generator.state),
    }


def _assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key in before:
        if key == "weights":
            assert len(before[key]) == len(after[key])
            for old, new in zip(before[key], after[key]):
                np.testing.assert_array_equal(old, new)
        else:
            assert before[key] == after[key], key


class _Failing:
    """An activity regularizer that raises: the call fails after build and forward."""

    def __call__(self, outputs):
        raise ValueError("regularizer failed on purpose")


FAILING_CALLS = {
    # name: (make layer, prepare it (or None), bad input)
    "Conv2D unbuilt, failing regularizer": (
        lambda: layers.Conv2D(2, 3, activity_regularizer=_Failing()), None, LAYER_INPUT),
    "Conv2D built, wrong channels": (
        lambda: layers.Conv2D(2, 3, kernel_regularizer="l2", activity_regularizer="l2"),
        LAYER_INPUT, np.ones((2, 6, 6, 5), np.float32)),
    "Conv2D built, window too large": (
        lambda: layers.Conv2D(2, 3), LAYER_INPUT, np.ones((2, 2, 2, 3), np.float32)),
    "Dense unbuilt, failing regularizer": (
        lambda: layers.Dense(3, activity_regularizer=_Failing()), None, LAYER_INPUT),
    "Dense built, wrong features": (
        lambda: layers.Dense(3, activity_regularizer="l1"), LAYER_INPUT,
        np.ones((2, 4), np.float32)),
    "Dropout, failing regularizer": (
        lambda: layers.Dropout(0.5, seed=3, activity_regularizer=_Failing()), None, LAYER_INPUT),
    "Dropout, bad noise_shape": (
        lambda: layers.Dropout(0.5, noise_shape=(2, 1, 1, 3), seed=3), LAYER_INPUT,
        np.ones((2, 6, 6, 4), np.float32)),
    "MaxPooling2D, window too large": (
        lambda: layers.MaxPooling2D(4), LAYER_INPUT, np.ones((1, 2, 2, 1), np.float32)),
    "AveragePooling2D, failing regularizer": (
        lambda: layers.AveragePooling2D(activity_regularizer=_Failing()), None, LAYER_INPUT),
}


@pytest.mark.parametrize("name", list(FAILING_CALLS))
def test_failed_call_leaves_the_layer_as_it_was(name):
    make, prepare, bad_input = FAILING_CALLS[name]
    layer = make()
    if prepare is not None:
        layer(prepare, training=True)
    before = _state(layer)
    with pytest.raises(ValueError):
        layer(bad_input, training=True)
    _assert_same_state(before, _state(layer))
    if isinstance(layer, layers.Dropout):
        # The RNG was rewound: the next mask is the one a twin draws after the same calls.
        twin = layers.Dropout(0.5, seed=3, noise_shape=layer.noise_shape)
        if prepare is not None:
            twin(prepare, training=True)
        layer.activity_regularizer = None
        np.testing.assert_array_equal(np.asarray(layer(LAYER_INPUT, training=True)),
                                      np.asarray(twin(LAYER_INPUT, training=True)))


def test_failed_call_under_a_tape_leaves_the_layer_unbuilt():
    layer = layers.Dense(2, activity_regularizer=_Failing())
    with GradientTape():
        with pytest.raises(ValueError):
            layer(Tensor(LAYER_INPUT[:, 0, 0, :]))
    assert not layer.built and layer.weights == [] and layer.losses == []
    layer.activity_regularizer = None
    assert layer(LAYER_INPUT[:, 0, 0, :]).shape == (2, 2)


def test_fit_failing_midway_keeps_the_completed_steps():
    """Batch 2 has an out-of-range label: batch 1's step stays applied, batch 2 changes nothing."""
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    y = np.array([0, 1, 5, 1])

    def model():
        result = numconv.Sequential([layers.Dense(3, kernel_initializer="ones", input_shape=(3,))])
        result.compile(numconv.optimizers.SGD(0.1, momentum=0.9),
                       numconv.losses.SparseCategoricalCrossentropy(from_logits=True))
        return result

    failing, reference = model(), model()
    with pytest.raises(ValueError, match="received labels containing 5"):
        failing.fit(x, y, batch_size=2, shuffle=False, verbose=0)
    reference.train_on_batch(x[:2], y[:2])
    assert failing.optimizer.iterations == reference.optimizer.iterations == 1
    for got, expected in zip(failing.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(failing.optimizer.variables, reference.optimizer.variables):
        np.testing.assert_array_equal(got, expected)
