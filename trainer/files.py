"""Writing files so that a crash never leaves a half-written one behind (one copy for every package)."""

from __future__ import annotations

import errno
import os
import secrets


def write_atomically(path: str, data: bytes | str) -> None:
    """Writes ``data`` (bytes, or text as UTF-8) to a temporary file beside ``path``, syncs it, and renames
    it over ``path``: a reader sees the old file or the complete new one, never half of one."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    fsync_directory(directory)


def fsync_directory(directory: str) -> None:
    """Makes a rename durable; skipped where directories cannot be opened (Windows) or synced."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(descriptor)
