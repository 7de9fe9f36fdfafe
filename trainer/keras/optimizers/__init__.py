"""``tf.keras.optimizers``: SGD, Adam, AdamW, RMSprop, Adagrad, Ftrl, learning-rate schedules, and ``get``.

``get("adam")`` (any case), a config dict, or an instance gives an ``Optimizer``; ``serialize`` and
``deserialize`` convert to and from ``{"class_name": ..., "config": ...}``.
"""

from __future__ import annotations

from trainer.keras.saving.registration import UnknownObjectError, lookup
from trainer.keras.saving.registration import serialize as _serialize

from . import schedules
from .adagrad import Adagrad
from .adam import Adam
from .adamw import AdamW
from .base import Optimizer
from .ftrl import Ftrl
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Ftrl", "Optimizer", "RMSprop", "deserialize", "get", "schedules", "serialize"]

_NAMES = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Ftrl")


def serialize(optimizer) -> dict:
    """``{"class_name": ..., "config": ...}`` for an optimizer."""
    return _serialize(optimizer)


def deserialize(config, custom_objects=None) -> Optimizer:
    """Builds an optimizer from ``serialize``'s output; built-in class names match in any case."""
    if isinstance(config, str):
        config = {"class_name": config, "config": {}}
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret optimizer config: {config!r}")
    class_name = config["class_name"]
    try:
        cls = lookup("optimizers", class_name, custom_objects)
    except UnknownObjectError:
        try:
            cls = lookup("optimizers", class_name.lower(), custom_objects)
        except UnknownObjectError:
            raise UnknownObjectError(
                f"Could not interpret optimizer identifier: {class_name!r}; built-in optimizers are "
                f"{', '.join(_NAMES)} (any case)"
            ) from None
    return cls.from_config(dict(config.get("config", {})), custom_objects=custom_objects)


def get(identifier) -> Optimizer | None:
    """An ``Optimizer`` from a name ("adam", "SGD", ...), a config dict, or an instance (returned as is)."""
    if identifier is None:
        return None
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")
