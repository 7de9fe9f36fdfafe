"""``tf.keras.activations``: activation functions by name, as layers' ``activation=`` arguments take them."""

from __future__ import annotations

from trainer.keras.saving.registration import keras_serializable, lookup
from trainer.ops import math_ops, nn_ops
from trainer.tensor import convert_to_tensor


def _activation(function):
    return keras_serializable("activations")(function)


@_activation
def linear(x):
    return x


@_activation
def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return nn_ops.relu(x)
    if max_value == 6.0 and negative_slope == 0.0 and threshold == 0.0:
        return nn_ops.relu6(x)
    if max_value is None and threshold == 0.0:
        return nn_ops.leaky_relu(x, negative_slope)
    raise NotImplementedError("relu with threshold or a max_value other than 6 is not supported by emberflow")


@_activation
def relu6(x):
    return nn_ops.relu6(x)


@_activation
def leaky_relu(x, negative_slope=0.2):
    return nn_ops.leaky_relu(x, negative_slope)


@_activation
def sigmoid(x):
    """``1 / (1 + exp(-x))``; the output keeps ``x`` as its logits, as Keras 3's does, for binary crossentropy."""
    x = convert_to_tensor(x)
    output = math_ops.sigmoid(x)
    output._keras_logits = x
    return output


@_activation
def tanh(x):
    return math_ops.tanh(x)


@_activation
def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis``. Over the last axis the output keeps ``x`` as its logits, as
    Keras 3's does: a crossentropy loss on it then computes from the logits (log-softmax, no clipping)."""
    x = convert_to_tensor(x)
    output = nn_ops.softmax(x, axis)
    if axis == -1 or axis == len(output.shape) - 1:
        output._keras_logits = x
    return output


@_activation
def log_softmax(x, axis=-1):
    return nn_ops.log_softmax(x, axis)


@_activation
def elu(x, alpha=1.0):
    return nn_ops.elu(x, alpha)


@_activation
def selu(x):
    return nn_ops.selu(x)


@_activation
def softplus(x):
    return nn_ops.softplus(x)


@_activation
def softsign(x):
    return math_ops.divide(x, math_ops.add(math_ops.abs(x), 1))


@_activation
def swish(x):
    return nn_ops.swish(x)




@_activation
def gelu(x, approximate=False):
    return nn_ops.gelu(x, approximate)


@_activation
def hard_sigmoid(x):
    return nn_ops.hard_sigmoid(x)


@_activation
def hard_swish(x):
    return nn_ops.hard_swish(x)


@_activation
def exponential(x):
    return math_ops.exp(x)


_ALIASES = {"silu": "swish", "hard_silu": "hard_swish", None: "linear", "None": "linear"}


def get(identifier):
    """The activation function for a name, a registered function, or ``None`` (linear)."""
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if isinstance(identifier, dict):
        identifier = identifier.get("config", {}).get("name", identifier.get("class_name"))
    if isinstance(identifier, str):
        return lookup("activations", _ALIASES.get(identifier, identifier))
    raise ValueError(f"could not interpret activation {identifier!r}; pass a name such as 'relu' or a callable")


def serialize(activation) -> str:
    name = getattr(activation, "__name__", None)
    if name is None:
        raise ValueError(f"activation {activation!r} has no name and cannot be serialized")
    return name


def deserialize(name, custom_objects=None):
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    return get(name)
