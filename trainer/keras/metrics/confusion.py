"""Confusion-matrix metrics: ``Precision`` and ``Recall`` at one or more thresholds."""

from __future__ import annotations

import numpy as np

from trainer import dtypes
from trainer.keras.losses.loss import divide_no_nan, squeeze_or_expand_to_same_rank
from trainer.keras.saving.registration import keras_serializable
from trainer.ops import array_ops, math_ops
from trainer.ops.math_ops import broadcast_like_op
from trainer.ops.registry import execute
from trainer.tensor import convert_to_tensor

from .metric import Metric

NEG_INF = -1e10  # what Keras writes into predictions outside the top k


def parse_thresholds(thresholds, default) -> list:
    """``thresholds`` as a list of floats in [0, 1], or ``[default]`` when ``None``."""
    if thresholds is None:
        return [default]
    values = [float(t) for t in (thresholds if isinstance(thresholds, (list, tuple)) else [thresholds])]
    if any(not 0 <= t <= 1 for t in values):
        raise ValueError(f"Threshold values must be in [0, 1]. Received: {thresholds}")
    return values


def top_k_mask(x, k):
    """True at the ``k`` largest entries of each row of ``x``; among equal values the lower index wins,
    as ``top_k`` orders them. Costs a (classes x classes) comparison per row."""
    classes = x.shape.as_tuple()[-1]
    mine = array_ops.expand_dims(x, -1)  # [..., i, 1]
    theirs = array_ops.expand_dims(x, -2)  # [..., 1, j]
    earlier = convert_to_tensor(np.tri(classes, classes, -1, dtype=bool))  # [i, j]: j < i
    ahead = math_ops.logical_or(
        math_ops.greater(theirs, mine), math_ops.logical_and(math_ops.equal(theirs, mine), earlier)
    )
    rank = math_ops.reduce_sum(math_ops.cast(ahead, dtypes.int32), -1)
    return math_ops.less(rank, int(k))


def confusion_counts(y_true, y_pred, thresholds, top_k=None, class_id=None, sample_weight=None):
    """Weighted true positives, false positives and false negatives, one per threshold.

    A prediction is positive where it is above the threshold; a label is positive where it is not 0.
    ``top_k`` keeps only each row's ``k`` largest predictions; ``class_id`` looks at one class only.
    """
    y_true = math_ops.cast(convert_to_tensor(y_true), dtypes.float32)
    y_pred = math_ops.cast(convert_to_tensor(y_pred), dtypes.float32)
    y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
    if sample_weight is not None:
        sample_weight = array_ops.expand_dims(
            math_ops.cast(convert_to_tensor(sample_weight, dtype_hint=dtypes.float32), dtypes.float32), -1
        )
        _, sample_weight = squeeze_or_expand_to_same_rank(y_true, sample_weight, expand_rank_1=False)
    if top_k is not None:
        y_pred = array_ops.where(top_k_mask(y_pred, top_k), y_pred, array_ops.ones_like(y_pred) * NEG_INF)
    if class_id is not None:
        if y_pred.ndim == 1:
            raise ValueError(
                "When class_id is provided, y_pred must be a 2D array with shape (num_samples, num_classes), "
                f"found shape: {y_pred.shape}"
            )
        y_true = y_true[..., class_id : class_id + 1]
        y_pred = y_pred[..., class_id : class_id + 1]
    predictions = array_ops.reshape(y_pred, (1, -1))
    positive_labels = array_ops.reshape(math_ops.cast(math_ops.not_equal(y_true, 0.0), dtypes.float32), (-1,))
    negative_labels = math_ops.subtract(1.0, positive_labels)
    if sample_weight is not None:
        weights = array_ops.reshape(execute(broadcast_like_op, (sample_weight, y_pred), {}), (-1,))
        positive_labels = math_ops.multiply(positive_labels, weights)
        negative_labels = math_ops.multiply(negative_labels, weights)
    column = convert_to_tensor(np.asarray(thresholds, dtype=np.float32).reshape(-1, 1))
    predicted_positive = math_ops.cast(math_ops.greater(predictions, column), dtypes.float32)  # [thresholds, elements]
    predicted_negative = math_ops.subtract(1.0, predicted_positive)
    return (
        math_ops.reduce_sum(math_ops.multiply(predicted_positive, positive_labels), 1),
        math_ops.reduce_sum(math_ops.multiply(predicted_positive, negative_labels), 1),
        math_ops.reduce_sum(math_ops.multiply(predicted_negative, positive_labels), 1),
    )


class _ConfusionMetric(Metric):
    """Shared constructor, state and config of ``Precision`` and ``Recall``."""

    _direction = "up"
    _counts = ()  # the state variables' names, in ``confusion_counts`` order (tp, fp, fn)

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        self.thresholds = parse_thresholds(thresholds, 0.5 if top_k is None else NEG_INF)
        for count in self._counts:
            setattr(self, count, self.add_variable(shape=(len(self.thresholds),), initializer="zeros", name=count))

    def update_state(self, y_true, y_pred, sample_weight=None):
        true_positives, false_positives, false_negatives = confusion_counts(
            y_true, y_pred, self.thresholds, self.top_k, self.class_id, sample_weight
        )
        found = {
            "true_positives": true_positives,
            "false_positives": false_positives,
            "false_negatives": false_negatives,
        }
        for count in self._counts:
            getattr(self, count).assign_add(math_ops.cast(found[count], self._variables[0].dtype))

    def _ratio(self, numerator, other):
        result = divide_no_nan(numerator, math_ops.add(numerator, other))
        return result[0] if len(self.thresholds) == 1 else result

    def get_config(self):
        config = super().get_config()
        config.update({"thresholds": self.init_thresholds, "top_k": self.top_k, "class_id": self.class_id})
        return config


@keras_serializable("metrics", "precision")
class Precision(_ConfusionMetric):
    """The fraction of positive predictions that are right: ``TP / (TP + FP)``.

    Args:
        thresholds: a float or list of floats in [0, 1]; a prediction above a threshold is positive.
            Defaults to 0.5 (to "above -1e10" with ``top_k``). A list gives one precision per threshold.
        top_k: only each row's ``k`` highest predictions can be positive.
        class_id: compute the precision of this class only.
        name: the metric's name.
        dtype: the dtype of the result.

    Example:
        >>> metric = tf.keras.metrics.Precision()
        >>> metric.update_state([0, 1, 1, 1], [1, 0, 1, 1])
        >>> float(metric.result())  # 2 of the 3 positive predictions are right
        0.6666667
    """

    _counts = ("true_positives", "false_positives")

    def result(self):
        return self._ratio(self.true_positives, self.false_positives)


@keras_serializable("metrics", "recall")
class Recall(_ConfusionMetric):
    """The fraction of positive labels that are predicted positive: ``TP / (TP + FN)``.

    Args:
        thresholds: a float or list of floats in [0, 1]; a prediction above a threshold is positive.
            Defaults to 0.5 (to "above -1e10" with ``top_k``). A list gives one recall per threshold.
        top_k: only each row's ``k`` highest predictions can be positive.
        class_id: compute the recall of this class only.
        name: the metric's name.
        dtype: the dtype of the result.

    Example:
        >>> metric = tf.keras.metrics.Recall()
        >>> metric.update_state([0, 1, 1, 1], [1, 0, 1, 1])
        >>> float(metric.result())  # 2 of the 3 positive labels are found
        0.6666667
    """

    _counts = ("true_positives", "false_negatives")

    def result(self):
        return self._ratio(self.true_positives, self.false_negatives)
