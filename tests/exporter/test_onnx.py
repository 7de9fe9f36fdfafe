"""ONNX export, judged from outside: onnx.checker (full check), strict shape inference, and onnxruntime
against the model's own predictions, the graph's own evaluator and every op's kernel."""

from __future__ import annotations

import os

import numpy as np
import pytest

import trainer as tf
from exporter.errors import ExportError
from exporter.onnx import MIN_OPSET, check_onnx, default_opset, to_onnx
from tests.trainer.op_cases import CASES
from trainer import dtypes
from trainer.graph import Graph
from trainer.ops.array_ops import index_spec
from trainer.ops.fused_ops import batch_normalization
from trainer.ops.registry import REGISTRY, execute, infer_outputs
from trainer.tensor import Tensor

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

L = tf.keras.layers
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def _randomized(model):
    """``model`` with random weights and batch-norm statistics, so that every weight matters."""
    rng = np.random.default_rng(7)
    for variable in model.weights:
        shape = variable.shape.as_list()
        low_high = (0.5, 2.0) if "moving_variance" in variable.name else (-0.5, 0.5)
        variable.assign(rng.uniform(*low_high, size=shape).astype(np.float32))
    return model


def mnist_mlp():
    return tf.keras.Sequential([
        L.Flatten(input_shape=(28, 28)),
        L.Dense(128, activation="relu"),
        L.Dense(10, activation="softmax"),
    ])


def small_cnn():
    return tf.keras.Sequential([
        L.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
        L.MaxPooling2D(),
        L.Conv2D(64, 3, padding="same"),
        L.MaxPooling2D(),
        L.Flatten(),
        L.Dense(10, activation="softmax"),
    ])


def depthwise_cnn():
    # 15x15 makes the SAME average pool pad one side: TF averages over real pixels only.
    return tf.keras.Sequential([
        L.Conv2D(8, 3, padding="same", input_shape=(15, 15, 3)),
        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu"),
        L.AveragePooling2D(padding="same"),
        L.GlobalAveragePooling2D(),
        L.Dense(4),
    ])


def branching_functional():
    inputs = tf.keras.Input(shape=(12,))
    left = L.Dense(8, activation="relu")(inputs)
    right = L.Dense(8, activation="tanh")(inputs)
    merged = L.Dropout(0.5)(L.BatchNormalization()(L.Add()([left, right])))
    outputs = L.Dense(3, activation="softmax")(L.Concatenate()([merged, left]))
    return tf.keras.Model(inputs, outputs)


MODELS = {"mlp": mnist_mlp, "cnn": small_cnn, "depthwise_cnn": depthwise_cnn, "functional": branching_functional}


def _session(source, provider="CPUExecutionProvider"):
    content = source.SerializeToString() if hasattr(source, "SerializeToString") else str(source)
    return ort.InferenceSession(content, providers=[provider])


def _run(exported, images):
    """The first output of an exported single-input model on ``images``, from onnxruntime on CPU."""
    session = _session(exported)
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def _batch(model, size, seed=0):
    shape = (size, *model.inputs[0].shape.as_list()[1:])
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_exported_model_predicts_like_keras_at_any_batch_size(name, tmp_path):
    model = _randomized(MODELS[name]())
    path = tmp_path / f"{name}.onnx"
    to_onnx(model, path)
    session = _session(path)
    for size in (1, 5):
        images = _batch(model, size, seed=size)
        (result,) = session.run(None, {session.get_inputs()[0].name: images})
        np.testing.assert_allclose(result, model.predict(images, verbose=0), **TOLERANCE)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_written_file_passes_full_check_with_a_dynamic_batch(name, tmp_path):
    path = tmp_path / "model.onnx"
    returned = to_onnx(MODELS[name](), path)
    loaded = onnx.load(str(path))
    assert loaded == returned
    onnx.checker.check_model(loaded, full_check=True)
    onnx.shape_inference.infer_shapes(loaded, check_type=True, strict_mode=True)
    assert loaded.producer_name == "emberflow" and loaded.opset_import[0].version == default_opset()
    for value in (*loaded.graph.input, *loaded.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch", value
    assert not [node.op_type for node in loaded.graph.node if "Random" in node.op_type or node.op_type == "Dropout"]


def test_identical_arrays_share_one_initializer():
    model = tf.keras.Sequential([L.Dense(16, input_shape=(8,)), L.Dense(16), L.Dense(16)])
    model.layers[2].kernel.assign(model.layers[1].kernel.numpy())  # equal kernels; the biases are all zeros
    exported = to_onnx(model)
    contents = [onnx.numpy_helper.to_array(tensor) for tensor in exported.graph.initializer]
    for index, first in enumerate(contents):
        assert not any(first.shape == other.shape and np.array_equal(first, other) for other in contents[index + 1 :])
    gemms = [node for node in exported.graph.node if node.op_type == "Gemm"]
    assert len(gemms) == 3 and gemms[1].input[1] == gemms[2].input[1] and len({g.input[2] for g in gemms}) == 1
    assert len(exported.graph.initializer) == 3  # kernel 1, the shared kernel, the shared bias
    images = _batch(model, 3)
    np.testing.assert_allclose(_run(exported, images), model.predict(images, verbose=0), **TOLERANCE)


@pytest.mark.parametrize(("name", "expected"), [("cnn", 2), ("depthwise_cnn", 1)])
def test_conv_stacks_transpose_only_where_the_layout_changes(name, expected):
    nodes = to_onnx(MODELS[name]()).graph.node
    transposes = [node for node in nodes if node.op_type == "Transpose"]
    assert len(transposes) == expected  # NHWC -> NCHW at the input; NCHW -> NHWC before the Flatten
    assert nodes[0].op_type == "Transpose" and nodes[0].input[0] == "input"
    if expected == 2:
        reshape = next(node for node in nodes if node.op_type == "Reshape")
        assert reshape.input[0] == transposes[1].output[0]  # flattened in NHWC order, as the Dense weights expect


def test_a_transpose_into_nchw_cancels_the_layout_transpose():
    filters = tf.constant(np.random.default_rng(1).standard_normal((3, 3, 3, 4)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 3, 7, 7])])
    def nchw_model(images):
        return tf.nn.relu(tf.nn.conv2d(tf.transpose(images, [0, 2, 3, 1]), filters, 1, "SAME"))

    exported = to_onnx(nchw_model)
    assert [node.op_type for node in exported.graph.node] == ["Conv", "Relu", "Transpose"]
    images = np.random.default_rng(2).standard_normal((2, 3, 7, 7)).astype(np.float32)
    np.testing.assert_allclose(_run(exported, images), nchw_model(images).numpy(), **TOLERANCE)


def test_names_come_from_the_layers():
    inputs = tf.keras.Input(shape=(6,), name="features")
    hidden = L.Dense(5, activation="relu", name="hidden")(inputs)
    model = tf.keras.Model(inputs, L.Dense(2, name="scores")(hidden))
    graph = to_onnx(model).graph
    assert [value.name for value in graph.input] == ["features"]
    assert [value.name for value in graph.output] == ["scores"]
    initializers = {tensor.name for tensor in graph.initializer}
    assert {"hidden/kernel", "hidden/bias", "scores/kernel", "scores/bias"} <= initializers
    assert {node.name for node in graph.node} >= {"hidden/Gemm", "hidden/Relu", "scores/Gemm"}


# -- layouts: ops after a convolution run in NCHW and must still compute the NHWC result --------------------

_FILTERS = np.random.default_rng(3).standard_normal((3, 3, 3, 4)).astype(np.float32)
_VECTOR = np.random.default_rng(4).standard_normal(4).astype(np.float32)


def _conv(images):
    return tf.nn.conv2d(images, tf.constant(_FILTERS), 1, "SAME")


AFTER_CONV = {
    "bias_relu": lambda y: tf.nn.relu(y + _VECTOR),
    "binary_rank4": lambda y: y * tf.constant(_VECTOR.reshape(1, 1, 1, 4)) - tf.nn.relu(y),
    "where": lambda y: tf.where(y > 0, y, tf.constant(_VECTOR)),
    "concat_channels": lambda y: tf.concat([y, tf.nn.relu(y)], -1),
    "concat_rows": lambda y: tf.concat([y, tf.nn.sigmoid(y)], 1),
    "global_mean": lambda y: tf.reduce_mean(y, axis=[1, 2]),
    "mean_keepdims": lambda y: tf.nn.relu(tf.reduce_mean(y, axis=[1, 2], keepdims=True)),
    "max_over_rows": lambda y: tf.reduce_max(y, axis=1),
    "softmax_rows": lambda y: tf.nn.log_softmax(tf.nn.softmax(y), axis=1),
    "pad": lambda y: tf.nn.relu(tf.pad(y, [[0, 0], [1, 2], [0, 1], [0, 3]], constant_values=0.5)),
    "transpose": lambda y: tf.transpose(y, [0, 2, 1, 3]),
    "batch_norm": lambda y: batch_normalization(tf.nn.relu(y), _VECTOR, _VECTOR**2 + 1, None, _VECTOR, 1e-3),
    "pools": lambda y: tf.nn.avg_pool2d(tf.nn.max_pool2d(y, 3, 2, "SAME"), 2, 1, "SAME"),
    "depthwise": lambda y: tf.nn.depthwise_conv2d(y, tf.ones([3, 3, 4, 2]), [1, 2, 2, 1], "SAME"),
    "slice": lambda y: y[:, 1:, ::2, 0],
}


@pytest.mark.parametrize("name", sorted(AFTER_CONV))
def test_ops_after_a_convolution_match_the_graph(name):
    follow = AFTER_CONV[name]
    function = tf.function(lambda images: follow(_conv(images)), input_signature=[tf.TensorSpec([None, 7, 7, 3])])
    exported = to_onnx(function)
    images = np.random.default_rng(5).standard_normal((2, 7, 7, 3)).astype(np.float32)
    (result,) = _session(exported).run(None, {exported.graph.input[0].name: images})
    np.testing.assert_allclose(result, function(images).numpy(), rtol=1e-5, atol=1e-4)
    assert sum(node.op_type == "Transpose" for node in exported.graph.node) <= 2


def test_cond_and_while_loop_become_if_and_loop():
    @tf.function(input_signature=[tf.TensorSpec([None, 3])])
    def grow(x):
        x = tf.cond(tf.reduce_sum(x) > 0, lambda: x * 2.0, lambda: -x)
        return tf.while_loop(lambda v: tf.reduce_max(tf.abs(v)) < 50.0, lambda v: v * 3.0 + 1.0, [x])[0]

    exported = to_onnx(grow)
    assert {"If", "Loop"} <= {node.op_type for node in exported.graph.node}
    session = _session(exported)
    for seed in range(4):
        x = np.random.default_rng(seed).standard_normal((seed + 1, 3)).astype(np.float32)
        np.testing.assert_allclose(session.run(None, {"x": x})[0], grow(x).numpy(), **TOLERANCE)


# -- every op against its own kernel ------------------------------------------------------------------------

GRADIENT_OPS = {
    "avg_pool2d_grad", "conv2d_backprop_filter", "conv2d_backprop_input", "depthwise_conv2d_backprop_filter",
    "depthwise_conv2d_backprop_input", "gather_grad", "max_pool2d_grad", "max_pool2d_grad_grad", "strided_slice_grad",
}  # fmt: skip
EXPORTED_OPS = sorted(name for name, op in REGISTRY.items() if not op.training_only and name not in GRADIENT_OPS)


def _single_op_graph(op, arrays, attrs, constants: bool) -> Graph:
    """``op`` applied to graph inputs, or with every input after the first held as a constant."""
    graph = Graph("case")
    values = []
    for index, array in enumerate(arrays):
        if constants and index:
            values.append(graph.constant(array))
        else:
            values.append(graph.input(array.shape, dtypes.of_array(array), name=f"x{index}"))
    specs = infer_outputs(op, tuple(Tensor.symbolic(v.shape, v.dtype) for v in values), attrs)
    graph.outputs = list(graph.add_node(op, values, attrs, specs).outputs)
    return graph


@pytest.mark.parametrize("constants", [False, True], ids=["inputs", "constants"])
@pytest.mark.parametrize("name", EXPORTED_OPS)
def test_every_op_matches_its_kernel_in_onnxruntime(name, constants):
    op = REGISTRY[name]
    for seed in range(3):
        case = CASES[name](np.random.default_rng(seed))
        # float32 as models use it; the cond/while cases hold float64 subgraphs and keep their inputs.
        arrays = [np.asarray(array) for array in case.inputs]
        if name not in ("cond", "while"):
            arrays = [array.astype(np.float32) if array.dtype == np.float64 else array for array in arrays]
        expected = execute(op, [tf.constant(array) for array in arrays], case.attrs)
        expected = [expected] if op.num_outputs == 1 else list(expected)
        graph = _single_op_graph(op, arrays, case.attrs, constants)
        feeds = {value.name: array for value, array in zip(graph.inputs, arrays)}
        results = _session(to_onnx(graph)).run(None, feeds)
        for want, got in zip(expected, results):
            want = want.numpy()
            assert (got.shape, got.dtype) == (want.shape, want.dtype), f"{name} seed {seed}"
            np.testing.assert_allclose(got, want, **TOLERANCE, err_msg=f"{name} seed {seed} attrs {case.attrs}")


def _random_index(rng, shape) -> tuple:
    """A random basic index into ``shape``: ints, slices with any bounds and steps, an Ellipsis, Nones."""
    parts = []
    for size in shape:
        if rng.random() < 0.25:
            parts.append(int(rng.integers(-size, size)))
        else:
            bound = lambda: None if rng.random() < 0.3 else int(rng.integers(-size - 2, size + 2))  # noqa: E731
            parts.append(slice(bound(), bound(), int(rng.choice([1, 2, 3, -1, -2]))))
    if rng.random() < 0.4:
        first = int(rng.integers(0, len(parts) + 1))
        parts[first : int(rng.integers(first, len(parts) + 1))] = [Ellipsis]
    for _ in range(int(rng.integers(0, 3))):
        parts.insert(int(rng.integers(0, len(parts) + 1)), None)
    return tuple(parts)


def test_strided_slices_match_numpy_indexing():
    rng = np.random.default_rng(11)
    for _ in range(40):
        shape = tuple(int(d) for d in rng.integers(1, 6, size=int(rng.integers(1, 5))))
        x = rng.standard_normal(shape).astype(np.float32)
        key = _random_index(rng, x.shape)
        attrs = {"spec": index_spec(key)}
        graph = _single_op_graph(REGISTRY["strided_slice"], [x], attrs, constants=False)
        (result,) = _session(to_onnx(graph)).run(None, {"x0": x})
        np.testing.assert_array_equal(result, x[key], err_msg=f"x{list(x.shape)}[{key}]")


@pytest.mark.parametrize(
    "key", [(slice(None), 0), (Ellipsis, -1), slice(None, None, -1), slice(1, None), (slice(None), None, slice(1, 3))]
)
def test_slices_of_a_dynamic_batch_match_numpy(key):
    function = tf.function(lambda x: x[key], input_signature=[tf.TensorSpec([None, 4, 3])])
    session = _session(to_onnx(function))
    for size in (1, 5):
        x = np.random.default_rng(size).standard_normal((size, 4, 3)).astype(np.float32)
        np.testing.assert_array_equal(session.run(None, {"x": x})[0], x[key])


@pytest.mark.parametrize("name", sorted(GRADIENT_OPS))
def test_gradient_ops_are_refused_by_name(name):
    case = CASES[name](np.random.default_rng(0))
    graph = _single_op_graph(REGISTRY[name], [np.asarray(a) for a in case.inputs], case.attrs, constants=False)
    with pytest.raises(ExportError, match=f"op '{name}'.*gradient.*export the model"):
        to_onnx(graph)


def test_errors_name_the_op_the_source_line_and_a_remedy():
    training_step = _training_step()
    with pytest.raises(ExportError) as raised:
        to_onnx(training_step)
    message = str(raised.value)
    assert "op 'max_pool2d_grad'" in message and "not a training step" in message
    problems = check_onnx(training_step)
    assert [problem.op for problem in problems] == ["max_pool2d_grad"]
    assert os.path.basename(__file__) in problems[0].source and f"(at {problems[0].source})" in message
    assert check_onnx(small_cnn()) == []


def test_opsets_from_the_minimum_up_run_in_onnxruntime():
    assert MIN_OPSET <= default_opset() <= onnx.defs.onnx_opset_version()
    model = _randomized(depthwise_cnn())  # ReduceMean takes its axes as an attribute before opset 18
    images = _batch(model, 2)
    for opset in sorted({MIN_OPSET, 18, default_opset()}):
        exported = to_onnx(model, opset=opset)
        assert exported.opset_import[0].version == opset
        np.testing.assert_allclose(_run(exported, images), model.predict(images, verbose=0), **TOLERANCE)
    with pytest.raises(ExportError, match="opset 16 is not supported"):
        to_onnx(model, opset=16)


def _training_step():
    """A tf.function that differentiates: its graph holds gradient ops, which ONNX export refuses."""

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 1])])
    def training_step(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            total = tf.reduce_sum(tf.nn.max_pool2d(images, 2, 2, "VALID"))
        return tape.gradient(total, images)

    return training_step


def test_writing_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")
    exported = to_onnx(mnist_mlp(), path)
    assert path.read_bytes() == exported.SerializeToString() and os.listdir(tmp_path) == ["model.onnx"]
    with pytest.raises(ExportError):
        to_onnx(_training_step(), path)
    assert path.read_bytes() == exported.SerializeToString() and os.listdir(tmp_path) == ["model.onnx"]


def test_cuda_execution_provider_matches_keras():
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed (no CUDAExecutionProvider)")
    model = _randomized(small_cnn())
    session = _session(to_onnx(model), "CUDAExecutionProvider")
    if "CUDAExecutionProvider" not in session.get_providers():
        pytest.skip("no CUDA GPU is available to onnxruntime")
    images = _batch(model, 5)
    # cuDNN sums in another order than NumPy, hence the looser tolerance than on CPU.
    (result,) = session.run(None, {"input": images})
    np.testing.assert_allclose(result, model.predict(images, verbose=0), rtol=1e-4, atol=1e-4)
