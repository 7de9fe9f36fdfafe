"""``tf.keras.losses``: the training objectives, as classes (``Loss``) and as plain functions.

The functions return one loss per sample; a ``Loss`` object also applies ``sample_weight`` and the
reduction ("sum_over_batch_size" by default). Everything is composed from ops, so the tape
differentiates it and ``tf.function`` traces it.

``get`` is what ``compile(loss=...)`` uses and always returns a ``Loss``: a name ("mse",
"sparse_categorical_crossentropy", "Huber"), a config dict, a ``Loss`` class or instance, or a plain
function ``fn(y_true, y_pred)`` (wrapped in ``LossFunctionWrapper``). Keras's own ``get`` returns
plain functions for function names and lets ``compile`` wrap them; here the wrapping happens in
``get`` so that every caller gets an object that takes ``sample_weight`` and reduces.
"""

from __future__ import annotations

import inspect

from trainer.keras.saving.registration import UnknownObjectError, lookup
from trainer.keras.saving.registration import deserialize as _deserialize
from trainer.keras.saving.registration import serialize as _serialize

from .crossentropy import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    binary_crossentropy,
    categorical_crossentropy,
    sparse_categorical_crossentropy,
)
from .loss import (
    EPSILON,
    Loss,
    LossFunctionWrapper,
    LossInputError,
    reduce_weighted_values,
    squeeze_or_expand_to_same_rank,
)
from .regression import (
    MAE,
    MSE,
    Huber,
    MeanAbsoluteError,
    MeanSquaredError,
    huber,
    mae,
    mean_absolute_error,
    mean_squared_error,
    mse,
)

bce = BCE = binary_crossentropy

__all__ = [
    "BCE",
    "EPSILON",
    "MAE",
    "MSE",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Huber",
    "Loss",
    "LossFunctionWrapper",
    "LossInputError",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "bce",
    "binary_crossentropy",
    "categorical_crossentropy",
    "deserialize",
    "get",
    "huber",
    "mae",
    "mean_absolute_error",
    "mean_squared_error",
    "mse",
    "reduce_weighted_values",
    "serialize",
    "sparse_categorical_crossentropy",
    "squeeze_or_expand_to_same_rank",
]


def serialize(loss):
    """``{"class_name": ..., "config": ...}`` for a ``Loss``; the registered name for a function."""
    return _serialize(loss)


def deserialize(config, custom_objects=None):
    """A ``Loss`` (from a config dict) or a loss function (from its name)."""
    return _deserialize("losses", config, custom_objects)


def get(identifier) -> Loss | None:
    """A ``Loss`` object from a name, a config dict, a ``Loss`` class or instance, or a function."""
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        found = deserialize(identifier)
    elif isinstance(identifier, str):
        try:
            found = lookup("losses", identifier)
        except UnknownObjectError as error:
            raise ValueError(f"Could not interpret loss identifier: {identifier!r}. {error}") from None
    else:
        found = identifier
    if inspect.isclass(found) and issubclass(found, Loss):
        return found()
    if isinstance(found, Loss):
        return found
    if callable(found):
        return LossFunctionWrapper(found, name=getattr(found, "__name__", None))
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")
