"""Writing files so that a crash never leaves a half-written one behind."""

from __future__ import annotations

import os


def write_atomically(path: str, data: bytes) -> None:
    """Writes ``data`` to a temporary file beside ``path``, syncs it, and renames it over ``path``: a
    reader sees the old file or the complete new one, never half of one."""
    temporary = f"{path}.tmp{os.getpid()}"
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)  # makes the rename itself durable
    finally:
        os.close(directory)
