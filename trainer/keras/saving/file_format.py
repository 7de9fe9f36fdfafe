"""The saved-file container: a zip of JSON documents and ``.npy`` arrays, written atomically, read with limits.

Writing goes to a temporary file in the target's directory, which is flushed, fsynced and then moved
over the target with ``os.replace``, so a crash mid-save leaves the previous file as it was.

Reading treats the file as hostile until checked. The zip directory is validated before any entry is
read (entry count, names, compression methods, declared sizes against the file's real size and a
compression-ratio cap against zip bombs), and every array's declared dtype and shape are checked
against its ``.npy`` header and its entry's size before a byte of it is allocated. Arrays are plain
numeric ``.npy`` data: nothing is ever unpickled, so loading a file cannot run code.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import secrets
import struct
import zipfile
import zlib

import numpy as np

from trainer.files import fsync_directory

MAX_ENTRIES = 100_000  # a big model has a few thousand weights plus optimizer slots
MAX_TOTAL_BYTES = 64 * 2**30  # all entries uncompressed together
MAX_JSON_BYTES = 64 * 2**20  # one JSON document uncompressed
MAX_COMPRESSION_RATIO = 200  # uncompressed / compressed size of one entry; JSON deflates ~10x
_RATIO_EXEMPT_BYTES = 64 * 2**10  # a tiny entry cannot be a bomb, whatever its ratio
_MAX_NPY_HEADER = 4096  # our headers are under 128 bytes; numpy's own default cap is 10000
_NPY_PREFIX = 12  # magic (6) + version (2) + header length (2 or 4)
_ALLOWED_KINDS = "biuf"  # bool, signed and unsigned integers, floats: never objects or structs
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the same model always gives the same bytes


class SavingError(ValueError):
    """A model or weights file cannot be written or read; the message names the file and the problem."""


# -- writing ------------------------------------------------------------------------------------------
class ArchiveWriter:
    """Writes one archive beside ``path`` and moves it into place only when it is complete.

    Use as a context manager: an exception inside the block removes the temporary file and leaves
    whatever was at ``path`` untouched.

    Example:
        >>> with ArchiveWriter("model.ember") as archive:
        ...     archive.write_json("config.json", {"class_name": "Sequential"})
        ...     archive.write_array("weights/0.npy", np.zeros((2, 3), np.float32))
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.temporary_path = None
        self._file = None
        self._zip = None

    def __enter__(self):
        directory, base = os.path.split(self.path)
        if not os.path.isdir(directory):
            raise SavingError(f"{self.path}: cannot save, the directory {directory} does not exist")
        self.temporary_path = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        # O_EXCL: never write through a file (or symlink) someone else put there; mode 0o666 lets the
        # umask decide the final permissions, as for any file the user creates.
        descriptor = os.open(self.temporary_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        self._file = os.fdopen(descriptor, "wb")
        self._zip = zipfile.ZipFile(self._file, "w", allowZip64=True)
        return self

    def write_json(self, name: str, document) -> None:
        """Adds ``document`` as deflated UTF-8 JSON; objects JSON cannot hold are an error."""
        try:
            data = json.dumps(document, indent=1, sort_keys=False).encode("utf-8")
        except (TypeError, ValueError) as error:
            raise SavingError(f"{self.path}: {name} cannot be written as JSON: {error}") from None
        info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        self._zip.writestr(info, data)

    def write_array(self, name: str, array) -> None:
        """Adds ``array`` as an uncompressed ``.npy`` entry (numeric dtypes only, never pickled)."""
        array = np.asarray(array, order="C")  # (ascontiguousarray would turn a scalar into shape (1,))
        if array.dtype.kind not in _ALLOWED_KINDS or array.dtype.fields is not None:
            raise SavingError(f"{self.path}: {name} has dtype {array.dtype}; only numeric arrays can be saved")
        info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
        info.compress_type = zipfile.ZIP_STORED  # weights barely compress; stored entries stream fast
        with self._zip.open(info, "w", force_zip64=array.nbytes > 2**31 - 2**16) as stream:
            np.lib.format.write_array(stream, array, allow_pickle=False)

    def __exit__(self, exc_type, exc, traceback):
        try:
            if exc_type is None:
                self._zip.close()
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                os.replace(self.temporary_path, self.path)
                fsync_directory(os.path.dirname(self.path))
                return False
        except BaseException:
            _discard(self)
            raise
        _discard(self)
        return False


def _discard(writer: ArchiveWriter) -> None:
    """Closes and deletes an unfinished temporary file (the target path is never touched)."""
    for closable in (writer._zip, writer._file):
        try:
            if closable is not None:
                closable.close()
        except (OSError, ValueError):
            pass  # closing a half-written zip can fail again; the file is deleted next anyway
    if writer.temporary_path and os.path.exists(writer.temporary_path):
        os.remove(writer.temporary_path)


# -- reading ------------------------------------------------------------------------------------------
# What a damaged or hostile zip can make the standard library raise while reading it (ValueError, for
# example, for a negative seek); every handler re-raises SavingError (itself a ValueError) first.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, struct.error, OSError, NotImplementedError, OverflowError, RuntimeError, ValueError)


class ArchiveReader:
    """Opens an archive after checking its whole directory; then reads JSON documents and arrays from it.

    Every problem is a ``SavingError`` that names the file: not a zip, truncated, damaged (CRC),
    too many entries, unsafe entry names, sizes that do not add up, or a suspicious compression ratio.
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as error:
            raise SavingError(f"{self.path}: cannot open: {error.strerror or error}") from None
        try:
            self._zip = zipfile.ZipFile(self._file)
            self._entries = self._check_directory(os.fstat(self._file.fileno()).st_size)
        except zipfile.BadZipFile as error:
            self.close()
            raise SavingError(f"{self.path}: not an emberflow file, or it is truncated or damaged (zip: {error})") from None
        except SavingError:
            self.close()
            raise
        except _ZIP_ERRORS as error:
            self.close()
            raise SavingError(f"{self.path}: damaged zip directory: {error}") from None

    def _check_directory(self, file_size: int) -> dict:
        infos = self._zip.infolist()
        if len(infos) > MAX_ENTRIES:
            raise SavingError(f"{self.path}: {len(infos)} entries, more than the limit of {MAX_ENTRIES}")
        entries, total, compressed_total = {}, 0, 0
        for info in infos:
            name = info.filename
            if name.startswith(("/", "\\")) or "\\" in name or ":" in name or {".", ".."} & set(name.split("/")):
                raise SavingError(f"{self.path}: unsafe entry name {name!r} (absolute, or leaving the archive with '..')")
            if not _SAFE_NAME.fullmatch(name):
                raise SavingError(f"{self.path}: unexpected entry name {name!r}")
            if name in entries:
                raise SavingError(f"{self.path}: entry {name!r} appears twice")
            if info.flag_bits & 0x1:
                raise SavingError(f"{self.path}: entry {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise SavingError(f"{self.path}: entry {name!r} uses compression method {info.compress_type}; only stored and deflated are read")
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                raise SavingError(f"{self.path}: stored entry {name!r} declares {info.file_size} bytes but holds {info.compress_size}")
            if info.file_size > _RATIO_EXEMPT_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
                raise SavingError(
                    f"{self.path}: entry {name!r} would expand from {info.compress_size} to {info.file_size} bytes "
                    f"(ratio over {MAX_COMPRESSION_RATIO}); refusing a possible zip bomb"
                )
            total += info.file_size
            compressed_total += info.compress_size
            entries[name] = info
        if total > MAX_TOTAL_BYTES:
            raise SavingError(f"{self.path}: entries total {total} bytes uncompressed, more than the limit of {MAX_TOTAL_BYTES}")
        if compressed_total > file_size:
            raise SavingError(f"{self.path}: entries declare {compressed_total} compressed bytes but the file has only {file_size} (truncated or damaged)")
        return entries

    def entry_bytes(self, prefix: str) -> int:
        """The uncompressed size of all entries whose names start with ``prefix`` (checked against the limits)."""
        return sum(info.file_size for name, info in self._entries.items() if name.startswith(prefix))

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def _info(self, name: str):
        info = self._entries.get(name)
        if info is None:
            raise SavingError(f"{self.path}: missing entry {name!r}")
        return info

    def read_json(self, name: str):
        """The parsed JSON document stored as ``name`` (at most ``MAX_JSON_BYTES``)."""
        info = self._info(name)
        if info.file_size > MAX_JSON_BYTES:
            raise SavingError(f"{self.path}: {name} is {info.file_size} bytes, more than the JSON limit of {MAX_JSON_BYTES}")
        data = self._read_exactly(info, info.file_size)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise SavingError(f"{self.path}: {name} is not valid JSON: {error}") from None

    def read_array(self, name: str, dtype: str, shape) -> np.ndarray:
        """The array stored as ``name``, which must have exactly the declared ``dtype`` and ``shape``.

        The declaration is checked against the entry's ``.npy`` header and its size in the zip
        before the array's memory is allocated.
        """
        info = self._info(name)
        declared_dtype = checked_dtype(dtype, f"{self.path}: {name}")
        declared_shape = checked_shape(shape, f"{self.path}: {name}")
        nbytes = math.prod(declared_shape) * declared_dtype.itemsize
        if nbytes > info.file_size:
            raise SavingError(
                f"{self.path}: {name} declares a {declared_dtype.name} array of shape {declared_shape} "
                f"({nbytes} bytes) but the entry holds only {info.file_size} bytes"
            )
        try:
            with self._zip.open(info) as stream:
                header_size, header = self._read_npy_header(stream, name)
                if header != (declared_shape, False, declared_dtype):
                    raise SavingError(
                        f"{self.path}: {name} header says shape {header[0]}, dtype {header[2]}, fortran_order={header[1]}; "
                        f"the manifest says shape {declared_shape}, dtype {declared_dtype}"
                    )
                if header_size + nbytes != info.file_size:
                    raise SavingError(f"{self.path}: {name} holds {info.file_size - header_size} data bytes, expected {nbytes}")
                buffer = bytearray(nbytes)
                _read_into(stream, buffer, f"{self.path}: {name}")
                if stream.read(1):  # also reaches the end of the entry, where zipfile checks the CRC
                    raise SavingError(f"{self.path}: {name} is longer than its header says")
        except SavingError:
            raise
        except _ZIP_ERRORS as error:
            raise SavingError(f"{self.path}: {name} is damaged: {error}") from None
        return np.frombuffer(buffer, dtype=declared_dtype).reshape(declared_shape)

    def _read_npy_header(self, stream, name: str):
        prefix = stream.read(_NPY_PREFIX)
        if len(prefix) < 10 or prefix[:6] != b"\x93NUMPY" or prefix[6:8] not in (b"\x01\x00", b"\x02\x00"):
            raise SavingError(f"{self.path}: {name} is not a .npy array")
        major = prefix[6]
        length_size = 2 if major == 1 else 4
        header_length = int.from_bytes(prefix[8 : 8 + length_size], "little")
        if header_length > _MAX_NPY_HEADER:
            raise SavingError(f"{self.path}: {name} has a {header_length}-byte .npy header (limit {_MAX_NPY_HEADER})")
        start = prefix[: 8 + length_size]
        rest = prefix[8 + length_size :] + stream.read(header_length - (len(prefix) - 8 - length_size))
        if len(rest) != header_length:
            raise SavingError(f"{self.path}: {name} ends inside its .npy header")
        source = io.BytesIO(start + rest)
        version = np.lib.format.read_magic(source)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        try:
            shape, fortran_order, dtype = reader(source, max_header_size=_MAX_NPY_HEADER)  # a literal parser, not eval
        except ValueError as error:
            raise SavingError(f"{self.path}: {name} has an invalid .npy header: {error}") from None
        return len(start) + header_length, (tuple(shape), bool(fortran_order), dtype)

    def _read_exactly(self, info, size: int) -> bytes:
        try:
            with self._zip.open(info) as stream:
                data = stream.read(size + 1)  # one byte more: an entry longer than declared is caught
        except _ZIP_ERRORS as error:
            raise SavingError(f"{self.path}: {info.filename} is damaged: {error}") from None
        if len(data) != size:
            raise SavingError(f"{self.path}: {info.filename} holds {len(data)} bytes, its directory entry says {size}")
        return data

    def close(self) -> None:
        if getattr(self, "_zip", None) is not None:
            self._zip.close()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _read_into(stream, buffer: bytearray, where: str) -> None:
    view, filled = memoryview(buffer), 0
    while filled < len(buffer):
        count = stream.readinto(view[filled:])
        if not count:
            raise SavingError(f"{where} ends after {filled} of {len(buffer)} data bytes")
        filled += count


def checked_dtype(dtype, where: str) -> np.dtype:
    """The numpy dtype named by ``dtype`` if it is a plain numeric one (never object or structured)."""
    try:
        result = np.dtype(dtype) if isinstance(dtype, str) else None
    except (TypeError, ValueError):
        result = None
    if result is None or result.kind not in _ALLOWED_KINDS or result.fields is not None or result.subdtype is not None:
        raise SavingError(f"{where}: dtype {dtype!r} is not a numeric dtype")
    return result


def checked_shape(shape, where: str) -> tuple:
    """``shape`` as a tuple of non-negative ints; anything else is an error."""
    if not isinstance(shape, (list, tuple)) or len(shape) > 32 or not all(type(size) is int and size >= 0 for size in shape):
        raise SavingError(f"{where}: shape {shape!r} is not a list of non-negative integers")
    return tuple(shape)
