"""``tf.keras.backend``: session-level helpers."""

from trainer.keras.layers.base import reset_names


def clear_session() -> None:
    """Restarts automatic layer naming (``dense``, ``dense_1``, ...), as Keras does."""
    reset_names()


def floatx() -> str:
    return "float32"


def epsilon() -> float:
    return 1e-7
