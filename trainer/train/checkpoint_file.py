"""One checkpoint on disk: ``<save_path>.ckpt``, a zip written and read by the ``.ember`` container code.

The zip (see ``trainer/keras/saving/file_format.py``: atomic writes, a directory checked before any
entry is read, arrays checked against their ``.npy`` headers, nothing unpickled) holds:

* ``checkpoint.json``: ``{"format_version", "emberflow_version", "values": [{"key", "entry", "dtype",
  "shape"}], "python_state": {key: string}, "optimizers": {key: {"built": bool, "variables": [key or null]}}}``,
  where an optimizer's ``variables`` are the keys of the variables it was built on (``null`` for one the
  checkpoint does not hold), so that ``restore`` builds an unbuilt optimizer on exactly those;
* ``values/<i>.npy``: one array per value.
"""

from __future__ import annotations

import os

import numpy as np

from trainer.keras.saving.file_format import ArchiveReader, ArchiveWriter, SavingError, checked_dtype, checked_shape
from trainer.train.trackable import CheckpointError

FORMAT_VERSION = 1
SUFFIX = ".ckpt"
MANIFEST = "checkpoint.json"
_MAX_KEY_LENGTH = 1000
_MAX_PYTHON_STATE = 1 << 20  # characters of one PythonState string


def file_of(save_path) -> str:
    """The file that holds the checkpoint ``save_path`` (``ckpt-3`` -> ``ckpt-3.ckpt``); the file itself works too."""
    save_path = os.fspath(save_path)
    return save_path if save_path.endswith(SUFFIX) else save_path + SUFFIX


def exists(save_path) -> bool:
    return os.path.isfile(file_of(save_path))


def write(save_path: str, graph) -> None:
    """Writes every value and Python state of ``graph`` (a ``TrackedGraph``) to ``save_path``'s file, atomically."""
    import trainer  # noqa: PLC0415 - the version; trainer imports this package lazily

    records = []
    keys_by_variable = {id(tracked.variable): tracked.key for tracked in graph.values}
    with _errors_as_checkpoint_errors(), ArchiveWriter(file_of(save_path)) as archive:
        for index, tracked in enumerate(graph.values):
            array = np.asarray(tracked.variable.numpy())
            entry = f"values/{index}.npy"
            archive.write_array(entry, array)
            records.append({"key": tracked.key, "entry": entry, "dtype": array.dtype.str, "shape": list(array.shape)})
        states = {}
        for key, state in graph.python_states.items():
            string = state.serialize()
            if not isinstance(string, str):
                raise CheckpointError(
                    f"{save_path}: {type(state).__name__}.serialize() for '{key}' returned a {type(string).__name__}, expected str"
                )
            states[key] = string
        archive.write_json(
            MANIFEST,
            {
                "format_version": FORMAT_VERSION,
                "emberflow_version": trainer.__version__,
                "values": records,
                "python_state": states,
                "optimizers": {key: _optimizer_record(optimizer, keys_by_variable) for key, optimizer in graph.optimizers.items()},
            },
        )


def _optimizer_record(optimizer, keys_by_variable: dict) -> dict:
    if not optimizer.built:
        return {"built": False}
    return {"built": True, "variables": [keys_by_variable.get(id(variable)) for variable in optimizer._trainable_variables]}


class CheckpointReader:
    """An open checkpoint file with its manifest checked: keys, dtypes, shapes, and Python state strings.

    Use as a context manager; ``read(key)`` returns one array after checking it against its record.
    """

    def __init__(self, save_path):
        self.path = file_of(save_path)
        if not os.path.isfile(self.path):
            raise CheckpointError(f"{self.path}: no such checkpoint file (save_path {os.fspath(save_path)!r})")
        with _errors_as_checkpoint_errors():
            self._archive = ArchiveReader(self.path)
            try:
                self.records, self.python_state, self.optimizers = self._read_manifest()
            except BaseException:
                self._archive.close()
                raise

    def _read_manifest(self):
        manifest = self._archive.read_json(MANIFEST)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("values"), list):
            raise CheckpointError(f"{self.path}: {MANIFEST} must hold {{'values': [...], ...}}; this is not a checkpoint file")
        version = manifest.get("format_version")
        if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
            raise CheckpointError(f"{self.path}: checkpoint format_version {version!r}; this emberflow reads format {FORMAT_VERSION}")
        records = {}
        for record in manifest["values"]:
            if not isinstance(record, dict) or not all(isinstance(record.get(field), str) for field in ("key", "entry", "dtype")):
                raise CheckpointError(f"{self.path}: {MANIFEST} has a value record without string key/entry/dtype: {str(record)[:200]}")
            key = _checked_key(record["key"], self.path)
            if key in records:
                raise CheckpointError(f"{self.path}: value '{key}' appears twice")
            checked_dtype(record["dtype"], f"{self.path}: value '{key}'")
            checked_shape(record.get("shape"), f"{self.path}: value '{key}'")
            records[key] = {"entry": record["entry"], "dtype": record["dtype"], "shape": tuple(record["shape"])}
        python_state = manifest.get("python_state", {})
        if not isinstance(python_state, dict) or not all(isinstance(value, str) and len(value) <= _MAX_PYTHON_STATE for value in python_state.values()):
            raise CheckpointError(f"{self.path}: 'python_state' must map keys to strings of at most {_MAX_PYTHON_STATE} characters")
        for key in python_state:
            _checked_key(key, self.path)
        optimizers = manifest.get("optimizers", {})
        if not isinstance(optimizers, dict) or not all(_valid_optimizer_record(value) for value in optimizers.values()):
            raise CheckpointError(f"{self.path}: 'optimizers' must map keys to {{'built': bool, 'variables': [key or null, ...]}}")
        optimizers = {key: {"built": value["built"], "variables": value.get("variables")} for key, value in optimizers.items()}
        return records, dict(python_state), optimizers

    def read(self, key: str) -> np.ndarray:
        record = self.records.get(key)
        if record is None:
            raise CheckpointError(f"{self.path}: no value '{key}' in the checkpoint; it holds {', '.join(sorted(self.records)) or 'no values'}")
        with _errors_as_checkpoint_errors():
            return self._archive.read_array(record["entry"], record["dtype"], record["shape"])

    def close(self) -> None:
        self._archive.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _valid_optimizer_record(record) -> bool:
    if not isinstance(record, dict) or type(record.get("built")) is not bool:
        return False
    variables = record.get("variables")
    return variables is None or (isinstance(variables, list) and all(key is None or isinstance(key, str) for key in variables))


def _checked_key(key, path: str) -> str:
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY_LENGTH or not key.isprintable():
        raise CheckpointError(f"{path}: invalid value key {str(key)[:100]!r}")
    return key


class _errors_as_checkpoint_errors:
    """Re-raises the container's ``SavingError`` as ``CheckpointError`` (same message: it names the file)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is not None and issubclass(exc_type, SavingError):
            raise CheckpointError(str(exc)) from None
        return False
