"""A minimal PNG encoder (8-bit gray, gray+alpha, RGB, RGBA; no filtering) on zlib, for image summaries."""

from __future__ import annotations

import struct
import zlib

import numpy as np

_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    # PNG chunks carry the ordinary CRC-32 (zlib's), over the type and the data.
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image) -> bytes:
    """PNG bytes of a uint8 array shaped (height, width, channels) with 1 to 4 channels."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in _COLOR_TYPES:
        raise ValueError(f"encode_png expects uint8 (height, width, 1|2|3|4), got {image.dtype} {image.shape}")
    height, width, channels = image.shape
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    # Each scanline starts with its filter type; 0 ("None") keeps the encoder trivial.
    rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, width * channels)], axis=1)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(b"IEND", b"")
