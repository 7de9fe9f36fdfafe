"""What every exporter starts from: a model (or tf.function) turned into an optimized inference graph."""

from __future__ import annotations

from dataclasses import dataclass, field

import trainer as tf
from exporter.errors import ExportError
from trainer.graph import ConcreteFunction, Function, Graph


@dataclass(frozen=True)
class Problem:
    """One reason a graph cannot be exported to a target: the op, where the user wrote it, what to do."""

    op: str
    source: str
    message: str

    def __str__(self) -> str:
        return self.message


TRAINING_ONLY_REASON = (
    "it appears only in training graphs (a gradient or an update), which an inference file never contains",
    "export the model (or a tf.function computing its predictions), not a training step",
)


@dataclass
class InferenceGraph:
    """An optimized graph plus the user-facing names of its inputs and outputs and the pass reports."""

    graph: Graph
    input_names: list[str]
    output_names: list[str]
    reports: list = field(default_factory=list)


def concrete_function(model, input_signature=None) -> ConcreteFunction:
    """The concrete function to export: a Keras model traced with a dynamic batch, or a given function."""
    if isinstance(model, ConcreteFunction):
        return model
    if isinstance(model, Function):
        return model.get_concrete_function(*(input_signature or ()))
    if isinstance(model, tf.keras.Model) or isinstance(model, tf.keras.layers.Layer):
        if input_signature is None:
            input_signature = model_input_signature(model)
        return tf.function(model).get_concrete_function(*input_signature)
    raise ExportError(f"cannot export a {type(model).__name__}: pass a Keras model, a tf.function or a concrete function")


def model_input_signature(model) -> list:
    """``TensorSpec``s of a built Keras model's inputs with the batch dimension left unknown."""
    inputs = getattr(model, "inputs", None) or []
    if not inputs:
        raise ExportError(
            f"model '{model.name}' has no known input shape; build it first (call it on data, or start it "
            "with tf.keras.Input(shape=...)), or pass input_signature=[tf.TensorSpec([None, ...])]"
        )
    return [tf.TensorSpec([None] + tensor.shape.as_list()[1:], tensor.dtype, name=_input_name(model, i)) for i, tensor in enumerate(inputs)]


def _input_name(model, index: int) -> str:
    names = getattr(model, "input_names", None)
    if names:
        return names[index]
    return "input" if index == 0 else f"input_{index}"


def inference_graph(model, input_signature=None, optimize: bool = True) -> InferenceGraph:
    """Traces ``model`` for inference and runs the graph optimizer (folding, fusion, BN folding)."""
    concrete = concrete_function(model, input_signature)
    graph = concrete.graph
    reports = []
    if optimize:
        from trainer.graph.passes import optimize as run_passes  # noqa: PLC0415

        graph, reports = run_passes(graph, for_inference=True)
    input_names = [value.name or f"input_{i}" for i, value in enumerate(graph.inputs)]
    output_names = _output_names(model, len(graph.outputs))
    return InferenceGraph(graph, input_names, output_names, reports)


def _output_names(model, count: int) -> list[str]:
    names = getattr(model, "output_names", None)
    if names and len(names) == count:
        return list(names)
    return ["output_0"] if count == 1 else [f"output_{i}" for i in range(count)]


def as_inference_graph(model_or_function, input_signature=None) -> InferenceGraph:
    """What the exporters accept: an ``InferenceGraph``, a bare ``Graph``, or anything ``inference_graph`` takes."""
    if isinstance(model_or_function, InferenceGraph):
        return model_or_function
    if isinstance(model_or_function, Graph):
        graph = model_or_function
        inputs = [value.name or f"input_{i}" for i, value in enumerate(graph.inputs)]
        return InferenceGraph(graph, inputs, _output_names(None, len(graph.outputs)))
    return inference_graph(model_or_function, input_signature)
