"""``tf.train.list_variables``, ``load_variable`` and ``load_checkpoint``: reading a checkpoint without its objects."""

from __future__ import annotations

import os

import numpy as np

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


class CheckpointReader:
    """What ``tf.train.load_checkpoint`` returns: ``get_tensor``, ``has_tensor`` and the variable shapes."""

    def __init__(self, save_path: str):
        self._path = save_path
        self._shapes = dict(list_variables(save_path))

    def get_variable_to_shape_map(self) -> dict:
        return dict(self._shapes)

    def has_tensor(self, name: str) -> bool:
        return name in self._shapes

    def get_tensor(self, name: str) -> np.ndarray:
        return load_variable(self._path, name)


def load_checkpoint(ckpt_dir_or_file) -> CheckpointReader:
    """A reader for the checkpoint (or the latest one in a directory)."""
    return CheckpointReader(_resolve(ckpt_dir_or_file))
