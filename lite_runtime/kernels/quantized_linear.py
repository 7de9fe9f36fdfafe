"""FULLY_CONNECTED, CONV_2D and DEPTHWISE_CONV_2D on int8 weights: full int8 and hybrid (dynamic range).

int8 (``reference_integer_ops``): acc = Σ (x − x_zp)·w + bias in int32, then
``MultiplyByQuantizedMultiplier`` with M = x_scale·w_scale/y_scale (per output channel), + y_zp, clamped
to the fused activation's range. Hybrid (``EvalHybrid``): the float input is quantized per batch row
(``SymmetricQuantizeFloats``, or ``AsymmetricQuantizeFloats`` for per-channel convolutions and when
``asymmetric_quantize_inputs`` is set), the same integer product is taken, and the result is scaled back
to float with row_scale·w_scale and added to the float bias.

The integer products run through float BLAS: every term is an integer below 2^15 in magnitude, so a
sum of ``depth`` terms is exact in float32 while depth·255·127 < 2^24, and in float64 far beyond.
"""

from __future__ import annotations

import math

import numpy as np

from lite_runtime.kernels import fixed_point
from lite_runtime.kernels.base import FLOAT32, Node, activation
from lite_runtime.kernels.conv import geometry
from lite_runtime.schema import BuiltinOperator as Op

INT8 = np.dtype(np.int8)
_LARGEST_TERM = 255 * 127


def exact_float(depth: int) -> np.dtype:
    """The narrowest float type in which a sum of ``depth`` int8 products is exact."""
    return np.dtype(np.float32) if depth * _LARGEST_TERM < 2**24 else np.dtype(np.float64)


def per_tensor(node: Node, tensor, what: str) -> tuple[np.float32, int]:
    """(scale, zero point) of a per-tensor quantized tensor."""
    node.check(tensor.scales is not None and len(tensor.scales) >= 1,
               f"{what} is {tensor.dtype} without quantization parameters")  # fmt: skip
    scale = np.float32(tensor.scales[0])
    node.check(np.isfinite(scale) and scale > 0, f"{what} scale {scale} is not a positive finite number")
    zero_point = int(tensor.zero_points[0]) if len(tensor.zero_points) else 0
    node.check(-(2**15) <= zero_point < 2**15, f"{what} zero point {zero_point} is out of range")
    return scale, zero_point


def channel_scales(node: Node, weights, channels: int, axis: int) -> np.ndarray:
    """The weights' float32 scales broadcast to ``channels`` (per tensor or per channel on ``axis``)."""
    scales = weights.scales
    count = 0 if scales is None else len(scales)
    node.check(count in (1, channels), f"weights have {count} scales, expected 1 or {channels}")
    node.check(len(scales) == 1 or weights.quantized_dimension == axis,
               f"weights are quantized on dimension {weights.quantized_dimension}, expected {axis}")  # fmt: skip
    node.check(not len(weights.zero_points) or not np.any(weights.zero_points), "int8 weights must have zero point 0")
    node.check(bool(np.all(np.isfinite(scales) & (scales > 0))), "weight scales must be positive finite numbers")
    return np.broadcast_to(scales.astype(np.float32), (channels,)).copy()


def output_requantization(node: Node, x, weight_scales: np.ndarray, per_channel: bool):
    """Multipliers, shifts, output zero point and clamp range, as ``PopulateConvolutionQuantizationParams``."""
    node.check(node.outputs[0].dtype == INT8, f"output is {node.outputs[0].dtype}, expected int8 for an int8 input")
    x_scale, _ = per_tensor(node, x, "input")
    y_scale, y_zero_point = per_tensor(node, node.outputs[0], "output")
    if per_channel:
        real = np.float64(x_scale) * weight_scales.astype(np.float64) / np.float64(y_scale)
    else:  # GetQuantizedConvolutionMultipler multiplies the two scales in float32
        real = np.full(weight_scales.shape, np.float64(np.float32(x_scale * weight_scales[0])) / np.float64(y_scale))
    multipliers, shifts = fixed_point.quantize_multipliers(real)
    low, high = fixed_point.activation_range(node, node.option("fused_activation_function"), y_scale, y_zero_point)
    return multipliers, shifts, y_zero_point, low, high


def int32_bias(node: Node, channels: int):
    bias = node.input(2)
    if bias is None:
        return None
    node.check(bias.dtype == np.int32 and bias.shape == (channels,),
               f"bias {bias.dtype} {list(bias.shape)}, expected int32 [{channels}]")  # fmt: skip
    return node.constant(2, "int32 bias").astype(np.int64)


def float_bias(node: Node, channels: int):
    bias = node.input(2)
    if bias is None:
        return None
    node.check(bias.dtype == FLOAT32 and bias.shape == (channels,),
               f"bias {bias.dtype} {list(bias.shape)}, expected float32 [{channels}]")  # fmt: skip
    return node.constant(2, "float32 bias")


def requantize_into(out: np.ndarray, accumulators, bias, requantization) -> None:
    """int32 accumulators (+ bias) -> int8 ``out``: the rescale every int8 product ends with."""
    multipliers, shifts, zero_point, low, high = requantization
    accumulators = accumulators.astype(np.int64)
    if bias is not None:
        accumulators += bias
    scaled = fixed_point.multiply_by_quantized_multiplier(accumulators, multipliers, shifts) + zero_point
    np.clip(scaled, low, high, out=scaled)
    np.copyto(out, scaled.reshape(out.shape), casting="unsafe")


# -- quantizing float inputs at run time (hybrid kernels) ---------------------------------------------------
def quantize_rows(rows: np.ndarray, asymmetric: bool):
    """``SymmetricQuantizeFloats`` / ``AsymmetricQuantizeFloats`` of each row of a float32 matrix.

    Returns (int8 values as float, float32 scale per row, zero point per row)."""
    low = rows.min(axis=1)
    high = rows.max(axis=1)
    if not asymmetric:
        extent = np.maximum(np.abs(low), np.abs(high))
        empty = extent == 0
        extent = np.where(empty, np.float32(1), extent)
        scales = np.where(empty, np.float32(1), extent / np.float32(127)).astype(np.float32)
        inverse = (np.float32(127) / extent).astype(np.float32)
        values = np.clip(fixed_point.round_half_away(rows * inverse[:, None]), -127, 127)
        return values, scales, np.zeros(len(rows), np.int64)
    low = np.minimum(low, 0).astype(np.float64)
    high = np.maximum(high, 0).astype(np.float64)
    empty = low == high
    scale = np.where(empty, 1.0, (high - low) / 255.0)
    from_min, from_max = -128 - low / scale, 127 - high / scale
    zero_point = np.where(128 + np.abs(low / scale) < 127 + np.abs(high / scale), from_min, from_max)
    zero_point = np.clip(fixed_point.round_half_away(zero_point), -128, 127)
    zero_point = np.where(empty, 0, zero_point).astype(np.int64)
    scales = np.where(empty, 1.0, scale).astype(np.float32)
    inverse = (1.0 / scales.astype(np.float64)).astype(np.float32)
    shifted = zero_point.astype(np.float32)[:, None] + rows * inverse[:, None]
    values = np.where(empty[:, None], 0, np.clip(fixed_point.round_half_away(shifted), -128, 127))
    return values, scales, zero_point


# -- FULLY_CONNECTED ----------------------------------------------------------------------------------------
def _fully_connected_shape(node: Node, x, units: int, depth: int):
    size = math.prod(x.shape)
    node.check(depth > 0 and x.shape and size % depth == 0, f"input {list(x.shape)} does not divide into rows of {depth}")
    if node.option("keep_num_dims"):
        node.check(x.shape[-1] == depth, f"input last dim {x.shape[-1]}, expected {depth}")
        return size // depth, (*x.shape[:-1], units)
    return size // depth, (size // depth, units)


def prepare_fully_connected(node: Node):
    node.arity(2, 3)
    x, weights = node.inputs[0], node.inputs[1]
    node.check(weights.dtype == INT8, f"weights are {weights.dtype}, expected int8 (or float32 weights with a float32 input)")
    node.check(len(weights.shape) == 2, f"weights must be [out, in], got {list(weights.shape)}")
    node.check(node.option("weights_format") == 0, "only the DEFAULT weights format is supported")
    units, depth = weights.shape
    rows, shape = _fully_connected_shape(node, x, units, depth)
    scales = channel_scales(node, weights, units, 0)
    matrix = np.ascontiguousarray(node.constant(1, "int8 weights").T, exact_float(depth))  # C order: BLAS
    product = node.scratch((rows, units), matrix.dtype)
    if x.dtype == FLOAT32:
        node.check(node.outputs[0].dtype == FLOAT32, f"output is {node.outputs[0].dtype}, expected float32 for a float32 input")
        asymmetric = bool(node.option("asymmetric_quantize_inputs"))
        act = activation(node, node.option("fused_activation_function"))
        centered = node.scratch((rows, depth), matrix.dtype)
        state = (rows, depth, centered, matrix, product, scales, float_bias(node, units), asymmetric, act)
        return [(shape, FLOAT32)], (_eval_hybrid_fully_connected, state)
    node.check(x.dtype == INT8, f"input is {x.dtype}, expected int8 or float32")
    _x_scale, x_zero_point = per_tensor(node, x, "input")
    requantization = output_requantization(node, x, scales, len(weights.scales) > 1)
    centered = node.scratch((rows, depth), matrix.dtype)
    state = (rows, depth, x_zero_point, centered, matrix, product, int32_bias(node, units), requantization)
    return [(shape, INT8)], (_eval_fully_connected, state)


def _eval_fully_connected(state, inputs, outputs):
    rows, depth, x_zero_point, centered, matrix, product, bias, requantization = state
    np.subtract(inputs[0].reshape(rows, depth), x_zero_point, out=centered, dtype=centered.dtype)
    np.matmul(centered, matrix, out=product)
    requantize_into(outputs[0], product, bias, requantization)


def _eval_hybrid_fully_connected(state, inputs, outputs):
    rows, depth, centered, matrix, product, scales, bias, asymmetric, act = state
    values, row_scales, zero_points = quantize_rows(inputs[0].reshape(rows, depth), asymmetric)
    np.subtract(values, zero_points[:, None], out=centered, casting="unsafe")  # small integers: exact
    np.matmul(centered, matrix, out=product)
    write_hybrid(outputs[0].reshape(product.shape), product, row_scales[:, None], scales, bias, act)


def write_hybrid(out, dot, row_scales, channel_scales, bias, act) -> None:
    """out = dot · (row scale · channel scale) + bias, in float32 in TFLite's order, then the activation."""
    scale = (row_scales * channel_scales).astype(np.float32)
    np.multiply(dot.astype(np.float32), scale, out=out)
    if bias is not None:
        np.add(out, bias, out=out)
    if act is not None:
        act(out)


# -- CONV_2D and DEPTHWISE_CONV_2D ----------------------------------------------------------------------------
def _convolution_input(node: Node, x, kernel_h: int, kernel_w: int, depth: int):
    """The geometry with a float scratch wide enough to hold the centered int8 input exactly."""
    dtype = exact_float(depth)
    (batch, out_h, out_w), _padded, interior, taps = geometry(node, x, kernel_h, kernel_w, dtype)
    return (batch, out_h, out_w), interior, taps, dtype


def prepare_conv(node: Node):
    node.arity(2, 3)
    x, filters = node.inputs[0], node.inputs[1]
    node.check(filters.dtype == INT8, f"filters are {filters.dtype}, expected int8 (or float32 with a float32 input)")
    node.check(len(filters.shape) == 4, f"filters must be [out, kh, kw, in], got {list(filters.shape)}")
    channels_out, kernel_h, kernel_w, channels_in = filters.shape
    node.check(len(x.shape) == 4 and x.shape[3] == channels_in and channels_in > 0,
               f"input {list(x.shape)} does not have {channels_in} channels")  # fmt: skip
    depth = kernel_h * kernel_w * channels_in
    (batch, out_h, out_w), interior, taps, dtype = _convolution_input(node, x, kernel_h, kernel_w, depth)
    columns = node.scratch((batch, out_h, out_w, kernel_h * kernel_w, channels_in), dtype)
    rows = batch * out_h * out_w
    weights = node.constant(1, "int8 filters").reshape(channels_out, depth)
    matrix = np.ascontiguousarray(weights.T, dtype)
    product = node.scratch((rows, channels_out), dtype)
    scales = channel_scales(node, filters, channels_out, 0)
    per_channel = len(filters.scales) > 1
    im2col = (interior, taps, columns, rows, depth, matrix, product)
    shape = (batch, out_h, out_w, channels_out)
    if x.dtype == FLOAT32:
        node.check(node.outputs[0].dtype == FLOAT32, f"output is {node.outputs[0].dtype}, expected float32 for a float32 input")
        hybrid = _hybrid_state(node, x, scales, per_channel, channels_out)
        return [(shape, FLOAT32)], (_eval_hybrid_conv, (im2col, hybrid))
    node.check(x.dtype == INT8, f"input is {x.dtype}, expected int8 or float32")
    _x_scale, x_zero_point = per_tensor(node, x, "input")
    state = (im2col, x_zero_point, int32_bias(node, channels_out), output_requantization(node, x, scales, per_channel))
    return [(shape, INT8)], (_eval_conv, state)


def _hybrid_state(node: Node, x, scales, per_channel: bool, channels: int):
    # Per-channel convolutions quantize their input asymmetrically (conv.cc EvalHybridPerChannel), per image.
    return (x.shape[0], scales, float_bias(node, channels), per_channel,
            activation(node, node.option("fused_activation_function")))  # fmt: skip


def _im2col_product(im2col) -> np.ndarray:
    """The product of the filters with the patches of the (centered) input already in the padded scratch."""
    _interior, taps, columns, rows, depth, matrix, product = im2col
    for k, tap in enumerate(taps):
        np.copyto(columns[:, :, :, k, :], tap)
    return np.matmul(columns.reshape(rows, depth), matrix, out=product)


def _eval_conv(state, inputs, outputs):
    im2col, x_zero_point, bias, requantization = state
    interior = im2col[0]
    np.subtract(inputs[0], x_zero_point, out=interior, dtype=interior.dtype)  # padding stays 0: TFLite skips it
    product = _im2col_product(im2col)
    requantize_into(outputs[0], product, bias, requantization)


def _quantize_images(x: np.ndarray, asymmetric: bool):
    """Each image of the batch quantized as one row; returns the centered values (padding-neutral)."""
    batch = x.shape[0]
    values, scales, zero_points = quantize_rows(x.reshape(batch, -1), asymmetric)
    centered = values.reshape(x.shape) - zero_points.reshape(batch, 1, 1, 1)
    return centered, scales


def _eval_hybrid_conv(state, inputs, outputs):
    im2col, (batch, scales, bias, asymmetric, act) = state
    centered, row_scales = _quantize_images(inputs[0], asymmetric)
    np.copyto(im2col[0], centered)
    product = _im2col_product(im2col)
    out = outputs[0].reshape(batch, -1, product.shape[1])
    write_hybrid(out, product.reshape(out.shape), row_scales[:, None, None], scales, bias, act)


def prepare_depthwise(node: Node):
    node.arity(2, 3)
    x, filters = node.inputs[0], node.inputs[1]
    node.check(filters.dtype == INT8, f"filters are {filters.dtype}, expected int8 (or float32 with a float32 input)")
    node.check(len(filters.shape) == 4 and filters.shape[0] == 1, f"filters must be [1, kh, kw, out], got {list(filters.shape)}")
    _one, kernel_h, kernel_w, channels_out = filters.shape
    node.check(len(x.shape) == 4 and x.shape[3] > 0 and channels_out % x.shape[3] == 0,
               f"input {list(x.shape)} channels do not divide the {channels_out} output channels")  # fmt: skip
    channels_in = x.shape[3]
    multiplier = channels_out // channels_in
    node.check(node.option("depth_multiplier") in (0, multiplier),
               f"depth_multiplier {node.option('depth_multiplier')}, filters imply {multiplier}")  # fmt: skip
    tap_count = kernel_h * kernel_w
    (batch, out_h, out_w), interior, taps, dtype = _convolution_input(node, x, kernel_h, kernel_w, tap_count)
    weights = node.constant(1, "int8 filters").reshape(tap_count, channels_in, multiplier).astype(dtype)
    shape5 = (batch, out_h, out_w, channels_in, multiplier)
    total, product = node.scratch(shape5, dtype), node.scratch(shape5, dtype)
    scales = channel_scales(node, filters, channels_out, 3)
    per_channel = len(filters.scales) > 1
    taps_state = (interior, taps, weights, total, product)
    shape = (batch, out_h, out_w, channels_out)
    if x.dtype == FLOAT32:
        node.check(node.outputs[0].dtype == FLOAT32, f"output is {node.outputs[0].dtype}, expected float32 for a float32 input")
        hybrid = _hybrid_state(node, x, scales, per_channel, channels_out)
        return [(shape, FLOAT32)], (_eval_hybrid_depthwise, (taps_state, hybrid))
    node.check(x.dtype == INT8, f"input is {x.dtype}, expected int8 or float32")
    _x_scale, x_zero_point = per_tensor(node, x, "input")
    state = (taps_state, x_zero_point, int32_bias(node, channels_out), output_requantization(node, x, scales, per_channel))
    return [(shape, INT8)], (_eval_depthwise, state)


def _depthwise_sum(taps_state) -> np.ndarray:
    """Σ over taps of tap · weights, for the (centered) input already in the padded scratch."""
    _interior, taps, weights, total, product = taps_state
    np.multiply(taps[0][..., None], weights[0], out=total)
    for k in range(1, len(taps)):
        np.multiply(taps[k][..., None], weights[k], out=product)
        np.add(total, product, out=total)
    return total


def _eval_depthwise(state, inputs, outputs):
    taps_state, x_zero_point, bias, requantization = state
    interior = taps_state[0]
    np.subtract(inputs[0], x_zero_point, out=interior, dtype=interior.dtype)  # padding stays 0: TFLite skips it
    total = _depthwise_sum(taps_state)
    requantize_into(outputs[0], total.reshape(outputs[0].shape), bias, requantization)


def _eval_hybrid_depthwise(state, inputs, outputs):
    taps_state, (_batch, scales, bias, asymmetric, act) = state
    centered, row_scales = _quantize_images(inputs[0], asymmetric)
    np.copyto(taps_state[0], centered)
    total = _depthwise_sum(taps_state)
    out = outputs[0]
    write_hybrid(out, total.reshape(out.shape), row_scales[:, None, None, None], scales, bias, act)


# Each operator's quantized ``prepare``; ``kernels/__init__`` pairs it with the float kernel.
PREPARES = {
    Op.FULLY_CONNECTED: prepare_fully_connected,
    Op.CONV_2D: prepare_conv,
    Op.DEPTHWISE_CONV_2D: prepare_depthwise,
}
