"""Crossentropy losses: sparse categorical, categorical and binary, as functions and classes.

Keras 3's formulas: probabilities are clipped to ``[EPSILON, 1 - EPSILON]`` (but the output of a softmax or
sigmoid activation carries its logits, and the losses start from those, as Keras 3 does); categorical
crossentropy on probabilities first renormalizes them to sum to one along the class axis; binary
crossentropy on probabilities is ``-(y log(p + EPSILON) + (1 - y) log(1 - p + EPSILON))`` (the
TensorFlow backend's form); ``from_logits=True`` uses log-softmax and TensorFlow's overflow-free
sigmoid crossentropy.
"""

from __future__ import annotations

import warnings

from trainer import dtypes
from trainer.keras.saving.registration import keras_serializable
from trainer.ops.registry import execute
from trainer.ops import array_ops, math_ops, nn_ops
from trainer.tensor import convert_to_tensor

from .loss import EPSILON, Loss, LossFunctionWrapper, LossInputError, squeeze_or_expand_to_same_rank


def format_shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def compatible(a, b) -> bool:
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def predictions(y_pred, name):
    """``y_pred`` as a floating tensor (integers become float32)."""
    try:
        y_pred = convert_to_tensor(y_pred)
    except TypeError as error:
        raise TypeError(f"{name}: predictions: {error}") from None
    return y_pred if y_pred.dtype.is_floating else math_ops.cast(y_pred, dtypes.float32)


def labels(y_true, name, dtype=None):
    """``y_true`` as a tensor, cast to ``dtype`` when given; strings fail with the loss's name."""
    try:
        y_true = convert_to_tensor(y_true)
    except TypeError as error:
        raise TypeError(f"{name}: labels: {error}") from None
    return y_true if dtype is None else math_ops.cast(y_true, dtype)


def _check_label_range(y_true, depth, ignore_class, name):
    """``y_true`` after a range check; TensorFlow raises for an out-of-range label, which would
    otherwise silently select nothing. Eagerly the check runs now; traced, it becomes an op that runs
    with every step."""
    if depth is None:
        return y_true
    if y_true._value is None:
        context = f"{name}: labels"
        return execute(array_ops.check_index_range_op, (y_true,), {"depth": depth, "ignore": ignore_class, "context": context})
    array = y_true._value
    if ignore_class is not None:
        array = array[array != ignore_class]
    if array.size == 0:
        return y_true
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= depth:
        raise LossInputError(
            name,
            f"label values must lie in [0, {depth}) for predictions with {depth} classes, "
            f"got values from {low} to {high}",
        )
    return y_true


def sparse_crossentropy_with_mask(
    y_true, y_pred, from_logits=False, ignore_class=None, axis=-1, name="sparse_categorical_crossentropy"
):
    """Per-sample sparse crossentropy, and the mask of labels that are not ``ignore_class`` (or None)."""
    y_pred = predictions(y_pred, name)
    y_true = labels(y_true, name)
    pred_shape, true_shape = y_pred.shape.as_tuple(), y_true.shape.as_tuple()
    if not pred_shape:
        raise LossInputError(name, f"predictions must have a class axis, got shape {format_shape(pred_shape)}")
    if axis not in (-1, len(pred_shape) - 1):
        raise NotImplementedError(
            f"{name}: axis={axis} is not supported by emberflow; put the classes on the last axis (axis=-1)"
        )
    if len(true_shape) == len(pred_shape) and true_shape[-1] == 1:
        y_true, true_shape = array_ops.squeeze(y_true, -1), true_shape[:-1]
    if not compatible(true_shape, pred_shape[:-1]):
        hint = " — use CategoricalCrossentropy for one-hot labels" if compatible(true_shape, pred_shape) else ""
        raise LossInputError(
            name,
            f"labels of shape {format_shape(true_shape)} do not match predictions of shape {format_shape(pred_shape)}; "
            f"sparse labels hold one integer class index per sample, shape {format_shape(pred_shape[:-1])} or "
            f"{format_shape(pred_shape[:-1] + (1,))}{hint}",
        )
    if not y_true.dtype.is_integer:
        y_true = math_ops.cast(y_true, dtypes.int32)
    depth = pred_shape[-1]
    y_true = _check_label_range(y_true, depth, ignore_class, name)
    valid = None
    if ignore_class is not None:
        valid = math_ops.not_equal(y_true, int(ignore_class))
        y_true = array_ops.where(valid, y_true, array_ops.zeros_like(y_true))
    # Keras 3 computes from the logits when the predictions are a softmax activation's output (they carry
    # them as ``_keras_logits``): no probability underflows to the clipping floor, and one fused op (and one
    # for its gradient) replaces a dozen.
    logits = y_pred if from_logits else getattr(y_pred, "_keras_logits", None)
    if logits is not None:
        losses = execute(nn_ops.sparse_softmax_cross_entropy_with_logits_op, (logits, y_true), {})
    else:
        # Keras renormalizes, clips and takes the log of every class, then keeps the labelled one;
        # doing that to the labelled class alone gives the same values with ops on N elements, not N*C.
        selector = array_ops.one_hot(y_true, depth, dtype=y_pred.dtype)
        picked = math_ops.reduce_sum(math_ops.multiply(selector, y_pred), -1)
        probability = math_ops.divide(picked, math_ops.reduce_sum(y_pred, -1))
        losses = math_ops.negative(math_ops.log(array_ops.clip_by_value(probability, EPSILON, 1.0 - EPSILON)))
    if valid is not None:
        losses = array_ops.where(valid, losses, array_ops.zeros_like(losses))
    return losses, valid


def _logits_of(y_pred, axis):
    """The logits a softmax activation left on its output over the class axis (see ``activations.softmax``)."""
    logits = getattr(y_pred, "_keras_logits", None)
    rank = len(y_pred.shape.as_tuple())
    return logits if logits is not None and axis in (-1, rank - 1) else None


@keras_serializable("losses")
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Crossentropy between integer class labels and per-class predictions, one value per sample.

    Labels may be int or float, shaped like the predictions without their class axis, or with a
    trailing 1. Labels equal to ``ignore_class`` get loss 0.

    Example:
        >>> tf.keras.losses.sparse_categorical_crossentropy([1, 2], [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])
    """
    return sparse_crossentropy_with_mask(y_true, y_pred, from_logits, ignore_class, axis)[0]


@keras_serializable("losses")
def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Crossentropy between one-hot (or probability) labels and predictions of the same shape.

    Example:
        >>> tf.keras.losses.categorical_crossentropy([[0, 1, 0]], [[0.05, 0.95, 0.0]])
    """
    name = "categorical_crossentropy"
    if isinstance(axis, bool):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis} of type {type(axis)}")
    y_pred = predictions(y_pred, name)
    y_true = labels(y_true, name, y_pred.dtype)
    pred_shape, true_shape = y_pred.shape.as_tuple(), y_true.shape.as_tuple()
    if not compatible(true_shape, pred_shape):
        sparse = len(true_shape) == len(pred_shape) - 1 or (
            len(true_shape) == len(pred_shape) and true_shape[-1:] == (1,)
        )
        hint = " — use SparseCategoricalCrossentropy for integer class labels" if sparse else ""
        raise LossInputError(
            name,
            f"labels of shape {format_shape(true_shape)} do not match predictions of shape {format_shape(pred_shape)}; "
            f"categorical labels are one-hot (or class probabilities) shaped like the predictions{hint}",
        )
    if pred_shape and pred_shape[axis] == 1:
        warnings.warn(
            f"In loss {name}, expected y_pred.shape to be (batch_size, num_classes) with num_classes > 1. Received: "
            f"y_pred.shape={format_shape(pred_shape)}. "
            "Consider using 'binary_crossentropy' if you only have 2 classes.",
            SyntaxWarning,
            stacklevel=2,
        )
    if label_smoothing:
        y_true = math_ops.add(math_ops.multiply(y_true, 1.0 - label_smoothing), label_smoothing / true_shape[-1])
    logits = y_pred if from_logits else _logits_of(y_pred, axis)
    if logits is not None:
        log_probabilities = nn_ops.log_softmax(logits, axis)
    else:
        probabilities = math_ops.divide(y_pred, math_ops.reduce_sum(y_pred, axis, keepdims=True))
        log_probabilities = math_ops.log(array_ops.clip_by_value(probabilities, EPSILON, 1.0 - EPSILON))
    return math_ops.negative(math_ops.reduce_sum(math_ops.multiply(y_true, log_probabilities), axis))


@keras_serializable("losses", "bce", "BCE")
def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Binary crossentropy of each element, averaged over ``axis``.

    Example:
        >>> tf.keras.losses.binary_crossentropy([[0.0, 1.0]], [[0.4, 0.6]])
    """
    name = "binary_crossentropy"
    y_pred = predictions(y_pred, name)
    y_true = labels(y_true, name, y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    if not compatible(y_true.shape.as_tuple(), y_pred.shape.as_tuple()):
        raise LossInputError(
            name,
            f"labels of shape {format_shape(y_true.shape.as_tuple())} do not match predictions of shape "
            f"{format_shape(y_pred.shape.as_tuple())}; binary labels are 0/1 values shaped like the predictions",
        )
    if label_smoothing:
        y_true = math_ops.add(math_ops.multiply(y_true, 1.0 - label_smoothing), 0.5 * label_smoothing)
    logits = y_pred if from_logits else getattr(y_pred, "_keras_logits", None)
    if logits is not None and logits.shape.as_tuple() == y_pred.shape.as_tuple():
        losses = nn_ops.sigmoid_cross_entropy_with_logits(labels=y_true, logits=logits)
    else:
        p = array_ops.clip_by_value(y_pred, EPSILON, 1.0 - EPSILON)
        positive = math_ops.multiply(y_true, math_ops.log(math_ops.add(p, EPSILON)))
        negative = math_ops.multiply(
            math_ops.subtract(1.0, y_true), math_ops.log(math_ops.add(math_ops.subtract(1.0, p), EPSILON))
        )
        losses = math_ops.negative(math_ops.add(positive, negative))
    return math_ops.reduce_mean(losses, axis)


@keras_serializable("losses")
class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Crossentropy for integer class labels (one label per sample) and per-class predictions.

    Args:
        from_logits: whether ``y_pred`` holds logits rather than probabilities.
        ignore_class: a label value whose samples get no loss and do not count in the mean.
        reduction: as ``Loss``; defaults to "sum_over_batch_size".
        axis: the class axis; emberflow supports the last one.
        name: the loss's name.
        dtype: the dtype predictions are cast to.

    Example:
        >>> loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        >>> loss([1, 2], [[0.1, 2.0, -1.0], [0.3, 0.2, 1.5]])
    """

    _cast_labels = False

    def __init__(
        self,
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        axis=-1,
        name="sparse_categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(
            sparse_categorical_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=from_logits,
            ignore_class=ignore_class,
            axis=axis,
        )
        self.from_logits = from_logits
        self.ignore_class = ignore_class
        self.axis = axis

    def _call_with_mask(self, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return sparse_crossentropy_with_mask(
            y_true, y_pred, self.from_logits, self.ignore_class, self.axis, type(self).__name__
        )

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"from_logits": self.from_logits, "ignore_class": self.ignore_class, "axis": self.axis})
        return config


@keras_serializable("losses")
class CategoricalCrossentropy(LossFunctionWrapper):
    """Crossentropy for one-hot (or probability) labels shaped like the predictions.

    Args:
        from_logits: whether ``y_pred`` holds logits rather than probabilities.
        label_smoothing: in [0, 1]; labels become ``y * (1 - label_smoothing) + label_smoothing / classes``.
        axis: the class axis.
        reduction: as ``Loss``; defaults to "sum_over_batch_size".
        name: the loss's name.
        dtype: the dtype labels and predictions are cast to.

    Example:
        >>> loss = tf.keras.losses.CategoricalCrossentropy(label_smoothing=0.1)
        >>> loss([[0, 1, 0]], [[0.05, 0.95, 0.0]])
    """

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(
            categorical_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": self.axis})
        return config


@keras_serializable("losses")
class BinaryCrossentropy(LossFunctionWrapper):
    """Crossentropy for 0/1 labels and one probability (or logit) per label.

    Args:
        from_logits: whether ``y_pred`` holds logits rather than probabilities.
        label_smoothing: in [0, 1]; labels become ``y * (1 - label_smoothing) + 0.5 * label_smoothing``.
        axis: the axis the elementwise losses are averaged over.
        reduction: as ``Loss``; defaults to "sum_over_batch_size".
        name: the loss's name.
        dtype: the dtype labels and predictions are cast to.

    Example:
        >>> loss = tf.keras.losses.BinaryCrossentropy(from_logits=True)
        >>> loss([[0.0], [1.0]], [[-1.2], [2.5]])
    """

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="binary_crossentropy",
        dtype=None,
    ):
        super().__init__(
            binary_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": self.axis})
        return config
