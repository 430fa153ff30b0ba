"""Dense, Flatten, Reshape, Activation, ReLU and Dropout against NumPy and finite differences."""

import numpy as np
import pytest

import numconv
from numconv.layers import Activation, Dense, Dropout, Flatten, ReLU, Reshape
from gradient_check import assert_gradients_close


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.fixture
def restore_config():
    saved = numconv.config.image_data_format()
    yield
    numconv.config.set_image_data_format(saved)


# -- Dense ------------------------------------------------------------------------------------
def dense_layer(rng, input_dim, units, **kwargs):
    layer = Dense(units, input_shape=(input_dim,), dtype="float64", **kwargs)
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.weights])
    return layer


@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 3), (2, 1, 2, 3)])
@pytest.mark.parametrize("activation", [None, "tanh"])
def test_dense_matches_numpy_on_the_last_axis(rng, shape, activation):
    layer = dense_layer(rng, 3, 5, activation=activation)
    kernel, bias = layer.get_weights()
    x = rng.standard_normal(shape)
    expected = np.einsum("...i,io->...o", x, kernel) + bias
    if activation == "tanh":
        expected = np.tanh(expected)
    got = layer(x)
    assert got.shape == shape[:-1] + (5,) == layer.compute_output_shape(shape)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-12)


def test_dense_builds_lazily_with_keras_shapes(rng):
    layer = Dense(4, use_bias=False)
    assert not layer.built
    layer(np.ones((2, 6), np.float32))
    assert layer.kernel.shape == (6, 4) and layer.bias is None
    assert layer.weights == [layer.kernel] and layer.count_params() == 24
    assert layer.compute_output_shape((None, 7, 6)) == (None, 7, 4)


def test_dense_gradients_match_finite_differences(rng):
    layer = dense_layer(rng, 3, 2, activation="sigmoid")
    kernel, bias = layer.get_weights()
    x = rng.standard_normal((2, 2, 3))
    x_tensor = numconv.constant(x)
    with numconv.GradientTape() as tape:
        tape.watch(x_tensor)
        y = layer(x_tensor)
    grads = tape.gradient(y, [x_tensor, layer.kernel, layer.bias])

    def forward(x_value, kernel_value, bias_value):
        return 1 / (1 + np.exp(-(np.einsum("...i,io->...o", x_value, kernel_value) + bias_value)))

    assert_gradients_close(forward, [x, kernel, bias], [np.asarray(g) for g in grads])


def test_dense_regularizer_and_trainable(rng):
    layer = Dense(
        2, kernel_regularizer=numconv.regularizers.L2(0.5), input_shape=(3,), dtype="float64"
    )
    np.testing.assert_allclose(float(layer.losses[0]), 0.5 * np.sum(layer.kernel.numpy() ** 2))
    layer.trainable = False
    assert layer.trainable_weights == [] and not layer.kernel.trainable


def test_dense_config_round_trip(rng):
    layer = Dense(
        3,
        activation="relu",
        use_bias=True,
        kernel_initializer="lecun_normal",
        bias_initializer=numconv.initializers.Constant(0.5),
        kernel_regularizer="l1",
        bias_regularizer=numconv.regularizers.L2(0.1),
        activity_regularizer="l2",
        kernel_constraint="unit_norm",
        bias_constraint="non_neg",
        name="dense_config",
        dtype="float64",
    )
    config = layer.get_config()
    assert config["units"] == 3 and config["activation"] == "relu"
    clone = Dense.from_config(config)
    assert clone.get_config() == config
    x = rng.standard_normal((2, 4))
    y = layer(x)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(y))
    np.testing.assert_array_equal(clone.bias.numpy(), [0.5, 0.5, 0.5])


def test_dense_errors():
    with pytest.raises(ValueError, match="units=0"):
        Dense(0)
    with pytest.raises(TypeError, match=r"units=2\.5"):
        Dense(2.5)
    with pytest.raises(ValueError, match="no_such_activation"):
        Dense(2, activation="no_such_activation")
    with pytest.raises(TypeError, match="unit="):
        Dense(2, unit=3)
    with pytest.raises(ValueError, match=r"at least 2 dimensions.*\(3,\)"):
        Dense(2)(np.ones(3))
    layer = Dense(2)
    layer(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"last dimension 3.*\(1, 4\)"):
        layer(np.ones((1, 4)))
    with pytest.raises(ValueError, match=r"must be known.*\(None, None\)"):
        Dense(2, input_shape=(None,))


# -- Flatten and Reshape ------------------------------------------------------------------------
def test_flatten_channels_last(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    layer = Flatten(data_format="channels_last")
    np.testing.assert_array_equal(np.asarray(layer(x)), x.reshape(2, 60).astype(np.float32))
    assert layer.compute_output_shape((None, 3, 4, 5)) == (None, 60)
    assert layer.compute_output_shape((None, None, 4)) == (None, None)
    assert layer(np.arange(3.0)).shape == (3, 1)


def test_flatten_channels_first_uses_channels_last_order_as_keras(rng):
    # Keras 3 moves the channel axis last before flattening (flatten.py).
    x = rng.standard_normal((2, 5, 3, 4))
    expected = np.transpose(x, (0, 2, 3, 1)).reshape(2, 60)
    got = Flatten(data_format="channels_first", dtype="float64")(x)
    np.testing.assert_array_equal(np.asarray(got), expected)
    x3 = rng.standard_normal((2, 5, 3))
    np.testing.assert_array_equal(
        np.asarray(Flatten(data_format="channels_first", dtype="float64")(x3)),
        np.transpose(x3, (0, 2, 1)).reshape(2, 15),
    )


def test_flatten_gradient_is_the_inverse_permutation(rng):
    x = numconv.constant(rng.standard_normal((1, 2, 3, 2)))
    weights = rng.standard_normal((1, 12))
    with numconv.GradientTape() as tape:
        tape.watch(x)
        y = Flatten(data_format="channels_first", dtype="float64")(x)
    grad = tape.gradient(y, x, output_gradients=weights)
    expected = np.transpose(weights.reshape(1, 3, 2, 2), (0, 3, 1, 2))
    np.testing.assert_array_equal(np.asarray(grad), expected)


def test_flatten_reads_config_and_round_trips(restore_config):
    numconv.config.set_image_data_format("channels_first")
    layer = Flatten()
    assert layer.data_format == "channels_first"
    assert Flatten.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="data_format='nchw'"):
        Flatten(data_format="nchw")
    with pytest.raises(ValueError, match=r"at least 1 dimension.*\(\)"):
        Flatten()(np.float32(3.0))


@pytest.mark.parametrize(
    "target, expected",
    [((3, 4), (3, 4)), ((-1, 2, 2), (3, 2, 2)), ((12,), (12,)), ((2, -1), (2, 6)), (12, (12,))],
)
def test_reshape_matches_numpy(rng, target, expected):
    x = rng.standard_normal((2, 12))
    layer = Reshape(target, dtype="float64")
    got = layer(x)
    np.testing.assert_array_equal(np.asarray(got), x.reshape((2,) + expected))
    assert layer.compute_output_shape((None, 12)) == (None,) + expected
    assert Reshape.from_config(layer.get_config()).get_config() == layer.get_config()


def test_reshape_output_shape_with_unknown_sizes():
    assert Reshape((-1, 2)).compute_output_shape((None, None, 4)) == (None, None, 2)


@pytest.mark.parametrize(
    "target, error, pattern",
    [
        ((-1, -1), ValueError, r"more than one -1.*target_shape=\(-1, -1\)"),
        ((0, 3), ValueError, r"target_shape=\(0, 3\)"),
        ((2, -3), ValueError, r"target_shape=\(2, -3\)"),
        ((2.0, 3), TypeError, r"target_shape=\(2\.0, 3\)"),
        ("12", TypeError, r"target_shape='12'"),
    ],
)
def test_reshape_argument_errors(target, error, pattern):
    with pytest.raises(error, match=pattern):
        Reshape(target)


def test_reshape_incompatible_input_errors():
    with pytest.raises(ValueError, match=r"\(12,\).*target_shape=\(5, 2\)"):
        Reshape((5, 2))(np.ones((2, 12)))
    with pytest.raises(ValueError, match=r"\(12,\).*target_shape=\(-1, 5\)"):
        Reshape((-1, 5))(np.ones((2, 12)))


# -- Activation and ReLU ------------------------------------------------------------------------
def test_activation_layer_applies_the_named_function(rng):
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(
        np.asarray(Activation("tanh", dtype="float64")(x)), np.tanh(x), rtol=1e-12
    )
    layer = Activation("sigmoid")
    assert layer.compute_output_shape((None, 4)) == (None, 4)
    assert Activation.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="no_such_activation"):
        Activation("no_such_activation")
    with pytest.raises(ValueError, match="activation=None"):
        Activation(None)


def relu_reference(x, max_value, negative_slope, threshold):
    """Keras's ReLU: min(x, max_value) above threshold, slope * (x - threshold) elsewhere."""
    out = np.where(x > threshold, x, negative_slope * (x - threshold))
    if max_value is not None:
        out = np.where(x > threshold, np.minimum(out, max_value), out)
    return out


@pytest.mark.parametrize(
    "max_value, negative_slope, threshold",
    [
        (None, 0.0, 0.0),
        (6.0, 0.0, 0.0),
        (None, 0.1, 0.0),
        (1.5, 0.2, 0.5),
        (None, 0.0, 1.0),
        (0.0, 0.3, 0.0),
    ],
)
def test_relu_layer_matches_the_keras_formula(rng, max_value, negative_slope, threshold):
    x = rng.uniform(-3, 3, size=(4, 5))
    layer = ReLU(
        max_value=max_value, negative_slope=negative_slope, threshold=threshold, dtype="float64"
    )
    np.testing.assert_allclose(
        np.asarray(layer(x)),
        relu_reference(x, max_value, negative_slope, threshold),
        rtol=1e-12,
        atol=1e-15,
    )
    assert ReLU.from_config(layer.get_config()).get_config() == layer.get_config()


def test_relu_layer_gradient_matches_finite_differences(rng):
    x = rng.uniform(-3, 3, size=(3, 4))
    layer = ReLU(max_value=2.0, negative_slope=0.25, threshold=0.5, dtype="float64")
    x_tensor = numconv.constant(x)
    with numconv.GradientTape() as tape:
        tape.watch(x_tensor)
        y = layer(x_tensor)
    grad = tape.gradient(y, x_tensor)
    assert_gradients_close(
        lambda value: relu_reference(value, 2.0, 0.25, 0.5), [x], [np.asarray(grad)]
    )


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(max_value=-1.0), r"max_value=-1\.0"),
        (dict(negative_slope=-0.5), r"negative_slope=-0\.5"),
        (dict(negative_slope=None), r"negative_slope=None"),
        (dict(threshold=-2), r"threshold=-2"),
        (dict(threshold=float("nan")), r"threshold=nan"),
    ],
)
def test_relu_argument_errors(kwargs, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        ReLU(**kwargs)


# -- Dropout ------------------------------------------------------------------------------------
def test_dropout_is_identity_unless_training(rng):
    x = rng.standard_normal((4, 5))
    layer = Dropout(0.5, dtype="float64")
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    np.testing.assert_array_equal(np.asarray(Dropout(0.0, dtype="float64")(x, training=True)), x)


def test_dropout_masks_and_scales_by_inverse_keep_probability(rng):
    rate = 0.3
    x = rng.uniform(1, 2, size=(200, 50))
    y = np.asarray(Dropout(rate, seed=3, dtype="float64")(x, training=True))
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-12)
    # 10_000 Bernoulli(0.7) draws: the kept fraction is within 5 standard deviations of 0.7.
    assert abs(kept.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / kept.size)


def test_dropout_same_seed_gives_the_same_sequence_of_masks(rng):
    x = np.ones((8, 8))
    first, second = Dropout(0.5, seed=11), Dropout(0.5, seed=11)
    masks_first = [np.asarray(first(x, training=True)) for _ in range(3)]
    masks_second = [np.asarray(second(x, training=True)) for _ in range(3)]
    for a, b in zip(masks_first, masks_second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(masks_first[0], masks_first[1])
    clone = Dropout.from_config(Dropout(0.5, seed=11).get_config())
    np.testing.assert_array_equal(np.asarray(clone(x, training=True)), masks_first[0])


def test_dropout_noise_shape_shares_the_mask(rng):
    x = rng.uniform(1, 2, size=(3, 4, 5))
    y = np.asarray(
        Dropout(0.5, noise_shape=(None, 1, 5), seed=0, dtype="float64")(x, training=True)
    )
    dropped = y == 0
    assert np.all(dropped == dropped[:, :1, :])  # same mask along axis 1
    with pytest.raises(ValueError, match=r"noise_shape=\(2, 1, 5\).*\(3, 4, 5\)"):
        Dropout(0.5, noise_shape=(2, 1, 5))(x, training=True)
    with pytest.raises(ValueError, match=r"noise_shape=\(1, 5\).*\(3, 4, 5\)"):
        Dropout(0.5, noise_shape=(1, 5))(x, training=True)


def test_dropout_gradient_is_the_scaled_mask(rng):
    x = numconv.constant(rng.uniform(1, 2, size=(6, 6)))
    layer = Dropout(0.25, seed=5, dtype="float64")
    with numconv.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    grad = np.asarray(tape.gradient(y, x))
    np.testing.assert_allclose(grad, np.asarray(y) / np.asarray(x), rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(rate=1.0), ValueError, r"rate=1\.0"),
        (dict(rate=-0.1), ValueError, r"rate=-0\.1"),
        (dict(rate=1.5), ValueError, r"rate=1\.5"),
        (dict(rate="0.5"), TypeError, r"rate='0\.5'"),
        (dict(rate=0.5, noise_shape=(0, 2)), ValueError, r"noise_shape=\(0, 2\)"),
        (dict(rate=0.5, seed=-1), ValueError, r"seed=-1"),
    ],
)
def test_dropout_argument_errors(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        Dropout(**kwargs)


# -- layers chained on a tape ---------------------------------------------------------------------
def test_conv_pool_flatten_dense_chain_gradient_matches_finite_differences(rng):
    conv = numconv.layers.Conv2D(2, 2, activation="tanh", input_shape=(5, 5, 1), dtype="float64")
    pool = numconv.layers.AveragePooling2D(2, dtype="float64")
    flatten = Flatten(dtype="float64")
    dense = dense_layer(rng, 8, 3)
    conv.set_weights([rng.standard_normal((2, 2, 1, 2)), rng.standard_normal(2)])
    x = rng.standard_normal((2, 5, 5, 1))
    with numconv.GradientTape() as tape:
        y = dense(flatten(pool(conv(x))))
    grad_kernel, grad_dense_kernel = tape.gradient(y, [conv.kernel, dense.kernel])
    conv_bias = conv.bias.numpy()
    dense_kernel, dense_bias = dense.get_weights()

    def forward(kernel):
        hidden = np.zeros((2, 4, 4, 2))
        for i in range(4):
            for j in range(4):
                hidden[:, i, j, :] = np.einsum(
                    "bpqc,pqco->bo", x[:, i : i + 2, j : j + 2, :], kernel
                )
        hidden = np.tanh(hidden + conv_bias)
        pooled = hidden.reshape(2, 2, 2, 2, 2, 2).mean(axis=(2, 4))
        return pooled.reshape(2, 8) @ dense_kernel + dense_bias

    assert_gradients_close(forward, [conv.kernel.numpy()], [np.asarray(grad_kernel)])
    assert grad_dense_kernel.shape == (8, 3)
