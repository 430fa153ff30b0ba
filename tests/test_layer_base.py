"""numconv.layers.Layer: names, keyword checks, add_weight, trainable, casting, saving, rollback."""

import numpy as np
import pytest

import numconv
from numconv.layers import Layer


class Scale(Layer):
    """y = x * scale + offset on the last axis; a frozen ``count`` weight; optional failure."""

    def __init__(self, fail_after_build=False, **kwargs):
        super().__init__(**kwargs)
        self.fail_after_build = fail_after_build
        self._build_at_construction()

    def build(self, input_shape):
        self.scale = self.add_weight(
            "scale",
            (input_shape[-1],),
            initializer="ones",
            regularizer=numconv.regularizers.L2(0.5),
        )
        self.offset = self.add_weight("offset", (input_shape[-1],), initializer="zeros")
        self.count = self.add_weight("count", (), initializer="zeros", trainable=False)

    def call(self, inputs, training=None):
        if self.fail_after_build:
            raise RuntimeError("call failed on purpose")
        return numconv.ops.add(numconv.ops.multiply(inputs, self.scale), self.offset)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["fail_after_build"] = self.fail_after_build
        return config


def test_default_names_are_snake_case_and_unique():
    first, second = Scale(), Scale()
    assert first.name.startswith("scale") and second.name.startswith("scale")
    assert first.name != second.name
    assert numconv.layers.MaxPooling2D().name.startswith("max_pooling2d")
    assert numconv.layers.Conv2D(1, 1).name.startswith("conv2d")
    assert Scale(name="mine").name == "mine"


def test_unknown_keyword_arguments_are_named():
    with pytest.raises(TypeError, match=r"unexpected keyword.*bogus_argument"):
        Scale(bogus_argument=1)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(name=3), TypeError, r"name=3"),
        (dict(name=""), TypeError, r"name=''"),
        (dict(trainable="yes"), TypeError, r"trainable='yes'"),
        (dict(dtype="int64"), ValueError, r"dtype='int64'"),
        (dict(dtype="banana"), ValueError, r"dtype='banana'"),
        (dict(input_shape="3"), TypeError, r"input_shape='3'"),
        (dict(input_shape=(3, -1)), ValueError, r"input_shape=\(3, -1\)"),
        (dict(input_shape=(3, 2.5)), ValueError, r"input_shape=\(3, 2\.5\)"),
    ],
)
def test_base_argument_errors(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        Scale(**kwargs)


def test_trainable_setter_rejects_non_bool():
    layer = Scale()
    with pytest.raises(TypeError, match=r"trainable=1"):
        layer.trainable = 1


def test_add_weight_and_weight_lists():
    layer = Scale(input_shape=(3,))
    assert layer.built
    assert layer.scale.shape == (3,) and layer.count.shape == ()
    assert layer.trainable_weights == [layer.scale, layer.offset]
    assert layer.non_trainable_weights == [layer.count]
    assert layer.weights == [layer.scale, layer.offset, layer.count]
    assert layer.scale.trainable and not layer.count.trainable
    assert layer.scale.name == f"{layer.name}/scale"
    assert layer.count_params() == 7
    np.testing.assert_array_equal(layer.scale.numpy(), np.ones(3, np.float32))


def test_freezing_and_unfreezing_keeps_own_flags():
    layer = Scale(input_shape=(2,))
    layer.trainable = False
    assert layer.trainable_weights == []
    assert layer.non_trainable_weights == [layer.scale, layer.offset, layer.count]
    assert not any(v.trainable for v in layer.weights)
    assert layer.losses == []  # no regularization of frozen weights (Keras 3)
    layer.trainable = True
    assert layer.trainable_weights == [layer.scale, layer.offset]
    assert not layer.count.trainable
    assert len(layer.losses) == 1


def test_inputs_are_converted_and_cast_to_the_layer_dtype():
    layer = Scale(dtype="float64")
    for value in (
        [[1, 2]],
        np.array([[1, 2]], np.int32),
        np.array([[1.0, 2.0]], np.float32),
        np.array([[True, False]]),
    ):
        y = layer(value)
        assert isinstance(y, numconv.Tensor) and y.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(layer([[1, 2]])), [[1.0, 2.0]])
    with pytest.raises(TypeError, match="inputs=None"):
        layer(None)
    with pytest.raises(TypeError, match="complex128"):
        layer(np.ones((1, 2), np.complex128))


def test_gradient_flows_through_the_input_cast():
    layer = Scale(dtype="float64", input_shape=(2,))
    x = numconv.constant(np.array([[1.0, 2.0]], np.float32))
    with numconv.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    grad_x, grad_scale = tape.gradient(y, [x, layer.scale])
    assert grad_x.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(grad_x), [[1.0, 1.0]])
    np.testing.assert_array_equal(np.asarray(grad_scale), [1.0, 2.0])


def test_a_tensor_of_the_layer_dtype_passes_through_on_the_tape():
    layer = Scale(input_shape=(2,))
    x = numconv.Variable(np.array([[3.0, 4.0]], np.float32))
    with numconv.GradientTape() as tape:
        y = layer(x)
    np.testing.assert_array_equal(np.asarray(tape.gradient(y, x)), [[1.0, 1.0]])


def test_failed_call_restores_build_state_and_weights():
    layer = Scale(fail_after_build=True)
    with pytest.raises(RuntimeError, match="on purpose"):
        layer(np.ones((1, 3)))
    assert not layer.built and layer.weights == [] and layer.losses == []
    assert not hasattr(layer, "scale")
    layer.fail_after_build = False
    layer(np.ones((1, 3)))
    assert layer.built and len(layer.weights) == 3


def test_get_set_weights_include_non_trainable_in_keras_order():
    layer = Scale(input_shape=(2,))
    layer.set_weights([np.array([2.0, 3.0]), np.array([1.0, 1.0]), np.array(5.0)])
    scale, offset, count = layer.get_weights()
    np.testing.assert_array_equal(scale, [2.0, 3.0])
    assert count == 5.0
    with pytest.raises(ValueError, match=r"expects 3 weight arrays.*received 2"):
        layer.set_weights([scale, offset])
    with pytest.raises(TypeError, match="dtype <U1"):
        layer.set_weights([np.array(["a", "b"]), offset, count])


def test_unbuilt_layer_refuses_weight_io(tmp_path):
    layer = Scale()
    with pytest.raises(ValueError, match="not built"):
        layer.count_params()
    with pytest.raises(ValueError, match="not built"):
        layer.load_weights(tmp_path / "x.npz")


def test_save_load_weights_appends_npz_like_numpy(tmp_path):
    layer = Scale(input_shape=(2,))
    layer.set_weights([np.array([2.0, 3.0]), np.array([1.0, -1.0]), np.array(7.0)])
    layer.save_weights(tmp_path / "weights.npz")
    other = Scale(input_shape=(2,))
    other.load_weights(str(tmp_path / "weights.npz"))
    for got, want in zip(other.get_weights(), layer.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_base_config_round_trip():
    layer = Scale(name="scaler", trainable=False, dtype="float64", activity_regularizer="l1")
    config = layer.get_config()
    assert (
        config["name"] == "scaler" and config["trainable"] is False and config["dtype"] == "float64"
    )
    assert Scale.from_config(config).get_config() == config


def test_base_layer_without_call_raises_not_implemented():
    with pytest.raises(NotImplementedError, match="call"):
        Layer()(np.ones((1, 2)))


class Counter(Layer):
    """Assigns to its weight and draws random numbers before (optionally) failing."""

    def __init__(self, fail=False, **kwargs):
        super().__init__(**kwargs)
        self.fail = fail
        self._generator = np.random.default_rng(0)

    def build(self, input_shape):
        self.total = self.add_weight("total", (), initializer="zeros", trainable=False)

    def call(self, inputs):  # no training argument, as users may write it
        self.total.assign_add(np.sum(np.asarray(inputs)))
        noise = self._generator.random()
        if self.fail:
            raise RuntimeError("counter failed")
        return numconv.ops.add(inputs, noise)


def test_call_without_training_argument_is_supported():
    layer = Counter()
    y = layer(np.ones((1, 2)), training=True)
    assert y.shape == (1, 2)
    assert float(layer.total.numpy()) == 2.0


def test_failed_call_restores_variable_values_and_random_state():
    layer = Counter()
    first = np.asarray(layer(np.ones((1, 2))))
    reference = Counter()
    reference(np.ones((1, 2)))
    expected_next = np.asarray(reference(np.ones((1, 2))))
    layer.fail = True
    with pytest.raises(RuntimeError, match="counter failed"):
        layer(np.full((1, 2), 10.0))
    assert float(layer.total.numpy()) == 2.0
    layer.fail = False
    np.testing.assert_array_equal(np.asarray(layer(np.ones((1, 2)))), expected_next)
    assert not np.array_equal(first, expected_next)
