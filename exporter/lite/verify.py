"""Reading a written lite file back and checking its structure, before ``to_lite`` returns it.

The reader is independent of the writer: it walks the bytes with ``flatbuffers.table.Table`` by vtable
slot (the slots of ``schema.TABLES``, which the tests check against LiteRT's generated reader) and
checks what a runtime would otherwise trip over — every buffer, tensor, operator-code and subgraph
index in range, each operator's options table the one its operator takes, constant data as long as
its tensor and aligned to 16 bytes, operators in an order where each input already exists.
"""

from __future__ import annotations

import math
import struct

import flatbuffers
import numpy as np
from flatbuffers import number_types as flags
from flatbuffers.table import Table

from exporter.errors import ExportError
from exporter.lite.schema import (
    BUFFER_ALIGNMENT,
    BUILTIN_OPTIONS,
    FILE_IDENTIFIER,
    OPERATOR_OPTIONS,
    SCHEMA_VERSION,
    TensorType,
    slot,
)

_ITEM_SIZES = {
    TensorType.FLOAT32: 4, TensorType.FLOAT16: 2, TensorType.FLOAT64: 8, TensorType.INT64: 8, TensorType.INT32: 4,
    TensorType.INT16: 2, TensorType.INT8: 1, TensorType.UINT8: 1, TensorType.BOOL: 1,
}  # fmt: skip
_OPTIONS_OF_CODE = {int(code): BUILTIN_OPTIONS[name] for code, name in OPERATOR_OPTIONS.items()}
_FLAGS = {"int8": flags.Int8Flags, "uint8": flags.Uint8Flags, "int32": flags.Int32Flags, "uint32": flags.Uint32Flags}


class TableReader:
    """One flatbuffer table, its fields read by name through ``schema.slot``."""

    def __init__(self, data: bytearray, position: int, name: str):
        self.table = Table(data, position)
        self.name = name

    def _offset(self, field: str) -> int:
        return self.table.Offset(4 + 2 * slot(self.name, field))

    def scalar(self, field: str, kind: str) -> int:
        """An integer field (``kind`` "int8", "uint8", "int32" or "uint32"); absent fields read 0."""
        offset = self._offset(field)
        return self.table.Get(_FLAGS[kind], self.table.Pos + offset) if offset else 0

    def table_field(self, field: str, name: str) -> TableReader | None:
        """A sub-table of schema table ``name`` (None when absent)."""
        offset = self._offset(field)
        return TableReader(self.table.Bytes, self.table.Indirect(self.table.Pos + offset), name) if offset else None

    def tables(self, field: str, name: str) -> list[TableReader]:
        """A vector of tables of schema table ``name`` (empty when absent)."""
        offset = self._offset(field)
        if not offset:
            return []
        start, length = self.table.Vector(offset), self.table.VectorLen(offset)
        return [TableReader(self.table.Bytes, self.table.Indirect(start + 4 * i), name) for i in range(length)]

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
    data = bytearray(data)
    root = flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0)
    if not 8 <= root < len(data):
        raise ExportError(f"lite file: root table offset {root} lies outside the file ({len(data)} bytes)")
    return TableReader(data, root, "Model")


def check(data: bytes) -> list[str]:
    """Every structural problem of lite file bytes, one message each; an empty list when it is sound."""
    model = read_model(data)
    problems = []
    if model.scalar("version", "uint32") != SCHEMA_VERSION:
        problems.append(f"schema version {model.scalar('version', 'uint32')}, expected {SCHEMA_VERSION}")
    buffers = model.tables("buffers", "Buffer")
    problems += _check_buffers(buffers)
    codes = [
        max(code.scalar("builtin_code", "int32"), code.scalar("deprecated_builtin_code", "int8"))
        for code in model.tables("operator_codes", "OperatorCode")
    ]
    subgraphs = model.tables("subgraphs", "SubGraph")
    if len(subgraphs) != 1:
        problems.append(f"{len(subgraphs)} subgraphs, expected exactly one")
    for subgraph in subgraphs[:1]:
        problems += _check_subgraph(subgraph, buffers, codes)
        problems += _check_signatures(model, len(subgraphs), len(subgraph.tables("tensors", "Tensor")))
    for entry in model.tables("metadata", "Metadata"):
        if entry.scalar("buffer", "uint32") >= len(buffers):
            index = entry.scalar("buffer", "uint32")
            problems.append(
                f"metadata '{entry.string('name')}' buffer index {index} out of range ({len(buffers)} buffers)"
            )
    return [f"lite file: {problem}" for problem in problems]


def _check_buffers(buffers) -> list[str]:
    problems = []
    if not buffers or len(buffers[0].numbers("data", np.uint8)):
        problems.append("buffer 0 must exist and be empty (the sentinel of tensors without data)")
    for index, buffer in enumerate(buffers):
        start = buffer.vector_start("data")
        if start is not None and len(buffer.numbers("data", np.uint8)) and start % BUFFER_ALIGNMENT:
            problems.append(f"buffer {index} data starts at byte {start}, not a multiple of {BUFFER_ALIGNMENT}")
    return problems


def _check_signatures(model, subgraph_count: int, tensor_count: int) -> list[str]:
    problems = []
    for signature in model.tables("signature_defs", "SignatureDef"):
        key = signature.string("signature_key")
        if signature.scalar("subgraph_index", "uint32") >= subgraph_count:
            problems.append(f"signature '{key}' names subgraph {signature.scalar('subgraph_index', 'uint32')}")
        for kind in ("inputs", "outputs"):
            for entry in signature.tables(kind, "TensorMap"):
                index = entry.scalar("tensor_index", "uint32")
                if index >= tensor_count:
                    name = entry.string("name")
                    problems.append(
                        f"signature {kind[:-1]} '{name}' tensor index {index} out of range ({tensor_count} tensors)"
                    )
    return problems


def _check_subgraph(subgraph, buffers, codes) -> list[str]:
    problems = []
    tensors = subgraph.tables("tensors", "Tensor")
    available = {int(i) for i in subgraph.numbers("inputs", np.int32)}  # what an operator may read so far
    for index, tensor in enumerate(tensors):
        buffer, type_, name = tensor.scalar("buffer", "uint32"), tensor.scalar("type", "int8"), tensor.string("name")
        if type_ not in TensorType._value2member_map_:
            problems.append(f"tensor {index} ('{name}') has unknown type {type_}")
        if buffer >= len(buffers):
            problems.append(f"tensor {index} ('{name}') buffer index {buffer} out of range ({len(buffers)} buffers)")
            continue
        size = len(buffers[buffer].numbers("data", np.uint8)) if buffer else 0
        elements = math.prod(int(d) for d in tensor.numbers("shape", np.int32))
        if size or not elements:  # constants, and tensors with nothing to write
            available.add(index)
        expected = elements * _ITEM_SIZES.get(type_, 0)
        if size and expected and expected != size:
            problems.append(f"tensor {index} ('{name}') needs {expected} bytes of data, buffer {buffer} holds {size}")
    for kind in ("inputs", "outputs"):
        for index in subgraph.numbers(kind, np.int32):
            if not 0 <= index < len(tensors):
                problems.append(f"subgraph {kind[:-1]} tensor index {index} out of range ({len(tensors)} tensors)")
    for position, operator in enumerate(subgraph.tables("operators", "Operator")):
        problems += _check_operator(position, operator, codes, len(tensors), available)
    return problems


def _check_operator(position: int, operator, codes, tensor_count: int, available: set) -> list[str]:
    """One operator's indices and options; adds its outputs to ``available``."""
    opcode = operator.scalar("opcode_index", "uint32")
    if opcode >= len(codes):
        return [f"operator {position} opcode index {opcode} out of range ({len(codes)} operator codes)"]
    problems = []
    options, expected = operator.scalar("builtin_options_type", "uint8"), _OPTIONS_OF_CODE.get(codes[opcode], 0)
    if options != expected:
        problems.append(
            f"operator {position} (builtin code {codes[opcode]}) has options type {options}, expected {expected}"
        )
    for index in (int(i) for i in operator.numbers("inputs", np.int32) if i != -1):  # -1: an optional input left out
        if not 0 <= index < tensor_count:
            problems.append(f"operator {position} input tensor index {index} out of range ({tensor_count} tensors)")
        elif index not in available:
            problems.append(f"operator {position} reads tensor {index} before any operator writes it")
    for index in (int(i) for i in operator.numbers("outputs", np.int32)):
        if not 0 <= index < tensor_count:
            problems.append(f"operator {position} output tensor index {index} out of range ({tensor_count} tensors)")
        available.add(index)
    return problems


def verify(data: bytes) -> None:
    """Raises an ExportError listing every structural problem of ``data`` (an exporter bug if it fires)."""
    try:
        problems = check(data)
    except (IndexError, ValueError, TypeError, struct.error) as error:  # offsets pointing outside the bytes
        problems = [f"lite file: unreadable structure: {error}"]
    if problems:
        raise ExportError("lite export produced an invalid file (an exporter bug):\n  " + "\n  ".join(problems))
