"""Assembling the ONNX model: graph inputs and outputs with a dynamic batch, lowered nodes, initializers."""

from __future__ import annotations

from exporter.onnx.context import GraphScope, Lowering, onnx_type
from exporter.onnx.layout import fold_transposes
from exporter.onnx.lower import LOWERINGS

BATCH = "batch"  # the dim_param of every unknown leading dimension: one batch size for all inputs and outputs


def build_model(source, opset: int, problems: list | None = None):
    """The ``onnx.ModelProto`` of an ``InferenceGraph``; with ``problems``, lowering failures are collected
    there instead of raised, and the result is ``None`` when there are any."""
    from onnx import helper  # noqa: PLC0415 - onnx is imported only for ONNX export

    import trainer  # noqa: PLC0415

    graph = source.graph
    lowering = Lowering(opset, LOWERINGS, reserved=[*source.input_names, *source.output_names])
    scope = GraphScope(lowering)
    inputs = []
    for value, name in zip(graph.inputs, source.input_names):
        scope.bind(value, name)
        inputs.append(helper.make_tensor_value_info(name, onnx_type(value.dtype), _dims(name, value.shape)))
    scope.lower_graph(graph, problems)
    if problems:
        return None
    nodes, outputs = _name_outputs(scope, graph.outputs, source.output_names)
    nodes = fold_transposes(nodes, keep=set(source.output_names))
    used = _names_read(nodes)
    initializers = [tensor for tensor in lowering.initializers if tensor.name in used]
    onnx_graph = helper.make_graph(nodes, graph.name or "emberflow", inputs, outputs, initializer=initializers)
    opset_imports = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        onnx_graph, opset_imports=opset_imports, producer_name="emberflow", producer_version=trainer.__version__
    )
    # The oldest IR version that can hold this opset, so that older runtimes load the file too.
    model.ir_version = helper.find_min_ir_version_for(opset_imports)
    model.doc_string = f"{graph.name or 'function'} exported by emberflow {trainer.__version__}"
    return model


def _dims(name: str, shape) -> list:
    """Static dims as numbers; an unknown first dim is the shared batch, other unknown dims get their own name."""
    return [d if d is not None else (BATCH if i == 0 else f"{name}_dim{i}") for i, d in enumerate(shape)]


def _name_outputs(scope, values, names) -> tuple:
    """Gives each graph output its user-facing name by renaming the tensor that holds it (an Identity
    where that tensor is an input, an initializer, or already another output)."""
    from onnx import helper  # noqa: PLC0415

    internals = [scope.get(value) for value in values]  # channels-last: outputs keep the model's layout
    produced = {output for node in scope.nodes for output in node.output}
    renames: dict[str, str] = {}
    infos = []
    for value, name, internal in zip(values, names, internals):
        if internal in produced and internal not in renames:
            renames[internal] = name
        else:
            scope.nodes.append(helper.make_node("Identity", [internal], [name], name=name))
        dims = [BATCH if i == 0 and d is None else d for i, d in enumerate(value.shape)]
        infos.append(helper.make_tensor_value_info(name, onnx_type(value.dtype), dims))
    for node in scope.nodes:
        _rename(node, renames)
    return scope.nodes, infos


def _rename(node, renames: dict) -> None:
    for index, name in enumerate(node.input):
        node.input[index] = renames.get(name, name)
    for index, name in enumerate(node.output):
        node.output[index] = renames.get(name, name)
    for attribute in node.attribute:
        for inner in attribute.g.node:  # subgraphs read outer names
            _rename(inner, renames)


def _names_read(nodes) -> set:
    names = set()
    for node in nodes:
        names.update(node.input)
        for attribute in node.attribute:
            names.update(_names_read(attribute.g.node))
    return names
