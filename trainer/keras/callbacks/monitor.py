"""Callbacks that watch one metric: the shared ``MonitorCallback`` base and ``EarlyStopping``."""

from __future__ import annotations

import warnings

import numpy as np

from trainer.keras.callbacks.base import Callback
from trainer.keras.saving.registration import keras_serializable


class MonitorCallback(Callback):
    """Shared base of callbacks that watch one metric: resolves ``mode``, compares with ``min_delta``,
    resets its state at train start, and warns (listing the available metrics) when the metric is missing."""

    def __init__(self, monitor="val_loss", mode="auto", min_delta=0.0, baseline=None, initial_best=None):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode {mode!r} is unknown, falling back to 'auto'", stacklevel=2)
            mode = "auto"
        self.monitor, self.baseline = monitor, baseline
        if mode == "auto":
            mode = "max" if ("acc" in monitor or monitor.endswith("auc") or "precision" in monitor or "recall" in monitor) else "min"
        self.mode = mode
        self.min_delta = abs(min_delta) if mode == "max" else -abs(min_delta)
        self.initial_best = initial_best
        self.best = None

    def on_train_begin(self, logs=None):
        self._reset()

    def _reset(self):
        """Forgets what an earlier ``fit`` saw: subclasses extend this with their own counters."""
        if self.initial_best is not None:
            self.best = float(self.initial_best)
        else:
            self.best = -np.inf if self.mode == "max" else np.inf

    def _is_improvement(self, current, reference) -> bool:
        if self.mode == "max":
            return current - self.min_delta > reference
        return current - self.min_delta < reference

    def _current(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"{type(self).__name__} is conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(sorted(logs or {}))}",
                stacklevel=3,
            )
        return value


@keras_serializable("callbacks")
class EarlyStopping(MonitorCallback):
    """Stops training when ``monitor`` has stopped improving for ``patience`` epochs.

    Args:
        monitor: the metric to watch ("val_loss", "accuracy", ...).
        min_delta: the smallest change that counts as an improvement.
        patience: epochs without improvement before training stops.
        verbose: 1 prints when training stops and when the weights are restored.
        mode: "min", "max" or "auto" (inferred from the metric's name).
        baseline: the waiting only restarts once ``monitor`` beats this value as well as the best so far.
        restore_best_weights: at the end of training, go back to the weights of the best epoch.
        start_from_epoch: epochs to train before watching starts (a warm-up).

    Example:
        >>> stop = tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta, baseline)
        self.patience, self.verbose = patience, verbose
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch

    def _reset(self):
        super()._reset()
        self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, 0, None, 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._current(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        # Keras 3 restores the best weights whenever it kept them, whether or not training stopped early.
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)
