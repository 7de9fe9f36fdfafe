"""Lite export, judged from outside: real LiteRT runs every file against the model's own predictions and
every op's kernel, and the bytes are read back with the reader LiteRT generates from the schema."""

from __future__ import annotations

import itertools
import os
import re

import numpy as np
import pytest

import trainer as tf
from exporter.errors import ExportError
from exporter.lite import check_lite, to_lite
from exporter.lite.builder import LiteModel, LiteOperator, LiteTensor, Quantization, serialize
from exporter.lite.schema import (
    BUILTIN_OPTIONS,
    OPERATOR_OPTIONS,
    TABLES,
    ActivationFunctionType,
    BuiltinOperator,
    Padding,
    TensorType,
)
from exporter.lite.verify import check, verify
from tests.trainer.op_cases import CASES
from trainer import dtypes
from trainer.graph import Graph
from trainer.ops.array_ops import index_spec
from trainer.ops.registry import REGISTRY, execute, infer_outputs
from trainer.tensor import Tensor

litert = pytest.importorskip("ai_edge_litert.interpreter")
generated = pytest.importorskip("ai_edge_litert.schema_py_generated")

L = tf.keras.layers
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
TENSORFLOW_MLP_BYTES = 409_844  # what TensorFlow 2.21's converter writes for the chapter's MNIST MLP


def _randomized(model):
    """``model`` with random weights and batch-norm statistics, so that every weight matters.

    Kernels are scaled by their fan-in as trained ones are; unscaled, a conv stack's logits grow into
    the hundreds, where float32's summation order alone moves a softmax output by more than 1e-5.
    """
    rng = np.random.default_rng(7)
    for variable in model.weights:
        shape = variable.shape.as_list()
        if "moving_variance" in variable.name:
            low_high = (0.5, 2.0)
        elif "kernel" in variable.name:
            fan_in = int(np.prod(shape[:-2] if "depthwise" in variable.name else shape[:-1]))
            low_high = (-np.sqrt(3 / fan_in), np.sqrt(3 / fan_in))
        else:
            low_high = (-0.5, 0.5)
        variable.assign(rng.uniform(*low_high, size=shape).astype(np.float32))
    return model


def mnist_mlp():
    return tf.keras.Sequential(
        [
            L.Flatten(input_shape=(28, 28)),
            L.Dense(128, activation="relu"),
            L.Dense(10, activation="softmax"),
        ]
    )


def small_cnn():
    return tf.keras.Sequential(
        [
            L.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
            L.MaxPooling2D(),
            L.Conv2D(64, 3),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dense(10, activation="softmax"),
        ]
    )


def depthwise_cnn():
    # 15x15 makes the SAME average pool pad one side: TF averages over real pixels only.
    return tf.keras.Sequential(
        [
            L.Conv2D(8, 3, padding="same", activation="relu6", input_shape=(15, 15, 3)),
            L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu"),
            L.AveragePooling2D(padding="same"),
            L.GlobalAveragePooling2D(),
            L.Dense(4),
        ]
    )


def branching_functional():
    inputs = tf.keras.Input(shape=(12,), name="features")
    left = L.Dense(8, activation="relu")(inputs)
    right = L.Dense(8, activation="tanh")(inputs)
    merged = L.Dropout(0.5)(L.BatchNormalization()(L.Add()([left, right])))
    outputs = L.Dense(3, activation="softmax", name="scores")(L.Concatenate()([merged, left]))
    return tf.keras.Model(inputs, outputs)


MODELS = {"mlp": mnist_mlp, "cnn": small_cnn, "depthwise_cnn": depthwise_cnn, "functional": branching_functional}


def _batch(model, size, seed=0):
    shape = (size, *model.inputs[0].shape.as_list()[1:])
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _run(data, *feeds):
    """The outputs of lite file ``data`` on ``feeds`` (one array per input) in LiteRT, batch resized."""
    interpreter = litert.Interpreter(model_content=data)
    for detail, array in zip(interpreter.get_input_details(), feeds):
        if tuple(detail["shape"]) != array.shape:
            interpreter.resize_tensor_input(detail["index"], array.shape)
    interpreter.allocate_tensors()
    for detail, array in zip(interpreter.get_input_details(), feeds):
        interpreter.set_tensor(detail["index"], array)
    interpreter.invoke()
    return [interpreter.get_tensor(detail["index"]) for detail in interpreter.get_output_details()]


def _read(data):
    """The file as LiteRT's generated object API reads it (a reader that shares nothing with ours)."""
    return generated.ModelT.InitFromPackedBuf(bytearray(data), 0)


def _operators(data) -> list:
    """(builtin operator name, options object) for each operator, in execution order."""
    model = _read(data)
    names = {member.value: member.name for member in BuiltinOperator}
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    return [
        (names.get(codes[op.opcodeIndex], codes[op.opcodeIndex]), op.builtinOptions)
        for op in model.subgraphs[0].operators
    ]


# -- whole models ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_exported_model_predicts_like_keras_at_any_batch_size(name, tmp_path):
    model = _randomized(MODELS[name]())
    path = tmp_path / f"{name}.lite"
    data = to_lite(model, path)
    assert path.read_bytes() == data
    for size in (1, 5):
        images = _batch(model, size, seed=size)
        (result,) = _run(data, images)
        np.testing.assert_allclose(result, model.predict(images, verbose=0), **TOLERANCE)


def test_signature_runner_uses_the_model_names():
    model = _randomized(branching_functional())
    interpreter = litert.Interpreter(model_content=to_lite(model))
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["features"], "outputs": ["scores"]}}
    features = _batch(model, 4)
    outputs = interpreter.get_signature_runner("serving_default")(features=features)
    np.testing.assert_allclose(outputs["scores"], model.predict(features, verbose=0), **TOLERANCE)
    assert [d["name"] for d in interpreter.get_input_details()] == ["features"]
    assert [d["name"] for d in interpreter.get_output_details()] == ["scores"]


def test_header_version_description_and_metadata():
    data = to_lite(mnist_mlp())
    assert data[4:8] == b"TFL3"
    model = _read(data)
    assert model.version == 3 and model.description.decode() == f"emberflow {tf.__version__}"
    assert len(model.subgraphs) == 1 and not model.buffers[0].data
    metadata = {entry.name.decode(): bytes(model.buffers[entry.buffer].data) for entry in model.metadata}
    # FULLY_CONNECTED, RESHAPE and SOFTMAX at version 1 all ran from TFLite 1.5.0.
    assert metadata["min_runtime_version"] == b"1.5.0".ljust(16, b"\0")
    assert metadata["producer"] == f"emberflow {tf.__version__}".encode()
    (signature,) = model.signatureDefs
    assert signature.signatureKey.decode() == "serving_default" and signature.subgraphIndex == 0
    tensors = model.subgraphs[0].tensors
    (input_index,) = model.subgraphs[0].inputs
    assert list(tensors[input_index].shape) == [1, 28, 28] and list(tensors[input_index].shapeSignature) == [-1, 28, 28]
    assert tensors[input_index].type == TensorType.FLOAT32


def test_chapter_mlp_is_no_larger_than_tensorflows_file():
    data = to_lite(mnist_mlp())
    weights = (784 * 128 + 128 + 128 * 10 + 10) * 4
    assert len(data) <= TENSORFLOW_MLP_BYTES, len(data)
    assert len(data) - weights < 2048, f"{len(data) - weights} bytes besides the weights"


def _data_regions(data) -> list[tuple[int, int]]:
    """(start, end) byte positions of every non-empty buffer's data in the file."""
    root = generated.Model.GetRootAs(bytearray(data), 0)
    regions = []
    for index in range(root.BuffersLength()):
        table = root.Buffers(index)._tab
        offset = table.Offset(4)  # Buffer.data, slot 0
        if offset and table.VectorLen(offset):
            regions.append((table.Vector(offset), table.Vector(offset) + table.VectorLen(offset)))
    return sorted(regions)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_constant_data_is_aligned_to_16_bytes_with_no_padding_beyond(name):
    data = to_lite(_randomized(MODELS[name]()))
    regions = _data_regions(data)
    assert regions and all(start % 16 == 0 for start, _ in regions), regions
    for (_, end), (start, _) in itertools.pairwise(regions):
        assert 4 <= start - end < 4 + 16  # the next vector's length field, and alignment padding only


def test_identical_constants_share_one_buffer():
    model = tf.keras.Sequential([L.Dense(16, input_shape=(8,)), L.Dense(16), L.Dense(16)])
    model.layers[2].kernel.assign(model.layers[1].kernel.numpy())  # equal kernels; the biases are all zeros
    data = to_lite(model)
    read = _read(data)
    constants = {tensor.buffer for tensor in read.subgraphs[0].tensors if tensor.buffer}
    contents = [bytes(read.buffers[index].data) for index in constants]
    assert len(contents) == len(set(contents)) == 3  # kernel 1, the shared kernel, the shared zero bias
    assert len(read.buffers) == 1 + 3 + 2  # the sentinel, the constants, the two metadata entries
    images = _batch(model, 3)
    np.testing.assert_allclose(_run(data, images)[0], model.predict(images, verbose=0), **TOLERANCE)


def test_writing_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model.lite"
    path.write_bytes(b"old")
    data = to_lite(mnist_mlp(), path)
    assert path.read_bytes() == data and os.listdir(tmp_path) == ["model.lite"]
    with pytest.raises(ExportError):
        to_lite(_training_step(), path)
    assert path.read_bytes() == data and os.listdir(tmp_path) == ["model.lite"]


# -- layouts and fused activations -------------------------------------------------------------------------------

ACT = ActivationFunctionType


def test_dense_layers_become_fully_connected_with_fused_activations():
    model = _randomized(mnist_mlp())
    data = to_lite(model)
    operators = _operators(data)
    assert [name for name, _ in operators] == ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"]
    assert [options.fusedActivationFunction for _, options in operators[1:3]] == [ACT.RELU, ACT.NONE]
    assert operators[3][1].beta == 1.0
    assert list(operators[0][1].newShape) == [-1, 784]
    subgraph, buffers = _read(data).subgraphs[0], _read(data).buffers
    reshape = subgraph.operators[0]
    assert list(buffers[subgraph.tensors[reshape.inputs[1]].buffer].data.view(np.int32)) == [-1, 784]
    weights = subgraph.tensors[subgraph.operators[1].inputs[1]]
    assert list(weights.shape) == [128, 784]  # [out, in]: the Keras kernel transposed
    stored = buffers[weights.buffer].data.view(np.float32).reshape(128, 784)
    np.testing.assert_array_equal(stored, model.layers[1].kernel.numpy().T)


def test_convolutions_take_tflite_filter_layouts_and_fuse_clamping_activations():
    model = _randomized(depthwise_cnn())
    data = to_lite(model)
    operators = _operators(data)
    assert [name for name, _ in operators] == [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "AVERAGE_POOL_2D",
        "MEAN",
        "FULLY_CONNECTED",
    ]
    conv, depthwise, pool = (options for _, options in operators[:3])
    assert (conv.fusedActivationFunction, conv.padding, conv.strideW, conv.strideH) == (ACT.RELU6, Padding.SAME, 1, 1)
    assert (depthwise.fusedActivationFunction, depthwise.depthMultiplier) == (ACT.RELU, 2)
    assert (pool.filterWidth, pool.filterHeight, pool.strideW, pool.padding) == (2, 2, 2, Padding.SAME)
    subgraph, buffers = _read(data).subgraphs[0], _read(data).buffers
    filters = [subgraph.tensors[op.inputs[1]] for op in subgraph.operators[:2]]
    assert [list(tensor.shape) for tensor in filters] == [[8, 3, 3, 3], [1, 3, 3, 16]]
    kernel = model.layers[0].kernel.numpy()  # HWIO
    stored = buffers[filters[0].buffer].data.view(np.float32).reshape(8, 3, 3, 3)
    np.testing.assert_array_equal(stored, kernel.transpose(3, 0, 1, 2))


@pytest.mark.parametrize(
    ("activation", "fused", "following"),
    [("tanh", ACT.NONE, "TANH"), ("sigmoid", ACT.NONE, "LOGISTIC"), ("relu6", ACT.RELU6, None)],
)
def test_activations_tflite_kernels_do_not_apply_follow_as_operators(activation, fused, following):
    model = _randomized(
        tf.keras.Sequential(
            [
                L.Conv2D(4, 3, activation=activation, input_shape=(6, 6, 2)),
                L.Flatten(),
                L.Dense(3, activation=activation),
            ]
        )
    )
    data = to_lite(model)
    names = [name for name, _ in _operators(data)]
    expected = ["CONV_2D", following, "RESHAPE", "FULLY_CONNECTED", following]
    assert names == [name for name in expected if name]
    assert {
        options.fusedActivationFunction for name, options in _operators(data) if name in ("CONV_2D", "FULLY_CONNECTED")
    } == {fused}
    images = _batch(model, 3)
    np.testing.assert_allclose(_run(data, images)[0], model.predict(images, verbose=0), **TOLERANCE)


def test_matmul_lowers_to_fully_connected_or_batch_matmul():
    weights = tf.constant(np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 3, 4]), tf.TensorSpec([None, 4, 2])])
    def products(x, y):
        return tf.matmul(x, weights), tf.matmul(x, y)  # rank 3 by a constant; two run-time operands

    data = to_lite(products)
    operators = _operators(data)
    assert [name for name, _ in operators] == ["FULLY_CONNECTED", "BATCH_MATMUL"]
    assert operators[0][1].keepNumDims and _read(data).operatorCodes[0].version == 5
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 4, 2)).astype(np.float32)
    for got, want in zip(_run(data, x, y), products(x, y)):
        np.testing.assert_allclose(got, want.numpy(), **TOLERANCE)


def test_operator_codes_above_127_keep_the_placeholder_in_the_old_field():
    function = tf.function(lambda x: tf.broadcast_to(x, [3, 2, 4]), input_signature=[tf.TensorSpec([2, 1])])
    data = to_lite(function)
    (code,) = _read(data).operatorCodes
    assert (code.builtinCode, code.deprecatedBuiltinCode, code.version) == (BuiltinOperator.BROADCAST_TO, 127, 2)
    x = np.arange(2, dtype=np.float32).reshape(2, 1)
    np.testing.assert_array_equal(_run(data, x)[0], np.broadcast_to(x, (3, 2, 4)))


# -- every op against its own kernel -----------------------------------------------------------------------------

REFUSED_OPS = {
    "avg_pool2d_grad", "conv2d_backprop_filter", "conv2d_backprop_input", "depthwise_conv2d_backprop_filter",
    "depthwise_conv2d_backprop_input", "gather_grad", "max_pool2d_grad", "max_pool2d_grad_grad", "strided_slice_grad",
    "cond", "while",
}  # fmt: skip
EXPORTED_OPS = sorted(name for name, op in REGISTRY.items() if not op.training_only and name not in REFUSED_OPS)


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
def test_every_op_matches_its_kernel_in_litert(name, constants):
    op = REGISTRY[name]
    for seed in range(3):
        case = CASES[name](np.random.default_rng(seed))
        # float32, as lite files hold it (TFLite's kernels have no float64)
        arrays = [
            np.asarray(a).astype(np.float32) if np.asarray(a).dtype == np.float64 else np.asarray(a)
            for a in case.inputs
        ]
        expected = execute(op, [tf.constant(array) for array in arrays], case.attrs)
        expected = [expected] if op.num_outputs == 1 else list(expected)
        data = to_lite(_single_op_graph(op, arrays, case.attrs, constants))
        results = _run(data, *(array for index, array in enumerate(arrays) if not (constants and index)))
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
            start, stop = (None if rng.random() < 0.3 else int(rng.integers(-size - 2, size + 2)) for _ in "ab")
            parts.append(slice(start, stop, int(rng.choice([1, 2, 3, -1, -2]))))
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
        graph = _single_op_graph(REGISTRY["strided_slice"], [x], {"spec": index_spec(key)}, constants=False)
        np.testing.assert_array_equal(_run(to_lite(graph), x)[0], x[key], err_msg=f"x{list(x.shape)}[{key}]")


@pytest.mark.parametrize(
    "key", [(slice(None), 0), (Ellipsis, -1), slice(None, None, -1), (slice(None), None, slice(1, 3))]
)
def test_slices_of_a_dynamic_batch_match_numpy(key):
    data = to_lite(tf.function(lambda x: x[key], input_signature=[tf.TensorSpec([None, 4, 3])]))
    for size in (1, 5):
        x = np.random.default_rng(size).standard_normal((size, 4, 3)).astype(np.float32)
        np.testing.assert_array_equal(_run(data, x)[0], x[key])


def test_softmax_over_an_inner_axis_and_gelu_through_erf():
    @tf.function(input_signature=[tf.TensorSpec([None, 5, 3])])
    def function(x):
        return tf.nn.softmax(x, axis=1), tf.nn.gelu(x * 3.0)

    data = to_lite(function)
    x = np.random.default_rng(3).standard_normal((4, 5, 3)).astype(np.float32)
    for got, want in zip(_run(data, x), function(x)):
        np.testing.assert_allclose(got, want.numpy(), **TOLERANCE)


# -- errors ------------------------------------------------------------------------------------------------------


def _training_step():
    """A tf.function that differentiates: its graph holds gradient ops, which lite export refuses."""

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 1])])
    def training_step(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            total = tf.reduce_sum(tf.nn.max_pool2d(images, 2, 2, "VALID"))
        return tape.gradient(total, images)

    return training_step


@pytest.mark.parametrize("name", sorted(REFUSED_OPS - {"cond", "while"}))
def test_gradient_ops_are_refused_by_name(name):
    case = CASES[name](np.random.default_rng(0))
    graph = _single_op_graph(REGISTRY[name], [np.asarray(a) for a in case.inputs], case.attrs, constants=False)
    with pytest.raises(ExportError, match=f"op '{name}'.*gradient.*export the model"):
        to_lite(graph)


def test_control_flow_is_refused_with_a_remedy():
    function = tf.function(
        lambda x: tf.cond(tf.reduce_sum(x) > 0, lambda: x * 2.0, lambda: -x), input_signature=[tf.TensorSpec([None, 3])]
    )
    with pytest.raises(ExportError, match="op 'cond'.*one subgraph.*tf.where"):
        to_lite(function)


def test_errors_name_the_op_the_source_line_and_a_remedy():
    training_step = _training_step()
    with pytest.raises(ExportError) as raised:
        to_lite(training_step)
    message = str(raised.value)
    assert "op 'max_pool2d_grad'" in message and "not a training step" in message
    problems = check_lite(training_step)
    assert [problem.op for problem in problems] == ["max_pool2d_grad"]
    assert os.path.basename(__file__) in problems[0].source and f"(at {problems[0].source})" in message
    assert check_lite(small_cnn()) == []


# -- the schema subset and the verifier ---------------------------------------------------------------------------


class _RecordingBuilder:
    """Stands in for flatbuffers.Builder: records which Prepend*Slot method a generated adder calls."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, method):
        return lambda *args: self.calls.append((method, args[0], args[2]))


def _camel(field: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in field.split("_"))


def test_schema_subset_matches_the_schema_litert_was_generated_from():
    for enum in (TensorType, Padding, ActivationFunctionType, BuiltinOperator):
        for member in enum:
            assert getattr(getattr(generated, enum.__name__), member.name) == member.value, (enum.__name__, member)
    for name, index in BUILTIN_OPTIONS.items():
        assert getattr(generated.BuiltinOptions, name) == index, name
    assert set(OPERATOR_OPTIONS.values()) <= set(BUILTIN_OPTIONS)
    for table, fields in TABLES.items():
        for slot, (field, kind, default) in enumerate(fields):
            if kind == "deprecated":
                assert not hasattr(generated, f"{table}Add{_camel(field)}")
                continue
            builder = _RecordingBuilder()
            getattr(generated, f"{table}Add{_camel(field)}")(builder, 0)
            method = "PrependUOffsetTRelativeSlot" if kind == "offset" else f"Prepend{kind.capitalize()}Slot"
            assert builder.calls == [(method, slot, default)], (table, field)


def _tiny_model(**changes) -> LiteModel:
    """A one-operator model (MUL of an input and a constant), with fields replaced to break it."""
    model = LiteModel(description="test")
    buffer = model.add_buffer(np.full(3, 2, np.float32).tobytes())
    model.tensors = [
        LiteTensor("x", (3,), TensorType.FLOAT32),
        LiteTensor("c", (3,), TensorType.FLOAT32, buffer),
        LiteTensor("y", (3,), TensorType.FLOAT32),
    ]
    model.operator_codes = [(int(BuiltinOperator.MUL), 1)]
    model.operators = [LiteOperator(0, [0, 1], [2])]
    model.inputs, model.outputs = [0], [2]
    for key, value in changes.items():
        setattr(model, key, value)
    return model


def _patched(model, table, slot: int, value, dtype) -> bytes:
    """``model``'s bytes with one scalar field of ``table(root)`` overwritten: what the writer never makes."""
    data = bytearray(serialize(model))
    found = table(generated.Model.GetRootAs(data, 0))._tab
    offset = found.Offset(4 + 2 * slot)
    assert offset, "the field to patch must be present (not left at its default)"
    data[found.Pos + offset : found.Pos + offset + np.dtype(dtype).itemsize] = np.asarray(value, dtype).tobytes()
    return bytes(data)


def test_verifier_accepts_a_sound_file_and_litert_runs_it():
    data = serialize(_tiny_model())
    assert check(data) == []
    np.testing.assert_array_equal(_run(data, np.arange(3, dtype=np.float32))[0], np.arange(3) * 2)


def _first_code(root):
    return root.OperatorCodes(0)


def _first_operator(root):
    return root.Subgraphs(0).Operators(0)


def _tensors_with_constant(shape, buffer) -> list:
    return [LiteTensor("x", (3,), 0), LiteTensor("c", shape, 0, buffer), LiteTensor("y", (3,), 0)]


_TWO_CODES = [(int(BuiltinOperator.ADD), 1), (int(BuiltinOperator.MUL), 1)]
BROKEN_FILES = {
    "buffer index": (
        {"tensors": _tensors_with_constant((3,), 9)},
        None,
        "tensor 1 ('c') buffer index 9 out of range (2 buffers)",
    ),
    "data size": (
        {"tensors": _tensors_with_constant((4,), 1)},
        None,
        "tensor 1 ('c') needs 16 bytes of data, buffer 1 holds 12",
    ),
    "opcode index": (
        {"operator_codes": _TWO_CODES, "operators": [LiteOperator(1, [0, 1], [2])]},
        (_first_operator, 0, 3, np.uint32),  # Operator.opcode_index, slot 0
        "operator 0 opcode index 3 out of range (2 operator codes)",
    ),
    "options type": (
        {},
        (_first_code, 3, int(BuiltinOperator.RELU), np.int32),  # OperatorCode.builtin_code, slot 3
        "operator 0 (builtin code 19) has options type 21, expected 0",
    ),
    "input index": (
        {"operators": [LiteOperator(0, [0, 7], [2])]},
        None,
        "operator 0 input tensor index 7 out of range (3 tensors)",
    ),
    "order": (
        {"operators": [LiteOperator(0, [0, 2], [2])]},
        None,
        "operator 0 reads tensor 2 before any operator writes it",
    ),
    "subgraph output": ({"outputs": [5]}, None, "subgraph output tensor index 5 out of range"),
    "signature": ({"signature_outputs": [("y", 8)]}, None, "signature output 'y' tensor index 8 out of range"),
    "metadata": (
        {"metadata": [("min_runtime_version", 4)]},
        None,
        "metadata 'min_runtime_version' buffer index 4 out of range",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_FILES))
def test_verifier_names_what_is_out_of_range(case):
    changes, patch, message = BROKEN_FILES[case]
    model = _tiny_model(**changes)
    data = serialize(model) if patch is None else _patched(model, *patch)
    with pytest.raises(ExportError, match=re.escape(message)):
        verify(data)


@pytest.mark.parametrize("kept", [3, 100, 1_000, 300_000])
def test_verifier_rejects_truncated_files(kept):
    data = to_lite(mnist_mlp())
    with pytest.raises(ExportError, match="lite file"):
        verify(data[:kept])


def test_quantization_parameters_are_written_where_given():
    model = _tiny_model()
    model.tensors[1].quantization = Quantization(scale=[0.5, 0.25, 0.125], zero_point=[0, 1, -1], quantized_dimension=0)
    data = serialize(model)
    assert check(data) == []
    tensors = _read(data).subgraphs[0].tensors
    written = tensors[1].quantization
    assert (list(written.scale), list(written.zeroPoint), written.quantizedDimension) == (
        [0.5, 0.25, 0.125],
        [0, 1, -1],
        0,
    )
    assert tensors[0].quantization is None  # float tensors carry no table at all
    details = {d["name"]: d for d in litert.Interpreter(model_content=data).get_tensor_details()}
    np.testing.assert_array_equal(details["c"]["quantization_parameters"]["zero_points"], [0, 1, -1])


def test_equal_quantization_parameters_are_written_once():
    """Per-channel tables repeat (a weight's zero points, all 0, and its bias's; an activation's table and its
    max-pool's): each distinct vector and table is written once and shared, and readers see every copy."""
    channels = 64
    model = _tiny_model()
    model.buffers[1] = np.full(channels, 2, np.float32).tobytes()
    for tensor in model.tensors:
        tensor.shape = (channels,)
    data_alone = serialize(model)
    model.tensors[0].quantization = Quantization(scale=[0.5] * channels, zero_point=[0] * channels, quantized_dimension=0)
    model.tensors[1].quantization = Quantization(scale=[0.25] * channels, zero_point=[0] * channels, quantized_dimension=0)
    model.tensors[2].quantization = Quantization(scale=[0.25] * channels, zero_point=[0] * channels, quantized_dimension=0)
    data = serialize(model)
    assert check(data) == []
    # Written apart, the three tables would add 3 * 64 * (4 + 8) bytes; shared, the two scale vectors and one
    # zero-point vector add 64 * (4 + 4 + 8), plus the tables and their offsets.
    assert len(data) - len(data_alone) < channels * 16 + 200
    tensors = _read(data).subgraphs[0].tensors
    assert [list(t.quantization.scale)[:1] for t in tensors[:3]] == [[0.5], [0.25], [0.25]]
    assert all(list(t.quantization.zeroPoint) == [0] * channels for t in tensors[:3])
