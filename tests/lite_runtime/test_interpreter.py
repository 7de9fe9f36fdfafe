"""lite_runtime.Interpreter against real LiteRT on exported Keras models and TensorFlow's own file."""

from __future__ import annotations

import pathlib
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lite_runtime
import trainer as tf
from lite_runtime import planner
from exporter.lite import to_lite
from tests.lite_runtime.harness import invoke_allocations

litert = pytest.importorskip("ai_edge_litert.interpreter")
L = tf.keras.layers
FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures"


def _mlp():
    return tf.keras.Sequential([tf.keras.Input((28, 28)), L.Flatten(), L.Dense(32, activation="relu"),
                                L.Dense(10, activation="softmax")])  # fmt: skip


def _cnn():
    return tf.keras.Sequential([tf.keras.Input((12, 12, 3)), L.Conv2D(8, 3, activation="relu", padding="same"),
                                L.MaxPooling2D(), L.Conv2D(4, 3, strides=2), L.Flatten(),
                                L.Dense(10, activation="softmax")])  # fmt: skip


def _depthwise():
    return tf.keras.Sequential([tf.keras.Input((11, 11, 3)), L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
                                L.AveragePooling2D(padding="same"), L.Conv2D(5, 3, dilation_rate=2, activation="relu6"),
                                L.GlobalAveragePooling2D(), L.Dense(4)])  # fmt: skip


def _functional():
    inputs = tf.keras.Input((8,))
    a, b = L.Dense(6)(inputs), L.Dense(6, activation="tanh")(inputs)
    merged = L.Concatenate()([L.Add()([a, b]), a])
    return tf.keras.Model(inputs, L.Dense(3)(L.BatchNormalization()(merged)))


MODELS = {"mlp": (_mlp, (28, 28)), "cnn": (_cnn, (12, 12, 3)), "depthwise": (_depthwise, (11, 11, 3)),
          "functional": (_functional, (8,))}  # fmt: skip


def _reference(data: bytes, x: np.ndarray) -> np.ndarray:
    interpreter = litert.Interpreter(model_content=data)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.fixture(scope="module")
def exported():
    tf.keras.utils.set_random_seed(7)
    return {name: to_lite(build()) for name, (build, _shape) in MODELS.items()}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_matches_litert_at_batch_1_and_5(exported, name, rng):
    data, shape = exported[name], MODELS[name][1]
    interpreter = lite_runtime.Interpreter(model_content=data)
    index = interpreter.get_input_details()[0]["index"]
    for batch in (1, 5):
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        interpreter.resize_tensor_input(index, x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        output = interpreter.get_output_details()[0]
        got = interpreter.get_tensor(output["index"])
        np.testing.assert_allclose(got, _reference(data, x), atol=1e-5, rtol=1e-5)
        assert tuple(output["shape"]) == got.shape and got.shape[0] == batch


def test_model_path_memory_maps_and_details_match_litert(exported, tmp_path):
    path = tmp_path / "mlp.lite"
    path.write_bytes(exported["mlp"])
    ours, theirs = lite_runtime.Interpreter(model_path=str(path)), litert.Interpreter(model_path=str(path))
    ours.allocate_tensors()
    theirs.allocate_tensors()
    for mine, reference in zip(ours.get_input_details() + ours.get_output_details(),
                               theirs.get_input_details() + theirs.get_output_details()):  # fmt: skip
        for key in ("name", "index", "dtype", "quantization"):
            assert mine[key] == reference[key], key
        np.testing.assert_array_equal(mine["shape"], reference["shape"])
        np.testing.assert_array_equal(mine["shape_signature"], reference["shape_signature"])
        assert mine["quantization_parameters"]["quantized_dimension"] == 0
    assert ours.get_signature_list() == theirs.get_signature_list()


def test_tensorflow_converter_file_matches_its_litert_outputs():
    interpreter = lite_runtime.Interpreter(model_path=str(FIXTURES / "tf_small_mlp.tflite"))
    expected = np.load(FIXTURES / "tf_small_mlp.npz")
    (got,) = interpreter.run([expected["inputs"]])
    np.testing.assert_allclose(got, expected["outputs"], atol=1e-5, rtol=1e-5)
    runner = interpreter.get_signature_runner("serving_default")
    outputs = runner(keras_tensor=expected["inputs"][:1])
    np.testing.assert_allclose(outputs["output_0"], expected["outputs"][:1], atol=1e-5, rtol=1e-5)


def test_signature_runner_and_run_with_names(exported, rng):
    data = exported["functional"]
    interpreter = lite_runtime.Interpreter(model_content=data)
    signature = interpreter.get_signature_list()["serving_default"]
    x = rng.standard_normal((3, 8)).astype(np.float32)
    outputs = interpreter.get_signature_runner()(**{signature["inputs"][0]: x})
    assert list(outputs) == signature["outputs"]
    np.testing.assert_allclose(outputs[signature["outputs"][0]], _reference(data, x), atol=1e-5, rtol=1e-5)
    by_name = interpreter.run({signature["inputs"][0]: x})
    np.testing.assert_array_equal(by_name[signature["outputs"][0]], outputs[signature["outputs"][0]])
    with pytest.raises(ValueError, match="signature inputs"):
        interpreter.get_signature_runner()(wrong=x)


def test_calls_out_of_order_name_the_missing_step(exported):
    interpreter = lite_runtime.Interpreter(model_content=exported["mlp"])
    index = interpreter.get_input_details()[0]["index"]
    with pytest.raises(lite_runtime.LiteStateError, match="allocate_tensors"):
        interpreter.set_tensor(index, np.zeros((1, 28, 28), np.float32))
    with pytest.raises(lite_runtime.LiteStateError, match="allocate_tensors"):
        interpreter.invoke()
    interpreter.allocate_tensors()
    interpreter.resize_tensor_input(index, (2, 28, 28))
    with pytest.raises(lite_runtime.LiteStateError, match="resized"):
        interpreter.invoke()
    interpreter.allocate_tensors()
    with pytest.raises(ValueError, match="expects shape"):
        interpreter.set_tensor(index, np.zeros((1, 28, 28), np.float32))


def test_tensor_returns_a_live_view(exported, rng):
    interpreter = lite_runtime.Interpreter(model_content=exported["mlp"])
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    interpreter.tensor(input_index)()[...] = rng.standard_normal((1, 28, 28))
    interpreter.invoke()
    np.testing.assert_array_equal(interpreter.tensor(output_index)(), interpreter.get_tensor(output_index))
    np.testing.assert_allclose(interpreter.get_tensor(output_index).sum(), 1.0, rtol=1e-5)


def test_arena_reuses_memory_between_intermediates(exported):
    interpreter = lite_runtime.Interpreter(model_content=exported["cnn"])
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], (4, 12, 12, 3))
    interpreter.allocate_tensors()
    assert 0 < interpreter.arena_bytes < interpreter.intermediate_bytes


def test_invoke_does_not_grow_memory(exported, rng):
    interpreter = lite_runtime.Interpreter(model_content=exported["cnn"])
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], rng.standard_normal((1, 12, 12, 3)).astype(np.float32))
    held, peak = invoke_allocations(interpreter, invokes=50)
    assert held < 4096
    assert peak < 64 * 1024  # no per-invoke buffers of tensor size (the conv output alone is 4.6 kB)


def test_elementwise_reduce_and_slice_ops_match_litert(rng):
    @tf.function(input_signature=[tf.TensorSpec([None, 4, 6], tf.float32)])
    def mixed(x):
        y = tf.exp(x) + tf.sqrt(tf.abs(x)) * tf.math.rsqrt(tf.square(x) + 1.0) - tf.math.log(tf.abs(x) + 1.0)
        y = tf.transpose(y, [0, 2, 1])
        y = tf.nn.leaky_relu(y, 0.2) + tf.nn.gelu(y) + tf.nn.sigmoid(y) + tf.nn.relu6(y) + tf.tanh(y)
        y = tf.maximum(y, -1.0) / (tf.minimum(y, 2.0) + 3.0)
        z = tf.reduce_sum(y, axis=1) + tf.reduce_mean(y, axis=-1, keepdims=False)[:, :1]
        return tf.nn.softmax(tf.concat([z, tf.reshape(y, [-1, 24])[:, ::3]], axis=1))

    data = to_lite(mixed)
    for batch in (1, 3):
        x = rng.standard_normal((batch, 4, 6)).astype(np.float32)
        (got,) = lite_runtime.Interpreter(model_content=data).run([x])
        np.testing.assert_allclose(got, _reference(data, x), atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")
@pytest.mark.parametrize("source", ["tensorflow", "cnn"])
def test_preserve_all_tensors_keeps_every_intermediate_like_litert(exported, source, rng):
    data = (FIXTURES / "tf_small_mlp.tflite").read_bytes() if source == "tensorflow" else exported["cnn"]
    ours = lite_runtime.Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    theirs = litert.Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    ours.allocate_tensors()
    theirs.allocate_tensors()
    detail = ours.get_input_details()[0]
    x = rng.standard_normal(detail["shape"]).astype(np.float32)
    for interpreter in (ours, theirs):
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
    for tensor in theirs.get_tensor_details():
        index = tensor["index"]
        np.testing.assert_allclose(ours.get_tensor(index), theirs.get_tensor(index), atol=1e-5, rtol=1e-5, err_msg=str(index))
    assert ours.arena_bytes >= ours.intermediate_bytes  # nothing shared


def test_constants_are_read_only_aligned_views_of_the_memory_map(exported, tmp_path):
    for name, data in [("cnn", exported["cnn"]), ("tensorflow", (FIXTURES / "tf_small_mlp.tflite").read_bytes())]:
        path = tmp_path / f"{name}.lite"
        path.write_bytes(data)
        interpreter = lite_runtime.Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        mapped = np.frombuffer(interpreter._data, np.uint8)
        start = mapped.__array_interface__["data"][0]
        constants = [d["index"] for d in interpreter.get_tensor_details() if interpreter.tensor(d["index"])().base is not None
                     and not interpreter.tensor(d["index"])().flags.writeable]  # fmt: skip
        assert len(constants) >= 4, name
        for index in constants:
            array = interpreter.tensor(index)()
            address = array.__array_interface__["data"][0]
            assert start <= address and address + array.nbytes <= start + mapped.size, (name, index)
            # our exporter aligns every buffer to 16 bytes; TensorFlow's converter only to the element size
            assert address % (16 if name == "cnn" else array.itemsize) == 0, (name, index)
    assert len(interpreter.get_tensor_details()) == len(litert.Interpreter(model_path=str(path)).get_tensor_details())


_REQUESTS = st.lists(st.tuples(st.sampled_from([0, 1, 63, 64, 100, 4096]), st.integers(-1, 12), st.integers(0, 4)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(specs=_REQUESTS, share=st.booleans())
def test_planner_never_overlaps_live_buffers(specs, share):
    requests = [planner.Request(size, first, first + length) for size, first, length in specs]
    offsets, total = planner.plan(requests, share=share)
    for i, a in enumerate(requests):
        assert offsets[i] % planner.ALIGNMENT == 0 and offsets[i] + a.size <= total
        for j, b in enumerate(requests[:i]):
            if a.size and b.size and (not share or (a.first <= b.last and b.first <= a.last)):
                assert offsets[i] + a.size <= offsets[j] or offsets[j] + b.size <= offsets[i], (a, b)


def test_planner_handles_a_hostile_number_of_tensors():
    chain = [planner.Request(256, step, step + 1) for step in range(30_000)]  # a hostile file's 30k operators
    kept = [planner.Request(64, step, 10_000) for step in range(10_000)]  # 10k outputs, all live to the end
    started = time.perf_counter()
    assert planner.plan(chain)[1] == 512
    assert planner.plan(kept)[1] == 64 * 10_000
    assert time.perf_counter() - started < 10.0  # a Python loop over all pairs took minutes


def test_reshape_output_is_a_view_of_its_input_and_skips_invoke(exported, rng):
    interpreter = lite_runtime.Interpreter(model_content=exported["mlp"])  # Flatten lowers to RESHAPE
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    flattened = [d["index"] for d in interpreter.get_tensor_details() if tuple(d["shape"]) == (1, 28 * 28)]
    assert len(flattened) == 1
    assert np.shares_memory(interpreter.tensor(flattened[0])(), interpreter.tensor(input_index)())
    x = rng.standard_normal((1, 28, 28)).astype(np.float32)
    interpreter.set_tensor(input_index, x)
    interpreter.invoke()
    np.testing.assert_array_equal(interpreter.get_tensor(flattened[0]), x.reshape(1, -1))


# -- run(): one array, quantized inputs, shape errors; num_threads ----------------------------------------------


@pytest.fixture(scope="module")
def int8_io_mlp():
    tf.keras.utils.set_random_seed(3)
    calibration = np.random.default_rng(4).random((64, 28, 28), dtype=np.float32)
    return to_lite(_mlp(), quantize="int8", calibration=calibration, inference_input_type="int8",
                   inference_output_type="int8")  # fmt: skip


def _round_half_away_reference(values):
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def test_run_quantizes_float_inputs_for_an_int8_input_like_tflites_quantize(int8_io_mlp, rng):
    interpreter = lite_runtime.Interpreter(model_content=int8_io_mlp)
    details = interpreter.get_input_details()[0]
    assert details["dtype"] is np.int8
    scale, zero_point = details["quantization"]
    x = rng.random((5, 28, 28), dtype=np.float32) * 1.2 - 0.1  # some values fall outside the int8 range
    x[0, 0, :4] = np.float32(scale) * np.array([0.5, 2.5, 4.5, 6.5], np.float32)  # ties round away from zero
    scaled = x.astype(np.float32) / np.float32(scale)
    quantized = np.clip(_round_half_away_reference(scaled) + zero_point, -128, 127)
    assert (np.round(scaled) != _round_half_away_reference(scaled)).any()  # the ties are there to be got wrong
    reference = lite_runtime.Interpreter(model_content=int8_io_mlp)
    (expected,) = reference.run([quantized.astype(np.int8)])
    (got,) = interpreter.run([x])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(interpreter.get_tensor(details["index"]), quantized.astype(np.int8))


def test_run_refuses_a_float_input_for_an_int8_input_without_a_scale(int8_io_mlp):
    interpreter = lite_runtime.Interpreter(model_content=int8_io_mlp)
    index = interpreter.get_input_details()[0]["index"]
    tensors = interpreter._model.tensors
    tensors[index] = tensors[index]._replace(scales=np.zeros(0, np.float32), zero_points=np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="is int8 without a quantization scale, got float32"):
        interpreter.run([np.zeros((1, 28, 28), np.float32)])


def test_run_takes_a_single_array_for_a_one_input_model_and_names_a_wrong_shape(exported, rng):
    interpreter = lite_runtime.Interpreter(model_content=exported["mlp"])
    x = rng.standard_normal((5, 28, 28)).astype(np.float32)
    (from_array,) = interpreter.run(x)
    np.testing.assert_allclose(from_array, _reference(exported["mlp"], x), atol=1e-5, rtol=1e-5)
    name = interpreter.get_signature_list()["serving_default"]["inputs"][0]
    with pytest.raises(ValueError, match=rf"^input '{name}' expects \(batch, 28, 28\) float32, got \(5, 784\) float32$"):
        interpreter.run(x.reshape(5, 784))
    with pytest.raises(ValueError, match=r"expects \(batch, 28, 28\) float32, got \(5, 28, 27\)"):
        interpreter.run([x[:, :, :27]])


def test_num_threads_is_accepted_and_kept_as_tflite_users_pass_it(exported):
    assert lite_runtime.Interpreter(model_content=exported["mlp"], num_threads=2).num_threads == 2
    assert lite_runtime.Interpreter(model_content=exported["mlp"]).num_threads is None
    with pytest.raises(ValueError, match="num_threads should be >= 1 or -1"):
        lite_runtime.Interpreter(model_content=exported["mlp"], num_threads=0)
