"""``emberflow run``: an exported file's outputs on inputs from a .npy file, as a TFLite user would get them.

A lite file runs in our ``lite_runtime`` (``emberflow bench`` also opens it in LiteRT), an ONNX file in
onnxruntime, imported only when needed. Inputs are taken the way TFLite's Python API takes them: a float
input for an int8 input tensor is quantized with that tensor's scale and zero point, a single sample
without its batch axis gets one, several rows resize a dynamic batch dimension (or are run in chunks of
a fixed one), and int8 outputs are dequantized so that every variant of a model gives comparable values.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporter.errors import ExportError
from exporter.files import write_atomically
from exporter.quantize.params import dequantize, quantize_affine
from exporter.verify import file_format, lite_file_error, litert_interpreter

SUMMARY_ROWS = 5  # rows of each output the summary shows; the file holds them all
_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
               "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
               "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_}  # fmt: skip


@dataclass(frozen=True)
class TensorSpec:
    """An input or output of an exported file: ``shape`` has ``None`` for a dynamic dimension, and
    ``quantization`` is (scale, zero point) for a quantized integer tensor, else ``None``."""

    name: str
    shape: tuple
    dtype: np.dtype
    quantization: tuple[float, int] | None = None

    def describe(self) -> str:
        """``(batch, 28, 28) float32``, as error messages show the expected input."""
        dims = ["batch" if d is None and i == 0 else ("?" if d is None else str(d)) for i, d in enumerate(self.shape)]
        return f"({', '.join(dims)}{',' if len(dims) == 1 else ''}) {self.dtype.name}"


class _LiteExecutable:
    """A lite file in an interpreter with TFLite's Python API (ours, or LiteRT's for ``bench``)."""

    def __init__(self, interpreter):
        self._interpreter = interpreter
        self.inputs = [self._spec(detail) for detail in self._interpreter.get_input_details()]
        self.outputs = [self._spec(detail) for detail in self._interpreter.get_output_details()]

    @staticmethod
    def _spec(detail: dict) -> TensorSpec:
        signature = detail["shape_signature"] if len(detail["shape_signature"]) else detail["shape"]
        scale, zero_point = detail["quantization"]
        quantized = scale != 0 and np.issubdtype(detail["dtype"], np.integer)
        shape = tuple(None if d == -1 else int(d) for d in signature)
        return TensorSpec(detail["name"], shape, np.dtype(detail["dtype"]), (scale, zero_point) if quantized else None)

    def runner(self, shapes: list[tuple]):
        """A function from input arrays of ``shapes`` to the output arrays: set_tensor, invoke, get_tensor."""
        interpreter = self._interpreter
        inputs = [detail["index"] for detail in interpreter.get_input_details()]
        for index, detail, shape in zip(inputs, interpreter.get_input_details(), shapes):
            if tuple(detail["shape"]) != tuple(shape):
                interpreter.resize_tensor_input(index, shape)
        interpreter.allocate_tensors()
        outputs = [detail["index"] for detail in interpreter.get_output_details()]

        def run(arrays):
            for index, array in zip(inputs, arrays):
                interpreter.set_tensor(index, array)
            interpreter.invoke()
            return [interpreter.get_tensor(index) for index in outputs]

        return run


class _OnnxExecutable:
    """An ONNX file in an onnxruntime session on the CPU."""

    def __init__(self, path, threads: int | None = None):
        try:
            import onnxruntime  # noqa: PLC0415 - optional: only ONNX files need it
        except ImportError as error:
            raise ExportError("running ONNX files needs onnxruntime: pip install 'emberflow[onnx]'") from error
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own assorted errors; one clear line instead
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ExportError(f"{path}: not a runnable ONNX file ({message})") from None
        self.inputs = [self._spec(value) for value in self._session.get_inputs()]
        self.outputs = [self._spec(value) for value in self._session.get_outputs()]

    @staticmethod
    def _spec(value) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else None for d in value.shape)
        if value.type not in _ONNX_TYPES:
            raise ExportError(f"ONNX tensor '{value.name}' has type {value.type}, which emberflow run does not handle")
        return TensorSpec(value.name, shape, np.dtype(_ONNX_TYPES[value.type]))

    def runner(self, shapes: list[tuple]):
        """A function from input arrays to the output arrays (onnxruntime takes any shape the file allows)."""
        names = [spec.name for spec in self.inputs]
        return lambda arrays: self._session.run(None, dict(zip(names, arrays)))


def open_exported(path, system: str = "emberflow", threads: int | None = None):
    """An exported file opened in ``system`` (``emberflow`` or ``litert`` for lite files, ``onnxruntime``
    for ONNX files); it has ``inputs`` and ``outputs`` (``TensorSpec`` lists) and ``runner(shapes)``."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    kind = file_format(path)
    runtimes = {"lite": ("emberflow", "litert"), "onnx": ("onnxruntime",)}[kind]
    if system not in runtimes:
        raise ExportError(f"{path}: a {kind} file runs in {' or '.join(runtimes)}, not {system}")
    if system == "onnxruntime":
        return _OnnxExecutable(path, threads)
    if system == "litert":  # ImportError (the optional peer is missing) tells the caller
        return _LiteExecutable(litert_interpreter(path, **({"num_threads": threads} if threads else {})))
    from lite_runtime import Interpreter  # noqa: PLC0415
    from lite_runtime.errors import LiteFormatError  # noqa: PLC0415

    try:
        return _LiteExecutable(Interpreter(model_path=str(path)))
    except LiteFormatError as error:
        raise lite_file_error(path, error) from None


@dataclass
class RunResult:
    """What ``run_exported`` computed: one array per output, in the file's output order."""

    path: str
    format: str
    rows: int
    outputs: list[TensorSpec]
    values: list[np.ndarray]
    notes: list[str]


def run_exported(path, inputs) -> RunResult:
    """Runs a lite file (in ``lite_runtime``) or an ONNX file (in onnxruntime) on ``inputs``.

    Args:
        path: a .lite/.tflite or .onnx file.
        inputs: one array for a single-input file, or ``{input name: array}`` (or an .npz archive).

    Example:
        >>> run_exported("mnist.lite", x_test[:8]).values[0].shape
        (8, 10)
    """
    path = Path(path)
    kind = file_format(path)
    executable = open_exported(path, "onnxruntime" if kind == "onnx" else "emberflow")
    arrays, notes = _prepare_inputs(path, executable.inputs, inputs)
    rows = arrays[0].shape[0]
    chunk = _chunk_rows(path, executable.inputs, rows)
    from lite_runtime.errors import LiteFormatError  # noqa: PLC0415

    try:
        run = executable.runner([(chunk, *array.shape[1:]) for array in arrays])
        pieces = [run([array[start : start + chunk] for array in arrays]) for start in range(0, rows, chunk)]
    except LiteFormatError as error:  # a file that reads but cannot be prepared or run: name the file
        raise lite_file_error(path, error) from None
    values = [np.concatenate(parts) if len(parts) > 1 else parts[0] for parts in zip(*pieces)]
    for k, spec in enumerate(executable.outputs):
        if spec.quantization is not None:
            values[k] = dequantize(values[k], *spec.quantization)
            notes.append(f"output '{spec.name}' is {spec.dtype.name}: dequantized with scale {spec.quantization[0]:.6g}, "
                         f"zero point {spec.quantization[1]}")  # fmt: skip
    return RunResult(str(path), kind, rows, executable.outputs, values, notes)


def _prepare_inputs(path: Path, specs: list[TensorSpec], inputs) -> tuple[list[np.ndarray], list[str]]:
    """The input arrays in the file's order, batched and in the dtype each input tensor takes."""
    names = [spec.name for spec in specs]
    if any(not spec.shape for spec in specs):
        raise ExportError(f"{path}: emberflow run takes inputs with a batch axis; the file has a scalar input")
    if isinstance(inputs, (dict, np.lib.npyio.NpzFile)):  # an .npz archive holds named inputs
        given = {name: inputs[name] for name in inputs}
        if sorted(given) != sorted(names):
            raise ExportError(f"{path}: the file's inputs are {sorted(names)}, got arrays named {sorted(given)}")
        inputs = [given[name] for name in names]
    elif len(specs) != 1:
        raise ExportError(f"{path}: the file takes {len(specs)} inputs {names}; pass an .npz with arrays of those names")
    else:
        inputs = [inputs]
    arrays, notes = [], []
    for spec, array in zip(specs, inputs):
        array, note = _as_input(path, spec, np.asarray(array))
        arrays.append(array)
        notes += [note] if note else []
    rows = {array.shape[0] for array in arrays}
    if len(rows) != 1:
        raise ExportError(f"{path}: the inputs have different numbers of rows {sorted(rows)}")
    if 0 in rows:
        raise ExportError(f"{path}: the inputs have no rows")
    return arrays, notes


def _as_input(path: Path, spec: TensorSpec, array: np.ndarray) -> tuple[np.ndarray, str]:
    """One input: given a batch axis if it is a single sample, checked against the spec, converted."""
    if array.ndim == len(spec.shape) - 1 and _fits(array.shape, spec.shape[1:]):
        array = array[np.newaxis]
    if array.ndim != len(spec.shape) or not _fits(array.shape[1:], spec.shape[1:]):
        raise ExportError(f"{path}: input '{spec.name}' expects {spec.describe()}, got {array.shape} {array.dtype}")
    given_floats, takes_floats = np.issubdtype(array.dtype, np.floating), np.issubdtype(spec.dtype, np.floating)
    if spec.quantization is not None and spec.dtype == np.int8 and given_floats:
        scale, zero_point = spec.quantization
        note = f"input '{spec.name}' is int8: quantized with scale {scale:.6g}, zero point {zero_point}"
        return quantize_affine(array, scale, zero_point), note
    if array.dtype == spec.dtype or (takes_floats and given_floats):
        return array.astype(spec.dtype, copy=False), ""
    if spec.quantization is None and np.issubdtype(spec.dtype, np.integer) and np.issubdtype(array.dtype, np.integer):
        converted = array.astype(spec.dtype)  # indices: any integer type whose values fit
        if np.array_equal(converted, array):
            return converted, ""
    wanted = "float" if takes_floats else spec.dtype.name
    if spec.quantization is not None and spec.dtype == np.int8:
        wanted = "float or int8"
    raise ExportError(f"{path}: input '{spec.name}' {spec.describe()} takes {wanted} values, got {array.dtype}")


def _fits(shape: tuple, expected: tuple) -> bool:
    return len(shape) == len(expected) and all(e is None or e == d for d, e in zip(shape, expected))


def _chunk_rows(path: Path, specs: list[TensorSpec], rows: int) -> int:
    """How many rows one run takes: all of them for a dynamic batch, else the file's fixed batch."""
    fixed = {spec.shape[0] for spec in specs if spec.shape and spec.shape[0] is not None}
    if not fixed:
        return rows
    batch = fixed.pop()
    if rows % batch:
        raise ExportError(f"{path}: the file's batch is fixed at {batch}; got {rows} rows, which is not a multiple of it")
    return batch


def save_outputs(result: RunResult, path) -> Path:
    """Writes the outputs atomically: one output as .npy, several as an .npz by output name (never pickled).
    Returns the path written (``Y.npz`` for several outputs asked for as ``Y.npy``)."""
    path, buffer = Path(path), io.BytesIO()
    if len(result.values) == 1 and path.suffix.lower() != ".npz":
        np.lib.format.write_array(buffer, result.values[0], allow_pickle=False)
    else:
        path = path.with_suffix(".npz")
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for spec, value in zip(result.outputs, result.values):
                with archive.open(f"{spec.name}.npy", "w") as member:
                    np.lib.format.write_array(member, value, allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(str(path), buffer.getvalue())
    return path


def format_result(result: RunResult, top: int = 3) -> str:
    """The summary ``emberflow run`` prints: each output's shape, and for a classifier the top classes of
    the first rows with their probabilities (the largest values, for (rows, n) outputs of other kinds)."""
    runtime = "onnxruntime" if result.format == "onnx" else "lite_runtime"
    lines = [f"{result.path}: {result.rows} row(s) run in {runtime}"]
    lines += [f"  ({note})" for note in result.notes]
    for spec, value in zip(result.outputs, result.values):
        lines.append(f"output '{spec.name}': shape {value.shape} {value.dtype}")
        if value.ndim == 2 and value.shape[1] >= 2 and top > 0:
            probabilities = _are_probabilities(value)
            shown = min(top, value.shape[1])
            lines.append(f"  top-{shown} classes per row (probability):" if probabilities else f"  top-{shown} per row, index (value):")
            for row, scores in enumerate(value[:SUMMARY_ROWS]):
                best = np.argsort(-scores, kind="stable")[:top]
                lines.append(f"  row {row}: " + ", ".join(f"{c} ({scores[c]:.4f})" for c in best))
        elif value.size:
            lines.append(f"  values in [{value.min():.6g}, {value.max():.6g}], mean {value.mean():.6g}")
        if value.ndim == 2 and value.shape[0] > SUMMARY_ROWS and top > 0:
            lines.append(f"  ... {value.shape[0] - SUMMARY_ROWS} more row(s)")
    return "\n".join(lines)


def _are_probabilities(value: np.ndarray) -> bool:
    """Rows of non-negative values summing to 1 (an int8 softmax output's rounding leaves it within 5%)."""
    return bool(value.min() >= 0 and np.allclose(value.sum(axis=1), 1.0, atol=0.05))
