"""``tf.keras.Input`` and ``InputLayer``: the symbolic entry points of a functional model."""

from __future__ import annotations

from trainer import dtypes
from trainer.keras.layers.base import Layer
from trainer.keras.saving.registration import keras_serializable
from trainer.shapes import TensorShape
from trainer.tensor import Tensor


class KerasHistory:
    """Where a symbolic Keras tensor came from: the layer, which of its calls, which output."""

    __slots__ = ("layer", "node_index", "tensor_index")

    def __init__(self, layer, node_index: int, tensor_index: int):
        self.layer, self.node_index, self.tensor_index = layer, node_index, tensor_index

    @property
    def node(self):
        return self.layer._inbound_nodes[self.node_index]


@keras_serializable("layers")
class InputLayer(Layer):
    """The layer behind ``tf.keras.Input``: it holds the model's input placeholder."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, input_shape=None, batch_input_shape=None, sparse=None, ragged=None, **kwargs):
        super().__init__(name=name, dtype=dtype or "float32")
        if sparse or ragged:
            raise NotImplementedError("sparse and ragged inputs are not supported by emberflow")
        shape = shape if shape is not None else input_shape
        batch_shape = batch_shape if batch_shape is not None else batch_input_shape
        if batch_shape is None:
            if shape is None:
                raise ValueError("Input needs shape= (without the batch dimension) or batch_shape=")
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
            batch_shape = (batch_size,) + shape
        self.batch_shape = tuple(TensorShape(batch_shape).as_list())
        self._dtype = dtypes.as_dtype(dtype or "float32")
        self.built = True
        tensor = Tensor.symbolic(self.batch_shape, self._dtype)
        tensor._keras_history = KerasHistory(self, 0, 0)
        from trainer.keras.models.functional import Node  # noqa: PLC0415

        self._inbound_nodes.append(Node(self, (), (), {}, input_tensors=[], output_tensors=tensor))
        self.output_tensor = tensor

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self._dtype.name, "name": self.name}


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, tensor=None, sparse=None, ragged=None):  # noqa: N802 - Keras name
    """A symbolic input for the functional API: ``x = tf.keras.Input(shape=(28, 28))``.

    ``shape`` excludes the batch dimension; ``None`` entries are unknown sizes.
    """
    if tensor is not None:
        raise NotImplementedError("Input(tensor=...) is not supported by emberflow")
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name, sparse=sparse, ragged=ragged)
    return layer.output_tensor
