"""Phase pooling: a training step's convolution + tiling max pool, computed phase by phase.

After ``share_patches`` and ``mask_before_unpooling``, a convolution followed by a ``ph x pw`` max
pool with stride ``ph x pw`` reads::

    p   = reshape(conv2d_patches(x))             r = fused_matmul(p, w, b) {relu|none}
    y   = reshape(r)                             pooled = max_pool2d(y)
    ...                                          dy = max_pool2d_grad_from_output(y, pooled, g)
    db  = sum_to_like(dy, b)                     dw = matmul(p, reshape(dy), transpose_a=True)
    dx  = conv2d_backprop_input(x, w, dy)        (when x needs a gradient)

Every pooling kernel there walks ``y`` in ``C``-float runs (the members of a window sit one pixel
apart), and ``y`` is the largest array of the step. This pass gathers the patches phase-major
(``trainer/ops/phase_ops.py``), so the product comes out as one contiguous image per window position,
and moves the bias and the ReLU after the pool (both commute with a maximum: the bias is the same for
every member of a window, and the ReLU is monotonic)::

    q  = reshape(conv2d_phase_patches(x))        z = matmul(q, w)
    pooled, k = max_pool_phases(reshape(z), b) {relu}        (that is, relu(max(z) + b))
    u  = unpool_phases(k, g)                     db = sum_to_like(g, b)
    dw = matmul(q, reshape(u), transpose_a=True) dx = conv2d_backprop_input_from_phases(x, w, u)

(without an input gradient, ``dw = unpooled_filter_gradient(q, k, g)`` makes ``u`` block by block).

An evaluation or prediction step has no gradients: there a ``fused_conv2d`` with any non-decreasing
activation, read by nothing but a tiling pool, gets the same forward nodes. Exports never see this
pass (it is training-only: ``optimize(..., for_inference=True)`` skips it), so lite and ONNX files
keep the convolution and the pool.

Outputs are the same values up to float rounding: ``max(z) + b`` is the ``max(z + b)`` that the
original rounds per member, and the gradient goes to the first maximum as before (two members whose
sums with ``b`` round to the same float but differ before the bias are told apart by the new graph;
the old one sent the gradient to the first). The convolution pixels no window reads (the last row or
column of an odd size) are not computed at all.
"""

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
from trainer.ops import array_ops, conv_ops, fused_ops, math_ops, patch_ops, phase_ops, pool_grad_ops

_ACTIVATIONS = ("none", "relu")  # the ones whose gradient mask_before_unpooling moved
# Without gradients any non-decreasing activation commutes with the maximum (GELU or swish would not).
_MONOTONIC_ACTIVATIONS = ("none", "relu", "relu6", "sigmoid", "tanh")


@training_only
def pool_by_phases(graph: Graph) -> tuple[Graph, PassReport]:
    """Rewrites each convolution + tiling max pool of the form above (see the module's docstring)."""
    graph = copy_graph(graph)
    report = PassReport("phase-pooling")
    rewritten, forward_only = [], []
    for pool in [node for node in graph.nodes if node.op is conv_ops.max_pool2d_op]:
        match = _match(graph, pool)
        if match is not None:
            _rewrite(graph, pool, match)
            rewritten.append(pool)
        elif _rewrite_forward(graph, pool):
            forward_only.append(pool)
    remove_unused(graph)
    if rewritten:
        report.changes.append(f"pooled {plural(len(rewritten), 'convolution')} by phases: {describe(rewritten)}")
    if forward_only:
        report.changes.append(f"pooled {plural(len(forward_only), 'convolution')} without gradients by phases: {describe(forward_only)}")
    return graph, report


def _rewrite_forward(graph: Graph, pool: Node) -> bool:
    """The pass for a ``fused_conv2d`` + tiling pool without gradients (an evaluation or prediction
    step): the same forward nodes as a training step gets, when nothing but the pool reads the image."""
    attrs, image = pool.attrs, pool.inputs[0]
    convolution = image.producer
    if attrs["ksize"] != attrs["strides"] or attrs["padding"] != "VALID" or not _is(convolution, fused_ops.fused_conv2d_op):
        return False
    x, filters, *bias = convolution.inputs
    if convolution.attrs["activation"] not in _MONOTONIC_ACTIVATIONS or None in image.shape[1:] or None in filters.shape:
        return False
    if not _only_read_by(graph, image, graph.consumers(), {pool}):
        return False
    kh, kw, channels, out = filters.shape
    window = {"ksize": (kh, kw), **{key: convolution.attrs[key] for key in ("strides", "padding", "dilations")}}
    matrix = reshape_before(graph, filters, (kh * kw * channels, out), pool)
    _pool_by_phases(graph, pool, x, matrix, bias, window, convolution.attrs["activation"])
    return True


def _pool_by_phases(graph: Graph, pool: Node, x: Value, matrix: Value, bias: list, window: dict, activation: str):
    """The forward nodes, placed before ``pool`` and replacing its output: the phase-major patches of
    ``x``, their product with the filter ``matrix``, and the pool with the bias and the activation.
    Returns the patch matrix and the ``max_pool_phases`` node."""
    ph, pw = pool.attrs["ksize"]
    _, rows, cols, channels = pool.outputs[0].shape
    patches = new_node(graph, phase_ops.conv2d_phase_patches_op, [x], {**window, "pool": (ph, pw)}, before=pool)
    patch_matrix = reshape_before(graph, patches.outputs[0], (-1, patches.outputs[0].shape[-1]), pool)
    attrs = {"activation": "none", "transpose_b": False}
    product = new_node(graph, fused_ops.fused_matmul_op, [patch_matrix, matrix], attrs, before=pool)
    stacked = reshape_before(graph, product.outputs[0], (ph * pw, -1, rows, cols, channels), pool)
    pooling = new_node(graph, phase_ops.max_pool_phases_op, [stacked, *bias], {"activation": activation}, before=pool)
    replace_uses(graph, pool.outputs[0], pooling.outputs[0])
    return patch_matrix, pooling


class _Match:
    """The nodes of one convolution + pool and its gradients that the rewrite replaces."""

    def __init__(self, patches, product, unpool, filter_gradient, bias_gradient, input_gradient):
        self.patches, self.product, self.unpool = patches, product, unpool
        self.filter_gradient, self.bias_gradient, self.input_gradient = filter_gradient, bias_gradient, input_gradient


def _match(graph: Graph, pool: Node) -> _Match | None:
    attrs = pool.attrs
    if attrs["ksize"] != attrs["strides"] or attrs["padding"] != "VALID":
        return None
    consumers = graph.consumers()
    image = pool.inputs[0]
    reshape = image.producer
    if not _is(reshape, array_ops.reshape_op) or None in image.shape[1:]:
        return None
    product = reshape.inputs[0].producer
    if not _is(product, fused_ops.fused_matmul_op) or product.attrs["transpose_b"]:
        return None
    if product.attrs["activation"] not in _ACTIVATIONS or not _only_read_by(graph, product.outputs[0], consumers, {reshape}):
        return None
    rows = product.inputs[0]
    patches = rows.producer.inputs[0].producer if _is(rows.producer, array_ops.reshape_op) else None
    if not _is(patches, patch_ops.conv2d_patches_op) or not _only_read_by(graph, patches.outputs[0], consumers, {rows.producer}):
        return None
    # The pooled image is read by the pool and by one gradient of that pool, nothing else.
    unpools = [n for n in consumers.get(image.id, []) if n is not pool]
    if len(unpools) != 1 or any(v is image for v in graph.outputs):
        return None
    (unpool,) = unpools
    if unpool.op is not pool_grad_ops.max_pool2d_grad_from_output_op or unpool.attrs != attrs:
        return None
    if unpool.inputs[0] is not image or unpool.inputs[1] is not pool.outputs[0] or unpool.inputs[2] is image:
        return None
    # The image's gradient feeds the filter gradient (through a reshape), the bias gradient and the
    # convolution's input gradient, nothing else.
    bias = product.inputs[2] if len(product.inputs) == 3 else None
    filter_gradient = bias_gradient = input_gradient = None
    for reader in consumers.get(unpool.outputs[0].id, []):
        if _is(reader, math_ops.sum_to_like_op) and bias is not None and reader.inputs[1] is bias and bias_gradient is None:
            bias_gradient = reader
        elif _is(reader, conv_ops.conv2d_backprop_input_op) and input_gradient is None and _same_convolution(reader, patches, unpool):
            input_gradient = reader
        elif _is(reader, array_ops.reshape_op) and filter_gradient is None:
            filter_gradient = _filter_gradient(graph, reader, rows, consumers)
            if filter_gradient is None:
                return None
        else:
            return None
    if filter_gradient is None or (bias is not None and bias_gradient is None):
        return None
    if not _only_read_by(graph, rows, consumers, {product, filter_gradient}):
        return None
    return _Match(patches, product, unpool, filter_gradient, bias_gradient, input_gradient)


def _same_convolution(backprop: Node, patches: Node, unpool: Node) -> bool:
    """Whether ``backprop`` is the input gradient of the convolution whose patches ``patches`` gathers."""
    x, filters, grad = backprop.inputs
    window = ("strides", "padding", "dilations")
    return (
        x is patches.inputs[0]
        and grad is unpool.outputs[0]
        and tuple(filters.shape[:2]) == tuple(patches.attrs["ksize"])
        and all(backprop.attrs[key] == patches.attrs[key] for key in window)
    )


def _filter_gradient(graph, reshape: Node, rows: Value, consumers) -> Node | None:
    """The ``matmul(rows, reshape(dy), transpose_a=True)`` that ``reshape`` alone feeds, if it is one."""
    readers = consumers.get(reshape.outputs[0].id, [])
    if len(readers) != 1 or any(v is reshape.outputs[0] for v in graph.outputs):
        return None
    (product,) = readers
    if product.op is not math_ops.matmul_op or len(product.inputs) != 2:
        return None
    if product.inputs[0] is not rows or product.inputs[1] is not reshape.outputs[0]:
        return None
    return product if product.attrs == {"transpose_a": True, "transpose_b": False} else None


def _only_read_by(graph: Graph, value: Value, consumers, readers: set) -> bool:
    return set(map(id, consumers.get(value.id, []))) <= set(map(id, readers)) and not any(v is value for v in graph.outputs)


def _is(node, op) -> bool:
    return node is not None and node.op is op


def _rewrite(graph: Graph, pool: Node, match: _Match) -> None:
    ph, pw = pool.attrs["ksize"]
    phases = ph * pw
    channels = pool.outputs[0].shape[-1]
    x = match.patches.inputs[0]
    filters, *bias = match.product.inputs[1:]
    # Forward, where the pool ran (everything it reads is computed by then, and no update has run).
    window = {key: match.patches.attrs[key] for key in ("ksize", "strides", "padding", "dilations")}
    activation = match.product.attrs["activation"]
    matrix, pooling = _pool_by_phases(graph, pool, x, filters, bias, window, activation)
    argmax = pooling.outputs[1]
    # Backward, where the pool's gradient ran.
    grad = match.unpool.inputs[2]
    if match.input_gradient is None:
        # Only the filter gradient reads the unpooled gradient: it is made block by block, in cache.
        op = phase_ops.unpooled_filter_gradient_op
        filter_grad = new_node(graph, op, [matrix, argmax, grad], {}, before=match.unpool).outputs[0]
    else:
        placed = new_node(graph, phase_ops.unpool_phases_op, [argmax, grad], {"phases": phases}, before=match.unpool)
        rows_grad = reshape_before(graph, placed.outputs[0], (-1, channels), match.unpool)
        attrs = {"transpose_a": True, "transpose_b": False}
        filter_grad = new_node(graph, math_ops.matmul_op, [matrix, rows_grad], attrs, before=match.unpool).outputs[0]
        # The input gradient scatters pixel by pixel: it reads the phases back in the image layout,
        # skipping the pixels no window reads (their gradient is zero).
        x_grad, filters_4d, _ = match.input_gradient.inputs
        attrs = {"pool": (ph, pw), **match.input_gradient.attrs}
        op = phase_ops.conv2d_backprop_input_from_phases_op
        backprop = new_node(graph, op, [x_grad, filters_4d, placed.outputs[0]], attrs, before=match.unpool)
        replace_uses(graph, match.input_gradient.outputs[0], backprop.outputs[0])
    replace_uses(graph, match.filter_gradient.outputs[0], filter_grad)
    if match.bias_gradient is not None:
        bias_grad = new_node(graph, math_ops.sum_to_like_op, [grad, bias[0]], {}, before=match.unpool)
        replace_uses(graph, match.bias_gradient.outputs[0], bias_grad.outputs[0])
