"""int8 kernels of the operators without weights: QUANTIZE, ADD, SUB, MUL, SOFTMAX, LOGISTIC, TANH, RELU,
RELU6, LEAKY_RELU, MAX_POOL_2D, AVERAGE_POOL_2D, MEAN and CONCATENATION, each as TFLite's integer kernels
compute it. The one-input operators from int8 to int8 are lookup tables: their arithmetic, run once on each
of the 256 codes in ``prepare``.

Every ``prepare`` here returns ``(outputs, (eval, state))``: ``base.by_tensor_type`` sends an operator
here when one of its tensors is quantized and runs the ``eval`` it picked.
"""

from __future__ import annotations

import math

import numpy as np

from lite_runtime.kernels import array, fixed_point, pooling
from lite_runtime.kernels.base import FLOAT32, Node, bound_eval, normalize_axis
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


def _clamp_into(out: np.ndarray, values: np.ndarray, low: int, high: int) -> None:
    np.maximum(values, low, out=values)
    np.minimum(values, high, out=values)
    np.copyto(out, values, casting="unsafe")


# -- QUANTIZE ---------------------------------------------------------------------------------------------
def prepare_quantize(node: Node):
    node.arity(1)
    x = node.inputs[0]
    y_scale, y_zero_point = _int8_output(node)
    if x.dtype == FLOAT32:  # AffineQuantize: round(x / scale) + zero point, in float32
        constants = [node.tiled(value, x.shape, np.float32) for value in (y_scale, fixed_point.JUST_BELOW_HALF, y_zero_point, _LOW, _HIGH)]
        return [(x.shape, INT8)], (bound_eval(_bind_quantize_float), (constants, node.scratch(x.shape), node.scratch(x.shape)))
    x_scale, x_zero_point = per_tensor(node, _int8_input(node), "input")
    rescale = fixed_point.quantize_multiplier(float(np.float64(x_scale) / np.float64(y_scale)))
    return _lookup(node, x, fixed_point.multiply_by_quantized_multiplier(_CODES - x_zero_point, *rescale) + y_zero_point)


def _bind_quantize_float(state, inputs, outputs):
    """``fixed_point.round_half_away_in_place`` of x / scale, plus the zero point, clamped; constants full-sized."""
    (scale, half, zero_point, low, high), values, signed_half = state
    x, out = inputs[0], outputs[0]
    divide, copysign, add, trunc, maximum, minimum = np.divide, np.copysign, np.add, np.trunc, np.maximum, np.minimum

    def run():
        divide(x, scale, out=values)
        copysign(half, values, out=signed_half)
        add(values, signed_half, out=values)
        trunc(values, out=values)
        add(values, zero_point, out=values)
        maximum(values, low, out=values)
        minimum(values, high, out=values)
        out[...] = values  # item assignment casts as np.copyto(casting="unsafe"), without its dispatch

    return run


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
    rescales = [fixed_point.Rescale.of(*multiplier) for multiplier in
                (a_multiplier, (-b_multiplier if subtract else b_multiplier, b_shift), output)]  # fmt: skip
    state = (_widened(node, shape, a_zero_point, b_zero_point), left_shift, rescales, y_zero_point, clamp)
    return [(shape, INT8)], (_eval_add, state)


def _widened(node: Node, shape, *zero_points):
    """An int64 scratch of the output's shape for each operand (broadcast on the copy in), with its zero point."""
    return [(node.scratch(shape, np.int64), zero_point) for zero_point in zero_points]


def _widen_into(wide: np.ndarray, x: np.ndarray, zero_point: int) -> np.ndarray:
    np.copyto(wide, x)
    np.subtract(wide, zero_point, out=wide)
    return wide


def _eval_add(state, inputs, outputs):
    operands, left_shift, (a_rescale, b_rescale, output), y_zero_point, clamp = state
    a, b = (_widen_into(wide, x, zero_point) for (wide, zero_point), x in zip(operands, inputs))
    for wide, rescale in ((a, a_rescale), (b, b_rescale)):
        np.left_shift(wide, left_shift, out=wide)
        fixed_point.rescale_in_place(wide, rescale)
    np.add(a, b, out=a)
    fixed_point.rescale_in_place(a, output)
    np.add(a, y_zero_point, out=a)
    _clamp_into(outputs[0], a, *clamp)


def prepare_mul(node: Node):
    a, b, shape, y_scale, y_zero_point, clamp = _binary_operands(node)
    (a_scale, a_zero_point), (b_scale, b_zero_point) = per_tensor(node, a, "input 0"), per_tensor(node, b, "input 1")
    multiplier = fixed_point.quantize_multiplier(float(np.float64(a_scale * b_scale) / np.float64(y_scale)))
    state = (_widened(node, shape, a_zero_point, b_zero_point), fixed_point.Rescale.of(*multiplier), y_zero_point, clamp)
    return [(shape, INT8)], (_eval_mul, state)


def _eval_mul(state, inputs, outputs):
    operands, rescale, y_zero_point, clamp = state
    a, b = (_widen_into(wide, x, zero_point) for (wide, zero_point), x in zip(operands, inputs))
    np.multiply(a, b, out=a)
    fixed_point.rescale_in_place(a, rescale)
    np.add(a, y_zero_point, out=a)
    _clamp_into(outputs[0], a, *clamp)


# -- lookup tables: int8 -> int8 QUANTIZE, LOGISTIC, TANH, RELU, RELU6, LEAKY_RELU ---------------------------
_CODES = np.arange(256).astype(np.uint8).view(np.int8).astype(np.int64)  # every int8 value, in byte order


def _lookup(node: Node, x, values):
    """prepare's result for a table: ``values`` holds the result for each of ``_CODES``, clamped here."""
    table = np.clip(values, _LOW, _HIGH).astype(np.int8)
    return [(x.shape, INT8)], (_eval_lookup, (table, node.scratch(x.shape, np.intp)))


def _eval_lookup(state, inputs, outputs):
    table, indices = state
    np.copyto(indices, inputs[0])
    np.take(table, indices, out=outputs[0], mode="wrap")  # -1 wraps to byte 255; "wrap" also spares take a copy


def _function_prepare(function):
    """``PopulateLookupTable``: each int8 input mapped through ``function`` in float32."""

    def prepare(node: Node):
        node.arity(1)
        x = _int8_input(node)
        x_scale, x_zero_point = per_tensor(node, x, "input")
        y_scale, y_zero_point = _int8_output(node)
        real = (x_scale * (_CODES - x_zero_point).astype(np.float32)).astype(np.float32)
        rescaled = fixed_point.round_half_away(function(real).astype(np.float32) * (np.float32(1) / y_scale))
        return _lookup(node, x, rescaled + y_zero_point)

    return prepare


def _sigmoid(x):
    return np.float32(1) / (np.float32(1) + np.exp(-x))


def _relu_prepare(low: float, high: float | None):
    def prepare(node: Node):
        """QuantizedReluX: rescale to the output, then clamp to the activation's quantized range."""
        node.arity(1)
        x = _int8_input(node)
        x_scale, x_zero_point = per_tensor(node, x, "input")
        y_scale, y_zero_point = _int8_output(node)
        rescale = fixed_point.quantize_multiplier(float(np.float64(x_scale) / np.float64(y_scale)))

        def quantize(value: float) -> int:
            return y_zero_point + int(fixed_point.round_half_away(np.float32(value) / y_scale))

        values = fixed_point.multiply_by_quantized_multiplier(_CODES - x_zero_point, *rescale) + y_zero_point
        return _lookup(node, x, np.clip(values, max(_LOW, quantize(low)), _HIGH if high is None else min(_HIGH, quantize(high))))

    return prepare


def prepare_leaky_relu(node: Node):
    """LEAKY_RELU as LiteRT's default (XNNPACK) computes it where XNNPACK takes the operator, and as
    TFLite's QuantizeLeakyRelu, which it falls back to, elsewhere (both rescale x − x_zp by one multiplier where it is >= 0 and by
    another, alpha times it, where negative; the scales are divided and multiplied in float32)."""
    node.arity(1)
    x = _int8_input(node)
    x_scale, x_zero_point = per_tensor(node, x, "input")
    y_scale, y_zero_point = _int8_output(node)
    alpha = np.float32(node.option("alpha"))
    positive, negative = np.float32(x_scale / y_scale), np.float32(x_scale / y_scale * alpha)
    centered = _CODES - x_zero_point
    if 2**-8 <= positive <= 2**7 and -127.99609375 <= negative <= 2**7 and abs(negative) >= 2**-8:
        # xnn_init_qs8_lrelu_scalar_params: 8-bit multipliers, rounded once (ties upward) by a shift of 8
        multipliers = np.where(centered > 0, np.rint(256 * positive), np.rint(256 * negative)).astype(np.int64)
        values = (centered * multipliers + 128) >> 8
    else:  # activations.cc LeakyReluPrepare / reference QuantizeLeakyRelu, which LiteRT builds rounding twice
        rescale = fixed_point.multiply_by_quantized_multiplier_twice_rounded
        identity = fixed_point.quantize_multiplier(float(positive))
        scaled = fixed_point.quantize_multiplier(float(np.float32(x_scale * alpha) / y_scale))
        values = np.where(centered >= 0, rescale(centered, *identity), rescale(centered, *scaled))
    return _lookup(node, x, values + y_zero_point)


# -- SOFTMAX --------------------------------------------------------------------------------------------------
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
    reduced = (*x.shape[:-1], 1)
    sums = node.scratch(x.shape, np.float32)
    # Every constant operand full-sized: a scalar costs a ufunc 1.5-3x (see Node.tiled); these are a few rows.
    constants = [node.tiled(value, x.shape, np.float32) for value in (y_scale, fixed_point.JUST_BELOW_HALF, 1, 255, y_zero_point, _HIGH)]
    state = (table, y_zero_point, node.scratch(reduced, INT8), node.scratch(x.shape, INT8), node.scratch(x.shape, np.intp),
             node.scratch(x.shape, np.float32), sums, sums[..., -1:], node.scratch(x.shape, np.float32), constants,
             node.tiled(0x80, x.shape, np.uint8))  # fmt: skip
    return [(x.shape, INT8)], (bound_eval(_bind_softmax), state)


def _bind_softmax(state, inputs, outputs):
    table, y_zero_point, maxima, differences, indices, exps, sums, total, spread, constants, top = state
    x, out = inputs[0], outputs[0]
    scale, half, one, limit, zero_point, high = constants
    reduce, subtract, take, accumulate = np.maximum.reduce, np.subtract, np.take, np.add.accumulate
    multiply, divide, add, minimum, copy = np.multiply, np.divide, np.add, np.minimum, np.copyto

    def exponentials():
        reduce(x, -1, None, maxima, True)
        differences[...] = maxima  # item assignment: np.copyto's copy without its dispatch
        subtract(differences, x, out=differences)  # max − x in [0, 255]: wraps in int8, and the table index wraps back
        indices[...] = differences
        take(table, indices, out=exps, mode="wrap")
        accumulate(exps, -1, None, sums)  # a running float32 sum, in TFLite's order
        spread[...] = total
        multiply(spread, scale, out=spread)
        divide(one, spread, out=spread)
        multiply(exps, spread, out=exps)
        add(exps, half, out=exps)  # round_half_away_in_place, for values >= 0

    if y_zero_point == _LOW:  # TFLite's int8 softmax output: code = min(trunc(e), 255) − 128, the top bit flipped
        codes, xor = out.view(np.uint8), np.bitwise_xor

        def run_codes():
            exponentials()
            minimum(exps, limit, out=exps)
            copy(codes, exps, casting="unsafe")  # truncates: floor at e >= 0
            xor(codes, top, out=codes)

        return run_codes
    trunc = np.trunc

    def run():
        exponentials()
        trunc(exps, out=exps)
        add(exps, zero_point, out=exps)
        minimum(exps, high, out=exps)  # from y_zp >= -128 up: never below
        copy(out, exps, casting="unsafe")

    return run


# -- pooling ----------------------------------------------------------------------------------------------
def _prepare_pool(node: Node, average: bool):
    node.arity(1)
    x = _int8_input(node)
    geometry = pooling.pool_window(node, x)
    x_params, y_params = per_tensor(node, x, "input"), _int8_output(node)
    node.check(x_params == y_params, f"input quantization {x_params} differs from the output's {y_params}")
    batch, height, width, channels, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w, top, bottom, left, right = geometry
    shape = (batch, out_h, out_w, channels)
    clamp = fixed_point.activation_range(node, node.option("fused_activation_function"), *y_params)
    if not average and geometry.tiles:
        # Windows that tile the input: the float kernel's reduces and maximums, on the int8 codes themselves
        # (the same quantization in and out, so the max of the codes is the code of the max).
        rows = node.scratch((batch, out_h, width * channels), INT8) if kernel_h > 1 else None
        column = node.scratch(shape, INT8) if kernel_w > 1 else None
        act = None
        if clamp != (_LOW, _HIGH):
            low, high = (node.tiled(bound, shape, INT8) for bound in clamp)

            def act(out):
                np.maximum(out, low, out=out)
                np.minimum(out, high, out=out)

        return [(shape, INT8)], (pooling.BIND_MAX_EVAL, (None, None, None, act, (kernel_h, kernel_w, rows, column)))
    padded = node.scratch((batch, height + top + bottom, width + left + right, channels), np.int32, fill=0 if average else _LOW)
    interior = padded[:, top : top + height, left : left + width, :]

    def windows(array):  # (kernel_h, kernel_w, *shape): every tap of every output pixel
        views = np.lib.stride_tricks.sliding_window_view(array, (kernel_h, kernel_w), axis=(1, 2))
        return views[:, ::stride_h, ::stride_w][:, :out_h, :out_w].transpose(4, 5, 0, 1, 2, 3)

    valid = np.zeros((1, *padded.shape[1:3], 1), np.int32)
    valid[:, top : top + height, left : left + width, :] = 1
    counts = windows(valid).sum(axis=(0, 1))
    taps = (windows(padded), node.scratch((kernel_h, kernel_w, *shape), np.int32))
    total, scratch = node.scratch(shape, np.int32), node.scratch(shape, np.int32)
    divide = (node.tiled(counts // 2, shape, np.int32), node.tiled(counts, shape, np.int32), scratch)
    state = (interior, taps, total, divide, clamp)
    return [(shape, INT8)], (_eval_average_pool if average else _eval_max_pool, state)


def _eval_max_pool(state, inputs, outputs):
    interior, (windows, taps), total, _divide, clamp = state
    np.copyto(interior, inputs[0])
    np.copyto(taps, windows)
    np.maximum.reduce(taps, (0, 1), None, total)
    _clamp_into(outputs[0], total, *clamp)


def _eval_average_pool(state, inputs, outputs):
    """Sum of the valid pixels divided by their count, rounded half away from zero (integer division)."""
    interior, (windows, taps), total, (halves, counts, sign), clamp = state
    np.copyto(interior, inputs[0])
    np.copyto(taps, windows)
    np.add.reduce(taps, (0, 1), None, total)
    np.sign(total, out=sign)
    np.abs(total, out=total)
    np.add(total, halves, out=total)
    np.floor_divide(total, counts, out=total)  # of |sum| + count/2: C++'s division toward zero, by sign below
    np.multiply(total, sign, out=total)
    _clamp_into(outputs[0], total, *clamp)


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
    state = (axes, keep, x_zero_point * count, fixed_point.Rescale.of(multiplier, shift), y_zero_point,
             node.scratch(x.shape, np.int64), node.scratch(shape, np.int64))  # fmt: skip
    return [(shape, INT8)], (_eval_mean, state)


def _eval_mean(state, inputs, outputs):
    axes, keep, zero_point_sum, rescale, y_zero_point, wide, total = state
    np.copyto(wide, inputs[0])
    np.add.reduce(wide, axes, None, total, keep)
    np.subtract(total, zero_point_sum, out=total)
    fixed_point.rescale_in_place(total, rescale)
    np.add(total, y_zero_point, out=total)
    _clamp_into(outputs[0], total, _LOW, _HIGH)


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
    Op.LOGISTIC: _function_prepare(_sigmoid),
    Op.TANH: _function_prepare(np.tanh),
    Op.RELU: _relu_prepare(0.0, None),
    Op.RELU6: _relu_prepare(0.0, 6.0),
    Op.LEAKY_RELU: prepare_leaky_relu,
    Op.MAX_POOL_2D: lambda node: _prepare_pool(node, average=False),
    Op.AVERAGE_POOL_2D: lambda node: _prepare_pool(node, average=True),
    Op.MEAN: prepare_mean,
    Op.CONCATENATION: prepare_concatenation,
}
