"""The one copy of the quantization formulas (TFLite's int8 spec, docs/formats.md).

``real = scale * (q - zero_point)``. Weights: int8 symmetric (zero point 0) in [-127, 127], one scale per
slice along the channel axis. Activations: int8 asymmetric in [-128, 127], the range widened to hold 0
and the zero point nudged to an integer so that 0.0 is exact. Biases: int32, scale = input scale x
weight scale, zero point 0.
"""

from __future__ import annotations

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
WEIGHT_MAX = 127  # symmetric weights leave -128 unused, as the spec asks
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_TINY = np.float32(1e-12)


def symmetric_scales(weights: np.ndarray, axis: int | None) -> np.ndarray:
    """Per-slice (``axis``) or per-tensor (``None``) scales max|w| / 127; an all-zero slice gets scale 1."""
    weights = np.asarray(weights, np.float32)
    if axis is None:
        peak = np.abs(weights).max(initial=0.0).reshape(1)
    else:
        others = tuple(i for i in range(weights.ndim) if i != axis % weights.ndim)
        peak = np.abs(weights).max(axis=others, initial=0.0).reshape(-1)
    return np.where(peak > 0, peak / WEIGHT_MAX, 1.0).astype(np.float32)


def quantize_symmetric(weights: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Int8 weights and their scales (zero point 0)."""
    weights = np.asarray(weights, np.float32)
    scales = symmetric_scales(weights, axis)
    q = np.clip(np.round(weights / _broadcast(scales, weights.ndim, axis)), -WEIGHT_MAX, WEIGHT_MAX)
    return q.astype(np.int8), scales


def asymmetric_params(low: float, high: float) -> tuple[float, int]:
    """(scale, zero point) of an int8 activation observed in [low, high]; 0 is always exactly representable."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if high - low <= _TINY:
        return 1.0, 0  # a tensor that is always 0
    scale = (high - low) / (INT8_MAX - INT8_MIN)
    zero_point = int(np.clip(np.round(INT8_MIN - low / scale), INT8_MIN, INT8_MAX))
    return float(np.float32(scale)), zero_point


def quantize_affine(array: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Int8 values of ``array`` under per-tensor (scale, zero point)."""
    q = np.round(np.asarray(array, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)


def quantize_bias(bias: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Int32 biases at ``scales`` (input scale x weight scale, per output channel or one)."""
    q = np.round(np.asarray(bias, np.float64) / np.asarray(scales, np.float64))
    return np.clip(q, INT32_MIN, INT32_MAX).astype(np.int32)


def dequantize(q: np.ndarray, scale, zero_point, axis: int | None = None) -> np.ndarray:
    """``scale * (q - zero_point)`` as float32 (per-channel when ``scale`` has several entries)."""
    q = np.asarray(q)
    scale, zero_point = np.asarray(scale, np.float32).reshape(-1), np.asarray(zero_point).reshape(-1)
    if scale.size == 1:
        return (np.float32(scale[0]) * (q.astype(np.float32) - np.float32(zero_point[0]))).astype(np.float32)
    shape = [1] * q.ndim
    shape[axis] = -1
    return (scale.reshape(shape) * (q.astype(np.float32) - zero_point.reshape(shape).astype(np.float32))).astype(
        np.float32
    )


def _broadcast(scales: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    if axis is None:
        return scales.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return scales.reshape(shape)
