"""Writing a lite file: a plain description of one subgraph serialized into the TFLite flatbuffer.

The lowering (``context.py``) fills a ``LiteModel`` — tensors, operators, operator codes, constant
buffers — and ``serialize`` writes it with the ``flatbuffers`` package's low-level ``Builder``
(``StartObject`` / ``Prepend<Type>Slot`` / ``EndObject``), slots and defaults taken from
``schema.TABLES``. Constant data is written first, so it lies at the end of the file, each buffer's
bytes aligned to 16 as the schema's ``force_align`` asks; identical bytes are stored once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import flatbuffers
import numpy as np

from exporter.lite.schema import (
    BUFFER_ALIGNMENT,
    BUILTIN_OPTIONS,
    FILE_IDENTIFIER,
    OPERATOR_OPTIONS,
    SCHEMA_VERSION,
    TABLES,
    BuiltinOperator,
)

_SCALAR_SIZES = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int32": 4,
    "uint32": 4,
    "float32": 4,
    "int64": 8,
    "uint64": 8,
    "offset": 4,
}


@dataclass
class Quantization:
    """Affine quantization of a tensor, ``real = scale * (q - zero_point)``: one entry per tensor, or one
    per slice along ``quantized_dimension`` (per-channel weights)."""

    scale: list[float]
    zero_point: list[int]
    quantized_dimension: int = 0


@dataclass
class LiteTensor:
    """One tensor of the subgraph; ``shape`` uses ``None`` for a dimension known only at run time."""

    name: str
    shape: tuple
    type: int  # schema.TensorType
    buffer: int = 0  # 0: no constant data
    quantization: Quantization | None = None


@dataclass
class LiteOperator:
    """One operator: its operator-code index, tensor indices (-1: an optional input left out), options."""

    opcode_index: int
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)  # field name -> value of the operator's options table


@dataclass
class LiteModel:
    """Everything one lite file holds, before serialization."""

    description: str
    tensors: list[LiteTensor] = field(default_factory=list)
    operators: list[LiteOperator] = field(default_factory=list)
    operator_codes: list[tuple[int, int]] = field(default_factory=list)  # (builtin code, version)
    buffers: list[bytes] = field(default_factory=lambda: [b""])  # buffers[0] is the empty sentinel
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    signature_inputs: list[tuple[str, int]] = field(default_factory=list)  # user-facing name, tensor index
    signature_outputs: list[tuple[str, int]] = field(default_factory=list)
    metadata: list[tuple[str, int]] = field(default_factory=list)  # name, buffer index
    _buffer_of: dict = field(default_factory=dict, repr=False)

    def add_buffer(self, data: bytes) -> int:
        """The index of a buffer holding ``data``; equal bytes share one buffer, and no bytes are the
        empty sentinel (a tensor with no elements needs no data)."""
        if not data:
            return 0
        key = hashlib.sha256(data).digest()
        if key not in self._buffer_of:
            self._buffer_of[key] = len(self.buffers)
            self.buffers.append(bytes(data))
        return self._buffer_of[key]


def serialize(model: LiteModel) -> bytes:
    """The flatbuffer bytes of ``model`` (file identifier ``TFL3``, schema version 3)."""
    # Room for the data and the tables up front: the builder doubles (copying everything) when it runs out.
    writer = _Writer(
        sum(len(data) + BUFFER_ALIGNMENT for data in model.buffers)
        + 256 * (len(model.tensors) + len(model.operators))
        + 1024
    )
    # Data first: the builder writes back to front, so the weights end up at the end of the file,
    # after the small tables a reader touches first.
    data_offsets = [writer.aligned_bytes(data) if data else None for data in model.buffers]
    buffers = [writer.table("Buffer", data=offset) for offset in data_offsets]
    tensors = [_tensor(writer, tensor) for tensor in model.tensors]
    operators = [_operator(writer, model, operator) for operator in model.operators]
    subgraph = writer.table(
        "SubGraph",
        tensors=writer.offsets(tensors),
        inputs=writer.int32s(model.inputs),
        outputs=writer.int32s(model.outputs),
        operators=writer.offsets(operators),
        name=writer.string("main"),
    )
    codes = [
        writer.table(
            "OperatorCode",
            deprecated_builtin_code=min(code, int(BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)),
            version=version,
            builtin_code=code,
        )
        for code, version in model.operator_codes
    ]
    metadata = [writer.table("Metadata", name=writer.string(name), buffer=index) for name, index in model.metadata]
    signature = writer.table(
        "SignatureDef",
        inputs=writer.offsets([_tensor_map(writer, name, index) for name, index in model.signature_inputs]),
        outputs=writer.offsets([_tensor_map(writer, name, index) for name, index in model.signature_outputs]),
        signature_key=writer.string("serving_default"),
        subgraph_index=0,
    )
    root = writer.table(
        "Model",
        version=SCHEMA_VERSION,
        operator_codes=writer.offsets(codes),
        subgraphs=writer.offsets([subgraph]),
        description=writer.string(model.description),
        buffers=writer.offsets(buffers),
        metadata=writer.offsets(metadata),
        signature_defs=writer.offsets([signature]),
    )
    return writer.finish(root)


def _tensor(writer, tensor: LiteTensor) -> int:
    # ``shape`` holds 1 where the size is known only at run time; ``shape_signature`` (written only
    # then, as TensorFlow's converter does) marks those dimensions -1.
    shape = [1 if d is None else int(d) for d in tensor.shape]
    dynamic = None in tensor.shape
    signature = writer.int32s([-1 if d is None else int(d) for d in tensor.shape]) if dynamic else None
    return writer.table(
        "Tensor",
        shape=writer.int32s(shape),
        type=int(tensor.type),
        buffer=tensor.buffer,
        name=writer.string(tensor.name),
        quantization=_quantization(writer, tensor.quantization),
        shape_signature=signature,
    )


def _quantization(writer, quantization: Quantization | None):
    if quantization is None:
        return None
    scale = np.asarray(quantization.scale, dtype="<f4")
    zero_point = np.asarray(quantization.zero_point, dtype="<i8")
    key = ("QuantizationParameters", scale.tobytes(), zero_point.tobytes(), quantization.quantized_dimension)
    return writer.shared(key, lambda: writer.table(
        "QuantizationParameters",
        scale=writer.numbers(scale),
        zero_point=writer.numbers(zero_point),
        quantized_dimension=quantization.quantized_dimension,
    ))  # fmt: skip


def _operator(writer, model: LiteModel, operator: LiteOperator) -> int:
    code = model.operator_codes[operator.opcode_index][0]
    table_name = OPERATOR_OPTIONS.get(code)
    options = None
    if table_name is not None:
        values = {
            key: writer.int32s(value) if isinstance(value, (list, tuple)) else value
            for key, value in operator.options.items()
        }
        options = writer.table(table_name, **values)
    return writer.table(
        "Operator",
        opcode_index=operator.opcode_index,
        inputs=writer.int32s(operator.inputs),
        outputs=writer.int32s(operator.outputs),
        builtin_options_type=BUILTIN_OPTIONS[table_name] if table_name else 0,
        builtin_options=options,
    )


def _tensor_map(writer, name: str, index: int) -> int:
    return writer.table("TensorMap", name=writer.string(name), tensor_index=index)


class _Writer:
    """The flatbuffers ``Builder`` driven by field names: ``table("Tensor", shape=..., type=...)``."""

    def __init__(self, size_hint: int):
        self.builder = flatbuffers.Builder(size_hint)
        # Equal vectors and quantization tables are written once and shared by offset (a flatbuffer is a
        # DAG): per-channel zero points, all 0 and 8 bytes each, are a tenth of a small int8 model otherwise.
        self._shared: dict = {}

    def shared(self, key, write) -> int:
        """The offset ``write()`` returned for an earlier equal ``key``, or a new one."""
        offset = self._shared.get(key)
        if offset is None:
            offset = self._shared[key] = write()
        return offset

    def table(self, table_name: str, /, **values) -> int:
        """Writes one table; fields left out or ``None`` are absent (readers see the schema default)."""
        layout = TABLES[table_name]
        fields = []
        for field_name, value in values.items():
            if value is None:
                continue
            index = next((i for i, spec in enumerate(layout) if spec[0] == field_name), None)
            if index is None or layout[index][1] == "deprecated":
                raise ValueError(f"lite writer: table '{table_name}' has no field '{field_name}' in the schema subset")
            fields.append((index, *layout[index][1:], value))
        # Widest fields first: each then starts aligned without padding between them.
        fields.sort(key=lambda entry: -_SCALAR_SIZES[entry[1]])
        self.builder.StartObject(len(layout))
        for index, kind, default, value in fields:
            if kind == "offset":
                self.builder.PrependUOffsetTRelativeSlot(index, value, 0)
            else:
                getattr(self.builder, f"Prepend{kind.capitalize()}Slot")(index, value, default)
        return self.builder.EndObject()

    def string(self, text: str) -> int:
        return self.builder.CreateString(text)

    def offsets(self, offsets: list[int]) -> int:
        """A vector of tables (or strings)."""
        self.builder.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            self.builder.PrependUOffsetTRelative(offset)
        return self.builder.EndVector()

    def int32s(self, values) -> int:
        return self.numbers(np.asarray(list(values), dtype="<i4"))

    def numbers(self, array: np.ndarray) -> int:
        """A vector of little-endian scalars (shared with an equal one written before)."""
        return self.shared(("numbers", array.dtype.str, array.tobytes()), lambda: self.builder.CreateNumpyVector(array))

    def aligned_bytes(self, data: bytes) -> int:
        """A [ubyte] vector whose first byte lands on a ``BUFFER_ALIGNMENT`` boundary of the file.

        ``StartVector`` pads so that the data starts aligned relative to the end of the buffer; the
        builder also pads the finished file to a multiple of its largest alignment, so the data is
        aligned from the start of the file too. The bytes are copied in one slice, as
        ``Builder.CreateByteVector`` does, which has no alignment argument.
        """
        builder = self.builder
        builder.StartVector(1, len(data), BUFFER_ALIGNMENT)
        builder.head -= len(data)
        builder.Bytes[builder.head : builder.head + len(data)] = data
        return builder.EndVector()

    def finish(self, root: int) -> bytes:
        self.builder.Finish(root, file_identifier=FILE_IDENTIFIER)
        return bytes(self.builder.Output())
