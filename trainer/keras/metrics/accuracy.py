"""Accuracy metrics: exact, binary, categorical, sparse categorical and top-k, as functions and classes.

Each function returns one 0/1 match per sample (float32), following Keras 3's shape handling; each
class is the running mean of its function.
"""

from __future__ import annotations

from trainer import dtypes
from trainer.keras.losses.loss import squeeze_or_expand_to_same_rank
from trainer.keras.saving.registration import keras_serializable
from trainer.ops import array_ops, math_ops
from trainer.tensor import convert_to_tensor

from .metric import MeanMetricWrapper


def _matches(x, y):
    return math_ops.cast(math_ops.equal(x, y), dtypes.float32)


def accuracy(y_true, y_pred):
    """1 where ``y_true == y_pred`` exactly, else 0."""
    y_pred = convert_to_tensor(y_pred)
    y_true = math_ops.cast(convert_to_tensor(y_true), y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return _matches(y_true, y_pred)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1 where ``(y_pred > threshold)`` equals the 0/1 label."""
    y_pred = convert_to_tensor(y_pred)
    y_true = math_ops.cast(convert_to_tensor(y_true), y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    predicted = math_ops.cast(math_ops.greater(y_pred, threshold), y_true.dtype)
    return _matches(y_true, predicted)


def categorical_accuracy(y_true, y_pred):
    """1 where the arg-max of the one-hot label equals the arg-max of the prediction."""
    return _matches(math_ops.argmax(y_true, axis=-1), math_ops.argmax(y_pred, axis=-1))


def sparse_categorical_accuracy(y_true, y_pred):
    """1 where the integer label equals the arg-max of the prediction; labels ``(N,)`` or ``(N, 1)``."""
    y_pred = convert_to_tensor(y_pred)
    y_true = math_ops.cast(convert_to_tensor(y_true), y_pred.dtype)
    true_shape = y_true.shape.as_tuple()
    if y_true.ndim == y_pred.ndim and true_shape[-1] == 1:
        y_true = array_ops.squeeze(y_true, -1)
    predicted = math_ops.cast(math_ops.argmax(y_pred, axis=-1), y_true.dtype)
    return _matches(y_true, predicted)


def in_top_k(targets, predictions, k):
    """True where the target's prediction is among the ``k`` largest of its row; ties at the boundary
    all count as in the top ``k`` (as ``tf.math.in_top_k``)."""
    depth = predictions.shape.as_tuple()[-1]
    hot = array_ops.one_hot(targets, depth, dtype=predictions.dtype)
    target_value = math_ops.reduce_sum(math_ops.multiply(hot, predictions), -1, keepdims=True)
    larger = math_ops.reduce_sum(math_ops.cast(math_ops.greater(predictions, target_value), dtypes.int32), -1)
    return math_ops.less(larger, int(k))


def _top_k_matches(targets, y_pred, k):
    """``in_top_k`` on predictions flattened to ``(-1, classes)``, reshaped back like ``targets``."""
    y_pred = convert_to_tensor(y_pred)
    original = targets
    if y_pred.ndim > 2:
        y_pred = array_ops.reshape(y_pred, (-1, y_pred.shape.as_tuple()[-1]))
    if targets.ndim > 1:
        targets = array_ops.reshape(targets, (-1,))
    matches = math_ops.cast(in_top_k(math_ops.cast(targets, dtypes.int32), y_pred, k), dtypes.float32)
    return array_ops.reshape_like(matches, original) if original.ndim > 1 else matches


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1 where the one-hot label's class is among the ``k`` highest predictions."""
    return _top_k_matches(math_ops.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1 where the integer label is among the ``k`` highest predictions."""
    if from_sorted_ids:
        raise NotImplementedError(
            "sparse_top_k_categorical_accuracy(from_sorted_ids=True) is not supported by emberflow"
        )
    return _top_k_matches(math_ops.cast(convert_to_tensor(y_true), dtypes.int32), y_pred, k)


@keras_serializable("metrics", "accuracy")
class Accuracy(MeanMetricWrapper):
    """How often predictions equal labels exactly (for class indices, not probabilities).

    Args:
        name: the metric's name.
        dtype: the dtype of the result.

    Example:
        >>> metric = tf.keras.metrics.Accuracy()
        >>> metric.update_state([[1], [2], [3], [4]], [[0], [2], [3], [4]])
        >>> float(metric.result())
        0.75
    """

    _direction = "up"

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(fn=accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras_serializable("metrics", "binary_accuracy")
class BinaryAccuracy(MeanMetricWrapper):
    """How often ``prediction > threshold`` matches a 0/1 label.

    Args:
        name: the metric's name.
        dtype: the dtype of the result.
        threshold: the probability above which a prediction counts as 1.

    Example:
        >>> metric = tf.keras.metrics.BinaryAccuracy()
        >>> metric.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])
        >>> float(metric.result())
        0.75
    """

    _direction = "up"

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(fn=binary_accuracy, name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "threshold": self.threshold}


@keras_serializable("metrics", "categorical_accuracy")
class CategoricalAccuracy(MeanMetricWrapper):
    """How often the predicted class (arg-max) matches a one-hot label's class.

    Args:
        name: the metric's name.
        dtype: the dtype of the result.

    Example:
        >>> metric = tf.keras.metrics.CategoricalAccuracy()
        >>> metric.update_state([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
        >>> float(metric.result())
        0.5
    """

    _direction = "up"

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(fn=categorical_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras_serializable("metrics", "sparse_categorical_accuracy")
class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the predicted class (arg-max) matches an integer label.

    Args:
        name: the metric's name.
        dtype: the dtype of the result.

    Example:
        >>> metric = tf.keras.metrics.SparseCategoricalAccuracy()
        >>> metric.update_state([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]])
        >>> float(metric.result())
        0.5
    """

    _direction = "up"

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(fn=sparse_categorical_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras_serializable("metrics", "top_k_categorical_accuracy")
class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often a one-hot label's class is among the ``k`` highest predictions.

    Args:
        k: how many of the highest predictions count.
        name: the metric's name.
        dtype: the dtype of the result.

    Example:
        >>> metric = tf.keras.metrics.TopKCategoricalAccuracy(k=1)
        >>> metric.update_state([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
        >>> float(metric.result())
        0.5
    """

    _direction = "up"

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(fn=top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "k": self.k}


@keras_serializable("metrics", "sparse_top_k_categorical_accuracy")
class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often an integer label is among the ``k`` highest predictions.

    Args:
        k: how many of the highest predictions count.
        name: the metric's name.
        dtype: the dtype of the result.
        from_sorted_ids: not supported by emberflow (must stay False).

    Example:
        >>> metric = tf.keras.metrics.SparseTopKCategoricalAccuracy(k=1)
        >>> metric.update_state([2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
        >>> float(metric.result())
        0.5
    """

    _direction = "up"

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None, from_sorted_ids=False):
        if from_sorted_ids:
            raise NotImplementedError(
                "SparseTopKCategoricalAccuracy(from_sorted_ids=True) is not supported by emberflow"
            )
        super().__init__(fn=sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k
        self.from_sorted_ids = from_sorted_ids

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "k": self.k, "from_sorted_ids": self.from_sorted_ids}
