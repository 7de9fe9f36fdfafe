"""Activation layers with parameters: ReLU, LeakyReLU, Softmax, ELU and PReLU."""

from __future__ import annotations

import warnings

from trainer.keras import constraints, initializers, regularizers
from trainer.keras.layers.base import InputSpec, Layer
from trainer.keras.saving.registration import keras_serializable
from trainer.ops import array_ops, math_ops, nn_ops
from trainer.shapes import TensorShape


class _Elementwise(Layer):
    """An activation layer: the output has the input's shape."""

    def compute_output_shape(self, input_shape):
        return TensorShape(input_shape)


@keras_serializable("layers")
class ReLU(_Elementwise):
    """Rectified linear unit with an optional cap, leak and threshold.

    ``f(x) = min(x, max_value)`` for ``x > threshold`` and ``negative_slope * (x - threshold)``
    otherwise (Keras 3's definition).

    Args:
        max_value: the largest output (``None``: no cap).
        negative_slope: the slope below the threshold.
        threshold: inputs at or below it are not passed through.

    Example:
        >>> tf.keras.layers.ReLU(max_value=1.0)(tf.constant([-2.0, 0.5, 3.0])).numpy()
        array([0. , 0.5, 1. ], dtype=float32)
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0.0:
            raise ValueError(f"max_value of a ReLU layer cannot be a negative value. Received: max_value={max_value}")
        if negative_slope is None or negative_slope < 0.0:
            raise ValueError(
                f"negative_slope of a ReLU layer cannot be a negative value. Received: negative_slope={negative_slope}"
            )
        if threshold is None or threshold < 0.0:
            raise ValueError(f"threshold of a ReLU layer cannot be a negative value. Received: threshold={threshold}")
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)

    def call(self, inputs):
        # The common cases map to single ops, which export as single lite/ONNX operators.
        if self.threshold == 0.0 and self.negative_slope == 0.0:
            if self.max_value is None:
                return nn_ops.relu(inputs)
            if self.max_value == 6.0:
                return nn_ops.relu6(inputs)
            return math_ops.minimum(nn_ops.relu(inputs), self.max_value)
        if self.threshold == 0.0 and self.max_value is None:
            return nn_ops.leaky_relu(inputs, self.negative_slope)
        passed = inputs if self.max_value is None else math_ops.minimum(inputs, self.max_value)
        if self.negative_slope == 0.0:
            below = array_ops.zeros_like(inputs)
        else:
            below = math_ops.multiply(math_ops.subtract(inputs, self.threshold), self.negative_slope)
        return array_ops.where(math_ops.greater(inputs, self.threshold), passed, below)

    def get_config(self):
        return {
            **super().get_config(),
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }


@keras_serializable("layers")
class LeakyReLU(_Elementwise):
    """Leaky ReLU: ``x`` for ``x >= 0`` and ``negative_slope * x`` below.

    Args:
        negative_slope: the slope for negative inputs (Keras 3's default 0.3). The Keras 2 name
            ``alpha=`` is accepted too, with a deprecation warning.

    Example:
        >>> tf.keras.layers.LeakyReLU()(tf.constant([-10.0, 5.0])).numpy()
        array([-3.,  5.], dtype=float32)
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn(
                "Argument `alpha` of LeakyReLU is deprecated. Use `negative_slope` instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        super().__init__(**kwargs)
        if negative_slope is None or negative_slope < 0:
            raise ValueError(
                "The negative_slope value of a Leaky ReLU layer cannot be None or a negative value. "
                f"Expected a float. Received: negative_slope={negative_slope}"
            )
        self.negative_slope = float(negative_slope)

    def call(self, inputs):
        return nn_ops.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@keras_serializable("layers")
class Softmax(_Elementwise):
    """Softmax over ``axis``; positions where ``mask`` is False get (practically) zero probability.

    Args:
        axis: the axis, or a tuple of axes, that the probabilities sum to 1 over.

    Call arguments:
        inputs: the logits.
        mask: optional booleans broadcastable to ``inputs``; False marks positions to ignore.

    Example:
        >>> tf.keras.layers.Softmax()(tf.constant([[0.0, 0.0]])).numpy()
        array([[0.5, 0.5]], dtype=float32)
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = tuple(int(a) for a in axis) if isinstance(axis, (list, tuple)) else int(axis)

    def call(self, inputs, mask=None):
        if mask is not None:
            large_negative = -3e4 if inputs.dtype.name == "float16" else -1e9
            keep = math_ops.cast(mask, inputs.dtype)
            inputs = math_ops.add(inputs, math_ops.multiply(math_ops.subtract(1.0, keep), large_negative))
        if isinstance(self.axis, tuple) and len(self.axis) > 1:
            outputs = math_ops.exp(
                math_ops.subtract(inputs, math_ops.reduce_logsumexp(inputs, self.axis, keepdims=True))
            )
        else:
            outputs = nn_ops.softmax(inputs, self.axis[0] if isinstance(self.axis, tuple) else self.axis)
        return outputs if mask is None else math_ops.multiply(outputs, keep)

    def get_config(self):
        return {**super().get_config(), "axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis}


@keras_serializable("layers")
class ELU(_Elementwise):
    """Exponential linear unit: ``x`` for ``x > 0`` and ``alpha * (exp(x) - 1)`` below.

    Args:
        alpha: the value the output approaches for very negative inputs is ``-alpha``.

    Example:
        >>> tf.keras.layers.ELU()(tf.constant([0.0, 2.0])).numpy()
        array([0., 2.], dtype=float32)
    """

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def call(self, inputs):
        # exp of min(x, 0): exp(x) of a large positive x would overflow, and its (masked-out)
        # gradient would turn 0 * inf into NaN.
        negative_part = math_ops.subtract(math_ops.exp(math_ops.minimum(inputs, 0.0)), 1.0)
        return array_ops.where(math_ops.greater(inputs, 0.0), inputs, math_ops.multiply(negative_part, self.alpha))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@keras_serializable("layers")
class PReLU(_Elementwise):
    """Parametric ReLU: ``x`` for ``x >= 0`` and ``alpha * x`` below, with ``alpha`` learned.

    Args:
        alpha_initializer: how ``alpha`` starts (zeros: a plain ReLU).
        alpha_regularizer, alpha_constraint: optional penalty and constraint for ``alpha``.
        shared_axes: axes (1-based, not the batch) along which one ``alpha`` is shared, e.g.
            ``[1, 2]`` for one slope per channel of NHWC images.

    Example:
        >>> layer = tf.keras.layers.PReLU(shared_axes=[1, 2])
        >>> layer(tf.zeros((1, 8, 8, 3))).shape, tuple(layer.alpha.shape)
        (TensorShape([1, 8, 8, 3]), (1, 1, 3))
    """

    def __init__(
        self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None, shared_axes=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            self.shared_axes = [int(shared_axes)] if isinstance(shared_axes, int) else [int(a) for a in shared_axes]

    def build(self, input_shape):
        dims = TensorShape(input_shape).as_list()
        shared = set(self.shared_axes or [])
        if any(not 1 <= a < len(dims) for a in shared):
            raise ValueError(
                f"PReLU '{self.name}': shared_axes must lie in [1, {len(dims) - 1}] for input shape {TensorShape(dims)}, got {self.shared_axes}"
            )
        param_shape = [1 if i in shared else dims[i] for i in range(1, len(dims))]
        if None in param_shape:
            raise ValueError(
                f"PReLU '{self.name}' needs known sizes on the axes it does not share, got input shape {TensorShape(dims)}"
            )
        self.alpha = self.add_weight(
            name="alpha",
            shape=param_shape,
            initializer=self.alpha_initializer,
            regularizer=self.alpha_regularizer,
            constraint=self.alpha_constraint,
        )
        self.input_spec = InputSpec(ndim=len(dims), axes={i: dims[i] for i in range(1, len(dims)) if i not in shared})
        self.built = True

    def call(self, inputs):
        negative = math_ops.multiply(self.alpha, nn_ops.relu(math_ops.negative(inputs)))
        return math_ops.subtract(nn_ops.relu(inputs), negative)

    def get_config(self):
        return {
            **super().get_config(),
            "alpha_initializer": initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": None
            if self.alpha_regularizer is None
            else regularizers.serialize(self.alpha_regularizer),
            "alpha_constraint": None if self.alpha_constraint is None else constraints.serialize(self.alpha_constraint),
            "shared_axes": self.shared_axes,
        }
