"""Core layers: Dense, Activation, Flatten, Dropout, Identity, Lambda."""

from __future__ import annotations

import math

from trainer.keras import activations, constraints, initializers, regularizers
from trainer.keras.layers.base import InputSpec, Layer
from trainer.keras.saving.registration import keras_serializable
from trainer.ops import array_ops, math_ops, nn_ops
from trainer.shapes import TensorShape


@keras_serializable("layers")
class Dense(Layer):
    """Densely connected layer: ``activation(inputs @ kernel + bias)``.

    Args:
        units: dimensionality of the output.
        activation: activation function or its name; ``None`` means linear.
        use_bias: whether to add a bias vector.
        kernel_initializer, bias_initializer: how the weights start (glorot_uniform and zeros).
        kernel_regularizer, bias_regularizer: optional weight penalties.

    Example:
        >>> layer = tf.keras.layers.Dense(128, activation="relu")
        >>> layer(tf.zeros((32, 784))).shape
        TensorShape([32, 128])
    """

    def __init__(
        self,
        units,
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
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"Dense units must be a positive integer, got {units!r}")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape):
        input_dim = TensorShape(input_shape)[-1]
        if input_dim is None:
            raise ValueError(f"Dense '{self.name}' needs a known last input dimension, got input shape {TensorShape(input_shape)}")
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = (
            self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            if self.use_bias
            else None
        )
        self.input_spec = InputSpec(min_ndim=2, axes={-1: input_dim})
        self.built = True

    def call(self, inputs):
        outputs = math_ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            outputs = math_ops.add(outputs, self.bias)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return TensorShape(TensorShape(input_shape).as_list()[:-1] + [self.units])

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _maybe_serialize(regularizers, self.kernel_regularizer),
            "bias_regularizer": _maybe_serialize(regularizers, self.bias_regularizer),
            "activity_regularizer": _maybe_serialize(regularizers, self.activity_regularizer),
            "kernel_constraint": _maybe_serialize(constraints, self.kernel_constraint),
            "bias_constraint": _maybe_serialize(constraints, self.bias_constraint),
        }


def _maybe_serialize(module, obj):
    return None if obj is None else module.serialize(obj)


@keras_serializable("layers")
class Activation(Layer):
    """Applies an activation function, given by name or as a callable."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs):
        return self.activation(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


@keras_serializable("layers")
class Flatten(Layer):
    """Flattens every dimension but the batch: (N, 28, 28) becomes (N, 784)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format == "channels_first":
            raise NotImplementedError("Flatten(data_format='channels_first') is not supported by emberflow; use channels_last")
        self.data_format = data_format or "channels_last"
        self.input_spec = InputSpec(min_ndim=1)

    def call(self, inputs):
        dims = inputs.shape.as_tuple()
        tail = dims[1:]
        if None in tail:
            raise ValueError(f"Flatten '{self.name}' needs known non-batch dimensions, got input shape {inputs.shape}")
        return array_ops.reshape(inputs, (-1, math.prod(tail)))

    def compute_output_shape(self, input_shape):
        dims = TensorShape(input_shape).as_list()
        return TensorShape([dims[0], math.prod(dims[1:])])

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


@keras_serializable("layers")
class Dropout(Layer):
    """Randomly zeroes a fraction ``rate`` of inputs while training, scaling the rest by 1/(1-rate)."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate <= 1:
            raise ValueError(f"Dropout rate must be in [0, 1], got {rate}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed

    def call(self, inputs, training=None):
        if training and self.rate > 0:
            if self.rate == 1:
                return array_ops.zeros_like(inputs)
            return nn_ops.dropout(inputs, self.rate, noise_shape=self.noise_shape)
        return inputs

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed}


@keras_serializable("layers")
class Identity(Layer):
    """Returns its input unchanged."""

    def call(self, inputs):
        return inputs


@keras_serializable("layers")
class Lambda(Layer):
    """Wraps a Python function as a layer. Not serializable to a saved file (that would need code)."""

    def __init__(self, function, output_shape=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        self.function, self.arguments = function, dict(arguments or {})

    def call(self, inputs):
        return self.function(inputs, **self.arguments)

    def get_config(self):
        raise NotImplementedError(
            f"Lambda layer '{self.name}' wraps Python code, which emberflow never serializes; "
            "write a subclassed layer registered with @tf.keras.utils.register_keras_serializable()"
        )
