"""The callback protocol and the callbacks ``fit`` always uses: Callback, CallbackList, History, ProgbarLogger, LambdaCallback."""

from __future__ import annotations

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
    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)  # Keras 2 callbacks override on_batch_begin: they still run

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...

    # Keras 2 names of the train-batch hooks, kept (as Keras 3 keeps them) so that older callbacks work unchanged.
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...


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
        # TerminateOnNaN says so: fit then lets it stop training instead of raising NonFiniteLossError.
        self.handles_non_finite_loss = any(getattr(c, "handles_non_finite_loss", False) for c in self.callbacks)
        for callback in self.callbacks:
            if model is not None:
                callback.set_model(model)
            callback.set_params(self.params)
        for hook in _HOOKS:
            active = [getattr(c, hook) for c in self.callbacks if _overrides(c, hook)]
            setattr(self, hook, _fan_out(active, indexed=hook.startswith("on_epoch") or "batch" in hook))

    def __iter__(self):
        return iter(self.callbacks)


_LEGACY = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}


def _overrides(callback, hook) -> bool:
    """Whether ``callback`` does anything in ``hook``: its class overrides it, it is set on the instance (as
    LambdaCallback does), or (train-batch hooks) it overrides the Keras 2 name the base hook calls."""
    names = (hook, _LEGACY[hook]) if hook in _LEGACY else (hook,)
    return any(name in vars(callback) or getattr(type(callback), name) is not getattr(Callback, name) for name in names)


def _fan_out(methods, indexed: bool):
    """One hook of every callback as one call; ``logs`` is always passed (None when there are none), as Keras does."""
    if not methods:
        return lambda *args, **kwargs: None
    if indexed:

        def call_indexed(index, logs=None):
            for method in methods:
                method(index, logs)

        return call_indexed

    def call(logs=None):
        for method in methods:
            method(logs)

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


@keras_serializable("callbacks")
class LambdaCallback(Callback):
    """Callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, **hooks):
        super().__init__()
        for name, function in hooks.items():
            if name not in _HOOKS and name not in ("on_batch_begin", "on_batch_end"):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}")
            setattr(self, name, function)

