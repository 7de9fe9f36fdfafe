"""Calibration: the float lite file run over sample batches in our own runtime, every tensor's range recorded.

Running the float file (rather than the IR) sees every tensor the lowering made, including ones with no
IR value (a FULLY_CONNECTED's output before its TANH), with the same float math, keyed by tensor index.
``lite_runtime.Interpreter(experimental_preserve_all_tensors=True)`` gives each intermediate its own
buffer, as LiteRT's flag of the same name does, so ``get_tensor`` reads any of them after ``invoke``;
LiteRT itself is not needed to quantize.
"""

from __future__ import annotations

import numpy as np

from exporter.errors import ExportError

DEFAULT_BATCH = 64
_SOURCES = "a NumPy array, a tf.data.Dataset, or a generator (or a function returning one) of input batches"


def batches(data, input_shape: tuple | None = None, batch_size: int = DEFAULT_BATCH):
    """Float32 input batches from ``data``: a NumPy array (or tensor), a ``tf.data.Dataset``, an iterable
    or generator of batches, or a callable returning one (TensorFlow's ``representative_dataset``).

    An item ``(x, y)`` or ``[x]`` gives ``x``; a dict gives its first value. With ``input_shape`` (the
    model input's shape, ``None`` for the batch dim) a single sample gets a batch axis and any other
    shape raises an ``ExportError`` naming the expected and the received shape.
    """
    if data is None:
        raise ExportError(f"calibration data is missing: pass {_SOURCES}")
    if callable(data) and not hasattr(data, "__iter__"):
        data = data()
    if isinstance(data, np.ndarray) or _is_tensor(data):
        array = _as_batch(data, input_shape, "calibration array")
        for start in range(0, len(array), batch_size):
            yield array[start : start + batch_size]
        return
    if not hasattr(data, "__iter__") or isinstance(data, (str, bytes)):
        raise ExportError(f"calibration data of type {type(data).__name__} is not usable: pass {_SOURCES}")
    for number, item in enumerate(data):
        while isinstance(item, (tuple, list)) and item:
            item = item[0]
        if isinstance(item, dict):
            item = next(iter(item.values()))
        yield _as_batch(item, input_shape, f"calibration batch {number}")


def _is_tensor(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "numpy")


def _as_batch(item, input_shape, what: str) -> np.ndarray:
    try:
        array = np.asarray(item.numpy() if _is_tensor(item) else item, np.float32)
    except (TypeError, ValueError) as error:
        raise ExportError(f"{what}: cannot be read as a float32 array ({error})") from error
    if input_shape is not None:
        given = tuple(array.shape)  # the error reports what the caller passed, not the batched view of it
        if array.ndim == len(input_shape) - 1:
            array = array[np.newaxis]
        expected = tuple(input_shape[1:])
        if array.ndim != len(input_shape) or any(e is not None and e != d for e, d in zip(expected, array.shape[1:])):
            shown = ", ".join("None" if d is None else str(d) for d in input_shape)
            raise ExportError(f"{what}: expected inputs of shape ({shown}), got {given}")
    if not np.isfinite(array).all():
        raise ExportError(f"{what}: holds NaN or infinite values; calibration needs typical, finite inputs")
    return array


class FileRunner:
    """A lite file in ``lite_runtime`` with every tensor kept: ``run(batch)`` returns the interpreter, whose
    ``get_tensor`` then reads any intermediate. A float batch fed to an int8 input is quantized with that
    input's scale and zero point. Re-plans only when the batch shape changes."""

    def __init__(self, data: bytes):
        from lite_runtime import Interpreter  # noqa: PLC0415 - the exporter's only use of the runtime

        self.interpreter = Interpreter(model_content=data, experimental_preserve_all_tensors=True)
        self.input = self.interpreter.get_input_details()[0]
        self._shape = None

    def run(self, batch: np.ndarray):
        from exporter.quantize.params import quantize_affine  # noqa: PLC0415

        index = self.input["index"]
        if batch.shape != self._shape:
            self.interpreter.resize_tensor_input(index, batch.shape)
            self.interpreter.allocate_tensors()
            self._shape = batch.shape
        if self.input["dtype"] == np.int8:
            batch = quantize_affine(batch, *self.input["quantization"])
        self.interpreter.set_tensor(index, batch.astype(self.input["dtype"]))
        self.interpreter.invoke()
        return self.interpreter


def ranges(float_data: bytes, model, calibration) -> dict[int, tuple[float, float]]:
    """Tensor index -> (min, max) over the calibration batches, for every non-constant float32 tensor of
    ``model`` (the ``LiteModel`` that ``float_data`` was serialized from: same tensor indices)."""
    from exporter.lite.schema import TensorType  # noqa: PLC0415

    if len(model.inputs) != 1:
        raise ExportError(f"int8 quantization calibrates models with one input; this model has {len(model.inputs)}")
    wanted = [i for i, t in enumerate(model.tensors) if t.buffer == 0 and t.type == TensorType.FLOAT32]
    input_shape = model.tensors[model.inputs[0]].shape
    runner = FileRunner(float_data)
    found: dict[int, tuple[float, float]] = {}
    count = 0
    for batch in batches(calibration, input_shape):
        if batch.size == 0:
            continue
        count += 1
        interpreter = runner.run(batch)
        for index in wanted:
            values = interpreter.get_tensor(index)
            if values.size == 0:
                continue
            low, high = float(values.min()), float(values.max())
            if index in found:
                low, high = min(low, found[index][0]), max(high, found[index][1])
            found[index] = (low, high)
    if count == 0:
        raise ExportError(f"int8 quantization: the calibration data held no batches; pass {_SOURCES}")
    return found
