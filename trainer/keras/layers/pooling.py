"""Pooling layers over NHWC images: MaxPooling2D, AveragePooling2D and their global forms."""

from __future__ import annotations

from trainer.keras.layers.base import InputSpec, Layer
from trainer.keras.layers.conv import normalize_padding, normalize_pair, require_channels_last
from trainer.keras.saving.registration import keras_serializable
from trainer.ops import conv_ops, math_ops
from trainer.shapes import TensorShape


class _Pooling2D(Layer):
    """What the windowed pooling layers share: pool size, strides (default: the pool size) and padding."""

    _pool = None  # the tf.nn function that pools: conv_ops.max_pool2d or conv_ops.avg_pool2d

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        layer = type(self).__name__
        self.pool_size = normalize_pair(pool_size, "pool_size", layer)
        self.strides = self.pool_size if strides is None else normalize_pair(strides, "strides", layer)
        self.padding = normalize_padding(padding, layer)
        self.data_format = require_channels_last(data_format, layer)
        self.input_spec = InputSpec(ndim=4)

    def call(self, inputs):
        return self._pool(inputs, self.pool_size, self.strides, self.padding.upper())

    def compute_output_shape(self, input_shape):
        dims = TensorShape(input_shape).as_list()
        rows, cols = (
            conv_ops.conv_output_size(size, pool, stride, 1, self.padding)
            for size, pool, stride in zip(dims[1:3], self.pool_size, self.strides)
        )
        return TensorShape([dims[0], rows, cols, dims[3]])

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "padding": self.padding,
            "strides": self.strides,
            "data_format": self.data_format,
        }


@keras_serializable("layers")
class MaxPooling2D(_Pooling2D):
    """Max pooling over NHWC images: the maximum of each ``pool_size`` window.

    Args:
        pool_size: the window's height and width (an int for both); default (2, 2).
        strides: the step between windows; None (the default) means ``pool_size``.
        padding: "valid" or "same" (case-insensitive).
        data_format: "channels_last" (or None); "channels_first" is not supported.

    Example:
        >>> tf.keras.layers.MaxPooling2D()(tf.zeros((8, 26, 26, 32))).shape
        TensorShape([8, 13, 13, 32])
    """

    _pool = staticmethod(conv_ops.max_pool2d)


@keras_serializable("layers")
class AveragePooling2D(_Pooling2D):
    """Average pooling over NHWC images; with "same" padding, only real pixels are averaged (as Keras).

    Args:
        pool_size, strides, padding, data_format: as for MaxPooling2D.

    Example:
        >>> tf.keras.layers.AveragePooling2D(3, strides=1, padding="same")(tf.zeros((8, 5, 5, 4))).shape
        TensorShape([8, 5, 5, 4])
    """

    _pool = staticmethod(conv_ops.avg_pool2d)


class _GlobalPooling2D(Layer):
    """What the global pooling layers share: reduce over height and width, optionally keeping them."""

    _reduce = None  # math_ops.reduce_max or math_ops.reduce_mean

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = require_channels_last(data_format, type(self).__name__)
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=4)

    def call(self, inputs):
        return self._reduce(inputs, axis=(1, 2), keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        dims = TensorShape(input_shape).as_list()
        return TensorShape([dims[0], 1, 1, dims[3]] if self.keepdims else [dims[0], dims[3]])

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


@keras_serializable("layers")
class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean over height and width of NHWC images: (N, H, W, C) becomes (N, C), or (N, 1, 1, C) with keepdims.

    Example:
        >>> tf.keras.layers.GlobalAveragePooling2D()(tf.zeros((8, 7, 7, 64))).shape
        TensorShape([8, 64])
    """

    _reduce = staticmethod(math_ops.reduce_mean)


@keras_serializable("layers")
class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum over height and width of NHWC images: (N, H, W, C) becomes (N, C), or (N, 1, 1, C) with keepdims.

    Example:
        >>> tf.keras.layers.GlobalMaxPooling2D(keepdims=True)(tf.zeros((8, 7, 7, 64))).shape
        TensorShape([8, 1, 1, 64])
    """

    _reduce = staticmethod(math_ops.reduce_max)


# The short names Keras also exports for the same classes.
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
