"""The JS runtime (web_export/js/emberflow-lite.js) computes what the Python lite runtime computes.

Exports small models (the MNIST MLP, a CNN, a functional model with merges) in every quantization mode
that exports, runs each file in ``lite_runtime.Interpreter`` on real MNIST images, and writes the file,
the inputs and the expected outputs (raw little-endian .bin files and a JSON manifest) into a folder.
``node --test tests/web/js/`` then runs the JS runtime on every case and must exit with 0. Two traced
functions cover the operators beyond layers; where the Python runtime has no kernel for one (comparisons,
ROUND, ONE_HOT, ...), LiteRT judges instead (its reference kernels where it has them). The
TensorFlow-converted fixtures in tests/fixtures are judged by the outputs stored beside them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import lite_runtime
import trainer as tf
from exporter.errors import ExportError
from exporter.lite import to_lite
from exporter.lite.builder import serialize
from exporter.lite.model import build_model
from exporter.quantize import quantize_model
from exporter.source import as_inference_graph
from lite_runtime.reader import read_model
from trainer.keras.datasets import mnist

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
MODES = ("none", "float16", "dynamic", "int8")
L = tf.keras.layers
# the functional model's LayerNormalization stays float inside the int8 export, as the quantizer says
pytestmark = pytest.mark.filterwarnings("ignore:int8 quantization:UserWarning")


def _mnist_images(count: int) -> np.ndarray:
    (x_train, _), _ = mnist.load_data(source="subset")
    pick = np.random.default_rng(0).choice(len(x_train), count, replace=False)
    return (x_train[pick] / np.float32(255)).astype(np.float32)


def _models():
    images = _mnist_images(64)
    (x_train, y_train), _ = mnist.load_data(source="subset")
    tf.keras.utils.set_random_seed(0)
    mlp = tf.keras.Sequential([tf.keras.Input((28, 28)), L.Flatten(), L.Dense(128, activation="relu"),
                               L.Dense(10, activation="softmax")])  # fmt: skip
    mlp.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    mlp.fit((x_train[:1000] / np.float32(255)).astype(np.float32), y_train[:1000], epochs=1, batch_size=100, verbose=0)
    cnn = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), L.Conv2D(8, 3, activation="relu"), L.MaxPooling2D(),
                               L.DepthwiseConv2D(3, padding="same"), L.ZeroPadding2D(1), L.Conv2D(16, 3, strides=2, activation="relu6"),
                               L.AveragePooling2D(), L.Flatten(), L.Dense(10, activation="softmax")])  # fmt: skip
    inputs = tf.keras.Input((28, 28))
    flat = L.Flatten()(inputs)
    a = L.Dense(12, activation="sigmoid")(flat)
    b = L.Dense(12, activation="tanh")(flat)
    merged = L.Concatenate()([L.Add()([a, b]), L.Multiply()([a, b]), L.Subtract()([a, b])])
    image = L.Permute((2, 1, 3))(L.ZeroPadding2D(1)(L.Reshape((6, 6, 1))(L.LayerNormalization()(merged))))
    pooled = L.GlobalAveragePooling2D()(L.LeakyReLU(0.2)(image))
    functional = tf.keras.Model(inputs, L.Dense(5)(pooled))
    return [("mlp", mlp, images), ("cnn", cnn, images[..., None]), ("functional", functional, images)]


@tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32)])
def _selections(x):
    """Comparisons, logic, selection, arg-reductions, one-hot, rounding and fills: the ops beyond layers."""
    big, small = tf.greater(x, 0.5), tf.less_equal(x, 0.2)
    neither = tf.logical_and(tf.logical_not(tf.logical_or(big, small)), tf.not_equal(x, 0.3))
    picked = tf.where(big, x, -x)
    hot = tf.one_hot(tf.cast(tf.argmax(x, axis=1), tf.int32), 6)
    rounded = tf.round(x * 4.0)
    steps = tf.math.floordiv(rounded - 2.0, 3.0) + tf.math.floormod(rounded - 2.0, 3.0)
    flags = tf.cast(neither, tf.float32) + tf.cast(tf.greater_equal(x, 0.4), tf.float32) + tf.cast(tf.less(x, 0.1), tf.float32)
    lowest = tf.cast(tf.argmin(x, axis=1), tf.float32)[:, None]
    spread = tf.reduce_max(x, axis=1, keepdims=True) * tf.ones_like(x) + tf.zeros_like(x)
    return {"selected": picked + hot + steps + flags + lowest + spread + tf.cast(tf.equal(x, x), tf.float32)}


@tf.function(input_signature=[tf.TensorSpec([None, 4, 6], tf.float32)])
def _arithmetic(x):
    """Unary math, binary arithmetic, reductions, batch matmul, gather and constant padding."""
    y = tf.abs(x) + 0.5
    a = tf.exp(-y) + tf.math.log(y) + tf.sqrt(y) + tf.math.rsqrt(y) + tf.floor(x * 3.0) + tf.math.ceil(x * 3.0)
    b = tf.sin(x) + tf.cos(x) + tf.sign(x - 0.5) + tf.nn.relu(x - 0.5) + tf.nn.relu6(x * 8.0)
    c = tf.maximum(x, 0.3) / tf.minimum(y, 0.9) + tf.pow(y, 1.5) + tf.nn.log_softmax(x)
    d = tf.reduce_sum(x, axis=2, keepdims=True) + tf.reduce_prod(y, axis=2, keepdims=True) + tf.reduce_min(x, axis=2, keepdims=True)
    padded = tf.pad(x, [[0, 0], [1, 1], [0, 0]], constant_values=2.0)
    return {"values": a + b + c + d, "products": tf.matmul(x, x, transpose_b=True), "picked": tf.gather(x, [2, 0], axis=1),
            "padded": padded * tf.reduce_mean(x, axis=1, keepdims=True)}  # fmt: skip


_WEIGHTS = np.random.default_rng(2)
_BROADCAST, _ADJ_X, _ADJ_Y = (_WEIGHTS.standard_normal(shape).astype(np.float32) for shape in ((2, 32, 20), (6, 200), (2, 40, 32)))
_TABLE = _WEIGHTS.standard_normal((64, 24)).astype(np.float32)


@tf.function(input_signature=[tf.TensorSpec([None, 2, 6, 32], tf.float32)])
def _matmuls(x):
    """BATCH_MATMUL on constant right operands: hybrid (int8 weights) in a dynamic-range export."""
    return {"broadcast": tf.matmul(x, tf.constant(_BROADCAST)), "adj_x": tf.matmul(x, tf.constant(_ADJ_X), transpose_a=True),
            "adj_y": tf.matmul(x, tf.constant(_ADJ_Y), transpose_b=True)}  # fmt: skip


@tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32)])
def _islands(x):
    """A GATHER from a constant table (int8 rows + DEQUANTIZE when quantized), and in a full-int8 export,
    float islands: EXP, SQUARE and RSQRT between DEQUANTIZE and QUANTIZE."""
    ids = tf.cast(tf.minimum(tf.maximum(x * 16.0 + 32.0, 0.0), 63.0), tf.int32)
    return {"rows": tf.gather(tf.constant(_TABLE), ids), "y": tf.exp(x * 0.5) + tf.math.rsqrt(tf.square(x) + 1.0)}


def _int8_file(layers, shape, calibration, code: int | None = None, output_scale: float = 1.0) -> bytes:
    """A full-int8 file of a Sequential model; the output scale of each ``code`` operator is set to its input
    scale times ``output_scale`` (the zero point kept)."""
    tf.keras.utils.set_random_seed(3)
    lite = build_model(as_inference_graph(tf.keras.Sequential([tf.keras.Input(shape), *layers]), None))
    quantize_model(lite, "int8", serialize(lite), calibration)
    for operator in lite.operators:
        if lite.operator_codes[operator.opcode_index][0] == code:
            source = lite.tensors[operator.inputs[0]].quantization
            lite.tensors[operator.outputs[0]].quantization = type(source)([source.scale[0] * output_scale], source.zero_point)
    return serialize(lite)


def _int8_cases(rng):
    """(name, file, input) of single-layer int8 files: a MEAN over 16 values with its input's scale, whose sums
    land on exact halves (negative ones too) wherever they are ≡ 8 modulo 16, where requantization that rounds
    twice, or ties away from zero, answers otherwise; LEAKY_RELU as XNNPACK computes it, and with a scale
    ratio outside XNNPACK's limits, as TFLite's own kernel does."""
    images, rows = rng.standard_normal((40, 4, 4, 6)).astype(np.float32), rng.standard_normal((40, 64)).astype(np.float32)
    mean = _int8_file([L.Conv2D(6, 1, activation="relu"), L.GlobalAveragePooling2D(), L.Dense(5)], (4, 4, 6), images[:32], 40)
    leaky = [L.Dense(64), L.Reshape((8, 8)), L.LeakyReLU(0.3), L.Flatten(), L.Dense(5)]
    return [("int8_mean_ties", mean, images[32:]), ("int8_leaky_relu", _int8_file(leaky, (64,), rows[:32]), rows[32:] * 2),
            ("int8_leaky_relu_ref", _int8_file(leaky, (64,), rows[:32], 98, 300.0), rows[32:] * 2)]  # fmt: skip


def _symmetric_hybrid(model) -> bytes:
    """A dynamic-range file whose FULLY_CONNECTED quantize their input symmetrically (TensorFlow writes
    asymmetric_quantize_inputs=True; older converters did not), to cover the other hybrid path."""
    lite = build_model(as_inference_graph(model, None))
    quantize_model(lite, "dynamic")
    for operator in lite.operators:
        if "asymmetric_quantize_inputs" in operator.options:
            operator.options["asymmetric_quantize_inputs"] = False
    return serialize(lite)


def _signature(data: bytes) -> tuple[str, list[str]]:
    """The input name and output names of a file's serving_default signature (tensor names without one)."""
    model = read_model(data)
    signature = model.signatures.get("serving_default")
    if signature:
        return next(iter(signature["inputs"])), list(signature["outputs"])
    return model.tensors[model.inputs[0]].name, [model.tensors[i].name for i in model.outputs]


def _reference(data: bytes, x: np.ndarray) -> tuple[dict[str, np.ndarray], str]:
    """The outputs by name of ``lite_runtime``, or of LiteRT where it cannot run the file yet: its default
    interpreter for a file with int8 activations (it requantizes as ours do, rounding once), else its
    reference kernels (plain float32 arithmetic; XNNPACK quantizes hybrid inputs its own way)."""
    input_name, _ = _signature(data)
    try:
        return lite_runtime.Interpreter(model_content=data).run({input_name: x}), "lite_runtime"
    except lite_runtime.LiteFormatError:
        from ai_edge_litert import interpreter as litert  # noqa: PLC0415

        model = read_model(data)
        int8_activations = any(t.dtype == np.int8 and t.data is None for t in model.tensors)
        resolver = litert.OpResolverType.AUTO if int8_activations else litert.OpResolverType.BUILTIN_REF
        try:
            interpreter = litert.Interpreter(model_content=data, experimental_op_resolver_type=resolver)
            reference = f"litert-{resolver.name.lower()}"
        except ValueError:  # an op without a reference kernel (ROUND): LiteRT's builtin kernels judge
            interpreter, reference = litert.Interpreter(model_content=data), "litert"
        return interpreter.get_signature_runner()(**{input_name: x}), reference


def _write_case(folder: Path, name: str, data: bytes, x: np.ndarray, outputs: dict, reference: str) -> dict:
    (folder / f"{name}.lite").write_bytes(data)

    def entry(array: np.ndarray, file_name: str, tensor_name: str) -> dict:
        array = np.ascontiguousarray(array)
        array.astype(array.dtype.newbyteorder("<")).tofile(folder / file_name)
        return {"name": tensor_name, "dtype": array.dtype.name, "shape": list(array.shape), "file": file_name}

    return {
        "name": name,
        "file": f"{name}.lite",
        "reference": reference,
        "inputs": [entry(x, f"{name}.input.bin", _signature(data)[0])],
        "outputs": [entry(o, f"{name}.output{k}.bin", n) for k, (n, o) in enumerate(outputs.items())],
    }


def _same_padding_cnn():
    tf.keras.utils.set_random_seed(3)
    return tf.keras.Sequential([tf.keras.Input((11, 13, 3)), L.Conv2D(8, 3, padding="same", activation="relu"),
                                L.MaxPooling2D((3, 3), strides=2, padding="same"),
                                L.Conv2D(40, (2, 3), strides=(1, 2), padding="same"),
                                L.MaxPooling2D((2, 2), padding="same"), L.Flatten(), L.Dense(7)])  # fmt: skip


def write_cases(folder: Path) -> None:
    """Writes every case (file, inputs, expected outputs) and ``manifest.json`` into ``folder``."""
    manifest, skipped = [], []
    for model_name, model, images in _models():
        for mode in MODES:
            name = f"{model_name}_{mode}"
            try:
                data = to_lite(model, quantize=mode, calibration=images[:32] if mode == "int8" else None)
            except ExportError as error:  # an op without an int8 form, say: reported in the manifest
                skipped.append(f"{name}: {type(error).__name__}: {error}")
                continue
            for batch in (1, 3):
                x = images[32 : 32 + batch]
                outputs, reference = _reference(data, x)
                manifest.append(_write_case(folder, f"{name}_batch{batch}", data, x, outputs, reference))
        if model_name == "mlp":
            data, x = _symmetric_hybrid(model), images[32:35]
            manifest.append(_write_case(folder, "mlp_dynamic_symmetric", data, x, *_reference(data, x)))
    rng = np.random.default_rng(1)
    for name, function, x in (("selections", _selections, rng.random((4, 6), dtype=np.float32)),
                              ("arithmetic", _arithmetic, rng.random((3, 4, 6), dtype=np.float32))):  # fmt: skip
        data = to_lite(function)
        manifest.append(_write_case(folder, name, data, x, *_reference(data, x)))
    matmul_input = rng.standard_normal((3, 2, 6, 32)).astype(np.float32)
    matmul_input[1, 0] = 0.0  # an all-zero matrix quantizes its rows with scale 1
    calibration = rng.standard_normal((32, 8)).astype(np.float32)
    for name, data, x in (("matmuls_dynamic", to_lite(_matmuls, quantize="dynamic"), matmul_input),
                          ("islands_dynamic", to_lite(_islands, quantize="dynamic"), calibration[:3]),
                          ("islands_int8", to_lite(_islands, quantize="int8", calibration=calibration), calibration[:3] * 2),
                          *_int8_cases(rng)):  # fmt: skip
        manifest.append(_write_case(folder, name, data, x, *_reference(data, x)))
    same_padding = _same_padding_cnn()  # windows clipped by SAME padding, 40 channels: the SIMD pool's edge cases
    x = rng.standard_normal((2, 11, 13, 3)).astype(np.float32)
    x[x < 0.3] = 0  # many zero inputs: the conv lists only nonzero values
    data = to_lite(same_padding)
    manifest.append(_write_case(folder, "same_padding_cnn", data, x, *_reference(data, x)))
    for path in sorted(FIXTURES.glob("*.tflite")):  # TensorFlow's files; lite_runtime's tests hold it to LiteRT on them
        data, x = path.read_bytes(), np.load(path.with_suffix(".npz"))["inputs"]
        manifest.append(_write_case(folder, path.stem, data, x, *_reference(data, x)))
    (folder / "manifest.json").write_text(json.dumps({"cases": manifest, "skipped": skipped}, indent=1))


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not installed; the JS runtime tests need Node.js 18 or newer")
        pytest.skip("node is not installed: the JS runtime tests need Node.js 18 or newer")
    return path


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("js_cases")
    write_cases(folder)
    return folder


def test_node_runtime_matches_python(node, cases):
    manifest = json.loads((cases / "manifest.json").read_text())
    names = {case["name"] for case in manifest["cases"]}
    missing = [f"{model}_{mode}" for model in ("mlp", "cnn") for mode in MODES if f"{model}_{mode}_batch1" not in names]
    assert not missing, f"these exports failed: {missing}; {manifest['skipped']}"
    result = subprocess.run([node, "--test", str(ROOT / "tests" / "web" / "js")], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "EMBERFLOW_JS_CASES": str(cases)}, timeout=300)  # fmt: skip
    failures = [line for line in result.stdout.splitlines() if line.lstrip().startswith(("not ok", "error:", "# pass", "# fail"))]
    assert result.returncode == 0, "node --test failed:\n" + "\n".join(failures) + f"\n\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
