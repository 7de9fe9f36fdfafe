"""Callbacks that change the optimizer's learning rate: ``LearningRateScheduler`` and ``ReduceLROnPlateau``."""

from __future__ import annotations

import numbers

import numpy as np

from trainer.keras.callbacks.base import Callback
from trainer.keras.callbacks.monitor import MonitorCallback
from trainer.keras.saving.registration import keras_serializable


def get_learning_rate(model) -> float:
    """The optimizer's current learning rate as a Python float (a variable, a schedule or a callable)."""
    value = model.optimizer.learning_rate
    return float(np.asarray(value.numpy() if hasattr(value, "numpy") else value))


def _set_learning_rate(model, value, owner: str) -> None:
    if not isinstance(value, numbers.Real) and not (isinstance(value, np.ndarray) and value.ndim == 0):
        raise ValueError(f"{owner}: the learning rate must be a float, got {value!r} ({type(value).__name__})")
    model.optimizer.learning_rate = float(value)


@keras_serializable("callbacks")
class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of every epoch from ``schedule(epoch, lr)`` (epoch counts from 0).

    Args:
        schedule: ``schedule(epoch, lr) -> new_lr``, or ``schedule(epoch) -> new_lr``.
        verbose: 1 prints the new rate each epoch.

    Example:
        >>> halve = tf.keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
        >>> model.fit(x, y, epochs=5, callbacks=[halve])
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        current = get_learning_rate(self.model)
        try:
            learning_rate = self.schedule(epoch, current)
        except TypeError:  # Keras accepts one-argument schedules too
            learning_rate = self.schedule(epoch)
        if hasattr(learning_rate, "numpy"):
            learning_rate = learning_rate.numpy()
        _set_learning_rate(self.model, learning_rate, "LearningRateScheduler")
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(learning_rate)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(self.model)


@keras_serializable("callbacks")
class ReduceLROnPlateau(MonitorCallback):
    """Multiplies the learning rate by ``factor`` once ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: the metric to watch ("val_loss", "accuracy", ...).
        factor: new_lr = lr * factor, with 0 < factor < 1.
        patience: epochs without improvement before the rate is reduced.
        mode: "min", "max" or "auto" (inferred from the metric's name).
        min_delta: the smallest change that counts as an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the rate never goes below this.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0, got factor={factor}")
        if "epsilon" in kwargs:  # the Keras 2 name of min_delta
            min_delta = kwargs.pop("epsilon")
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau got unexpected arguments {sorted(kwargs)}")
        super().__init__(monitor, mode, min_delta)
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr
        self.wait = self.cooldown_counter = 0

    def _reset(self):
        super()._reset()
        self.wait = self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = get_learning_rate(self.model)
        current = self._current(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
            return
        if self.cooldown_counter > 0:  # read after the countdown above: the last cooldown epoch already counts, as in Keras 3
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        old = get_learning_rate(self.model)
        if old > np.float32(self.min_lr):
            new = max(old * self.factor, self.min_lr)
            _set_learning_rate(self.model, new, "ReduceLROnPlateau")
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
            self.cooldown_counter, self.wait = self.cooldown, 0
