"""``tf.keras.models``: Model, Sequential, and (with the saving issue) load_model."""

from trainer.keras.models.functional_model import Functional  # noqa: F401
from trainer.keras.models.model import Model  # noqa: F401
from trainer.keras.models.sequential import Sequential  # noqa: F401
from trainer.keras.models.training import NonFiniteLossError  # noqa: F401
