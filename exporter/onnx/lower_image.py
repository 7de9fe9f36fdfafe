"""ONNX lowerings of the image ops: convolutions, pooling, the fused inference ops and batch norm.

Conv and pooling read their input channels-first (``scope.get(x, CHANNELS_FIRST)`` transposes once,
where the layout changes) and leave their output channels-first, so the ops that follow a convolution
keep running in NCHW until one needs NHWC. Filters are rearranged once, at export: HWIO to OIHW, and
a depthwise ``[kh, kw, in, multiplier]`` to a grouped conv's ``[in * multiplier, 1, kh, kw]``.
"""

from __future__ import annotations

import numpy as np

from exporter.onnx.context import constant_array, is_constant
from exporter.onnx.layout import CHANNELS_FIRST, NATURAL, conv_filter, depthwise_filter
from trainer.ops.conv_ops import _axis_window  # TF's SAME/VALID window rule, written once in the trainer


def window_attrs(x, kernel, strides, dilations, padding) -> dict:
    """Conv/pool attributes for TF's padding: explicit pads when H and W are known, else SAME_UPPER
    (TF puts the odd pixel of SAME padding after, as SAME_UPPER does)."""
    attrs = {"kernel_shape": list(kernel), "strides": list(strides)}
    if padding == "VALID":
        return {**attrs, "pads": [0, 0, 0, 0]}
    if x.shape[1] is None or x.shape[2] is None:
        return {**attrs, "auto_pad": "SAME_UPPER"}
    rows = _axis_window(x.shape[1], kernel[0], strides[0], dilations[0], "SAME")
    cols = _axis_window(x.shape[2], kernel[1], strides[1], dilations[1], "SAME")
    return {**attrs, "pads": [rows.before, cols.before, rows.after, cols.after]}


def activation(scope, name: str, kind: str, dtype) -> str:
    """Applies a fused op's activation (``fused_ops.FUSED_ACTIVATIONS``) to the tensor ``name``."""
    if kind == "none":
        return name
    if kind == "relu6":
        return scope.node("Clip", [name, scope.scalar(0, dtype, "zero"), scope.scalar(6, dtype, "six")])
    op_types = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}
    if kind not in op_types:
        scope.unsupported(f"the fused activation {kind!r} has no ONNX lowering", "add it to lower_image.activation")
    return scope.node(op_types[kind], [name])


def _filters(scope, filters, depthwise: bool) -> str:
    """The ONNX Conv weight: rearranged at export for a constant, by Reshape/Transpose nodes otherwise."""
    rearrange = depthwise_filter if depthwise else conv_filter
    if is_constant(filters):
        return scope.constant(rearrange(constant_array(filters)), filters.name or None)
    if None in filters.shape:
        scope.unsupported(f"the filter shape {filters.shape} is not fully known", "export with constant filters")
    name = scope.get(filters)
    if depthwise:
        kh, kw, channels, multiplier = filters.shape
        name = scope.node("Reshape", [name, scope.int64s([kh, kw, 1, channels * multiplier], "shape")])
    return scope.node("Transpose", [name], perm=[3, 2, 0, 1])


def _conv(scope, node, depthwise: bool) -> None:
    x, filters, *bias = node.inputs
    attrs = node.attrs
    if depthwise and filters.shape[2] is None:
        scope.unsupported("the number of input channels is unknown", "build the model with a known channel count")
    inputs = [scope.get(x, CHANNELS_FIRST), _filters(scope, filters, depthwise)] + [scope.get(b) for b in bias]
    window = window_attrs(x, filters.shape[:2], attrs["strides"], attrs["dilations"], attrs["padding"])
    group = filters.shape[2] if depthwise else 1
    out = scope.node("Conv", inputs, dilations=list(attrs["dilations"]), group=group, **window)
    out = activation(scope, out, attrs.get("activation", "none"), node.outputs[0].dtype)
    scope.bind(node.outputs[0], out, CHANNELS_FIRST)


def _pool(op_type: str, **extra):
    def lower(scope, node):
        x, attrs = node.inputs[0], node.attrs
        window = window_attrs(x, attrs["ksize"], attrs["strides"], (1, 1), attrs["padding"])
        out = scope.node(op_type, [scope.get(x, CHANNELS_FIRST)], **window, **extra)
        scope.bind(node.outputs[0], out, CHANNELS_FIRST)

    return lower


def _fused_matmul(scope, node):
    """Gemm(x, W, bias) for a rank-2 ``x``, MatMul + Add above rank 2; then the activation."""
    x, weights, *bias = node.inputs
    transpose_b = node.attrs["transpose_b"]
    if transpose_b and is_constant(weights):  # store the weights the way they are used
        weights_name, transpose_b = scope.constant(constant_array(weights).T, weights.name or None), False
    else:
        weights_name = scope.get(weights)
    if len(x.shape) == 2:
        inputs = [scope.get(x), weights_name] + [scope.get(b) for b in bias]
        out = scope.node("Gemm", inputs, transB=int(transpose_b) or None)
    else:
        if transpose_b:
            weights_name = scope.node("Transpose", [weights_name], perm=[1, 0])
        out = scope.node("MatMul", [scope.get(x), weights_name])
        if bias:
            out = scope.node("Add", [out, scope.get(bias[0])])
    scope.bind(node.outputs[0], activation(scope, out, node.attrs["activation"], node.outputs[0].dtype))


def _channel_vector(scope, value, channels):
    """A statistic as the [C] vector BatchNormalization takes, or None when it is not per-channel."""
    if is_constant(value):
        array = constant_array(value)
        if array.size in (1, channels) and array.ndim <= 1:  # a scalar statistic is the same for every channel
            return scope.constant(np.broadcast_to(array.reshape(-1), (channels,)), value.name or None)
        return None
    return scope.get(value) if value.shape == (channels,) else None


def _batch_norm_inference(scope, node):
    """BatchNormalization over the channel axis when the statistics are per-channel (rank-2 inputs as
    they are, rank-4 in NCHW); other broadcasts as (x - mean) * gamma / sqrt(var + eps) + beta."""
    x, mean, variance, gamma, beta = node.inputs
    channels = x.shape[-1]
    epsilon = float(node.attrs["epsilon"])
    if channels is not None and len(x.shape) in (2, 4):
        vectors = [_channel_vector(scope, value, channels) for value in (gamma, beta, mean, variance)]
        if None not in vectors:
            layout = CHANNELS_FIRST if len(x.shape) == 4 else NATURAL
            out = scope.node("BatchNormalization", [scope.get(x, layout), *vectors], epsilon=epsilon)
            scope.bind(node.outputs[0], out, layout)
            return
    layout = scope.elementwise_layout(node)
    x, mean, variance, gamma, beta = (scope.broadcast_input(value, layout) for value in node.inputs)
    shifted = scope.node("Add", [variance, scope.scalar(epsilon, node.outputs[0].dtype, "epsilon")])
    scale = scope.node("Mul", [scope.node("Reciprocal", [scope.node("Sqrt", [shifted])]), gamma])
    out = scope.node("Add", [scope.node("Mul", [scope.node("Sub", [x, mean]), scale]), beta])
    scope.bind(node.outputs[0], out, layout)


IMAGE_LOWERINGS = {
    "conv2d": lambda scope, node: _conv(scope, node, depthwise=False),
    "depthwise_conv2d": lambda scope, node: _conv(scope, node, depthwise=True),
    "fused_conv2d": lambda scope, node: _conv(scope, node, depthwise=False),
    "fused_depthwise_conv2d": lambda scope, node: _conv(scope, node, depthwise=True),
    "max_pool2d": _pool("MaxPool"),
    # TF averages SAME-padded windows over their real pixels only.
    "avg_pool2d": _pool("AveragePool", count_include_pad=0),
    "fused_matmul": _fused_matmul,
    "batch_norm_inference": _batch_norm_inference,
}
