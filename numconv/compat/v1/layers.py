"""``tf.compat.v1.layers``: the TF1-style Conv2D over numconv.layers.Conv2D."""

import warnings

from ...layers import conv as _conv


class Conv2D(_conv.Conv2D):
    """2-D convolution layer with TF1's signature, as ``tf.compat.v1.layers.Conv2D``.

    Same computation as :class:`numconv.layers.Conv2D`; differences are the
    defaults: ``data_format="channels_last"`` (not read from the config),
    ``kernel_initializer=None`` meaning glorot_uniform and
    ``bias_initializer=None`` meaning zeros.  ``trainable`` and ``name`` are
    explicit arguments.

    Attributes
    ----------
    scope_name : str
        The layer's variable scope name (its name).
    graph : None
        Deprecated; reading it warns with DeprecationWarning.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format="channels_last",
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        kernel_initializer=None,
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        trainable=True,
        name=None,
        **kwargs,
    ):
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=(
                "glorot_uniform" if kernel_initializer is None else kernel_initializer
            ),
            bias_initializer="zeros" if bias_initializer is None else bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            trainable=trainable,
            name=name,
            **kwargs,
        )

    @property
    def scope_name(self):
        return self.name

    @property
    def graph(self):
        warnings.warn(
            "Conv2D.graph is deprecated and always None: "
            "tf.layers layers no longer track their graph",
            DeprecationWarning,
            stacklevel=2,
        )
        return None


Convolution2D = Conv2D


def conv2d(
    inputs,
    filters,
    kernel_size,
    strides=(1, 1),
    padding="valid",
    data_format="channels_last",
    dilation_rate=(1, 1),
    activation=None,
    use_bias=True,
    kernel_initializer=None,
    bias_initializer="zeros",
    kernel_regularizer=None,
    bias_regularizer=None,
    activity_regularizer=None,
    kernel_constraint=None,
    bias_constraint=None,
    trainable=True,
    name=None,
):
    """Functional form, as ``tf.compat.v1.layers.conv2d``: build a Conv2D and apply it.

    Returns the output Tensor; the layer (and its weights) is not returned,
    as in TF1 outside a graph collection.
    """
    layer = Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        data_format=data_format,
        dilation_rate=dilation_rate,
        activation=activation,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer,
        kernel_regularizer=kernel_regularizer,
        bias_regularizer=bias_regularizer,
        activity_regularizer=activity_regularizer,
        kernel_constraint=kernel_constraint,
        bias_constraint=bias_constraint,
        trainable=trainable,
        name=name,
    )
    return layer(inputs)
