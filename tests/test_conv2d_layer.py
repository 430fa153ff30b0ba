"""numconv.layers.Conv2D: outputs, gradients, weights, config, dtype, regularizers and errors.

References: the array-level numconv.nn.conv2d / conv2d_grads with the same
weights, and a slow NumPy loop written here for a few cases.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numconv
from numconv import nn
from numconv.layers import Conv2D, Convolution2D


# -- independent references ------------------------------------------------------------
def tf_same_pads(size, kernel, stride, dilation):
    """TensorFlow's "same": output ceil(size / stride), the odd extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def loop_conv2d(x, kernel, bias, strides, padding, dilation, groups):
    """Slow channels_last 4-D cross-correlation; ``padding`` "valid", "same" or explicit."""
    n, h, w, c = x.shape
    kh, kw, c_group, filters = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    if padding == "valid":
        pads = ((0, 0), (0, 0))
    elif padding == "same":
        pads = (tf_same_pads(h, kh, sh, dh), tf_same_pads(w, kw, sw, dw))
    else:
        pads = padding
    (top, bottom), (left, right) = pads
    padded = np.zeros((n, h + top + bottom, w + left + right, c), dtype=np.float64)
    padded[:, top : top + h, left : left + w, :] = x
    out_h = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
    out_w = (w + left + right - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((n, out_h, out_w, filters), dtype=np.float64)
    per_group = filters // groups
    for b in range(n):
        for i in range(out_h):
            for j in range(out_w):
                for o in range(filters):
                    g = o // per_group
                    total = 0.0
                    for p in range(kh):
                        for q in range(kw):
                            for ci in range(c_group):
                                total += (
                                    padded[b, i * sh + p * dh, j * sw + q * dw, g * c_group + ci]
                                    * kernel[p, q, ci, o]
                                )
                    out[b, i, j, o] = total + (bias[o] if bias is not None else 0.0)
    return out


def to_channels_first(x):
    return np.moveaxis(x, -1, -3)


def to_channels_last(x):
    return np.moveaxis(x, -3, -1)


def make_layer(weights_rng, input_shape, dtype="float64", **kwargs):
    """A built Conv2D with random (non-zero bias) weights set through set_weights."""
    layer = Conv2D(input_shape=input_shape, dtype=dtype, **kwargs)
    layer.set_weights([weights_rng.standard_normal(w.shape) for w in layer.weights])
    return layer


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# -- the README examples (the Keras doc's examples written with numconv) ----------------
def test_readme_examples_give_keras_shapes():
    input_shape = (4, 28, 28, 3)
    x = np.random.normal(size=input_shape).astype("float32")
    y = numconv.layers.Conv2D(2, 3, activation="relu", input_shape=input_shape[1:])(x)
    assert y.shape == (4, 26, 26, 2)

    y = numconv.layers.Conv2D(
        2, 3, activation="relu", dilation_rate=2, input_shape=input_shape[1:]
    )(x)
    assert y.shape == (4, 24, 24, 2)

    y = numconv.layers.Conv2D(2, 3, activation="relu", padding="same", input_shape=input_shape[1:])(
        x
    )
    assert y.shape == (4, 28, 28, 2)

    input_shape = (4, 7, 28, 28, 3)
    x = np.random.normal(size=input_shape).astype("float32")
    y = numconv.layers.Conv2D(2, 3, activation="relu", input_shape=input_shape[2:])(x)
    assert y.shape == (4, 7, 26, 26, 2)


def test_aliases_are_the_same_class():
    assert Convolution2D is Conv2D
    assert numconv.Conv2D is Conv2D
    assert numconv.Convolution2D is Conv2D


# -- outputs ---------------------------------------------------------------------------------
LOOP_CASES = [
    dict(
        strides=(1, 1),
        padding="valid",
        dilation=(1, 1),
        groups=1,
        shape=(2, 6, 5, 3),
        filters=4,
        kernel=(3, 2),
    ),
    # "same" with stride 2 on even sizes: TF puts the odd padding pixel at the bottom/right.
    dict(
        strides=(2, 2),
        padding="same",
        dilation=(1, 1),
        groups=1,
        shape=(1, 6, 8, 2),
        filters=3,
        kernel=(3, 3),
    ),
    dict(
        strides=(1, 1),
        padding="same",
        dilation=(2, 1),
        groups=2,
        shape=(2, 7, 6, 4),
        filters=6,
        kernel=(3, 3),
    ),
    dict(
        strides=(2, 1),
        padding=((1, 0), (2, 1)),
        dilation=(1, 1),
        groups=1,
        shape=(1, 5, 5, 2),
        filters=2,
        kernel=(2, 3),
    ),
    dict(
        strides=(1, 1),
        padding="valid",
        dilation=(1, 1),
        groups=3,
        shape=(1, 4, 4, 3),
        filters=3,
        kernel=(2, 2),
    ),
]


@pytest.mark.parametrize("case", LOOP_CASES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_output_matches_slow_loop(rng, case, data_format):
    x = rng.standard_normal(case["shape"])
    layer_input = x if data_format == "channels_last" else to_channels_first(x)
    layer = make_layer(
        rng,
        layer_input.shape[1:],
        filters=case["filters"],
        kernel_size=case["kernel"],
        strides=case["strides"],
        padding=case["padding"],
        dilation_rate=case["dilation"],
        groups=case["groups"],
        data_format=data_format,
    )
    kernel, bias = layer.get_weights()
    expected = loop_conv2d(
        x, kernel, bias, case["strides"], case["padding"], case["dilation"], case["groups"]
    )
    got = np.asarray(layer(layer_input))
    if data_format == "channels_first":
        got = to_channels_last(got)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def _relu(x):
    return np.maximum(x, 0)


@given(
    data_format=st.sampled_from(["channels_last", "channels_first"]),
    batch_shape=st.sampled_from([(2,), (1,), (2, 3)]),
    groups=st.sampled_from([1, 2]),
    channels_per_group=st.integers(1, 2),
    filters_per_group=st.integers(1, 3),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride_or_dilation=st.sampled_from(
        [((1, 1), (1, 1)), ((2, 2), (1, 1)), ((1, 2), (1, 1)), ((1, 1), (2, 2)), ((1, 1), (1, 3))]
    ),
    padding=st.sampled_from(["valid", "same", ((1, 2), (0, 1)), ((2, 2), (2, 2))]),
    spatial=st.tuples(st.integers(7, 9), st.integers(7, 9)),
    use_bias=st.booleans(),
    activation=st.sampled_from([None, "relu"]),
    seed=st.integers(0, 2**16),
)
def test_output_matches_array_level_conv2d(
    data_format,
    batch_shape,
    groups,
    channels_per_group,
    filters_per_group,
    kernel,
    stride_or_dilation,
    padding,
    spatial,
    use_bias,
    activation,
    seed,
):
    rng = np.random.default_rng(seed)
    strides, dilation = stride_or_dilation
    channels, filters = groups * channels_per_group, groups * filters_per_group
    shape = batch_shape + (
        (spatial + (channels,)) if data_format == "channels_last" else ((channels,) + spatial)
    )
    x = rng.standard_normal(shape)
    layer = make_layer(
        rng,
        shape[len(batch_shape) :],
        filters=filters,
        kernel_size=kernel,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        groups=groups,
        data_format=data_format,
        use_bias=use_bias,
        activation=activation,
    )
    weights = layer.get_weights()
    expected = nn.conv2d(
        x,
        weights[0],
        weights[1] if use_bias else None,
        strides=strides,
        padding=padding,
        data_format=data_format,
        dilation_rate=dilation,
        groups=groups,
    )
    if activation == "relu":
        expected = _relu(expected)
    got = layer(x)
    assert isinstance(got, numconv.Tensor)
    assert got.shape == expected.shape == layer.compute_output_shape(shape)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-12)


def test_output_is_a_tensor_usable_as_an_array(rng):
    layer = Conv2D(3, 2)
    y = layer(rng.standard_normal((2, 5, 5, 2)).astype(np.float32))
    assert isinstance(y, numconv.Tensor)
    assert y.shape == (2, 4, 4, 3) and y.dtype == np.float32
    assert isinstance(y.numpy(), np.ndarray)
    np.testing.assert_array_equal(np.asarray(y), y.numpy())
    assert float(np.sum(y)) == pytest.approx(float(y.numpy().sum()), rel=1e-6)


def test_bias_and_activation_are_applied_after_the_convolution(rng):
    x = rng.standard_normal((1, 4, 4, 2))
    layer = Conv2D(2, 3, activation="relu", input_shape=(4, 4, 2), dtype="float64")
    kernel = rng.standard_normal((3, 3, 2, 2))
    bias = np.array([5.0, -5.0])
    layer.set_weights([kernel, bias])
    linear = loop_conv2d(x, kernel, None, (1, 1), "valid", (1, 1), 1)
    np.testing.assert_allclose(np.asarray(layer(x)), np.maximum(linear + bias, 0), rtol=1e-12)


# -- gradients ---------------------------------------------------------------------------------
GRAD_CASES = [
    dict(
        shape=(2, 6, 6, 4),
        kwargs=dict(filters=4, kernel_size=3, groups=2, dilation_rate=2, padding="same"),
    ),
    dict(shape=(2, 7, 6, 3), kwargs=dict(filters=2, kernel_size=(3, 2), strides=2, padding="same")),
    dict(
        shape=(1, 3, 6, 5),
        kwargs=dict(
            filters=3, kernel_size=2, data_format="channels_first", padding=((1, 0), (0, 2))
        ),
    ),
    dict(shape=(2, 2, 5, 5, 2), kwargs=dict(filters=2, kernel_size=3, strides=(1, 2))),
]


@pytest.mark.parametrize("case", GRAD_CASES)
def test_tape_gradients_match_array_level_conv2d_grads(rng, case):
    kwargs = case["kwargs"]
    x = rng.standard_normal(case["shape"])
    batch_rank = len(case["shape"]) - 3
    layer = make_layer(rng, case["shape"][batch_rank:], **kwargs)
    kernel, bias = layer.get_weights()
    x_tensor = numconv.constant(x)
    with numconv.GradientTape() as tape:
        tape.watch(x_tensor)
        y = layer(x_tensor)
    upstream = rng.standard_normal(y.shape)
    grad_x, grad_kernel, grad_bias = tape.gradient(
        y, [x_tensor, layer.kernel, layer.bias], output_gradients=upstream
    )
    array_kwargs = dict(
        strides=kwargs.get("strides", 1),
        padding=kwargs.get("padding", "valid"),
        data_format=kwargs.get("data_format", "channels_last"),
        dilation_rate=kwargs.get("dilation_rate", 1),
        groups=kwargs.get("groups", 1),
    )
    expected = nn.conv2d_grads(x, kernel, upstream, **array_kwargs)
    for got, want in zip((grad_x, grad_kernel, grad_bias), expected):
        assert got.dtype == np.float64
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-10)


def test_gradients_flow_through_two_stacked_layers(rng):
    first = make_layer(rng, (6, 6, 2), filters=3, kernel_size=3)
    second = make_layer(rng, (4, 4, 3), filters=2, kernel_size=3)
    x = rng.standard_normal((2, 6, 6, 2))
    with numconv.GradientTape() as tape:
        y = second(first(x))
    grad_first_kernel, grad_second_kernel = tape.gradient(y, [first.kernel, second.kernel])
    # The chain rule by hand through the array-level functions.
    hidden = nn.conv2d(x, first.kernel.numpy(), first.bias.numpy())
    grad_hidden, want_second, _ = nn.conv2d_grads(hidden, second.kernel.numpy(), np.ones(y.shape))
    _, want_first, _ = nn.conv2d_grads(x, first.kernel.numpy(), grad_hidden)
    np.testing.assert_allclose(np.asarray(grad_second_kernel), want_second, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(grad_first_kernel), want_first, rtol=1e-10)


# -- weights and build ---------------------------------------------------------------------
def test_lazy_build_creates_kernel_and_bias_on_first_call(rng):
    layer = Conv2D(6, (3, 2), groups=3)
    assert not layer.built
    assert layer.weights == []
    with pytest.raises(AttributeError, match="built"):
        layer.kernel
    layer(rng.standard_normal((1, 5, 5, 9)).astype(np.float32))
    assert layer.built
    assert layer.kernel.shape == (3, 2, 3, 6)
    assert layer.bias.shape == (6,)
    assert isinstance(layer.kernel, numconv.Variable) and isinstance(layer.bias, numconv.Variable)
    assert layer.weights == [layer.kernel, layer.bias]
    assert layer.trainable_weights == [layer.kernel, layer.bias]
    assert layer.non_trainable_weights == []
    assert layer.count_params() == 3 * 2 * 3 * 6 + 6


def test_input_shape_builds_at_construction():
    layer = Conv2D(4, 3, input_shape=(10, 10, 2))
    assert layer.built
    assert layer.kernel.shape == (3, 3, 2, 4)
    layer = Conv2D(4, 3, input_shape=(2, 10, 10), data_format="channels_first", use_bias=False)
    assert layer.kernel.shape == (3, 3, 2, 4)
    assert layer.bias is None
    assert layer.weights == [layer.kernel]
    assert layer.count_params() == 72


def test_default_initializers_glorot_uniform_kernel_and_zero_bias():
    layer = Conv2D(8, 3, input_shape=(5, 5, 4))
    fan_in, fan_out = 3 * 3 * 4, 3 * 3 * 8
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    kernel = layer.kernel.numpy()
    assert np.all(np.abs(kernel) <= limit)
    assert kernel.std() > limit / 4  # spread over the range, not all zeros
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(8))


def test_get_and_set_weights_round_trip(rng):
    layer = Conv2D(2, 3, input_shape=(4, 4, 3))
    kernel = rng.standard_normal((3, 3, 3, 2))
    bias = rng.standard_normal(2)
    layer.set_weights([kernel, bias])
    got_kernel, got_bias = layer.get_weights()
    assert got_kernel.dtype == np.float32
    np.testing.assert_array_equal(got_kernel, kernel.astype(np.float32))
    np.testing.assert_array_equal(got_bias, bias.astype(np.float32))
    got_kernel[...] = 0  # copies: editing them leaves the layer alone
    assert np.any(layer.kernel.numpy() != 0)


def test_set_weights_wrong_shape_or_count_names_shapes_and_assigns_nothing(rng):
    layer = Conv2D(2, 3, input_shape=(4, 4, 3))
    before = layer.get_weights()
    with pytest.raises(ValueError, match=r"\(3, 3, 3, 2\).*\(3, 3, 2, 2\)"):
        layer.set_weights([np.ones((3, 3, 2, 2)), np.ones(2)])
    with pytest.raises(ValueError, match=r"2 weight arrays.*received 1"):
        layer.set_weights([np.ones((3, 3, 3, 2))])
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        layer.set_weights([np.zeros((3, 3, 3, 2)), np.ones(3)])
    for got, want in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "kwargs, input_shape, expected",
    [
        (dict(filters=2, kernel_size=3), (None, 28, 28, 3), (None, 26, 26, 2)),
        (dict(filters=2, kernel_size=3), (4, 7, 28, 28, 3), (4, 7, 26, 26, 2)),
        (dict(filters=2, kernel_size=3), (None, None, 28, 28, 3), (None, None, 26, 26, 2)),
        (
            dict(filters=5, kernel_size=3, strides=2, padding="same"),
            (None, 7, 8, 1),
            (None, 4, 4, 5),
        ),
        (
            dict(filters=5, kernel_size=3, dilation_rate=2, data_format="channels_first"),
            (None, 3, 9, 10),
            (None, 5, 5, 6),
        ),
        (dict(filters=1, kernel_size=2, padding=((1, 2), (0, 3))), (2, 4, 4, 1), (2, 6, 6, 1)),
        (dict(filters=2, kernel_size=3), (None, None, 10, 3), (None, None, 8, 2)),
    ],
)
def test_compute_output_shape(kwargs, input_shape, expected):
    assert Conv2D(**kwargs).compute_output_shape(input_shape) == expected


def test_wrong_channels_or_rank_after_build_name_both_shapes(rng):
    layer = Conv2D(2, 3)
    layer(np.zeros((1, 5, 5, 3)))
    with pytest.raises(ValueError, match=r"3 channels.*\(1, 5, 5, 4\)"):
        layer(np.zeros((1, 5, 5, 4)))
    with pytest.raises(ValueError, match=r"at least 4 dimensions.*\(5, 5, 3\)"):
        layer(np.zeros((5, 5, 3)))
    layer = Conv2D(2, 3, data_format="channels_first", input_shape=(3, 5, 5))
    with pytest.raises(ValueError, match=r"3 channels.*\(1, 2, 5, 5\)"):
        layer(np.zeros((1, 2, 5, 5)))


def test_trainable_false_moves_weights_and_stops_gradients(rng):
    layer = Conv2D(2, 3, input_shape=(5, 5, 1), trainable=False)
    assert layer.trainable_weights == []
    assert layer.non_trainable_weights == [layer.kernel, layer.bias]
    assert not layer.kernel.trainable and not layer.bias.trainable
    with numconv.GradientTape() as tape:
        y = layer(rng.standard_normal((1, 5, 5, 1)))
    assert tape.gradient(y, [layer.kernel, layer.bias]) == [None, None]

    layer.trainable = True
    assert layer.trainable_weights == [layer.kernel, layer.bias]
    assert layer.kernel.trainable and layer.bias.trainable
    layer.trainable = False
    assert layer.non_trainable_weights == [layer.kernel, layer.bias]
    assert not layer.kernel.trainable


def test_weights_created_after_trainable_false_are_non_trainable(rng):
    layer = Conv2D(2, 3)
    layer.trainable = False
    layer(np.zeros((1, 4, 4, 2)))
    assert layer.trainable_weights == [] and not layer.kernel.trainable


# -- saving and config ----------------------------------------------------------------------
def test_save_and_load_weights_round_trip(tmp_path, rng):
    layer = make_layer(rng, (5, 5, 2), filters=3, kernel_size=2)
    path = tmp_path / "weights.npz"
    layer.save_weights(path)
    other = Conv2D(3, 2, input_shape=(5, 5, 2), dtype="float64")
    other.load_weights(path)
    for got, want in zip(other.get_weights(), layer.get_weights()):
        np.testing.assert_array_equal(got, want)
    x = rng.standard_normal((2, 5, 5, 2))
    np.testing.assert_array_equal(np.asarray(other(x)), np.asarray(layer(x)))


def test_load_weights_missing_or_misshaped_arrays_leave_weights_unchanged(tmp_path, rng):
    layer = Conv2D(3, 2, input_shape=(5, 5, 2))
    before = layer.get_weights()
    missing = tmp_path / "missing.npz"
    np.savez(missing, kernel=np.ones((2, 2, 2, 3)))
    with pytest.raises(ValueError, match=r"'bias' is missing"):
        layer.load_weights(missing)
    misshaped = tmp_path / "misshaped.npz"
    np.savez(misshaped, kernel=np.ones((2, 2, 2, 3)), bias=np.ones(4))
    with pytest.raises(ValueError, match=r"'bias' has shape \(4,\) \(expected shape \(3,\)\)"):
        layer.load_weights(misshaped)
    for got, want in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_save_weights_of_unbuilt_layer_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        Conv2D(2, 3).save_weights(tmp_path / "w.npz")


def full_config_layer(**overrides):
    kwargs = dict(
        filters=4,
        kernel_size=(3, 2),
        strides=(2, 1),
        padding="same",
        data_format="channels_first",
        dilation_rate=(1, 1),
        groups=2,
        activation="tanh",
        use_bias=True,
        kernel_initializer=numconv.initializers.get("he_normal"),
        bias_initializer=numconv.initializers.get("ones"),
        kernel_regularizer=numconv.regularizers.L2(0.03),
        bias_regularizer=numconv.regularizers.L1(0.02),
        activity_regularizer=numconv.regularizers.L1L2(l1=0.01, l2=0.02),
        kernel_constraint=numconv.constraints.get("max_norm"),
        bias_constraint=numconv.constraints.get("non_neg"),
        name="full_conv",
        trainable=False,
        dtype="float64",
    )
    kwargs.update(overrides)
    return Conv2D(**kwargs)


def test_config_round_trip_gives_an_identical_layer(rng):
    layer = full_config_layer()
    config = layer.get_config()
    for key in (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "data_format",
        "dilation_rate",
        "groups",
        "activation",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        "kernel_constraint",
        "bias_constraint",
        "name",
        "trainable",
        "dtype",
    ):
        assert key in config, key
    assert (
        config["filters"] == 4 and config["kernel_size"] == (3, 2) and config["strides"] == (2, 1)
    )
    assert config["padding"] == "same" and config["data_format"] == "channels_first"
    assert config["groups"] == 2 and config["trainable"] is False and config["dtype"] == "float64"
    # Nested objects are serialized, not stored as live objects.
    assert isinstance(config["kernel_regularizer"], dict)
    assert isinstance(config["bias_constraint"], (dict, str))

    clone = Conv2D.from_config(config)
    assert type(clone) is Conv2D
    assert clone.get_config() == config

    x = rng.standard_normal((2, 4, 6, 5))
    y = layer(x)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(y))
    # Regularizers came back with their factors: equal losses.
    for got, want in zip(clone.losses, layer.losses):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12)


def test_config_round_trip_of_defaults_and_explicit_padding():
    layer = Conv2D(3, 2, padding=((1, 0), (2, 3)))
    config = layer.get_config()
    assert config["padding"] == ((1, 0), (2, 3))
    assert config["data_format"] == "channels_last" and config["dtype"] == "float32"
    assert Conv2D.from_config(config).get_config() == config


# -- configuration: data format and dtype ------------------------------------------------------
@pytest.fixture
def restore_config():
    saved = numconv.config.image_data_format(), numconv.config.floatx()
    yield
    numconv.config.set_image_data_format(saved[0])
    numconv.config.set_floatx(saved[1])


def test_data_format_none_reads_the_config(restore_config):
    assert Conv2D(2, 3).data_format == "channels_last"
    numconv.config.set_image_data_format("channels_first")
    layer = Conv2D(2, 3)
    assert layer.data_format == "channels_first"
    assert layer(np.zeros((1, 3, 5, 5))).shape == (1, 2, 3, 3)
    # An explicit data_format wins over the config.
    assert Conv2D(2, 3, data_format="channels_last").data_format == "channels_last"


def test_dtype_defaults_to_floatx_and_inputs_are_cast(rng, restore_config):
    layer = Conv2D(2, 3)
    assert layer.dtype == "float32"
    y = layer(rng.standard_normal((1, 5, 5, 1)))  # float64 input
    assert y.dtype == np.float32 and layer.kernel.dtype == np.float32
    y = layer(np.ones((1, 5, 5, 1), dtype=np.int64))
    assert y.dtype == np.float32
    np.testing.assert_allclose(
        np.asarray(y),
        nn.conv2d(np.ones((1, 5, 5, 1), np.float32), layer.kernel.numpy(), layer.bias.numpy()),
        rtol=1e-6,
    )
    numconv.config.set_floatx("float64")
    assert Conv2D(2, 3).dtype == "float64"


def test_float64_layer_computes_in_float64_end_to_end(rng):
    layer = Conv2D(2, 3, dtype="float64")
    x = numconv.constant(rng.standard_normal((1, 5, 5, 2)).astype(np.float32))
    with numconv.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    assert layer.kernel.dtype == np.float64 and layer.bias.dtype == np.float64
    assert y.dtype == np.float64
    grad_x, grad_kernel, grad_bias = tape.gradient(y, [x, layer.kernel, layer.bias])
    assert grad_kernel.dtype == np.float64 and grad_bias.dtype == np.float64
    assert grad_x.dtype == np.float32  # the watched input's own dtype
    np.testing.assert_allclose(np.asarray(grad_bias), np.full(2, 9.0))


# -- regularizers and constraints -----------------------------------------------------------
def test_losses_are_recomputed_from_current_weights(rng):
    layer = Conv2D(
        2,
        2,
        input_shape=(3, 3, 1),
        dtype="float64",
        kernel_regularizer=numconv.regularizers.L2(0.5),
        bias_regularizer=numconv.regularizers.L1(0.25),
    )
    kernel, bias = rng.standard_normal((2, 2, 1, 2)), rng.standard_normal(2)
    layer.set_weights([kernel, bias])
    losses = layer.losses
    assert len(losses) == 2
    np.testing.assert_allclose(float(losses[0]), 0.5 * np.sum(kernel**2), rtol=1e-12)
    np.testing.assert_allclose(float(losses[1]), 0.25 * np.sum(np.abs(bias)), rtol=1e-12)
    layer.set_weights([2 * kernel, bias])
    np.testing.assert_allclose(float(layer.losses[0]), 0.5 * np.sum((2 * kernel) ** 2), rtol=1e-12)


def test_weight_regularization_losses_are_tape_differentiable(rng):
    layer = Conv2D(
        2,
        2,
        input_shape=(3, 3, 1),
        dtype="float64",
        kernel_regularizer=numconv.regularizers.L2(0.5),
    )
    with numconv.GradientTape() as tape:
        penalty = layer.losses[0]
    grad = tape.gradient(penalty, layer.kernel)
    np.testing.assert_allclose(np.asarray(grad), 2 * 0.5 * layer.kernel.numpy(), rtol=1e-12)


def test_activity_regularizer_loss_is_divided_by_batch_size(rng):
    layer = Conv2D(2, 2, dtype="float64", activity_regularizer=numconv.regularizers.L2(0.1))
    assert layer.losses == []
    x = rng.standard_normal((4, 3, 3, 1))
    with numconv.GradientTape() as tape:
        y = layer(x)
        (activity,) = layer.losses
    np.testing.assert_allclose(float(activity), 0.1 * np.sum(np.asarray(y) ** 2) / 4, rtol=1e-12)
    # Differentiable: d(activity)/d(bias) = 0.2 / 4 * sum of outputs per filter.
    grad_bias = tape.gradient(activity, layer.bias)
    np.testing.assert_allclose(
        np.asarray(grad_bias), 0.2 / 4 * np.asarray(y).sum(axis=(0, 1, 2)), rtol=1e-10
    )
    # A new call replaces it.
    y = layer(x[:2])
    np.testing.assert_allclose(
        float(layer.losses[0]), 0.1 * np.sum(np.asarray(y) ** 2) / 2, rtol=1e-12
    )


def test_frozen_layer_has_no_weight_regularization_losses():
    # Keras 3 regularizes trainable weights only.
    layer = Conv2D(2, 2, input_shape=(3, 3, 1), kernel_regularizer="l2", trainable=False)
    assert layer.losses == []


def test_constraints_are_stored_but_not_applied_at_init_or_forward(rng):
    layer = Conv2D(
        4,
        3,
        input_shape=(5, 5, 2),
        dtype="float64",
        kernel_constraint="non_neg",
        bias_constraint="non_neg",
    )
    assert layer.kernel.constraint is layer.kernel_constraint is not None
    assert layer.bias.constraint is layer.bias_constraint is not None
    assert np.any(layer.kernel.numpy() < 0)  # glorot_uniform values, not projected
    kernel, bias = -np.abs(rng.standard_normal((3, 3, 2, 4))), -np.ones(4)
    layer.set_weights([kernel, bias])
    x = rng.standard_normal((1, 5, 5, 2))
    np.testing.assert_allclose(np.asarray(layer(x)), nn.conv2d(x, kernel, bias), rtol=1e-12)
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(filters=0, kernel_size=3), ValueError, r"filters.*filters=0"),
        (dict(filters=-2, kernel_size=3), ValueError, r"filters=-2"),
        (dict(filters=2.0, kernel_size=3), TypeError, r"filters=2\.0"),
        (dict(filters=5, kernel_size=3, groups=2), ValueError, r"divisible.*filters=5.*groups=2"),
        (dict(filters=4, kernel_size=3, groups=0), ValueError, r"groups=0"),
        (dict(filters=4, kernel_size=3, groups=-1), ValueError, r"groups=-1"),
        (dict(filters=2, kernel_size=0), ValueError, r"kernel_size=0"),
        (dict(filters=2, kernel_size=(3, -1)), ValueError, r"kernel_size=\(3, -1\)"),
        (dict(filters=2, kernel_size=(3, 3, 3)), ValueError, r"kernel_size=\(3, 3, 3\)"),
        (dict(filters=2, kernel_size=2.5), TypeError, r"kernel_size=2\.5"),
        (dict(filters=2, kernel_size=3, strides=0), ValueError, r"strides=0"),
        (dict(filters=2, kernel_size=3, strides=(1,)), ValueError, r"strides=\(1,\)"),
        (dict(filters=2, kernel_size=3, strides=(1.5, 1)), TypeError, r"strides=\(1\.5, 1\)"),
        (dict(filters=2, kernel_size=3, dilation_rate=-1), ValueError, r"dilation_rate=-1"),
        (
            dict(filters=2, kernel_size=3, dilation_rate=(0, 1)),
            ValueError,
            r"dilation_rate=\(0, 1\)",
        ),
        (
            dict(filters=2, kernel_size=3, strides=2, dilation_rate=(1, 2)),
            ValueError,
            r"strides=\(2, 2\) and dilation_rate=\(1, 2\)",
        ),
        (dict(filters=2, kernel_size=3, padding="causal"), ValueError, r"padding='causal'"),
        (dict(filters=2, kernel_size=3, padding="full"), ValueError, r"padding='full'"),
        (dict(filters=2, kernel_size=3, data_format="NHWC"), ValueError, r"data_format='NHWC'"),
        (
            dict(filters=2, kernel_size=3, activation="no_such_activation"),
            ValueError,
            r"no_such_activation",
        ),
        (
            dict(filters=2, kernel_size=3, kernel_initializer="no_such_init"),
            ValueError,
            r"no_such_init",
        ),
        (
            dict(filters=2, kernel_size=3, kernel_regularizer="no_such_reg"),
            ValueError,
            r"no_such_reg",
        ),
        (
            dict(filters=2, kernel_size=3, bias_constraint="no_such_constraint"),
            ValueError,
            r"no_such_constraint",
        ),
        (dict(filters=2, kernel_size=3, dtype="int32"), ValueError, r"dtype='int32'"),
        (dict(filters=2, kernel_size=3, kernel_sise=3), TypeError, r"kernel_sise"),
    ],
)
def test_constructor_errors_name_argument_and_value(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        Conv2D(**kwargs)


def test_build_and_call_errors_name_shapes():
    with pytest.raises(ValueError, match=r"divisible by groups.*groups=2.*3 channels"):
        Conv2D(4, 3, groups=2)(np.zeros((1, 5, 5, 3)))
    with pytest.raises(ValueError, match=r"channel dimension.*\(None, 8, 8, None\)"):
        Conv2D(4, 3, input_shape=(8, 8, None))
    with pytest.raises(ValueError, match=r"at least 4 dimensions.*\(5, 5\)"):
        Conv2D(4, 3)(np.zeros((5, 5)))
    pattern = r"\(1, 4, 4, 1\).*kernel_size=\(3, 3\), dilation_rate=\(2, 2\), strides=\(1, 1\)"
    with pytest.raises(ValueError, match=pattern):
        Conv2D(1, 3, dilation_rate=2)(np.zeros((1, 4, 4, 1)))
    with pytest.raises(ValueError, match=r"\(None, 2, 9, 1\).*kernel_size=\(3, 3\)"):
        Conv2D(1, 3, input_shape=(2, 9, 1))
    with pytest.raises(ValueError, match=r"\(None, 2, 9, 1\).*kernel_size=\(3, 3\)"):
        Conv2D(1, 3).compute_output_shape((None, 2, 9, 1))
    # Built for unknown spatial sizes: the check happens at call.
    layer = Conv2D(1, 3, input_shape=(None, None, 1))
    with pytest.raises(ValueError, match=r"\(1, 2, 2, 1\).*kernel_size=\(3, 3\)"):
        layer(np.zeros((1, 2, 2, 1)))
    with pytest.raises(TypeError, match=r"dtype <U1"):
        Conv2D(1, 1)(np.array([[[["a"]]]]))


def test_failed_call_leaves_the_layer_as_it_was(rng):
    layer = Conv2D(2, 3, activity_regularizer="l2")
    with pytest.raises(ValueError):
        layer(np.zeros((1, 2, 2, 1)))  # window larger than the input
    assert not layer.built and layer.weights == [] and layer.losses == []
    with pytest.raises(ValueError):
        layer(np.zeros((1, 2, 5, 1)))
    assert not layer.built

    x = rng.standard_normal((2, 5, 5, 3))
    layer(x)
    kernel, bias, losses = layer.kernel, layer.bias, [float(v) for v in layer.losses]
    with pytest.raises(ValueError):
        layer(np.zeros((1, 5, 5, 4)))
    assert layer.kernel is kernel and layer.bias is bias and layer.weights == [kernel, bias]
    assert [float(v) for v in layer.losses] == losses
