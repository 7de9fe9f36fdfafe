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

    def get_config(self) -> dict:
        """Keras's functional config: every layer with the calls that feed it, and the model's input and output tensors.

        A tensor is written as ``[layer name, node index, tensor index]``: the layer that made it, which of
        that layer's calls within this model, and which of the call's flat outputs.
        """
        from trainer.keras.saving.registration import serialize  # noqa: PLC0415

        layers = [t._keras_history.layer for t in self._flat_inputs]
        for node in self._nodes:
            if all(node.layer is not known for known in layers):
                layers.append(node.layer)
        names = [layer.name for layer in layers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"functional model '{self.name}' has several layers named {duplicates}; a config needs unique layer names")
        # Node indices count this model's calls only: a layer may also have been called outside it.
        node_indices = {id(t._keras_history.node): 0 for t in self._flat_inputs}
        calls: dict[int, int] = {}
        for node in self._nodes:
            node_indices[id(node)] = calls.get(id(node.layer), 0)
            calls[id(node.layer)] = node_indices[id(node)] + 1

        def history(tensor) -> list:
            return [tensor._keras_history.layer.name, node_indices[id(tensor._keras_history.node)], tensor._keras_history.tensor_index]

        def encode(value):
            if isinstance(value, Tensor):
                if value._keras_history is None:
                    raise ValueError(f"functional model '{self.name}': a layer was called with a constant tensor, which a config cannot hold")
                return {"class_name": "__keras_tensor__", "config": {"shape": value.shape.as_list(), "dtype": value.dtype.name, "keras_history": history(value)}}
            if isinstance(value, (list, tuple)):
                return [encode(item) for item in value]
            if isinstance(value, dict):
                return {str(key): encode(item) for key, item in value.items()}
            if value is None or isinstance(value, (bool, int, float, str)):
                return value
            raise ValueError(f"functional model '{self.name}': a layer was called with a {type(value).__name__} argument, which a config cannot hold")

        layer_configs = []
        for layer in layers:
            nodes = [node for node in self._nodes if node.layer is layer]
            inbound = [{"args": encode([node.inputs, *node.args]), "kwargs": encode(node.kwargs)} for node in nodes]
            layer_configs.append({**serialize(layer), "name": layer.name, "inbound_nodes": inbound})
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": layer_configs,
            "input_layers": nest.map_structure(history, self._inputs_structure),
            "output_layers": nest.map_structure(history, self._outputs_structure),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuilds the model from ``get_config``'s output: creates each layer, then replays the saved calls on new Inputs."""
        from trainer.keras.saving.object_config import deserialize_layer  # noqa: PLC0415

        if not isinstance(config.get("layers"), list):
            raise TypeError("a functional model config needs a 'layers' list")
        produced: dict[tuple, list] = {}  # (layer name, node index) -> the call's flat outputs
        pending = []  # [layer, name, saved calls not replayed yet, calls replayed so far]
        for layer_config in config["layers"]:
            if not isinstance(layer_config, dict) or not isinstance(layer_config.get("name"), str) or not isinstance(layer_config.get("inbound_nodes", []), list):
                raise TypeError(f"a functional layer entry needs a 'name' and an 'inbound_nodes' list, got {str(layer_config)[:200]}")
            name = layer_config["name"]
            if any(name == entry[1] for entry in pending):
                raise ValueError(f"a functional model config names two layers {name!r}")
            layer = deserialize_layer(layer_config, custom_objects)
            if isinstance(layer, InputLayer):
                produced[(name, 0)] = [layer.output_tensor]
            pending.append([layer, name, list(layer_config.get("inbound_nodes", [])), 0])
        # As Keras does: sweep the layers until no saved call is left whose inputs all exist yet; a
        # layer's calls are replayed in their saved order, so their node indices come out the same.
        progress = True
        while progress:
            progress = False
            for entry in pending:
                layer, name, calls, done = entry
                while calls and _inputs_ready(calls[0], produced):
                    call = calls.pop(0)
                    if not isinstance(call, dict) or not isinstance(call.get("args"), list) or not call["args"] or not isinstance(call.get("kwargs", {}), dict):
                        raise TypeError(f"layer {name!r}: a saved call needs a non-empty 'args' list and a 'kwargs' dict")
                    args = _decode_call(call["args"], produced)
                    kwargs = _decode_call(call.get("kwargs", {}), produced)
                    produced[(name, done)] = nest.flatten(layer(args[0], *args[1:], **kwargs))
                    done = entry[3] = done + 1
                    progress = True
        stuck = [entry[1] for entry in pending if entry[2]]
        if stuck:
            raise ValueError(f"functional model config: the calls of layer(s) {stuck} use tensors that no layer produces")
        inputs = _decode_structure(config.get("input_layers"), produced)
        outputs = _decode_structure(config.get("output_layers"), produced)
        return cls(inputs, outputs, name=config.get("name"), trainable=config.get("trainable", True))

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


def _saved_histories(value) -> list:
    """The ``[layer name, node index, tensor index]`` of every saved tensor inside a call's arguments."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        history = (value.get("config") or {}).get("keras_history")
        if not (isinstance(history, list) and len(history) == 3 and isinstance(history[0], str) and all(type(i) is int for i in history[1:])):
            raise ValueError(f"a saved tensor needs keras_history [layer name, node index, tensor index], got {history!r}")
        return [history]
    if isinstance(value, dict):
        return [h for item in value.values() for h in _saved_histories(item)]
    if isinstance(value, list):
        return [h for item in value for h in _saved_histories(item)]
    return []


def _inputs_ready(call, produced: dict) -> bool:
    return all((name, node_index) in produced for name, node_index, _ in _saved_histories(call))


def _produced_tensor(history, produced: dict):
    name, node_index, tensor_index = history
    outputs = produced.get((name, node_index))
    if outputs is None or not 0 <= tensor_index < len(outputs):
        raise ValueError(f"functional model config refers to tensor {history}, which no saved layer call produces")
    return outputs[tensor_index]


def _decode_call(value, produced: dict):
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return _produced_tensor(_saved_histories(value)[0], produced)
    if isinstance(value, dict):
        return {key: _decode_call(item, produced) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode_call(item, produced) for item in value]
    return value


def _decode_structure(value, produced: dict):
    """``input_layers``/``output_layers``: one ``[name, node, tensor]`` triple, or a list or dict of them."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        if not all(type(i) is int for i in value[1:]):
            raise ValueError(f"functional model config: bad tensor reference {value!r}")
        return _produced_tensor(value, produced)
    if isinstance(value, list) and value:
        return [_decode_structure(item, produced) for item in value]
    if isinstance(value, dict) and value:
        return {key: _decode_structure(item, produced) for key, item in value.items()}
    raise ValueError(f"functional model config: input_layers/output_layers must be tensor references, got {str(value)[:200]}")
