"""Fusion: a matmul or convolution, its bias add and its activation become one fused op."""

from __future__ import annotations

from dataclasses import dataclass

from trainer.graph.ir import Graph, Node, Value
from trainer.graph.passes.rewrite import (
    PassReport,
    copy_graph,
    is_weight,
    listing,
    new_node,
    plural,
    remove_unused,
    replace_uses,
    sole_consumer,
)
from trainer.ops import fused_ops
from trainer.ops.registry import OpDef

# The primitive ops that have a fused form, and that form.
FUSED_FORMS: dict[str, OpDef] = {
    "matmul": fused_ops.fused_matmul_op,
    "conv2d": fused_ops.fused_conv2d_op,
    "depthwise_conv2d": fused_ops.fused_depthwise_conv2d_op,
}
# The activation ops a fused op can absorb: those it applies in place ("none" is no op).
_ACTIVATION_OPS = set(fused_ops.FUSED_ACTIVATIONS) - {"none"}


@dataclass
class Linear:
    """A matmul or convolution, plain or fused, described as the fused op that computes it."""

    node: Node
    op: OpDef  # the fused op
    x: Value
    weights: Value
    bias: Value | None
    attrs: dict  # the fused op's attributes, ``activation`` included

    def fused_inputs(self, weights=None, bias=None) -> list:
        weights = self.weights if weights is None else weights
        bias = self.bias if bias is None else bias
        return [self.x, weights] + ([] if bias is None else [bias])


def as_linear(node: Node) -> Linear | None:
    """``node`` as a fused op's inputs and attributes, when it is a matmul or convolution with a fused form."""
    name = node.op.name
    if node.op in FUSED_FORMS.values():
        bias = node.inputs[2] if len(node.inputs) == 3 else None
        return Linear(node, node.op, node.inputs[0], node.inputs[1], bias, dict(node.attrs))
    if name not in FUSED_FORMS:
        return None
    x, weights = node.inputs
    if name == "matmul":
        # fused_matmul is a dense layer: activations times a weight matrix (TFLite FULLY_CONNECTED)
        if node.attrs["transpose_a"] or len(weights.shape) != 2 or len(x.shape) < 2:
            return None
        attrs = {"activation": "none", "transpose_b": node.attrs["transpose_b"]}
    else:
        attrs = {"activation": "none", **node.attrs}
    return Linear(node, FUSED_FORMS[name], x, weights, None, attrs)


def bias_operand(add: Node, value: Value) -> Value | None:
    """The other operand of ``add`` when it is a weight vector along ``value``'s last axis (a bias)."""
    if add.op.name != "add" or len(add.inputs) != 2:
        return None
    other = add.inputs[1] if add.inputs[0] is value else add.inputs[0]
    channels = value.shape[-1] if value.shape else None
    if channels is None or not is_weight(other) or other.dtype is not value.dtype or other.shape != (channels,):
        return None
    return other


def fuse(graph: Graph) -> tuple[Graph, PassReport]:
    """Rewrites ``matmul``/``conv2d``/``depthwise_conv2d`` followed by an add of a bias vector (a
    constant or variable along the last axis) and/or one of the activations ``fused_ops`` applies in
    place (relu, relu6, tanh, sigmoid) into one ``fused_matmul``/``fused_conv2d``/
    ``fused_depthwise_conv2d``; a fused op without activation (from batch-norm folding) takes a
    following activation too.

    Safe because the fused kernels compute exactly the chain they replace (the primitive kernel, then
    the bias add and the activation in place). Only chains whose intermediate values have no other
    reader and are not graph outputs are fused, so no value anyone reads disappears. The fused node
    runs where the chain's last node ran, so its inputs (variables, or views of them) are read later
    than the chain's first node read them: a chain with a stateful node (a variable write) between
    its first and last node is left alone. Training graphs update their variables after the forward
    and backward passes, so their layer chains fuse too.
    """
    graph = copy_graph(graph)
    report = PassReport("fusion")
    crosses_a_write = _write_crossing(graph)
    # Computed once: a fusion rewires only the readers of its chain's last value, and the chains
    # are disjoint, so no later chain looks those readers up.
    consumers = graph.consumers()
    fused = []
    for node in list(graph.nodes):
        chain = _chain_from(graph, node, consumers, crosses_a_write)
        if chain is None:
            continue
        linear, bias, activation, absorbed = chain
        attrs = {**linear.attrs, "activation": activation}
        inputs = linear.fused_inputs(bias=bias)
        replacement = new_node(graph, linear.op, inputs, attrs, before=absorbed[-1], source=node.source)
        replace_uses(graph, absorbed[-1].outputs[0], replacement.outputs[0])
        fused.append((absorbed, replacement))
    remove_unused(graph)
    if fused:
        lines = (_describe_fusion(absorbed, replacement) for absorbed, replacement in fused)
        report.changes.append(f"fused {plural(len(fused), 'chain')}: {listing(lines)}")
    return graph, report


def _write_crossing(graph: Graph):
    """A test telling whether a stateful node runs strictly between two nodes of ``graph``."""
    position = {id(node): index for index, node in enumerate(graph.nodes)}
    writes = [index for index, node in enumerate(graph.nodes) if node.op.stateful]
    return lambda first, last: any(position[id(first)] < index < position[id(last)] for index in writes)


def _chain_from(graph: Graph, node: Node, consumers: dict, crosses_a_write):
    """(linear, bias, activation, absorbed nodes) for the chain starting at ``node``, or ``None``."""
    linear = as_linear(node)
    if linear is None or linear.attrs["activation"] != "none":
        return None
    absorbed, bias, activation = [node], linear.bias, "none"
    following = sole_consumer(graph, node.outputs[0], consumers)
    if bias is None and following is not None and following.op.name == "add":
        candidate = bias_operand(following, node.outputs[0])
        if candidate is not None:
            bias = candidate
            absorbed.append(following)
            following = sole_consumer(graph, following.outputs[0], consumers)
    if following is not None and following.op.name in _ACTIVATION_OPS:
        activation = following.op.name
        absorbed.append(following)
    if len(absorbed) == 1 or crosses_a_write(absorbed[0], absorbed[-1]):
        return None
    return linear, bias, activation, absorbed


def _describe_fusion(absorbed: list, replacement: Node) -> str:
    chain = " + ".join(f"{node.outputs[0].ref} {node.op.name}" for node in absorbed)
    return f"{chain} into {replacement.outputs[0].ref} {replacement.op.name}({replacement.attrs['activation']})"
