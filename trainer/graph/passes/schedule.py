"""Memory-friendly scheduling: an execution order that keeps fewer intermediate arrays alive at once."""

from __future__ import annotations

import itertools

from trainer.graph.ir import Graph, Node
from trainer.graph.passes.rewrite import PassReport, copy_graph, value_bytes


def schedule_for_memory(graph: Graph) -> tuple[Graph, PassReport]:
    """Reorders the nodes greedily: among the nodes whose inputs are ready, run next the one that frees
    the most bytes net (bytes of inputs it reads last, minus bytes it allocates), ties in the original
    order; keeps the new order only when its estimated peak of live intermediate bytes is lower.

    Safe because the order stays topological (every node after the nodes computing its inputs), the
    stateful nodes keep their order, and every node that depends on a variable a stateful node touches
    stays on the same side of that node as before, so each reads the variable's value it read before.
    The evaluator frees an array after its last reader, so its peak memory follows this estimate.
    """
    graph = copy_graph(graph)
    report = PassReport("memory-schedule")
    before = peak_live_bytes(graph, graph.nodes)
    order = _greedy_order(graph, _predecessors(graph))
    after = peak_live_bytes(graph, order)
    if after < before:
        moved = sum(1 for old, new in zip(graph.nodes, order) if old is not new)
        graph.nodes = order
        report.changes.append(f"peak live intermediate bytes {before} -> {after} ({moved} nodes moved)")
    return graph, report


def peak_live_bytes(graph: Graph, order: list) -> int:
    """The most bytes of node results alive at once when running ``order`` (unknown dims count as 1).

    A node's results are alive from when it runs until its last reader has run (graph outputs until
    the end); while a node runs, its inputs and its results are alive together.
    """
    last_use = {}
    for position, node in enumerate(order):
        for value in node.inputs:
            last_use[value.id] = position
    for value in graph.outputs:
        last_use[value.id] = len(order)
    live = peak = 0
    for position, node in enumerate(order):
        live += sum(value_bytes(v) for v in node.outputs)
        peak = max(peak, live)
        dying = {v.id: v for v in node.inputs if v.kind == "node" and last_use[v.id] == position}
        dying.update({v.id: v for v in node.outputs if v.id not in last_use})
        live -= sum(value_bytes(v) for v in dying.values())
    return peak


def _predecessors(graph: Graph) -> dict[int, set[int]]:
    """For each node's position, the positions of the nodes that must run before it."""
    position_of = {v.id: i for i, node in enumerate(graph.nodes) for v in node.outputs}
    before = {i: {position_of[v.id] for v in node.inputs if v.id in position_of} for i, node in enumerate(graph.nodes)}
    stateful = [i for i, node in enumerate(graph.nodes) if node.op.stateful]
    for earlier, later in itertools.pairwise(stateful):
        before[later].add(earlier)
    for i in stateful:
        for j in _reading_variables_of(graph, graph.nodes[i]):
            if j != i:
                before[max(i, j)].add(min(i, j))
    return before


def _reading_variables_of(graph: Graph, stateful: Node) -> set[int]:
    """Positions of the nodes that depend, through any chain, on a variable ``stateful`` reads or writes."""
    touched = {v.id for v in stateful.inputs if v.kind == "variable"}
    dependent, positions = set(touched), set()
    for position, node in enumerate(graph.nodes):
        if any(v.id in dependent for v in node.inputs):
            dependent.update(v.id for v in node.outputs)
            positions.add(position)
    return positions


def _greedy_order(graph: Graph, predecessors: dict[int, set[int]]) -> list[Node]:
    nodes = graph.nodes
    outputs = {v.id for v in graph.outputs}
    readers: dict[int, int] = {}  # value id -> how many unscheduled nodes still read it
    for node in nodes:
        for value_id in {v.id for v in node.inputs}:
            readers[value_id] = readers.get(value_id, 0) + 1
    waiting = {i: len(p) for i, p in predecessors.items()}
    successors: dict[int, list[int]] = {i: [] for i in predecessors}
    for i, before in predecessors.items():
        for j in before:
            successors[j].append(i)
    ready = {i for i, count in waiting.items() if count == 0}
    order = []
    while ready:
        chosen = max(ready, key=lambda i: (_net_freed(nodes[i], readers, outputs), -i))
        ready.remove(chosen)
        order.append(nodes[chosen])
        for value_id in {v.id for v in nodes[chosen].inputs}:
            readers[value_id] -= 1
        for j in successors[chosen]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.add(j)
    return order


def _net_freed(node: Node, readers: dict, outputs: set) -> int:
    """Bytes freed by running ``node`` now (inputs it reads last) minus the bytes its results keep alive."""
    inputs = {v.id: v for v in node.inputs}.values()
    freed = sum(value_bytes(v) for v in inputs if v.kind == "node" and readers[v.id] == 1 and v.id not in outputs)
    kept = sum(value_bytes(v) for v in node.outputs if v.id in readers or v.id in outputs)
    return freed - kept
