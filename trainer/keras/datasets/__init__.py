"""``tf.keras.datasets``: small standard datasets as NumPy arrays (``mnist.load_data()``)."""

from trainer.keras.datasets import mnist
from trainer.keras.datasets.mnist import DatasetError

__all__ = ["DatasetError", "mnist"]
