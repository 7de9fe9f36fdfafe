"""Verification: run the model and each exported file on the same inputs and compare the outputs.

Lite files run in real LiteRT (``ai-edge-litert``) and ONNX files in onnxruntime; both are imported
only here and only when a file of that kind is verified. A lite file is first read by ``lite_runtime``'s
validating reader (``check_lite_file``), so a damaged file is reported by its path and bad field, never by
a peer's generic complaint; ``litert_interpreter`` is the one place that opens LiteRT.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from exporter.errors import ExportError
from exporter.quantize.params import dequantize, quantize_affine

FLOAT_TOLERANCE = 1e-4  # relative: what a float32 export may differ by before verification fails
# The same, relative to the outputs' largest magnitude, for quantized lite files: float16 weights keep
# ~3 significant digits; int8 steps are 1/255 of a range (a softmax output's own step is 1/256), and a
# few steps of rounding accumulated through the layers stay well inside these bounds.
QUANTIZED_TOLERANCE = {"none": FLOAT_TOLERANCE, "float16": 1e-2, "dynamic": 0.1, "int8": 0.25}


@dataclass
class Verification:
    """One exported file compared with the model it came from."""

    format: str
    path: str
    bytes: int
    max_abs_diff: float | None
    mean_abs_diff: float | None
    top1_agreement: float | None
    accuracy: float | None
    passed: bool
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def file_format(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".lite", ".tflite"):
        return "lite"
    if suffix == ".onnx":
        return "onnx"
    raise ExportError(f"{path}: unknown exported file type {suffix!r} (expected .lite, .tflite or .onnx)")


def lite_file_error(path, error: Exception) -> ExportError:
    """``error`` from ``lite_runtime`` about the file at ``path``, as ``PATH: <the bad field and why>``."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    message = message.removeprefix("lite file: ")
    return ExportError(message if message.startswith(str(path)) else f"{path}: {message}")


def check_lite_file(path) -> None:
    """Reads the lite file at ``path`` with ``lite_runtime``'s validating reader; a file it cannot trust raises
    ``ExportError`` naming the path and the bad field ("model.lite: Model vtable size spans bytes ...")."""
    from lite_runtime.errors import LiteFormatError  # noqa: PLC0415
    from lite_runtime.reader import read_model  # noqa: PLC0415

    try:
        read_model(Path(path).read_bytes())
    except LiteFormatError as error:
        raise lite_file_error(path, error) from None


@contextlib.contextmanager
def native_stderr_silenced():
    """Points file descriptor 2 at the null device for the block, then restores it.

    LiteRT's C++ logs "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight to descriptor 2
    (Python's ``sys.stderr`` never sees it) when an interpreter first allocates, which would break the
    command line's promise of one stderr line. Python's own writes are flushed first so none is lost.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def litert_interpreter(path, **options):
    """LiteRT's ``Interpreter`` for the lite file at ``path`` (checked by ``check_lite_file`` first), its
    tensors allocated once with LiteRT's native log silenced (the delegate is created on that first
    allocation; later ones log nothing)."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - optional; ImportError tells the caller

    check_lite_file(path)
    with native_stderr_silenced():
        interpreter = Interpreter(model_path=str(path), **options)
        interpreter.allocate_tensors()
    return interpreter


def run_file(path, inputs: np.ndarray) -> np.ndarray:
    """The first output of an exported file on ``inputs`` (a batch), run by the ecosystem's own runtime."""
    kind = file_format(path)
    if kind == "onnx":
        try:
            import onnxruntime  # noqa: PLC0415 - optional, for verification only
        except ImportError as error:
            raise ExportError("verifying ONNX files needs onnxruntime: pip install 'emberflow[onnx]'") from error
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return session.run(None, {name: inputs.astype(np.float32)})[0]
    try:
        interpreter = litert_interpreter(path)
    except ImportError as error:
        raise ExportError("verifying lite files needs LiteRT: pip install ai-edge-litert") from error
    detail = interpreter.get_input_details()[0]
    if tuple(detail["shape"]) != inputs.shape:
        interpreter.resize_tensor_input(detail["index"], inputs.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], _to_input_type(inputs, detail))
    interpreter.invoke()
    output = interpreter.get_output_details()[0]
    values = interpreter.get_tensor(output["index"])
    if output["dtype"] == np.int8:  # an int8 output (inference_output_type="int8"): compare real values
        values = dequantize(values, *output["quantization"])
    return values


def _to_input_type(inputs: np.ndarray, detail: dict) -> np.ndarray:
    """Float inputs as the file's input tensor takes them: quantized with its scale and zero point if int8."""
    if detail["dtype"] == np.int8:
        return quantize_affine(inputs, *detail["quantization"])
    return inputs.astype(detail["dtype"])


def verify_file(reference: np.ndarray, path, inputs: np.ndarray, labels=None, tolerance: float = FLOAT_TOLERANCE) -> Verification:
    """Compares ``path``'s outputs with the model's ``reference`` outputs on the same ``inputs``."""
    kind = file_format(path)
    size = os.path.getsize(path)
    try:
        outputs = run_file(path, inputs).astype(np.float64)
    except ExportError as error:
        return Verification(kind, str(path), size, None, None, None, None, False, str(error))
    reference = reference.astype(np.float64)
    if outputs.shape != reference.shape:
        return Verification(kind, str(path), size, None, None, None, None, False, f"output shape {outputs.shape} differs from the model's {reference.shape}")
    difference = np.abs(outputs - reference)
    scale = max(float(np.abs(reference).max()), 1e-12)
    agreement = float((outputs.argmax(-1) == reference.argmax(-1)).mean()) if reference.ndim > 1 else None
    accuracy = float((outputs.argmax(-1) == np.asarray(labels).reshape(-1)).mean()) if labels is not None and reference.ndim > 1 else None
    passed = float(difference.max()) <= tolerance * scale
    return Verification(kind, str(path), size, float(difference.max()), float(difference.mean()), agreement, accuracy, passed)


def format_table(rows: list[Verification]) -> str:
    """The verification table the CLI prints."""
    header = f"{'format':<8} {'bytes':>10} {'max abs diff':>13} {'mean abs diff':>14} {'top-1 agree':>12} {'accuracy':>9}  result"
    lines = [header, "-" * len(header)]
    for row in rows:
        def number(value, digits=3):
            return "—" if value is None else (f"{value:.2e}" if digits == "e" else f"{value:.{digits}f}")

        result = "ok" if row.passed else f"FAILED {row.note}".rstrip()
        lines.append(
            f"{row.format:<8} {row.bytes:>10,} {number(row.max_abs_diff, 'e'):>13} {number(row.mean_abs_diff, 'e'):>14} "
            f"{number(row.top1_agreement):>12} {number(row.accuracy):>9}  {result}"
        )
    return "\n".join(lines)
