"""int8 kernels of the operators without weights: QUANTIZE, ADD, SUB, MUL, SOFTMAX, LOGISTIC, TANH, RELU,
RELU6, MAX_POOL_2D, AVERAGE_POOL_2D, MEAN and CONCATENATION, each as TFLite's integer kernels compute it.

Every ``prepare`` here returns ``(outputs, (eval, state))``: ``base.by_tensor_type`` sends an operator
here when one of its tensors is quantized and runs the ``eval`` it picked.
"""

from __future__ import annotations

import math

import numpy as np

from lite_runtime.kernels import array, fixed_point
from lite_runtime.kernels.base import FLOAT32, Node, normalize_axis, window
from lite_runtime.kernels.quantized_linear import INT8, per_tensor
from lite_runtime.schema import Activation
from lite_runtime.schema import BuiltinOperator as Op

_LOW, _HIGH = -128, 127


def _int8_input(node: Node, i: int = 0):
    tensor = node.inputs[i]
    node.check(tensor.dtype == INT8, f"input {i} is {tensor.dtype}, expected int8")
    return tensor


def _int8_output(node: Node):
    output = node.outputs[0]
    node.check(output.dtype == INT8, f"output is {output.dtype}, expected int8")
    return per_tensor(node, output, "output")


def _clip_into(out: np.ndarray, values, low: int = _LOW, high: int = _HIGH) -> None:
    np.clip(values, low, high, out=values)
    np.copyto(out, values, casting="unsafe")


# -- QUANTIZE ---------------------------------------------------------------------------------------------
def prepare_quantize(node: Node):
    node.arity(1)
    x = node.inputs[0]
    y_scale, y_zero_point = _int8_output(node)
    if x.dtype == FLOAT32:  # AffineQuantize: round(x / scale) + zero point, in float32
        return [(x.shape, INT8)], (_eval_quantize_float, (y_scale, y_zero_point))
    x_scale, x_zero_point = per_tensor(node, _int8_input(node), "input")
    multiplier, shift = fixed_point.quantize_multiplier(float(np.float64(x_scale) / np.float64(y_scale)))
    return [(x.shape, INT8)], (_eval_requantize, (x_zero_point, multiplier, shift, y_zero_point))


def _eval_quantize_float(state, inputs, outputs):
    scale, zero_point = state
    values = fixed_point.round_half_away(inputs[0] / scale) + np.float32(zero_point)
    _clip_into(outputs[0], values)


def _eval_requantize(state, inputs, outputs):
    x_zero_point, multiplier, shift, y_zero_point = state
    centered = inputs[0].astype(np.int64) - x_zero_point
    _clip_into(outputs[0], fixed_point.multiply_by_quantized_multiplier(centered, multiplier, shift) + y_zero_point)


# -- ADD, SUB, MUL --------------------------------------------------------------------------------------------
def _binary_operands(node: Node):
    node.arity(2)
    a, b = _int8_input(node, 0), _int8_input(node, 1)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise node.fail(f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
    y_scale, y_zero_point = _int8_output(node)
    clamp = fixed_point.activation_range(node, node.option("fused_activation_function"), y_scale, y_zero_point)
    return a, b, shape, y_scale, y_zero_point, clamp


def prepare_add_or_sub(node: Node, subtract: bool):
    """add.cc / sub.cc: both operands are shifted left by 20 bits, rescaled to twice the larger input scale,
    summed, and the sum rescaled to the output (SUB negates the second multiplier)."""
    a, b, shape, y_scale, y_zero_point, clamp = _binary_operands(node)
    (a_scale, a_zero_point), (b_scale, b_zero_point) = per_tensor(node, a, "input 0"), per_tensor(node, b, "input 1")
    left_shift = 20
    twice_max = np.float64(np.float32(2 * max(a_scale, b_scale)))
    a_multiplier = fixed_point.quantize_multiplier(float(np.float64(a_scale) / twice_max))
    b_multiplier, b_shift = fixed_point.quantize_multiplier(float(np.float64(b_scale) / twice_max))
    output = fixed_point.quantize_multiplier(float(twice_max / np.float64(np.float32((1 << left_shift) * y_scale))))
    state = (a_zero_point, b_zero_point, left_shift, a_multiplier, (-b_multiplier if subtract else b_multiplier, b_shift),
             output, y_zero_point, clamp)  # fmt: skip
    return [(shape, INT8)], (_eval_add, state)


def _eval_add(state, inputs, outputs):
    a_zero_point, b_zero_point, left_shift, a_multiplier, b_multiplier, output, y_zero_point, clamp = state
    a = (inputs[0].astype(np.int64) - a_zero_point) << left_shift
    b = (inputs[1].astype(np.int64) - b_zero_point) << left_shift
    rescale = fixed_point.multiply_by_quantized_multiplier
    total = rescale(a, *a_multiplier) + rescale(b, *b_multiplier)
    _clip_into(outputs[0], rescale(total, *output) + y_zero_point, *clamp)


def prepare_mul(node: Node):
    a, b, shape, y_scale, y_zero_point, clamp = _binary_operands(node)
    (a_scale, a_zero_point), (b_scale, b_zero_point) = per_tensor(node, a, "input 0"), per_tensor(node, b, "input 1")
    multiplier = fixed_point.quantize_multiplier(float(np.float64(a_scale * b_scale) / np.float64(y_scale)))
    return [(shape, INT8)], (_eval_mul, (a_zero_point, b_zero_point, multiplier, y_zero_point, clamp))


def _eval_mul(state, inputs, outputs):
    a_zero_point, b_zero_point, multiplier, y_zero_point, clamp = state
    product = (inputs[0].astype(np.int64) - a_zero_point) * (inputs[1].astype(np.int64) - b_zero_point)
    _clip_into(outputs[0], fixed_point.multiply_by_quantized_multiplier(product, *multiplier) + y_zero_point, *clamp)


# -- lookup tables: LOGISTIC, TANH; SOFTMAX ----------------------------------------------------------------
def _table_prepare(function):
    """``PopulateLookupTable``: each of the 256 int8 inputs mapped through ``function`` in float32."""

    def prepare(node: Node):
        node.arity(1)
        x = _int8_input(node)
        x_scale, x_zero_point = per_tensor(node, x, "input")
        y_scale, y_zero_point = _int8_output(node)
        codes = np.arange(-128, 128, dtype=np.int32)
        real = (x_scale * (codes - x_zero_point).astype(np.float32)).astype(np.float32)
        rescaled = fixed_point.round_half_away(function(real).astype(np.float32) * (np.float32(1) / y_scale))
        table = np.clip(rescaled + y_zero_point, _LOW, _HIGH).astype(np.int8)
        return [(x.shape, INT8)], (_eval_table, table)

    return prepare


def _eval_table(table, inputs, outputs):
    np.take(table, inputs[0].astype(np.int16) + 128, out=outputs[0])


def _sigmoid(x):
    return np.float32(1) / (np.float32(1) + np.exp(-x))


def prepare_softmax(node: Node):
    """optimized_ops::Softmax on int8: a float32 table of exp(−scale·β·d) for each difference d from the
    row maximum, summed in order, and each entry rounded to the output scale."""
    node.arity(1)
    x = _int8_input(node)
    node.check(len(x.shape) >= 1 and x.shape[-1] > 0, f"input {list(x.shape)} has no last axis to normalize")
    x_scale, _ = per_tensor(node, x, "input")
    y_scale, y_zero_point = _int8_output(node)
    step = np.float32(-x_scale * np.float32(node.option("beta")))
    table = np.exp(step * np.arange(256, dtype=np.float32)).astype(np.float32)  # table[d] = exp(-scale·β·d)
    return [(x.shape, INT8)], (_eval_softmax, (table, np.float32(y_scale), y_zero_point))


def _eval_softmax(state, inputs, outputs):
    table, y_scale, y_zero_point = state
    x = inputs[0].astype(np.int16)
    exps = table[x.max(axis=-1, keepdims=True) - x]
    total = np.cumsum(exps, axis=-1, dtype=np.float32)[..., -1:]  # a running float32 sum, in TFLite's order
    inverse = np.float32(1) / (total * y_scale)
    _clip_into(outputs[0], fixed_point.round_half_away(exps * inverse) + np.float32(y_zero_point))


# -- RELU, RELU6 ------------------------------------------------------------------------------------------
def _relu_prepare(low: float, high: float | None):
    def prepare(node: Node):
        """QuantizedReluX: rescale to the output, then clamp to the activation's quantized range."""
        node.arity(1)
        x = _int8_input(node)
        x_scale, x_zero_point = per_tensor(node, x, "input")
        y_scale, y_zero_point = _int8_output(node)
        multiplier = fixed_point.quantize_multiplier(float(np.float64(x_scale) / np.float64(y_scale)))

        def quantize(value: float) -> int:
            return y_zero_point + int(fixed_point.round_half_away(np.float32(value) / y_scale))

        clamp_low = max(_LOW, quantize(low))
        clamp_high = _HIGH if high is None else min(_HIGH, quantize(high))
        return [(x.shape, INT8)], (_eval_relu, (x_zero_point, multiplier, y_zero_point, (clamp_low, clamp_high)))

    return prepare


def _eval_relu(state, inputs, outputs):
    x_zero_point, multiplier, y_zero_point, clamp = state
    centered = inputs[0].astype(np.int64) - x_zero_point
    _clip_into(outputs[0], fixed_point.multiply_by_quantized_multiplier(centered, *multiplier) + y_zero_point, *clamp)


# -- pooling ----------------------------------------------------------------------------------------------
def _prepare_pool(node: Node, average: bool):
    node.arity(1)
    x = _int8_input(node)
    node.check(len(x.shape) == 4, f"input must be NHWC, got {list(x.shape)}")
    x_params, y_params = per_tensor(node, x, "input"), _int8_output(node)
    node.check(x_params == y_params, f"input quantization {x_params} differs from the output's {y_params}")
    batch, height, width, channels = x.shape
    kernel_h, kernel_w = node.option("filter_height"), node.option("filter_width")
    stride_h, stride_w = node.option("stride_h"), node.option("stride_w")
    node.check(0 < kernel_h * kernel_w <= 4096, f"pool window {kernel_h}x{kernel_w} is empty or over 4096 pixels")
    out_h, top, bottom = window(node, height, kernel_h, stride_h, 1, node.option("padding"))
    out_w, left, right = window(node, width, kernel_w, stride_w, 1, node.option("padding"))
    padded = node.scratch((batch, height + top + bottom, width + left + right, channels), np.int32, fill=0 if average else _LOW)
    interior = padded[:, top : top + height, left : left + width, :]

    def tap(array, i, j):
        return array[..., i : i + (out_h - 1) * stride_h + 1 : stride_h, j : j + (out_w - 1) * stride_w + 1 : stride_w, :]

    taps = [tap(padded, i, j) for i in range(kernel_h) for j in range(kernel_w)]
    valid = np.zeros((1, height + top + bottom, width + left + right, 1), np.int32)
    valid[:, top : top + height, left : left + width, :] = 1
    counts = sum(tap(valid, i, j) for i in range(kernel_h) for j in range(kernel_w))
    clamp = fixed_point.activation_range(node, node.option("fused_activation_function"), *y_params)
    total = node.scratch((batch, out_h, out_w, channels), np.int32)
    state = (interior, taps, total, counts.astype(np.int32), clamp)
    return [((batch, out_h, out_w, channels), INT8)], (_eval_average_pool if average else _eval_max_pool, state)


def _eval_max_pool(state, inputs, outputs):
    interior, taps, total, _counts, clamp = state
    np.copyto(interior, inputs[0])
    np.copyto(total, taps[0])
    for tap in taps[1:]:
        np.maximum(total, tap, out=total)
    _clip_into(outputs[0], total, *clamp)


def _eval_average_pool(state, inputs, outputs):
    """Sum of the valid pixels divided by their count, rounded half away from zero (integer division)."""
    interior, taps, total, counts, clamp = state
    np.copyto(interior, inputs[0])
    np.copyto(total, taps[0])
    for tap in taps[1:]:
        np.add(total, tap, out=total)
    half = counts // 2
    rounded = np.where(total > 0, total + half, total - half)
    quotient = np.abs(rounded) // counts * np.sign(rounded)  # C++ division truncates toward zero
    _clip_into(outputs[0], quotient, *clamp)


# -- MEAN -------------------------------------------------------------------------------------------------
def prepare_mean(node: Node):
    """QuantizedMeanOrSum (reference reduce.h): Σ(x − x_zp) over the axes, times x_scale/y_scale with the
    1/count folded into the fixed-point multiplier, + y_zp."""
    node.arity(2)
    x = _int8_input(node)
    axes = node.constant(1, "axes").reshape(-1)
    node.check(axes.dtype.kind == "i", f"axes are {axes.dtype}, expected int32")
    axes = tuple(sorted({normalize_axis(node, int(a), len(x.shape)) for a in axes}))
    keep = node.option("keep_dims")
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
    count = math.prod(x.shape[a] for a in axes)
    node.check(count > 0, "reducing an empty axis")
    x_scale, x_zero_point = per_tensor(node, x, "input")
    y_scale, y_zero_point = _int8_output(node)
    multiplier, shift = fixed_point.quantize_multiplier(float(np.float64(x_scale) / np.float64(y_scale)))
    extra = min(count.bit_length() - 1, 32, 31 + shift)  # headroom for the 1/count factor
    multiplier, shift = (multiplier << extra) // count, shift - extra
    return [(shape, INT8)], (_eval_mean, (axes, keep, x_zero_point * count, multiplier, shift, y_zero_point))


def _eval_mean(state, inputs, outputs):
    axes, keep, zero_point_sum, multiplier, shift, y_zero_point = state
    total = inputs[0].sum(axis=axes, keepdims=keep, dtype=np.int64) - zero_point_sum
    _clip_into(outputs[0], fixed_point.multiply_by_quantized_multiplier(total, multiplier, shift) + y_zero_point)


# -- CONCATENATION ----------------------------------------------------------------------------------------
def prepare_concatenation(node: Node):
    """int8 concatenation copies bytes: TFLite requires every input to share the output's quantization."""
    node.check(len(node.inputs) >= 1 and all(t is not None for t in node.inputs), "needs at least one input")
    node.check(node.option("fused_activation_function") == Activation.NONE, "a fused activation on int8 CONCATENATION")
    y_params = _int8_output(node)
    for i, tensor in enumerate(node.inputs):
        node.check(tensor is not None and per_tensor(node, _int8_input(node, i), f"input {i}") == y_params,
                   f"input {i} quantization differs from the output's {y_params}")  # fmt: skip
    copy = array.KERNELS[Op.CONCATENATION]
    outputs, state = copy.prepare(node)
    return outputs, (copy.eval, state)


# Each operator's quantized ``prepare``; ``kernels/__init__`` pairs it with the float kernel.
PREPARES = {
    Op.QUANTIZE: prepare_quantize,
    Op.ADD: lambda node: prepare_add_or_sub(node, subtract=False),
    Op.SUB: lambda node: prepare_add_or_sub(node, subtract=True),
    Op.MUL: prepare_mul,
    Op.SOFTMAX: prepare_softmax,
    Op.LOGISTIC: _table_prepare(_sigmoid),
    Op.TANH: _table_prepare(np.tanh),
    Op.RELU: _relu_prepare(0.0, None),
    Op.RELU6: _relu_prepare(0.0, 6.0),
    Op.MAX_POOL_2D: lambda node: _prepare_pool(node, average=False),
    Op.AVERAGE_POOL_2D: lambda node: _prepare_pool(node, average=True),
    Op.MEAN: prepare_mean,
    Op.CONCATENATION: prepare_concatenation,
}
