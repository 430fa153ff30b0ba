"""Pooling layers: MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D."""

from .. import _arguments
from .. import config as _config
from .. import ops as _ops
from .base import Layer, shape_tuple


def _data_format(value):
    return _arguments.normalize_data_format(_config.image_data_format() if value is None else value)


def _check_rank4(layer, shape):
    if len(shape) != 4:
        raise ValueError(
            f"layer {layer.name!r} expects 4-D inputs (batch, rows, cols, channels) or "
            f"(batch, channels, rows, cols); received inputs with shape {shape}"
        )


class _Pooling2D(Layer):
    """Shared by MaxPooling2D and AveragePooling2D."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _arguments.normalize_tuple(pool_size, 2, "pool_size")
        self.strides = (
            self.pool_size if strides is None else _arguments.normalize_tuple(strides, 2, "strides")
        )
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError(f'padding must be "valid" or "same"; received padding={padding!r}')
        self.padding = padding.lower()
        self.data_format = _data_format(data_format)
        self.built = True

    def _spatial_axes(self):
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def _output_spatial(self, shape):
        rows_axis, cols_axis = self._spatial_axes()
        spatial = (shape[rows_axis], shape[cols_axis])
        known = tuple(1 if size is None else size for size in spatial)
        _, outs = _arguments.resolve_padding(
            self.padding, known, self.pool_size, self.strides, (1, 1)
        )
        if any(size is not None and out <= 0 for size, out in zip(spatial, outs)):
            raise ValueError(
                f"the output of layer {self.name!r} would be empty: input shape {shape} with "
                f"pool_size={self.pool_size}, strides={self.strides} and padding={self.padding!r}"
            )
        return tuple(None if size is None else out for size, out in zip(spatial, outs))

    def _check_input_shape(self, shape):
        shape = shape_tuple(shape)
        _check_rank4(self, shape)
        self._output_spatial(shape)

    def compute_output_shape(self, input_shape):
        shape = shape_tuple(input_shape)
        self._check_input_shape(shape)
        out_rows, out_cols = self._output_spatial(shape)
        if self.data_format == "channels_last":
            return (shape[0], out_rows, out_cols, shape[3])
        return (shape[0], shape[1], out_rows, out_cols)

    def _pool_op(self):
        raise NotImplementedError

    def call(self, inputs, training=None):
        return self._pool_op()(
            inputs,
            self.pool_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pool_size": self.pool_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
            }
        )
        return config


class MaxPooling2D(_Pooling2D):
    """Max pooling over 2-D windows, as ``keras.layers.MaxPooling2D``.

    ``strides=None`` means ``pool_size``; ``padding`` is "valid" or "same"
    (TensorFlow's, with padded cells never selected).
    """

    def _pool_op(self):
        return _ops.max_pool2d


class AveragePooling2D(_Pooling2D):
    """Average pooling over 2-D windows, as ``keras.layers.AveragePooling2D``.

    With "same" padding, padded cells are left out of each average (as TensorFlow).
    """

    def _pool_op(self):
        return _ops.avg_pool2d


class _GlobalPooling2D(Layer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format)
        if not isinstance(keepdims, bool):
            raise TypeError(f"keepdims must be a bool; received keepdims={keepdims!r}")
        self.keepdims = keepdims
        self.built = True

    def _axes(self):
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def _check_input_shape(self, shape):
        _check_rank4(self, shape_tuple(shape))

    def compute_output_shape(self, input_shape):
        shape = shape_tuple(input_shape)
        self._check_input_shape(shape)
        if self.keepdims:
            return tuple(1 if axis in self._axes() else size for axis, size in enumerate(shape))
        channel_axis = 3 if self.data_format == "channels_last" else 1
        return (shape[0], shape[channel_axis])

    def _reduce_op(self):
        raise NotImplementedError

    def call(self, inputs, training=None):
        return self._reduce_op()(inputs, axis=self._axes(), keepdims=self.keepdims)

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return config


class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over the spatial axes, as ``keras.layers.GlobalAveragePooling2D``.

    ``(N, H, W, C)`` -> ``(N, C)``, or ``(N, 1, 1, C)`` with ``keepdims=True``
    (channels_first: ``(N, C, H, W)`` -> ``(N, C)`` or ``(N, C, 1, 1)``).
    """

    def _reduce_op(self):
        return _ops.reduce_mean


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Maximum over the spatial axes, as ``keras.layers.GlobalMaxPooling2D``."""

    def _reduce_op(self):
        return _ops.reduce_max
