"""Regression metrics: running means of the squared and absolute errors."""

from __future__ import annotations

from trainer.keras.losses.regression import mean_absolute_error, mean_squared_error
from trainer.keras.saving.registration import keras_serializable

from .metric import MeanMetricWrapper


@keras_serializable("metrics", "mean_squared_error")
class MeanSquaredError(MeanMetricWrapper):
    """The mean over samples of ``mean(square(y_true - y_pred), axis=-1)``.

    Args:
        name: the metric's name.
        dtype: the dtype of the result.

    Example:
        >>> metric = tf.keras.metrics.MeanSquaredError()
        >>> metric.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
        >>> float(metric.result())
        0.25
    """

    _direction = "down"

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(fn=mean_squared_error, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras_serializable("metrics", "mean_absolute_error")
class MeanAbsoluteError(MeanMetricWrapper):
    """The mean over samples of ``mean(abs(y_true - y_pred), axis=-1)``.

    Args:
        name: the metric's name.
        dtype: the dtype of the result.

    Example:
        >>> metric = tf.keras.metrics.MeanAbsoluteError()
        >>> metric.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
        >>> float(metric.result())
        0.25
    """

    _direction = "down"

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(fn=mean_absolute_error, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
