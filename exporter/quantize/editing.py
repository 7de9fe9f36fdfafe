"""Editing a ``LiteModel`` in place: reading constants, adding tensors and operators, dropping what is unused.

Quantization is a pass over the lowered lite graph (STYLE.md rule 16): the lowerings know nothing of it.
"""

from __future__ import annotations

import numpy as np

from exporter.lite.builder import LiteModel, LiteOperator, LiteTensor, Quantization
from exporter.lite.model import MIN_RUNTIME_VERSION_BYTES
from exporter.lite.schema import BuiltinOperator, TensorType
from exporter.lite.versions import min_runtime_version

NUMPY_OF = {
    TensorType.FLOAT32: np.float32,
    TensorType.FLOAT16: np.float16,
    TensorType.INT8: np.int8,
    TensorType.INT32: np.int32,
    TensorType.INT64: np.int64,
    TensorType.UINT8: np.uint8,
    TensorType.INT16: np.int16,
    TensorType.BOOL: np.bool_,
}


def code_of(model: LiteModel, operator: LiteOperator) -> BuiltinOperator:
    return BuiltinOperator(model.operator_codes[operator.opcode_index][0])


def set_code(model: LiteModel, operator: LiteOperator, code: int, version: int) -> None:
    """Points ``operator`` at the (code, version) operator code, adding it when new."""
    key = (int(code), int(version))
    if key not in model.operator_codes:
        model.operator_codes.append(key)
    operator.opcode_index = model.operator_codes.index(key)


def make_operator(model: LiteModel, code: int, inputs, outputs, version: int = 1, **options) -> LiteOperator:
    operator = LiteOperator(0, list(inputs), list(outputs), options)
    set_code(model, operator, code, version)
    return operator


def is_constant(model: LiteModel, index: int) -> bool:
    return index >= 0 and model.tensors[index].buffer != 0


def constant(model: LiteModel, index: int) -> np.ndarray:
    """The array a constant tensor holds."""
    tensor = model.tensors[index]
    shape = tuple(1 if d is None else d for d in tensor.shape)
    return np.frombuffer(model.buffers[tensor.buffer], dtype=NUMPY_OF[TensorType(tensor.type)]).reshape(shape)


def add_tensor(model: LiteModel, name: str, shape, type_: int, data: np.ndarray | None = None,
               quantization: Quantization | None = None) -> int:
    """A new tensor (a constant when ``data`` is given); returns its index."""
    buffer = 0
    if data is not None:
        buffer = model.add_buffer(np.ascontiguousarray(data, dtype=np.asarray(data).dtype.newbyteorder("<")).tobytes())
    model.tensors.append(LiteTensor(_unique(model, name), tuple(shape), int(type_), buffer, quantization))
    return len(model.tensors) - 1


def _unique(model: LiteModel, name: str) -> str:
    names = {tensor.name for tensor in model.tensors}
    candidate, count = name, 0
    while candidate in names:
        count += 1
        candidate = f"{name}_{count}"
    return candidate


def consumers(model: LiteModel) -> dict[int, list[tuple[LiteOperator, int]]]:
    """Tensor index -> [(operator, input position)] reading it."""
    readers: dict[int, list] = {}
    for operator in model.operators:
        for position, index in enumerate(operator.inputs):
            if index >= 0:
                readers.setdefault(index, []).append((operator, position))
    return readers


def finish(model: LiteModel) -> dict[int, int]:
    """Drops tensors and buffers nothing refers to any more, refreshes ``min_runtime_version`` and the
    operator-code list; returns the old -> new tensor index map."""
    used_codes = sorted({operator.opcode_index for operator in model.operators})
    code_map = {old: new for new, old in enumerate(used_codes)}
    model.operator_codes = [model.operator_codes[old] for old in used_codes]
    for operator in model.operators:
        operator.opcode_index = code_map[operator.opcode_index]

    used = set(model.inputs) | set(model.outputs)
    for operator in model.operators:
        used.update(index for index in (*operator.inputs, *operator.outputs) if index >= 0)
    tensor_map = {old: new for new, old in enumerate(sorted(used))}
    model.tensors = [model.tensors[old] for old in sorted(used)]
    for operator in model.operators:
        operator.inputs = [tensor_map[i] if i >= 0 else i for i in operator.inputs]
        operator.outputs = [tensor_map[i] for i in operator.outputs]
    model.inputs = [tensor_map[i] for i in model.inputs]
    model.outputs = [tensor_map[i] for i in model.outputs]
    model.signature_inputs = [(name, tensor_map[i]) for name, i in model.signature_inputs]
    model.signature_outputs = [(name, tensor_map[i]) for name, i in model.signature_outputs]

    version = min_runtime_version(model.operator_codes).encode().ljust(MIN_RUNTIME_VERSION_BYTES, b"\0")
    metadata = [
        (name, version if name == "min_runtime_version" else model.buffers[index]) for name, index in model.metadata
    ]
    tensor_data = [model.buffers[tensor.buffer] if tensor.buffer else b"" for tensor in model.tensors]
    model.buffers, model._buffer_of = [b""], {}
    for tensor, data in zip(model.tensors, tensor_data):
        tensor.buffer = model.add_buffer(data)
    model.metadata = [(name, model.add_buffer(data)) for name, data in metadata]
    return tensor_map
