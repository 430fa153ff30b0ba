"""MaxPooling2D, AveragePooling2D and the global pooling layers against NumPy loops."""

import numpy as np
import pytest

import numconv
from numconv.layers import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
)
from gradient_check import assert_gradients_close


@pytest.fixture
def rng():
    return np.random.default_rng(99)


def tf_same_pads(size, window, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def loop_pool(x, pool_size, strides, padding, reduce):
    """channels_last pooling; TF semantics: padded cells never take part (max and mean)."""
    n, h, w, c = x.shape
    (ph, pw), (sh, sw) = pool_size, strides
    if padding == "valid":
        (top, _), (left, _) = (0, 0), (0, 0)
        out_h, out_w = (h - ph) // sh + 1, (w - pw) // sw + 1
    else:
        (top, _), (left, _) = tf_same_pads(h, ph, sh), tf_same_pads(w, pw, sw)
        out_h, out_w = -(-h // sh), -(-w // sw)
    out = np.empty((n, out_h, out_w, c))
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * sh - top, j * sw - left
            rows = slice(max(r0, 0), min(r0 + ph, h))
            cols = slice(max(c0, 0), min(c0 + pw, w))
            out[:, i, j, :] = reduce(x[:, rows, cols, :], axis=(1, 2))
    return out


POOL_CASES = [
    ((2, 2), None, "valid", (2, 6, 6, 3)),
    ((3, 3), (2, 2), "valid", (1, 7, 8, 2)),
    ((2, 3), (1, 2), "valid", (2, 5, 7, 1)),
    ((3, 3), (2, 2), "same", (1, 6, 8, 2)),
    ((2, 2), None, "same", (2, 5, 5, 2)),
    ((3, 2), (1, 1), "same", (1, 4, 5, 3)),
]


@pytest.mark.parametrize(
    "layer_class, reduce", [(MaxPooling2D, np.max), (AveragePooling2D, np.mean)]
)
@pytest.mark.parametrize("pool_size, strides, padding, shape", POOL_CASES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pooling_matches_numpy_loop(
    rng, layer_class, reduce, pool_size, strides, padding, shape, data_format
):
    x = rng.standard_normal(shape)
    layer = layer_class(
        pool_size=pool_size,
        strides=strides,
        padding=padding,
        data_format=data_format,
        dtype="float64",
    )
    expected = loop_pool(x, pool_size, strides or pool_size, padding, reduce)
    layer_input = x if data_format == "channels_last" else np.moveaxis(x, 3, 1)
    got = np.asarray(layer(layer_input))
    if data_format == "channels_first":
        got = np.moveaxis(got, 1, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert layer(layer_input).shape == layer.compute_output_shape(layer_input.shape)


def test_pooling_output_shapes_keep_none():
    assert MaxPooling2D().compute_output_shape((None, 7, 9, 3)) == (None, 3, 4, 3)
    assert AveragePooling2D(
        3, strides=2, padding="same", data_format="channels_first"
    ).compute_output_shape((None, 4, 7, None)) == (None, 4, 4, None)


def test_int_arguments_and_default_strides():
    layer = MaxPooling2D(pool_size=3, strides=1)
    assert layer.pool_size == (3, 3) and layer.strides == (1, 1)
    assert AveragePooling2D(pool_size=(2, 4)).strides == (2, 4)


@pytest.mark.parametrize("layer_class", [MaxPooling2D, AveragePooling2D])
def test_pooling_gradients_match_finite_differences(rng, layer_class):
    x = rng.standard_normal((1, 5, 5, 2))
    layer = layer_class(pool_size=3, strides=2, padding="same", dtype="float64")
    x_tensor = numconv.constant(x)
    with numconv.GradientTape() as tape:
        tape.watch(x_tensor)
        y = layer(x_tensor)
    grad = tape.gradient(y, x_tensor)
    reduce = np.max if layer_class is MaxPooling2D else np.mean
    assert_gradients_close(
        lambda value: loop_pool(value, (3, 3), (2, 2), "same", reduce), [x], [np.asarray(grad)]
    )


@pytest.mark.parametrize("layer_class", [MaxPooling2D, AveragePooling2D])
def test_pooling_config_round_trip(layer_class):
    layer = layer_class(
        pool_size=(3, 2),
        strides=(1, 2),
        padding="same",
        data_format="channels_first",
        name="pool_config",
    )
    config = layer.get_config()
    assert (
        config["pool_size"] == (3, 2)
        and config["strides"] == (1, 2)
        and config["padding"] == "same"
    )
    assert layer_class.from_config(config).get_config() == config


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(pool_size=0), ValueError, r"pool_size=0"),
        (dict(pool_size=(2, 2, 2)), ValueError, r"pool_size=\(2, 2, 2\)"),
        (dict(pool_size=1.5), TypeError, r"pool_size=1\.5"),
        (dict(strides=(0, 1)), ValueError, r"strides=\(0, 1\)"),
        (dict(padding="full"), ValueError, r"padding='full'"),
        (dict(padding=1), ValueError, r"padding=1"),
        (dict(data_format="NHWC"), ValueError, r"data_format='NHWC'"),
    ],
)
@pytest.mark.parametrize("layer_class", [MaxPooling2D, AveragePooling2D])
def test_pooling_argument_errors(layer_class, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        layer_class(**kwargs)


def test_pooling_input_errors():
    with pytest.raises(ValueError, match=r"4-D inputs.*\(5, 5, 3\)"):
        MaxPooling2D()(np.ones((5, 5, 3)))
    with pytest.raises(ValueError, match=r"\(1, 2, 5, 1\).*pool_size=\(3, 3\)"):
        AveragePooling2D(3)(np.ones((1, 2, 5, 1)))


# -- global pooling ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "layer_class, reduce", [(GlobalAveragePooling2D, np.mean), (GlobalMaxPooling2D, np.max)]
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_matches_numpy(rng, layer_class, reduce, data_format, keepdims):
    x = rng.standard_normal((2, 3, 4, 5))
    axes = (1, 2) if data_format == "channels_last" else (2, 3)
    layer = layer_class(data_format=data_format, keepdims=keepdims, dtype="float64")
    got = layer(x)
    np.testing.assert_allclose(np.asarray(got), reduce(x, axis=axes, keepdims=keepdims), rtol=1e-12)
    assert got.shape == layer.compute_output_shape(x.shape)
    assert layer_class.from_config(layer.get_config()).get_config() == layer.get_config()


def test_global_pooling_shapes_and_gradient(rng):
    assert GlobalAveragePooling2D().compute_output_shape((None, 7, 7, 3)) == (None, 3)
    assert GlobalMaxPooling2D(data_format="channels_first", keepdims=True).compute_output_shape(
        (None, 3, 7, 7)
    ) == (None, 3, 1, 1)
    x = numconv.constant(rng.standard_normal((2, 3, 3, 2)))
    with numconv.GradientTape() as tape:
        tape.watch(x)
        y = GlobalAveragePooling2D(dtype="float64")(x)
    np.testing.assert_allclose(
        np.asarray(tape.gradient(y, x)), np.full((2, 3, 3, 2), 1 / 9), rtol=1e-12
    )


def test_global_pooling_errors():
    with pytest.raises(ValueError, match=r"4-D inputs.*\(2, 3\)"):
        GlobalMaxPooling2D()(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"keepdims=1"):
        GlobalAveragePooling2D(keepdims=1)
    with pytest.raises(ValueError, match=r"data_format='NHWC'"):
        GlobalAveragePooling2D(data_format="NHWC")
