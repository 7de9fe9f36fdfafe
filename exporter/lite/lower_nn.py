"""Lite lowerings of the neural-network ops: matmul, convolutions, pooling, batch norm, activations.

The layouts are TFLite's: FULLY_CONNECTED weights ``[out, in]`` (a Keras kernel ``[in, out]``
transposed at export), CONV_2D filters ``[out, kh, kw, in]`` (from HWIO), DEPTHWISE_CONV_2D filters
``[1, kh, kw, in * multiplier]``; activations stay NHWC. A fused op's activation goes into the
operator's ``fused_activation_function`` where TFLite's kernels apply it (ReLU, ReLU6); tanh and
sigmoid follow as TANH and LOGISTIC.
"""

from __future__ import annotations

import numpy as np

from exporter.lite.context import constant_array, is_constant, tensor_type
from exporter.lite.schema import ActivationFunctionType, Padding
from exporter.lite.schema import BuiltinOperator as Op
from trainer.ops.registry import broadcast_shapes

# fused_ops.FUSED_ACTIVATIONS keys -> (what the TFLite operator applies itself, the operator that follows).
# TFLite's float kernels apply only clamping activations themselves (TANH in the enum is left alone by
# CONV_2D and FULLY_CONNECTED), so tanh and sigmoid become operators of their own, as TensorFlow's
# converter writes them.
FUSED_ACTIVATIONS = {
    "none": (ActivationFunctionType.NONE, None),
    "relu": (ActivationFunctionType.RELU, None),
    "relu6": (ActivationFunctionType.RELU6, None),
    "tanh": (ActivationFunctionType.NONE, Op.TANH),
    "sigmoid": (ActivationFunctionType.NONE, Op.LOGISTIC),
}

_KEEP_NUM_DIMS_VERSION = 5  # FULLY_CONNECTED's keep_num_dims arrived with version 5
_DILATED_DEPTHWISE_VERSION = 2  # DEPTHWISE_CONV_2D reads its dilation factors from version 2


def _with_activation(scope, node, activation: str, emit_into) -> None:
    """Calls ``emit_into(output_tensor, fused_code)``, then the activation's own operator if it has one."""
    if activation not in FUSED_ACTIVATIONS:
        scope.unsupported(f"its activation {activation!r} has no lite form", f"use one of {sorted(FUSED_ACTIVATIONS)}")
    out = node.outputs[0]
    fused, following = FUSED_ACTIVATIONS[activation]
    if following is None:
        emit_into(scope.output(out), int(fused))
        return
    before = scope.new_tensor(out.shape, out.dtype, node.op.name)
    emit_into(before, int(fused))
    scope.emit(following, [before], [scope.output(out, activation)])


def _transposed(scope, value, perm, hint: str) -> int:
    """``value`` rearranged by ``perm``: at export for a constant (one stored copy), by TRANSPOSE otherwise."""
    if is_constant(value):
        return scope.constant(np.ascontiguousarray(constant_array(value).transpose(perm)), value.name or None)
    shape = tuple(value.shape[p] for p in perm)
    return scope.op(Op.TRANSPOSE, [scope.tensor(value), scope.int32s(perm, "perm")], shape, value.dtype, hint)


# -- matmul ------------------------------------------------------------------------------------------------


def _fully_connected(scope, node, x, weights, bias, transpose_b: bool, activation: str) -> None:
    """FULLY_CONNECTED with ``[out, in]`` weights; inputs above rank 2 keep their leading dimensions."""
    weight_tensor = scope.tensor(weights) if transpose_b else _transposed(scope, weights, (1, 0), "weights")
    inputs = [scope.tensor(x), weight_tensor, scope.tensor(bias) if bias is not None else -1]
    keep = len(x.shape) > 2
    version = _KEEP_NUM_DIMS_VERSION if keep else 1

    def emit(output, fused):
        scope.emit(Op.FULLY_CONNECTED, inputs, [output], version, fused_activation_function=fused, keep_num_dims=keep)

    _with_activation(scope, node, activation, emit)


def _matmul(scope, node):
    """A constant rank-2 right operand makes FULLY_CONNECTED (a Dense without bias); anything else BATCH_MATMUL."""
    a, b = node.inputs
    transpose_a, transpose_b = node.attrs["transpose_a"], node.attrs["transpose_b"]
    if is_constant(b) and len(b.shape) == 2 and not transpose_a:
        _fully_connected(scope, node, a, b, None, transpose_b, "none")
        return
    inputs = [scope.tensor(a), scope.tensor(b)]
    scope.emit(
        Op.BATCH_MATMUL, inputs, [scope.output(node.outputs[0])], adj_x=bool(transpose_a), adj_y=bool(transpose_b)
    )


def _fused_matmul(scope, node):
    x, weights, *bias = node.inputs
    _fully_connected(
        scope, node, x, weights, bias[0] if bias else None, node.attrs["transpose_b"], node.attrs["activation"]
    )


# -- convolution and pooling --------------------------------------------------------------------------------


def _window_options(attrs) -> dict:
    (stride_h, stride_w), padding = attrs["strides"], attrs["padding"]
    return {"padding": int(Padding[padding]), "stride_w": int(stride_w), "stride_h": int(stride_h)}


def _conv(depthwise: bool):
    def lower(scope, node):
        x, filters, *bias = node.inputs
        attrs = node.attrs
        *_, channels, count = filters.shape  # [kh, kw, in, out] or [kh, kw, in, multiplier]
        options = _window_options(attrs)
        dilation_h, dilation_w = attrs["dilations"]
        options.update(dilation_w_factor=int(dilation_w), dilation_h_factor=int(dilation_h))
        if depthwise:
            lite_filters = _depthwise_filters(scope, filters)
            options["depth_multiplier"] = int(count)
            outputs = channels * count
            version = _DILATED_DEPTHWISE_VERSION if (dilation_h, dilation_w) != (1, 1) else 1
        else:
            lite_filters = _transposed(scope, filters, (3, 0, 1, 2), "filters")
            outputs, version = count, 1
        # TFLite's convolution kernels take the bias as a third input; a zero bias keeps every runtime happy.
        bias_tensor = (
            scope.tensor(bias[0])
            if bias
            else scope.constant(np.zeros(outputs, node.outputs[0].dtype.as_numpy_dtype), f"{scope.scope}/zero_bias")
        )
        code = Op.DEPTHWISE_CONV_2D if depthwise else Op.CONV_2D

        def emit(output, fused):
            scope.emit(
                code,
                [scope.tensor(x), lite_filters, bias_tensor],
                [output],
                version,
                fused_activation_function=fused,
                **options,
            )

        _with_activation(scope, node, attrs.get("activation", "none"), emit)

    return lower


def _depthwise_filters(scope, filters) -> int:
    """``[kh, kw, in, multiplier]`` as ``[1, kh, kw, in * multiplier]``: the same elements, in order."""
    kh, kw, channels, multiplier = filters.shape
    shape = (1, kh, kw, channels * multiplier)
    if is_constant(filters):
        return scope.constant(constant_array(filters).reshape(shape), filters.name or None)
    return scope.op(
        Op.RESHAPE,
        [scope.tensor(filters), scope.int32s(shape, "filter_shape")],
        shape,
        filters.dtype,
        "filters",
        new_shape=list(shape),
    )


def _pool(code: Op):
    def lower(scope, node):
        kernel_h, kernel_w = node.attrs["ksize"]
        options = _window_options(node.attrs)
        options.update(filter_width=int(kernel_w), filter_height=int(kernel_h))
        scope.single(code, node, **options)

    return lower


# -- batch norm, activations, softmax --------------------------------------------------------------------------


def _batch_norm_inference(scope, node):
    """``x * scale + shift`` with both vectors computed at export when the statistics are constants."""
    x, mean, variance, gamma, beta = node.inputs
    out = node.outputs[0]
    dtype = out.dtype.as_numpy_dtype
    epsilon = node.attrs["epsilon"]
    if all(is_constant(value) for value in (mean, variance, gamma, beta)):
        mean_, variance_, gamma_, beta_ = (
            constant_array(value).astype(dtype) for value in (mean, variance, gamma, beta)
        )
        scale = (1 / np.sqrt(variance_ + dtype(epsilon))) * gamma_  # the kernel's own order of operations
        shift = beta_ - mean_ * scale
        scaled = scope.op(
            Op.MUL, [scope.tensor(x), scope.constant(scale, f"{scope.scope}/scale")], out.shape, out.dtype, "scaled"
        )
        scope.emit(Op.ADD, [scaled, scope.constant(shift, f"{scope.scope}/shift")], [scope.output(out)])
        return
    stat_shape = broadcast_shapes(variance.shape, gamma.shape)

    def step(code, inputs, shape=out.shape):
        return scope.op(code, inputs, shape, out.dtype, "batch_norm")

    variance_plus = step(Op.ADD, [scope.tensor(variance), scope.scalar(epsilon, dtype, "epsilon")], variance.shape)
    scale = step(Op.MUL, [step(Op.RSQRT, [variance_plus], variance.shape), scope.tensor(gamma)], stat_shape)
    centered = step(Op.SUB, [scope.tensor(x), scope.tensor(mean)], broadcast_shapes(x.shape, mean.shape))
    scope.emit(Op.ADD, [step(Op.MUL, [centered, scale]), scope.tensor(beta)], [scope.output(out)])


def _relu_grad(scope, node):
    """``grad * (y > 0)``: GREATER, a CAST of the mask, MUL."""
    grad, y = node.inputs
    out = node.outputs[0]
    positive = scope.op(Op.GREATER, [scope.tensor(y), scope.scalar(0, y.dtype, "zero")], y.shape, np.bool_, "positive")
    mask = scope.op(
        Op.CAST,
        [positive],
        y.shape,
        out.dtype,
        "mask",
        in_data_type=int(tensor_type(np.bool_)),
        out_data_type=int(tensor_type(out.dtype)),
    )
    scope.emit(Op.MUL, [scope.tensor(grad), mask], [scope.output(out)])


def _softmax(code: Op, **options):
    """SOFTMAX / LOG_SOFTMAX work over the last axis; another axis is swapped there and back."""

    def lower(scope, node):
        x, out = node.inputs[0], node.outputs[0]
        rank = len(x.shape)
        axis = node.attrs["axis"] % rank
        if axis == rank - 1:
            scope.single(code, node, **options)
            return
        perm = list(range(rank))
        perm[axis], perm[-1] = perm[-1], perm[axis]
        swapped_shape = tuple(x.shape[p] for p in perm)
        swapped = scope.op(
            Op.TRANSPOSE, [scope.tensor(x), scope.int32s(perm, "perm")], swapped_shape, x.dtype, "to_last_axis"
        )
        result = scope.op(code, [swapped], swapped_shape, out.dtype, node.op.name, **options)
        scope.emit(Op.TRANSPOSE, [result, scope.int32s(perm, "perm")], [scope.output(out)])

    return lower


NN_LOWERINGS = {
    "matmul": _matmul,
    "fused_matmul": _fused_matmul,
    "conv2d": _conv(depthwise=False),
    "fused_conv2d": _conv(depthwise=False),
    "depthwise_conv2d": _conv(depthwise=True),
    "fused_depthwise_conv2d": _conv(depthwise=True),
    "max_pool2d": _pool(Op.MAX_POOL_2D),
    "avg_pool2d": _pool(Op.AVERAGE_POOL_2D),  # TFLite averages over the real pixels only, as TensorFlow does
    "batch_norm_inference": _batch_norm_inference,
    "relu": lambda scope, node: scope.single(Op.RELU, node),
    "relu6": lambda scope, node: scope.single(Op.RELU6, node),
    "leaky_relu": lambda scope, node: scope.single(Op.LEAKY_RELU, node, alpha=float(node.attrs["alpha"])),
    "relu_grad": _relu_grad,
    "softmax": _softmax(Op.SOFTMAX, beta=1.0),
    "log_softmax": _softmax(Op.LOG_SOFTMAX),
}
