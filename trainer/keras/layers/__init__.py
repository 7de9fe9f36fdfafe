"""``tf.keras.layers``: every public layer class, exported from one place."""

from trainer.keras.layers.base import InputSpec, Layer  # noqa: F401
from trainer.keras.layers.core import Activation, Dense, Dropout, Flatten, Identity, Lambda  # noqa: F401
from trainer.keras.layers.input_layer import Input, InputLayer  # noqa: F401
