"""``tf.keras``: layers, models, training, optimizers, losses, metrics, callbacks and datasets."""

import importlib

from trainer.keras import activations, backend, callbacks, constraints, initializers, layers, models, regularizers, utils  # noqa: F401
from trainer.keras.layers import Input  # noqa: F401
from trainer.keras.models import Model, Sequential  # noqa: F401

_LAZY = ("losses", "metrics", "optimizers", "datasets", "estimator")


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"trainer.keras.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'trainer.keras' has no attribute '{name}' (not supported by emberflow)")
