"""Convolution layers over NHWC images: Conv2D and DepthwiseConv2D (channels_last only, as the kernels)."""

from __future__ import annotations

import numbers

from trainer.keras import activations, constraints, initializers, regularizers
from trainer.keras.layers.base import InputSpec, Layer
from trainer.keras.layers.core import _maybe_serialize
from trainer.keras.saving.registration import keras_serializable
from trainer.ops import array_ops, conv_ops, math_ops
from trainer.shapes import TensorShape

# -- argument checks shared with the pooling layers ------------------------------------------------------


def normalize_pair(value, argument: str, layer: str) -> tuple:
    """Keras's ``standardize_tuple``: an int, or two positive ints, as a pair of Python ints."""
    if isinstance(value, numbers.Integral):
        values = (value, value)
    else:
        values = tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(values) != 2 or not all(_positive_int(v) for v in values):
        raise ValueError(
            f"{layer}: the `{argument}` argument must be a positive integer or a tuple of 2 positive integers. "
            f"Received {argument}={value!r}"
        )
    return tuple(int(v) for v in values)


def _positive_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def normalize_padding(padding, layer: str) -> str:
    """Keras's padding argument, lowercased: "valid" or "same"."""
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"{layer}: the `padding` argument must be 'valid' or 'same'. Received padding={padding!r}")
    return padding.lower()


def require_channels_last(data_format, layer: str) -> str:
    """Only NHWC is supported; channels_first is refused with a way out rather than run slowly or wrongly."""
    if data_format in (None, "channels_last"):
        return "channels_last"
    if data_format == "channels_first":
        raise NotImplementedError(
            f"{layer}(data_format='channels_first') is not supported by emberflow, whose kernels are NHWC; use "
            "data_format='channels_last' (transpose NCHW images with tf.transpose(x, [0, 2, 3, 1]))"
        )
    raise ValueError(
        f"{layer}: data_format must be 'channels_last' or 'channels_first'. Received data_format={data_format!r}"
    )


def image_channels(layer: Layer, input_shape) -> int:
    """The channel count of a 4-D NHWC input shape; the layer cannot build without it."""
    shape = TensorShape(input_shape)
    if shape.rank != 4 or shape[-1] is None:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' expects 4-D NHWC input with a known number of channels, "
            f"got input shape {shape}"
        )
    return shape[-1]


# -- the layers ----------------------------------------------------------------------------------------------


class _Conv2DBase(Layer):
    """What Conv2D and DepthwiseConv2D share: the window arguments, the bias, the activation, output shapes."""

    def __init__(
        self,
        kernel_size,
        strides,
        padding,
        data_format,
        dilation_rate,
        activation,
        use_bias,
        bias_initializer,
        bias_regularizer,
        activity_regularizer,
        bias_constraint,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        layer = type(self).__name__
        self.kernel_size = normalize_pair(kernel_size, "kernel_size", layer)
        self.strides = normalize_pair(strides, "strides", layer)
        self.dilation_rate = normalize_pair(dilation_rate, "dilation_rate", layer)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{layer}: strides > 1 not supported in conjunction with dilation_rate > 1. Received: "
                f"strides={self.strides} and dilation_rate={self.dilation_rate}"
            )
        self.padding = normalize_padding(padding, layer)
        self.data_format = require_channels_last(data_format, layer)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = initializers.get(bias_initializer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.bias_constraint = constraints.get(bias_constraint)
        self.input_spec = InputSpec(ndim=4)

    def _add_bias(self, channels: int) -> None:
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(channels,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def _window(self) -> dict:
        """The keyword arguments of ``tf.nn.conv2d`` and ``tf.nn.depthwise_conv2d`` for this layer."""
        return {"strides": self.strides, "padding": self.padding.upper(), "dilations": self.dilation_rate}

    def _finish(self, outputs):
        if self.bias is not None:
            outputs = math_ops.add(outputs, self.bias)
        return self.activation(outputs)

    def _output_shape(self, input_shape, channels) -> TensorShape:
        dims = TensorShape(input_shape).as_list()
        rows, cols = (
            conv_ops.conv_output_size(size, kernel, stride, dilation, self.padding)
            for size, kernel, stride, dilation in zip(dims[1:3], self.kernel_size, self.strides, self.dilation_rate)
        )
        return TensorShape([dims[0], rows, cols, channels])

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "bias_regularizer": _maybe_serialize(regularizers, self.bias_regularizer),
            "activity_regularizer": _maybe_serialize(regularizers, self.activity_regularizer),
            "bias_constraint": _maybe_serialize(constraints, self.bias_constraint),
        }


@keras_serializable("layers")
class Conv2D(_Conv2DBase):
    """2-D convolution layer: ``activation(conv2d(inputs, kernel) + bias)`` over NHWC images.

    Args:
        filters: the number of output channels.
        kernel_size: the window's height and width (an int for both).
        strides: the step between windows (an int for both); strides > 1 exclude dilation_rate > 1.
        padding: "valid" (no padding) or "same" (output size ceil(input / stride)), case-insensitive.
        data_format: "channels_last" (or None); "channels_first" is not supported.
        dilation_rate: the spacing between kernel taps (an int for both).
        groups: splits the input channels into this many groups, each with its own filters.
        activation, use_bias, *_initializer, *_regularizer, *_constraint: as for Dense.

    The kernel has shape [kh, kw, in_channels // groups, filters] and the bias [filters], as in Keras.

    Example:
        >>> layer = tf.keras.layers.Conv2D(32, 3, activation="relu")
        >>> layer(tf.zeros((8, 28, 28, 1))).shape
        TensorShape([8, 26, 26, 32])
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
        super().__init__(
            kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
            bias_initializer, bias_regularizer, activity_regularizer, bias_constraint, **kwargs,
        )  # fmt: skip
        for argument, value in (("filters", filters), ("groups", groups)):
            if not _positive_int(value):
                raise ValueError(f"Conv2D: `{argument}` must be a positive integer. Received {argument}={value!r}")
        if filters % groups:
            raise ValueError(
                "Conv2D: the number of filters must be evenly divisible by the number of groups. "
                f"Received: groups={groups}, filters={filters}"
            )
        self.filters, self.groups = filters, groups
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)

    def build(self, input_shape):
        channels = image_channels(self, input_shape)
        if channels % self.groups:
            raise ValueError(
                f"Conv2D '{self.name}': the number of input channels must be evenly divisible by the number of "
                f"groups. Received groups={self.groups}, but the input has {channels} channels (input shape "
                f"{TensorShape(input_shape)})"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self._add_bias(self.filters)
        self.input_spec = InputSpec(ndim=4, axes={-1: channels})
        self.built = True

    def call(self, inputs):
        if self.groups == 1:
            return self._finish(conv_ops.conv2d(inputs, self.kernel, **self._window()))
        # Grouped convolution composed from primitives: one conv2d per group of channels, joined back.
        inputs_per_group, filters_per_group = self.kernel.shape[2], self.filters // self.groups
        outputs = [
            conv_ops.conv2d(
                inputs[..., g * inputs_per_group : (g + 1) * inputs_per_group],
                self.kernel[..., g * filters_per_group : (g + 1) * filters_per_group],
                **self._window(),
            )
            for g in range(self.groups)
        ]
        return self._finish(array_ops.concat(outputs, axis=-1))

    def compute_output_shape(self, input_shape):
        return self._output_shape(input_shape, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "groups": self.groups,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": _maybe_serialize(regularizers, self.kernel_regularizer),
            "kernel_constraint": _maybe_serialize(constraints, self.kernel_constraint),
        }


@keras_serializable("layers")
class DepthwiseConv2D(_Conv2DBase):
    """Depthwise 2-D convolution: each input channel convolved with its own ``depth_multiplier`` filters.

    Args:
        kernel_size, strides, padding, data_format, dilation_rate: as for Conv2D.
        depth_multiplier: output channels per input channel (output has in_channels * depth_multiplier).
        depthwise_initializer, depthwise_regularizer, depthwise_constraint: for the kernel.
        activation, use_bias, bias_*: as for Dense.

    The kernel is named "kernel" (as in Keras 3) with shape [kh, kw, in_channels, depth_multiplier];
    output channel ``c * depth_multiplier + m`` comes from input channel ``c``.

    Example:
        >>> layer = tf.keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")
        >>> layer(tf.zeros((8, 14, 14, 16))).shape
        TensorShape([8, 14, 14, 32])
    """

    def __init__(
        self,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        depth_multiplier=1,
        data_format=None,
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
            bias_initializer, bias_regularizer, activity_regularizer, bias_constraint, **kwargs,
        )  # fmt: skip
        if not _positive_int(depth_multiplier):
            raise ValueError(
                "DepthwiseConv2D: `depth_multiplier` must be a positive integer. "
                f"Received depth_multiplier={depth_multiplier!r}"
            )
        self.depth_multiplier = depth_multiplier
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)

    def build(self, input_shape):
        channels = image_channels(self, input_shape)
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (channels, self.depth_multiplier),
            initializer=self.depthwise_initializer,
            regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
        )
        self._add_bias(channels * self.depth_multiplier)
        self.input_spec = InputSpec(ndim=4, axes={-1: channels})
        self.built = True

    @property
    def depthwise_kernel(self):
        """The kernel under its tf.keras 2 name."""
        return self.kernel

    def call(self, inputs):
        return self._finish(conv_ops.depthwise_conv2d(inputs, self.kernel, **self._window()))

    def compute_output_shape(self, input_shape):
        channels = TensorShape(input_shape)[-1]
        return self._output_shape(input_shape, None if channels is None else channels * self.depth_multiplier)

    def get_config(self):
        return {
            **super().get_config(),
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "depthwise_regularizer": _maybe_serialize(regularizers, self.depthwise_regularizer),
            "depthwise_constraint": _maybe_serialize(constraints, self.depthwise_constraint),
        }
