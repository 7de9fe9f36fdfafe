"""CONV_2D and DEPTHWISE_CONV_2D on int8 filters: full int8 and hybrid (dynamic range).

The arithmetic is ``quantized_linear``'s. For int8 inputs the padding holds the input zero point, so a
padded tap adds x_zp·w, which the folded offset bias − x_zp·Σw takes back out: TFLite skips padded taps,
and the sums agree. Hybrid inputs are quantized per image (asymmetrically for per-channel filters, as
conv.cc ``EvalHybridPerChannel``) and centered, so their zero padding adds nothing.
"""

from __future__ import annotations

import numpy as np

from lite_runtime.kernels.base import FLOAT32, Node, bound_eval
from lite_runtime.kernels.conv import depthwise_shapes, filter_windows, geometry, im2col, im2col_call, patches, spatial
from lite_runtime.kernels.quantized_linear import (INT8, RowQuantizer, ScaleBack, accumulator_bound, channel_scales,
                                                   exact_dtype, folded_matrix, int32_bias, output_requantization,
                                                   per_tensor, requantize_into, requantizer)  # fmt: skip
from lite_runtime.schema import BuiltinOperator as Op


def _hybrid(node: Node, x, scales, per_channel: bool, shape):
    """What a hybrid convolution needs beside its product: the quantizer of whole images and the scale back
    to float32 for an output of ``shape``, seen as (batch, pixels, channels)."""
    node.check(node.outputs[0].dtype == FLOAT32, f"output is {node.outputs[0].dtype}, expected float32 for a float32 input")
    batch = x.shape[0]
    quantizer = RowQuantizer(node, batch, int(np.prod(x.shape[1:])), asymmetric=per_channel)
    return quantizer, ScaleBack.prepare(node, batch, scales, (batch, int(np.prod(shape[1:-1])), shape[-1]))


def _scale_back(hybrid, accumulators, outputs) -> None:
    quantizer, scale_back = hybrid
    out = outputs[0].reshape(scale_back.scale.shape)
    scale_back.into(out, accumulators.reshape(out.shape), quantizer.scales)


def _input_into(interior, hybrid, inputs) -> None:
    """The int8 input, or the hybrid input quantized and centered, into the padded scratch."""
    if hybrid is None:
        np.copyto(interior, inputs[0])
    else:
        np.copyto(interior, hybrid[0].quantize(inputs[0].reshape(interior.shape[0], -1)).reshape(interior.shape))


# -- CONV_2D --------------------------------------------------------------------------------------------------
def prepare_conv(node: Node):
    node.arity(2, 3)
    x, filters = node.inputs[0], node.inputs[1]
    node.check(filters.dtype == INT8, f"filters are {filters.dtype}, expected int8 (or float32 with a float32 input)")
    node.check(len(filters.shape) == 4, f"filters must be [out, kh, kw, in], got {list(filters.shape)}")
    channels_out, kernel_h, kernel_w, channels_in = filters.shape
    node.check(len(x.shape) == 4 and x.shape[3] == channels_in and channels_in > 0,
               f"input {list(x.shape)} does not have {channels_in} channels")  # fmt: skip
    depth = kernel_h * kernel_w * channels_in
    weights = node.constant(1, "int8 filters").reshape(channels_out, depth).T
    scales = channel_scales(node, filters, channels_out, 0)
    per_channel = len(filters.scales) > 1
    if x.dtype == FLOAT32:
        matrix = np.ascontiguousarray(weights, exact_dtype(weights, [255] * depth))
        interior, gather, columns, (batch, out_h, out_w) = patches(node, x, kernel_h, kernel_w, matrix.dtype)
        hybrid = _hybrid(node, x, scales, per_channel, (batch, out_h, out_w, channels_out))
        product = node.scratch((columns.shape[0], channels_out), matrix.dtype)
        state = (interior, gather, columns, matrix, product, hybrid)
        return [((batch, out_h, out_w, channels_out), FLOAT32)], (_eval_conv, state)
    node.check(x.dtype == INT8, f"input is {x.dtype}, expected int8 or float32")
    _x_scale, x_zero_point = per_tensor(node, x, "input")
    matrix = folded_matrix(weights, x_zero_point, int32_bias(node, channels_out))
    out_h, out_w, _rows_padding, _columns_padding = spatial(node, x, kernel_h, kernel_w)
    columns, gather = im2col(node, x, kernel_h, kernel_w, matrix.dtype, x_zero_point, ones_column=True)
    rows = columns.shape[0]
    requantization = output_requantization(node, x, scales, per_channel, (rows, channels_out), accumulator_bound(matrix))
    accumulators = node.scratch((rows, channels_out), requantization.accumulator_dtype)
    product = accumulators if matrix.dtype == accumulators.dtype else node.scratch((rows, channels_out), matrix.dtype)
    state = (columns, gather, matrix, product, accumulators, requantization)
    return [((x.shape[0], out_h, out_w, channels_out), INT8)], (bound_eval(_bind_int8_conv), state)


def _bind_int8_conv(state, inputs, outputs):
    columns, gather, matrix, product, accumulators, requantization = state
    gather = im2col_call(gather, columns, inputs[0])
    if gather is None:  # no output pixels
        return lambda: None
    requantize, dot, copy = requantizer(outputs[0], accumulators, requantization), np.dot, np.copyto

    if product is accumulators:  # a float64 product is the float requantization's scratch itself

        def run_in_place():
            gather()
            dot(columns, matrix, product)
            requantize()

        return run_in_place

    def run():
        gather()
        dot(columns, matrix, product)
        copy(accumulators, product, casting="unsafe")
        requantize()

    return run


def _eval_conv(state, inputs, outputs):
    interior, gather, columns, matrix, product, hybrid = state
    _input_into(interior, hybrid, inputs)
    if gather is not None:
        np.copyto(*gather)
    np.dot(columns, matrix, out=product)
    _scale_back(hybrid, product, outputs)


# -- DEPTHWISE_CONV_2D --------------------------------------------------------------------------------------
def prepare_depthwise(node: Node):
    """Σ over taps of window · weights as one multiply of every tap at once, then one sum over the taps."""
    node.arity(2, 3)
    x, filters = node.inputs[0], node.inputs[1]
    node.check(filters.dtype == INT8, f"filters are {filters.dtype}, expected int8 (or float32 with a float32 input)")
    kernel_h, kernel_w, channels_in, multiplier, channels_out = depthwise_shapes(node, x, filters)
    taps = kernel_h * kernel_w
    weights = node.constant(1, "int8 filters").reshape(taps, channels_out)
    scales = channel_scales(node, filters, channels_out, 3)
    per_channel = len(filters.scales) > 1
    if x.dtype == FLOAT32:
        offset, fill, dtype = None, 0, exact_dtype(weights, [255] * taps)
    else:
        node.check(x.dtype == INT8, f"input is {x.dtype}, expected int8 or float32")
        _x_scale, fill = per_tensor(node, x, "input")
        folded = folded_matrix(weights, fill, int32_bias(node, channels_out))
        offset, dtype, bound = folded[-1], folded.dtype, accumulator_bound(folded)
    (batch, out_h, out_w), padded, interior, _taps = geometry(node, x, kernel_h, kernel_w, dtype, fill)
    shape = (batch, out_h, out_w, channels_out)
    windows = filter_windows(node, padded, out_h, out_w, kernel_h, kernel_w).transpose(4, 5, 0, 1, 2, 3)[..., None]
    spread = (kernel_h, kernel_w, batch, out_h, out_w, channels_in, multiplier)  # every tap of every output
    weights = node.tiled(weights.reshape(kernel_h, kernel_w, 1, 1, 1, channels_in, multiplier), spread, dtype)
    total = node.scratch(shape, dtype)
    taps_state = (interior, windows, node.scratch(spread, dtype), weights, total.reshape(spread[2:]))
    if x.dtype == FLOAT32:
        hybrid = _hybrid(node, x, scales, per_channel, shape)
        return [(shape, FLOAT32)], (_eval_depthwise, (taps_state, None, None, None, hybrid))
    requantization = output_requantization(node, x, scales, per_channel, shape, bound)
    state = (taps_state, node.tiled(offset, shape, dtype), node.scratch(shape, requantization.accumulator_dtype), requantization, None)
    return [(shape, INT8)], (_eval_depthwise, state)


def _eval_depthwise(state, inputs, outputs):
    (interior, windows, products, weights, total), offset, accumulators, requantization, hybrid = state
    _input_into(interior, hybrid, inputs)
    np.copyto(products, windows)
    np.multiply(products, weights, out=products)
    np.add.reduce(products, (0, 1), None, total)
    total = total.reshape(outputs[0].shape)
    if hybrid is not None:
        _scale_back(hybrid, total, outputs)
        return
    np.add(total, offset, out=total)
    np.copyto(accumulators, total, casting="unsafe")
    requantize_into(outputs[0], accumulators, requantization)


# Each operator's quantized ``prepare``; ``kernels/__init__`` pairs it with the float kernel.
PREPARES = {
    Op.CONV_2D: prepare_conv,
    Op.DEPTHWISE_CONV_2D: prepare_depthwise,
}
