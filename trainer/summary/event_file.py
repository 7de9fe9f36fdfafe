"""TensorBoard event files: TFRecord framing around hand-encoded ``Event`` protobufs.

Field numbers used, from TensorFlow's ``event.proto``, ``summary.proto``, ``tensor.proto`` and
``tensor_shape.proto`` (the same ones ``tensorboard.compat.proto`` compiles). They are written by hand
so that the runtime needs no protobuf package:

- ``Event``: wall_time 1 (double), step 2 (int64), file_version 3 (string), graph_def 4 (an encoded
  GraphDef, see ``graph_def``), summary 5 (Summary).
- ``Summary``: value 1 (repeated Value).
- ``Summary.Value``: tag 1 (string), tensor 8 (TensorProto), metadata 9 (SummaryMetadata).
- ``SummaryMetadata``: plugin_data 1 (PluginData: plugin_name 1, content 2), summary_description 3,
  data_class 4 (enum: 1 scalar, 2 tensor, 3 blob sequence).
- ``TensorProto``: dtype 1 (enum: DT_FLOAT 1, DT_DOUBLE 2, DT_STRING 7), tensor_shape 2
  (TensorShapeProto: dim 2, each Dim: size 1), float_val 5 (packed), double_val 6 (packed),
  string_val 8 (repeated bytes).

Every summary is written the TensorFlow 2 way: a tensor plus metadata naming the TensorBoard plugin
that shows it ("scalars", "histograms", "images", "text"), which is what ``tf.summary`` writes and what
TensorBoard's plugins read.
"""

from __future__ import annotations

import os
import socket
import struct
import time

from trainer.summary import protobuf
from trainer.summary.crc32c import masked_crc32c

DT_FLOAT, DT_DOUBLE, DT_STRING = 1, 2, 7
DATA_CLASS_SCALAR, DATA_CLASS_TENSOR, DATA_CLASS_BLOB_SEQUENCE = 1, 2, 3


def tfrecord(data: bytes) -> bytes:
    """One TFRecord: uint64 length, masked CRC32C of the length bytes, the data, masked CRC32C of the data."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def tensor_proto(dtype: int, shape, *, floats=None, doubles=None, strings=None) -> bytes:
    """An encoded ``TensorProto`` holding the values in one of its typed repeated fields."""
    dims = b"".join(protobuf.bytes_field(2, protobuf.int_field(1, size)) for size in shape)
    message = protobuf.int_field(1, dtype) + protobuf.bytes_field(2, dims)
    if floats is not None:
        message += protobuf.packed_floats(5, floats)
    if doubles is not None:
        message += protobuf.packed_doubles(6, doubles)
    for value in strings or ():
        message += protobuf.bytes_field(8, value)
    return message


def summary_value(tag: str, tensor: bytes, plugin_name: str, data_class: int, description: str | None = None) -> bytes:
    """An encoded ``Summary.Value``: the tag, the tensor, and metadata naming the plugin that displays it."""
    metadata = protobuf.bytes_field(1, protobuf.bytes_field(1, plugin_name))
    if description:
        metadata += protobuf.bytes_field(3, description)
    metadata += protobuf.int_field(4, data_class)
    return protobuf.bytes_field(1, tag) + protobuf.bytes_field(8, tensor) + protobuf.bytes_field(9, metadata)


def event(step: int | None = None, summary_values=(), file_version: str | None = None, wall_time: float | None = None, graph_def: bytes | None = None) -> bytes:
    message = protobuf.double_field(1, time.time() if wall_time is None else wall_time)
    if step is not None:
        message += protobuf.int_field(2, step)
    if file_version is not None:
        message += protobuf.bytes_field(3, file_version)
    if graph_def is not None:
        message += protobuf.bytes_field(4, graph_def)
    if summary_values:
        message += protobuf.bytes_field(5, b"".join(protobuf.bytes_field(1, value) for value in summary_values))
    return message


class EventFileWriter:
    """Appends records to ``<logdir>/events.out.tfevents.<unix seconds>.<hostname>[suffix]``."""

    def __init__(self, logdir: str, filename_suffix: str = ""):
        os.makedirs(logdir, exist_ok=True)
        base = os.path.join(logdir, f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}")
        path, counter = base + filename_suffix, 0
        while os.path.exists(path):  # two writers in one folder within a second: keep both files
            counter += 1
            path = f"{base}.{os.getpid()}.{counter}{filename_suffix}"
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.write(event(step=0, file_version="brain.Event:2"))
        self.flush()

    def write(self, record: bytes) -> None:
        self._file.write(tfrecord(record))

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed
