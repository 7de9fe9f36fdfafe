"""The bundle writer: the files it writes, the manifest it describes them with, and its errors."""

from __future__ import annotations

import json
import pathlib
import re
import zipfile

import numpy as np
import pytest

import trainer as tf
from exporter.cli import main as emberflow
from exporter.lite import to_lite
from exporter.errors import ExportError
from lite_runtime import Interpreter
from web_export import bundle
from web_export.bundle import PAGE_FILES, RUNTIME_FILES


def _read_manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_bundle_of_a_model_holds_the_page_runtime_model_and_manifest(mnist_model, mnist, tmp_path):
    manifest = bundle(mnist_model, tmp_path / "site")

    site = tmp_path / "site"
    assert sorted(p.name for p in site.iterdir()) == sorted(
        [*PAGE_FILES, *RUNTIME_FILES, "model.lite", "manifest.json"]
    )
    assert _read_manifest(site) == manifest
    assert manifest["model"] == {
        "file": "model.lite",
        "format": "lite",
        "quantize": "none",
        "bytes": (site / "model.lite").stat().st_size,
    }
    float_tensor = {"dtype": "float32", "quantization": {"scale": 0.0, "zeroPoint": 0}}
    assert manifest["inputs"] == [{"name": "input", "shape": [-1, 28, 28], **float_tensor}]
    assert manifest["outputs"] == [{"name": "output_0", "shape": [-1, 10], **float_tensor}]
    assert manifest["labels"] == [str(digit) for digit in range(10)]
    assert manifest["preprocessing"] == {
        "kind": "image",
        "height": 28,
        "width": 28,
        "channels": 1,
        "scale": [0, 1],
        "invert": False,
    }
    _, (x_test, _) = mnist
    (outputs,) = Interpreter(model_path=str(site / "model.lite")).run([x_test[:16]])
    np.testing.assert_allclose(outputs, mnist_model.predict(x_test[:16], verbose=0), atol=1e-5)


def test_bundle_takes_a_saved_model_or_copies_a_lite_file(saved_model, tmp_path):
    from_saved = bundle(saved_model, tmp_path / "from_saved", labels=list("abcdefghij"))
    lite_bytes = (tmp_path / "from_saved" / "model.lite").read_bytes()
    (tmp_path / "given.tflite").write_bytes(lite_bytes)

    from_lite = bundle(tmp_path / "given.tflite", tmp_path / "from_lite", labels=list("abcdefghij"))

    assert (tmp_path / "from_lite" / "model.lite").read_bytes() == lite_bytes
    assert from_lite == from_saved
    assert from_saved["labels"] == list("abcdefghij")


def test_quantized_bundle_is_smaller_and_says_how_it_was_quantized(mnist_model, tmp_path):
    float_manifest = bundle(mnist_model, tmp_path / "float")
    manifest = bundle(mnist_model, tmp_path / "dynamic", quantize="dynamic")

    assert manifest["model"]["quantize"] == "dynamic"
    assert manifest["model"]["bytes"] < float_manifest["model"]["bytes"] / 3
    assert manifest["inputs"] == float_manifest["inputs"]  # float in, float out: the page needs no change


def test_page_refers_only_to_files_in_the_bundle(mnist_model, tmp_path):
    bundle(mnist_model, tmp_path)
    html = (tmp_path / "index.html").read_text()
    references = set(re.findall(r'(?:src|href)="([^"]+)"', html))
    for script in ("app.js", "emberflow-lite.js", "emberflow-worker.js"):
        references |= set(re.findall(r'(?:from |new URL\()"\./([^"]+)"', (tmp_path / script).read_text()))
    assert {"app.js", "style.css", "preprocess.js", "emberflow-lite.js", "emberflow-worker.js"} <= references
    assert all((tmp_path / name).is_file() for name in references), sorted(references)


@pytest.fixture(scope="module")
def lite_file(mnist_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lite")
    bundle(mnist_model, folder)
    return folder / "model.lite"


@pytest.mark.parametrize(
    ("make_input", "options", "message"),
    [
        (lambda tmp, lite: tmp / "missing.ember", {}, "no such file"),
        (lambda tmp, lite: 42, {}, "cannot bundle a int"),
        (lambda tmp, lite: _write(tmp / "notes.txt", b"just some text"), {}, "neither a saved model"),
        (lambda tmp, lite: _write(tmp / "cut.lite", lite.read_bytes()[:64]), {}, "the lite file cannot be read"),
        (lambda tmp, lite: lite, {"quantize": "int8"}, "already a lite file"),
        (lambda tmp, lite: lite, {"quantize": "int4"}, "quantize must be one of"),
        (
            lambda tmp, lite: lite,
            {"labels": ["yes", "no"]},
            "got 2 labels, but the model's output 'output_0' has 10 classes",
        ),
    ],
    ids=[
        "missing-file",
        "not-a-model",
        "not-a-model-file",
        "truncated-lite",
        "requantize-lite",
        "unknown-quantize",
        "label-count",
    ],
)
def test_bad_input_raises_export_error_and_writes_nothing(lite_file, tmp_path, make_input, options, message):
    with pytest.raises(ExportError, match=re.escape(message)):
        bundle(make_input(tmp_path, lite_file), tmp_path / "site", **options)
    assert not (tmp_path / "site").exists()


def _dense_model(input_shape, units):
    model = tf.keras.Sequential([tf.keras.Input(input_shape), tf.keras.layers.Dense(units, activation="softmax")])
    model.build((None, *input_shape))
    return model


def test_flat_square_input_is_drawn_as_an_image(tmp_path):
    model = _dense_model((784,), 10)

    manifest = bundle(model, tmp_path / "site")

    assert manifest["inputs"][0]["shape"] == [-1, 784]
    assert manifest["preprocessing"] == {
        "kind": "image",
        "height": 28,
        "width": 28,
        "channels": 1,
        "scale": [0, 1],
        "invert": False,
    }
    # the page hands the model its 28×28 drawing row by row: the flattened image, batch read from the length
    (outputs,) = Interpreter(model_path=str(tmp_path / "site" / "model.lite")).run([np.zeros((1, 784), np.float32)])
    assert outputs.shape == (1, 10)


def test_input_that_is_no_image_needs_preprocessing(tmp_path):
    model = _dense_model((50,), 10)
    with pytest.raises(ExportError, match=re.escape("input 'input' has shape [-1, 50], which is no grayscale image")):
        bundle(model, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()

    preprocessing = {"kind": "image", "height": 5, "width": 10, "channels": 1, "scale": [0, 1], "invert": False}
    assert bundle(model, tmp_path / "site", preprocessing=preprocessing)["preprocessing"] == preprocessing

    with pytest.raises(ExportError, match=re.escape("makes 7×7 = 49 values, but the model's input 'input'")):
        bundle(model, tmp_path / "wrong", preprocessing={**preprocessing, "height": 7, "width": 7})
    with pytest.raises(ExportError, match="preprocessing must be"):
        bundle(model, tmp_path / "text", preprocessing={"kind": "text"})


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (tf.function(lambda x: tf.reduce_sum(x)), "has shape []; the page needs one score per class"),
        (tf.function(lambda x: x * 2.0), "has shape [-1, -1]; the page needs one score per class"),
    ],
    ids=["scalar", "dynamic-classes"],
)
def test_output_without_a_fixed_class_dimension_is_refused(tmp_path, function, message):
    lite = tmp_path / "model.lite"
    to_lite(function, lite, input_signature=[tf.TensorSpec([None, None], tf.float32)])

    with pytest.raises(ExportError, match=re.escape(message)):
        bundle(lite, tmp_path / "site", preprocessing={"kind": "image", "height": 28, "width": 28})
    assert not (tmp_path / "site").exists()


def test_damaged_saved_model_raises_export_error(saved_model, tmp_path):
    damaged = tmp_path / "damaged.ember"
    with zipfile.ZipFile(saved_model) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            target.writestr(item, b"{" if item.filename == "config.json" else source.read(item))

    with pytest.raises(ExportError, match="the saved model cannot be loaded: .*config.json"):
        bundle(damaged, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_file_kind_is_told_from_its_first_bytes_alone(tmp_path, monkeypatch):
    # a big file of the wrong kind (a video, a dataset) is refused without being read into memory
    def read_bytes(path):
        raise AssertionError(f"read the whole of {path}")

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    with pytest.raises(ExportError, match="neither a saved model"):
        bundle(_write(tmp_path / "video.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(4096)), tmp_path / "site")


def test_out_dir_that_is_a_file_is_refused(mnist_model, tmp_path):
    (tmp_path / "site").write_text("taken")
    with pytest.raises(ExportError, match="is not a folder"):
        bundle(mnist_model, tmp_path / "site")


def test_cli_exports_a_web_bundle(saved_model, tmp_path, capsys):
    assert (
        emberflow(
            ["export", str(saved_model), "--format", "web", "-o", str(tmp_path / "site"), "--quantize", "float16"]
        )
        == 0
    )

    assert _read_manifest(tmp_path / "site")["model"]["quantize"] == "float16"
    assert "python -m http.server --directory" in capsys.readouterr().out


def _write(path, data: bytes):
    path.write_bytes(data)
    return path
