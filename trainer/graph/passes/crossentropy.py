"""Crossentropy: a training step's loss and its gradient from one softmax."""

from __future__ import annotations

from trainer.graph.ir import Graph
from trainer.graph.passes.rewrite import PassReport, copy_graph, describe, new_node, plural, remove_unused, replace_uses, training_only
from trainer.ops import math_ops, nn_ops


@training_only
def merge_crossentropy_gradients(graph: Graph) -> tuple[Graph, PassReport]:
    """Rewrites ``sparse_softmax_cross_entropy_with_logits(z, y)`` and the
    ``sparse_softmax_cross_entropy_grad(z, y, g)`` of the same logits and labels into one
    ``sparse_softmax_cross_entropy_and_grad(z, y, g)`` with both outputs, placed where the loss ran
    (when ``g`` is known there: a value computed before, or a broadcast of one to the loss's shape,
    which the kernel does itself).

    Safe because the merged kernel performs the two kernels' operations in the same order: equal
    outputs, bit for bit. Each kernel computed the softmax of the logits again; now it is computed once.
    """
    graph = copy_graph(graph)
    report = PassReport("crossentropy")
    losses = {
        (node.inputs[0].id, node.inputs[1].id): node
        for node in graph.nodes
        if node.op is nn_ops.sparse_softmax_cross_entropy_with_logits_op
    }
    merged = []
    for node in list(graph.nodes):
        if node.op is not nn_ops.sparse_softmax_cross_entropy_grad_op:
            continue
        loss = losses.pop((node.inputs[0].id, node.inputs[1].id), None)
        if loss is None or graph.nodes.index(loss) > graph.nodes.index(node):
            continue
        # The gradient runs after the loss's readers, and its upstream value usually derives from the
        # loss (a constant broadcast to the loss's shape): the merged node runs where the loss ran,
        # reading the unbroadcast value (the kernel broadcasts it), when that is ready there.
        upstream = node.inputs[2]
        spread = upstream.producer if upstream.kind == "node" else None
        if spread is not None and spread.op is math_ops.broadcast_like_op and spread.inputs[1] is loss.outputs[0]:
            upstream = spread.inputs[0]
        if upstream.kind == "variable":  # read earlier, it could miss a write between the two nodes
            continue
        if upstream.kind == "node" and graph.nodes.index(upstream.producer) > graph.nodes.index(loss):
            continue
        inputs = [node.inputs[0], node.inputs[1], upstream]
        both = new_node(graph, nn_ops.sparse_softmax_cross_entropy_and_grad_op, inputs, {}, before=loss)
        replace_uses(graph, loss.outputs[0], both.outputs[0])
        replace_uses(graph, node.outputs[0], both.outputs[1])
        merged.append(loss)
    remove_unused(graph)
    if merged:
        report.changes.append(f"computed {plural(len(merged), 'crossentropy')} and its gradient together: {describe(merged)}")
    return graph, report
