"""Shared patches: a training step gathers each convolution's im2col patches once, not twice."""

from __future__ import annotations

from trainer.graph.ir import Graph, Node, Value
from trainer.graph.passes.rewrite import (
    PassReport,
    copy_graph,
    describe,
    new_node,
    plural,
    remove_unused,
    replace_uses,
    reshape_before,
    training_only,
)
from trainer.ops import conv_ops, fused_ops, math_ops, patch_ops

_WINDOW = ("strides", "padding", "dilations")
_FORWARD = (conv_ops.conv2d_op, fused_ops.fused_conv2d_op)


@training_only
def share_patches(graph: Graph) -> tuple[Graph, PassReport]:
    """Rewrites a convolution ``conv2d``/``fused_conv2d(x, filters, [bias])`` and the
    ``conv2d_backprop_filter(x, filters, grad)`` of the same ``x`` and window into one
    ``patches = conv2d_patches(x)`` and two matmuls over it:
    ``fused_matmul(patches, filters as [kh*kw*in, out], [bias])`` for the output and
    ``matmul(patches, grad, transpose_a=True)`` for the filter gradient (reshapes around both).

    Safe because both kernels compute exactly these products over the same patch matrix, so the
    results are equal bit for bit. The new forward nodes run where the convolution ran and the new
    gradient nodes where the backprop ran, reading what those read (the filters as a reshaped view,
    still before any update writes them); the patches, a fresh array, live from one to the other.
    """
    graph = copy_graph(graph)
    report = PassReport("shared-patches")
    forwards = {}
    for node in graph.nodes:
        if node.op in _FORWARD:
            forwards.setdefault(_key(node), node)
    shared = []
    for node in list(graph.nodes):
        if node.op is not conv_ops.conv2d_backprop_filter_op:
            continue
        forward = forwards.pop(_key(node), None)  # one backprop per forward: its patches are shared once
        if forward is None or not _shapes_allow(forward, node):
            continue
        patches = _patches_before(graph, forward)
        _rewrite_forward(graph, forward, patches)
        _rewrite_filter_gradient(graph, node, patches)
        shared.append(forward)
    remove_unused(graph)
    if shared:
        report.changes.append(f"shared the patches of {plural(len(shared), 'convolution')}: {describe(shared)}")
    return graph, report


def _shapes_allow(forward: Node, backprop: Node) -> bool:
    """Whether the filters match and every shape the reshapes need is known (the batch may be not)."""
    filters = forward.inputs[1].shape
    return filters == backprop.inputs[1].shape and None not in filters and None not in forward.outputs[0].shape[1:]


def _key(node: Node) -> tuple:
    return (node.inputs[0].id,) + tuple(node.attrs[name] for name in _WINDOW)


def _patches_before(graph: Graph, forward: Node) -> Value:
    """``conv2d_patches(x)`` as a matrix with one row per output pixel, computed just before ``forward``."""
    kh, kw, _, _ = forward.inputs[1].shape
    attrs = {"ksize": (kh, kw), **{name: forward.attrs[name] for name in _WINDOW}}
    patches = new_node(graph, patch_ops.conv2d_patches_op, [forward.inputs[0]], attrs, before=forward)
    depth = patches.outputs[0].shape[-1]
    return reshape_before(graph, patches.outputs[0], (-1, depth), forward)


def _rewrite_forward(graph: Graph, forward: Node, patches: Value) -> None:
    x, filters, *bias = forward.inputs
    kh, kw, channels, out = filters.shape
    matrix = reshape_before(graph, filters, (kh * kw * channels, out), forward)
    activation = forward.attrs.get("activation", "none")
    attrs = {"activation": activation, "transpose_b": False}
    rows = new_node(graph, fused_ops.fused_matmul_op, [patches, matrix, *bias], attrs, before=forward)
    _, height, width, _ = forward.outputs[0].shape
    image = reshape_before(graph, rows.outputs[0], (-1, height, width, out), forward)
    replace_uses(graph, forward.outputs[0], image)


def _rewrite_filter_gradient(graph: Graph, backprop: Node, patches: Value) -> None:
    _, filters, grad = backprop.inputs
    rows = reshape_before(graph, grad, (-1, filters.shape[3]), backprop)
    attrs = {"transpose_a": True, "transpose_b": False}
    product = new_node(graph, math_ops.matmul_op, [patches, rows], attrs, before=backprop)
    replace_uses(graph, backprop.outputs[0], reshape_before(graph, product.outputs[0], filters.shape, backprop))
