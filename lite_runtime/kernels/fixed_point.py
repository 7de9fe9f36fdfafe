"""TFLite's integer requantization arithmetic, vectorized over NumPy int64 arrays.

The functions follow ``tensorflow/lite/kernels/internal/common.h`` (``MultiplyByQuantizedMultiplier``),
gemmlowp's ``SaturatingRoundingDoublingHighMul`` and ``RoundingDivideByPOT``, and
``quantization_util.cc`` (``QuantizeMultiplier``) bit for bit: a real multiplier M becomes an int32
``multiplier`` q·2^31 with q in [0.5, 1) and a power-of-two ``shift``, and ``x·M`` is computed as a
rounding high multiply followed by a rounding right shift. Arrays hold int32 values in int64 so that
products never overflow; ``multiplier`` and ``shift`` broadcast (per channel on the last axis).
"""

from __future__ import annotations

import math

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


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp ``SaturatingRoundingDoublingHighMul``: round(a·b / 2^31) with ties away from zero."""
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
    """``MultiplyByQuantizedMultiplier(x, multiplier, shift)`` for int32 values ``x`` held in int64."""
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
