"""``tf.train.Checkpoint``: saves and restores variables, models, optimizers and Python state by attribute name."""

from __future__ import annotations

import os

import numpy as np

from trainer import dtypes
from trainer.keras.saving.weights_store import assign
from trainer.train import checkpoint_file
from trainer.train.trackable import CheckpointError, TrackedGraph, TrackedValue, check_child, walk
from trainer.variables import Variable

_SAVE_COUNTER = "save_counter"


class CheckpointBase:
    """What every checkpoint shares: ``save_counter``, ``save``, ``write``, ``restore``; subclasses say what they track."""

    def _tracked(self) -> TrackedGraph:
        raise NotImplementedError

    @property
    def save_counter(self) -> Variable:
        """How many times ``save`` has run (an int64 variable, saved with the checkpoint); numbers the files."""
        if self._save_counter is None:
            object.__setattr__(self, "_save_counter", Variable(0, name=_SAVE_COUNTER, dtype=dtypes.int64, trainable=False))
        return self._save_counter

    def _graph(self) -> TrackedGraph:
        graph = self._tracked()
        graph.values.append(TrackedValue(_SAVE_COUNTER, self.save_counter, "the checkpoint's save_counter"))
        return graph

    # -- writing -------------------------------------------------------------------------------------
    def save(self, file_prefix, options=None) -> str:
        """Writes ``<file_prefix>-<n>`` with ``n`` the incremented ``save_counter``; returns that path.

        The directory's ``checkpoint`` file then names it as the latest (see ``tf.train.latest_checkpoint``).
        """
        from trainer.train import checkpoint_management  # noqa: PLC0415 - it builds on this module

        self.save_counter.assign_add(1)
        save_path = self.write(f"{os.fspath(file_prefix)}-{int(self.save_counter.numpy())}")
        directory, name = os.path.split(os.path.abspath(save_path))
        checkpoint_management.update_checkpoint_state(directory, name, [name])
        return save_path

    def write(self, file_prefix, options=None) -> str:
        """Writes the checkpoint to exactly ``file_prefix`` (no counter, no ``checkpoint`` file); returns it."""
        file_prefix = os.fspath(file_prefix)
        directory = os.path.dirname(os.path.abspath(file_prefix))
        os.makedirs(directory, exist_ok=True)
        checkpoint_file.write(file_prefix, self._graph())
        return file_prefix

    # -- reading -------------------------------------------------------------------------------------
    def restore(self, save_path, options=None) -> "LoadStatus":
        """Restores every tracked object from ``save_path`` (``None`` restores nothing: a fresh start).

        Returns a status whose ``assert_consumed()`` checks that the file and the objects matched
        completely; ``expect_partial()`` says a partial match is intended.

        Raises:
            CheckpointError: the file is missing, damaged or hostile, or a value does not fit its
                object; nothing has been assigned then.
        """
        if save_path is None:
            return LoadStatus(None, [], [], matched=0)
        with checkpoint_file.CheckpointReader(save_path) as reader:
            return self.restore_from_reader(reader)

    def restore_from_reader(self, reader: checkpoint_file.CheckpointReader) -> "LoadStatus":
        """``restore`` from an open ``checkpoint_file.CheckpointReader`` (for callers that read other values too).

        All or nothing: every array is read and checked, then the Python states are deserialized (put
        back as they were if one fails), and the arrays are assigned last.
        """
        graph = self._graph()
        _build_optimizers(graph, reader)
        _refuse_unbuilt_layers(graph, reader)
        matched = [tracked for tracked in graph.values if tracked.key in reader.records]
        for tracked in matched:
            _check_fits(tracked, reader.records[tracked.key], reader.path)
        arrays = [reader.read(tracked.key) for tracked in matched]
        states = {key: reader.python_state[key] for key in graph.python_states if key in reader.python_state}

        def assign_arrays() -> None:
            assign([(tracked.variable, None) for tracked in matched], arrays)

        _deserialize_all({key: graph.python_states[key] for key in states}, states, then=assign_arrays)
        used = {tracked.key for tracked in matched} | set(states)
        tracked_keys = {tracked.key for tracked in graph.values} | set(graph.python_states)
        saved = set(reader.records) | set(reader.python_state)
        return LoadStatus(reader.path, sorted(tracked_keys - used), sorted(saved - used), matched=len(used))

    def read(self, save_path, options=None) -> "LoadStatus":
        """Restores from a path written by ``write`` (the same as ``restore``)."""
        return self.restore(save_path, options)


class Checkpoint(CheckpointBase):
    """Groups trackable objects so that they are saved and restored together, like ``tf.train.Checkpoint``.

    Args:
        root: not supported by emberflow; pass the objects as keyword arguments.
        **kwargs: the objects to track, by name: ``tf.Variable``, Keras layers and models, optimizers,
            ``tf.train.experimental.PythonState`` and nested ``Checkpoint`` objects.

    Values are matched by attribute path, and a model's weights by position (``layer_with_weights-0``),
    so a checkpoint restores into a new process's objects built the same way. Restoring writes nothing
    unless every value in the file fits its object (shape and dtype) and every Python state accepts its
    string. An optimizer that is not built yet is built, before its slots are restored, on the variables
    it was built on when saved (the checkpoint records their keys), so that training continues
    identically; when the checkpoint does not hold them all, call ``optimizer.build(var_list)`` first.
    A model must be built before ``restore`` (deferred restoration is not supported by emberflow).

    Example:
        >>> checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=tf.Variable(0))
        >>> path = checkpoint.save("/tmp/training/ckpt")   # "/tmp/training/ckpt-1"
        >>> checkpoint.restore(path).assert_consumed()
    """

    def __init__(self, root=None, **kwargs):
        if root is not None:
            raise NotImplementedError("tf.train.Checkpoint(root=...) is not supported by emberflow; pass the objects as keyword arguments")
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "_save_counter", None)
        for name, value in kwargs.items():
            setattr(self, name, value)

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        if name == _SAVE_COUNTER:
            raise AttributeError("Checkpoint.save_counter is managed by the checkpoint and cannot be assigned")
        check_child(name, value, "tf.train.Checkpoint")
        self._children[name] = value
        object.__setattr__(self, name, value)

    def _checkpoint_children(self) -> dict:
        return dict(self._children)

    def _tracked(self) -> TrackedGraph:
        return walk(self._children)

    def __repr__(self) -> str:
        return f"<tf.train.Checkpoint tracking {', '.join(self._children) or 'nothing'}>"


class KeyedCheckpoint(CheckpointBase):
    """A checkpoint of variables under keys chosen by the caller (the Estimator keys them by variable name).

    Args:
        variables: ``{key: tf.Variable}``.
        python_states: ``{key: PythonState}``.
    """

    def __init__(self, variables: dict, python_states: dict | None = None):
        self._variables = dict(variables)
        self._python_states = dict(python_states or {})
        self._save_counter = None

    def _tracked(self) -> TrackedGraph:
        values = [TrackedValue(key, variable, f"variable '{variable.name}'") for key, variable in self._variables.items()]
        return TrackedGraph(values, dict(self._python_states), {}, {})


class LoadStatus:
    """What ``Checkpoint.restore`` matched: checkpoint values without an object, objects without a value."""

    def __init__(self, path, missing: list, unused: list, matched: int):
        self.path, self.missing, self.unused, self.matched = path, missing, unused, matched

    def assert_consumed(self) -> "LoadStatus":
        """Raises ``AssertionError`` unless every value was used and every object restored (as TensorFlow does)."""
        self.assert_existing_objects_matched()
        if self.unused:
            raise AssertionError(f"{self.path}: checkpoint values not matched to any object: {', '.join(self.unused)}")
        return self

    def assert_existing_objects_matched(self) -> "LoadStatus":
        """Raises ``AssertionError`` if some tracked object got no value from the checkpoint."""
        if self.path is None:
            raise AssertionError("no checkpoint was restored (save_path was None)")
        if self.missing:
            raise AssertionError(f"{self.path}: objects with no value in the checkpoint: {', '.join(self.missing)}")
        return self

    def assert_nontrivial_match(self) -> "LoadStatus":
        """Raises ``AssertionError`` if nothing besides the save counter was restored."""
        if self.matched <= (1 if _SAVE_COUNTER not in self.missing else 0):
            raise AssertionError(f"{self.path}: nothing was restored from the checkpoint")
        return self

    def expect_partial(self) -> "LoadStatus":
        """Says a partial match is intended; emberflow never warns about it, so this only returns the status."""
        return self

    def run_restore_ops(self, session=None) -> None:
        """Values are assigned eagerly by ``restore``; kept for TensorFlow compatibility."""

    def initialize_or_restore(self, session=None) -> None:
        """Values are assigned eagerly by ``restore``; kept for TensorFlow compatibility."""


def _deserialize_all(objects: dict, strings: dict, then) -> None:
    """Deserializes ``strings`` into ``objects`` (``PythonState`` by key), then calls ``then()``.

    If a ``deserialize`` or ``then()`` fails, the objects already changed get their earlier state back.
    """
    done = []
    try:
        for key, string in strings.items():
            before = objects[key].serialize()
            objects[key].deserialize(string)
            done.append((key, before))
        then()
    except BaseException:
        for key, before in reversed(done):
            objects[key].deserialize(before)
        raise


def _check_fits(tracked, record: dict, path: str) -> None:
    expected = tuple(tracked.variable.shape.as_list())
    if record["shape"] != expected:
        raise CheckpointError(
            f"{path}: '{tracked.key}' ({tracked.description}) has shape {record['shape']} in the checkpoint but {expected} in the object"
        )
    if not np.can_cast(np.dtype(record["dtype"]), tracked.variable.dtype.as_numpy_dtype, "same_kind"):
        saved = np.dtype(record["dtype"]).name
        raise CheckpointError(f"{path}: '{tracked.key}' ({tracked.description}) is {saved} in the checkpoint, {tracked.variable.dtype.name} in the object")


def _refuse_unbuilt_layers(graph, reader) -> None:
    for prefix, layer in graph.unbuilt_layers.items():
        if any(key.startswith(prefix + "/") for key in reader.records):
            raise CheckpointError(
                f"{reader.path}: '{prefix}' ({type(layer).__name__} '{layer.name}') is not built yet, but the checkpoint "
                "holds its weights; build it first (call it on data or model.build(input_shape)); "
                "deferred restoration is not supported by emberflow"
            )


def _build_optimizers(graph, reader) -> None:
    """Builds each unbuilt optimizer whose saved state was built, on the variables the checkpoint says it was built on.

    Its slots are then ordinary values, restored with the rest; the graph gains their keys.
    """
    variables_by_key = {tracked.key: tracked.variable for tracked in graph.values}
    for prefix, optimizer in graph.optimizers.items():
        record = reader.optimizers.get(prefix)
        if optimizer.built or record is None or not record["built"]:
            continue
        keys = record["variables"]
        missing = None if keys is None else [key for key in keys if key not in variables_by_key]
        if keys is None or missing:
            reason = (
                "the checkpoint does not record which variables it was built on"
                if keys is None
                else f"it was built on variables this checkpoint does not track now: {', '.join(str(key) for key in missing[:5])}"
            )
            raise CheckpointError(
                f"{reader.path}: optimizer '{prefix}' was built when saved but is not built now, and {reason}; "
                "call optimizer.build(var_list) first"
            )
        optimizer.build([variables_by_key[key] for key in keys])
        values = [tracked for tracked in graph.values if not tracked.key.startswith(prefix + "/")]
        for index, variable in enumerate(optimizer.variables):
            values.append(TrackedValue(f"{prefix}/{index}", variable, f"{type(optimizer).__name__} variable '{variable.name}'"))
        graph.values[:] = values
