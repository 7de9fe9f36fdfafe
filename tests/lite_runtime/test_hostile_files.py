"""Truncated and corrupted lite files only ever raise LiteFormatError, or load and run cleanly."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lite_runtime
import trainer as tf
from exporter.lite import to_lite
from tests.lite_runtime.harness import load_plan_and_run

L = tf.keras.layers


@pytest.fixture(scope="module")
def valid_file() -> bytes:
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([tf.keras.Input((6, 6, 2)), L.Conv2D(3, 3, activation="relu"), L.MaxPooling2D(),
                                 L.Flatten(), L.Dense(4, activation="softmax")])  # fmt: skip
    return to_lite(model)


def _load_and_run(data: bytes) -> None:
    """Load, allocate, invoke: a corrupted file may be rejected with LiteFormatError, nothing else."""
    with contextlib.suppress(lite_runtime.LiteFormatError):
        load_plan_and_run(data, memory_limit_bytes=8 << 20)


def test_the_valid_file_runs(valid_file):
    interpreter = lite_runtime.Interpreter(model_content=valid_file)
    (output,) = interpreter.run([np.ones((2, 6, 6, 2), np.float32)])
    np.testing.assert_allclose(output.sum(axis=1), 1.0, rtol=1e-5)


def test_truncations_raise_lite_format_error(valid_file):
    lengths = sorted(set(range(0, len(valid_file), max(1, len(valid_file) // 400))) | set(range(0, 64)))
    rejected = 0
    for length in lengths:
        try:
            lite_runtime.Interpreter(model_content=valid_file[:length]).allocate_tensors()
        except lite_runtime.LiteFormatError:
            rejected += 1
    # a cut inside trailing padding or unreferenced metadata still leaves a sound model
    assert rejected >= len(lengths) - 8
    for length in range(0, 64):
        with pytest.raises(lite_runtime.LiteFormatError):
            lite_runtime.Interpreter(model_content=valid_file[:length])


def test_error_names_the_bad_field(valid_file):
    with pytest.raises(lite_runtime.LiteFormatError, match="identifier"):
        lite_runtime.Interpreter(model_content=valid_file[:4] + b"XXXX" + valid_file[8:])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_byte_flips_raise_only_lite_format_error(valid_file, data):
    corrupted = bytearray(valid_file)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(corrupted) - 1))
        corrupted[position] = data.draw(st.integers(0, 255))
    _load_and_run(bytes(corrupted))


def _relu_model(shape) -> bytes:
    from exporter.lite import schema  # noqa: PLC0415
    from exporter.lite.builder import LiteModel, LiteOperator, LiteTensor, serialize  # noqa: PLC0415

    model = LiteModel("hostile", tensors=[LiteTensor("x", tuple(shape), schema.TensorType.FLOAT32),
                                          LiteTensor("y", tuple(shape), schema.TensorType.FLOAT32)])  # fmt: skip
    model.operator_codes, model.operators = [(int(schema.BuiltinOperator.RELU), 1)], [LiteOperator(0, [0], [1])]
    model.inputs, model.outputs = [0], [1]
    return serialize(model)


def test_a_rank_numpy_cannot_hold_is_a_format_error():
    x = -np.ones((1,) * 20 + (2,), np.float32)
    (output,) = lite_runtime.Interpreter(model_content=_relu_model(x.shape)).run([x])
    np.testing.assert_array_equal(output, np.zeros_like(x))
    with pytest.raises(lite_runtime.LiteFormatError, match="70 dimensions"):
        lite_runtime.Interpreter(model_content=_relu_model((1,) * 70))


def test_a_kernel_failing_on_input_values_names_its_operator():
    from exporter.lite import schema  # noqa: PLC0415
    from exporter.lite.builder import LiteModel, LiteOperator, LiteTensor, serialize  # noqa: PLC0415

    model = LiteModel("gather", tensors=[LiteTensor("params", (4, 2), schema.TensorType.FLOAT32),
                                         LiteTensor("indices", (3,), schema.TensorType.INT32),
                                         LiteTensor("out", (3, 2), schema.TensorType.FLOAT32)])  # fmt: skip
    model.tensors[0].buffer = model.add_buffer(np.arange(8, dtype=np.float32).tobytes())
    model.operator_codes, model.operators = [(int(schema.BuiltinOperator.GATHER), 1)], [LiteOperator(0, [0, 1], [2], {"axis": 0})]
    model.inputs, model.outputs = [1], [2]
    interpreter = lite_runtime.Interpreter(model_content=serialize(model))
    (gathered,) = interpreter.run([np.array([3, 0, 1], np.int32)])
    np.testing.assert_array_equal(gathered, [[6, 7], [0, 1], [2, 3]])
    with pytest.raises(lite_runtime.LiteFormatError, match=r"operator 0 \(GATHER\) failed: index 99"):
        interpreter.run([np.array([0, 99, 1], np.int32)])
