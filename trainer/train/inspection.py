"""``tf.train.list_variables``, ``load_variable`` and ``load_checkpoint``: reading a checkpoint without its objects."""

from __future__ import annotations

import os

import numpy as np

from trainer import dtypes
from trainer.train import checkpoint_file
from trainer.train.checkpoint_management import latest_checkpoint
from trainer.train.trackable import CheckpointError


def _resolve(ckpt_dir_or_file) -> str:
    path = os.fspath(ckpt_dir_or_file)
    if os.path.isdir(path):
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"{path}: no checkpoint in this directory (no 'checkpoint' file naming an existing one)")
        return latest
    return path


def list_variables(ckpt_dir_or_file) -> list:
    """``(key, shape)`` for every value in the checkpoint (or the latest one in a directory), sorted by key."""
    with checkpoint_file.CheckpointReader(_resolve(ckpt_dir_or_file)) as reader:
        return sorted((key, list(record["shape"])) for key, record in reader.records.items())


def load_variable(ckpt_dir_or_file, name: str) -> np.ndarray:
    """The value stored under ``name`` (a key from ``list_variables``), as a NumPy array."""
    with checkpoint_file.CheckpointReader(_resolve(ckpt_dir_or_file)) as reader:
        return reader.read(name)


class CheckpointTensorReader:
    """What ``tf.train.load_checkpoint`` returns: ``get_tensor``, ``has_tensor`` and the variables' shapes and dtypes.

    It keeps the checkpoint file open (its manifest checked once) until ``close()`` or the end of a
    ``with`` block, so that reading many tensors does not reopen the file for each.
    """

    def __init__(self, save_path: str):
        self._reader = checkpoint_file.CheckpointReader(save_path)

    def get_variable_to_shape_map(self) -> dict:
        return {key: list(record["shape"]) for key, record in self._reader.records.items()}

    def get_variable_to_dtype_map(self) -> dict:
        return {key: dtypes.as_dtype(np.dtype(record["dtype"])) for key, record in self._reader.records.items()}

    def has_tensor(self, name: str) -> bool:
        return name in self._reader.records

    def get_tensor(self, name: str) -> np.ndarray:
        return self._reader.read(name)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def load_checkpoint(ckpt_dir_or_file) -> CheckpointTensorReader:
    """A reader for the checkpoint (or the latest one in a directory)."""
    return CheckpointTensorReader(_resolve(ckpt_dir_or_file))
