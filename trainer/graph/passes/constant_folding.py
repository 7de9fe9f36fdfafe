"""Constant folding: evaluate, once, every node whose inputs are known before the graph runs."""

from __future__ import annotations

import numpy as np

from trainer.graph.ir import Graph, Node, Value
from trainer.graph.passes.rewrite import (
    PassReport,
    add_constant,
    copy_graph,
    describe,
    plural,
    value_bytes,
    weight_array,
)

MAX_FOLDED_BYTES = 16 * 1024 * 1024

# Ops that read only the shape of these inputs, so they fold whenever that shape is fully known.
_SHAPE_ONLY_INPUTS = {"shape": {0}, "size": {0}, "zeros_like": {0}, "ones_like": {0}}


def fold_constants(graph: Graph, max_bytes: int = MAX_FOLDED_BYTES) -> tuple[Graph, PassReport]:
    """Replaces each non-stateful node whose inputs are all constants (or that has none, as ``fill``
    and ``range``) by constants holding its results, computed by its own kernel on NumPy; ``shape``,
    ``size``, ``zeros_like`` and ``ones_like`` fold when their input's shape is fully known.

    Safe because such a node computes the same arrays on every run: it reads no input, no variable
    and no state. Stateful nodes (random draws, variable writes) are never folded. Results larger
    than ``max_bytes`` are left to be computed at run time, so folding never bloats the graph (say, a
    ``broadcast_to`` of a scalar to a large shape). A node whose kernel fails on its constants stays,
    so the error still comes when the graph runs, from the op the user wrote.
    """
    graph = copy_graph(graph)
    report = PassReport("constant-folding")
    replacement: dict[int, Value] = {}
    folded, too_large, failing = [], [], []
    for node in graph.nodes:
        node.inputs = [replacement.get(v.id, v) for v in node.inputs]
        arrays = _known_inputs(node)
        if arrays is None:
            continue
        size = sum(value_bytes(v) for v in node.outputs)
        if size > max_bytes or any(None in v.shape for v in node.outputs):
            too_large.append(node)
            continue
        results = _evaluate(node, arrays)
        if results is None:
            failing.append(node)
            continue
        for value, array in zip(node.outputs, results):
            replacement[value.id] = add_constant(graph, array)
        folded.append(node)
    graph.outputs = [replacement.get(v.id, v) for v in graph.outputs]
    done = {id(node) for node in folded}
    graph.nodes = [node for node in graph.nodes if id(node) not in done]
    if folded:
        report.changes.append(f"folded {plural(len(folded), 'node')} into constants: {describe(folded)}")
    if too_large:
        reason = f"results over {max_bytes} bytes or of unknown size"
        report.changes.append(f"left {plural(len(too_large), 'node')} unfolded, {reason}: {describe(too_large)}")
    if failing:
        reason = "their kernels fail on these constants"
        report.changes.append(f"left {plural(len(failing), 'node')} unfolded, {reason}: {describe(failing)}")
    return graph, report


def _known_inputs(node: Node):
    """The arrays to run ``node`` on when everything it reads is known now, else ``None``."""
    if node.op.stateful or not node.outputs:
        return None
    shape_only = _SHAPE_ONLY_INPUTS.get(node.op.name, set())
    arrays = []
    for index, value in enumerate(node.inputs):
        if value.kind == "constant":
            arrays.append(weight_array(value))
        elif index in shape_only and None not in value.shape:
            # A read-only array of the right shape that takes no memory: these ops look at nothing else.
            arrays.append(np.broadcast_to(np.zeros((), value.dtype.as_numpy_dtype), value.shape))
        else:
            return None
    return arrays


def _evaluate(node: Node, arrays):
    """The node's results as C-ordered arrays of its declared types, or ``None`` if its kernel fails."""
    try:
        result = node.op.forward(np, *arrays, **node.attrs)
    except (ValueError, TypeError, IndexError, ArithmeticError):
        return None
    results = (result,) if len(node.outputs) == 1 else tuple(result)
    arrays = [np.asarray(r, dtype=v.dtype.as_numpy_dtype, order="C") for r, v in zip(results, node.outputs)]
    if any(array.shape != value.shape for array, value in zip(arrays, node.outputs)):
        return None  # the kernel disagrees with the shape rule; the registry tests catch that, not us
    return arrays
