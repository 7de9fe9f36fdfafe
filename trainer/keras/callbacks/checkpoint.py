"""Callbacks that write the model to disk during ``fit``: ``ModelCheckpoint`` and ``BackupAndRestore``."""

from __future__ import annotations

import io
import json
import os
import shutil
import warnings

import numpy as np

from trainer.files import fsync_directory, write_atomically
from trainer.keras.callbacks.base import Callback
from trainer.keras.callbacks.monitor import MonitorCallback
from trainer.keras.saving.registration import keras_serializable
from trainer.train import random_state

_MODEL_SUFFIX, _WEIGHTS_SUFFIX = ".ember", ".weights.ember"


def _check_save_freq(save_freq, owner: str):
    if save_freq != "epoch" and not (isinstance(save_freq, int) and not isinstance(save_freq, bool) and save_freq > 0):
        raise ValueError(f"{owner}: save_freq must be 'epoch' or a positive number of batches, got {save_freq!r}")
    return save_freq


@keras_serializable("callbacks")
class ModelCheckpoint(MonitorCallback):
    """Saves the model (or its weights) every epoch or every ``save_freq`` batches, optionally only when it improves.

    Args:
        filepath: the file to write; may hold ``str.format`` fields filled with ``epoch`` (counted from 1,
            as Keras names files), ``batch`` (from 1, with an int ``save_freq``) and the logs: ``"ckpt-{epoch:02d}-{val_loss:.2f}.ember"``.
            Ends in ".ember" (``model.save``) or, with ``save_weights_only``, ".weights.ember".
        monitor: the metric that ``save_best_only`` compares.
        save_best_only: write only when ``monitor`` improves on the best value so far.
        save_weights_only: ``model.save_weights`` instead of ``model.save``.
        mode: "min", "max" or "auto" (inferred from the metric's name).
        save_freq: "epoch", or an integer number of batches.
        initial_value_threshold: the best value to beat at the start (``save_best_only`` only).

    Example:
        >>> best = tf.keras.callbacks.ModelCheckpoint("best.ember", monitor="val_accuracy", save_best_only=True)
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_best=initial_value_threshold)
        self.filepath = os.fspath(filepath)
        self.verbose, self.save_best_only, self.save_weights_only = verbose, save_best_only, save_weights_only
        self.save_freq = _check_save_freq(save_freq, "ModelCheckpoint")
        if save_weights_only and not self.filepath.endswith(_WEIGHTS_SUFFIX):
            raise ValueError(f"ModelCheckpoint: with save_weights_only=True the filepath must end in '{_WEIGHTS_SUFFIX}', got {self.filepath!r}")
        if not save_weights_only and (not self.filepath.endswith(_MODEL_SUFFIX) or self.filepath.endswith(_WEIGHTS_SUFFIX)):
            raise ValueError(
                f"ModelCheckpoint: the filepath must end in '{_MODEL_SUFFIX}' (or '{_WEIGHTS_SUFFIX}' with "
                f"save_weights_only=True), got {self.filepath!r}"
            )
        self._batches_seen = 0
        self._current_epoch = 0

    def _reset(self):
        super()._reset()
        self._batches_seen = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_seen += 1
        if self._batches_seen % self.save_freq == 0:
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _save(self, epoch, batch, logs):
        logs = dict(logs or {})
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            current = self._current(logs)
            if current is None:
                return
            if not self._is_improvement(current, self.best):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, saving model to {path}")
            self.best = float(current)
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)

    def _path(self, epoch, batch, logs) -> str:
        fields = {**logs, "epoch": epoch + 1}
        if batch is not None:
            fields["batch"] = batch + 1  # counted from 1 too, as Keras 3 names files
        try:
            return self.filepath.format(**fields)
        except KeyError as error:
            raise KeyError(
                f"ModelCheckpoint: filepath {self.filepath!r} names {{{error.args[0]}}}, which is not in the logs; "
                f"available fields: {', '.join(sorted(fields))}"
            ) from None


@keras_serializable("callbacks")
class BackupAndRestore(Callback):
    """Backs up the model, the optimizer and the epoch, so that a ``fit`` interrupted by a crash resumes.

    Every epoch (or every ``save_freq`` batches) the weights, the optimizer's variables and the position
    (epoch and batch) go into ``backup_dir``. A later ``fit`` with the same callback restores them and
    continues right after the last backed-up batch: with ``save_freq`` an int it skips the batches of that
    epoch already trained (Keras 3 restarts the epoch instead). The random generator's state is backed up
    too, so a shuffled epoch is drawn in the same order and dropout draws the same masks: with array inputs
    (shuffled or not) or a deterministic dataset the resumed run reaches the uninterrupted run's weights
    exactly (``tests/trainer/test_crash_recovery.py`` kills a run to check it); the resumed epoch's logged metrics
    cover only the batches after the backup. A ``fit`` that ends normally deletes the backup (unless
    ``delete_checkpoint=False``).

    Args:
        backup_dir: the folder for the backup (created when needed; use one per training job).
        save_freq: "epoch", an integer number of batches, or False (no backups, only restore).
        double_checkpoint: accepted for Keras 3 compatibility; every backup here is already written
            beside the previous one, synced and swapped in, and the previous one stays (as
            ``checkpoint.old``) until the next backup: a crash mid-backup always leaves a complete one,
            and a backup that cannot be read (a disk that lost writes) falls back to the previous one.
        delete_checkpoint: delete the backup when training finishes.

    Example:
        >>> backup = tf.keras.callbacks.BackupAndRestore("/tmp/backup")
        >>> model.fit(x, y, epochs=10, callbacks=[backup])  # rerun the same line after a crash
    """

    _STATE, _WEIGHTS, _OPTIMIZER = "training_state.json", "model.weights.ember", "optimizer.npz"

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore: backup_dir must be a non-empty folder path")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq if save_freq is False else _check_save_freq(save_freq, "BackupAndRestore")
        self.double_checkpoint, self.delete_checkpoint = double_checkpoint, delete_checkpoint
        self._checkpoint = os.path.join(self.backup_dir, "checkpoint")
        self._current_epoch = self._batches_seen = 0
        self._epoch_rng = self._pending_rng = None  # the random generator's state: see on_train_begin

    def on_train_begin(self, logs=None):
        self._batches_seen = 0
        state = self._restore()
        if state is None:
            return
        # fit reads these after on_train_begin and starts its loops there (Keras 3's protocol, plus the batch).
        self.model._initial_epoch = int(state["epoch"])
        self.model._initial_step = int(state.get("batch", 0))
        if "rng_epoch_start" in state:
            # The resumed epoch draws its shuffle from the generator as the crashed run did; its first trained
            # batch then continues from the generator's state at the backup (dropout masks and the like).
            random_state.set_global_state(state["rng_epoch_start"])
            self._pending_rng = state["rng"] if self.model._initial_step else None

    def _restore(self):
        """Loads the latest readable backup into the model and optimizer; returns its state (None: no backup).

        Like Keras, a backup that cannot be read falls back to the one before it (``checkpoint.old``),
        with a warning; only when none can be read does the first error propagate.
        """
        first_error = None
        for folder in (self._checkpoint, self._checkpoint + ".old"):
            if not os.path.exists(os.path.join(folder, self._STATE)):
                continue
            try:
                return self._load(folder)
            except (OSError, ValueError, KeyError, TypeError) as error:
                warnings.warn(
                    f"BackupAndRestore: the backup in {folder} cannot be read ({error}); trying the previous one",
                    stacklevel=3,
                )
                first_error = first_error or error
        if first_error is not None:
            raise first_error
        return None

    def _load(self, folder: str) -> dict:
        with open(os.path.join(folder, self._STATE), encoding="utf-8") as file:
            state = json.load(file)
        if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
            raise ValueError(f"{self._STATE} holds no epoch: {state!r}")
        self.model.load_weights(os.path.join(folder, self._WEIGHTS))
        optimizer = getattr(self.model, "optimizer", None)
        optimizer_path = os.path.join(folder, self._OPTIMIZER)
        if optimizer is not None and os.path.exists(optimizer_path):
            if not optimizer.built:
                optimizer.build(self.model.trainable_variables)
            with np.load(optimizer_path, allow_pickle=False) as arrays:
                optimizer.load_own_variables({key: arrays[key] for key in arrays.files})
        return state

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        self._epoch_rng = random_state.get_global_state()

    def on_train_batch_begin(self, batch, logs=None):
        if self._pending_rng is not None:
            random_state.set_global_state(self._pending_rng)
            self._pending_rng = None

    def on_train_batch_end(self, batch, logs=None):
        if isinstance(self.save_freq, int) and self.save_freq is not False:
            self._batches_seen += 1
            if self._batches_seen % self.save_freq == 0:
                # A backup after an epoch's last batch resumes with the next epoch; any other, after this batch.
                if self.params.get("steps") is not None and batch + 1 == self.params["steps"]:
                    self._backup(self._current_epoch + 1, 0)
                else:
                    self._backup(self._current_epoch, batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._backup(epoch + 1, 0)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            for name in ("checkpoint", "checkpoint.old", "checkpoint.tmp"):
                shutil.rmtree(os.path.join(self.backup_dir, name), ignore_errors=True)

    def _backup(self, next_epoch: int, next_batch: int) -> None:
        """Writes a complete backup into a fresh folder, then swaps it in, so a crash never leaves half of one.

        Every file is synced as it is written, and so are the folder renames: after a power loss the
        swapped-in folder holds the whole backup, never a file the disk had not written yet.
        """
        if not os.path.isdir(self.backup_dir):
            os.makedirs(self.backup_dir)
            fsync_directory(os.path.dirname(os.path.abspath(self.backup_dir)))
        staging, old = self._checkpoint + ".tmp", self._checkpoint + ".old"
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        self.model.save_weights(os.path.join(staging, self._WEIGHTS))  # written and synced atomically
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            store = {}
            optimizer.save_own_variables(store)
            arrays = io.BytesIO()
            np.savez(arrays, **store)
            write_atomically(os.path.join(staging, self._OPTIMIZER), arrays.getvalue())
        rng = random_state.get_global_state()
        rng_epoch_start = self._epoch_rng if next_batch else rng
        state = {"epoch": next_epoch, "batch": next_batch, "rng": rng, "rng_epoch_start": rng_epoch_start}
        write_atomically(os.path.join(staging, self._STATE), json.dumps(state))
        fsync_directory(self.backup_dir)  # the staging folder's own entry is on disk before the renames
        # The previous backup stays as checkpoint.old until the next backup: _restore falls back to it.
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(self._checkpoint):
            os.replace(self._checkpoint, old)
        os.replace(staging, self._checkpoint)
        fsync_directory(self.backup_dir)
