"""CRC-32C (Castagnoli), table-driven, and the "masked" form TFRecord framing stores.

Small records (scalars) go through a plain byte loop. Large ones (an image summary is a PNG of up to a
few hundred KB) would take ~100 ns a byte that way, so they are cut into lanes of ``_LANE`` bytes whose
CRCs NumPy computes side by side, then chained: the CRC register update is linear over GF(2), so
``crc(A + B, start=s) = crc(B, start=0) ^ zeros(len(B), start=s)``, and pushing ``s`` through ``_LANE``
zero bytes is one fixed linear map, kept as four 256-entry tables (one per byte of ``s``). This keeps the
runtime free of a native CRC dependency.
"""

from __future__ import annotations

import functools

import numpy as np

_POLYNOMIAL = 0x82F63B78  # Castagnoli's polynomial 0x1EDC6F41, bit-reversed (the CRC is computed LSB first)
_LANE = 256  # bytes per lane of the vectorized path
_MIN_LANES = 16  # below this many lanes the byte loop is as fast


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLYNOMIAL if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()
_NUMPY_TABLE = np.array(_TABLE, dtype=np.uint32)


def _update(crc: int, data) -> int:
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


@functools.cache
def _lane_shift_tables() -> tuple[tuple[int, ...], ...]:
    """Four tables whose XOR gives the register after ``_LANE`` zero bytes, one table per byte of the start."""
    registers = (np.arange(256, dtype=np.uint32)[None, :] << np.array([0, 8, 16, 24], dtype=np.uint32)[:, None]).reshape(-1)
    for _ in range(_LANE):
        registers = _NUMPY_TABLE[registers & 0xFF] ^ (registers >> 8)
    return tuple(tuple(row.tolist()) for row in registers.reshape(4, 256))


def _update_lanes(crc: int, block: bytes, lanes: int) -> int:
    columns = np.ascontiguousarray(np.frombuffer(block, dtype=np.uint8).reshape(lanes, _LANE).T)
    registers = np.zeros(lanes, dtype=np.uint32)  # every lane's CRC from a zero start, all at once
    for column in columns:
        registers = _NUMPY_TABLE[(registers ^ column) & 0xFF] ^ (registers >> 8)
    shift0, shift1, shift2, shift3 = _lane_shift_tables()
    for lane_crc in registers.tolist():
        crc = shift0[crc & 0xFF] ^ shift1[(crc >> 8) & 0xFF] ^ shift2[(crc >> 16) & 0xFF] ^ shift3[crc >> 24] ^ lane_crc
    return crc


def crc32c(data: bytes) -> int:
    """The CRC-32C of ``data`` (crc32c(b"123456789") == 0xE3069283, the standard check value)."""
    data = bytes(data)
    crc = 0xFFFFFFFF
    lanes = len(data) // _LANE
    if lanes >= _MIN_LANES:
        crc = _update_lanes(crc, data[: lanes * _LANE], lanes)
        data = data[lanes * _LANE :]
    return _update(crc, data) ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotated right by 15 bits plus a constant, so a CRC of CRCs stays well mixed."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
