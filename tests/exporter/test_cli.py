"""The ``emberflow`` command line: demo, export, verify, run, bench; bad input exits 2 with one clear line."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import trainer as tf
from exporter.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    model = tf.keras.Sequential([tf.keras.layers.Flatten(input_shape=(28, 28)), tf.keras.layers.Dense(16, activation="relu"), tf.keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    model.fit(rng.random((64, 28, 28), dtype=np.float32), rng.integers(0, 10, 64), verbose=0)
    path = tmp_path_factory.mktemp("models") / "mlp.ember"
    model.save(str(path))
    return path


def test_demo_trains_exports_verifies_and_writes_a_report(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "1"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["test_images"] == 1000 and report["epochs"] == 1 and 0.5 < report["test_accuracy"] <= 1.0
    assert [row["format"] for row in report["exports"]] == ["lite", "onnx"]
    for row in report["exports"]:
        assert row["passed"] and row["max_abs_diff"] < 1e-5 and row["top1_agreement"] == 1.0
        assert row["bytes"] == (tmp_path / row["path"].split("/")[-1]).stat().st_size
    variants = {row["quantize"]: row for row in report["lite_variants"]}
    assert list(variants) == ["float32", "float16", "dynamic", "int8"] and all(row["passed"] for row in variants.values())
    assert variants["int8"]["bytes"] <= 0.27 * variants["float32"]["bytes"] and variants["float32"]["latency_ms"] > 0
    assert all(abs(row["accuracy"] - report["test_accuracy"]) <= 0.01 for row in variants.values())
    assert list((tmp_path / "logs").rglob("events.out.tfevents.*")), "the demo leaves a TensorBoard log"
    assert (tmp_path / "training_curves.png").read_bytes().startswith(b"\x89PNG")
    manifest = json.loads((tmp_path / "web" / "manifest.json").read_text())
    assert (tmp_path / "web" / manifest["model"]["file"]).stat().st_size == manifest["model"]["bytes"]
    assert {"index.html", "emberflow-lite.js"} <= {path.name for path in (tmp_path / "web").iterdir()}
    out = capsys.readouterr().out
    assert "lite variant" in out and f"tensorboard --logdir {tmp_path / 'logs'}" in out
    assert f"python -m http.server --directory {tmp_path / 'web'}" in out
    assert "Total params: 101,770" in out and "Test accuracy" in out and "max abs diff" in out
    saved = tmp_path / "mnist_mlp.ember"  # the trained model, ready for `emberflow export` / `verify`
    assert f"Model saved to {saved}" in out
    assert main(["verify", str(saved), str(tmp_path / "mnist_mlp.lite")]) == 0


@pytest.mark.parametrize("suffix", [".lite", ".onnx"])
def test_export_writes_and_verifies(saved_model, tmp_path, capsys, suffix):
    output = tmp_path / f"model{suffix}"
    assert main(["export", str(saved_model), "-o", str(output)]) == 0
    assert output.stat().st_size > 0
    text = capsys.readouterr().out
    assert "[3/3] verifying" in text and " ok" in text


def test_verify_compares_several_files_and_reports_accuracy(saved_model, tmp_path, capsys):
    lite, onnx_file = tmp_path / "m.lite", tmp_path / "m.onnx"
    assert main(["export", str(saved_model), "-o", str(lite), "--no-verify"]) == 0
    assert main(["export", str(saved_model), "-o", str(onnx_file), "--no-verify"]) == 0
    inputs, labels = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(inputs, np.random.default_rng(1).random((20, 28, 28), dtype=np.float32))
    np.save(labels, np.arange(20) % 10)
    capsys.readouterr()
    assert main(["verify", str(saved_model), str(lite), str(onnx_file), "--inputs", str(inputs), "--labels", str(labels)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("lite") for line in lines) and any(line.startswith("onnx") for line in lines)


def test_verify_labels_need_inputs_and_one_label_per_input_row(saved_model, tmp_path, capsys):
    lite = tmp_path / "m.lite"
    assert main(["export", str(saved_model), "-o", str(lite), "--no-verify"]) == 0
    inputs, labels = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(inputs, np.zeros((20, 28, 28), np.float32))
    np.save(labels, np.arange(5) % 10)
    capsys.readouterr()
    assert main(["verify", str(saved_model), str(lite), "--labels", str(labels)]) == 2
    assert capsys.readouterr().err.strip() == (
        "emberflow verify: --labels needs --inputs: the labels are those inputs' classes (without --inputs the data is random)"
    )
    assert main(["verify", str(saved_model), str(lite), "--inputs", str(inputs), "--labels", str(labels)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"emberflow verify: {labels} has 5 labels but {inputs} has 20 inputs; they must match row for row"
    np.save(labels, np.zeros((20, 784), np.float32))
    assert main(["verify", str(saved_model), str(lite), "--inputs", str(inputs), "--labels", str(labels)]) == 2
    assert "labels should be class numbers shaped (N,) or (N, 1), got (20, 784)" in capsys.readouterr().err


def _corrupt_lite(source: Path, target: Path) -> Path:
    """``source`` with its Model table's vtable offset pointing 16 MiB past the end, as a damaged download has."""
    data = bytearray(source.read_bytes())
    root = int.from_bytes(data[0:4], "little")
    data[root : root + 4] = (root - 16777236).to_bytes(4, "little", signed=True)
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("command", ["inspect", "verify", "run"])
def test_a_damaged_lite_file_is_named_with_its_bad_field_by_every_command(saved_model, tmp_path, capsys, command):
    lite = tmp_path / "m.lite"
    assert main(["export", str(saved_model), "-o", str(lite), "--no-verify"]) == 0
    corrupt = _corrupt_lite(lite, tmp_path / "corrupt.lite")
    np.save(tmp_path / "x.npy", np.zeros((2, 28, 28), np.float32))
    arguments = {"inspect": ["inspect", str(corrupt)], "verify": ["verify", str(saved_model), str(corrupt)],
                 "run": ["run", str(corrupt), "--input", str(tmp_path / "x.npy")]}[command]  # fmt: skip
    capsys.readouterr()
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"emberflow {command}: {corrupt}: Model vtable size spans bytes 16777236..16777238")
    assert "\n" not in error


def test_a_closed_pipe_ends_the_command_quietly(run_files):
    import subprocess  # noqa: PLC0415

    _model, folder, _inputs = run_files
    command = [sys.executable, "-m", "exporter.cli", "inspect", str(folder / "m.lite")]
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root)
    process.stdout.close()  # as `| head` does once it has its lines: every write now fails with EPIPE
    error = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and error == ""


def test_litert_s_native_log_stays_off_stderr(run_files, capfd):
    from exporter.verify import run_file  # noqa: PLC0415

    _model, folder, inputs = run_files
    capfd.readouterr()
    assert run_file(folder / "m.lite", inputs).shape == (7, 10)
    assert main(["bench", str(folder / "m.lite"), "--runs", "2"]) == 0
    error = capfd.readouterr().err
    assert "XNNPACK" not in error and "INFO:" not in error


def test_export_check_writes_nothing(saved_model, tmp_path, capsys):
    output = tmp_path / "model.lite"
    assert main(["export", str(saved_model), "-o", str(output), "--check"]) == 0
    assert not output.exists() and "can be exported" in capsys.readouterr().out


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["no-such-command"], "invalid choice"),
        (["export", "missing.ember", "-o", "x.lite"], "no such file"),
        (["export", "{model}", "-o", "x.bin"], "cannot tell the format"),
        (["export", "{model}", "-o", "x.lite", "--quantize", "int8"], "needs --calibration"),
        (["export", "{model}", "-o", "x.onnx", "--quantize", "dynamic"], "use --quantize none for onnx"),
        (["export", "{model}", "-o", "x.lite", "--report", "out"], "--report compares a quantized file"),
        (["export", "{model}", "-o", "x.lite", "--quantize", "int8", "--calibration", "{bad_calibration}"], "got (4, 28, 27)"),
        (["export", "{model}", "-o", "x.lite", "--calibration", "{bad_calibration}"], "inputs have shape"),
        (["export", "{not_a_model}", "-o", "x.lite"], "not an emberflow file"),
        (["export", "{model}", "-o", "x.lite", "--inference-input-type", "int8"], "applies to --quantize int8 only"),
        (["export", "{model}", "-o", "web", "--format", "web", "--quantize", "int8", "--calibration", "{calibration}",
          "--inference-output-type", "int8"], "for lite files only"),
    ],
)
def test_bad_input_exits_2_with_one_line(saved_model, tmp_path, capsys, arguments, message):
    bad_calibration = tmp_path / "bad_calibration.npy"
    np.save(bad_calibration, np.zeros((4, 28, 27), np.float32))
    not_a_model = tmp_path / "fake.ember"
    not_a_model.write_bytes(b"this is not a zip")
    calibration = _calibration_file(tmp_path)
    filled = [a.format(model=saved_model, bad_calibration=bad_calibration, not_a_model=not_a_model,
                       calibration=calibration) for a in arguments]  # fmt: skip
    filled = [str(tmp_path / a) if a in ("x.lite", "x.bin", "x.onnx") else a for a in filled]
    assert main(filled) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "Traceback" not in error


def _calibration_file(tmp_path):
    path = tmp_path / "calibration.npy"
    np.save(path, np.random.default_rng(2).random((64, 28, 28), dtype=np.float32))
    return path


def test_export_quantize_int8_writes_a_smaller_verified_file(saved_model, tmp_path, capsys):
    float_file, int8_file = tmp_path / "float.lite", tmp_path / "int8.lite"
    assert main(["export", str(saved_model), "-o", str(float_file), "--no-verify"]) == 0
    calibration = _calibration_file(tmp_path)
    assert main(["export", str(saved_model), "-o", str(int8_file), "--quantize", "int8", "--calibration", str(calibration)]) == 0
    assert " ok" in capsys.readouterr().out
    assert int8_file.stat().st_size < 0.5 * float_file.stat().st_size


def test_export_int8_inputs_and_outputs_are_verified_through_their_scales(saved_model, tmp_path, capsys):
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    output, calibration = tmp_path / "int8_io.lite", _calibration_file(tmp_path)
    arguments = ["export", str(saved_model), "-o", str(output), "--quantize", "int8", "--calibration", str(calibration)]
    assert main([*arguments, "--inference-input-type", "int8", "--inference-output-type", "int8"]) == 0
    assert " ok" in capsys.readouterr().out
    interpreter = Interpreter(model_path=str(output))
    assert interpreter.get_input_details()[0]["dtype"] == interpreter.get_output_details()[0]["dtype"] == np.int8


def test_export_int8_keeps_ops_without_an_int8_form_in_float_unless_strict(tmp_path, capsys):
    model = tf.keras.Sequential([tf.keras.layers.Dense(4, activation="exponential", input_shape=(3,))])
    model.save(str(tmp_path / "exp.ember"))
    calibration = tmp_path / "calibration.npy"
    np.save(calibration, np.random.default_rng(3).random((32, 3), dtype=np.float32))
    arguments = ["export", str(tmp_path / "exp.ember"), "-o", str(tmp_path / "exp.lite"), "--quantize", "int8",
                 "--calibration", str(calibration)]  # fmt: skip
    assert main(arguments) == 0
    assert "warning: int8 quantization: 1 operator(s) have no int8 form and stay float32" in capsys.readouterr().err
    assert main([*arguments, "--strict-int8"]) == 2
    assert "operator EXP" in capsys.readouterr().err


def test_export_report_writes_the_table_and_chart(saved_model, tmp_path, capsys):
    report = tmp_path / "report"
    output = tmp_path / "half.lite"
    assert main(["export", str(saved_model), "-o", str(output), "--quantize", "float16", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    table = (report / "quantization_report.txt").read_text()
    assert "SQNR dB" in table and table.strip() in out and "FULLY_CONNECTED" in table
    assert (report / "quantization_report.png").read_bytes()[:4] == b"\x89PNG"


def test_export_int8_report_as_the_issue_shows_it(saved_model, tmp_path, capsys):
    from exporter.lite.schema import BuiltinOperator  # noqa: PLC0415
    from lite_runtime.kernels import KERNELS  # noqa: PLC0415

    if BuiltinOperator.QUANTIZE not in KERNELS:
        pytest.skip("lite_runtime has no int8 kernels yet (the runtime half of issue 5)")
    calibration, report = _calibration_file(tmp_path), tmp_path / "report"
    arguments = ["export", str(saved_model), "-o", str(tmp_path / "m.lite"), "--quantize", "int8"]
    assert main([*arguments, "--calibration", str(calibration), "--report", str(report)]) == 0
    assert "worst layers" in capsys.readouterr().out and (report / "quantization_report.png").exists()


@pytest.fixture(scope="module")
def run_files(saved_model, tmp_path_factory):
    """The saved MLP as float lite and ONNX files and as a full-int8 lite file with int8 input and output."""
    from exporter.lite import to_lite  # noqa: PLC0415
    from exporter.onnx import to_onnx  # noqa: PLC0415

    model = tf.keras.models.load_model(str(saved_model))
    folder = tmp_path_factory.mktemp("run")
    to_lite(model, folder / "m.lite")
    to_onnx(model, folder / "m.onnx")
    rng = np.random.default_rng(4)
    to_lite(model, folder / "int8_io.lite", quantize="int8", calibration=rng.random((64, 28, 28), dtype=np.float32),
            inference_input_type="int8", inference_output_type="int8")  # fmt: skip
    inputs = rng.random((7, 28, 28), dtype=np.float32)
    np.save(folder / "x.npy", inputs)
    return model, folder, inputs


@pytest.mark.parametrize("name", ["m.lite", "m.onnx"])
def test_run_gives_the_models_outputs_and_the_top_classes(run_files, capsys, name):
    model, folder, inputs = run_files
    output = folder / f"{name}.npy"
    assert main(["run", str(folder / name), "--input", str(folder / "x.npy"), "--output", str(output), "--top", "2"]) == 0
    expected = model.predict(inputs, verbose=0)
    np.testing.assert_allclose(np.load(output, allow_pickle=False), expected, atol=1e-5)
    text = capsys.readouterr().out
    first, second = np.argsort(-expected[0])[:2]
    assert f"row 0: {first} (" in text and f"), {second} (" in text and "probability" in text
    assert "row 4:" in text and "row 5:" not in text and "2 more row(s)" in text and f"wrote {output}" in text


def test_run_gives_a_single_sample_its_batch_axis(run_files, tmp_path):
    model, folder, inputs = run_files
    np.save(tmp_path / "one.npy", inputs[3])
    assert main(["run", str(folder / "m.lite"), "--input", str(tmp_path / "one.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model.predict(inputs[3:4], verbose=0), atol=1e-5)


def test_run_quantizes_float_inputs_of_an_int8_input_file_as_litert_users_do(run_files, tmp_path, capsys):
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    _model, folder, inputs = run_files
    path, output = folder / "int8_io.lite", tmp_path / "y.npy"
    assert main(["run", str(path), "--input", str(folder / "x.npy"), "--output", str(output)]) == 0
    assert "input 'input' is int8: quantized with scale" in capsys.readouterr().out
    litert = Interpreter(model_path=str(path))
    source, target = litert.get_input_details()[0], litert.get_output_details()[0]
    scale, zero_point = source["quantization"]
    litert.resize_tensor_input(source["index"], inputs.shape)
    litert.allocate_tensors()
    litert.set_tensor(source["index"], np.clip(np.round(inputs / scale) + zero_point, -128, 127).astype(np.int8))
    litert.invoke()
    output_scale, output_zero_point = target["quantization"]
    expected = output_scale * (litert.get_tensor(target["index"]).astype(np.float32) - output_zero_point)
    np.testing.assert_allclose(np.load(output), expected, atol=1.01 * output_scale)  # within one int8 step


def test_run_takes_int8_inputs_as_they_are(tmp_path):
    fixture = np.load(FIXTURES / "tf_mnist_mlp_int8_io.npz")
    np.save(tmp_path / "x.npy", fixture["inputs"])
    path = FIXTURES / "tf_mnist_mlp_int8_io.tflite"
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    scale, zero_point = Interpreter(model_path=str(path)).get_output_details()[0]["quantization"]
    litert_outputs = scale * (fixture["outputs"].astype(np.float32) - zero_point)  # LiteRT's, stored by the fixture
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), litert_outputs, atol=1.01 * scale)


def test_run_splits_rows_into_a_fixed_batch_and_writes_several_outputs_as_npz(tmp_path):
    dense = tf.keras.layers.Dense(3, input_shape=(4,))
    model = tf.keras.Sequential([dense])
    function = tf.function(lambda x: [model(x), tf.nn.softmax(model(x))], input_signature=[tf.TensorSpec([2, 4], tf.float32)])
    from exporter.lite import to_lite  # noqa: PLC0415

    to_lite(function, tmp_path / "fixed.lite")
    inputs = np.random.default_rng(5).random((6, 4), dtype=np.float32)
    np.save(tmp_path / "x.npy", inputs)
    assert main(["run", str(tmp_path / "fixed.lite"), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    with np.load(tmp_path / "y.npz", allow_pickle=False) as outputs:
        logits, probabilities = (outputs[name] for name in outputs.files)
    np.testing.assert_allclose(logits, model.predict(inputs, verbose=0), atol=1e-5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    np.save(tmp_path / "x5.npy", inputs[:5])
    assert main(["run", str(tmp_path / "fixed.lite"), "--input", str(tmp_path / "x5.npy")]) == 2


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["run", "missing.lite", "--input", "{x}"], "missing.lite: no such file"),
        (["run", "{lite}", "--input", "missing.npy"], "missing.npy: no such input file"),
        (["run", "{lite}", "--input", "{bad_shape}"], "input 'input' expects (batch, 28, 28) float32, got (4, 28, 27) float32"),
        (["run", "{onnx}", "--input", "{integers}"], "takes float values, got int64"),
        (["run", "{garbage_lite}", "--input", "{x}"], "identifier"),
        (["run", "{garbage_onnx}", "--input", "{x}"], "not a runnable ONNX file"),
        (["run", "{text}", "--input", "{x}"], "unknown exported file type '.txt'"),
        (["bench", "{garbage_lite}"], "identifier"),
        (["bench", "{lite}", "--runs", "0"], "must be at least 1"),
    ],
)
def test_run_and_bench_refuse_bad_input_with_one_line(run_files, tmp_path, capsys, arguments, message):
    _model, folder, _inputs = run_files
    np.save(tmp_path / "bad_shape.npy", np.zeros((4, 28, 27), np.float32))
    np.save(tmp_path / "integers.npy", np.zeros((4, 28, 28), np.int64))
    for name in ("garbage.lite", "garbage.onnx", "model.txt"):
        (tmp_path / name).write_bytes(b"not a model at all" * 8)
    files = {"x": folder / "x.npy", "lite": folder / "m.lite", "onnx": folder / "m.onnx", "bad_shape": tmp_path / "bad_shape.npy",
             "integers": tmp_path / "integers.npy", "garbage_lite": tmp_path / "garbage.lite",
             "garbage_onnx": tmp_path / "garbage.onnx", "text": tmp_path / "model.txt"}  # fmt: skip
    filled = [argument.format(**files) if argument.startswith("{") else argument for argument in arguments]
    filled = [str(tmp_path / a) if a.startswith("missing") else a for a in filled]
    assert main(filled) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error and error.startswith(f"emberflow {arguments[0]}:")


def test_bench_prints_the_table_and_writes_json(run_files, tmp_path, capsys):
    _model, folder, _inputs = run_files
    report_path = tmp_path / "bench.json"
    assert main(["bench", str(folder / "m.lite"), "--batch", "4", "--runs", "5", "--json", str(report_path)]) == 0
    captured = capsys.readouterr()
    report = json.loads(report_path.read_text())
    rows = {row["system"]: row for row in report["rows"]}
    assert report["input_shapes"] == [[4, 28, 28]] and report["runs"] == 5 and set(rows) == {"emberflow", "litert"}
    ours, litert = rows["emberflow"], rows["litert"]
    assert 0 < ours["median_ms"] <= ours["p99_ms"] and 0 < litert["median_ms"] <= litert["p99_ms"]
    assert ours["samples_per_second"] == pytest.approx(4e3 / ours["median_ms"], rel=1e-3)
    assert litert["emberflow_over_peer"] == pytest.approx(ours["median_ms"] / litert["median_ms"], rel=1e-2)
    assert "LiteRT" in captured.out and f"{ours['median_ms']:.4f}" in captured.out and "emberflow/peer" in captured.out
    assert "[1/2] emberflow lite_runtime" in captured.err and "[2/2] LiteRT" in captured.err


def test_bench_onnx_and_a_peer_that_is_not_installed(run_files, monkeypatch, capsys):
    _model, folder, _inputs = run_files
    assert main(["bench", str(folder / "m.onnx"), "--runs", "3", "--json"]) == 0
    rows = {row["system"]: row for row in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["onnxruntime"]["median_ms"] > 0 and rows["emberflow"]["median_ms"] is None
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # as if LiteRT were not installed
    assert main(["bench", str(folder / "m.lite"), "--runs", "3"]) == 0
    litert_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("LiteRT"))
    assert "(not installed)" in litert_line


def test_help_lists_every_command_with_a_description(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    commands = re.search(r"\{([a-z,]+)\}", text).group(1).split(",")
    assert {"demo", "export", "inspect", "verify", "run", "bench"} <= set(commands)
    for command in commands:
        assert re.search(rf"^ +{command} +\w", text, re.MULTILINE), f"{command} has no one-line description"
