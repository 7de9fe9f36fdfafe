"""Dead-node elimination: drop the nodes whose results nothing uses."""

from __future__ import annotations

from trainer.graph.ir import Graph
from trainer.graph.passes.rewrite import PassReport, copy_graph, describe, plural, remove_unused


def eliminate_dead_nodes(graph: Graph) -> tuple[Graph, PassReport]:
    """Removes every node that neither the outputs nor a stateful node depend on, then unread weights.

    Safe because a non-stateful op's only effect is its outputs: when no output and no stateful node
    reads them, running the node changes nothing. Stateful nodes (variable writes, optimizer updates,
    random draws) are kept with everything they read, even when nothing reads their results. Constants
    and variables no remaining node reads are dropped too, so an executable does not load them.
    """
    graph = copy_graph(graph)
    report = PassReport("dead-nodes")
    weights_before = len(graph.constants) + len(graph.variables)
    removed = remove_unused(graph)
    if removed:
        report.changes.append(f"removed {plural(len(removed), 'dead node')}: {describe(removed)}")
    unread = weights_before - len(graph.constants) - len(graph.variables)
    if unread:
        report.changes.append(f"dropped {plural(unread, 'unread constant or variable')}")
    return graph, report
