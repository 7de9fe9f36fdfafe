"""``tf.keras.callbacks``: hooks into ``fit``/``evaluate``/``predict`` (History, ProgbarLogger, EarlyStopping, ...)."""

from __future__ import annotations

import warnings

import numpy as np

from trainer.keras.saving.registration import keras_serializable
from trainer.keras.utils.progbar import Progbar


class Callback:
    """Base class: override any of the ``on_*`` hooks; ``self.model`` is the model being trained."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...

    # Keras 2 names, kept so that older callbacks work unchanged.
    def on_batch_begin(self, batch, logs=None):
        self.on_train_batch_begin(batch, logs)

    def on_batch_end(self, batch, logs=None):
        self.on_train_batch_end(batch, logs)


_HOOKS = [name for name in vars(Callback) if name.startswith("on_") and name not in ("on_batch_begin", "on_batch_end")]


class CallbackList:
    """Calls every hook on each callback in order; batch-level hooks are skipped when nobody overrides them."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        self.params = params  # one dict shared with every callback, so updates reach all of them
        self.callbacks = list(callbacks or [])
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        if add_history:
            self.history = next((c for c in self.callbacks if isinstance(c, History)), None) or History()
            if self.history not in self.callbacks:
                self.callbacks.append(self.history)
        for callback in self.callbacks:
            if model is not None:
                callback.set_model(model)
            callback.set_params(self.params)
        for hook in _HOOKS:
            active = [getattr(c, hook) for c in self.callbacks if _overrides(c, hook)]
            setattr(self, hook, _fan_out(active))

    def __iter__(self):
        return iter(self.callbacks)


def _overrides(callback, hook) -> bool:
    if hook in vars(callback):  # set on the instance, as LambdaCallback does
        return True
    if getattr(type(callback), hook, None) is not getattr(Callback, hook):
        return True
    # Keras 2 style on_batch_* overrides feed the train-batch hooks.
    legacy = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}.get(hook)
    return legacy is not None and getattr(type(callback), legacy) is not getattr(Callback, legacy)


def _fan_out(methods):
    if not methods:
        return lambda *args, **kwargs: None

    def call(*args, **kwargs):
        for method in methods:
            method(*args, **kwargs)

    return call


@keras_serializable("callbacks")
class History(Callback):
    """Records the logs of every epoch in ``history`` (what ``fit`` returns)."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(value)
        if self.model is not None:
            self.model.history = self


@keras_serializable("callbacks")
class ProgbarLogger(Callback):
    """Prints ``Epoch i/n`` and the progress bar (``verbose`` comes from ``fit``)."""

    def __init__(self, count_mode="steps", stateful_metrics=None):
        super().__init__()
        self.progbar = None
        self._seen = 0

    def _make_bar(self, target):
        self.progbar = Progbar(target, verbose=self.params.get("verbose", 1), stateful_metrics=_AllNames())
        self._seen = 0

    def on_epoch_begin(self, epoch, logs=None):
        if self.params.get("verbose", 1) and self.params.get("epochs", 1) >= 1:
            print(f"Epoch {epoch + 1}/{self.params.get('epochs', 1)}", flush=True)
        self._make_bar(self.params.get("steps"))

    def on_train_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        self.progbar.update(self._seen, list((logs or {}).items()), finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        self.progbar.target = self.progbar.target or self._seen
        self.progbar.update(self._seen, list((logs or {}).items()), finalize=True)

    def on_test_begin(self, logs=None):
        if not self.params.get("_in_fit"):
            self._make_bar(self.params.get("test_steps"))

    def on_test_batch_end(self, batch, logs=None):
        if not self.params.get("_in_fit"):
            self._seen = batch + 1
            self.progbar.update(self._seen, list((logs or {}).items()), finalize=False)

    def on_test_end(self, logs=None):
        if not self.params.get("_in_fit"):
            self.progbar.target = self.progbar.target or self._seen
            self.progbar.update(self._seen, list((logs or {}).items()), finalize=True)

    def on_predict_begin(self, logs=None):
        self._make_bar(self.params.get("predict_steps"))

    def on_predict_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        self.progbar.update(self._seen, finalize=False)

    def on_predict_end(self, logs=None):
        self.progbar.target = self.progbar.target or self._seen
        self.progbar.update(self._seen, finalize=True)


class _AllNames:
    """Every metric is already a running value computed by the model; the bar shows it as is."""

    def __contains__(self, name) -> bool:
        return True


class MonitorCallback(Callback):
    """Shared base of callbacks that watch one metric: resolves ``mode``, compares with ``min_delta``,
    resets its state at train start, and warns (listing the available metrics) when the metric is missing."""

    def __init__(self, monitor="val_loss", mode="auto", min_delta=0.0, baseline=None):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode {mode!r} is unknown, falling back to 'auto'", stacklevel=2)
            mode = "auto"
        self.monitor, self.baseline = monitor, baseline
        if mode == "auto":
            mode = "max" if ("acc" in monitor or monitor.endswith("auc") or "precision" in monitor or "recall" in monitor) else "min"
        self.mode = mode
        self.min_delta = abs(min_delta) if mode == "max" else -abs(min_delta)
        self.best = None

    def _reset(self):
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
    """Stops training when ``monitor`` has stopped improving for ``patience`` epochs."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta, baseline)
        self.patience, self.verbose = patience, verbose
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch

    def on_train_begin(self, logs=None):
        self._reset()
        self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, 0, None, 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._current(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
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
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch > 0:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


@keras_serializable("callbacks")
class LambdaCallback(Callback):
    """Callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, **hooks):
        super().__init__()
        for name, function in hooks.items():
            if name not in _HOOKS and name not in ("on_batch_begin", "on_batch_end"):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}")
            setattr(self, name, function)

