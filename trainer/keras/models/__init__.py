"""``tf.keras.models``: Model, Sequential, Functional, and load_model / save_model for ``.ember`` files."""

from trainer.keras.models.functional_model import Functional  # noqa: F401
from trainer.keras.models.model import Model  # noqa: F401
from trainer.keras.models.sequential import Sequential  # noqa: F401
from trainer.keras.models.training import NonFiniteLossError  # noqa: F401
from trainer.keras.saving.saving import load_model, model_from_json, save_model  # noqa: F401
