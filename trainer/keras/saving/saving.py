"""``model.save`` and ``tf.keras.models.load_model``, ``save_weights`` and ``load_weights``: ``.ember`` files.

A model file (``name.ember``) is one zip (see ``file_format.py`` for how it is written and checked):

* ``config.json``: ``{"class_name", "config", "compile_config", "build_config", "emberflow_version",
  "format_version"}``, Keras's layout: the model's registered class name and constructor config,
  the ``compile`` arguments with the optimizer's config, and the input shape a subclassed model is
  built with;
* ``weights.json``: the manifest of arrays: under "weights" one record per model weight (layer
  path, layer class, weight name, index in the layer, entry, dtype, shape; see
  ``weights_store.py``), under "optimizer" whether the optimizer was built and one record per
  optimizer variable (iterations, learning rate, slots), in ``optimizer.variables`` order;
* ``weights/<i>.npy`` and ``optimizer/<i>.npy``: the arrays, as plain numeric ``.npy`` data.

A weights file (``name.weights.ember``) holds only ``weights.json`` (without "optimizer") and
``weights/<i>.npy``. Loading constructs only registered classes (or those in ``custom_objects``).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os

import numpy as np

from trainer.keras.saving.file_format import ArchiveReader, ArchiveWriter, SavingError, checked_dtype, checked_shape
from trainer.keras.saving.object_config import from_config
from trainer.keras.saving.registration import UnknownObjectError, deserialize, lookup, registered_name, serialize
from trainer.keras.saving.weights_store import assign, match_records, weight_records

FORMAT_VERSION = 1
MODEL_SUFFIX = ".ember"
WEIGHTS_SUFFIX = ".weights.ember"


# -- whole models -------------------------------------------------------------------------------------
def save_model(model, filepath, overwrite: bool = True, include_optimizer: bool = True, **kwargs) -> None:
    """Writes ``model`` (architecture, weights, compile arguments, optimizer state) to one ``.ember`` file.

    The write is atomic: a crash mid-save leaves any previous file at ``filepath`` as it was.

    Args:
        model: a ``tf.keras.Model`` (Sequential, functional, or a registered subclass).
        filepath: a path ending in ".ember".
        overwrite: replace an existing file (otherwise that is an error).
        include_optimizer: also store the optimizer's variables, so training resumes exactly.

    Example:
        >>> model.save("classifier.ember")
        >>> restored = tf.keras.models.load_model("classifier.ember")
    """
    from trainer.keras.models.model import Model  # noqa: PLC0415 - models import this package

    if not isinstance(model, Model):
        raise TypeError(f"save_model expects a tf.keras.Model, got {type(model).__name__}")
    path = _checked_path(filepath, overwrite, for_weights=False, **kwargs)
    config = {
        **serialize(model),
        "compile_config": _compile_config(model) if model.compiled else None,
        "build_config": model.get_build_config(),
        "emberflow_version": _version(),
        "format_version": FORMAT_VERSION,
    }
    optimizer = model.optimizer if model.compiled and include_optimizer else None
    with ArchiveWriter(path) as archive:
        archive.write_json("config.json", config)
        manifest = _manifest_header()
        manifest["weights"] = _write_arrays(archive, "weights", weight_records(model))
        if optimizer is not None:
            variables = [({"name": variable.name}, variable) for variable in optimizer.variables]
            manifest["optimizer"] = {"built": bool(optimizer.built), "variables": _write_arrays(archive, "optimizer", variables)}
        archive.write_json("weights.json", manifest)


def model_to_json(model, **kwargs) -> str:
    """``model.to_json()``: the architecture alone as a JSON string, Keras's ``{"class_name", "config"}`` layout
    plus the build shape; no weights and no compile arguments. ``kwargs`` go to ``json.dumps`` (``indent=2``)."""
    from trainer.keras.models.model import Model  # noqa: PLC0415 - models import this package

    if not isinstance(model, Model):
        raise TypeError(f"to_json expects a tf.keras.Model, got {type(model).__name__}")
    document = {**serialize(model), "build_config": model.get_build_config(), "emberflow_version": _version()}
    try:
        return json.dumps(document, **kwargs)
    except (TypeError, ValueError) as error:
        raise SavingError(f"to_json: the config of '{model.name}' cannot be written as JSON: {error}") from None


def model_from_json(json_string, custom_objects: dict | None = None):
    """A new, untrained model from ``model.to_json()``'s string, like ``tf.keras.models.model_from_json``.

    Only registered classes (or those in ``custom_objects``) are constructed.

    Example:
        >>> clone = tf.keras.models.model_from_json(model.to_json())
        >>> clone.set_weights(model.get_weights())
    """
    what = "model_from_json"
    try:
        document = json.loads(json_string)
    except (TypeError, ValueError) as error:
        raise SavingError(f"{what}: expected the JSON string that model.to_json() returns: {error}") from None
    well_formed = isinstance(document, dict) and isinstance(document.get("class_name"), str)
    if not (well_formed and isinstance(document.get("config"), dict)):
        raise SavingError(f"{what}: expected {{'class_name': str, 'config': dict, ...}} as model.to_json() writes, "
                          f"got {str(document)[:200]}")  # fmt: skip
    return _revive(document, custom_objects, what, None)


def load_model(filepath, custom_objects: dict | None = None, compile: bool = True, safe_mode: bool = True):  # noqa: A002 - Keras's name
    """Rebuilds a model saved with ``model.save``: same class, weights, compile arguments and optimizer state.

    Args:
        filepath: a ``.ember`` file written by ``model.save``.
        custom_objects: ``{name: class_or_function}`` for custom layers, models, losses or metrics
            that are not registered with ``@tf.keras.utils.register_keras_serializable()``.
        compile: compile the model with the saved ``compile`` arguments and restore the optimizer's
            variables (iterations, slots), so that ``fit`` continues where the saved model stopped.
        safe_mode: accepted for Keras compatibility; loading is always safe (no code is ever
            deserialized), so there is no unsafe mode.

    Raises:
        SavingError: the file is not a valid emberflow model file, names a class that is not
            registered, or holds weights that do not fit the model; the message says which.
    """
    del safe_mode
    path = os.fspath(filepath)
    with ArchiveReader(path) as archive:
        if "config.json" not in archive:
            raise SavingError(
                f"{path}: holds only weights (written by save_weights); build the model in code and call "
                f"model.load_weights({path!r})"
            )
        config = archive.read_json("config.json")
        if not isinstance(config, dict) or not isinstance(config.get("class_name"), str) or not isinstance(config.get("config"), dict):
            raise SavingError(f"{path}: config.json must hold {{'class_name': str, 'config': dict, ...}}")
        _check_format_version(config, path, "config.json")
        manifest = _read_manifest(archive, path)
        model = _revive(config, custom_objects, path, weight_bytes=archive.entry_bytes("weights/"))
        _load_weights_into(model, manifest["weights"], archive, path)
        if compile and config.get("compile_config"):
            _compile(model, config["compile_config"], custom_objects, path)
            if manifest.get("optimizer") is not None:
                _restore_optimizer(model, manifest["optimizer"], archive, path)
    return model


# -- weights only ---------------------------------------------------------------------------------------
def save_weights(layer, filepath, overwrite: bool = True) -> None:
    """Writes the weights of ``layer`` (a model or a layer) to a ``.weights.ember`` file, atomically."""
    path = _checked_path(filepath, overwrite, for_weights=True)
    with ArchiveWriter(path) as archive:
        manifest = _manifest_header()
        manifest["weights"] = _write_arrays(archive, "weights", weight_records(layer))
        archive.write_json("weights.json", manifest)


def load_weights(layer, filepath) -> None:
    """Sets the weights of ``layer`` from a ``.weights.ember`` (or ``.ember``) file, matched by layer.

    Nothing is assigned unless every weight in the file fits: a missing layer or a shape mismatch
    raises ``SavingError`` (a ``ValueError``) naming the layer, the weight and both shapes.
    """
    path = os.fspath(filepath)
    with ArchiveReader(path) as archive:
        manifest = _read_manifest(archive, path)
        _load_weights_into(layer, manifest["weights"], archive, path)


# -- writing helpers ------------------------------------------------------------------------------------
def _checked_path(filepath, overwrite: bool, for_weights: bool, zipped=None, save_format=None, **unknown) -> str:
    if unknown:
        raise TypeError(f"save got unexpected keyword argument(s) {', '.join(sorted(unknown))}")
    if zipped is False or save_format not in (None, "ember"):
        raise NotImplementedError(f"emberflow saves one zipped '{MODEL_SUFFIX}' file only (got zipped={zipped!r}, save_format={save_format!r})")
    path = os.fspath(filepath)
    if for_weights and not path.endswith(WEIGHTS_SUFFIX):
        raise SavingError(f"{path}: a weights file name must end in '{WEIGHTS_SUFFIX}', e.g. 'model{WEIGHTS_SUFFIX}'")
    if not for_weights and (not path.endswith(MODEL_SUFFIX) or path.endswith(WEIGHTS_SUFFIX)):
        hint = "; save weights alone with model.save_weights()" if path.endswith(WEIGHTS_SUFFIX) else ""
        raise SavingError(
            f"{path}: a model file name must end in '{MODEL_SUFFIX}' (emberflow writes one zip of JSON and .npy "
            f"arrays; Keras's .keras, .h5 and SavedModel formats are not supported){hint}"
        )
    if not overwrite and os.path.exists(path):
        raise SavingError(f"{path}: the file exists and overwrite=False")
    return path


def _version() -> str:
    import trainer  # noqa: PLC0415 - the package imports keras, which imports this module

    return trainer.__version__


def _manifest_header() -> dict:
    return {"format_version": FORMAT_VERSION, "emberflow_version": _version()}


def _write_arrays(archive: ArchiveWriter, folder: str, items: list) -> list:
    """Writes each variable as ``folder/<i>.npy``; returns the records with entry, dtype and shape."""
    records = []
    for index, (record, variable) in enumerate(items):
        array = np.asarray(variable.numpy())
        entry = f"{folder}/{index}.npy"
        archive.write_array(entry, array)
        records.append({**record, "entry": entry, "dtype": array.dtype.str, "shape": list(array.shape)})
    return records


def _compile_config(model) -> dict:
    """``compile``'s arguments as JSON: names stay names, loss and metric objects become configs."""
    from trainer.keras import optimizers  # noqa: PLC0415

    arguments = getattr(model, "_compile_config", {})
    config = {key: _serialize_compile_item(arguments.get(key)) for key in ("loss", "metrics", "loss_weights", "weighted_metrics")}
    config.update(optimizer=optimizers.serialize(model.optimizer), run_eagerly=bool(model.run_eagerly), jit_compile=getattr(model, "jit_compile", "auto"))
    return config


def _serialize_compile_item(value):
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(key): _serialize_compile_item(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_serialize_compile_item(item) for item in value]
    if inspect.isclass(value):
        return registered_name(value)
    return serialize(value)


# -- reading helpers ------------------------------------------------------------------------------------
def _check_format_version(document: dict, path: str, name: str) -> None:
    version = document.get("format_version")
    if type(version) is not int or version < 1:
        raise SavingError(f"{path}: {name} has no valid format_version")
    if version > FORMAT_VERSION:
        raise SavingError(f"{path}: written in format {version} by emberflow {document.get('emberflow_version')}; this version reads format {FORMAT_VERSION}")


def _read_manifest(archive: ArchiveReader, path: str) -> dict:
    """``weights.json``, with every record's fields checked before anything is matched or read."""
    manifest = archive.read_json("weights.json")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("weights"), list):
        raise SavingError(f"{path}: weights.json must hold {{'weights': [...], ...}}")
    _check_format_version(manifest, path, "weights.json")
    weight_fields = {"layer": str, "class_name": str, "weight": str, "index": int}
    records = [_checked_record(record, weight_fields, path) for record in manifest["weights"]]
    next_index: dict[str, int] = {}
    for record in records:  # a layer's weights are matched by position, so positions must be in order
        expected = next_index.get(record["layer"], 0)
        if record["index"] != expected:
            raise SavingError(f"{path}: weights.json lists weight {record['index']} of layer '{record['layer']}' where weight {expected} belongs")
        next_index[record["layer"]] = expected + 1
    optimizer = manifest.get("optimizer")
    if optimizer is not None:
        if not isinstance(optimizer, dict) or type(optimizer.get("built")) is not bool or not isinstance(optimizer.get("variables"), list):
            raise SavingError(f"{path}: weights.json 'optimizer' must hold {{'built': bool, 'variables': [...]}}")
        optimizer = {"built": optimizer["built"], "variables": [_checked_record(record, {"name": str}, path) for record in optimizer["variables"]]}
    return {"weights": records, "optimizer": optimizer}


def _checked_record(record, fields: dict, path: str) -> dict:
    if not isinstance(record, dict):
        raise SavingError(f"{path}: weights.json has a record that is not an object: {str(record)[:100]}")
    for field, kind in {**fields, "entry": str}.items():
        if type(record.get(field)) is not kind:
            raise SavingError(f"{path}: weights.json record {str(record)[:200]} needs a {kind.__name__} '{field}'")
    checked_dtype(record.get("dtype"), f"{path}: {record['entry']}")
    checked_shape(record.get("shape"), f"{path}: {record['entry']}")
    return record


def _revive(config: dict, custom_objects, path: str, weight_bytes: int | None):
    """The model built from ``config`` by its registered class, then built on the saved input shape.

    Its layers may create at most ``weight_bytes`` of weights (what the file's arrays hold), so a config
    with absurd sizes fails before it allocates them; ``None`` (``model_from_json``: no file holds the
    weights, as when the caller constructs the model in Python) sets no cap.
    """
    from trainer.keras.layers.base import weight_budget  # noqa: PLC0415 - layers import this package
    from trainer.keras.models.model import Model  # noqa: PLC0415

    class_name = config["class_name"]
    try:
        cls = lookup("models", class_name, custom_objects)
        if not (inspect.isclass(cls) and issubclass(cls, Model)):
            raise UnknownObjectError(f"{class_name!r} is registered, but is not a model class")
        with weight_budget(weight_bytes, f"the file {path}") if weight_bytes is not None else contextlib.nullcontext():
            model = from_config(cls, config["config"], custom_objects)
            build_config = config.get("build_config")
            if not model.built and build_config:
                model.build_from_config(build_config)
    except UnknownObjectError as error:
        raise SavingError(f"{path}: cannot rebuild the model: {error}") from None
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as error:  # what a malformed config raises
        raise SavingError(
            f"{path}: cannot rebuild {class_name} from its config: {error}. A subclassed model's get_config() must "
            "return its __init__ arguments (and from_config rebuild it from them)"
        ) from error
    return model


def _load_weights_into(layer, records: list, archive: ArchiveReader, path: str) -> None:
    """Checks every record against the model, reads every array, and only then assigns them all."""
    pairs = match_records(layer, records, path)
    arrays = [archive.read_array(record["entry"], record["dtype"], record["shape"]) for _, record in pairs]
    assign(pairs, arrays)


def _compile(model, compile_config, custom_objects, path: str) -> None:
    from trainer.keras import optimizers  # noqa: PLC0415

    if not isinstance(compile_config, dict) or "optimizer" not in compile_config:
        raise SavingError(f"{path}: compile_config must be a dict with an 'optimizer'")
    try:
        model.compile(
            optimizer=optimizers.deserialize(compile_config["optimizer"], custom_objects),
            loss=_revive_compile_item("losses", compile_config.get("loss"), custom_objects),
            metrics=_revive_compile_item("metrics", compile_config.get("metrics"), custom_objects),
            loss_weights=compile_config.get("loss_weights"),
            weighted_metrics=_revive_compile_item("metrics", compile_config.get("weighted_metrics"), custom_objects),
            run_eagerly=bool(compile_config.get("run_eagerly", False)),
            jit_compile=compile_config.get("jit_compile", "auto"),
        )
    except (TypeError, ValueError) as error:
        raise SavingError(f"{path}: cannot compile the loaded model: {error}. Pass compile=False to load it uncompiled") from error


def _revive_compile_item(category: str, value, custom_objects):
    """Loss and metric configs back to objects; names stay names for ``compile`` (or come from ``custom_objects``)."""
    if isinstance(value, str):
        return custom_objects[value] if custom_objects and value in custom_objects else value
    if isinstance(value, dict) and "class_name" in value:
        return deserialize(category, value, custom_objects)
    if isinstance(value, dict):
        return {key: _revive_compile_item(category, item, custom_objects) for key, item in value.items()}
    if isinstance(value, list):
        return [_revive_compile_item(category, item, custom_objects) for item in value]
    return value


def _restore_optimizer(model, state: dict, archive: ArchiveReader, path: str) -> None:
    """Builds the optimizer on the model's trainable variables, as training would, and loads its variables."""
    optimizer = model.optimizer
    if state["built"] and not optimizer.built:
        optimizer.build(model.trainable_variables)
    variables, records = optimizer.variables, state["variables"]
    if len(records) != len(variables):
        raise SavingError(
            f"{path}: the saved optimizer state has {len(records)} variables but the rebuilt {type(optimizer).__name__} "
            f"has {len(variables)}; pass compile=False to load the model without it"
        )
    for variable, record in zip(variables, records):
        if tuple(record["shape"]) != tuple(variable.shape.as_list()):
            raise SavingError(
                f"{path}: optimizer variable '{variable.name}' has shape {tuple(record['shape'])} in the file but "
                f"{tuple(variable.shape.as_list())} in the model"
            )
        if not np.can_cast(np.dtype(record["dtype"]), variable.dtype.as_numpy_dtype, "same_kind"):
            raise SavingError(f"{path}: optimizer variable '{variable.name}' is {record['dtype']} in the file, {variable.dtype.name} in the model")
    arrays = [archive.read_array(record["entry"], record["dtype"], record["shape"]) for record in records]
    optimizer.load_own_variables({str(index): array.astype(variable.dtype.as_numpy_dtype, copy=False) for index, (array, variable) in enumerate(zip(arrays, variables))})
