"""``tf.estimator.Estimator``: trains, evaluates and predicts with a ``model_fn``, checkpointing in ``model_dir``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import tempfile
import time

import numpy as np

from trainer import dtypes, nest
from trainer.data import Dataset
from trainer.estimator.hooks import SessionRunContext, SessionRunValues
from trainer.estimator.mode_graph import ModeGraph, call_with_named_arguments, split_element
from trainer.estimator.model_fn import ModeKeys
from trainer.estimator.run_config import RunConfig
from trainer.ops import random_ops
from trainer.train import checkpoint_file, random_state
from trainer.train.checkpoint import KeyedCheckpoint
from trainer.train.checkpoint_management import CheckpointManager, latest_checkpoint
from trainer.train.inspection import list_variables, load_variable
from trainer.train.trackable import CheckpointError, PythonState
from trainer.variables import Variable

logger = logging.getLogger("trainer.estimator")

GLOBAL_STEP = "global_step"
_PROGRESS = "train_progress"
_CHECKPOINT_NAME = "model.ckpt"


class NanLossDuringTrainingError(FloatingPointError):
    """The training loss became NaN or infinite; the message gives the step."""


class _TrainProgress(PythonState):
    """Where the running ``train`` call stands, saved with every checkpoint so that a restarted job resumes exactly.

    ``call`` holds the random generator's state when the call began (before ``input_fn``), the global
    step it began at, its ``max_steps`` and how many batches it has taken from the input; ``rng`` is the
    generator's state when the checkpoint was written.
    """

    def __init__(self):
        self.call = None
        self.finished = False
        self.rng = None

    def serialize(self) -> str:
        return json.dumps({"call": self.call, "finished": self.finished, "rng": random_state.get_global_state()})

    def deserialize(self, string: str) -> None:
        try:
            state = json.loads(string)
        except ValueError as error:
            raise CheckpointError(f"{_PROGRESS} is not JSON: {error}") from None
        call = state.get("call") if isinstance(state, dict) else None
        if not isinstance(state, dict) or type(state.get("finished")) is not bool or not (call is None or _valid_call(call)):
            raise CheckpointError(f"{_PROGRESS} must hold {{'call': {{...}}, 'finished': bool, 'rng': {{...}}}}, got {string[:200]}")
        self.call, self.finished, self.rng = call, state["finished"], state.get("rng")


def _valid_call(call) -> bool:
    """Whether ``call`` has every key ``train`` reads, with the right types."""
    return (
        isinstance(call, dict)
        and isinstance(call.get("start_rng"), dict)
        and type(call.get("start_step")) is int
        and call["start_step"] >= 0
        and type(call.get("batches")) is int
        and call["batches"] >= 0
        and "max_steps" in call
        and (call["max_steps"] is None or type(call["max_steps"]) is int)
    )


@dataclasses.dataclass
class _ResumePlan:
    """Where a ``train`` call starts: the checkpoint's global step, and the progress of the interrupted call it continues."""

    start_step: int
    interrupted: _TrainProgress | None


@dataclasses.dataclass
class _StepState:
    """What the training loop works on: the traced graph, its checkpoint's manager, and the positioned input."""

    graph: ModeGraph
    global_step: Variable
    progress: _TrainProgress
    manager: CheckpointManager
    iterator: object


class Estimator:
    """Trains, evaluates and predicts with a model described by ``model_fn``, like ``tf.estimator.Estimator``.

    Args:
        model_fn: ``model_fn(features, labels, mode, params, config)`` (any subset of these argument
            names) returning a ``tf.estimator.EstimatorSpec``. It builds the model with Keras layers and
            computes the loss and predictions of a batch. emberflow traces it once per ``train``,
            ``evaluate`` or ``predict`` call into a graph (like TF1 built a graph per call) and runs that
            graph on every batch; so the training update is expressed TF2-style inside it, with a tape::

                def model_fn(features, labels, mode, params):
                    model = tf.keras.Sequential([...])
                    with tf.GradientTape() as tape:
                        logits = model(features["x"], training=mode == tf.estimator.ModeKeys.TRAIN)
                        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
                    if mode == tf.estimator.ModeKeys.TRAIN:
                        optimizer = tf.keras.optimizers.Adam(params["learning_rate"])
                        train_op = optimizer.minimize(loss, model.trainable_variables, tape=tape)
                        return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)
                    ...

            Variables are checkpointed by name (automatic layer names restart at every trace).
        model_dir: the folder for checkpoints; ``None`` uses ``config.model_dir`` or a temporary folder.
        config: a ``tf.estimator.RunConfig``.
        params: a dict passed to ``model_fn`` (and to ``input_fn`` when it takes ``params``).
        warm_start_from: not supported by emberflow (must be ``None``).

    Input functions take no arguments (or any of ``mode``, ``params``, ``config``) and return a
    ``tf.data.Dataset`` of ``(features, labels)`` batches (features alone for ``predict``).

    Every ``train`` call restores the latest checkpoint of ``model_dir``, so a restarted job continues
    where the last checkpoint left it. With ``max_steps``, a call interrupted by a crash and repeated
    with the same ``max_steps`` resumes exactly: the checkpoint records how many batches the call had
    consumed and the random generator's state, and the new call replays ``input_fn`` to that point.
    That needs an ``input_fn`` whose dataset is the same on every call (fixed shuffle seeds, or
    ``RunConfig(tf_random_seed=...)``, or no randomness).
    """

    def __init__(self, model_fn, model_dir=None, config=None, params=None, warm_start_from=None):
        if not callable(model_fn):
            raise TypeError(f"Estimator: model_fn must be callable, got {type(model_fn).__name__}")
        if warm_start_from is not None:
            raise NotImplementedError("Estimator(warm_start_from=...) is not supported by emberflow; restore a checkpoint instead")
        config = config if config is not None else RunConfig()
        if not isinstance(config, RunConfig):
            raise TypeError(f"Estimator: config must be a tf.estimator.RunConfig, got {type(config).__name__}")
        model_dir = os.fspath(model_dir) if model_dir is not None else None
        if model_dir and config.model_dir and os.path.abspath(model_dir) != os.path.abspath(config.model_dir):
            raise ValueError(
                f"model_dir are set both in constructor and RunConfig, but with different values. In constructor: "
                f"'{model_dir}', in RunConfig: '{config.model_dir}'."
            )
        model_dir = model_dir or config.model_dir
        if model_dir is None:
            model_dir = tempfile.mkdtemp(prefix="emberflow_estimator_")
            logger.warning("Using temporary folder as model directory: %s", model_dir)
        self._config = dataclasses.replace(config, model_dir=model_dir)
        self._model_fn = model_fn
        self._params = dict(params or {})

    @property
    def model_dir(self) -> str:
        return self._config.model_dir

    @property
    def config(self) -> RunConfig:
        return self._config

    @property
    def params(self) -> dict:
        return dict(self._params)

    @property
    def model_fn(self):
        return self._model_fn

    # -- checkpoints ------------------------------------------------------------------------------------
    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint in ``model_dir``, or ``None``."""
        return latest_checkpoint(self.model_dir)

    def get_variable_names(self) -> list:
        """The names of the variables in the latest checkpoint."""
        return [name for name, _ in list_variables(self._require_checkpoint())]

    def get_variable_value(self, name: str) -> np.ndarray:
        """The value of variable ``name`` (see ``get_variable_names``) in the latest checkpoint."""
        return load_variable(self._require_checkpoint(), name)

    def _require_checkpoint(self, checkpoint_path=None) -> str:
        path = checkpoint_path or self.latest_checkpoint()
        if path is None:
            raise ValueError(f"Could not find trained model in model_dir: {self.model_dir}.")
        return path

    # -- train ----------------------------------------------------------------------------------------
    def train(self, input_fn, hooks=None, steps=None, max_steps=None, saving_listeners=None):
        """Trains on ``input_fn``'s batches until its data ends, ``steps`` more steps, or step ``max_steps``.

        Args:
            input_fn: returns a ``tf.data.Dataset`` of ``(features, labels)`` batches.
            hooks: ``tf.estimator.SessionRunHook`` objects run around every step.
            steps: train this many more steps (``None``: until the data ends or ``max_steps``).
            max_steps: train until the global step reaches this; a restarted job given the same value
                trains only what is left (and resumes exactly, see the class docstring).
            saving_listeners: objects with ``before_save(session, global_step)`` / ``after_save(...)``.

        Returns:
            ``self``.
        """
        if steps is not None and max_steps is not None:
            raise ValueError("Can not provide both steps and max_steps.")
        for name, value in (("steps", steps), ("max_steps", max_steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"Must specify {name} > 0, given: {value}")
        with _open_checkpoint(self.latest_checkpoint()) as reader:
            plan = self._plan_resume(reader, max_steps)
            if max_steps is not None and plan.start_step >= max_steps:
                logger.info("Skipping training since max_steps has already saved: global_step %d >= max_steps %d.", plan.start_step, max_steps)
                return self
            state = self._build_step_state(input_fn, reader, plan, max_steps)
        stop_step = max_steps if max_steps is not None else (plan.start_step + steps if steps is not None else None)
        self._training_loop(state, plan.start_step, stop_step, hooks, saving_listeners)
        return self

    def _plan_resume(self, reader, max_steps) -> "_ResumePlan":
        """The global step to start at, and the interrupted call this one continues (same ``max_steps``), if any."""
        if reader is None:
            return _ResumePlan(0, None)
        start_step = int(reader.read(GLOBAL_STEP))
        previous = _TrainProgress()
        if _PROGRESS in reader.python_state:
            previous.deserialize(reader.python_state[_PROGRESS])
        call = previous.call
        if max_steps is None or call is None or previous.finished or call["max_steps"] != max_steps:
            return _ResumePlan(start_step, None)
        if call["start_step"] + call["batches"] != start_step:
            raise CheckpointError(
                f"{reader.path}: {_PROGRESS} says the interrupted call began at step {call['start_step']} and trained "
                f"{call['batches']} batches, but the global step is {start_step}"
            )
        return _ResumePlan(start_step, previous)

    def _build_step_state(self, input_fn, reader, plan: "_ResumePlan", max_steps) -> "_StepState":
        """Calls ``input_fn``, traces ``model_fn``, restores ``reader``'s checkpoint and positions the input.

        A call that continues an interrupted one replays it: the random state it began with, its input
        up to the batches it had trained on, and the random state of its checkpoint.
        """
        interrupted = plan.interrupted
        if interrupted is not None:
            random_state.set_global_state(interrupted.call["start_rng"])
        else:
            self._reseed()
        new_call = {"start_rng": random_state.get_global_state(), "start_step": plan.start_step, "max_steps": max_steps, "batches": 0}
        dataset = self._dataset(input_fn, ModeKeys.TRAIN)
        graph = ModeGraph(self._model_fn, ModeKeys.TRAIN, dataset.element_spec, self._params, self._config)
        global_step = Variable(plan.start_step, name=GLOBAL_STEP, dtype=dtypes.int64, trainable=False)
        progress = _TrainProgress()
        checkpoint = KeyedCheckpoint({**self._checkpoint_variables(graph), GLOBAL_STEP: global_step}, {_PROGRESS: progress})
        config = self._config
        manager = CheckpointManager(
            checkpoint,
            self.model_dir,
            max_to_keep=config.keep_checkpoint_max or None,
            keep_checkpoint_every_n_hours=config.keep_checkpoint_every_n_hours,
            checkpoint_name=_CHECKPOINT_NAME,
        )
        if reader is not None:
            _restore(checkpoint, reader, graph)  # this also loads the checkpoint's progress into ``progress``
        progress.call = dict(interrupted.call) if interrupted is not None else new_call
        progress.finished = False
        iterator = iter(dataset)
        if interrupted is not None:
            for _ in range(interrupted.call["batches"]):  # the batches the interrupted call had trained on
                if next(iterator, None) is None:
                    break
            random_state.set_global_state(interrupted.rng)
        return _StepState(graph, global_step, progress, manager, iterator)

    def _training_loop(self, state: "_StepState", start_step: int, stop_step, hooks, saving_listeners) -> None:
        """Runs training steps until ``stop_step``, the input's end or a hook's stop request, checkpointing as configured."""
        config, graph, progress = self._config, state.graph, state.progress
        hooks = list(hooks or ()) + list(graph.spec.training_hooks) + list(graph.spec.training_chief_hooks)
        listeners = list(saving_listeners or ())
        for hook in hooks:
            hook.begin()
        for hook in hooks:
            hook.after_create_session(None, None)
        step, last_save = start_step, time.monotonic()

        def save():
            for listener in listeners:
                getattr(listener, "before_save", lambda *_: None)(None, step)
            state.manager.save(checkpoint_number=step)
            logger.info("Saving checkpoints for %d into %s.", step, state.manager.latest_checkpoint)
            for listener in listeners:
                getattr(listener, "after_save", lambda *_: None)(None, step)

        while stop_step is None or step < stop_step:
            element = next(state.iterator, None)
            if element is None:
                break
            features, labels = split_element(element)
            self._check_labels(labels)
            context = SessionRunContext()
            for hook in hooks:
                hook.before_run(context)
            loss = float(graph.run(features, labels)["loss"])
            state.global_step.assign_add(1)
            progress.call["batches"] += 1
            step += 1
            if not math.isfinite(loss):
                raise NanLossDuringTrainingError(f"NaN loss during training: loss = {loss} at global step {step}")
            if config.log_step_count_steps is not None and step % config.log_step_count_steps == 0:
                logger.info("loss = %g, step = %d", loss, step)
            if (config.save_checkpoints_steps and step % config.save_checkpoints_steps == 0) or (
                config.save_checkpoints_secs and time.monotonic() - last_save >= config.save_checkpoints_secs
            ):
                save()
                last_save = time.monotonic()
            values = SessionRunValues({"loss": loss, GLOBAL_STEP: step})
            for hook in hooks:
                hook.after_run(context, values)
            if context.stop_requested:
                break
        progress.finished = True
        save()  # the last one also marks the call finished, so a later call starts its input afresh
        for hook in hooks:
            hook.end(None)

    # -- evaluate -------------------------------------------------------------------------------------
    def evaluate(self, input_fn, steps=None, hooks=None, checkpoint_path=None, name=None) -> dict:
        """Evaluates the latest checkpoint (or ``checkpoint_path``) on ``input_fn``'s batches.

        Returns:
            ``{"loss": mean batch loss, <each eval_metric_ops name>: its result, "global_step": int}``.
        """
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0):
            raise ValueError(f"Must specify steps > 0, given: {steps}")
        path = self._require_checkpoint(checkpoint_path)
        self._reseed()
        dataset = self._dataset(input_fn, ModeKeys.EVAL)
        graph = ModeGraph(self._model_fn, ModeKeys.EVAL, dataset.element_spec, self._params, self._config)
        global_step = Variable(0, name=GLOBAL_STEP, dtype=dtypes.int64, trainable=False)
        with checkpoint_file.CheckpointReader(path) as reader:
            _restore(KeyedCheckpoint({**self._checkpoint_variables(graph), GLOBAL_STEP: global_step}), reader, graph)
        hooks = list(hooks or ()) + list(graph.spec.evaluation_hooks)
        for hook in hooks:
            hook.begin()
        for hook in hooks:
            hook.after_create_session(None, None)
        losses = []
        for element in dataset:
            if steps is not None and len(losses) >= steps:
                break
            features, labels = split_element(element)
            self._check_labels(labels)
            context = SessionRunContext()
            for hook in hooks:
                hook.before_run(context)
            losses.append(float(graph.run(features, labels)["loss"]))
            for hook in hooks:
                hook.after_run(context, SessionRunValues({"loss": losses[-1], GLOBAL_STEP: int(global_step.numpy())}))
            if context.stop_requested:
                break
        for hook in hooks:
            hook.end(None)
        if not losses:
            raise ValueError("evaluate: input_fn's dataset yielded no batches")
        results = {"loss": float(np.mean(losses))}
        results.update({key: _as_python(metric.result()) for key, metric in graph.spec.eval_metric_ops.items()})
        results[GLOBAL_STEP] = int(global_step.numpy())
        return results

    # -- predict --------------------------------------------------------------------------------------
    def predict(self, input_fn, predict_keys=None, hooks=None, checkpoint_path=None, yield_single_examples=True):
        """Yields the predictions for ``input_fn``'s batches: one per example (or per batch), as NumPy values.

        Dict predictions are yielded as dicts, limited to ``predict_keys`` when given. Without any
        checkpoint the freshly initialized model predicts (with a warning), as TensorFlow does.
        """
        path = checkpoint_path or self.latest_checkpoint()
        self._reseed()
        dataset = self._dataset(input_fn, ModeKeys.PREDICT)
        graph = ModeGraph(self._model_fn, ModeKeys.PREDICT, dataset.element_spec, self._params, self._config)
        if path is None:
            logger.warning("Could not find trained model in model_dir: %s, running initialization to predict.", self.model_dir)
        else:
            with checkpoint_file.CheckpointReader(path) as reader:
                _restore(KeyedCheckpoint(self._checkpoint_variables(graph)), reader, graph)
        hooks = list(hooks or ()) + list(graph.spec.prediction_hooks)
        for hook in hooks:
            hook.begin()
        for hook in hooks:
            hook.after_create_session(None, None)
        for element in dataset:
            features, _ = split_element(element)
            context = SessionRunContext()
            for hook in hooks:
                hook.before_run(context)
            predictions = nest.map_structure(lambda tensor: tensor.numpy(), graph.run(features))
            for hook in hooks:
                hook.after_run(context, SessionRunValues({"predictions": predictions}))
            if isinstance(predictions, dict) and predict_keys is not None:
                keys = [predict_keys] if isinstance(predict_keys, str) else list(predict_keys)
                unknown = [key for key in keys if key not in predictions]
                if unknown:
                    raise ValueError(f"Expected to run at least one output from {sorted(predictions)}, provided {unknown}.")
                predictions = {key: predictions[key] for key in keys}
            if not yield_single_examples:
                yield predictions
            else:
                size = len(nest.flatten(predictions)[0])
                for index in range(size):
                    yield nest.map_structure(lambda array, position=index: array[position], predictions)
            if context.stop_requested:
                break
        for hook in hooks:
            hook.end(None)

    # -- helpers --------------------------------------------------------------------------------------
    def _checkpoint_variables(self, graph: ModeGraph) -> dict:
        """``{key: variable}`` for the checkpoint: the graph's variables by name (subclasses may key them otherwise)."""
        return graph.variables

    def _check_labels(self, labels) -> None:
        """Checks a batch's labels before its step runs (the pre-made classifiers check their range here:
        the traced ``model_fn`` graph has no assertion op). Nothing to check for a custom ``model_fn``."""

    def _reseed(self) -> None:
        if self._config.tf_random_seed is not None:
            random_ops.set_seed(self._config.tf_random_seed)

    def _dataset(self, input_fn, mode: str) -> Dataset:
        if not callable(input_fn):
            raise TypeError(f"input_fn must be a function returning a tf.data.Dataset, got {type(input_fn).__name__}")
        dataset = call_with_named_arguments(input_fn, {"mode": mode, "params": dict(self._params), "config": self._config}, "input_fn")
        if not isinstance(dataset, Dataset):
            raise TypeError(
                f"input_fn must return a tf.data.Dataset of (features, labels) batches, got {type(dataset).__name__}; "
                "wrap arrays with tf.data.Dataset.from_tensor_slices((features, labels)).batch(32)"
            )
        return dataset


def _open_checkpoint(path):
    """An open reader of the checkpoint ``path``, or ``None`` (as a context manager) when there is none."""
    return contextlib.nullcontext() if path is None else checkpoint_file.CheckpointReader(path)


def _restore(checkpoint: KeyedCheckpoint, reader: checkpoint_file.CheckpointReader, graph: ModeGraph) -> None:
    """Restores every variable of ``graph`` from ``reader``'s checkpoint; a variable the checkpoint lacks is an error."""
    status = checkpoint.restore_from_reader(reader)
    missing = [key for key in status.missing if key != _PROGRESS and key != "save_counter"]
    if missing:
        raise CheckpointError(
            f"{reader.path}: the model_fn's {graph.mode} graph has variables the checkpoint lacks: {', '.join(missing)}; "
            "was the checkpoint written by a different model_fn?"
        )


def _as_python(value):
    array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    return array.item() if array.ndim == 0 else array
