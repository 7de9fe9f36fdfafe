"""Pooling gradients in training graphs: reuse the forward maximum, and mask before unpooling.

``max_pool2d_grad(y, g)`` finds each window's maximum again; when the forward ``p = max_pool2d(y)``
of the same window is in the graph, ``max_pool2d_grad_from_output(y, p, g)`` reads it instead.

Conv → ReLU → MaxPool backpropagates as ``relu_grad(max_pool2d_grad(y, g), y)``: a full-size mask
over a gradient that is zero everywhere except at one position per window. Masking the window's
gradient before it is placed gives the same array from a pooled-size mask, four times smaller for
2×2 windows.
"""

from __future__ import annotations

from trainer.graph.ir import Graph
from trainer.graph.passes.rewrite import (
    PassReport,
    copy_graph,
    describe,
    new_node,
    plural,
    remove_unused,
    replace_uses,
    sole_consumer,
    training_only,
)
from trainer.ops import conv_ops, nn_ops, pool_grad_ops


@training_only
def mask_before_unpooling(graph: Graph) -> tuple[Graph, PassReport]:
    """Rewrites ``max_pool2d_grad(y, g)`` into ``max_pool2d_grad_from_output(y, p, g)`` and
    ``relu_grad(max_pool2d_grad(y, g), y)`` into ``max_pool2d_grad_from_output(y, p, relu_grad(g, p))``
    where ``p = max_pool2d(y)`` with the same window attributes is already computed in the graph.

    The first is safe because both kernels send each window's gradient to the first element equal to
    the window's maximum, and ``p`` is that maximum computed by the same ``maximum`` calls.

    The second is safe because the gradient goes to the window's maximum of ``y``, where ``y > 0`` exactly when the window's ``p > 0``: masking each gradient by ``p > 0`` before
    sending it keeps and drops the same terms as masking the sums by ``y > 0`` after, and the
    dropped terms are exact zeros, so the results are equal bit for bit. Only a ``max_pool2d_grad``
    that the ``relu_grad`` alone reads is masked; the new nodes read ``g`` and ``p`` (fresh
    arrays, never variables) where the old ones ran.
    """
    graph = copy_graph(graph)
    report = PassReport("pooling-gradients")
    consumers = graph.consumers()
    pooled = {
        (node.inputs[0].id, _window(node.attrs)): node.outputs[0]
        for node in graph.nodes
        if node.op is conv_ops.max_pool2d_op
    }
    rewritten, reused = [], []
    for node in list(graph.nodes):
        if node.op is not conv_ops.max_pool2d_grad_op:
            continue
        y, grad = node.inputs
        pool = pooled.get((y.id, _window(node.attrs)))
        if pool is None:
            continue
        replaced = node
        if _masks_by(sole_consumer(graph, node.outputs[0], consumers), y):
            replaced = consumers[node.outputs[0].id][0]
            grad = new_node(graph, nn_ops.relu_grad_op, [grad, pool], {}, before=node).outputs[0]
            rewritten.append(replaced)
        unpooled = new_node(graph, pool_grad_ops.max_pool2d_grad_from_output_op, [y, pool, grad], dict(node.attrs), before=node)
        replace_uses(graph, replaced.outputs[0], unpooled.outputs[0])
        reused.append(node)
    remove_unused(graph)
    if reused:
        report.changes.append(f"reused the forward maximum in {plural(len(reused), 'pooling gradient')}: {describe(reused)}")
    if rewritten:
        report.changes.append(f"masked {plural(len(rewritten), 'gradient')} before unpooling: {describe(rewritten)}")
    return graph, report


def _masks_by(node, y) -> bool:
    """Whether ``node`` is a ``relu_grad`` whose mask is ``y``."""
    return node is not None and node.op is nn_ops.relu_grad_op and node.inputs[1] is y


def _window(attrs: dict) -> tuple:
    return tuple(attrs[key] for key in ("ksize", "strides", "padding"))
