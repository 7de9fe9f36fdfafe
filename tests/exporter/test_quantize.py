"""Post-training quantization, judged from outside: real LiteRT runs every quantized file, LiteRT's own
generated reader inspects its tensors, and the Keras model's predictions are the reference.

Models are trained for a few seconds on the bundled MNIST subset (4,000 training, 1,000 test images), so
that accuracy losses are measured on real data rather than on random weights.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import trainer as tf
from exporter.errors import ExportError
from exporter.lite import to_lite
from exporter.lite.schema import BuiltinOperator, TensorType
from exporter.lite.verify import verify
from exporter.quantize import quantization_report
from exporter.quantize.report import LayerError, QuantizationReport
from tests.exporter.test_lite import MODELS, _batch, _randomized

litert = pytest.importorskip("ai_edge_litert.interpreter")
generated = pytest.importorskip("ai_edge_litert.schema_py_generated")

L = tf.keras.layers
MODES = ("float16", "dynamic", "int8")
CALIBRATION_IMAGES = 500
# How far LiteRT's outputs on each file may stray from the Keras softmax outputs (probabilities in [0, 1]):
# float16 weights carry 11 significant bits (relative error 2^-11 per weight, averaging out over sums);
# dynamic range quantizes weights and each input row to 8 bits (~1/254 of their range, a few of those
# steps reach the logits); int8 adds activation steps of 1/255 of each calibrated range and a softmax
# output step of 1/256. Measured: 3e-4, 1.3e-2 and 3.2e-2 at most on these models.
OUTPUT_TOLERANCE = {"float16": 2e-3, "dynamic": 0.04, "int8": 0.1}
ACCURACY_LOSS = {"dynamic": 0.003, "int8": 0.005}  # the bounds: 0.3 and 0.5 points


def mnist_mlp():
    return tf.keras.Sequential(
        [L.Flatten(input_shape=(28, 28)), L.Dense(128, activation="relu"), L.Dense(10, activation="softmax")]
    )


def mnist_cnn():
    return tf.keras.Sequential(
        [
            L.Reshape((28, 28, 1), input_shape=(28, 28)),
            L.Conv2D(8, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(16, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dense(10, activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def mnist():
    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data(source="subset")
    return (x_train / 255.0).astype(np.float32), y_train, (x_test / 255.0).astype(np.float32), y_test


@pytest.fixture(scope="module")
def trained(mnist):
    """{name: (model, {mode: file bytes}, Keras test predictions)} for the MLP and the CNN."""
    x_train, y_train, x_test, _ = mnist
    result = {}
    for name, build in (("mlp", mnist_mlp), ("cnn", mnist_cnn)):
        tf.keras.utils.set_random_seed(0)
        model = build()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x_train, y_train, epochs=2, batch_size=32, verbose=0)
        files = {"none": to_lite(model)}
        for mode in MODES:
            calibration = x_train[:CALIBRATION_IMAGES] if mode == "int8" else None
            files[mode] = to_lite(model, quantize=mode, calibration=calibration)
        result[name] = (model, files, model.predict(x_test, verbose=0))
    return result


def _run(data: bytes, inputs: np.ndarray, runtime=None) -> np.ndarray:
    """The first output of ``data`` in LiteRT (or ``runtime``, an interpreter class), in float: int8
    inputs/outputs are converted with their params."""
    interpreter = (runtime or litert.Interpreter)(model_content=data)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], inputs.shape)
    interpreter.allocate_tensors()
    if detail["dtype"] == np.int8:
        scale, zero_point = detail["quantization"]
        inputs = np.clip(np.round(inputs / scale) + zero_point, -128, 127).astype(np.int8)
    interpreter.set_tensor(detail["index"], inputs)
    interpreter.invoke()
    output = interpreter.get_output_details()[0]
    values = interpreter.get_tensor(output["index"])
    if output["dtype"] == np.int8:
        scale, zero_point = output["quantization"]
        values = scale * (values.astype(np.float32) - zero_point)
    return values


class _File:
    """A lite file as LiteRT's generated object API reads it (a reader that shares nothing with ours)."""

    def __init__(self, data: bytes):
        self.model = generated.ModelT.InitFromPackedBuf(bytearray(data), 0)
        self.graph = self.model.subgraphs[0]
        names = {member.value: member.name for member in BuiltinOperator}
        codes = self.model.operatorCodes
        self.codes = [(names[max(code.builtinCode, code.deprecatedBuiltinCode)], code.version) for code in codes]

    def operators(self):
        """(name, version, operator) in execution order."""
        return [(*self.codes[op.opcodeIndex], op) for op in self.graph.operators]

    def tensor(self, index: int):
        return self.graph.tensors[index]

    def data(self, index: int, dtype) -> np.ndarray | None:
        buffer = self.model.buffers[self.tensor(index).buffer].data
        return None if buffer is None else np.frombuffer(bytes(buffer), dtype).reshape(self.tensor(index).shape)

    def metadata(self, name: str) -> bytes:
        entry = next(m for m in self.model.metadata if m.name.decode() == name)
        return bytes(self.model.buffers[entry.buffer].data)


def _keras_weights(model) -> list[np.ndarray]:
    """The Dense and Conv2D kernels in TFLite's layout ([out, ...]) and the biases, in layer order."""
    found = []
    for layer in model.layers:
        weights = [w.numpy() for w in layer.weights]
        if len(weights) == 2:
            kernel, bias = weights
            found.append((np.moveaxis(kernel, -1, 0), bias))
    return found


# -- every mode, both models ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_every_mode_passes_our_verifier_and_runs_close_to_keras_in_litert(trained, mnist, name, mode):
    _, files, reference = trained[name]
    verify(files[mode])
    outputs = _run(files[mode], mnist[2])
    np.testing.assert_allclose(outputs, reference, atol=OUTPUT_TOLERANCE[mode], rtol=0)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_accuracy_loss_stays_within_the_bounds(trained, mnist, name):
    _, files, reference = trained[name]
    labels = mnist[3]
    float_accuracy = (reference.argmax(-1) == labels).mean()
    for mode, allowed in ACCURACY_LOSS.items():
        accuracy = (_run(files[mode], mnist[2]).argmax(-1) == labels).mean()
        assert accuracy >= float_accuracy - allowed, f"{name} {mode}: {accuracy:.4f} vs float {float_accuracy:.4f}"


def test_sizes_shrink_as_the_weights_do(trained):
    files = trained["mlp"][1]
    assert len(files["int8"]) <= 0.27 * len(files["none"])
    assert len(files["dynamic"]) <= 0.27 * len(files["none"])
    assert len(files["float16"]) <= 0.52 * len(files["none"])


@pytest.mark.parametrize(
    "mode, version", [("none", "1.5.0"), ("float16", "1.15.0"), ("dynamic", "2.17.0"), ("int8", "1.14.0")]
)
def test_min_runtime_version_is_what_tensorflows_converter_writes(trained, mode, version):
    # TF 2.21's converter wrote these for the same MLP: DEQUANTIZE v3 needs 1.15, FULLY_CONNECTED v12 2.17.
    assert _File(trained["mlp"][1][mode]).metadata("min_runtime_version").rstrip(b"\0").decode() == version


# -- the layout of each mode, as TFLite's converter writes it ---------------------------------------------


def test_float16_stores_half_weights_behind_dequantize(trained):
    model, files, _ = trained["cnn"]
    lite = _File(files["float16"])
    operators = lite.operators()
    dequantized = {op.outputs[0]: op.inputs[0] for name, version, op in operators if name == "DEQUANTIZE"}
    assert {(n, v) for n, v, _ in operators if n == "DEQUANTIZE"} == {("DEQUANTIZE", 3)}
    for index, tensor in enumerate(lite.graph.tensors):  # no float32 constants are left
        assert not (tensor.type == TensorType.FLOAT32 and lite.data(index, np.float32) is not None)
    for kernel, bias in _keras_weights(model):
        halves = [lite.data(source, np.float16) for source in dequantized.values()]
        assert any(h.shape == kernel.shape and np.array_equal(h, kernel.astype(np.float16)) for h in halves)
        assert any(h.shape == bias.shape and np.array_equal(h, bias.astype(np.float16)) for h in halves)


def test_dynamic_range_writes_hybrid_operators(trained):
    model, files, _ = trained["cnn"]
    lite = _File(files["dynamic"])
    weighted = [(n, v, op) for n, v, op in lite.operators() if n in ("FULLY_CONNECTED", "CONV_2D")]
    for (name, version, op), (kernel, bias) in zip(weighted, _keras_weights(model)):
        weights, bias_tensor = lite.tensor(op.inputs[1]), lite.tensor(op.inputs[2])
        assert bias_tensor.type == TensorType.FLOAT32 and lite.tensor(op.outputs[0]).type == TensorType.FLOAT32
        if kernel.size < 1024:  # TensorFlow's converter leaves small weights in float, and so do we
            assert (name, version, weights.type) == (name, 1, TensorType.FLOAT32)
            continue
        assert weights.type == TensorType.INT8
        assert version == {"FULLY_CONNECTED": 12, "CONV_2D": 5}[name]  # per-channel hybrid forms
        if name == "FULLY_CONNECTED":
            assert op.builtinOptions.asymmetricQuantizeInputs
        _check_symmetric_weights(lite, op.inputs[1], kernel, axis=0)


def _check_symmetric_weights(lite, index, kernel, axis):
    """Per-channel symmetric int8: zero points 0, scale max|w|/127, values within half a step of Keras's."""
    quantization = lite.tensor(index).quantization
    channels = kernel.shape[axis]
    assert quantization.quantizedDimension == axis and len(quantization.scale) == channels
    assert not np.any(quantization.zeroPoint)
    peak = np.abs(np.moveaxis(kernel, axis, 0)).reshape(channels, -1).max(axis=1)
    np.testing.assert_allclose(quantization.scale, peak / 127, rtol=1e-6)
    q = lite.data(index, np.int8).astype(np.float32)
    shape = [1] * kernel.ndim
    shape[axis] = -1
    scales = np.asarray(quantization.scale, np.float32).reshape(shape)
    assert np.abs(q).max() <= 127
    assert np.all(np.abs(q * scales - kernel) <= scales / 2 * (1 + 1e-5))


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_int8_follows_the_tflite_integer_spec(trained, name):
    model, files, _ = trained[name]
    lite = _File(files["int8"])
    operators = lite.operators()
    assert operators[0][:2] == ("QUANTIZE", 1) and operators[-1][:2] == ("DEQUANTIZE", 2)
    versions = {"FULLY_CONNECTED": 4, "CONV_2D": 3, "SOFTMAX": 2, "MAX_POOL_2D": 2, "RESHAPE": 1}
    weighted = []
    for name_, version, op in operators[1:-1]:
        assert version == versions[name_]
        for index in [*op.inputs[:1], *op.outputs]:
            tensor = lite.tensor(index)
            assert tensor.type == TensorType.INT8 and len(tensor.quantization.scale) == 1
            assert -128 <= tensor.quantization.zeroPoint[0] <= 127
        if name_ in ("RESHAPE", "MAX_POOL_2D"):  # their int8 kernels do not rescale
            assert _params(lite, op.inputs[0]) == _params(lite, op.outputs[0])
        if name_ == "SOFTMAX":
            assert _params(lite, op.outputs[0]) == (1 / 256, -128)
        if name_ in ("FULLY_CONNECTED", "CONV_2D"):
            weighted.append(op)
    for op, (kernel, bias) in zip(weighted, _keras_weights(model)):
        _check_symmetric_weights(lite, op.inputs[1], kernel, axis=0)
        bias_tensor = lite.tensor(op.inputs[2])
        assert bias_tensor.type == TensorType.INT32 and not np.any(bias_tensor.quantization.zeroPoint)
        expected_scales = np.float32(_params(lite, op.inputs[0])[0]) * np.asarray(
            lite.tensor(op.inputs[1]).quantization.scale, np.float32
        )
        np.testing.assert_allclose(bias_tensor.quantization.scale, expected_scales, rtol=1e-6)
        q = lite.data(op.inputs[2], np.int32).astype(np.float64)
        assert np.all(np.abs(q * expected_scales - bias) <= expected_scales / 2 * (1 + 1e-5))


def _params(lite, index) -> tuple[float, int]:
    quantization = lite.tensor(index).quantization
    return float(np.float32(quantization.scale[0])), int(quantization.zeroPoint[0])


def test_int8_inputs_and_outputs_drop_the_edge_conversions(trained, mnist):
    model, files, _ = trained["cnn"]
    data = to_lite(
        model, quantize="int8", calibration=mnist[0][:CALIBRATION_IMAGES],
        inference_input_type="int8", inference_output_type=tf.int8,
    )  # fmt: skip
    lite = _File(data)
    assert not {"QUANTIZE", "DEQUANTIZE"} & {name for name, _, _ in lite.operators()}
    interpreter = litert.Interpreter(model_content=data)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert interpreter.get_input_details()[0]["quantization"] == pytest.approx((1 / 255, -128))
    assert interpreter.get_output_details()[0]["quantization"] == pytest.approx((1 / 256, -128))
    # The same integer arithmetic as the float-edged file: equal up to QUANTIZE's rounding of exact halves.
    images = mnist[2][:200]
    np.testing.assert_allclose(_run(data, images), _run(files["int8"], images), atol=1 / 256 + 1e-7, rtol=0)


@pytest.mark.parametrize("name", ["depthwise_cnn", "functional"])
def test_int8_and_dynamic_cover_depthwise_pooling_add_concat_and_tanh(name):
    model = _randomized(MODELS[name]())
    inputs, calibration = _batch(model, 32, seed=1), _batch(model, 128, seed=2)
    reference = model.predict(inputs, verbose=0)
    scale = np.abs(reference).max()
    for mode, tolerance in (("dynamic", 0.05), ("int8", 0.08)):
        data = to_lite(model, quantize=mode, calibration=calibration if mode == "int8" else None)
        interpreter = litert.Interpreter(model_content=data)
        detail = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(detail["index"], inputs.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], inputs)
        interpreter.invoke()
        outputs = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        assert np.abs(outputs - reference).max() <= tolerance * scale, mode


def test_hybrid_depthwise_conv_has_per_channel_weights_on_axis_3():
    model = _randomized(
        tf.keras.Sequential([L.DepthwiseConv2D(3, depth_multiplier=4, input_shape=(6, 6, 32)), L.Flatten(), L.Dense(3)])
    )
    lite = _File(to_lite(model, quantize="dynamic"))
    (name, version, op), = [entry for entry in lite.operators() if entry[0] == "DEPTHWISE_CONV_2D"]
    kernel = model.layers[0].weights[0].numpy().reshape(1, 3, 3, 128)  # TFLite's [1, h, w, in * multiplier]
    assert version == 6
    _check_symmetric_weights(lite, op.inputs[1], kernel, axis=3)


def _constant_operand_functions():
    """tf.functions whose weights are not a layer's: a batched matmul by a constant, a lookup in a constant
    table (an embedding); both big enough (>= 1024 elements) for TensorFlow to quantize them."""
    rng = np.random.default_rng(3)
    weights = tf.constant(rng.uniform(-1, 1, (4, 32, 48)).astype(np.float32))
    table = tf.constant(rng.uniform(-1, 1, (300, 16)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([4, None, 32], tf.float32)])
    def batch_matmul(x):
        return tf.matmul(x, weights)

    @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.int32)])
    def gather(indices):
        return tf.gather(table, indices)

    inputs = {"batch_matmul": rng.standard_normal((4, 6, 32)).astype(np.float32),
              "gather": rng.integers(0, 300, (3, 5)).astype(np.int32)}  # fmt: skip
    return {"batch_matmul": (batch_matmul, weights), "gather": (gather, table)}, inputs


@pytest.mark.parametrize("name", ["batch_matmul", "gather"])
def test_dynamic_range_quantizes_constant_operands_as_tensorflow_does(name):
    # TF 2.21 writes BATCH_MATMUL v4 (per-tensor int8 right operand, asymmetric_quantize_inputs) and, for a
    # constant table, GATHER v2 of per-tensor int8 rows followed by DEQUANTIZE v2.
    functions, inputs = _constant_operand_functions()
    function, constant = functions[name]
    data = to_lite(function, quantize="dynamic")
    lite = _File(data)
    operators = lite.operators()
    if name == "batch_matmul":
        (op_name, version, op), = operators
        assert (op_name, version) == ("BATCH_MATMUL", 4) and op.builtinOptions.asymmetricQuantizeInputs
        weights = op.inputs[1]
    else:
        assert [(n, v) for n, v, _ in operators] == [("GATHER", 2), ("DEQUANTIZE", 2)]
        weights = operators[0][2].inputs[0]
        assert lite.tensor(operators[0][2].outputs[0]).type == TensorType.INT8
    quantization = lite.tensor(weights).quantization
    assert lite.tensor(weights).type == TensorType.INT8 and len(quantization.scale) == 1
    peak = np.abs(constant.numpy()).max()
    assert quantization.scale[0] == pytest.approx(peak / 127, rel=1e-6) and quantization.zeroPoint[0] == 0
    assert len(data) < 0.3 * len(to_lite(function))
    x = inputs[name]
    reference = function(tf.constant(x)).numpy()
    outputs = _run(data, x)
    assert np.abs(outputs - reference).max() <= 0.02 * np.abs(reference).max()
    if name == "gather":  # lite_runtime has no hybrid BATCH_MATMUL kernel yet
        from lite_runtime import Interpreter  # noqa: PLC0415

        np.testing.assert_array_equal(_run(data, x, Interpreter), outputs)


# -- calibration ----------------------------------------------------------------------------------------------


def test_array_dataset_and_generators_calibrate_to_the_same_file(trained, mnist):
    model = trained["mlp"][0]
    images = mnist[0][:256]

    def generator():
        for start in range(0, len(images), 64):
            yield images[start : start + 64]

    def representative_dataset():  # TensorFlow's form: a function yielding [batch] lists
        for start in range(0, len(images), 64):
            yield [images[start : start + 64]]

    sources = {
        "dataset": tf.data.Dataset.from_tensor_slices((images, np.zeros(len(images)))).batch(64),
        "generator": generator(),
        "representative_dataset": representative_dataset,
    }
    expected = to_lite(model, quantize="int8", calibration=images)
    for name, source in sources.items():
        assert to_lite(model, quantize="int8", calibration=source) == expected, name


def test_single_samples_get_a_batch_axis(trained, mnist):
    model = trained["mlp"][0]
    images = mnist[0][:8]
    one_at_a_time = to_lite(model, quantize="int8", calibration=tf.data.Dataset.from_tensor_slices(images))
    assert one_at_a_time == to_lite(model, quantize="int8", calibration=(images[i : i + 1] for i in range(8)))


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"quantize": "int4"}, "is not a quantization mode"),
        ({"quantize": "int8"}, "needs calibration data"),
        ({"quantize": "dynamic", "calibration": np.zeros((2, 28, 28), np.float32)}, "quantize='int8' only"),
        ({"quantize": "dynamic", "inference_input_type": "int8"}, "needs quantize='int8'"),
        ({"quantize": "int8", "calibration": np.zeros((2, 28, 28)), "inference_output_type": "uint8"}, "'float32'"),
        ({"quantize": "int8", "calibration": np.zeros((2, 28, 27), np.float32)}, r"28, 28\), got \(2, 28, 27\)"),
        ({"quantize": "int8", "calibration": np.zeros((5, 784), np.float32)}, r"28, 28\), got \(5, 784\)$"),
        ({"quantize": "int8", "calibration": np.full((2, 28, 28), np.nan, np.float32)}, "NaN"),
        ({"quantize": "int8", "calibration": np.zeros((0, 28, 28), np.float32)}, "no batches"),
        ({"quantize": "int8", "calibration": iter([])}, "no batches"),
        ({"quantize": "int8", "calibration": 3.5}, "is not usable"),
    ],
)
def test_bad_arguments_raise_a_clear_export_error(trained, arguments, message):
    with pytest.raises(ExportError, match=message):
        to_lite(trained["mlp"][0], **arguments)


def test_strict_int8_refuses_an_op_without_an_int8_form():
    model = tf.keras.Sequential([L.Dense(4, activation="exponential", input_shape=(3,))])
    with pytest.raises(ExportError, match=r"int8 quantization: operator EXP \(output '.+'\) has no int8 form.*dynamic"):
        to_lite(model, quantize="int8", calibration=np.ones((4, 3), np.float32), strict_int8=True)
    with pytest.raises(ExportError, match=r"strict_int8=True applies to quantize='int8' only"):
        to_lite(model, quantize="dynamic", strict_int8=True)


def _mixed_models():
    """Models with ops our int8 pass leaves in float32: LayerNormalization's SQUARE and RSQRT between int8
    ops, an EXP that writes the model's output, and one that reads the model's input."""
    layer_norm = tf.keras.Sequential(
        [L.Dense(16, input_shape=(8,)), L.LayerNormalization(), L.Dense(4, activation="softmax")]
    )
    exp_output = tf.keras.Sequential(
        [L.Dense(8, activation="relu", input_shape=(8,)), L.Dense(4, activation="exponential")]
    )
    exp_input = tf.keras.Sequential([L.Activation("exponential", input_shape=(8,)), L.Dense(4)])
    return {"layer_norm": (layer_norm, ["SQUARE", "RSQRT"]), "exp_output": (exp_output, ["EXP"]),
            "exp_input": (exp_input, ["EXP"])}  # fmt: skip


@pytest.mark.parametrize("io_type", ["float32", "int8"])
@pytest.mark.parametrize("name", ["layer_norm", "exp_output", "exp_input"])
def test_ops_without_an_int8_form_stay_float_between_dequantize_and_quantize(name, io_type):
    from lite_runtime import Interpreter  # noqa: PLC0415

    model, float_ops = _mixed_models()[name]
    model = _randomized(model)
    inputs, calibration = _batch(model, 32, seed=1), _batch(model, 128, seed=2)
    expected = rf"{len(float_ops)} operator\(s\) have no int8 form.*strict_int8=True"
    with pytest.warns(UserWarning, match=expected) as caught:
        data = to_lite(model, quantize="int8", calibration=calibration,
                       inference_input_type=io_type, inference_output_type=io_type)  # fmt: skip
    assert all(op in str(caught[0].message) for op in float_ops)
    lite = _File(data)
    operators = lite.operators()
    assert set(float_ops) <= {op_name for op_name, _, _ in operators}
    produced = {index: op_name for op_name, _, op in operators for index in op.outputs}
    for op_name, version, op in operators:
        types = [lite.tensor(index).type for index in (*op.inputs, *op.outputs)]
        if op_name in float_ops:  # float32 in and out; an int8 producer is DEQUANTIZEd (v2) first
            assert set(types) == {TensorType.FLOAT32}
            assert all(produced.get(index) in (None, "DEQUANTIZE", *float_ops) for index in op.inputs)
        elif op_name == "DEQUANTIZE":
            assert (version, types) == (2, [TensorType.INT8, TensorType.FLOAT32])
        elif op_name == "QUANTIZE":
            assert (version, types) == (1, [TensorType.FLOAT32, TensorType.INT8])
        else:
            assert TensorType.FLOAT32 not in types, op_name
    if io_type == "int8":  # the model's own input and output are int8; every conversion is inside
        assert {lite.tensor(lite.graph.inputs[0]).type, lite.tensor(lite.graph.outputs[0]).type} == {TensorType.INT8}
    reference = model.predict(inputs, verbose=0)
    outputs = _run(data, inputs)
    assert np.abs(outputs - reference).max() <= 0.08 * np.abs(reference).max()
    ours = _run(data, inputs, Interpreter)  # our runtime runs the mixed file as LiteRT does
    np.testing.assert_allclose(ours, outputs, atol=0.01 * np.abs(reference).max(), rtol=0)
    report = quantization_report(model, inputs, data)  # the float ops are layers of the report too
    assert set(float_ops) <= {layer.op for layer in report.layers}


# -- the per-layer report ---------------------------------------------------------------------------------------


def test_report_measures_each_layer_against_the_float_file(trained, mnist, tmp_path):
    model, files, _ = trained["cnn"]
    images = mnist[2][:100]
    report = quantization_report(model, images, files["float16"])
    ops = [layer.op for layer in report.layers]
    assert ops == ["RESHAPE", *["CONV_2D", "MAX_POOL_2D"] * 2, "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    # The last layer's error is the whole file's: LiteRT on both files is the outside reference.
    difference = np.abs(_run(files["float16"], images).astype(np.float64) - _run(files["none"], images))
    assert report.layers[-1].max_abs == pytest.approx(difference.max(), rel=1e-3, abs=1e-7)
    assert report.layers[-1].mean_abs == pytest.approx(difference.mean(), rel=1e-3)
    assert report.layers[0].sqnr_db == float("inf")  # the input RESHAPE has no weights to round
    assert all(40 < layer.sqnr_db for layer in report.layers)  # 11-bit weights: far above 8-bit's ~40 dB
    worst = report.worst(2)
    assert len(worst) == 2 and worst[0].sqnr_db <= worst[1].sqnr_db == min(
        layer.sqnr_db for layer in report.layers if layer is not worst[0]
    )
    table = report.table()
    assert len(table.splitlines()) == 2 + len(report.layers) and "SQNR dB" in table
    assert table.count("<- worst") == len(report.standouts())
    png = tmp_path / "report.png"
    assert report.plot(png) == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_on_int8_file_ranks_layers(trained, mnist):
    from lite_runtime.kernels import KERNELS  # noqa: PLC0415

    if BuiltinOperator.QUANTIZE not in KERNELS:
        pytest.skip("lite_runtime has no int8 kernels yet (the runtime half of issue 5)")
    model, files, _ = trained["mlp"]
    report = quantization_report(model, mnist[2][:100], files["int8"])
    assert [layer.op for layer in report.layers] == ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"]
    difference = np.abs(_run(files["int8"], mnist[2][:100]).astype(np.float64) - _run(files["none"], mnist[2][:100]))
    assert report.layers[-1].max_abs == pytest.approx(difference.max(), abs=1 / 256)
    assert report.layers[0].max_abs <= 0.5 / 255  # the input, quantized at MNIST's own step of 1/255
    assert all(20 < layer.sqnr_db < 80 for layer in report.layers[1:])  # 8 bits: ~6 dB a bit, less the noise
    assert report.worst(1)[0] in report.layers[1:]


@pytest.mark.parametrize(
    "sqnrs, marked",
    [
        ([math.inf, 31.0, 29.5, 30.2], []),  # a 4-layer model whose layers are all alike: nothing stands out
        ([math.inf, 40.0, 21.0, 41.0, 23.5, 39.0], [21.0, 23.5]),  # two far below the rest, within 3 dB of each other
        ([math.inf, 40.0, 21.0, 41.0, 25.0, 39.0], [21.0]),  # the second is 4 dB above the worst: not marked
        ([math.inf, 12.0, 40.0, 41.0], [12.0]),
        ([math.inf, math.inf], []),
    ],
)
def test_report_marks_only_layers_that_stand_out(sqnrs, marked):
    layers = [LayerError("FULLY_CONNECTED", f"layer_{k}", 0.1, 0.01, sqnr) for k, sqnr in enumerate(sqnrs)]
    report = QuantizationReport(layers)
    assert [layer.sqnr_db for layer in report.standouts()] == marked
    rows = report.table().splitlines()[2:]
    assert [float(row.split()[5]) for row in rows if row.endswith("<- worst")] == sorted(marked, key=sqnrs.index)


def test_report_chart_without_matplotlib_says_how_to_get_it(trained, mnist, tmp_path, monkeypatch):
    model, files, _ = trained["mlp"]
    report = quantization_report(model, mnist[2][:10], files["float16"])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ExportError, match=r"needs matplotlib: pip install .emberflow\[plot\]"):
        report.plot(tmp_path / "chart.png")


def test_calibration_and_report_do_not_need_litert(trained, mnist, monkeypatch):
    model, files, _ = trained["mlp"]
    for name in [name for name in sys.modules if name.startswith("ai_edge_litert")]:
        monkeypatch.setitem(sys.modules, name, None)  # any import of LiteRT now fails
    assert to_lite(model, quantize="int8", calibration=mnist[0][:CALIBRATION_IMAGES]) == files["int8"]
    assert quantization_report(model, mnist[2][:10], files["float16"]).layers


def test_verification_converts_int8_inputs_and_outputs(trained, mnist, tmp_path):
    from exporter.verify import QUANTIZED_TOLERANCE, verify_file  # noqa: PLC0415

    model, _, reference = trained["mlp"]
    path = tmp_path / "int8_io.lite"
    calibration = mnist[0][:CALIBRATION_IMAGES]
    int8_io = {"inference_input_type": "int8", "inference_output_type": "int8"}
    to_lite(model, path, quantize="int8", calibration=calibration, **int8_io)
    row = verify_file(reference[:200], path, mnist[2][:200], mnist[3][:200], QUANTIZED_TOLERANCE["int8"])
    assert row.passed and row.top1_agreement >= 0.98
