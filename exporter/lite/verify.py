"""Reading a written lite file back and checking its structure, before ``to_lite`` returns it.

The reader is independent of the writer: it walks the bytes with ``flatbuffers.table.Table`` by vtable
slot and checks what a runtime would otherwise trip over — every buffer, tensor, operator-code and
subgraph index in range, each operator's options table the one its operator takes, constant data as
long as its tensor and aligned to 16 bytes, operators in an order where each input already exists.
"""

from __future__ import annotations

import math
import struct

import flatbuffers
import numpy as np
from flatbuffers.table import Table

from exporter.errors import ExportError
from exporter.lite.schema import BUFFER_ALIGNMENT, BUILTIN_OPTIONS, FILE_IDENTIFIER, OPERATOR_OPTIONS, SCHEMA_VERSION, TensorType, slot

_ITEM_SIZES = {TensorType.FLOAT32: 4, TensorType.FLOAT16: 2, TensorType.INT32: 4, TensorType.UINT8: 1, TensorType.INT64: 8,
               TensorType.BOOL: 1, TensorType.INT16: 2, TensorType.INT8: 1, TensorType.FLOAT64: 8}  # fmt: skip
_OPTIONS_OF_CODE = {int(code): BUILTIN_OPTIONS[name] for code, name in OPERATOR_OPTIONS.items()}


class TableReader:
    """One flatbuffer table, its fields read by (table name, field name) through ``schema.slot``."""

    def __init__(self, data: bytes, position: int, name: str):
        self.table = Table(bytearray(data) if not isinstance(data, bytearray) else data, position)
        self.name = name

    def _offset(self, field: str) -> int:
        return self.table.Offset(4 + 2 * slot(self.name, field))

    def scalar(self, field: str, flags, default=0):
        offset = self._offset(field)
        return self.table.Get(flags, self.table.Pos + offset) if offset else default

    def table_field(self, field: str, name: str):
        offset = self._offset(field)
        return TableReader(self.table.Bytes, self.table.Indirect(self.table.Pos + offset), name) if offset else None

    def tables(self, field: str, name: str) -> list:
        offset = self._offset(field)
        if not offset:
            return []
        start = self.table.Vector(offset)
        return [TableReader(self.table.Bytes, self.table.Indirect(start + 4 * i), name) for i in range(self.table.VectorLen(offset))]

    def numbers(self, field: str, dtype) -> np.ndarray:
        """A vector of little-endian scalars, as a read-only view of the bytes (empty when absent)."""
        offset = self._offset(field)
        if not offset:
            return np.zeros(0, dtype)
        start, length = self.table.Vector(offset), self.table.VectorLen(offset)
        return np.frombuffer(self.table.Bytes, dtype=np.dtype(dtype).newbyteorder("<"), count=length, offset=start)

    def vector_start(self, field: str) -> int | None:
        """The file position of a vector's first element (None when the field is absent)."""
        offset = self._offset(field)
        return self.table.Vector(offset) if offset else None

    def string(self, field: str) -> str | None:
        offset = self._offset(field)
        return self.table.String(self.table.Pos + offset).decode() if offset else None


def read_model(data: bytes) -> TableReader:
    """The root ``Model`` table of lite file bytes, after checking the file identifier."""
    if len(data) < 8 or bytes(data[4:8]) != FILE_IDENTIFIER:
        raise ExportError(f"lite file: bytes 4..8 are {bytes(data[4:8])!r}, not the identifier {FILE_IDENTIFIER!r}")
    root = flatbuffers.encode.Get(flatbuffers.packer.uoffset, bytearray(data), 0)
    if not 8 <= root < len(data):
        raise ExportError(f"lite file: root table offset {root} lies outside the file ({len(data)} bytes)")
    return TableReader(bytearray(data), root, "Model")


def check(data: bytes) -> list[str]:
    """Every structural problem of lite file bytes, one message each; an empty list when it is sound."""
    N = flatbuffers.number_types
    model = read_model(data)
    problems = []
    version = model.scalar("version", N.Uint32Flags)
    if version != SCHEMA_VERSION:
        problems.append(f"lite file: schema version {version}, expected {SCHEMA_VERSION}")
    buffers = model.tables("buffers", "Buffer")
    codes = [max(c.scalar("builtin_code", N.Int32Flags), c.scalar("deprecated_builtin_code", N.Int8Flags)) for c in model.tables("operator_codes", "OperatorCode")]
    subgraphs = model.tables("subgraphs", "SubGraph")
    if not buffers or buffers[0].vector_start("data") is not None and len(buffers[0].numbers("data", np.uint8)):
        problems.append("lite file: buffer 0 must exist and be empty (the sentinel of tensors without data)")
    for index, buffer in enumerate(buffers):
        start = buffer.vector_start("data")
        if start is not None and len(buffer.numbers("data", np.uint8)) and start % BUFFER_ALIGNMENT:
            problems.append(f"lite file: buffer {index} data starts at byte {start}, not a multiple of {BUFFER_ALIGNMENT}")
    if len(subgraphs) != 1:
        problems.append(f"lite file: {len(subgraphs)} subgraphs, expected exactly one")
    for subgraph in subgraphs[:1]:
        problems += _check_subgraph(subgraph, buffers, codes)
        tensor_count = len(subgraph.tables("tensors", "Tensor"))
        for signature in model.tables("signature_defs", "SignatureDef"):
            if signature.scalar("subgraph_index", N.Uint32Flags) >= len(subgraphs):
                problems.append(f"lite file: signature '{signature.string('signature_key')}' names a missing subgraph")
            for kind in ("inputs", "outputs"):
                for entry in signature.tables(kind, "TensorMap"):
                    if entry.scalar("tensor_index", N.Uint32Flags) >= tensor_count:
                        problems.append(f"lite file: signature {kind[:-1]} '{entry.string('name')}' tensor index {entry.scalar('tensor_index', N.Uint32Flags)} out of range (subgraph has {tensor_count} tensors)")
    for entry in model.tables("metadata", "Metadata"):
        if entry.scalar("buffer", N.Uint32Flags) >= len(buffers):
            problems.append(f"lite file: metadata '{entry.string('name')}' buffer index {entry.scalar('buffer', N.Uint32Flags)} out of range (model has {len(buffers)} buffers)")
    return problems


def _check_subgraph(subgraph, buffers, codes) -> list[str]:
    N = flatbuffers.number_types
    problems = []
    tensors = subgraph.tables("tensors", "Tensor")
    available = set()
    for index, tensor in enumerate(tensors):
        buffer = tensor.scalar("buffer", N.Uint32Flags)
        type_ = tensor.scalar("type", N.Int8Flags)
        name = tensor.string("name")
        if type_ not in TensorType._value2member_map_:
            problems.append(f"lite file: tensor {index} ('{name}') has unknown type {type_}")
        if buffer >= len(buffers):
            problems.append(f"lite file: tensor {index} ('{name}') buffer index {buffer} out of range (model has {len(buffers)} buffers)")
            continue
        data = buffers[buffer].numbers("data", np.uint8) if buffer else ()
        elements = math.prod(int(d) for d in tensor.numbers("shape", np.int32))
        if len(data) or not elements:  # constants, and tensors with nothing to write
            available.add(index)
            expected = elements * _ITEM_SIZES.get(type_, 0)
            if _ITEM_SIZES.get(type_) and len(data) and expected != len(data):
                problems.append(f"lite file: tensor {index} ('{name}') needs {expected} bytes of data, buffer {buffer} holds {len(data)}")
    for kind in ("inputs", "outputs"):
        for index in subgraph.numbers(kind, np.int32):
            if not 0 <= index < len(tensors):
                problems.append(f"lite file: subgraph {kind[:-1]} tensor index {index} out of range ({len(tensors)} tensors)")
    available |= {int(i) for i in subgraph.numbers("inputs", np.int32)}
    for position, operator in enumerate(subgraph.tables("operators", "Operator")):
        opcode = operator.scalar("opcode_index", N.Uint32Flags)
        if opcode >= len(codes):
            problems.append(f"lite file: operator {position} opcode index {opcode} out of range (model has {len(codes)} operator codes)")
            continue
        options = operator.scalar("builtin_options_type", N.Uint8Flags)
        expected = _OPTIONS_OF_CODE.get(codes[opcode], 0)
        if options != expected:
            problems.append(f"lite file: operator {position} (builtin code {codes[opcode]}) has options type {options}, expected {expected}")
        for index in operator.numbers("inputs", np.int32):
            if index != -1 and not 0 <= index < len(tensors):
                problems.append(f"lite file: operator {position} input tensor index {index} out of range ({len(tensors)} tensors)")
            elif index != -1 and index not in available:
                problems.append(f"lite file: operator {position} reads tensor {index} before any operator writes it")
        for index in operator.numbers("outputs", np.int32):
            if not 0 <= index < len(tensors):
                problems.append(f"lite file: operator {position} output tensor index {index} out of range ({len(tensors)} tensors)")
            available.add(int(index))
    return problems


def verify(data: bytes) -> None:
    """Raises an ExportError listing every structural problem of ``data`` (an exporter bug if it fires)."""
    try:
        problems = check(data)
    except (IndexError, ValueError, TypeError, struct.error) as error:  # offsets pointing outside the bytes
        problems = [f"lite file: unreadable structure: {error}"]
    if problems:
        raise ExportError("lite export produced an invalid file (an exporter bug):\n  " + "\n  ".join(problems))
