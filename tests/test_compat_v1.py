"""numconv.compat.v1.layers.Conv2D: TF1 signature and defaults over numconv.layers.Conv2D."""

import inspect
import math

import numpy as np
import pytest

import numconv
from numconv import nn
from numconv.compat import v1


@pytest.fixture
def rng():
    return np.random.default_rng(5)


@pytest.fixture
def restore_config():
    saved = numconv.config.image_data_format()
    yield
    numconv.config.set_image_data_format(saved)


def test_namespace_and_subclass():
    assert numconv.compat.v1.layers.Conv2D is v1.layers.Conv2D
    assert issubclass(v1.layers.Conv2D, numconv.layers.Conv2D)
    assert v1.layers.Convolution2D is v1.layers.Conv2D


def test_signature_follows_tf1():
    parameters = list(inspect.signature(v1.layers.Conv2D).parameters)
    assert parameters == [
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "data_format",
        "dilation_rate",
        "activation",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        "kernel_constraint",
        "bias_constraint",
        "trainable",
        "name",
        "kwargs",
    ]
    defaults = inspect.signature(v1.layers.Conv2D).parameters
    assert defaults["data_format"].default == "channels_last"
    assert defaults["kernel_initializer"].default is None


def test_data_format_default_ignores_the_config(restore_config):
    numconv.config.set_image_data_format("channels_first")
    assert v1.layers.Conv2D(2, 3).data_format == "channels_last"
    assert numconv.layers.Conv2D(2, 3).data_format == "channels_first"
    # An explicit None falls back to the config, as in the Keras base class.
    assert v1.layers.Conv2D(2, 3, data_format=None).data_format == "channels_first"


def test_none_initializers_mean_glorot_uniform_and_zeros():
    layer = v1.layers.Conv2D(
        8, 3, kernel_initializer=None, bias_initializer=None, input_shape=(6, 6, 4)
    )
    config = layer.get_config()
    assert config["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert config["bias_initializer"]["class_name"] == "Zeros"
    limit = math.sqrt(6.0 / (3 * 3 * 4 + 3 * 3 * 8))
    kernel = layer.kernel.numpy()
    assert np.all(np.abs(kernel) <= limit) and kernel.std() > limit / 4
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(8))


def test_trainable_name_and_scope_name():
    layer = v1.layers.Conv2D(2, 3, trainable=False, name="tf1_conv", input_shape=(5, 5, 1))
    assert layer.name == "tf1_conv" and layer.scope_name == "tf1_conv"
    assert layer.non_trainable_weights == [layer.kernel, layer.bias]
    assert v1.layers.Conv2D(2, 3).scope_name.startswith("conv2d")


def test_graph_is_deprecated_and_none():
    layer = v1.layers.Conv2D(2, 3)
    with pytest.warns(DeprecationWarning, match="graph"):
        assert layer.graph is None


def test_outputs_equal_the_keras_layer_and_the_array_function(rng):
    kwargs = dict(
        filters=3, kernel_size=(3, 2), strides=2, padding="same", activation="relu", dtype="float64"
    )
    tf1 = v1.layers.Conv2D(input_shape=(7, 6, 2), **kwargs)
    keras = numconv.layers.Conv2D(input_shape=(7, 6, 2), **kwargs)
    weights = [rng.standard_normal(w.shape) for w in tf1.weights]
    tf1.set_weights(weights)
    keras.set_weights(weights)
    x = rng.standard_normal((2, 7, 6, 2))
    expected = np.maximum(nn.conv2d(x, weights[0], weights[1], strides=2, padding="same"), 0)
    np.testing.assert_allclose(np.asarray(tf1(x)), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(tf1(x)), np.asarray(keras(x)))


def test_gradients_on_a_tape(rng):
    layer = v1.layers.Conv2D(2, 2, input_shape=(4, 4, 1), dtype="float64")
    x = rng.standard_normal((1, 4, 4, 1))
    with numconv.GradientTape() as tape:
        y = layer(x)
    grad_kernel = tape.gradient(y, layer.kernel)
    _, want, _ = nn.conv2d_grads(x, layer.kernel.numpy(), np.ones(y.shape))
    np.testing.assert_allclose(np.asarray(grad_kernel), want, rtol=1e-12)


def test_config_round_trip(rng):
    layer = v1.layers.Conv2D(
        4,
        3,
        dilation_rate=2,
        kernel_regularizer="l2",
        bias_constraint="non_neg",
        trainable=False,
        name="tf1_round_trip",
        dtype="float64",
    )
    config = layer.get_config()
    clone = v1.layers.Conv2D.from_config(config)
    assert type(clone) is v1.layers.Conv2D
    assert clone.get_config() == config


def test_functional_conv2d(rng):
    x = rng.standard_normal((2, 8, 8, 3))
    y = v1.layers.conv2d(x, 4, 3, strides=2, padding="same", name="tf1_fn")
    assert isinstance(y, numconv.Tensor) and y.shape == (2, 4, 4, 4) and y.dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(filters=0, kernel_size=3), ValueError, r"filters=0"),
        (dict(filters=2, kernel_size=3, padding="causal"), ValueError, r"padding='causal'"),
        (
            dict(filters=2, kernel_size=3, strides=2, dilation_rate=2),
            ValueError,
            r"strides=\(2, 2\) and dilation_rate=\(2, 2\)",
        ),
        (dict(filters=2, kernel_size=3, data_format="NCHW"), ValueError, r"data_format='NCHW'"),
        (dict(filters=2, kernel_size=3, bogus=1), TypeError, r"bogus=1"),
    ],
)
def test_errors(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        v1.layers.Conv2D(**kwargs)
