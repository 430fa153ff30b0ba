"""Bad input at every public entry point: a ValueError or TypeError naming argument and value.

Organised as tables, entry point x bad-input class.  Each row gives the
exception type and a pattern that must find the argument's name together
with the value (or shape, or dtype) received.  Valid nested lists of numbers
are accepted wherever an array is, and give the array's result.
"""

import re

import numpy as np
import pytest

import numconv
from numconv import layers, losses, nn, ops, optimizers
from numconv.autograd.tape import GradientTape
from numconv.autograd.tensor import Variable
from numconv.compat.v1 import layers as v1_layers

X = np.arange(2 * 6 * 6 * 3, dtype=np.float32).reshape(2, 6, 6, 3) / 100
KERNEL = np.ones((3, 3, 3, 4), np.float32) / 10
GRAD_CONV = np.ones((2, 4, 4, 4), np.float32)
GRAD_POOL = np.ones((2, 3, 3, 3), np.float32)


# -- entry points taking one array argument, called with everything else valid -------------
def _layer_call(layer_class, **options):
    return lambda x: layer_class(**options)(x)


def _fit(x):
    model = numconv.Sequential([layers.Flatten(), layers.Dense(3)])
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model.fit(x, np.zeros(2, np.int64), verbose=0)


def _predict(x):
    model = numconv.Sequential([layers.Flatten(), layers.Dense(3)])
    return model.predict(x)


ARRAY_ENTRY_POINTS = {
    # name: (call taking the bad value, argument name in messages)
    "nn.conv2d(x)": (lambda x: nn.conv2d(x, KERNEL), "x"),
    "nn.conv2d(kernel)": (lambda k: nn.conv2d(X, k), "kernel"),
    "nn.conv2d(bias)": (lambda b: nn.conv2d(X, KERNEL, bias=b), "bias"),
    "nn.conv2d_grads(x)": (lambda x: nn.conv2d_grads(x, KERNEL, GRAD_CONV), "x"),
    "nn.conv2d_grads(grad_output)": (lambda g: nn.conv2d_grads(X, KERNEL, g), "grad_output"),
    "nn.max_pool2d(x)": (lambda x: nn.max_pool2d(x, 2), "x"),
    "nn.avg_pool2d(x)": (lambda x: nn.avg_pool2d(x, 2), "x"),
    "nn.max_pool2d_grad(x)": (lambda x: nn.max_pool2d_grad(x, GRAD_POOL, 2), "x"),
    "nn.avg_pool2d_grad(grad_output)": (lambda g: nn.avg_pool2d_grad(X, g, 2), "grad_output"),
    "nn.max_pool2d_grad(grad_output)": (lambda g: nn.max_pool2d_grad(X, g, 2), "grad_output"),
    "ops.conv2d(x)": (lambda x: ops.conv2d(x, KERNEL), "x"),
    "ops.max_pool2d(x)": (lambda x: ops.max_pool2d(x, 2), "x"),
    "Conv2D()(inputs)": (_layer_call(layers.Conv2D, filters=2, kernel_size=3), "inputs"),
    "v1.Conv2D()(inputs)": (_layer_call(v1_layers.Conv2D, filters=2, kernel_size=3), "inputs"),
    "Dense()(inputs)": (_layer_call(layers.Dense, units=2), "inputs"),
    "MaxPooling2D()(inputs)": (_layer_call(layers.MaxPooling2D), "inputs"),
    "AveragePooling2D()(inputs)": (_layer_call(layers.AveragePooling2D), "inputs"),
    "Sequential.fit(x)": (_fit, "x"),
    "Sequential.predict(x)": (_predict, "x"),
}

# Bad-input classes for array arguments: value, and the part of the message that shows it.
ARRAY_CLASSES = {
    "None": (None, r"=None"),
    "string": ("abc", r"(dtype <U3|'abc')"),
    "string array": (np.full((2, 6, 6, 3), "a"), r"dtype <U1"),
    "complex array": (X.astype(np.complex128), r"dtype complex128"),
    "object array": (X.astype(object), r"dtype object"),
    "ragged list": ([[1.0, 2.0], [3.0]], re.escape("=[[1.0, 2.0], [3.0]]")),
    "python scalar": (3.0, r"(shape[= ]\(\)|scalar)"),
    "wrong rank": (np.ones((6, 6, 3), np.float32), r"shape[= ]\(6, 6, 3\)"),
}

# Where an entry point answers a class with the other exception type than the default
# (None and dtypes: TypeError; shapes: ValueError).
_TYPE_EXCEPTIONS = {
    ("Sequential.fit(x)", "None"): ValueError,
    ("Sequential.predict(x)", "None"): ValueError,
}
# Entry points where a class is not bad input at all (Dense accepts rank 3; a bias is 1-D).
_NOT_APPLICABLE = {
    ("Dense()(inputs)", "wrong rank"),
    ("Sequential.fit(x)", "wrong rank"),
    ("Sequential.predict(x)", "wrong rank"),
    ("Sequential.fit(x)", "python scalar"),
    ("Sequential.predict(x)", "python scalar"),
    ("nn.conv2d(bias)", "None"),  # no bias
}


def _array_rows():
    for entry in ARRAY_ENTRY_POINTS:
        for klass in ARRAY_CLASSES:
            if (entry, klass) in _NOT_APPLICABLE:
                continue
            default = ValueError if klass in ("python scalar", "wrong rank") else TypeError
            yield pytest.param(
                entry, klass, _TYPE_EXCEPTIONS.get((entry, klass), default), id=f"{entry}-{klass}"
            )


def _expect_named(error_info, argument, shown):
    """The message names the argument and shows the value received."""
    message = str(error_info.value)
    assert re.search(rf"\b{re.escape(argument)}\b", message), message
    assert re.search(shown, message), message


@pytest.mark.parametrize("entry, klass, exception", list(_array_rows()))
def test_bad_array_argument(entry, klass, exception):
    call, argument = ARRAY_ENTRY_POINTS[entry]
    value, shown = ARRAY_CLASSES[klass]
    if entry.endswith("(bias)") and klass == "wrong rank":
        shown = r"shape \(6, 6, 3\)"
    with pytest.raises(exception) as error_info:
        call(value)
    _expect_named(error_info, argument, shown)


# Scalars and shapes for the remaining array entry points, and the fit/predict special cases.
@pytest.mark.parametrize(
    "call, exception, pattern",
    [
        (lambda: _fit(3.0), ValueError, r"x must have a batch axis; received a scalar x="),
        (lambda: _predict(3.0), ValueError, r"x must have a batch axis; received a scalar x="),
        (lambda: layers.Dense(2)(3.0), ValueError, r"inputs with shape \(\)"),
        (
            lambda: nn.conv2d(X, KERNEL, bias=np.ones((6, 6, 3))),
            ValueError,
            r"bias must have shape \(filters,\) = \(4,\); received bias with shape \(6, 6, 3\)",
        ),
    ],
    ids=["fit scalar", "predict scalar", "Dense scalar", "bias rank"],
)
def test_scalars_and_shapes_elsewhere(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


# -- valid nested lists work as arrays ------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda x: nn.conv2d(x, KERNEL),
        lambda x: nn.max_pool2d(x, 2),
        lambda x: nn.avg_pool2d(x, 2),
        lambda x: np.asarray(ops.conv2d(x, KERNEL)),
        lambda x: np.asarray(layers.MaxPooling2D()(x)),
    ],
    ids=["conv2d", "max_pool2d", "avg_pool2d", "ops.conv2d", "MaxPooling2D"],
)
def test_nested_lists_work_as_arrays(call):
    x = X.astype(np.float64)
    np.testing.assert_array_equal(call(x.tolist()), call(x))


def test_fit_and_predict_take_nested_lists():
    model = numconv.Sequential([layers.Flatten(), layers.Dense(3)])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(X[:, :2, :2, :1].tolist(), [0, 2], verbose=0)
    np.testing.assert_array_equal(
        model.predict(X[:, :2, :2, :1].tolist()), model.predict(X[:, :2, :2, :1])
    )


# -- mismatched channels and shapes -------------------------------------------------------
def _built_conv_layer():
    layer = layers.Conv2D(2, 3)
    layer(X)
    return layer


def _built_dense_layer():
    layer = layers.Dense(2)
    layer(np.ones((2, 5), np.float32))
    return layer


@pytest.mark.parametrize(
    "call, pattern",
    [
        (
            lambda: nn.conv2d(X, np.ones((3, 3, 2, 4))),
            r"kernel.shape\[2\] must equal .* received kernel with shape \(3, 3, 2, 4\) and x with "
            r"shape \(2, 6, 6, 3\)",
        ),
        (
            lambda: nn.conv2d(X, KERNEL, data_format="channels_first"),
            r"received kernel with shape \(3, 3, 3, 4\) and x with shape \(2, 6, 6, 3\) "
            r"\(data_format='channels_first'\)",
        ),
        (
            lambda: nn.conv2d_grads(X, KERNEL, np.ones((2, 4, 4, 5))),
            r"grad_output .* received grad_output with shape \(2, 4, 4, 5\)",
        ),
        (
            lambda: nn.max_pool2d_grad(X, np.ones((2, 3, 3, 4)), 2),
            r"received grad_output.shape=\(2, 3, 3, 4\)",
        ),
        (
            lambda: _built_conv_layer()(np.ones((2, 6, 6, 5), np.float32)),
            r"built for inputs with 3 channels .* received input shape \(2, 6, 6, 5\) with 5 channels",
        ),
        (
            lambda: _built_dense_layer()(np.ones((2, 7), np.float32)),
            r"built for inputs with last dimension 5 .* received input shape \(2, 7\)",
        ),
        (
            lambda: layers.Conv2D(2, 3, groups=2)(X),
            r"divisible by groups; received groups=2 and inputs with 3 channels",
        ),
        (
            lambda: ops.bias_add(X, np.ones(4)),
            r"received bias.shape=\(4,\) for x.shape=\(2, 6, 6, 3\)",
        ),
    ],
    ids=[
        "conv2d kernel",
        "conv2d channels_first",
        "conv2d_grads grad_output",
        "pool grad_output",
        "Conv2D built",
        "Dense built",
        "Conv2D groups",
        "bias_add",
    ],
)
def test_mismatched_channels_and_shapes(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


# -- configuration numbers and strings -----------------------------------------------------
NAN = float("nan")

CONFIG_ENTRY_POINTS = {
    "nn.conv2d": lambda **kw: nn.conv2d(X, KERNEL, **kw),
    "nn.conv2d_grads": lambda **kw: nn.conv2d_grads(X, KERNEL, GRAD_CONV, **kw),
    "nn.max_pool2d": lambda **kw: nn.max_pool2d(X, **{"pool_size": 2, **kw}),
    "nn.avg_pool2d_grad": lambda **kw: nn.avg_pool2d_grad(X, GRAD_POOL, **{"pool_size": 2, **kw}),
    "Conv2D": lambda **kw: layers.Conv2D(**{"filters": 2, "kernel_size": 3, **kw}),
    "v1.Conv2D": lambda **kw: v1_layers.Conv2D(**{"filters": 2, "kernel_size": 3, **kw}),
    "MaxPooling2D": lambda **kw: layers.MaxPooling2D(**kw),
    "Dense": lambda **kw: layers.Dense(**{"units": 2, **kw}),
    "Dropout": lambda **kw: layers.Dropout(**{"rate": 0.5, **kw}),
    "ReLU": lambda **kw: layers.ReLU(**kw),
    "SGD": lambda **kw: optimizers.SGD(**kw),
    "Adam": lambda **kw: optimizers.Adam(**kw),
    "RMSprop": lambda **kw: optimizers.RMSprop(**kw),
    "Sequential.fit": lambda **kw: _fit_with(**kw),
    "Sequential.predict": lambda **kw: numconv.Sequential([layers.Dense(1)]).predict(
        np.ones((2, 2)), **kw
    ),
}


def _fit_with(**options):
    model = numconv.Sequential([layers.Dense(1)])
    model.compile("sgd", "mse")
    return model.fit(np.ones((4, 2)), np.ones((4, 1)), **{"verbose": 0, **options})


def _config_rows():
    sized = {  # integer sizes: (argument, bad-input class, value, exception)
        "nan": (NAN, TypeError),
        "float": (2.0, TypeError),
        "zero": (0, ValueError),
        "negative": (-3, ValueError),
        "huge": (2**64, ValueError),
        "bool": (True, TypeError),
        "string": ("2", TypeError),
        "None": (None, TypeError),
        "wrong-length tuple": ((2, 2, 2), ValueError),
        "tuple with nan": ((2, NAN), TypeError),
    }
    size_arguments = {
        "nn.conv2d": ["strides", "dilation_rate", "groups"],
        "nn.conv2d_grads": ["strides", "dilation_rate"],
        "nn.max_pool2d": ["pool_size", "strides"],
        "nn.avg_pool2d_grad": ["pool_size"],
        "Conv2D": ["filters", "kernel_size", "strides", "dilation_rate", "groups"],
        "v1.Conv2D": ["kernel_size"],
        "MaxPooling2D": ["pool_size", "strides"],
        "Dense": ["units"],
        "Sequential.fit": ["batch_size", "epochs"],
        "Sequential.predict": ["batch_size"],
    }
    scalar_only = {"groups", "filters", "units", "batch_size", "epochs"}
    for entry, arguments in size_arguments.items():
        for argument in arguments:
            for klass, (value, exception) in sized.items():
                if argument in scalar_only and "tuple" in klass:
                    continue
                if argument in scalar_only and klass == "huge":
                    continue  # any count of filters or batches is a valid request
                if klass == "None" and (
                    argument == "strides"
                    and entry in ("nn.max_pool2d", "MaxPooling2D")
                    or argument == "batch_size"
                ):
                    continue  # None means "the default" there
                if (entry, argument, klass) in {("Sequential.fit", "epochs", "zero")}:
                    continue  # zero epochs is a valid no-op, as in Keras
                yield pytest.param(
                    entry, argument, value, exception, id=f"{entry}-{argument}-{klass}"
                )
    numbers = {  # real-valued options: NaN, out of range, wrong type
        "Dropout": [
            ("rate", NAN, ValueError),
            ("rate", 1.0, ValueError),
            ("rate", -0.1, ValueError),
            ("rate", "0.5", TypeError),
            ("seed", -1, ValueError),
            ("noise_shape", (2.0,), ValueError),
        ],
        "ReLU": [
            ("max_value", NAN, ValueError),
            ("negative_slope", -1.0, ValueError),
            ("threshold", "0", TypeError),
        ],
        "SGD": [
            ("learning_rate", NAN, ValueError),
            ("learning_rate", -1.0, ValueError),
            ("learning_rate", float("inf"), ValueError),
            ("learning_rate", None, TypeError),
            ("momentum", NAN, ValueError),
            ("momentum", 1.5, ValueError),
            ("nesterov", "yes", TypeError),
        ],
        "Adam": [
            ("beta_1", NAN, ValueError),
            ("beta_2", 1.0, ValueError),
            ("epsilon", NAN, ValueError),
            ("amsgrad", 1, TypeError),
        ],
        "RMSprop": [
            ("rho", NAN, ValueError),
            ("epsilon", -1e-7, ValueError),
            ("centered", None, TypeError),
        ],
        "Sequential.fit": [
            ("validation_split", NAN, ValueError),
            ("validation_split", 1.0, ValueError),
            ("verbose", 5, ValueError),
            ("shuffle", "yes", TypeError),
            ("initial_epoch", -1, ValueError),
        ],
    }
    for entry, rows in numbers.items():
        for argument, value, exception in rows:
            yield pytest.param(
                entry, argument, value, exception, id=f"{entry}-{argument}-{value!r}"
            )
    strings = {  # option strings
        "nn.conv2d": [
            ("padding", "full"),
            ("data_format", "NCHW"),
            ("padding", None, TypeError),
            ("padding", ((1, 1), (1,))),
            ("padding", -1),
        ],
        "nn.conv2d_grads": [("wrt", ("input", "weights"))],
        "nn.max_pool2d": [("padding", "causal"), ("data_format", None), ("padding", 1)],
        "Conv2D": [
            ("padding", "causal"),
            ("data_format", "nhwc"),
            ("activation", "nope"),
            ("kernel_initializer", "nope"),
            ("dtype", "int32"),
        ],
        "MaxPooling2D": [("padding", "full"), ("data_format", "NCHW")],
        "Dense": [("activation", "nope"), ("use_bias", "yes")],
    }
    for entry, rows in strings.items():
        for argument, value, *exception in rows:
            exception = (
                exception[0] if exception else (TypeError if argument == "use_bias" else ValueError)
            )
            yield pytest.param(
                entry, argument, value, exception, id=f"{entry}-{argument}-{value!r}"
            )


@pytest.mark.parametrize("entry, argument, value, exception", list(_config_rows()))
def test_bad_configuration(entry, argument, value, exception):
    with pytest.raises(exception) as error_info:
        CONFIG_ENTRY_POINTS[entry](**{argument: value})
    message = str(error_info.value)
    # Registries name the family ("unknown initializer 'nope'"), the layer the argument.
    assert argument.replace("kernel_", "") in message, message
    assert repr(value) in message or (isinstance(value, str) and value in message), message


# -- huge sizes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, exception, pattern",
    [
        (
            lambda: nn.conv2d(X, KERNEL, strides=2**63),
            ValueError,
            r"received strides=9223372036854775808",
        ),
        (
            lambda: nn.max_pool2d(X, 10**30, padding="same"),
            ValueError,
            r"pool_size values must be at most 2\*\*62; received pool_size=10{30}",
        ),
        (
            lambda: nn.max_pool2d(X, 10**9),
            ValueError,
            r"pool_size=\(1000000000, 1000000000\) does not fit .* x.shape=\(2, 6, 6, 3\)",
        ),
        (
            lambda: layers.Conv2D(2, 10**9)(X),
            ValueError,
            r"would be empty: input shape \(2, 6, 6, 3\) with kernel_size=\(1000000000, 1000000000\)",
        ),
        (lambda: nn.conv2d(X, KERNEL, padding=-1), ValueError, r"received padding=-1"),
        (
            lambda: layers.Conv2D(2, 3, input_shape=(-1, 6, 3)),
            ValueError,
            r"received input_shape=\(-1, 6, 3\)",
        ),
        (
            lambda: layers.Dense(2).add_weight("w", (3, -2)),
            ValueError,
            r"shape of weight 'w' must hold non-negative integers; received shape=\(3, -2\)",
        ),
        (
            lambda: layers.Dense(2).add_weight("w", (3, 2.5)),
            TypeError,
            r"shape of weight 'w' must be a tuple of integers; received shape=\(3, 2.5\)",
        ),
        (
            lambda: numconv.initializers.get("glorot_uniform")((3, -2)),
            ValueError,
            r"received shape=\(3, -2\)",
        ),
    ],
    ids=[
        "conv2d strides 2**63",
        "pool_size 1e30",
        "pool_size 1e9",
        "Conv2D kernel 1e9",
        "negative padding",
        "negative input_shape",
        "add_weight negative",
        "add_weight float",
        "initializer negative",
    ],
)
def test_huge_or_negative_sizes(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


# -- fit: lengths and labels --------------------------------------------------------------
def _sparse_model():
    model = numconv.Sequential([layers.Flatten(), layers.Dense(3)])
    model.compile("sgd", losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize(
    "arguments, pattern",
    [
        (
            dict(x=np.ones((4, 2)), y=np.zeros(5, np.int64)),
            r"same number of samples; received x with 4 samples \(shape \(4, 2\)\), y with 5 samples",
        ),
        (
            dict(x=np.ones((4, 2)), y=np.zeros(4, np.int64), sample_weight=np.ones(3)),
            r"sample_weight with 3 samples \(shape \(3,\)\)",
        ),
        (
            dict(x=np.ones((4, 2)), y=np.array([0, 1, 2, 3])),
            r"labels must be in \[0, 3\) for 3 classes; received labels containing 3",
        ),
        (dict(x=np.ones((4, 2)), y=np.array([0, -1, 2, 1])), r"received labels containing -1"),
        (
            dict(x=np.ones((4, 2)), y=np.array([0, 0.5, 2, 1])),
            r"labels must be integer class indices; received labels containing 0.5",
        ),
        (dict(x=np.ones((4, 2)), y=None), r"y must be an array of samples; received y=None"),
        (
            dict(x=np.ones((0, 2)), y=np.zeros(0, np.int64)),
            r"x must hold at least one sample; received x with shape \(0, 2\)",
        ),
        (
            dict(x=np.ones((4, 2)), y=np.zeros(4), validation_data=(np.ones((2, 2)),)),
            r"validation_data must be a tuple .* received validation_data=",
        ),
    ],
    ids=[
        "x/y lengths",
        "sample_weight length",
        "label = classes",
        "negative label",
        "fractional label",
        "y None",
        "empty x",
        "validation_data length",
    ],
)
def test_fit_refuses(arguments, pattern):
    with pytest.raises(ValueError, match=pattern):
        _sparse_model().fit(verbose=0, **arguments)


def test_sparse_cross_entropy_labels_out_of_range():
    loss = losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\) .* containing 7"):
        loss(np.array([7, 0]), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\) .* containing 3"):
        ops.sparse_softmax_cross_entropy_with_logits(np.array([3]), np.zeros((1, 3)))


# -- weights: set_weights / load_weights ----------------------------------------------------
def _conv_layer():
    return layers.Conv2D(4, 3, input_shape=(6, 6, 3), name="conv")


@pytest.mark.parametrize(
    "weights, exception, pattern",
    [
        (
            None,
            TypeError,
            r"set_weights of layer 'conv' expects a list of arrays; received weights=None",
        ),
        (3, TypeError, r"received weights=3"),
        (np.ones((3, 3, 3, 4)), TypeError, r"expects a list of arrays; received weights=array"),
        (
            [np.ones((3, 3, 3, 4))],
            ValueError,
            r"expects 2 weight arrays with shapes \[\(3, 3, 3, 4\), \(4,\)\]; received 1 arrays with "
            r"shapes \[\(3, 3, 3, 4\)\]",
        ),
        (
            [np.ones((3, 3, 3, 5)), np.ones(4)],
            ValueError,
            r"weight 'conv/kernel' has shape \(3, 3, 3, 4\) but the provided array has shape "
            r"\(3, 3, 3, 5\)",
        ),
        ([None, np.ones(4)], TypeError, r"received None for weight 'conv/kernel'"),
        (
            [np.ones((3, 3, 3, 4), complex), np.ones(4)],
            TypeError,
            r"dtype complex128 for weight 'conv/kernel'",
        ),
        ([np.ones((3, 3, 3, 4)), np.full(4, "a")], TypeError, r"dtype <U1 for weight 'conv/bias'"),
        ([np.ones((3, 3, 3, 4)), [1.0, [2.0]]], TypeError, r"for weight 'conv/bias'"),
    ],
    ids=[
        "None",
        "int",
        "array not list",
        "missing",
        "mis-shaped",
        "None entry",
        "complex",
        "string",
        "ragged",
    ],
)
def test_set_weights_refuses(weights, exception, pattern):
    layer = _conv_layer()
    before = layer.get_weights()
    with pytest.raises(exception, match=pattern):
        layer.set_weights(weights)
    for old, new in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_sequential_set_weights_refuses():
    model = numconv.Sequential([layers.Dense(2, input_shape=(3,), name="d")])
    with pytest.raises(TypeError, match=r"set_weights of model .* received weights=None"):
        model.set_weights(None)
    with pytest.raises(ValueError, match=r"expects 2 weight arrays .* received 1 arrays"):
        model.set_weights([np.ones((3, 2))])
    with pytest.raises(TypeError, match=r"dtype complex128 for weight 'd/kernel'"):
        model.set_weights([np.ones((3, 2), complex), np.ones(2)])


@pytest.mark.parametrize(
    "stored, exception, pattern",
    [
        (
            dict(kernel=np.ones((3, 3, 3, 4))),
            ValueError,
            r"cannot load weights of layer 'conv' from '.*w.npz': 'bias' is missing \(expected shape "
            r"\(4,\)\); the file holds \['kernel'\]",
        ),
        (
            dict(kernel=np.ones((3, 3, 3, 5)), bias=np.ones(4)),
            ValueError,
            r"'kernel' has shape \(3, 3, 3, 5\) \(expected shape \(3, 3, 3, 4\)\)",
        ),
        (
            dict(kernel=np.ones((3, 3, 3, 4), complex), bias=np.ones(4)),
            TypeError,
            r"dtype complex128 for weight 'kernel in .*w.npz'",
        ),
        (
            dict(kernel=np.ones((3, 3, 3, 4)), bias=np.full(4, "x")),
            TypeError,
            r"dtype <U1 for weight 'bias in .*w.npz'",
        ),
    ],
    ids=["missing", "mis-shaped", "complex", "string"],
)
def test_load_weights_refuses(tmp_path, stored, exception, pattern):
    np.savez(tmp_path / "w.npz", **stored)
    layer = _conv_layer()
    before = layer.get_weights()
    with pytest.raises(exception, match=pattern):
        layer.load_weights(tmp_path / "w.npz")
    for old, new in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_load_weights_refuses_paths_and_unreadable_files(tmp_path):
    layer = _conv_layer()
    with pytest.raises(TypeError, match=r"path must be a file path; received path=None"):
        layer.load_weights(None)
    (tmp_path / "junk.npz").write_text("not an archive")
    with pytest.raises(
        ValueError,
        match=r"cannot load weights of layer 'conv' from '.*junk.npz': "
        r"not a readable .npz file",
    ):
        layer.load_weights(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"from '.*single.npy': not a readable .npz file"):
        layer.load_weights(tmp_path / "single.npy")
    # A missing file is the standard FileNotFoundError (an OSError), naming the path.
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        layer.load_weights(tmp_path / "absent.npz")


def test_sequential_load_weights_refuses(tmp_path):
    model = numconv.Sequential([layers.Dense(2, input_shape=(3,))])
    np.savez(tmp_path / "w.npz", **{"0.kernel": np.ones((3, 2))})
    with pytest.raises(
        ValueError,
        match=r"'0.bias' is missing \(expected shape \(2,\)\); the file holds \['0.kernel'\]",
    ):
        model.load_weights(tmp_path / "w.npz")
    np.savez(tmp_path / "c.npz", **{"0.kernel": np.ones((3, 2), complex), "0.bias": np.ones(2)})
    with pytest.raises(TypeError, match=r"dtype complex128 for weight '0.kernel in .*c.npz'"):
        model.load_weights(tmp_path / "c.npz")
    with pytest.raises(ValueError, match=r"filepath must end in .npz; received filepath='w.h5'"):
        model.load_weights("w.h5")
    with pytest.raises(TypeError, match=r"received filepath=None"):
        model.load_weights(None)


# -- GradientTape.gradient and optimizers ---------------------------------------------------
def _tape_and_target():
    variable = Variable(np.ones(3), name="v")
    with GradientTape(persistent=True) as tape:
        target = variable * 2.0
    return tape, target, variable


@pytest.mark.parametrize(
    "arguments, exception, pattern",
    [
        (
            lambda t, v: (None, v),
            TypeError,
            r"target must be a Tensor computed under the tape; received target=None",
        ),
        (lambda t, v: (np.ones(3), v), TypeError, r"received target=array\(\[1., 1., 1.\]\)"),
        (
            lambda t, v: (t, None),
            TypeError,
            r"sources must be Tensors or Variables; received source=None",
        ),
        (lambda t, v: (t, [v, 3.0]), TypeError, r"received source=3.0"),
        (
            lambda t, v: (t, v, np.ones(4)),
            ValueError,
            r"output_gradients must have the target's shape \(3,\); received shape \(4,\)",
        ),
        (
            lambda t, v: (t, v, np.ones(3, complex)),
            TypeError,
            r"output_gradients must hold real numbers; received output_gradients=array.*complex128",
        ),
        (
            lambda t, v: (t, v, ["a", "b", "c"]),
            TypeError,
            r"received output_gradients=\['a', 'b', 'c'\]",
        ),
        (
            lambda t, v: ([t, t], v, [np.ones(3)]),
            ValueError,
            r"output_gradients must have one entry per target; received 1 entries for 2 targets",
        ),
    ],
    ids=[
        "target None",
        "target array",
        "source None",
        "source number",
        "output_gradients shape",
        "output_gradients complex",
        "output_gradients strings",
        "output_gradients count",
    ],
)
def test_gradient_refuses(arguments, exception, pattern):
    tape, target, variable = _tape_and_target()
    with pytest.raises(exception, match=pattern):
        tape.gradient(*arguments(target, variable))


@pytest.mark.parametrize(
    "pairs, exception, pattern",
    [
        (None, TypeError, r"grads_and_vars must be an iterable .* received grads_and_vars=None"),
        (3, TypeError, r"received grads_and_vars=3"),
        ([np.ones(3)], TypeError, r"must be \(gradient, variable\) pairs; received an item array"),
        (
            [(np.ones(3), np.ones(3))],
            TypeError,
            r"variables must be numconv Variables; received variable=array",
        ),
        (
            [(np.ones(4), "V")],
            ValueError,
            r"gradient of variable 'v' has shape \(4,\), but the variable has shape \(3,\)",
        ),
        ([(1.0, "V")], ValueError, r"gradient of variable 'v' has shape \(\)"),
        (
            [(np.ones(3, complex), "V")],
            TypeError,
            r"gradient of variable 'v' must hold real numbers; received dtype complex128",
        ),
        ([([1.0, [2.0]], "V")], TypeError, r"gradient of variable 'v' must hold real numbers"),
        ([(None, "V")], ValueError, r"no gradients provided for any variable .* \['v'\]"),
    ],
    ids=[
        "None",
        "int",
        "not pairs",
        "array variable",
        "shape",
        "scalar grad",
        "complex",
        "ragged",
        "all None",
    ],
)
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_apply_gradients_refuses(optimizer, pairs, exception, pattern):
    variable = Variable(np.ones(3), name="v")
    if isinstance(pairs, list):
        pairs = [
            (
                tuple(variable if isinstance(item, str) and item == "V" else item for item in pair)
                if isinstance(pair, tuple)
                else pair
            )
            for pair in pairs
        ]
    with pytest.raises(exception, match=pattern):
        optimizers.get(optimizer).apply_gradients(pairs)
    np.testing.assert_array_equal(variable.numpy(), np.ones(3))
