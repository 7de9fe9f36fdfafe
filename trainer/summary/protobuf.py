"""A tiny protobuf *encoder*: just the wire types the Event and Summary messages need.

Wire format (protobuf "encoding" spec): each field is a key ``(field_number << 3) | wire_type`` as a
varint, then the value. Wire types used here: 0 varint (int64, int32, enum), 1 fixed 64-bit (double),
2 length-delimited (bytes, strings, nested messages, packed repeated numbers), 5 fixed 32-bit (float).
Fields are written in field-number order, as protobuf serializers do, though readers accept any order.
"""

from __future__ import annotations

import struct

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


def varint(value: int) -> bytes:
    """Base-128 varint, low groups first; negative int64s are their 64-bit two's complement (10 bytes)."""
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return varint((field << 3) | wire_type)


def int_field(field: int, value: int) -> bytes:
    return _key(field, VARINT) + varint(int(value))


def double_field(field: int, value: float) -> bytes:
    return _key(field, FIXED64) + struct.pack("<d", float(value))


def float_field(field: int, value: float) -> bytes:
    return _key(field, FIXED32) + struct.pack("<f", float(value))


def bytes_field(field: int, value: bytes | str) -> bytes:
    """A string, bytes or an already-encoded nested message."""
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return _key(field, LENGTH_DELIMITED) + varint(len(data)) + data


def packed_doubles(field: int, values) -> bytes:
    return bytes_field(field, struct.pack(f"<{len(values)}d", *values))


def packed_floats(field: int, values) -> bytes:
    return bytes_field(field, struct.pack(f"<{len(values)}f", *values))
