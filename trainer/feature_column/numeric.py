"""``tf.feature_column.numeric_column`` and the dense input it makes from a features dict."""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

from trainer import dtypes, nest
from trainer.ops import array_ops, math_ops
from trainer.tensor import Tensor


class NumericColumn(NamedTuple):
    """A real-valued feature: ``key`` in the features dict, its per-example ``shape``, dtype and normalizer."""

    key: str
    shape: tuple
    default_value: object
    dtype: object
    normalizer_fn: Callable | None

    @property
    def name(self) -> str:
        return self.key

    @property
    def size(self) -> int:
        """How many values one example contributes to the dense input."""
        return math.prod(self.shape)


def numeric_column(key, shape=(1,), default_value=None, dtype=dtypes.float32, normalizer_fn=None) -> NumericColumn:
    """A column for the real-valued feature ``features[key]`` of per-example ``shape``, like TensorFlow's.

    Args:
        key: the feature's name in the features dict.
        shape: the shape of one example's value (an int is a vector length).
        default_value: accepted for compatibility; emberflow's datasets have no missing values.
        dtype: a floating dtype (the value is cast to it).
        normalizer_fn: applied to the feature tensor before it is used, e.g. ``lambda x: (x - 3.0) / 4.2``.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"numeric_column: key must be a non-empty string, got {key!r}")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not shape or not all(isinstance(size, int) and size > 0 for size in shape):
        raise ValueError(f"numeric_column '{key}': shape dimensions must be positive integers, got {shape}")
    dtype = dtypes.as_dtype(dtype)
    if not dtype.is_floating:
        raise ValueError(f"numeric_column '{key}': dtype must be a floating dtype, got {dtype.name}")
    if normalizer_fn is not None and not callable(normalizer_fn):
        raise TypeError(f"numeric_column '{key}': normalizer_fn must be callable, got {type(normalizer_fn).__name__}")
    return NumericColumn(key, shape, default_value, dtype, normalizer_fn)


def check_columns(feature_columns, owner: str) -> list:
    """The columns as a list sorted by name (TensorFlow's order), refusing anything but numeric columns."""
    columns = list(feature_columns or ())
    if not columns:
        raise ValueError(f"{owner}: feature_columns must not be empty")
    for column in columns:
        if not isinstance(column, NumericColumn):
            raise TypeError(f"{owner}: {type(column).__name__} columns are not supported by emberflow; use tf.feature_column.numeric_column")
    return sorted(columns, key=lambda column: column.name)


def dense_input(features, feature_columns) -> Tensor:
    """The features of a batch as one ``[batch, sum of column sizes]`` tensor, columns in name order."""
    if not isinstance(features, dict):
        raise TypeError(f"feature columns need a dict of features, got {type(features).__name__}; yield ({{'name': values}}, labels)")
    parts = []
    for column in check_columns(feature_columns, "feature columns"):
        if column.key not in features:
            raise KeyError(f"feature '{column.key}' is not in the features dict; it has {sorted(features)}")
        value = math_ops.cast(nest.flatten(features[column.key])[0], column.dtype)
        if column.normalizer_fn is not None:
            value = column.normalizer_fn(value)
        expected = value.shape.as_list()[1:]
        if expected and math.prod(size or 0 for size in expected) != column.size:
            raise ValueError(f"feature '{column.key}' has per-example shape {tuple(expected)}, its numeric_column says {column.shape}")
        parts.append(array_ops.reshape(value, (-1, column.size)))
    return parts[0] if len(parts) == 1 else array_ops.concat(parts, axis=1)
