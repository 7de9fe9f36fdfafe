"""CRC-32C (Castagnoli), table-driven, and the "masked" form TFRecord framing stores.

Event files are small (a few records per step), so a pure-Python byte loop is fast enough and keeps the
runtime free of a native CRC dependency.
"""

from __future__ import annotations

_POLYNOMIAL = 0x82F63B78  # Castagnoli's polynomial 0x1EDC6F41, bit-reversed (the CRC is computed LSB first)


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLYNOMIAL if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc32c(data: bytes) -> int:
    """The CRC-32C of ``data`` (crc32c(b"123456789") == 0xE3069283, the standard check value)."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotated right by 15 bits plus a constant, so a CRC of CRCs stays well mixed."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
