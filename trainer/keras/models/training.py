"""``compile``, ``fit``, ``evaluate`` and ``predict``: the training loop every model inherits."""

from __future__ import annotations

import math

import numpy as np

from trainer import nest
from trainer.context import state
from trainer.keras.callbacks import CallbackList
from trainer.keras.models.compile_utils import CompiledLoss, CompiledMetrics
from trainer.keras.models.data_adapter import DataError, make_adapter, unpack
from trainer.tape import GradientTape
from trainer.tensor import Tensor, convert_to_tensor


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; the message names where the non-finite values began."""


class Trainer:
    """The training half of ``Model``: mixed in before ``Layer``."""

    def __init__(self):
        self.optimizer = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._compiled_loss = None
        self._compiled_metrics = None
        self._loss_tracker = None
        self.run_eagerly = False
        self._train_function = self._test_function = None

    # -- compile -----------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None, run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Sets the optimizer, loss and metrics for ``fit``/``evaluate`` (names or objects)."""
        from trainer.keras import metrics as metrics_module  # noqa: PLC0415
        from trainer.keras import optimizers  # noqa: PLC0415

        if steps_per_execution != 1:
            raise NotImplementedError("compile(steps_per_execution>1) is not supported by emberflow; use 1")
        self.optimizer = optimizers.get(optimizer)
        self.loss = loss
        self._compiled_loss = CompiledLoss(loss, loss_weights)
        self._compiled_metrics = CompiledMetrics(metrics, weighted_metrics)
        self._loss_tracker = metrics_module.Mean(name="loss")
        self.run_eagerly = bool(run_eagerly)
        self.jit_compile = jit_compile
        self._train_function = self._test_function = None  # traced again for the new configuration
        self.compiled = True
        self._compile_config = {"loss": loss, "metrics": metrics, "loss_weights": loss_weights, "weighted_metrics": weighted_metrics}

    def _require_compiled(self, what: str) -> None:
        if not self.compiled:
            raise RuntimeError(f"You must call `compile()` before {what}: model.compile(optimizer=..., loss=...)")

    @property
    def metrics(self) -> list:
        """The loss tracker and the compiled metrics (once the first batch has created them)."""
        if not self.compiled:
            return []
        return [self._loss_tracker] + self._compiled_metrics.metrics

    @property
    def metrics_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def reset_metrics(self) -> None:
        for metric in self.metrics:
            metric.reset_state()

    # -- one step ----------------------------------------------------------------------------------
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss of a batch (with regularization losses); override for custom losses."""
        total, _ = self._compiled_loss(self, y, y_pred, sample_weight)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self._compiled_metrics.update_state(self, y, y_pred, sample_weight, self._compiled_loss)
        return self.get_metrics_result()

    def get_metrics_result(self) -> dict:
        """The current value of every metric, as tensors (``fit`` turns them into the logged floats)."""
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        """One optimization step on a batch ``(x, y, sample_weight)``; returns the running metrics."""
        x, y, sample_weight = unpack(data) if not (isinstance(data, tuple) and len(data) == 3) else data
        trainable = self.trainable_variables
        with GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(trainable)
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        gradients = tape.gradient(loss, trainable)
        self.optimizer.apply_gradients(zip(gradients, trainable))
        self._loss_tracker.update_state(loss, sample_weight=_batch_size(x))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = unpack(data) if not (isinstance(data, tuple) and len(data) == 3) else data
        y_pred = self(x, training=False)
        loss = self.compute_loss(x, y, y_pred, sample_weight, training=False)
        self._loss_tracker.update_state(loss, sample_weight=_batch_size(x))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def predict_step(self, data):
        x, _, _ = unpack(data) if not (isinstance(data, tuple) and len(data) == 3) else data
        return self(x, training=False)

    # -- step functions: traced graphs by default, plain Python with run_eagerly=True ----------------
    def make_train_function(self):
        """The callable ``fit`` runs per batch: ``train_step`` traced once per batch signature."""
        if self.run_eagerly:
            return self.train_step
        if getattr(self, "_train_function", None) is None:
            from trainer.graph.function import Function  # noqa: PLC0415

            builder = getattr(self.optimizer, "build", None)
            if builder is not None:
                builder(self.trainable_variables)  # slots exist before tracing, as Keras builds them
            self._train_function = _BatchFunction(Function(_unpacked(self.train_step), autograph=False, name=f"{self.name}_train_step"))
        return self._train_function

    def make_test_function(self):
        if self.run_eagerly:
            return self.test_step
        if getattr(self, "_test_function", None) is None:
            from trainer.graph.function import Function  # noqa: PLC0415

            self._test_function = _BatchFunction(Function(_unpacked(self.test_step), autograph=False, name=f"{self.name}_test_step"))
        return self._test_function

    # -- loops -------------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Trains for ``epochs`` epochs and returns the ``History`` of the logged metrics."""
        self._require_compiled("training the model")
        adapter = make_adapter(x, y, sample_weight, batch_size, shuffle, steps_per_epoch)
        validation = None
        if validation_data is not None:
            validation = self._validation_adapter(validation_data, validation_batch_size or batch_size, validation_steps)
        elif validation_split:
            if not hasattr(adapter, "split"):
                raise DataError("validation_split is only supported for array inputs; pass validation_data= with a dataset")
            adapter, validation = adapter.split(validation_split)
        verbose = 1 if verbose == "auto" else verbose
        callback_list = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=epochs, steps=adapter.steps)
        self.stop_training = False
        if not self.built:
            # The traced step captures the trainable variables and the optimizer's slots when it is made,
            # so a model built by its first call (deferred Sequential, subclassed) is built before that.
            first = next(iter(adapter))
            self._maybe_build(first[0] if isinstance(first, tuple) and len(first) == 3 else unpack(first)[0])
        train_function = self.make_train_function()
        logs = {}
        # BackupAndRestore sets these in on_train_begin to resume a crashed fit (mid-epoch: batches to skip).
        self._initial_epoch, self._initial_step = None, 0
        callback_list.on_train_begin()
        initial_epoch = self._initial_epoch or initial_epoch
        skip = self._initial_step
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            callback_list.on_epoch_begin(epoch)
            for step, batch in enumerate(adapter):
                if step < skip:
                    continue
                callback_list.on_train_batch_begin(step)
                if class_weight is not None:
                    batch = _apply_class_weight(batch, class_weight)
                logs = _floats(train_function(batch))
                if not math.isfinite(logs["loss"]) and not callback_list.handles_non_finite_loss:
                    self._raise_non_finite(batch, epoch, step, logs["loss"])
                callback_list.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            skip = 0
            epoch_logs = dict(logs)
            if validation is not None and (epoch + 1) % validation_freq == 0:
                validation_logs = self._run_evaluation(validation, callback_list)
                epoch_logs.update({f"val_{name}": value for name, value in validation_logs.items()})
            callback_list.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if self.stop_training:
                break
        callback_list.on_train_end(logs)
        return callback_list.history

    def _validation_adapter(self, validation_data, batch_size, steps):
        if hasattr(validation_data, "element_spec"):
            return make_adapter(validation_data, steps=steps)
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise DataError("validation_data must be (x_val, y_val), (x_val, y_val, sample_weight) or a tf.data.Dataset")
        return make_adapter(*validation_data, batch_size=batch_size or 32)

    def _run_evaluation(self, adapter, callback_list) -> dict:
        test_function = self.make_test_function()
        self.reset_metrics()
        callback_list.params["_in_fit"] = True
        callback_list.on_test_begin()
        logs = {}
        for step, batch in enumerate(adapter):
            callback_list.on_test_batch_begin(step)
            logs = _floats(test_function(batch))
            callback_list.on_test_batch_end(step, logs)
        callback_list.on_test_end(logs)
        callback_list.params["_in_fit"] = False
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None, callbacks=None, return_dict=False):
        """Loss and metrics over the data: a scalar, a list in ``metrics_names`` order, or a dict."""
        self._require_compiled("evaluating the model")
        adapter = make_adapter(x, y, sample_weight, batch_size, False, steps)
        verbose = 1 if verbose == "auto" else verbose
        callback_list = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, test_steps=adapter.steps)
        test_function = self.make_test_function()
        self.reset_metrics()
        callback_list.on_test_begin()
        logs = {}
        for step, batch in enumerate(adapter):
            callback_list.on_test_batch_begin(step)
            logs = _floats(test_function(batch))
            callback_list.on_test_batch_end(step, logs)
        callback_list.on_test_end(logs)
        if return_dict:
            return logs
        values = [logs[name] for name in self.metrics_names if name in logs]
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for every sample of ``x``, as NumPy arrays (a nest for several outputs)."""
        adapter = make_adapter(x, None, None, batch_size, False, steps)
        verbose = 1 if verbose == "auto" else verbose
        callback_list = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, predict_steps=adapter.steps)
        callback_list.on_predict_begin()
        outputs = []
        for step, batch in enumerate(adapter):
            callback_list.on_predict_batch_begin(step)
            result = self.predict_step(batch)
            outputs.append(nest.map_structure(lambda t: t.numpy(), result))
            callback_list.on_predict_batch_end(step, {"outputs": result})
        callback_list.on_predict_end()
        if not outputs:
            raise DataError("predict received no data (0 samples)")
        flat = [nest.flatten(o) for o in outputs]
        joined = [np.concatenate([f[i] for f in flat], axis=0) for i in range(len(flat[0]))]
        return nest.pack_sequence_as(outputs[0], joined)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """Runs ``train_step`` on one batch and returns the metrics (running values, as Keras 3)."""
        self._require_compiled("train_on_batch")
        batch = _to_tensors(x, y, sample_weight)
        if class_weight is not None:
            batch = _apply_class_weight(batch, class_weight)
        logs = _floats(self.make_train_function()(batch))
        return logs if return_dict else _ordered(logs, self.metrics_names)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require_compiled("test_on_batch")
        logs = _floats(self.make_test_function()(_to_tensors(x, y, sample_weight)))
        return logs if return_dict else _ordered(logs, self.metrics_names)

    def predict_on_batch(self, x):
        x, _, _ = _to_tensors(x, None, None)
        return nest.map_structure(lambda t: t.numpy(), self.predict_step((x, None, None)))

    # -- diagnosis ---------------------------------------------------------------------------------
    def _raise_non_finite(self, batch, epoch, step, loss) -> None:
        x = batch[0]
        inputs_bad = any(not np.isfinite(t.numpy()).all() for t in nest.flatten(x) if t.dtype.is_floating)
        culprit = _first_non_finite_layer(self, x)
        where = f"the output of layer '{culprit[0]}' ({culprit[1]}, output shape {culprit[2]})" if culprit else "the loss computation"
        raise NonFiniteLossError(
            f"loss became {loss} at epoch {epoch + 1}, batch {step}. Non-finite values first appear in "
            f"{where}; the input batch {'contains' if inputs_bad else 'does not contain'} NaN/inf. "
            "Check the inputs, lower the learning rate, or clip gradients (optimizer clipnorm=)."
        )


def _first_non_finite_layer(model, x):
    """(name, class, shape) of the first layer whose output has NaN/inf on ``x``, for Sequential models."""
    layers = getattr(model, "layers", [])
    from trainer.keras.models.sequential import Sequential  # noqa: PLC0415

    if not isinstance(model, Sequential):
        return None
    value = x
    for layer in layers:
        value = layer(value, training=True)
        if isinstance(value, Tensor) and value.dtype.is_floating and not np.isfinite(value.numpy()).all():
            return layer.name, type(layer).__name__, tuple(value.shape)
    return None


def _batch_size(x):
    """The number of samples in a batch: a Python int, or a tensor when the batch dim is unknown (traced)."""
    first = nest.flatten(x)[0]
    if first.shape[0] is not None:
        return int(first.shape[0])
    from trainer.ops import array_ops, math_ops  # noqa: PLC0415

    return math_ops.cast(array_ops.shape(first)[0], "float32")


def _floats(logs: dict) -> dict:
    return {name: float(value) for name, value in logs.items()}


def _unpacked(step):
    """Adapts ``step((x, y, sample_weight))`` to a function of three arguments, which tracing keys on."""

    def call(x, y, sample_weight):
        return step((x, y, sample_weight))

    call.__name__ = getattr(step, "__name__", "step")
    return call


class _BatchFunction:
    """Calls a traced step with a batch tuple; compile(run_eagerly=False) keeps one per model.

    A batch of plain tensors (no nests) goes straight to its traced graph through a cache keyed on
    the exact shapes and dtypes, skipping ``Function``'s general signature matching (tens of
    microseconds, a tenth of a small model's step); any other batch takes the general path.
    """

    def __init__(self, function):
        self.function = function
        self._concretes: dict = {}

    def __call__(self, batch):
        x, y, sample_weight = batch if isinstance(batch, tuple) and len(batch) == 3 else unpack(batch)
        key = _exact_key(x, y, sample_weight)
        if key is None or state.graph is not None or state.tapes:
            return self.function(x, y, sample_weight)
        concrete = self._concretes.get(key)
        if concrete is None:
            concrete = self._concretes[key] = self.function.get_concrete_function(x, y, sample_weight)
        return concrete.call_flat([t._value for t in (x, y, sample_weight) if t is not None])


def _exact_key(*values):
    """The exact shapes and dtypes of ``values`` when each is a tensor or ``None``, else ``None``."""
    key = []
    for value in values:
        if value is None:
            key.append(None)
        elif type(value) is Tensor and value._value is not None:
            key.append((value._value.shape, value._value.dtype))
        else:
            return None
    return tuple(key)


def _to_tensors(x, y, sample_weight):
    def convert(structure):
        if structure is None:
            return None
        return nest.map_structure(lambda v: v if isinstance(v, Tensor) else convert_to_tensor(np.asarray(v, dtype=np.float32) if np.asarray(v).dtype == np.float64 else v), structure)

    return convert(x), convert(y), convert(sample_weight)


def _apply_class_weight(batch, class_weight: dict):
    x, y, sample_weight = batch
    if y is None or isinstance(y, (dict, list, tuple)):
        raise DataError("class_weight needs a single target array y")
    labels = y.numpy()
    if labels.ndim > 1 and labels.shape[-1] > 1:
        labels = labels.argmax(axis=-1)
    labels = labels.reshape(-1).astype(np.int64)
    table = np.ones(max(int(labels.max()) + 1, max(class_weight) + 1), dtype=np.float32)
    for cls, weight in class_weight.items():
        table[int(cls)] = weight
    weights = table[labels]
    if sample_weight is not None:
        weights = weights * sample_weight.numpy().reshape(-1)
    return x, y, convert_to_tensor(weights.astype(np.float32))


def _ordered(logs: dict, names: list[str]):
    values = [logs[name] for name in names if name in logs]
    return values[0] if len(values) == 1 else values


