"""FULLY_CONNECTED on int8 weights, full int8 and hybrid (dynamic range), and hybrid BATCH_MATMUL; the
pieces every int8-weight kernel shares (``quantized_conv`` uses them too).

int8 (``reference_integer_ops``): acc = Σ (x − x_zp)·w + bias in int32, then
``MultiplyByQuantizedMultiplier`` with M = x_scale·w_scale/y_scale (per output channel), + y_zp, clamped
to the fused activation's range. Hybrid (``EvalHybrid``): the float input is quantized per row
(``SymmetricQuantizeFloats``, or ``AsymmetricQuantizeFloats`` for per-channel convolutions and when
``asymmetric_quantize_inputs`` is set), the same integer product is taken, and the result is scaled back
to float with row_scale·w_scale and added to the float bias.

The integer products run through float BLAS, exactly: ``exact_dtype`` picks float32 when no partial sum
can reach 2^24 and float64 otherwise. The int8 kernels fold the input zero point into the bias
(Σ (x − x_zp)·w + bias = Σ x·w + (bias − x_zp·Σw)) and that offset into the matrix, as one more row that
meets a column of ones beside the input, so the product is the accumulator itself.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from lite_runtime.kernels import fixed_point
from lite_runtime.kernels.base import FLOAT32, Node, activation, bound_eval
from lite_runtime.schema import BuiltinOperator as Op

INT8 = np.dtype(np.int8)
_FEW_ROWS = 4  # up to this many rows, hybrid inputs get their quantization parameters in Python scalars
_TILED_BOUNDS = 1 << 16  # up to this many accumulators, per-tensor clamp bounds are full-sized constants


def exact_dtype(matrix: np.ndarray, limits) -> np.dtype:
    """The narrowest float type in which ``x @ matrix`` is exact for integer inputs with |x[k]| <= limits[k]:
    every partial sum, in any order, is an integer bounded by Σ |x[k]|·|matrix[k]|."""
    bound = (np.abs(matrix.astype(np.float64)) * np.reshape(limits, (-1, 1))).sum(axis=0).max(initial=0)
    return np.dtype(np.float32) if bound < 2**24 else np.dtype(np.float64)


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


class Requantization(NamedTuple):
    """int32 accumulators -> int8: the rescale, the output zero point and the clamp range."""

    rescale: fixed_point.Rescale
    zero_point: int
    low: int
    high: int
    folded: fixed_point.FoldedRescale | fixed_point.FloatRescale | None  # the same in one pass, where exact

    @property
    def accumulator_dtype(self) -> np.dtype:
        """The scratch type ``requantize_into`` takes: float64 for a ``FloatRescale``, else int64."""
        return np.dtype(np.float64 if isinstance(self.folded, fixed_point.FloatRescale) else np.int64)


def output_requantization(node: Node, x, weight_scales: np.ndarray, per_channel: bool, shape, bound: int) -> Requantization:
    """``PopulateConvolutionQuantizationParams``: multipliers, output zero point and clamp range, for
    accumulators of ``shape`` that are at most ``bound`` in magnitude; ``folded`` where that bound allows,
    else the rescale (per-channel multipliers tiled to ``shape``, a per-tensor one a scalar)."""
    node.check(node.outputs[0].dtype == INT8, f"output is {node.outputs[0].dtype}, expected int8 for an int8 input")
    x_scale, _ = per_tensor(node, x, "input")
    y_scale, y_zero_point = per_tensor(node, node.outputs[0], "output")
    if per_channel:
        real = np.float64(x_scale) * weight_scales.astype(np.float64) / np.float64(y_scale)
    else:  # GetQuantizedConvolutionMultipler multiplies the two scales in float32
        real = np.full(weight_scales.shape, np.float64(np.float32(x_scale * weight_scales[0])) / np.float64(y_scale))
    rescale = fixed_point.Rescale.of(*fixed_point.quantize_multipliers(real))  # per channel: on the last axis
    if not per_channel:
        rescale = fixed_point.Rescale(*(np.int64(operand[0]) for operand in rescale))
    low, high = fixed_point.activation_range(node, node.option("fused_activation_function"), y_scale, y_zero_point)
    # In float64 where exact (its ufuncs are SIMD, int64 multiplies are not), else in one int64 pass where that fits.
    # A per-channel operand is full-sized (a broadcast one makes the ufunc allocate); a per-tensor one is a scalar,
    # except the clamp bounds up to _TILED_BOUNDS elements: maximum and minimum take a scalar at a third the speed
    # there (at larger sizes the scalar is as fast, and a tiled copy only costs memory).
    small = math.prod(shape) <= _TILED_BOUNDS

    def operand(value, dtype, bound=False):
        if per_channel or (bound and small):
            return node.tiled(value, shape, dtype)
        return dtype(value) if np.ndim(value) == 0 else dtype(np.ravel(value)[0])

    folded = fixed_point.float_rescale(rescale, y_zero_point, low, high, bound)
    if folded is not None:
        folded = fixed_point.FloatRescale(operand(folded.scale, np.float64), np.float64(folded.offset),
                                          operand(folded.low, np.float64, bound=True), operand(folded.high, np.float64, bound=True),
                                          node.tiled(folded.top_bit, shape, np.uint8).reshape(*shape[:-1], -1))  # fmt: skip
    else:
        folded = fixed_point.fold_rescale(rescale, y_zero_point, low, high, bound)
        if folded is not None:
            multiplier, offset, low_bound, high_bound, right_shift = folded
            folded = fixed_point.FoldedRescale(operand(multiplier, np.int64), operand(offset, np.int64),
                                               operand(low_bound, np.int64, bound=True), operand(high_bound, np.int64, bound=True),
                                               operand(right_shift, np.int64))  # fmt: skip
        elif per_channel:
            rescale = fixed_point.Rescale(*(node.tiled(operand, shape, np.int64) for operand in rescale))
    return Requantization(rescale, y_zero_point, low, high, folded)


def requantize_into(out: np.ndarray, accumulators: np.ndarray, requantization: Requantization) -> None:
    """int32 accumulators (an int64 scratch, overwritten) -> int8 ``out``, allocating nothing."""
    rescale, zero_point, low, high, folded = requantization
    if folded is not None:
        if isinstance(folded, fixed_point.FloatRescale):
            fixed_point.float_rescale_into(out, accumulators, folded)
            return
        fixed_point.rescale_and_clamp(accumulators, folded)
        np.copyto(out, accumulators.reshape(out.shape), casting="unsafe")
        return
    fixed_point.rescale_in_place(accumulators, rescale)
    np.add(accumulators, zero_point, out=accumulators)
    np.maximum(accumulators, low, out=accumulators)
    np.minimum(accumulators, high, out=accumulators)
    np.copyto(out, accumulators.reshape(out.shape), casting="unsafe")


def int32_bias(node: Node, channels: int) -> np.ndarray:
    """The int32 bias as int64 (zeros when the operator has none)."""
    bias = node.input(2)
    if bias is None:
        return np.zeros(channels, np.int64)
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


def accumulator_bound(matrix: np.ndarray) -> int:
    """The largest |accumulator| of int8 inputs against a ``folded_matrix`` (its last row meets a column of ones)."""
    magnitudes = np.abs(matrix.astype(np.float64))
    return int((magnitudes[:-1].sum(axis=0) * 128 + magnitudes[-1]).max(initial=0))


def folded_matrix(weights: np.ndarray, x_zero_point: int, bias: np.ndarray) -> np.ndarray:
    """int8 ``weights`` (depth, units) with the offset bias − x_zp·Σw as one more row, in the narrowest float
    type in which a product with int8 inputs (and a trailing 1) is exact."""
    weights = weights.astype(np.int64)
    augmented = np.vstack([weights, bias - x_zero_point * weights.sum(axis=0)])
    return np.ascontiguousarray(augmented, exact_dtype(augmented, [128] * len(weights) + [1]))


# -- quantizing float inputs at run time (hybrid kernels) ---------------------------------------------------
def asymmetric_parameters(low: float, high: float) -> tuple[float, int]:
    """``AsymmetricQuantizeFloats``' (scale, zero point) of a row with minimum ``low`` and maximum ``high``,
    line by line in Python's floats (C++ doubles): the plain form of ``RowQuantizer``'s vectorized one."""
    rmin, rmax = min(low, 0.0), max(high, 0.0)
    if rmin == rmax:
        return 1.0, 0
    scale = (rmax - rmin) / 255.0
    from_min, from_max = -128.0 - rmin / scale, 127.0 - rmax / scale
    zero_point = from_min if 128.0 + abs(rmin / scale) < 127.0 + abs(rmax / scale) else from_max
    if zero_point <= -128.0:
        return scale, -128
    if zero_point >= 127.0:
        return scale, 127
    rounded = math.trunc(zero_point)
    if abs(zero_point - rounded) >= 0.5:
        rounded += 1 if zero_point > 0 else -1
    return scale, rounded


class RowQuantizer:
    """``SymmetricQuantizeFloats`` / ``AsymmetricQuantizeFloats`` of each row of a float32 (rows, depth)
    matrix, into scratch. ``quantize(x)`` returns q − zero_point (a float32 scratch of small integers) and
    leaves each row's float32 scale in ``scales`` (rows, 1) and its zero point in ``zero_points``."""

    def __init__(self, node: Node, rows: int, depth: int, asymmetric: bool):
        self.asymmetric = asymmetric

        def column(dtype):
            return node.scratch((rows, 1), dtype)

        self.low, self.high, self.scales, self.inverse, self.zero_points = (column(np.float32) for _ in range(5))
        self.scale, self.zero_point, self.other, self.truncated, self.spare = (column(np.float64) for _ in range(5))
        self.empty, self.mask = column(np.bool_), column(np.bool_)
        self.values, self.half, self.tile = (node.scratch((rows, depth), np.float32) for _ in range(3))

    def quantize(self, x: np.ndarray) -> np.ndarray:
        np.minimum.reduce(x, 1, None, self.low, True)
        np.maximum.reduce(x, 1, None, self.high, True)
        if len(x) <= _FEW_ROWS:
            self._parameters_row_by_row()
        elif self.asymmetric:
            self._asymmetric_parameters()
        else:
            self._symmetric_parameters()
        np.copyto(self.tile, self.inverse)
        np.multiply(x, self.tile, out=self.values)
        np.copyto(self.tile, self.zero_points)
        np.add(self.values, self.tile, out=self.values)  # offset + value · inverse, in float32
        fixed_point.round_half_away_in_place(self.values, self.half)
        np.maximum(self.values, -128 if self.asymmetric else -127, out=self.values)
        np.minimum(self.values, 127, out=self.values)
        np.subtract(self.values, self.tile, out=self.values)
        return self.values

    def _parameters_row_by_row(self) -> None:
        """The parameters in Python scalars: ~30x faster than the vectorized form's ufuncs for one row."""
        for row, (low, high) in enumerate(zip(self.low.ravel().tolist(), self.high.ravel().tolist())):
            if self.asymmetric:
                scale, zero_point = asymmetric_parameters(low, high)
                self.scales[row, 0] = scale
                self.inverse[row, 0] = np.float32(1) / self.scales[row, 0]
                self.zero_points[row, 0] = self.zero_point[row, 0] = zero_point
            else:
                extent = np.float32(max(abs(low), abs(high)) or 127.0)  # an all-zero row: scale 1
                self.scales[row, 0] = extent / np.float32(127)
                self.inverse[row, 0] = np.float32(127) / extent

    def _symmetric_parameters(self) -> None:
        """In float32: scale = range / 127, inverse = 127 / range (zero points stay 0)."""
        extent = self.high
        np.abs(self.low, out=self.low)
        np.abs(self.high, out=self.high)
        np.maximum(self.low, self.high, out=extent)
        np.equal(extent, 0, out=self.empty)
        np.copyto(extent, 127, where=self.empty)  # an all-zero row: scale 1
        np.divide(extent, np.float32(127), out=self.scales)
        np.divide(np.float32(127), extent, out=self.inverse)

    def _asymmetric_parameters(self) -> None:
        """In float64: the scale (max − min) / 255 and the zero point from whichever end has the smaller error
        (the maximum's on a tie), nudged to an integer in [-128, 127]; the inverse 1 / scale in float32."""
        rmin, rmax, scale, zero_point, other = self.truncated, self.other, self.scale, self.zero_point, self.spare
        np.minimum(self.low, 0, out=self.low)
        np.maximum(self.high, 0, out=self.high)
        np.copyto(rmin, self.low)
        np.copyto(rmax, self.high)
        np.equal(rmin, rmax, out=self.empty)
        np.subtract(rmax, rmin, out=scale)
        np.divide(scale, 255.0, out=scale)
        np.copyto(scale, 1.0, where=self.empty)  # an all-zero row: scale 1 and (below) zero point 0
        np.divide(rmin, scale, out=rmin)
        np.divide(rmax, scale, out=rmax)
        np.subtract(-128.0, rmin, out=zero_point)  # from the minimum
        np.subtract(127.0, rmax, out=other)  # from the maximum
        np.abs(rmin, out=rmin)
        np.add(rmin, 128.0, out=rmin)  # the minimum's error
        np.abs(rmax, out=rmax)
        np.add(rmax, 127.0, out=rmax)  # the maximum's error
        np.greater_equal(rmin, rmax, out=self.mask)
        np.copyto(zero_point, other, where=self.mask)
        np.maximum(zero_point, -128.0, out=zero_point)
        np.minimum(zero_point, 127.0, out=zero_point)
        # std::round, exactly: truncate, then step away from zero where the fraction is at least a half
        np.trunc(zero_point, out=self.truncated)
        np.subtract(zero_point, self.truncated, out=other)
        np.abs(other, out=other)
        np.greater_equal(other, 0.5, out=self.mask)
        np.sign(zero_point, out=other)
        np.add(self.truncated, other, out=self.truncated, where=self.mask)
        np.copyto(zero_point, self.truncated)
        np.copyto(zero_point, 0.0, where=self.empty)
        np.copyto(self.scales, scale)
        np.copyto(self.zero_points, zero_point)
        np.divide(np.float32(1), self.scales, out=self.inverse)


class ScaleBack(NamedTuple):
    """The float side of a hybrid product: out = float32(acc) · (row scale · channel scale) + bias, in float32
    in TFLite's order, then the activation. ``outer`` (rows, channels) takes the scale products (a BLAS outer
    product: each entry is one float32 multiply), ``scale`` spreads them over ``out``'s shape."""

    channel_scales: np.ndarray  # (1, channels)
    outer: np.ndarray
    scale: np.ndarray
    bias: np.ndarray | None  # tiled to out's shape
    act: object

    @classmethod
    def prepare(cls, node: Node, rows: int, scales: np.ndarray, shape) -> ScaleBack:
        bias = float_bias(node, len(scales))
        return cls(scales.reshape(1, -1), node.scratch((rows, len(scales)), np.float32), node.scratch(shape, np.float32),
                   None if bias is None else node.tiled(bias, shape, np.float32),
                   activation(node, node.option("fused_activation_function")))  # fmt: skip

    def into(self, out: np.ndarray, accumulators: np.ndarray, row_scales: np.ndarray) -> None:
        np.dot(row_scales, self.channel_scales, out=self.outer)
        np.copyto(self.scale, self.outer.reshape(self.outer.shape[0], *[1] * (out.ndim - 2), -1))
        np.copyto(out, accumulators)  # rounds to float32 as TFLite converts its int32 accumulator
        np.multiply(out, self.scale, out=out)
        if self.bias is not None:
            np.add(out, self.bias, out=out)
        if self.act is not None:
            self.act(out)


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
    matrix = node.constant(1, "int8 weights").T
    if x.dtype == FLOAT32:
        node.check(node.outputs[0].dtype == FLOAT32, f"output is {node.outputs[0].dtype}, expected float32 for a float32 input")
        quantizer = RowQuantizer(node, rows, depth, bool(node.option("asymmetric_quantize_inputs")))
        matrix = np.ascontiguousarray(matrix, exact_dtype(matrix, [255] * depth))
        widened = node.scratch((rows, depth), matrix.dtype) if matrix.dtype != FLOAT32 else None
        state = (rows, depth, quantizer, widened, matrix, node.scratch((rows, units), matrix.dtype),
                 ScaleBack.prepare(node, rows, scales, (rows, units)))  # fmt: skip
        return [(shape, FLOAT32)], (_eval_hybrid_fully_connected, state)
    node.check(x.dtype == INT8, f"input is {x.dtype}, expected int8 or float32")
    _x_scale, x_zero_point = per_tensor(node, x, "input")
    folded = folded_matrix(matrix, x_zero_point, int32_bias(node, units))
    requantization = output_requantization(node, x, scales, len(weights.scales) > 1, (rows, units), accumulator_bound(folded))
    columns = node.scratch((rows, depth + 1), folded.dtype, fill=1)
    if rows == 1:  # one row: gemv reads the [out, in] layout (as a transposed view) faster than its transpose
        folded = np.ascontiguousarray(folded.T).T
    state = (rows, depth, columns[:, :depth], columns, folded, node.scratch((rows, units), folded.dtype),
             node.scratch((rows, units), requantization.accumulator_dtype), requantization)  # fmt: skip
    return [(shape, INT8)], (bound_eval(_bind_fully_connected), state)


def requantizer(out: np.ndarray, accumulators: np.ndarray, requantization: Requantization):
    """``requantize_into(out, accumulators, requantization)`` as a zero-argument call, its operands bound."""
    folded = requantization.folded
    out = out.reshape(accumulators.shape)
    if isinstance(folded, fixed_point.FloatRescale):
        scale, offset, low, high, top_bit = folded
        codes = out.view(np.uint8)
        multiply, add, maximum, minimum, xor, copy = np.multiply, np.add, np.maximum, np.minimum, np.bitwise_xor, np.copyto

        def run_in_float():
            multiply(accumulators, scale, out=accumulators)
            add(accumulators, offset, out=accumulators)
            maximum(accumulators, low, out=accumulators)
            minimum(accumulators, high, out=accumulators)
            copy(codes, accumulators, casting="unsafe")
            xor(codes, top_bit, out=codes)

        return run_in_float
    if folded is None:
        return functools.partial(requantize_into, out, accumulators, requantization)
    multiplier, offset, low, high, right_shift = folded
    multiply, add, maximum, minimum, shift, copy = np.multiply, np.add, np.maximum, np.minimum, np.right_shift, np.copyto

    def run():
        multiply(accumulators, multiplier, out=accumulators)
        add(accumulators, offset, out=accumulators)
        maximum(accumulators, low, out=accumulators)
        minimum(accumulators, high, out=accumulators)
        shift(accumulators, right_shift, out=accumulators)
        copy(out, accumulators, casting="unsafe")

    return run


def _bind_fully_connected(state, inputs, outputs):
    rows, depth, head, columns, matrix, product, accumulators, requantization = state
    x, dot, copy = inputs[0].reshape(rows, depth), np.dot, np.copyto
    requantize = requantizer(outputs[0], accumulators, requantization)

    def run():
        head[...] = x  # item assignment: np.copyto's copy without its dispatch
        dot(columns, matrix, product)
        copy(accumulators, product, casting="unsafe")
        requantize()

    return run


def _eval_hybrid_fully_connected(state, inputs, outputs):
    rows, depth, quantizer, widened, matrix, product, scale_back = state
    centered = quantizer.quantize(inputs[0].reshape(rows, depth))
    if widened is not None:
        centered = widened
        np.copyto(widened, quantizer.values)
    np.dot(centered, matrix, out=product)
    scale_back.into(outputs[0].reshape(product.shape), product, quantizer.scales)


# -- BATCH_MATMUL ---------------------------------------------------------------------------------------------
def prepare_batch_matmul(node: Node):
    """Hybrid BATCH_MATMUL (batch_matmul.cc ``EvalHybrid``): a float32 left operand, a constant int8 right one
    with one scale. Each row of the left operand is quantized, the raw int8 product taken, and the zero point
    taken back out in float32 as reference/batch_matmul.h does: total − float(row_sum)·float(offset)."""
    node.arity(2)
    a, b = node.inputs
    node.check(a.dtype == FLOAT32 and b.dtype == INT8, f"operands {a.dtype}, {b.dtype}: only float32 x int8 (hybrid) runs here")
    node.check(node.outputs[0].dtype == FLOAT32, f"output is {node.outputs[0].dtype}, expected float32")
    node.check(2 <= len(a.shape) <= 5 and 2 <= len(b.shape) <= 5, f"operands {list(a.shape)}, {list(b.shape)} need rank 2..5")
    node.check(b.scales is not None and len(b.scales) == 1, "int8 right operand needs exactly one scale (per tensor)")
    weight_scale = channel_scales(node, b, 1, 0)[0]
    matrix = node.constant(1, "int8 right operand")
    if node.option("adj_y"):
        matrix = np.swapaxes(matrix, -1, -2)
    adj_x = bool(node.option("adj_x"))
    rows, inner = (a.shape[-1], a.shape[-2]) if adj_x else a.shape[-2:]
    node.check(inner == matrix.shape[-2], f"inner dims differ: {list(a.shape)} x {list(b.shape)} (adj_x={adj_x}, adj_y={node.option('adj_y')})")
    try:
        batch = np.broadcast_shapes(a.shape[:-2], matrix.shape[:-2])
    except ValueError:
        raise node.fail(f"batch dims {list(a.shape[:-2])} and {list(b.shape[:-2])} do not broadcast") from None
    count = int(np.prod(a.shape[:-2], dtype=np.int64)) * rows
    quantizer = RowQuantizer(node, count, inner, bool(node.option("asymmetric_quantize_inputs")))
    dtype = max((exact_dtype(m, [128] * inner) for m in matrix.reshape(-1, *matrix.shape[-2:])), key=lambda d: d.itemsize)
    left = (*a.shape[:-2], rows, inner)
    shape = (*batch, rows, matrix.shape[-1])
    row_sums = matrix.sum(axis=-2, keepdims=True, dtype=np.int64).astype(np.float32)  # exact below 2^24
    state = (adj_x, node.scratch(left, np.float32) if adj_x else None, quantizer, node.scratch(left, dtype),
             np.ascontiguousarray(matrix, dtype), node.scratch(shape, dtype), node.tiled(row_sums, shape, np.float32),
             quantizer.scales.reshape(left[:-1] + (1,)), quantizer.zero_points.reshape(left[:-1] + (1,)),
             np.float32(weight_scale), node.scratch(shape, np.float32), node.scratch(shape, np.float32))  # fmt: skip
    return [(shape, FLOAT32)], (_eval_hybrid_batch_matmul, state)


def _eval_hybrid_batch_matmul(state, inputs, outputs):
    adj_x, transposed, quantizer, values, matrix, product, row_sums, scales, offsets, weight_scale, total, spread = state
    x = inputs[0]
    if adj_x:
        np.copyto(transposed, np.swapaxes(x, -1, -2))
        x = transposed
    centered = quantizer.quantize(x.reshape(-1, x.shape[-1]))
    np.add(centered, quantizer.tile, out=centered)  # the raw int8 values: the reference subtracts in float
    np.copyto(values, centered.reshape(values.shape))
    np.matmul(values, matrix, out=product)
    np.copyto(total, product)  # the int32 total as float32
    np.copyto(spread, offsets)
    np.multiply(spread, row_sums, out=spread)
    np.subtract(total, spread, out=total)
    np.multiply(quantizer.scales, weight_scale, out=quantizer.scales)  # the row scale times the filter scale
    np.copyto(spread, scales)
    np.multiply(spread, total, out=outputs[0])


# Each operator's quantized ``prepare``; ``kernels/__init__`` pairs it with the float kernel.
PREPARES = {
    Op.FULLY_CONNECTED: prepare_fully_connected,
    Op.BATCH_MATMUL: prepare_batch_matmul,
}
