"""Conv2D: the Keras 2-D convolution layer (alias Convolution2D)."""

from .. import _arguments
from .. import config as _config
from .. import ops as _ops
from .base import shape_tuple
from .kernel_layer import KernelLayer, fold_leading_axes, unfold_leading_axes


def _check_padding(padding):
    if isinstance(padding, str) and padding.lower() == "causal":
        raise ValueError(
            'padding="causal" is only supported by 1-D convolutions; '
            f"Conv2D accepts \"valid\", \"same\" or explicit sizes; received padding={padding!r}"
        )
    return _arguments.normalize_padding(padding)


class Conv2D(KernelLayer):
    """2-D convolution layer, as ``keras.layers.Conv2D``.

    Computes ``activation(conv2d(inputs, kernel) + bias)`` (cross-correlation).

    Parameters
    ----------
    filters : int
        Number of output channels.
    kernel_size, strides, dilation_rate : int or pair of ints
        ``strides > 1`` together with ``dilation_rate > 1`` is refused.
    padding : "valid", "same" (TensorFlow's asymmetric "same") or explicit
        ``((top, bottom), (left, right))``.
    data_format : "channels_last", "channels_first" or None
        None means ``numconv.config.image_data_format()``.
    groups : int
        Input channels and ``filters`` must both be divisible by it.
    activation, use_bias, kernel_initializer, bias_initializer,
    kernel_regularizer, bias_regularizer, activity_regularizer,
    kernel_constraint, bias_constraint
        As in Keras; identifiers are resolved by the numconv registries.
    **kwargs
        ``name``, ``trainable``, ``dtype``, ``input_shape``.

    Shapes
    ------
    Input ``batch_shape + (rows, cols, channels)`` (channels_last) or
    ``batch_shape + (channels, rows, cols)`` (channels_first), with one or
    more batch axes.  Kernel ``(KH, KW, channels // groups, filters)``, bias
    ``(filters,)``.

    Raises
    ------
    ValueError or TypeError
        For an invalid argument, naming it and the value received; at build
        or call, for inputs of rank < 4, an unknown or mismatched channel
        count, or a window larger than the (padded) input.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = _arguments.check_positive_int(filters, "filters")
        self.groups = _arguments.check_positive_int(groups, "groups")
        if self.filters % self.groups != 0:
            raise ValueError(
                "filters must be divisible by groups; "
                f"received filters={self.filters} and groups={self.groups}"
            )
        self.kernel_size = _arguments.normalize_tuple(kernel_size, 2, "kernel_size")
        self.strides = _arguments.normalize_tuple(strides, 2, "strides")
        self.dilation_rate = _arguments.normalize_tuple(dilation_rate, 2, "dilation_rate")
        _arguments.check_strides_and_dilation(self.strides, self.dilation_rate)
        self.padding = _check_padding(padding)
        self.data_format = _arguments.normalize_data_format(
            _config.image_data_format() if data_format is None else data_format
        )
        self._set_kernel_options(activation, use_bias, kernel_initializer, bias_initializer,
                                 kernel_regularizer, bias_regularizer, kernel_constraint,
                                 bias_constraint)
        self._build_at_construction()

    # -- shapes -----------------------------------------------------------------------
    def _channel_axis(self, rank):
        return rank - 1 if self.data_format == "channels_last" else rank - 3

    def _spatial_axes(self, rank):
        return (rank - 3, rank - 2) if self.data_format == "channels_last" else (rank - 2, rank - 1)

    def _check_input_shape(self, shape):
        shape = shape_tuple(shape)
        if len(shape) < 4:
            raise ValueError(
                f"layer {self.name!r} expects inputs with at least 4 dimensions "
                f"(batch, rows, cols, channels) or (batch, channels, rows, cols); "
                f"received inputs with shape {shape}"
            )
        channels = shape[self._channel_axis(len(shape))]
        if channels is None:
            raise ValueError(
                f"the channel dimension of the inputs of layer {self.name!r} must be known "
                f"(data_format={self.data_format!r}); received input shape {shape}"
            )
        if self.built:
            expected = self._kernel.shape[2] * self.groups
            if channels != expected:
                raise ValueError(
                    f"layer {self.name!r} was built for inputs with {expected} channels "
                    f"(input shape {self._build_input_shape}, data_format={self.data_format!r}); "
                    f"received input shape {shape} with {channels} channels"
                )
        elif channels % self.groups != 0:
            raise ValueError(
                f"the number of input channels must be divisible by groups; received groups="
                f"{self.groups} and inputs with {channels} channels (input shape {shape})"
            )
        self._output_spatial_shape(shape)

    def _output_spatial_shape(self, shape):
        """(out_rows, out_cols), None where the input size is unknown; ValueError if <= 0."""
        rows_axis, cols_axis = self._spatial_axes(len(shape))
        spatial = (shape[rows_axis], shape[cols_axis])
        known = tuple(1 if size is None else size for size in spatial)
        _, outs = _arguments.resolve_padding(
            self.padding, known, self.kernel_size, self.strides, self.dilation_rate
        )
        for size, out in zip(spatial, outs):
            if size is not None and out <= 0:
                raise ValueError(
                    f"the output of layer {self.name!r} would be empty: input shape {shape} with "
                    f"kernel_size={self.kernel_size}, dilation_rate={self.dilation_rate}, "
                    f"strides={self.strides} and padding={self.padding!r} gives output rows and "
                    f"cols {tuple(o if s is not None else None for s, o in zip(spatial, outs))}"
                )
        return tuple(None if size is None else out for size, out in zip(spatial, outs))

    def compute_output_shape(self, input_shape):
        """``batch_shape + (new_rows, new_cols, filters)`` (or channels_first order)."""
        shape = shape_tuple(input_shape)
        if len(shape) < 4:
            raise ValueError(
                f"layer {self.name!r} expects inputs with at least 4 dimensions; "
                f"received input_shape={shape}"
            )
        out_rows, out_cols = self._output_spatial_shape(shape)
        batch = shape[:-3]
        if self.data_format == "channels_last":
            return batch + (out_rows, out_cols, self.filters)
        return batch + (self.filters, out_rows, out_cols)

    # -- build and call ----------------------------------------------------------------
    def build(self, input_shape):
        shape = shape_tuple(input_shape)
        channels = shape[self._channel_axis(len(shape))]
        self._add_kernel_and_bias(self.kernel_size + (channels // self.groups, self.filters),
                                  self.filters)

    def call(self, inputs, training=None):
        # The batch axes are folded into one so the op only ever sees 4-D arrays.
        folded, batch_shape = fold_leading_axes(inputs, 3)
        outputs = _ops.conv2d(
            folded,
            self._kernel,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
            groups=self.groups,
        )
        if self.use_bias:
            outputs = _ops.bias_add(outputs, self._bias, data_format=self.data_format)
        return self._activate(unfold_leading_axes(outputs, batch_shape))

    # -- config -----------------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
                "groups": self.groups,
                **self._kernel_options_config(),
            }
        )
        return config


Convolution2D = Conv2D
