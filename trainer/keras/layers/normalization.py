"""Normalization layers: BatchNormalization and LayerNormalization, composed from ops."""

from __future__ import annotations

from trainer.keras import constraints, initializers, regularizers
from trainer.keras.layers.base import InputSpec, Layer
from trainer.keras.saving.registration import keras_serializable
from trainer.ops import array_ops, fused_ops, math_ops
from trainer.shapes import TensorShape


def _maybe_serialize(module, obj):
    return None if obj is None else module.serialize(obj)


def _normalize(inputs, mean, variance, gamma, beta, epsilon):
    """``(inputs - mean) / sqrt(variance + epsilon) * gamma + beta``; ``gamma``/``beta`` may be ``None``."""
    scale = math_ops.rsqrt(math_ops.add(variance, epsilon))
    if gamma is not None:
        scale = math_ops.multiply(scale, gamma)
    outputs = math_ops.multiply(math_ops.subtract(inputs, mean), scale)
    return outputs if beta is None else math_ops.add(outputs, beta)


def _moments(inputs, axes):
    """Mean and biased variance over ``axes``, both with the reduced axes kept (size 1)."""
    mean = math_ops.reduce_mean(inputs, axes, keepdims=True)
    variance = math_ops.reduce_mean(math_ops.square(math_ops.subtract(inputs, mean)), axes, keepdims=True)
    return mean, variance


def _check_axis(layer, axis: int, input_shape) -> int:
    rank = len(input_shape)
    if not -rank <= axis < rank:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': axis {axis} is out of range for input shape {TensorShape(input_shape)}"
        )
    axis %= rank
    if input_shape[axis] is None:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': axis {axis} of the input must have a known size, "
            f"got input shape {TensorShape(input_shape)}"
        )
    return axis


@keras_serializable("layers")
class BatchNormalization(Layer):
    """Normalizes each feature over the batch: batch statistics while training, moving ones otherwise.

    With ``training=True`` (and ``trainable``), the output is ``(x - mean) / sqrt(var + epsilon) *
    gamma + beta`` with the batch's mean and biased variance, and the moving statistics become
    ``moving * momentum + batch * (1 - momentum)``. Otherwise the moving statistics are used. As in
    Keras 3, a layer with ``trainable=False`` always runs in inference mode.

    Args:
        axis: the feature axis (usually the channels, -1).
        momentum: the weight of the old value in the moving statistics.
        epsilon: added to the variance so that it is never divided by zero.
        center, scale: whether to learn the offset ``beta`` and the factor ``gamma``.
        beta_initializer, gamma_initializer, moving_mean_initializer, moving_variance_initializer:
            how the four weights start.
        beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint: optional penalties
            and constraints for the learned weights.

    Example:
        >>> layer = tf.keras.layers.BatchNormalization()
        >>> layer(tf.ones((8, 3)), training=True).shape
        TensorShape([8, 3])
        >>> [w.name for w in layer.weights]
        ['batch_normalization/gamma:0', 'batch_normalization/beta:0', 'batch_normalization/moving_mean:0', 'batch_normalization/moving_variance:0']
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            raise ValueError(f"BatchNormalization takes a single integer axis (as Keras 3), got axis={axis!r}")
        if synchronized:
            raise NotImplementedError(
                "BatchNormalization(synchronized=True) is not supported by emberflow (it trains on one device); use synchronized=False"
            )
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.gamma = self.beta = None

    def build(self, input_shape):
        input_shape = TensorShape(input_shape).as_list()
        axis = _check_axis(self, self.axis, input_shape)
        shape = (input_shape[axis],)
        if self.scale:
            self.gamma = self.add_weight(
                name="gamma",
                shape=shape,
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
            )
        if self.center:
            self.beta = self.add_weight(
                name="beta",
                shape=shape,
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
            )
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=shape, initializer=self.moving_mean_initializer, trainable=False
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=shape, initializer=self.moving_variance_initializer, trainable=False
        )
        self.input_spec = InputSpec(ndim=len(input_shape), axes={axis: input_shape[axis]})
        self._reduction_axes = tuple(i for i in range(len(input_shape)) if i != axis)
        # The per-feature weights broadcast against the input once the feature axis is in place.
        self._broadcast_shape = (
            None
            if axis == len(input_shape) - 1
            else tuple(input_shape[axis] if i == axis else 1 for i in range(len(input_shape)))
        )
        self.built = True

    def _broadcast(self, weight):
        if weight is None or self._broadcast_shape is None:
            return weight
        return array_ops.reshape(weight, self._broadcast_shape)

    def call(self, inputs, training=None):
        gamma, beta = self._broadcast(self.gamma), self._broadcast(self.beta)
        if training and self.trainable:
            mean, variance = _moments(inputs, self._reduction_axes)
            self._update_moving(self.moving_mean, mean)
            self._update_moving(self.moving_variance, variance)
        else:
            mean, variance = self._broadcast(self.moving_mean), self._broadcast(self.moving_variance)
            # One op with the same numbers, which the graph optimizer folds into a preceding conv or matmul.
            return fused_ops.batch_normalization(inputs, mean, variance, beta, gamma, self.epsilon)
        return _normalize(inputs, mean, variance, gamma, beta, self.epsilon)

    def _update_moving(self, moving, batch_value):
        batch_value = array_ops.reshape(batch_value, tuple(moving.shape.as_list()))
        updated = math_ops.add(
            math_ops.multiply(moving, self.momentum), math_ops.multiply(batch_value, 1.0 - self.momentum)
        )
        moving.assign(updated)

    def compute_output_shape(self, input_shape):
        return TensorShape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
            "beta_regularizer": _maybe_serialize(regularizers, self.beta_regularizer),
            "gamma_regularizer": _maybe_serialize(regularizers, self.gamma_regularizer),
            "beta_constraint": _maybe_serialize(constraints, self.beta_constraint),
            "gamma_constraint": _maybe_serialize(constraints, self.gamma_constraint),
            "synchronized": False,
        }


@keras_serializable("layers")
class LayerNormalization(Layer):
    """Normalizes each sample over its feature axes (independent of the batch, same in training and inference).

    Args:
        axis: the axis or list of axes to normalize over (-1: the last).
        epsilon: added to the variance so that it is never divided by zero.
        center, scale: whether to learn the offset ``beta`` and the factor ``gamma``.
        rms_scaling: divide by the root mean square instead (no centering; ``center`` and ``beta``
            are not used), as Keras 3's RMS normalization.
        beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer, beta_constraint,
            gamma_constraint: how the learned weights start, are penalized and constrained.

    Example:
        >>> layer = tf.keras.layers.LayerNormalization()
        >>> layer(tf.constant([[1.0, 2.0, 3.0]])).numpy().round(3)
        array([[-1.224,  0.   ,  1.224]], dtype=float32)
    """

    def __init__(
        self,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        rms_scaling=False,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            if not axis:
                raise ValueError("LayerNormalization needs at least one axis, got axis=[]")
            self.axis = [int(a) for a in axis]
        else:
            self.axis = int(axis)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.rms_scaling = bool(rms_scaling)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.gamma = self.beta = None

    def build(self, input_shape):
        input_shape = TensorShape(input_shape).as_list()
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        axes = sorted({_check_axis(self, a, input_shape) for a in axes})
        shape = tuple(input_shape[a] for a in axes)
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight(
                name="gamma",
                shape=shape,
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
            )
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight(
                name="beta",
                shape=shape,
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
            )
        self._axes = tuple(axes)
        trailing = axes == list(range(len(input_shape) - len(axes), len(input_shape)))
        self._broadcast_shape = (
            None if trailing else tuple(input_shape[i] if i in axes else 1 for i in range(len(input_shape)))
        )
        self.built = True

    def _broadcast(self, weight):
        if weight is None or self._broadcast_shape is None:
            return weight
        return array_ops.reshape(weight, self._broadcast_shape)

    def call(self, inputs):
        gamma, beta = self._broadcast(self.gamma), self._broadcast(self.beta)
        if self.rms_scaling:
            mean_square = math_ops.reduce_mean(math_ops.square(inputs), self._axes, keepdims=True)
            outputs = math_ops.multiply(inputs, math_ops.rsqrt(math_ops.add(mean_square, self.epsilon)))
            return outputs if gamma is None else math_ops.multiply(outputs, gamma)
        mean, variance = _moments(inputs, self._axes)
        return _normalize(inputs, mean, variance, gamma, beta, self.epsilon)

    def compute_output_shape(self, input_shape):
        return TensorShape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "rms_scaling": self.rms_scaling,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": _maybe_serialize(regularizers, self.beta_regularizer),
            "gamma_regularizer": _maybe_serialize(regularizers, self.gamma_regularizer),
            "beta_constraint": _maybe_serialize(constraints, self.beta_constraint),
            "gamma_constraint": _maybe_serialize(constraints, self.gamma_constraint),
        }
