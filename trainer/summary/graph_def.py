"""Our graph IR as a TensorFlow ``GraphDef`` protobuf, for TensorBoard's Graphs tab.

Field numbers, from TensorFlow's ``graph.proto``, ``node_def.proto``, ``attr_value.proto`` and
``tensor_shape.proto``:

- ``GraphDef``: node 1 (repeated NodeDef), versions 4 (VersionDef: producer 1).
- ``NodeDef``: name 1, op 2, input 3 (repeated: producer names), attr 5 (map entries: key 1, value 2).
- ``AttrValue``: list 1 (ListValue: shape 7, repeated TensorShapeProto).
- ``TensorShapeProto``: dim 2 (Dim: size 1, -1 when unknown).

Inputs become ``Placeholder`` nodes, weights ``VarHandleOp`` nodes named after the variable
("dense/kernel"), constants ``Const`` nodes, and every op a node named ``<scope>/<op>_<id>``: the scope is
the layer whose weights the op reads (or, failing that, its first input's scope), so TensorBoard folds
each Keras layer into one box.
"""

from __future__ import annotations

from trainer.summary import protobuf


def _shape(shape) -> bytes:
    return b"".join(protobuf.bytes_field(2, protobuf.int_field(1, -1 if size is None else size)) for size in shape)


def _node(name: str, op: str, inputs=(), output_shapes=()) -> bytes:
    message = protobuf.bytes_field(1, name) + protobuf.bytes_field(2, op)
    for source in inputs:
        message += protobuf.bytes_field(3, source)
    if output_shapes:
        shapes = protobuf.bytes_field(1, b"".join(protobuf.bytes_field(7, _shape(shape)) for shape in output_shapes))
        message += protobuf.bytes_field(5, protobuf.bytes_field(1, "_output_shapes") + protobuf.bytes_field(2, shapes))
    return message


def graph_def(graph) -> bytes:
    """The encoded ``GraphDef`` of a ``trainer.graph.Graph`` (a traced model or ``tf.function``)."""
    names: dict[int, str] = {}  # value id -> the name of the node that produces it (":<index>" for later outputs)
    scopes: dict[int, str] = {}
    nodes = []
    for index, value in enumerate(graph.inputs):
        names[value.id] = value.name or f"input_{index}"
        nodes.append(_node(names[value.id], "Placeholder", output_shapes=[value.shape]))
    for value in graph.variables:
        names[value.id], scopes[value.id] = value.name, value.name.rpartition("/")[0]
        nodes.append(_node(value.name, "VarHandleOp", output_shapes=[value.shape]))
    for value in graph.constants:
        names[value.id] = f"Const_{value.id}"
        nodes.append(_node(names[value.id], "Const", output_shapes=[value.shape]))
    for node in graph.nodes:
        variable_scopes = [scopes[v.id] for v in node.inputs if v.kind == "variable" and scopes.get(v.id)]
        scope = variable_scopes[0] if variable_scopes else next((scopes[v.id] for v in node.inputs if scopes.get(v.id)), "")
        first = node.outputs[0].id if node.outputs else id(node)
        name = f"{scope}/{node.op.name}_{first}" if scope else f"{node.op.name}_{first}"
        for output in node.outputs:
            names[output.id] = name if output.index == 0 else f"{name}:{output.index}"
            scopes[output.id] = scope
        inputs = [names[v.id] for v in node.inputs if v.id in names]
        nodes.append(_node(name, node.op.name, inputs, [v.shape for v in node.outputs]))
    versions = protobuf.bytes_field(4, protobuf.int_field(1, 1))
    return b"".join(protobuf.bytes_field(1, node) for node in nodes) + versions
