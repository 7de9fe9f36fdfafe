"""The functional API: recording layer calls on symbolic inputs, and replaying them as a model."""

from __future__ import annotations

from trainer import nest
from trainer.keras.layers.input_layer import InputLayer, KerasHistory
from trainer.ops import array_ops
from trainer.tensor import Tensor


class Node:
    """One call of a layer on symbolic tensors: its arguments and the symbolic outputs it produced."""

    __slots__ = ("layer", "inputs", "args", "kwargs", "input_tensors", "output_tensors")

    def __init__(self, layer, inputs, args, kwargs, input_tensors, output_tensors):
        self.layer = layer
        self.inputs = inputs  # the first positional argument, as passed (a nest of tensors)
        self.args = args
        self.kwargs = kwargs
        self.input_tensors = input_tensors
        self.output_tensors = output_tensors

    @property
    def parent_nodes(self) -> list:
        parents = []
        for tensor in _keras_tensors((self.inputs, self.args, self.kwargs)):
            node = tensor._keras_history.node
            if all(node is not known for known in parents):
                parents.append(node)
        return parents


def _keras_tensors(structure) -> list:
    return [t for t in nest.flatten(structure) if isinstance(t, Tensor) and t._keras_history is not None]


def call_symbolically(layer, inputs, args: tuple, kwargs: dict):
    """Runs ``layer`` on symbolic inputs (shape inference only) and records the call as a ``Node``."""
    # Fresh placeholders without history: layers nested inside ``layer`` then run as plain shape
    # inference instead of recording calls of their own.
    converted = nest.map_structure(
        lambda t: layer._convert_input(Tensor.symbolic(t.spec.shape, t.spec.dtype)) if isinstance(t, Tensor) and t.is_symbolic else t,
        inputs,
    )
    plain_kwargs = {k: v for k, v in kwargs.items() if k != "training"}
    outputs = layer._call_eager(converted, args, dict(plain_kwargs))
    known_inputs = {id(t) for t in nest.flatten(inputs) if isinstance(t, Tensor)}
    flat_outputs = []
    for tensor in nest.flatten(outputs):
        # A layer may hand back its input unchanged (Dropout at inference, Identity); the output needs a
        # history of its own, so it becomes a new symbolic tensor.
        if tensor._keras_history is not None or id(tensor) in known_inputs:
            tensor = array_ops.identity(Tensor.symbolic(tensor.spec.shape, tensor.spec.dtype))
        flat_outputs.append(tensor)
    outputs = nest.pack_sequence_as(outputs, flat_outputs)
    node_index = len(layer._inbound_nodes)
    for index, tensor in enumerate(flat_outputs):
        tensor._keras_history = KerasHistory(layer, node_index, index)
    layer._inbound_nodes.append(Node(layer, inputs, args, plain_kwargs, input_tensors=inputs, output_tensors=outputs))
    return outputs


def topological_nodes(inputs: list, outputs: list) -> list:
    """The layer calls between ``inputs`` and ``outputs``, each after the calls it depends on."""
    input_ids = {id(t) for t in inputs}
    order, visiting, done = [], set(), set()

    def visit(node):
        if id(node) in done:
            return
        if id(node) in visiting:
            raise ValueError(f"the functional graph has a cycle through layer '{node.layer.name}'")
        visiting.add(id(node))
        for tensor in _keras_tensors((node.inputs, node.args, node.kwargs)):
            if id(tensor) in input_ids:
                continue
            parent = tensor._keras_history.node
            if isinstance(parent.layer, InputLayer):
                raise ValueError(
                    f"Graph disconnected: cannot obtain value for tensor {tensor!r} at layer '{node.layer.name}'. "
                    f"It comes from Input '{parent.layer.name}', which is not among the model's inputs"
                )
            visit(parent)
        visiting.discard(id(node))
        done.add(id(node))
        order.append(node)

    for tensor in outputs:
        history = tensor._keras_history
        if history is None:
            raise ValueError(f"model outputs must come from Keras layers called on tf.keras.Input tensors, got {tensor!r}")
        if id(tensor) in input_ids:
            continue
        visit(history.node)
    return order


def replay(nodes: list, input_tensors: list, values: list, output_tensors: list, training=None) -> list:
    """Runs the recorded layer calls on real ``values`` for the symbolic ``input_tensors``."""
    computed = {id(t): v for t, v in zip(input_tensors, values)}

    def lookup(item):
        if isinstance(item, Tensor) and item._keras_history is not None:
            return computed[id(item)]
        return item

    for node in nodes:
        arguments = nest.map_structure(lookup, node.inputs)
        args = tuple(nest.map_structure(lookup, a) for a in node.args)
        kwargs = {k: nest.map_structure(lookup, v) for k, v in node.kwargs.items()}
        if training is not None:
            kwargs["training"] = training
        result = node.layer(arguments, *args, **kwargs)
        for symbolic, value in zip(nest.flatten(node.output_tensors), nest.flatten(result)):
            computed[id(symbolic)] = value
    return [computed[id(t)] for t in output_tensors]
