"""The ``Loss`` base class, ``LossFunctionWrapper``, and Keras 3's weighting and reduction rules."""

from __future__ import annotations

from trainer import dtypes
from trainer.keras.layers.base import snake_case, unique_name
from trainer.keras.saving.registration import keras_serializable, lookup
from trainer.keras.saving.registration import serialize as _serialize
from trainer.ops import array_ops, math_ops
from trainer.ops.registry import OpError, broadcast_shapes
from trainer.tensor import convert_to_tensor

EPSILON = 1e-7  # Keras's backend.epsilon(): the clipping margin for probabilities
REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")


class LossInputError(ValueError):
    """Labels or predictions a loss cannot take; the message names the loss and both shapes."""

    def __init__(self, loss_name: str, detail: str):
        super().__init__(f"{loss_name}: {detail}")
        self.detail = detail


def standardize_reduction(reduction):
    """Checks ``reduction`` against the values Keras 3 accepts and returns it."""
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"Invalid value for argument `reduction`. Expected one of {set(REDUCTIONS)}. "
            f"Received: reduction={reduction}"
        )
    return reduction


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Keras's rule for ranks that differ by one where the longer tensor ends in 1: squeeze that axis,
    or, when the shorter tensor has rank 1 and ``expand_rank_1``, expand the shorter one instead."""
    rank_1, rank_2 = x1.ndim, x2.ndim
    if rank_1 == rank_2 + 1 and x1.shape.as_tuple()[-1] == 1:
        if rank_2 == 1 and expand_rank_1:
            x2 = array_ops.expand_dims(x2, -1)
        else:
            x1 = array_ops.squeeze(x1, -1)
    elif rank_2 == rank_1 + 1 and x2.shape.as_tuple()[-1] == 1:
        if rank_1 == 1 and expand_rank_1:
            x1 = array_ops.expand_dims(x1, -1)
        else:
            x2 = array_ops.squeeze(x2, -1)
    return x1, x2


def divide_no_nan(x, y):
    """``x / y`` where ``y`` is not 0, else 0."""
    zero = math_ops.equal(y, 0.0)
    safe = array_ops.where(zero, array_ops.ones_like(y), y)
    return array_ops.where(zero, array_ops.zeros_like(x), math_ops.divide(x, safe))


def _num_elements(x):
    """The element count: a Python int when the shape is known (eager), else a tensor of ``x``'s dtype."""
    dims = x.shape.as_tuple()
    if None not in dims:
        count = 1
        for dim in dims:
            count *= dim
        return count
    return math_ops.cast(array_ops.size(x), x.dtype)


def reduce_values(values, sample_weight=None, reduction="sum_over_batch_size"):
    """Sums ``values``, then divides by their count ("sum_over_batch_size"/"mean") or by the sum of
    the weights ("mean_with_sample_weight"); "none"/None (and scalars) return ``values`` as they are."""
    if reduction in (None, "none") or values.shape.as_tuple() in ((), (0,)):
        return values
    loss = math_ops.reduce_sum(values)
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        return divide_no_nan(loss, math_ops.reduce_sum(sample_weight))
    if reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
        count = _num_elements(values)
        if isinstance(count, int):
            return math_ops.divide(loss, float(count)) if count > 0 else loss
        return divide_no_nan(loss, count)
    return loss


def reduce_weighted_values(values, sample_weight=None, mask=None, reduction="sum_over_batch_size", dtype=None):
    """Multiplies ``values`` by ``sample_weight`` and a validity ``mask``, then reduces them.

    With a mask and a mean reduction the mean is over the valid elements only, as in Keras.
    """
    reduction = standardize_reduction(reduction)
    dtype = values.dtype if dtype is None else dtypes.as_dtype(dtype)
    values = math_ops.cast(values, dtype)
    if sample_weight is not None:
        sample_weight = math_ops.cast(convert_to_tensor(sample_weight, dtype_hint=dtype), dtype)
    if mask is not None:
        mask = math_ops.cast(mask, dtype)
        if reduction in ("mean", "sum_over_batch_size"):
            total = _num_elements(mask)
            total = convert_to_tensor(float(total), dtype=dtype) if isinstance(total, int) else total
            mask = math_ops.multiply(mask, divide_no_nan(total, math_ops.reduce_sum(mask)))
        if sample_weight is not None:
            mask, sample_weight = squeeze_or_expand_to_same_rank(mask, sample_weight)
            sample_weight = math_ops.multiply(sample_weight, mask)
        else:
            sample_weight = mask
    if sample_weight is not None:
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        # Per-sample weights of lower rank apply along the leading axes (tf.keras broadcast them so).
        while 0 < sample_weight.ndim < values.ndim:
            sample_weight = array_ops.expand_dims(sample_weight, -1)
        try:
            broadcast_shapes(values.shape.as_tuple(), sample_weight.shape.as_tuple())
        except OpError:
            raise ValueError(
                f"sample_weight of shape {sample_weight.shape} does not broadcast to the losses of shape {values.shape}"
            ) from None
        values = math_ops.multiply(values, sample_weight)
    return reduce_values(values, sample_weight, reduction)


class Loss:
    """Base class of losses: ``loss(y_true, y_pred, sample_weight=None)`` returns the reduced loss.

    Subclasses implement ``call(y_true, y_pred)`` returning one loss per sample (or per element);
    ``__call__`` converts the inputs to the loss's dtype, applies ``sample_weight`` and reduces.

    Args:
        name: the loss's name.
        reduction: "sum_over_batch_size" (the mean over all elements), "sum", "mean" (the same as
            "sum_over_batch_size"), "mean_with_sample_weight" (divides by the sum of the weights), or
            "none"/None (no reduction).
        dtype: the dtype the inputs are cast to and the loss is computed in (float32 by default).

    Example:
        >>> class MeanFourthPower(tf.keras.losses.Loss):
        ...     def call(self, y_true, y_pred):
        ...         return tf.reduce_mean(tf.square(tf.square(y_pred - y_true)), axis=-1)
        >>> MeanFourthPower()([[0.0, 1.0]], [[1.0, 1.0]])
    """

    _cast_labels = True  # sparse losses keep integer labels instead of casting them to floats

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name if name is not None else unique_name(snake_case(type(self).__name__))
        self.reduction = standardize_reduction(reduction)
        self._dtype = dtypes.as_dtype(dtype if dtype is not None else dtypes.float32)

    @property
    def dtype(self) -> str:
        return self._dtype.name

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = self._convert(y_pred, "predictions", cast=True)
        y_true = self._convert(y_true, "labels", cast=self._cast_labels)
        losses, mask = self._call_with_mask(y_true, y_pred)
        return reduce_weighted_values(
            losses, sample_weight=sample_weight, mask=mask, reduction=self.reduction, dtype=self._dtype
        )

    def _convert(self, value, what, cast):
        try:
            tensor = convert_to_tensor(value)
        except TypeError as error:
            raise TypeError(f"{type(self).__name__}: {what}: {error}") from None
        return math_ops.cast(tensor, self._dtype) if cast else tensor

    def _call_with_mask(self, y_true, y_pred):
        """``call``'s losses and a validity mask for the reduction (``None``: every element counts)."""
        return self.call(y_true, y_pred), None

    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} reduction={self.reduction!r}>"


@keras_serializable("losses")
class LossFunctionWrapper(Loss):
    """A ``Loss`` around a function ``fn(y_true, y_pred, **kwargs)`` that returns per-sample losses.

    Args:
        fn: the loss function.
        reduction: as ``Loss``.
        name: the loss's name.
        dtype: as ``Loss``.
        **kwargs: keyword arguments passed to ``fn`` on every call.

    Example:
        >>> loss = tf.keras.losses.LossFunctionWrapper(tf.keras.losses.huber, delta=0.5)
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        try:
            return self.fn(y_true, y_pred, **self._fn_kwargs)
        except LossInputError as error:  # name the class the user created, not the inner function
            raise LossInputError(type(self).__name__, error.detail) from None

    def get_config(self) -> dict:
        config = super().get_config()
        config["fn"] = _serialize(self.fn)
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("fn"), str):
            config["fn"] = lookup("losses", config["fn"])
        return cls(**config)
