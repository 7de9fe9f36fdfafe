"""TFLite's integer requantization arithmetic, vectorized over NumPy int64 arrays.

``quantize_multiplier`` is ``QuantizeMultiplier`` (``quantization_util.cc``): a real multiplier M becomes
an int32 ``multiplier`` q·2^31 with q in [0.5, 1) and a power-of-two ``shift``. x·M is then taken in
integers, and LiteRT has two ways to round it (``tensorflow/lite/kernels/internal/common.h``):

- once, ties upward (``TFLITE_SINGLE_ROUNDING``; XNNPACK's "rndnu"): what LiteRT's default interpreter
  computes, so ``multiply_by_quantized_multiplier`` and every int8 kernel here round this way;
- twice, gemmlowp's ``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT``: what the reference
  kernels compute; kept as ``multiply_by_quantized_multiplier_twice_rounded`` (the tests check both).

Arrays hold int32 values in int64 so that products never overflow; ``multiplier`` and ``shift``
broadcast (per channel on the last axis). ``Rescale`` is the same single rounding prepared once and applied
in place (``rescale_in_place``). Kernels that add an output zero point and clamp after it take it folded
with them where the accumulators' bound allows: ``FloatRescale`` (float64, exact there) or ``FoldedRescale``
(one int64 pass); the tests check both against the plain chain, ties included.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from lite_runtime.schema import Activation

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """``QuantizeMultiplier``: (int32 multiplier, shift) with real_multiplier = multiplier · 2^(shift - 31)."""
    if real_multiplier == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real_multiplier)
    multiplier = int(round_half_away(fraction * (1 << 31)))
    if multiplier == 1 << 31:
        multiplier //= 2
        shift += 1
    if shift < -31:  # every bit would be shifted out: TFLite flushes such multipliers to zero
        return 0, 0
    if shift > 30:  # beyond what the single rounding can shift: TFLite saturates (multipliers over 2^30)
        return (1 << 31) - 1, 30
    return int(multiplier), shift


def quantize_multipliers(real_multipliers) -> tuple[np.ndarray, np.ndarray]:
    """``quantize_multiplier`` of each value: int64 arrays of multipliers and shifts."""
    pairs = [quantize_multiplier(float(m)) for m in np.asarray(real_multipliers, np.float64).reshape(-1)]
    return np.array([m for m, _ in pairs], np.int64), np.array([s for _, s in pairs], np.int64)


def round_half_away(x):
    """``std::round``/``TfLiteRound``: to nearest, ties away from zero (``np.round`` ties to even)."""
    truncated = np.trunc(x)
    fraction = x - truncated  # exact in floating point
    return np.where(np.abs(fraction) >= 0.5, truncated + np.sign(x), truncated)


JUST_BELOW_HALF = np.float32(0.49999997)  # nextafter(0.5, 0) in float32


def round_half_away_in_place(values: np.ndarray, scratch: np.ndarray) -> None:
    """``round_half_away`` of a float32 array, in place, allocating nothing (``scratch``: same shape and type).

    trunc(v + copysign(0.49999997, v)) in float32 is exact for every finite v: with n = round_half_away(v),
    v + 0.49999997 lies in [n − 2^-25, n + 1 − 2^-25) and rounds into [n, n + 1), a tie v = n − ½ rounding
    up to n (adding 0.5 instead turns 0.49999997 into 1)."""
    np.copysign(JUST_BELOW_HALF, values, out=scratch)
    np.add(values, scratch, out=values)
    np.trunc(values, out=values)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp ``SaturatingRoundingDoublingHighMul``: a·b / 2^31 rounded to nearest, ties upward."""
    product = np.multiply(a, b, dtype=np.int64)
    negative = product >> 63  # -1 where the product is negative, else 0
    product += 1 << 30
    product += negative & (1 - (1 << 31))  # the nudge: 2^30, or 1 - 2^30 for a negative product
    product += (product >> 63) & ((1 << 31) - 1)  # so that the shift truncates toward zero, as C++ division
    product >>= 31
    if np.any(np.asarray(b) == INT32_MIN):
        product = np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, product)
    return product


def rounding_divide_by_pot(x, exponent):
    """gemmlowp ``RoundingDivideByPOT``: x / 2^exponent rounded to nearest, ties away from zero."""
    # gemmlowp adds 1 to x >> exponent when the remainder exceeds half the mask (plus one for negative x);
    # adding that threshold's complement before the shift does the same in one pass.
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent)
    result = x + ((np.left_shift(np.int64(1), exponent) - 1) >> 1)
    result += (x >= 0) & (exponent > 0)
    result >>= exponent
    return result


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """x · multiplier · 2^(shift − 31) rounded once, to nearest with ties upward, for int32 ``x`` in int64.

    This is ``MultiplyByQuantizedMultiplier`` as TFLite builds it with ``TFLITE_SINGLE_ROUNDING`` and as
    XNNPACK, LiteRT's default CPU path, requantizes ("rndnu"): the arithmetic LiteRT's users get."""
    total_shift = 31 - np.asarray(shift, np.int64)
    result = np.multiply(x, multiplier, dtype=np.int64)
    result += np.left_shift(np.int64(1), total_shift - 1)
    result >>= total_shift
    return result


class Rescale(NamedTuple):
    """``multiply_by_quantized_multiplier``'s operands, computed once: int64 arrays broadcasting on x's last axis."""

    multiplier: np.ndarray
    rounding: np.ndarray  # 2^(right_shift - 1): half of the last kept bit
    right_shift: np.ndarray  # 31 - shift

    @classmethod
    def of(cls, multiplier, shift) -> Rescale:
        right_shift = 31 - np.asarray(shift, np.int64)
        return cls(np.asarray(multiplier, np.int64), np.left_shift(np.int64(1), right_shift - 1), right_shift)


def rescale_in_place(x: np.ndarray, rescale: Rescale) -> None:
    """``multiply_by_quantized_multiplier`` of the int64 array ``x``, written over it: no temporary arrays."""
    np.multiply(x, rescale.multiplier, out=x)
    np.add(x, rescale.rounding, out=x)
    np.right_shift(x, rescale.right_shift, out=x)


class FoldedRescale(NamedTuple):
    """``Rescale``, the output zero point and the clamp to [low, high] as one int64 pass (``rescale_and_clamp``):
    t = x·multiplier + offset, clamped to [low, high], shifted right by ``right_shift``.

    offset = 2^(r−1) + zero_point·2^r, and the bounds are low·2^r and (high + 1)·2^r − 1 (r: the right shift):
    adding a multiple of 2^r commutes with the flooring shift, and floor(t / 2^r) lies in [low, high] exactly
    when t lies in those bounds, so the result is ``multiply_by_quantized_multiplier`` + zero point, clamped."""

    multiplier: np.ndarray
    offset: np.ndarray
    low: np.ndarray
    high: np.ndarray
    right_shift: np.ndarray


def fold_rescale(rescale: Rescale, zero_point: int, low: int, high: int, bound: int) -> FoldedRescale | None:
    """``rescale`` folded with its zero point and clamp, for int64 ``x`` with |x| <= ``bound``; None when some
    intermediate could leave int64 (then the kernel rescales, adds and clamps in turn)."""
    multiplier, _rounding, right = rescale
    widest = int(np.max(right))
    largest = int(bound) * int(np.max(np.abs(multiplier))) + (abs(zero_point) + 1) * 2**widest
    if largest >= 2**62 or (max(abs(low), abs(high)) + 1) * 2**widest >= 2**62:
        return None
    power = np.left_shift(np.int64(1), right)
    return FoldedRescale(multiplier, power // 2 + zero_point * power, low * power, (high + 1) * power - 1, right)


def rescale_and_clamp(x: np.ndarray, folded: FoldedRescale) -> None:
    """``FoldedRescale`` applied to the int64 array ``x``, in place."""
    np.multiply(x, folded.multiplier, out=x)
    np.add(x, folded.offset, out=x)
    np.maximum(x, folded.low, out=x)
    np.minimum(x, folded.high, out=x)
    np.right_shift(x, folded.right_shift, out=x)


class FloatRescale(NamedTuple):
    """``FoldedRescale`` in float64, where it is exact (``float_rescale``), written as int8 codes shifted by 128:
    v = x·scale + offset clamped to [low, high], with scale = multiplier·2^−r, offset = zero_point + ½ + 128 and
    the clamp range plus 128. floor(v) is then ((x·multiplier + 2^(r−1)) >> r) + zero_point, clamped, plus 128:
    a byte in [0, 255], which a cast to uint8 takes (truncation is floor at v >= 0) and flipping its top bit
    turns into the int8 code."""

    scale: np.ndarray
    offset: float
    low: float
    high: float
    top_bit: int = 0x80


def float_rescale(rescale: Rescale, zero_point: int, low: int, high: int, bound: int) -> FloatRescale | None:
    """``rescale`` with its zero point and clamp in float64 for integer-valued ``x`` with |x| <= ``bound``, or None
    where float64 could round: x·multiplier needs |x|·multiplier < 2^53, and the sum with zero_point + ½ + 128, a
    multiple of 2^−r, needs fewer than 2^53 of them (2^52 here, a margin)."""
    multiplier, _rounding, right = rescale
    widest = int(np.max(right))
    if int(bound) * int(np.max(np.abs(multiplier))) + (abs(zero_point) + 129) * 2**widest >= 2**52:
        return None
    scale = np.asarray(multiplier, np.float64) * np.exp2(-np.asarray(right, np.float64))  # exact: times a power of two
    return FloatRescale(scale, zero_point + 128.5, float(low + 128), float(high + 128))


def float_rescale_into(out: np.ndarray, x: np.ndarray, folded: FloatRescale) -> None:
    """``FloatRescale`` of the float64 array ``x`` (of integers, overwritten) into the int8 array ``out``."""
    np.multiply(x, folded.scale, out=x)
    np.add(x, folded.offset, out=x)
    np.maximum(x, folded.low, out=x)
    np.minimum(x, folded.high, out=x)
    codes = out.view(np.uint8)
    np.copyto(codes, x.reshape(out.shape), casting="unsafe")
    np.bitwise_xor(codes, folded.top_bit, out=codes)


def multiply_by_quantized_multiplier_twice_rounded(x, multiplier, shift):
    """gemmlowp's ``MultiplyByQuantizedMultiplier``: a rounding high multiply, then a rounding shift.

    TFLite's reference CONV_2D, DEPTHWISE_CONV_2D, ADD, MUL and MEAN kernels (``BUILTIN_REF``) round
    twice this way; the result is one step from the single rounding when x·M lies within 2^-(right+1) of a
    half (and on ties, which this rounds away from zero for negative values)."""
    left = np.maximum(shift, 0)
    right = np.maximum(-np.asarray(shift), 0)
    shifted = np.left_shift(np.asarray(x, np.int64), left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def activation_range(node, code: int, scale: float, zero_point: int, low: int = -128, high: int = 127) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized``: the quantized clamp range of a fused activation."""

    def quantize(value: float) -> int:
        return zero_point + int(round_half_away(float(np.float32(value) / np.float32(scale))))

    ranges = {
        Activation.NONE: (low, high),
        Activation.RELU: (max(low, quantize(0.0)), high),
        Activation.RELU6: (max(low, quantize(0.0)), min(high, quantize(6.0))),
        Activation.RELU_N1_TO_1: (max(low, quantize(-1.0)), min(high, quantize(1.0))),
    }
    node.check(code in ranges, f"fused activation {code} is not supported on quantized tensors")
    return ranges[code]
