"""Assembling a lite model: input tensors with the user-facing names, lowered operators, named outputs,
the ``serving_default`` signature and the metadata entries."""

from __future__ import annotations

from exporter.lite.builder import LiteModel, LiteTensor
from exporter.lite.context import Scope, tensor_type
from exporter.lite.lower import LOWERINGS
from exporter.lite.lower_array import reshape_to
from exporter.lite.versions import min_runtime_version

MIN_RUNTIME_VERSION_BYTES = 16  # the entry's fixed size: TensorFlow's converter reserves 16 bytes and zero-pads


def producer() -> str:
    import trainer  # noqa: PLC0415

    return f"emberflow {trainer.__version__}"


def build_model(source, problems: list | None = None) -> LiteModel | None:
    """The ``LiteModel`` of an ``InferenceGraph``; with ``problems``, lowering failures are collected there
    instead of raised, and the result is ``None`` when there are any."""
    graph = source.graph
    model = LiteModel(description=producer())
    scope = Scope(model, LOWERINGS)
    for name in (*source.input_names, *source.output_names):
        scope.reserve(name)
    for value, name in zip(graph.inputs, source.input_names):
        model.tensors.append(LiteTensor(name, value.shape, tensor_type(value.dtype)))
        scope.bind(value, len(model.tensors) - 1)
        model.inputs.append(len(model.tensors) - 1)
    scope.lower_graph(graph, problems)
    if problems:
        return None
    model.outputs = _name_outputs(scope, graph.outputs, source.output_names)
    model.signature_inputs = list(zip(source.input_names, model.inputs))
    model.signature_outputs = list(zip(source.output_names, model.outputs))
    version = min_runtime_version(model.operator_codes).encode().ljust(MIN_RUNTIME_VERSION_BYTES, b"\0")
    model.metadata = [
        ("min_runtime_version", model.add_buffer(version)),
        ("producer", model.add_buffer(producer().encode())),
    ]
    return model


def _name_outputs(scope, values, names) -> list[int]:
    """Gives each graph output tensor its user-facing name; an output that is a graph input, a constant,
    or another output's tensor is first copied (a RESHAPE to its own shape), so each output is its own."""
    model = scope.model
    produced = {index for operator in model.operators for index in operator.outputs}
    scope.current, scope.scope = None, ""
    indices = []
    for value, name in zip(values, names):
        index = scope.tensor(value)
        if index not in produced or index in indices or index in model.inputs:
            copy = len(model.tensors)
            model.tensors.append(LiteTensor(name, value.shape, tensor_type(value.dtype)))
            index = reshape_to(scope, index, value.shape, value.dtype, copy, like=index)
        model.tensors[index].name = name
        indices.append(index)
    return indices
