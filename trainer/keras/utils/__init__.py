"""``tf.keras.utils``: seeding, progress bars, serialization registration, label helpers, training curves."""

from __future__ import annotations

import numpy as np

from trainer.keras.saving.registration import register_keras_serializable  # noqa: F401
from trainer.keras.utils.plotting import plot_history  # noqa: F401
from trainer.keras.utils.progbar import Progbar  # noqa: F401


def set_random_seed(seed: int) -> None:
    """Seeds Python's ``random``, NumPy's global state and emberflow's generator in one call."""
    import random  # noqa: PLC0415

    from trainer.ops.random_ops import set_seed  # noqa: PLC0415

    random.seed(seed)
    np.random.seed(seed)
    set_seed(seed)


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encodes integer class labels: shape (N,) becomes (N, num_classes)."""
    labels = np.asarray(y, dtype=np.int64)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    return np.eye(num_classes, dtype=dtype)[labels]
