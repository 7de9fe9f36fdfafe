"""What every pass shares: its report, a copy of the graph to edit, and small edits of the IR.

A pass never edits the graph it is given (that graph usually belongs to a ``ConcreteFunction`` that
still runs it); it edits ``copy_graph(graph)``, which shares the constants' arrays, the variables and
the subgraphs but has its own nodes and values, with the same ids, so reports name values as the
original graph's text does.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field

from trainer import backend
from trainer.graph.ir import Graph, Node, Value
from trainer.ops import array_ops
from trainer.ops.registry import infer_outputs
from trainer.tensor import Tensor

_LISTED_NODES = 8  # a report line names this many nodes, then counts the rest


@dataclass
class PassReport:
    """What one pass changed, one line per kind of change (empty when it changed nothing)."""

    name: str
    changes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def __str__(self) -> str:
        return f"{self.name}: " + ("; ".join(self.changes) if self.changes else "no changes")


def describe(nodes) -> str:
    """``%4 cast, %5 add, ...``: how report lines name nodes."""
    return listing(f"{node.outputs[0].ref if node.outputs else '()'} {node.op.name}" for node in nodes)


def listing(items) -> str:
    """The items joined by commas, the first few of a long list and how many more."""
    items = list(items)
    if len(items) > _LISTED_NODES:
        items = items[:_LISTED_NODES] + [f"and {len(items) - _LISTED_NODES} more"]
    return ", ".join(items)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# -- copying ---------------------------------------------------------------------------------------------


def copy_graph(graph: Graph) -> Graph:
    """A graph with the same values (same ids) and nodes that can be edited without touching ``graph``."""
    result = Graph(graph.name)
    values: dict[int, Value] = {}

    def clone(value: Value, producer=None) -> Value:
        values[value.id] = copied = copy.copy(value)  # same slots: id, type, the data by reference
        copied.producer = producer
        return copied

    result.inputs = [clone(v) for v in graph.inputs]
    result.constants = [clone(v) for v in graph.constants]
    result.variables = [clone(v) for v in graph.variables]
    for node in graph.nodes:
        new = Node(node.op, [values[v.id] for v in node.inputs], node.attrs, [], node.source)
        new.outputs = [clone(v, new) for v in node.outputs]
        result.nodes.append(new)
    result.outputs = [values[v.id] for v in graph.outputs]
    result._ids = itertools.count(max(values, default=0) + 1)
    return result


# -- editing ---------------------------------------------------------------------------------------------


def new_node(graph: Graph, op, inputs: list, attrs: dict, before: Node, source: str = "") -> Node:
    """Adds ``op(inputs) {attrs}`` right before ``before``, with outputs typed by the op's shape rule."""
    placeholders = tuple(Tensor.symbolic(v.shape, v.dtype) for v in inputs)
    node = graph.add_node(op, inputs, attrs, infer_outputs(op, placeholders, attrs), source or before.source)
    graph.nodes.pop()
    graph.nodes.insert(graph.nodes.index(before), node)
    return node


def reshape_before(graph: Graph, value: Value, shape: tuple, before: Node) -> Value:
    """``reshape(value, shape)``, added right before ``before``."""
    return new_node(graph, array_ops.reshape_op, [value], {"shape": tuple(shape)}, before=before).outputs[0]


def add_constant(graph: Graph, array) -> Value:
    """A new constant holding ``array``, placed on the device of the graph's weights (the evaluator
    refuses a graph whose arrays are on two devices)."""
    weights = graph.constants + graph.variables
    if weights:
        first = weights[0].data if weights[0].kind == "constant" else weights[0].variable._value
        array = backend.to_device(array, backend.device_of(first))
    return graph.constant(array)


def replace_uses(graph: Graph, old: Value, new: Value) -> None:
    """Makes every reader of ``old`` (nodes and the graph's outputs) read ``new`` instead."""
    for node in graph.nodes:
        node.inputs = [new if v is old else v for v in node.inputs]
    graph.outputs = [new if v is old else v for v in graph.outputs]


def sole_consumer(graph: Graph, value: Value, consumers: dict) -> Node | None:
    """The one node reading ``value``, when it is read once and is not a graph output (else ``None``)."""
    readers = consumers.get(value.id, [])
    if len(readers) != 1 or any(v is value for v in graph.outputs):
        return None
    if sum(v is value for v in readers[0].inputs) != 1:
        return None
    return readers[0]


def remove_unused(graph: Graph) -> list[Node]:
    """Removes the nodes nothing needs (see ``dead_nodes``) and the constants and variables nobody reads."""
    needed = needed_nodes(graph)
    removed = [node for node in graph.nodes if id(node) not in needed]
    graph.nodes = [node for node in graph.nodes if id(node) in needed]
    read = {v.id for node in graph.nodes for v in node.inputs} | {v.id for v in graph.outputs}
    graph.constants = [v for v in graph.constants if v.id in read]
    graph.variables = [v for v in graph.variables if v.id in read]
    return removed


def needed_nodes(graph: Graph) -> set[int]:
    """``id``s of the nodes the outputs or a stateful node depend on, the stateful nodes included."""
    producers = {v.id: node for node in graph.nodes for v in node.outputs}
    stack = [producers[v.id] for v in graph.outputs if v.id in producers]
    stack += [node for node in graph.nodes if node.op.stateful]
    needed: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(producers[v.id] for v in node.inputs if v.id in producers)
    return needed


# -- facts the passes check ------------------------------------------------------------------------------


def is_weight(value: Value) -> bool:
    """A constant or a captured variable: data known when the graph is optimized, not computed in it."""
    return value.kind in ("constant", "variable")


def weight_array(value: Value):
    """The current data of a constant or a variable, as a NumPy array."""
    array = value.data if value.kind == "constant" else value.variable._value
    return backend.to_numpy(array)


def state_dependent(graph: Graph) -> set[int]:
    """Ids of the values that depend (through any chain of nodes) on a variable a stateful node touches.

    A stateful node such as ``assign_variable`` changes its variables in place while the graph runs,
    so a node reading one of them (or a view of it) gives a different answer before and after it.
    Passes leave such nodes where they are and never merge them; inference graphs have none.
    """
    touched = {v.id for node in graph.nodes if node.op.stateful for v in node.inputs if v.kind == "variable"}
    dependent = set(touched)
    for node in graph.nodes:
        if any(v.id in dependent for v in node.inputs):
            dependent.update(v.id for v in node.outputs)
    return dependent


def value_bytes(value: Value) -> int:
    """The size of a value's array, counting unknown dimensions as 1."""
    return math.prod(1 if d is None else d for d in value.shape) * value.dtype.size


def inference_only(graph_pass):
    """Marks a pass valid only for a frozen model (it bakes variables' current values into constants);
    ``optimize(..., for_inference=False)`` skips it."""
    graph_pass.inference_only = True
    return graph_pass


def training_only(graph_pass):
    """Marks a pass that writes training-only ops (which no exporter lowers): gradient rewrites, and
    phase pooling in the graphs that ``fit``, ``evaluate`` and ``predict`` run. ``optimize(...,
    for_inference=True)`` skips it, so an exported graph keeps the ops the user's code made."""
    graph_pass.training_only = True
    return graph_pass
