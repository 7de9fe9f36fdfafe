"""Reading a lite (TFLite-schema) file into plain Python records, validating every offset, index and size.

Nothing in the file is trusted: every table, vtable, vector and string is checked to lie inside the
file before it is read, every index (buffer, operator code, tensor) is checked against its table, and
constant data must be exactly as long as its tensor's shape says. Any problem raises
``LiteFormatError`` naming the field, so a hostile or truncated file never reaches an ``IndexError``,
``struct.error`` or a giant allocation. Constant tensors are read-only NumPy views of the file's bytes.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from typing import NamedTuple

import numpy as np

from lite_runtime import schema
from lite_runtime.errors import LiteFormatError

MAX_ELEMENTS = 2**31 - 1  # TFLite indexes tensors with int32 element counts
MAX_RANK = 32  # far above what TFLite's kernels take (6), and within what NumPy can hold (64)
_SCALARS = {"int8": "<b", "uint8": "<B", "bool": "<B", "int16": "<h", "uint16": "<H", "int32": "<i",
            "uint32": "<I", "int64": "<q", "uint64": "<Q", "float32": "<f"}  # fmt: skip


class TensorSpec(NamedTuple):
    """One tensor of the subgraph as the file declares it."""

    index: int
    name: str
    type: int
    dtype: np.dtype
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    data: np.ndarray | None  # constant data: a read-only view of the file
    scales: np.ndarray
    zero_points: np.ndarray
    quantized_dimension: int


class OperatorSpec(NamedTuple):
    """One operator: its builtin code, tensor indices (-1 for an absent optional input) and options."""

    index: int
    code: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict


class ModelSpec(NamedTuple):
    """The validated contents of a lite file (subgraph 0)."""

    tensors: list[TensorSpec]
    operators: list[OperatorSpec]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    signatures: dict[str, dict[str, dict[str, int]]]
    buffer_count: int


class _Bytes:
    """Bounds-checked little-endian reads from the file."""

    def __init__(self, data):
        self.data = data
        self.size = len(data)

    def need(self, position: int, length: int, what: str) -> None:
        if position < 0 or length < 0 or position + length > self.size:
            raise LiteFormatError(
                f"lite file: {what} spans bytes {position}..{position + length}, outside the file ({self.size} bytes)"
            )

    def scalar(self, position: int, kind: str, what: str):
        fmt = _SCALARS[kind]
        self.need(position, struct.calcsize(fmt), what)
        value = struct.unpack_from(fmt, self.data, position)[0]
        return bool(value) if kind == "bool" else value


class _Table:
    """One flatbuffer table: its fields read by vtable slot, every position checked."""

    def __init__(self, data: _Bytes, position: int, what: str):
        self.data, self.position, self.what = data, position, what
        vtable = position - data.scalar(position, "int32", f"{what} vtable offset")
        self.vtable_size = data.scalar(vtable, "uint16", f"{what} vtable size")
        self.object_size = data.scalar(vtable + 2, "uint16", f"{what} object size")
        if self.vtable_size < 4 or self.vtable_size % 2:
            raise LiteFormatError(f"lite file: {what} vtable size {self.vtable_size} is not an even number >= 4")
        data.need(vtable, self.vtable_size, f"{what} vtable")
        data.need(position, max(self.object_size, 4), f"{what} object")
        self.vtable = vtable

    def _field(self, slot: int, width: int, name: str) -> int:
        entry = 4 + 2 * slot
        if entry + 2 > self.vtable_size:
            return 0
        offset = self.data.scalar(self.vtable + entry, "uint16", f"{self.what}.{name} field offset")
        if offset and offset + width > self.object_size:
            raise LiteFormatError(f"lite file: {self.what}.{name} at byte {offset} lies outside its table")
        return offset

    def scalar(self, slot: int, kind: str, default, name: str):
        offset = self._field(slot, struct.calcsize(_SCALARS[kind]), name)
        return self.data.scalar(self.position + offset, kind, f"{self.what}.{name}") if offset else default

    def _target(self, slot: int, name: str) -> int | None:
        offset = self._field(slot, 4, name)
        if not offset:
            return None
        at = self.position + offset
        return at + self.data.scalar(at, "uint32", f"{self.what}.{name} offset")

    def table(self, slot: int, name: str) -> _Table | None:
        target = self._target(slot, name)
        return None if target is None else _Table(self.data, target, f"{self.what}.{name}")

    def _vector(self, slot: int, item_size: int, name: str) -> tuple[int, int] | None:
        target = self._target(slot, name)
        if target is None:
            return None
        length = self.data.scalar(target, "uint32", f"{self.what}.{name} length")
        self.data.need(target + 4, length * item_size, f"{self.what}.{name} ({length} items)")
        return target + 4, length

    def numbers(self, slot: int, dtype, name: str) -> np.ndarray:
        dtype = np.dtype(dtype).newbyteorder("<")
        vector = self._vector(slot, dtype.itemsize, name)
        if vector is None:
            return np.zeros(0, dtype)
        start, length = vector
        return np.frombuffer(self.data.data, dtype=dtype, count=length, offset=start)

    def has(self, slot: int, name: str) -> bool:
        return bool(self._field(slot, 4, name))

    def tables(self, slot: int, name: str) -> list[_Table]:
        vector = self._vector(slot, 4, name)
        if vector is None:
            return []
        start, length = vector
        result = []
        for i in range(length):
            at = start + 4 * i
            result.append(_Table(self.data, at + self.data.scalar(at, "uint32", f"{name}[{i}]"), f"{name}[{i}]"))
        return result

    def string(self, slot: int, name: str) -> str | None:
        vector = self._vector(slot, 1, name)
        if vector is None:
            return None
        start, length = vector
        return bytes(self.data.data[start : start + length]).decode("utf-8", errors="replace")


def open_model_bytes(model_path=None, model_content=None):
    """The file's bytes: a read-only memory map of ``model_path`` or ``model_content`` itself."""
    if (model_path is None) == (model_content is None):
        raise ValueError("Interpreter needs exactly one of model_path= or model_content=")
    if model_content is not None:
        return memoryview(model_content).cast("B") if not isinstance(model_content, bytes) else model_content
    with open(os.fspath(model_path), "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise LiteFormatError(f"lite file: {model_path} is empty")
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def read_model(data) -> ModelSpec:
    """Parses and validates lite file bytes (subgraph 0); raises ``LiteFormatError`` naming any bad field."""
    buffer = _Bytes(data)
    if buffer.size < 8 or bytes(data[4:8]) != schema.FILE_IDENTIFIER:
        raise LiteFormatError(
            f"lite file: bytes 4..8 are {bytes(data[4:8])!r}, not the identifier {schema.FILE_IDENTIFIER!r}"
        )
    root = buffer.scalar(0, "uint32", "root table offset")
    if not 8 <= root < buffer.size:
        raise LiteFormatError(f"lite file: root table offset {root} lies outside the file ({buffer.size} bytes)")
    model = _Table(buffer, root, "Model")
    version = model.scalar(schema.MODEL["version"], "uint32", 0, "version")
    if version != schema.SCHEMA_VERSION:
        raise LiteFormatError(f"lite file: Model.version is {version}, expected {schema.SCHEMA_VERSION}")
    buffers = [_buffer_data(buffer, table, i) for i, table in enumerate(model.tables(schema.MODEL["buffers"], "buffers"))]
    codes = [_operator_code(table, i) for i, table in enumerate(model.tables(schema.MODEL["operator_codes"], "operator_codes"))]
    subgraphs = model.tables(schema.MODEL["subgraphs"], "subgraphs")
    if not subgraphs:
        raise LiteFormatError("lite file: the model has no subgraphs")
    subgraph = subgraphs[0]
    tensors = [_tensor(table, i, buffers) for i, table in enumerate(subgraph.tables(schema.SUBGRAPH["tensors"], "tensors"))]
    count = len(tensors)
    inputs = _indices(subgraph.numbers(schema.SUBGRAPH["inputs"], np.int32, "inputs"), count, "subgraph input")
    outputs = _indices(subgraph.numbers(schema.SUBGRAPH["outputs"], np.int32, "outputs"), count, "subgraph output")
    operators = [
        _operator(table, i, codes, count) for i, table in enumerate(subgraph.tables(schema.SUBGRAPH["operators"], "operators"))
    ]
    _check_dataflow(tensors, operators, inputs, outputs)
    signatures = {}
    for i, table in enumerate(model.tables(schema.MODEL["signature_defs"], "signature_defs")):
        key = table.string(schema.SIGNATURE_DEF["signature_key"], "signature_key") or f"signature_{i}"
        index = table.scalar(schema.SIGNATURE_DEF["subgraph_index"], "uint32", 0, "subgraph_index")
        if index != 0:
            continue  # only subgraph 0 runs here; signatures of other subgraphs are not offered
        signatures[key] = {
            part: _tensor_map(table.tables(schema.SIGNATURE_DEF[part], part), count, f"signature '{key}' {part}")
            for part in ("inputs", "outputs")
        }
    return ModelSpec(tensors, operators, inputs, outputs, signatures, len(buffers))


def _buffer_data(data: _Bytes, table: _Table, index: int):
    offset = table.scalar(schema.BUFFER["offset"], "uint64", 0, "offset")
    if offset > 1:  # models over 2 GB keep their data outside the flatbuffer, addressed from the file start
        size = table.scalar(schema.BUFFER["size"], "uint64", 0, "size")
        data.need(offset, size, f"buffer {index} data")
        return offset, size
    vector = table._vector(schema.BUFFER["data"], 1, f"buffers[{index}].data")
    return (0, 0) if vector is None else vector


def _operator_code(table: _Table, index: int) -> int:
    deprecated = table.scalar(schema.OPERATOR_CODE["deprecated_builtin_code"], "int8", 0, "deprecated_builtin_code")
    builtin = table.scalar(schema.OPERATOR_CODE["builtin_code"], "int32", 0, "builtin_code")
    return max(deprecated, builtin)


def _tensor(table: _Table, index: int, buffers) -> TensorSpec:
    what = f"lite file: tensor {index}"
    type_code = table.scalar(schema.TENSOR["type"], "int8", 0, "type")
    if type_code not in schema.NUMPY_TYPES:
        known = schema.TensorType(type_code).name if type_code in schema.TensorType._value2member_map_ else type_code
        raise LiteFormatError(f"{what}: tensor type {known} is not supported (supported: "
                              f"{', '.join(schema.TensorType(t).name for t in schema.NUMPY_TYPES)})")
    dtype = np.dtype(schema.NUMPY_TYPES[type_code])
    shape = tuple(int(d) for d in table.numbers(schema.TENSOR["shape"], np.int32, "shape"))
    if len(shape) > MAX_RANK:
        raise LiteFormatError(f"{what}: shape has {len(shape)} dimensions, more than {MAX_RANK}")
    if any(d < 0 for d in shape):
        raise LiteFormatError(f"{what}: shape {list(shape)} has a negative dimension")
    if math.prod(shape) > MAX_ELEMENTS:
        raise LiteFormatError(f"{what}: shape {list(shape)} has more than {MAX_ELEMENTS} elements")
    signature = tuple(int(d) for d in table.numbers(schema.TENSOR["shape_signature"], np.int32, "shape_signature"))
    if signature and (len(signature) != len(shape) or any(s < -1 or (s >= 0 and s != d) for s, d in zip(signature, shape))):
        raise LiteFormatError(f"{what}: shape_signature {list(signature)} does not fit shape {list(shape)}")
    buffer_index = table.scalar(schema.TENSOR["buffer"], "uint32", 0, "buffer")
    if buffer_index >= len(buffers):
        raise LiteFormatError(f"{what}: buffer index {buffer_index} out of range (model has {len(buffers)} buffers)")
    start, size = buffers[buffer_index]
    data = None
    if size:
        expected = math.prod(shape) * dtype.itemsize
        if size != expected:
            raise LiteFormatError(
                f"{what}: buffer {buffer_index} holds {size} bytes, expected {expected} for shape {list(shape)} {dtype}"
            )
        data = np.frombuffer(table.data.data, dtype=dtype.newbyteorder("<"), count=math.prod(shape), offset=start)
        data = data.reshape(shape)
    scales, zero_points, dimension = np.zeros(0, np.float32), np.zeros(0, np.int64), 0
    quantization = table.table(schema.TENSOR["quantization"], "quantization")
    if quantization is not None:
        scales = quantization.numbers(schema.QUANTIZATION["scale"], np.float32, "scale").astype(np.float32)
        zero_points = quantization.numbers(schema.QUANTIZATION["zero_point"], np.int64, "zero_point").astype(np.int64)
        dimension = quantization.scalar(schema.QUANTIZATION["quantized_dimension"], "int32", 0, "quantized_dimension")
        if len(scales) > 1 and not (0 <= dimension < len(shape) and shape[dimension] == len(scales)):
            raise LiteFormatError(f"{what}: {len(scales)} scales do not fit quantized_dimension {dimension} of {list(shape)}")
        if len(zero_points) not in (0, 1, len(scales)):
            raise LiteFormatError(f"{what}: {len(zero_points)} zero points for {len(scales)} scales")
    name = table.string(schema.TENSOR["name"], "name") or f"tensor_{index}"
    return TensorSpec(index, name, type_code, dtype, shape, signature or shape, data, scales, zero_points, dimension)


def _indices(values: np.ndarray, count: int, what: str, optional: bool = False) -> tuple[int, ...]:
    result = tuple(int(v) for v in values)
    for value in result:
        if not (0 <= value < count or (optional and value == -1)):
            raise LiteFormatError(f"lite file: {what} tensor index {value} out of range (subgraph has {count} tensors)")
    return result


def _operator(table: _Table, index: int, codes: list[int], count: int) -> OperatorSpec:
    opcode_index = table.scalar(schema.OPERATOR["opcode_index"], "uint32", 0, "opcode_index")
    if opcode_index >= len(codes):
        raise LiteFormatError(
            f"lite file: operator {index}: opcode index {opcode_index} out of range (model has {len(codes)} operator codes)"
        )
    code = codes[opcode_index]
    name = schema.operator_name(code)
    inputs = _indices(table.numbers(schema.OPERATOR["inputs"], np.int32, "inputs"), count, f"operator {index} ({name}) input", True)
    outputs = _indices(table.numbers(schema.OPERATOR["outputs"], np.int32, "outputs"), count, f"operator {index} ({name}) output")
    return OperatorSpec(index, code, name, inputs, outputs, _options(table, index, code, name))


def _options(table: _Table, index: int, code: int, name: str) -> dict:
    if code not in schema.OPTIONS:
        return {}
    options_name, union_index, fields = schema.OPTIONS[code]
    written = table.scalar(schema.OPERATOR["builtin_options_type"], "uint8", 0, "builtin_options_type")
    options = table.table(schema.OPERATOR["builtin_options"], "builtin_options") if written else None
    if written not in (0, union_index):
        raise LiteFormatError(
            f"lite file: operator {index} ({name}): builtin_options_type {written}, expected {union_index} ({options_name})"
        )
    result = {}
    for slot, (field_name, kind, default) in enumerate(fields):
        if options is None:
            result[field_name] = default
        elif kind == "int32[]":
            result[field_name] = (
                tuple(int(v) for v in options.numbers(slot, np.int32, field_name)) if options.has(slot, field_name) else None
            )
        else:
            result[field_name] = options.scalar(slot, kind, default, field_name)
    return result


def _tensor_map(tables: list[_Table], count: int, what: str) -> dict[str, int]:
    result = {}
    for table in tables:
        index = table.scalar(schema.TENSOR_MAP["tensor_index"], "uint32", 0, "tensor_index")
        if index >= count:
            raise LiteFormatError(f"lite file: {what} tensor index {index} out of range (subgraph has {count} tensors)")
        result[table.string(schema.TENSOR_MAP["name"], "name") or f"tensor_{index}"] = index
    return result


def _check_dataflow(tensors, operators, inputs, outputs) -> None:
    """Every operator input exists when it runs; no tensor is written twice or is both constant and computed."""
    available = {t.index for t in tensors if t.data is not None} | set(inputs)
    for operator in operators:
        for tensor in operator.inputs:
            if tensor != -1 and tensor not in available:
                raise LiteFormatError(
                    f"lite file: operator {operator.index} ({operator.name}) reads tensor {tensor} before any operator writes it"
                )
        for tensor in operator.outputs:
            if tensor in available:
                raise LiteFormatError(
                    f"lite file: operator {operator.index} ({operator.name}) writes tensor {tensor}, "
                    "which is already an input, a constant or another operator's output"
                )
            available.add(tensor)
    for tensor in outputs:
        if tensor not in available:
            raise LiteFormatError(f"lite file: subgraph output tensor {tensor} is never computed")
