"""``tf.keras.metrics``: running measurements of a model's predictions, and ``get``.

``get`` is what ``compile(metrics=[...])`` uses and always returns a ``Metric``: class names and
their snake_case forms ("Precision", "sparse_categorical_accuracy"), the function aliases "mse" and
"mae" (wrapped in ``MeanMetricWrapper`` under the name given), config dicts, ``Metric`` classes and
instances, and plain functions ``fn(y_true, y_pred)``.

Plain "accuracy" is special in Keras's ``compile``: it means binary, sparse-categorical or
categorical accuracy depending on the shapes of the labels and predictions, which are known only at
the first batch. ``get("accuracy")`` returns the exact-match ``Accuracy`` metric, as Keras's ``get``
does; the model resolves "accuracy"/"acc" itself with ``resolve_accuracy`` (or ``resolve``, which
handles every identifier) once it has the shapes.
"""

from __future__ import annotations

import inspect

from trainer.keras.losses.regression import mean_absolute_error, mean_squared_error
from trainer.keras.saving.registration import UnknownObjectError, lookup
from trainer.keras.saving.registration import deserialize as _deserialize
from trainer.keras.saving.registration import serialize as _serialize
from trainer.shapes import TensorShape

from .accuracy import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    in_top_k,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from .confusion import Precision, Recall
from .metric import Mean, MeanMetricWrapper, Metric, Sum, reduce_to_samplewise_values
from .regression import MeanAbsoluteError, MeanSquaredError

mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error

# Metric functions by name: what MeanMetricWrapper configs and string identifiers resolve to. (The
# registry's "metrics" category holds the classes, under their names and snake_case forms.)
FUNCTIONS = {
    function.__name__: function
    for function in (
        accuracy,
        binary_accuracy,
        categorical_accuracy,
        sparse_categorical_accuracy,
        top_k_categorical_accuracy,
        sparse_top_k_categorical_accuracy,
        mean_squared_error,
        mean_absolute_error,
    )
}
FUNCTIONS.update(
    {"mse": mean_squared_error, "MSE": mean_squared_error, "mae": mean_absolute_error, "MAE": mean_absolute_error}
)

__all__ = [
    "MAE",
    "MSE",
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "Mean",
    "MeanAbsoluteError",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "Metric",
    "Precision",
    "Recall",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "Sum",
    "TopKCategoricalAccuracy",
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "deserialize",
    "get",
    "in_top_k",
    "mae",
    "mean_absolute_error",
    "mean_squared_error",
    "mse",
    "reduce_to_samplewise_values",
    "resolve",
    "resolve_accuracy",
    "serialize",
    "sparse_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "top_k_categorical_accuracy",
]


def serialize(metric) -> dict:
    """``{"class_name": ..., "config": ...}`` for a metric."""
    return _serialize(metric)


def deserialize(config, custom_objects=None) -> Metric:
    """Rebuilds a metric from ``serialize``'s output."""
    return _deserialize("metrics", config, custom_objects)


def get(identifier) -> Metric | None:
    """A ``Metric`` from a name, a config dict, a ``Metric`` class or instance, or a function."""
    if identifier is None or isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        try:
            found = lookup("metrics", identifier)
        except UnknownObjectError as error:
            if identifier in FUNCTIONS:
                return MeanMetricWrapper(FUNCTIONS[identifier], name=identifier)
            raise ValueError(
                f"Could not interpret metric identifier: {identifier!r}. {error}; or one of {sorted(FUNCTIONS)}"
            ) from None
    else:
        found = identifier
    if inspect.isclass(found) and issubclass(found, Metric):
        return found()
    if callable(found):
        return MeanMetricWrapper(found, name=getattr(found, "__name__", None))
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")


def _shape(value) -> tuple:
    if hasattr(value, "shape") and not isinstance(value, (tuple, list, TensorShape)):
        value = value.shape
    return tuple(TensorShape(value).as_list())


def resolve_accuracy(y_true_shape, y_pred_shape, loss=None, name="accuracy") -> Metric:
    """What plain "accuracy" in ``compile`` means for labels and predictions of these shapes.

    Keras 3's rule (``compile_utils.get_metric``): binary accuracy when the predictions' last
    dimension is 1; sparse categorical accuracy when the labels have lower rank than the predictions,
    or end in 1 while the predictions do not; categorical accuracy otherwise. ``loss`` is accepted
    so callers can pass the compiled loss, but Keras 3 decides from the shapes alone and so does this.
    Shapes may be tuples, ``TensorShape``s, or tensors/arrays (their shapes are used).

    Example:
        >>> tf.keras.metrics.resolve_accuracy((32,), (32, 10))  # a SparseCategoricalAccuracy
    """
    del loss
    true_shape, pred_shape = _shape(y_true_shape), _shape(y_pred_shape)
    true_last = true_shape[-1] if true_shape else None
    pred_last = pred_shape[-1] if pred_shape else None
    if pred_last == 1:
        return BinaryAccuracy(name=name)
    if len(true_shape) < len(pred_shape) or (true_last == 1 and pred_last is not None and pred_last > 1):
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)


def resolve(identifier, y_true_shape, y_pred_shape, loss=None) -> Metric | None:
    """``compile``'s reading of one metric identifier once the shapes are known: "accuracy"/"acc" (any
    case) through ``resolve_accuracy`` under the name given, anything else through ``get``; a string
    identifier also names the metric (``metrics=["mse"]`` logs "mse")."""
    if identifier is None:
        return None
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        return resolve_accuracy(y_true_shape, y_pred_shape, loss, name=identifier)
    metric = get(identifier)
    if isinstance(identifier, str):
        metric.name = identifier
    return metric
