"""Batch-norm folding: an inference batch norm after a matmul or convolution becomes new weights."""

from __future__ import annotations

import numpy as np

from trainer.graph.ir import Graph, Node, Value
from trainer.graph.passes.fusion import Linear, as_linear, bias_operand
from trainer.graph.passes.rewrite import (
    PassReport,
    add_constant,
    copy_graph,
    inference_only,
    is_weight,
    listing,
    new_node,
    plural,
    remove_unused,
    replace_uses,
    sole_consumer,
    state_dependent,
    weight_array,
)


@inference_only
def fold_batch_norms(graph: Graph) -> tuple[Graph, PassReport]:
    """Folds ``batch_norm_inference(y, mean, variance, gamma, beta)`` whose statistics are constants or
    variables, per channel of the last axis, into the matmul, conv2d or depthwise_conv2d computing
    ``y`` (plain, with a bias add, or a fused op without activation) whose weights are constants or
    variables: ``s = gamma / sqrt(variance + epsilon)``, weights ``w * s`` (per output channel) and bias
    ``(b - mean) * s + beta``, as one fused op without activation (``fuse`` adds the activation).

    Safe because the batch norm is an affine map per output channel, and a matmul or convolution is
    linear in its weights: ``(x @ w + b - mean) * s + beta = x @ (w * s) + ((b - mean) * s + beta)``.
    Only for inference: the new weights are constants computed from the variables' current values,
    so the graph no longer reads those variables (training would not reach them). Folded only when
    the matmul's and the bias add's results have no other reader.
    """
    graph = copy_graph(graph)
    report = PassReport("batch-norm-folding")
    dependent = state_dependent(graph)
    variables_before = len(graph.variables)
    # Computed once: a fold rewires only the readers of a batch norm's output, whose readers no later
    # fold looks up.
    consumers = graph.consumers()
    folded = []
    for node in list(graph.nodes):
        if node.op.name != "batch_norm_inference":
            continue
        found = _foldable_producer(graph, node, consumers, dependent)
        scale_shift = None if found is None else _scale_and_shift(node)
        if scale_shift is None:
            continue
        linear, bias = found
        weights, bias = _folded_weights(linear, bias, *scale_shift)
        inputs = linear.fused_inputs(weights=add_constant(graph, weights), bias=add_constant(graph, bias))
        replacement = new_node(graph, linear.op, inputs, linear.attrs, before=node, source=linear.node.source)
        replace_uses(graph, node.outputs[0], replacement.outputs[0])
        folded.append((node, linear.node, replacement))
    remove_unused(graph)
    if folded:
        lines = (f"{_name(bn)} into {_name(base)}, now {_name(new)}" for bn, base, new in folded)
        report.changes.append(f"folded {plural(len(folded), 'batch norm')}: {listing(lines)}")
    unread = variables_before - len(graph.variables)
    if unread:
        report.changes.append(f"the graph no longer reads {plural(unread, 'variable')} (now constants)")
    return graph, report


def _name(node: Node) -> str:
    return f"{node.outputs[0].ref} {node.op.name}"


def _foldable_producer(graph: Graph, node: Node, consumers: dict, dependent: set):
    """(the linear op computing the batch norm's input, its bias) when the batch norm can fold into it."""
    y = node.inputs[0]
    if y.kind != "node" or sole_consumer(graph, y, consumers) is not node:
        return None
    producer, bias = y.producer, None
    if producer.op.name == "add":
        for operand in producer.inputs:
            bias = bias_operand(producer, operand) if operand.kind == "node" else None
            if bias is not None:
                y = operand
                break
        if bias is None or sole_consumer(graph, y, consumers) is not producer:
            return None
        producer = y.producer
    linear = as_linear(producer)
    if linear is None or linear.attrs["activation"] != "none" or (bias is not None and linear.bias is not None):
        return None
    bias = linear.bias if bias is None else bias
    weights = [linear.weights] + ([bias] if bias is not None else []) + node.inputs[1:]
    if not all(is_weight(v) and v.id not in dependent for v in weights):
        return None
    return linear, bias


def _scale_and_shift(node: Node):
    """Per-channel ``s = gamma / sqrt(variance + epsilon)`` and ``beta - mean * s`` in float64, or
    ``None`` when a statistic varies along another axis than the last."""
    x = node.inputs[0]
    channels = x.shape[-1] if x.shape else None
    if channels is None:
        return None
    stats = [_per_channel(value, channels, len(x.shape)) for value in node.inputs[1:]]
    if any(s is None for s in stats):
        return None
    mean, variance, gamma, beta = stats
    scale = gamma / np.sqrt(variance + node.attrs["epsilon"])
    return scale, beta - mean * scale


def _per_channel(value: Value, channels: int, rank: int):
    """A statistic as a float64 vector over the last axis, if it broadcasts along that axis only."""
    array = weight_array(value)
    if array.ndim > rank or any(d != 1 for d in array.shape[:-1]):
        return None
    if array.ndim and array.shape[-1] not in (1, channels):
        return None
    return np.broadcast_to(array.astype(np.float64).reshape(-1), (channels,))


def _folded_weights(linear: Linear, bias: Value | None, scale, shift):
    """The weights scaled per output channel and the new bias, in the weights' dtype."""
    weights = weight_array(linear.weights)
    dtype = weights.dtype
    name = linear.op.name
    if name == "fused_matmul":
        per_output = scale[:, None] if linear.attrs["transpose_b"] else scale[None, :]
    elif name == "fused_depthwise_conv2d":  # output channel c * multiplier + m is filters[..., c, m]
        per_output = scale.reshape(weights.shape[2], weights.shape[3])
    else:
        per_output = scale
    new_bias = shift if bias is None else weight_array(bias).astype(np.float64) * scale + shift
    return (weights.astype(np.float64) * per_output).astype(dtype), new_bias.astype(dtype)
