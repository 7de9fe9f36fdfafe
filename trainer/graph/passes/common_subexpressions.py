"""Common-subexpression elimination: compute each distinct expression once."""

from __future__ import annotations

import numpy as np

from trainer.graph.ir import Graph, Value
from trainer.graph.passes.rewrite import PassReport, copy_graph, listing, plural, state_dependent, weight_array

_CONSTANT_BYTES_COMPARED = 1 << 20  # bigger constants are weights, rarely equal, and costly to hash


def eliminate_common_subexpressions(graph: Graph) -> tuple[Graph, PassReport]:
    """Merges nodes that apply the same op with equal attributes to the same inputs; first merges
    equal small constants, so that ``x + 1`` written twice reads one constant.

    Safe because a non-stateful op is a function of its inputs and attributes: two such nodes give
    equal results, and the later one's readers can read the earlier one's outputs (which are defined
    before them, since the earlier node comes first). Stateful nodes (variable writes, random draws,
    which are registered stateful) are never merged. A node reading a variable that a stateful node
    writes is merged only with one that runs between the same writes, where it sees the same value.
    """
    graph = copy_graph(graph)
    report = PassReport("cse")
    duplicates = _merge_equal_constants(graph)
    if duplicates:
        report.changes.append(f"merged {plural(duplicates, 'duplicate constant')}")
    dependent = state_dependent(graph)
    replacement: dict[int, Value] = {}
    seen: dict[tuple, list] = {}
    merged = []
    stateful_so_far = 0
    for node in graph.nodes:
        node.inputs = [replacement.get(v.id, v) for v in node.inputs]
        if node.op.stateful:
            stateful_so_far += 1
            continue
        if not node.outputs:
            continue
        reads_state = any(v.id in dependent for v in node.inputs)
        key = (node.op.name, tuple(v.id for v in node.inputs), stateful_so_far if reads_state else None)
        twin = next((other for other in seen.get(key, []) if _same_attrs(other.attrs, node.attrs)), None)
        if twin is None:
            seen.setdefault(key, []).append(node)
            continue
        for old, new in zip(node.outputs, twin.outputs):
            replacement[old.id] = new
        merged.append((node, twin))
    graph.outputs = [replacement.get(v.id, v) for v in graph.outputs]
    dropped = {id(node) for node, _ in merged}
    graph.nodes = [node for node in graph.nodes if id(node) not in dropped]
    if merged:
        pairs = listing(f"{node.outputs[0].ref} {node.op.name} into {twin.outputs[0].ref}" for node, twin in merged)
        report.changes.append(f"merged {plural(len(merged), 'repeated node')}: {pairs}")
    return graph, report


def _merge_equal_constants(graph: Graph) -> int:
    """Makes readers of equal small constants read the first of them; returns how many were dropped."""
    first: dict[tuple, Value] = {}
    replacement: dict[int, Value] = {}
    for value in graph.constants:
        array = weight_array(value)
        if array.nbytes > _CONSTANT_BYTES_COMPARED:
            continue
        key = (array.dtype.str, array.shape, np.ascontiguousarray(array).tobytes())
        if key in first:
            replacement[value.id] = first[key]
        else:
            first[key] = value
    if replacement:
        for node in graph.nodes:
            node.inputs = [replacement.get(v.id, v) for v in node.inputs]
        graph.outputs = [replacement.get(v.id, v) for v in graph.outputs]
        graph.constants = [v for v in graph.constants if v.id not in replacement]
    return len(replacement)


def _same_attrs(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(_same_attr(first[k], second[k]) for k in first)


def _same_attr(a, b) -> bool:
    """Equal attribute values; subgraphs only when they are the same object, as nothing cheaper proves it."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same_attr(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, Graph) or isinstance(b, Graph):
        return a is b
    # type(...) is type(...): 1 == 1.0 == True, but an int and a float attribute can mean different things
    return type(a) is type(b) and a == b
