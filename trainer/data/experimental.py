"""``tf.data.experimental``: the older home of ``AUTOTUNE`` and the cardinality helpers, kept for old code."""

from trainer.data.dataset import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset

__all__ = ["AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY", "cardinality"]


def cardinality(dataset: Dataset) -> int:
    """``dataset.cardinality()``, as ``tf.data.experimental.cardinality(dataset)`` spells it."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"cardinality() takes a tf.data.Dataset, got {type(dataset).__name__}")
    return dataset.cardinality()
