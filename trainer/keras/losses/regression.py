"""Regression losses: mean squared error, mean absolute error and Huber, as functions and classes."""

from __future__ import annotations

from trainer.keras.saving.registration import keras_serializable
from trainer.ops import array_ops, math_ops
from trainer.ops.registry import OpError, broadcast_shapes

from .crossentropy import format_shape, labels, predictions
from .loss import Loss, LossFunctionWrapper, LossInputError, squeeze_or_expand_to_same_rank


def _regression_inputs(y_true, y_pred, name):
    """Predictions, and labels in their dtype, brought to the same rank as Keras does; the shapes must
    then broadcast (Keras broadcasts, so ``(N,)`` against ``(N, 1)`` works)."""
    y_pred = predictions(y_pred, name)
    y_true = labels(y_true, name, y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    try:
        broadcast_shapes(y_true.shape.as_tuple(), y_pred.shape.as_tuple())
    except OpError:
        raise LossInputError(
            name,
            f"labels of shape {format_shape(y_true.shape.as_tuple())} do not match predictions of shape "
            f"{format_shape(y_pred.shape.as_tuple())}",
        ) from None
    return y_true, y_pred


@keras_serializable("losses", "mse", "MSE")
def mean_squared_error(y_true, y_pred):
    """``mean(square(y_true - y_pred), axis=-1)``.

    Example:
        >>> tf.keras.losses.mean_squared_error([[0.0, 1.0]], [[1.0, 1.0]])
    """
    y_true, y_pred = _regression_inputs(y_true, y_pred, "mean_squared_error")
    return math_ops.reduce_mean(math_ops.square(math_ops.subtract(y_true, y_pred)), -1)


@keras_serializable("losses", "mae", "MAE")
def mean_absolute_error(y_true, y_pred):
    """``mean(abs(y_true - y_pred), axis=-1)``.

    Example:
        >>> tf.keras.losses.mean_absolute_error([[0.0, 1.0]], [[1.0, 1.0]])
    """
    y_true, y_pred = _regression_inputs(y_true, y_pred, "mean_absolute_error")
    return math_ops.reduce_mean(math_ops.abs(math_ops.subtract(y_true, y_pred)), -1)


@keras_serializable("losses")
def huber(y_true, y_pred, delta=1.0):
    """Quadratic for small errors, linear for large ones: ``0.5 e^2`` where ``|e| <= delta``, else
    ``delta |e| - 0.5 delta^2``; averaged over the last axis.

    Example:
        >>> tf.keras.losses.huber([[0.0, 1.0]], [[3.0, 1.2]], delta=1.0)
    """
    y_true, y_pred = _regression_inputs(y_true, y_pred, "huber")
    delta = float(delta)
    error = math_ops.subtract(y_pred, y_true)
    absolute = math_ops.abs(error)
    quadratic = math_ops.multiply(0.5, math_ops.square(error))
    linear = math_ops.subtract(math_ops.multiply(delta, absolute), 0.5 * delta * delta)
    return math_ops.reduce_mean(array_ops.where(math_ops.less_equal(absolute, delta), quadratic, linear), -1)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


@keras_serializable("losses")
class MeanSquaredError(LossFunctionWrapper):
    """The mean of squared differences between labels and predictions.

    Args:
        reduction: as ``Loss``; defaults to "sum_over_batch_size".
        name: the loss's name.
        dtype: the dtype labels and predictions are cast to.

    Example:
        >>> tf.keras.losses.MeanSquaredError()([[0.0, 1.0]], [[1.0, 1.0]])
    """

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


@keras_serializable("losses")
class MeanAbsoluteError(LossFunctionWrapper):
    """The mean of absolute differences between labels and predictions.

    Args:
        reduction: as ``Loss``; defaults to "sum_over_batch_size".
        name: the loss's name.
        dtype: the dtype labels and predictions are cast to.

    Example:
        >>> tf.keras.losses.MeanAbsoluteError()([[0.0, 1.0]], [[1.0, 1.0]])
    """

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


@keras_serializable("losses")
class Huber(LossFunctionWrapper):
    """The Huber loss: squared error for errors up to ``delta``, absolute error beyond.

    Args:
        delta: where the loss turns from quadratic to linear.
        reduction: as ``Loss``; defaults to "sum_over_batch_size".
        name: the loss's name.
        dtype: the dtype labels and predictions are cast to.

    Example:
        >>> tf.keras.losses.Huber(delta=0.5)([[0.0, 1.0]], [[3.0, 1.2]])
    """

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        super().__init__(huber, name=name, reduction=reduction, dtype=dtype, delta=delta)
        self.delta = delta

    def get_config(self):
        config = Loss.get_config(self)
        config["delta"] = self.delta
        return config
