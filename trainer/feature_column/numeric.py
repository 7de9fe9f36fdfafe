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
        dtype: a real integer or floating dtype: the feature is cast to it, then normalized, then cast
            to float32 (as TensorFlow does).
        normalizer_fn: applied to the feature tensor before it is used, e.g. ``lambda x: (x - 3.0) / 4.2``.

    A feature of shape ``(batch,)`` is one value per example, so it fits only a column of size 1;
    otherwise the feature must be ``(batch, *shape)`` or any shape with as many values per example.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"numeric_column: key must be a non-empty string, got {key!r}")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not shape or not all(isinstance(size, int) and size > 0 for size in shape):
        raise ValueError(f"numeric_column '{key}': shape dimensions must be positive integers, got {shape}")
    dtype = dtypes.as_dtype(dtype)
    if not (dtype.is_floating or dtype.is_integer):
        raise ValueError(f"numeric_column '{key}': dtype must be a real integer or floating point dtype, got {dtype.name}")
    if normalizer_fn is not None and not callable(normalizer_fn):
        raise TypeError(f"numeric_column '{key}': normalizer_fn must be callable, got {type(normalizer_fn).__name__}")
    return NumericColumn(key, shape, default_value, dtype, normalizer_fn)


def check_columns(feature_columns, owner: str) -> list:
    """The columns as a list sorted by name (TensorFlow's order), refusing anything but numeric columns and duplicates."""
    columns = list(feature_columns or ())
    if not columns:
        raise ValueError(f"{owner}: feature_columns must not be empty")
    by_name = {}
    for column in columns:
        if not isinstance(column, NumericColumn):
            raise TypeError(f"{owner}: {type(column).__name__} columns are not supported by emberflow; use tf.feature_column.numeric_column")
        if column.name in by_name:
            raise ValueError(
                f"{owner}: Duplicate feature column name found for columns: {column} and {by_name[column.name]}. "
                "This usually means that these columns refer to same base feature. Either one must be discarded or a "
                "duplicated but renamed item must be inserted in features dict."
            )
        by_name[column.name] = column
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
        value = math_ops.cast(value, dtypes.float32)
        _check_example_shape(column, value.shape.as_list())
        parts.append(array_ops.reshape(value, (-1, column.size)))
    return parts[0] if len(parts) == 1 else array_ops.concat(parts, axis=1)


def _check_example_shape(column: NumericColumn, shape: list) -> None:
    """Refuses a feature whose values per example (all but the batch dimension) are not the column's size."""
    if len(shape) == 1:
        if column.size != 1:
            raise ValueError(
                f"feature '{column.key}' has shape {tuple(shape)}: one value per example, but its numeric_column has "
                f"shape {column.shape} ({column.size} values per example); give it shape (batch, {', '.join(map(str, column.shape))})"
            )
        return
    per_example = shape[1:]
    if not per_example or math.prod(size or 0 for size in per_example) != column.size:
        raise ValueError(f"feature '{column.key}' has per-example shape {tuple(per_example)}, its numeric_column says {column.shape}")
