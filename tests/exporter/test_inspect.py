"""``emberflow inspect``: our lite and ONNX files, TensorFlow's .tflite, and damaged files."""

import json
from pathlib import Path

import numpy as np
import pytest

import trainer as tf
from exporter.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from exporter.lite import to_lite  # noqa: PLC0415
    from exporter.onnx import to_onnx  # noqa: PLC0415

    model = tf.keras.Sequential([tf.keras.layers.Flatten(input_shape=(28, 28)), tf.keras.layers.Dense(16, activation="relu"), tf.keras.layers.Dense(10, activation="softmax")])
    folder = tmp_path_factory.mktemp("inspect")
    to_lite(model, folder / "m.lite")
    to_onnx(model, folder / "m.onnx")
    return folder


def test_inspect_lite_lists_ops_tensors_signature_and_metadata(exported, capsys):
    assert main(["inspect", str(exported / "m.lite"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ops"] == {"RESHAPE": 1, "FULLY_CONNECTED": 2, "SOFTMAX": 1}
    assert summary["signatures"][0]["key"] == "serving_default"
    assert summary["parameter_bytes"] >= (784 * 16 + 16 + 16 * 10 + 10) * 4
    assert summary["tensors"][summary["inputs"][0]]["shape_signature"] == [-1, 28, 28]
    assert "min_runtime_version" in summary["metadata"]


def test_inspect_reads_what_tensorflow_wrote(capsys):
    assert main(["inspect", str(FIXTURES / "tf_small_mlp.tflite")]) == 0
    text = capsys.readouterr().out
    for op in ("SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"):
        assert op in text


def test_inspect_onnx(exported, capsys):
    assert main(["inspect", str(exported / "m.onnx"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "onnx" and summary["inputs"][0]["shape"][0] == "batch"


@pytest.mark.parametrize("cut", [8, 100, 1000])
def test_inspect_refuses_truncated_files_with_one_line(exported, tmp_path, capsys, cut):
    damaged = tmp_path / "cut.lite"
    damaged.write_bytes((exported / "m.lite").read_bytes()[:cut])
    assert main(["inspect", str(damaged)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("emberflow inspect:") and "\n" not in error


def test_inspect_refuses_random_bytes(tmp_path, capsys):
    noise = tmp_path / "noise.lite"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert main(["inspect", str(noise)]) == 2
    assert "identifier" in capsys.readouterr().err


def test_inspect_shows_each_tensors_dtype_and_quantization_as_litert_reads_them(capsys):
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    path = FIXTURES / "tf_cnn_int8_io.tflite"
    assert main(["inspect", str(path), "--json"]) == 0
    tensors = {tensor["index"]: tensor for tensor in json.loads(capsys.readouterr().out)["tensors"]}
    for reference in Interpreter(model_path=str(path)).get_tensor_details():
        tensor, parameters = tensors[reference["index"]], reference["quantization_parameters"]
        assert tensor["dtype"] == np.dtype(reference["dtype"]).name
        np.testing.assert_allclose(tensor.get("scale", []), parameters["scales"], rtol=1e-7)
        assert tensor.get("zero_point", []) == parameters["zero_points"].tolist()
        if len(parameters["scales"]) > 1:
            assert tensor["quantized_dimension"] == parameters["quantized_dimension"]
    assert main(["inspect", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    depthwise = next(line for line in lines if line.split()[:2] == ["7", "int8"])
    assert "[per-channel: 16 scales along axis 3, " in depthwise and "zero point 0]" in depthwise
    output = next(line for line in lines if line.endswith("StatefulPartitionedCall_1:0  [scale 0.00390625 zero point -128]"))
    assert output.split()[1] == "int8"
