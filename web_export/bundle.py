"""The web bundle: a folder any static server can host, with the demo page, the JS runtime and the model.

    bundle(model, "site/", quantize="dynamic")
    # python -m http.server --directory site   ->  draw a digit at http://localhost:8000

The folder holds ``index.html``, ``app.js``, ``preprocess.js`` and ``style.css`` (the page),
``emberflow-lite.js`` and ``emberflow-worker.js`` (the runtime), ``model.lite`` and ``manifest.json``,
which tells the page everything it needs about the model: the file, its size and quantization, the input
and output names, shapes and dtypes (read back from the written file by ``lite_runtime``), the labels,
and how to turn a drawing into the model's input.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from exporter.errors import ExportError
from exporter.files import write_atomically
from exporter.lite.schema import FILE_IDENTIFIER

__all__ = ["MODEL_FILE", "bundle"]

MODEL_FILE = "model.lite"
MANIFEST_VERSION = 1
QUANTIZE_CHOICES = ("none", "dynamic", "int8", "float16")
PACKAGE = Path(__file__).parent
# Package data copied into every bundle: the page, then the runtime (written by the JS runtime's issue).
PAGE_FILES = ("index.html", "app.js", "preprocess.js", "style.css")
RUNTIME_FILES = ("emberflow-lite.js", "emberflow-worker.js")


def bundle(model_or_file, out_dir, labels=None, quantize: str = "none", calibration=None, preprocessing=None) -> dict:
    """Writes the web bundle for a model into ``out_dir``; returns the manifest it wrote.

    Args:
        model_or_file: a built Keras model, the path of a saved model (``.ember``), or the path of an
            existing lite file (``.lite``/``.tflite``, ours or TensorFlow's), which is copied as it is.
        out_dir: the folder to write (created if missing; files of the same names are replaced).
        labels: one display name per output class (default ``"0"``, ``"1"``, ...).
        quantize: "none", "dynamic", "int8" or "float16", as ``exporter.lite.to_lite`` takes it; only
            for a model, not for an existing lite file.
        calibration: sample inputs for ``quantize="int8"`` (see ``to_lite``).
        preprocessing: how the page turns a drawing into the input (default: inferred from a grayscale
            image input, ``(batch, H, W)`` or ``(batch, H, W, 1)``, or a flattened square one such as
            ``(batch, 784)`` for 28×28, MNIST style: ``{"kind": "image", "height": 28, "width": 28,
            "channels": 1, "scale": [0, 1], "invert": False}``, white ink on black). Required for any
            other input shape.

    Raises:
        exporter.errors.ExportError: the input is not a model, a readable saved model or a lite file,
            the options contradict each other, the model's output has no fixed class dimension, the
            labels do not match it, or the input is no image and ``preprocessing`` is not given.

    Example:
        >>> manifest = bundle(model, "site/")
        >>> manifest["model"]["file"], manifest["inputs"][0]["shape"]
        ('model.lite', [-1, 28, 28])
    """
    if quantize not in QUANTIZE_CHOICES:
        raise ExportError(f"quantize must be one of {', '.join(QUANTIZE_CHOICES)}; got {quantize!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder; pass a folder for the web bundle")
    model_bytes = _model_bytes(model_or_file, quantize, calibration)
    manifest = _manifest(model_bytes, quantize, labels, preprocessing)
    out.mkdir(parents=True, exist_ok=True)
    for name in PAGE_FILES:
        write_atomically(os.fspath(out / name), _package_file("page", name))
    for name in RUNTIME_FILES:
        write_atomically(os.fspath(out / name), _package_file("js", name))
    write_atomically(os.fspath(out / MODEL_FILE), model_bytes)
    write_atomically(os.fspath(out / "manifest.json"), (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def _model_bytes(model_or_file, quantize: str, calibration) -> bytes:
    """The lite file's bytes: exported from a model or saved model, or read from an existing lite file."""
    if isinstance(model_or_file, (str, os.PathLike)):
        path = Path(model_or_file)
        if not path.is_file():
            raise ExportError(f"{path}: no such file; pass a Keras model, a saved model (.ember) or a lite file")
        with path.open("rb") as file:
            head = file.read(8)  # a zip starts with "PK"; a flatbuffer's file identifier sits at bytes 4..8
        if head[4:8] == FILE_IDENTIFIER:
            if quantize != "none":
                raise ExportError(
                    f"{path} is already a lite file; quantize={quantize!r} needs the model: "
                    "pass the saved model (.ember) instead"
                )
            return path.read_bytes()
        if head[:2] != b"PK":
            raise ExportError(
                f"{path}: neither a saved model (.ember zip) nor a lite file (identifier {FILE_IDENTIFIER.decode()})"
            )
        from trainer.keras.models import load_model  # noqa: PLC0415 - only saved models need the trainer
        from trainer.keras.saving.file_format import SavingError  # noqa: PLC0415

        try:
            model_or_file = load_model(os.fspath(path), compile=False)
        except SavingError as error:
            raise ExportError(f"the saved model cannot be loaded: {error}") from error
    elif not callable(getattr(model_or_file, "predict", None)):
        raise ExportError(
            f"cannot bundle a {type(model_or_file).__name__}: "
            "pass a Keras model, a saved model path (.ember) or a lite file path"
        )
    from exporter.lite import to_lite  # noqa: PLC0415

    return to_lite(model_or_file, quantize=quantize, calibration=calibration)


def _manifest(model_bytes: bytes, quantize: str, labels, preprocessing) -> dict:
    from lite_runtime import Interpreter, LiteFormatError  # noqa: PLC0415

    try:
        interpreter = Interpreter(model_content=model_bytes)
    except LiteFormatError as error:
        raise ExportError(f"the lite file cannot be read: {error}") from error
    inputs = [_tensor_entry(detail) for detail in interpreter.get_input_details()]
    outputs = [_tensor_entry(detail) for detail in interpreter.get_output_details()]
    classes = _class_count(outputs[0])
    if labels is None:
        labels = [str(index) for index in range(classes)]
    labels = [str(label) for label in labels]
    if len(labels) != classes:
        raise ExportError(
            f"got {len(labels)} labels, but the model's output '{outputs[0]['name']}' has {classes} classes"
        )
    if preprocessing is None:
        preprocessing = _image_preprocessing(inputs[0])
    _check_preprocessing(preprocessing, inputs[0])
    return {
        "version": MANIFEST_VERSION,
        "model": {"file": MODEL_FILE, "format": "lite", "quantize": quantize, "bytes": len(model_bytes)},
        "inputs": inputs,
        "outputs": outputs,
        "labels": labels,
        "preprocessing": preprocessing,
    }


def _tensor_entry(detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    return {
        "name": detail["name"],
        "shape": [int(size) for size in detail["shape_signature"]],
        "dtype": detail["dtype"].__name__,
        "quantization": {"scale": float(scale), "zeroPoint": int(zero_point)},
    }


def _class_count(output: dict) -> int:
    """The size of the output's last dimension: the page shows one bar (and one label) per class."""
    shape = output["shape"]
    if len(shape) < 1 or shape[-1] < 1:
        raise ExportError(
            f"the model's output '{output['name']}' has shape {shape}; the page needs one score per class in a "
            "fixed last dimension, e.g. [-1, 10]"
        )
    return shape[-1]


def _image_preprocessing(model_input: dict) -> dict:
    """MNIST-style grayscale preprocessing for a (batch, H, W), (batch, H, W, 1) or (batch, H × W) input."""
    shape = model_input["shape"]
    height = width = -1
    if len(shape) == 3 or (len(shape) == 4 and shape[3] == 1):
        height, width = shape[1], shape[2]
    elif len(shape) == 2 and shape[1] > 0 and math.isqrt(shape[1]) ** 2 == shape[1]:
        height = width = math.isqrt(shape[1])  # a flattened square image, e.g. 784 = 28 × 28
    if height < 1 or width < 1:
        raise ExportError(
            f"the model's input '{model_input['name']}' has shape {shape}, which is no grayscale image "
            "((batch, H, W), (batch, H, W, 1) or (batch, H × W) with H = W); pass preprocessing="
            '{"kind": "image", "height": H, "width": W, "channels": 1, "scale": [0, 1], "invert": False} '
            "to say how the page's drawing becomes the input"
        )
    return {"kind": "image", "height": height, "width": width, "channels": 1, "scale": [0, 1], "invert": False}


def _check_preprocessing(preprocessing, model_input: dict) -> None:
    """Refuses preprocessing the page cannot follow, or whose image does not fill the model's input."""
    expected = '{"kind": "image", "height": H, "width": W, "channels": 1, ...}'
    if not isinstance(preprocessing, dict) or preprocessing.get("kind") != "image":
        raise ExportError(f"preprocessing must be {expected}, as the page draws images; got {preprocessing!r}")
    sizes = [preprocessing.get(key, 1 if key == "channels" else None) for key in ("height", "width", "channels")]
    if not all(isinstance(size, int) and size > 0 for size in sizes) or sizes[2] != 1:
        raise ExportError(
            f"preprocessing must be {expected} with positive integer H and W (the page draws grayscale); "
            f"got {preprocessing!r}"
        )
    features = model_input["shape"][1:]
    if all(size > 0 for size in features) and math.prod(features) != sizes[0] * sizes[1]:
        raise ExportError(
            f"preprocessing makes {sizes[0]}×{sizes[1]} = {sizes[0] * sizes[1]} values, but the model's input "
            f"'{model_input['name']}' of shape {model_input['shape']} takes {math.prod(features)} per example"
        )


def _package_file(folder: str, name: str) -> bytes:
    path = PACKAGE / folder / name
    if not path.is_file():
        raise ExportError(f"the emberflow installation lacks {path.relative_to(PACKAGE.parent)}; reinstall emberflow")
    return path.read_bytes()
