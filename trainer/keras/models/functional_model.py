"""``Functional``: a model defined by connecting layers from ``tf.keras.Input`` to its outputs."""

from __future__ import annotations

from trainer import nest
from trainer.keras.layers.input_layer import InputLayer
from trainer.keras.models.functional import replay, topological_nodes
from trainer.keras.models.model import Model
from trainer.keras.saving.registration import keras_serializable
from trainer.tensor import Tensor, convert_to_tensor


@keras_serializable("models")
class Functional(Model):
    """A model whose forward pass replays the layer calls recorded between ``inputs`` and ``outputs``."""

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        if "_nodes" in self.__dict__:
            return  # Model.__new__ built this instance already; Python calls __init__ a second time
        Model.__init__(self, name=name, trainable=trainable)
        self._inputs_structure = inputs
        self._outputs_structure = outputs
        self._flat_inputs = nest.flatten(inputs)
        self._flat_outputs = nest.flatten(outputs)
        for tensor in self._flat_inputs:
            history = getattr(tensor, "_keras_history", None)
            if history is None or not isinstance(history.layer, InputLayer):
                raise ValueError(f"Functional model inputs must be tf.keras.Input tensors, got {tensor!r}")
        self._nodes = topological_nodes(self._flat_inputs, self._flat_outputs)
        input_layers = [t._keras_history.layer for t in self._flat_inputs]
        ordered = list(input_layers)
        for node in self._nodes:
            if all(node.layer is not known for known in ordered):
                ordered.append(node.layer)
        for layer in ordered:
            self._tracked_layers.append(layer)
        self.built = True
        self._build_input_shape = nest.map_structure(lambda t: t.shape, inputs)

    @property
    def inputs(self) -> list:
        return list(self._flat_inputs)

    @property
    def outputs(self) -> list:
        return list(self._flat_outputs)

    @property
    def input_names(self) -> list:
        return [t._keras_history.layer.name for t in self._flat_inputs]

    @property
    def output_names(self) -> list:
        return [t._keras_history.layer.name for t in self._flat_outputs]

    def call(self, inputs, training=None):
        flat_values = self._flatten_inputs(inputs)
        results = replay(self._nodes, self._flat_inputs, flat_values, self._flat_outputs, training=training)
        return nest.pack_sequence_as(self._outputs_structure, results)

    def _flatten_inputs(self, inputs) -> list:
        structure = self._inputs_structure
        if isinstance(structure, dict):
            if not isinstance(inputs, dict):
                raise ValueError(f"model '{self.name}' expects a dict of inputs with keys {sorted(structure)}, got {type(inputs).__name__}")
            missing = set(structure) - set(inputs)
            if missing:
                raise ValueError(f"model '{self.name}' is missing inputs {sorted(missing)}")
            values = nest.flatten({key: inputs[key] for key in structure})
        elif isinstance(structure, (list, tuple)):
            values = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
            if isinstance(inputs, dict):
                names = self.input_names
                values = [inputs[name] for name in names]
            if len(values) != len(self._flat_inputs):
                raise ValueError(f"model '{self.name}' expects {len(self._flat_inputs)} inputs, got {len(values)}")
        else:
            values = [inputs]
        checked = []
        for symbolic, value in zip(self._flat_inputs, values):
            tensor = value if isinstance(value, Tensor) else convert_to_tensor(value)
            expected = symbolic.shape
            if not expected.is_compatible_with(tensor.shape):
                layer = symbolic._keras_history.layer
                raise ValueError(
                    f'Input "{layer.name}" of model "{self.name}" is incompatible: expected shape {expected}, '
                    f"but received input with shape {tensor.shape}"
                )
            checked.append(tensor)
        return checked
