"""``invoke`` allocates nothing (DESIGN: kernels prepare once, eval only computes into planned buffers).

tracemalloc sees every NumPy array buffer, temporaries included (NumPy reports its allocations to it), so
the peak of traced memory over many invokes, above what was held before them, is what one invoke allocates
at most. Python's own bookkeeping (a bound method, a scalar) takes a few hundred bytes; one temporary of
the batch-32 activations here takes several kilobytes.
"""

from __future__ import annotations

import numpy as np
import pytest

import lite_runtime
import trainer as tf
from exporter.lite import to_lite
from tests.lite_runtime.harness import invoke_allocations

L = tf.keras.layers
BATCH = 32
SMALL = 4096  # bytes: more than Python's bookkeeping, less than any activation array of these models


def _mlp():
    return tf.keras.Sequential([tf.keras.Input((28, 28)), L.Flatten(), L.Dense(128, activation="relu"),
                                L.Dense(10, activation="softmax")])  # fmt: skip


def _cnn():
    return tf.keras.Sequential([tf.keras.Input((12, 12, 3)), L.Conv2D(8, 3, activation="relu", padding="same"),
                                L.MaxPooling2D(), L.DepthwiseConv2D(3, padding="same"), L.LeakyReLU(0.2),
                                L.AveragePooling2D(), L.Conv2D(16, 3, strides=2), L.GlobalAveragePooling2D(),
                                L.Dense(10, activation="softmax")])  # fmt: skip


def _float_cnn():  # float CONV_2D gathering by index (one channel) and by copy, padded and not; tiling MAX_POOL_2D
    return tf.keras.Sequential([tf.keras.Input((12, 12, 1)), L.Conv2D(8, 3, activation="relu", padding="same"),
                                L.MaxPooling2D(), L.Conv2D(16, 3, activation="relu"), L.Conv2D(4, 3, padding="same"),
                                L.MaxPooling2D(), L.Flatten(), L.Dense(10, activation="softmax")])  # fmt: skip


def _functional():
    inputs = tf.keras.Input((8,))
    a, b = L.Dense(16)(inputs), L.Dense(16, activation="tanh")(inputs)
    merged = L.Concatenate()([L.Add()([a, b]), L.Multiply()([a, b]), L.Subtract()([a, b])])
    return tf.keras.Model(inputs, L.Dense(3, activation="sigmoid")(merged))


def _hybrid_cnn():  # every weight tensor has at least 1024 elements: the dynamic-range converter's threshold
    return tf.keras.Sequential([tf.keras.Input((6, 6, 8)), L.Conv2D(128, 1), L.DepthwiseConv2D(3, padding="same"),
                                L.Conv2D(16, 3, activation="relu"), L.Flatten(), L.Dense(64)])  # fmt: skip


def _matmul():
    weights = tf.constant(np.random.default_rng(0).standard_normal((3, 16, 40)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec((3, BATCH, 16), tf.float32)])
    def matmul(a):
        return tf.matmul(a, weights)

    return matmul


def _gather():
    table = tf.constant(np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec((BATCH, 6), tf.int32)])
    def embed(ids):
        return tf.gather(table, ids)

    return embed


MODELS = {
    "float32_mlp": (_mlp, "none", (28, 28)),
    "float32_cnn": (_float_cnn, "none", (12, 12, 1)),  # float DEPTHWISE_CONV_2D, AVERAGE_POOL_2D: strided operands
    "int8_mlp": (_mlp, "int8", (28, 28)),
    "int8_cnn": (_cnn, "int8", (12, 12, 3)),
    "int8_functional": (_functional, "int8", (8,)),
    "dynamic_mlp": (_mlp, "dynamic", (28, 28)),
    "dynamic_cnn": (_hybrid_cnn, "dynamic", (6, 6, 8)),
    "dynamic_batch_matmul": (_matmul, "dynamic", None),
    "dynamic_gather": (_gather, "dynamic", None),
}


def _interpreter(name: str, rng) -> lite_runtime.Interpreter:
    build, mode, shape = MODELS[name]
    tf.keras.utils.set_random_seed(1)
    if shape is None:  # a tf.function: its input has a fixed shape
        data = to_lite(build(), quantize=mode)
        interpreter = lite_runtime.Interpreter(model_content=data)
        interpreter.allocate_tensors()
    else:
        calibration = rng.random((16, *shape), dtype=np.float32)
        data = to_lite(build(), quantize=mode, calibration=calibration if mode == "int8" else None)
        interpreter = lite_runtime.Interpreter(model_content=data)
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], (BATCH, *shape))
        interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    values = rng.integers(0, 300, detail["shape"]) if detail["dtype"] == np.int32 else rng.standard_normal(detail["shape"])
    interpreter.set_tensor(detail["index"], values.astype(detail["dtype"]))
    return interpreter


def _peak_allocation(interpreter: lite_runtime.Interpreter, invokes: int = 10) -> int:
    return invoke_allocations(interpreter, invokes)[1]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_invoke_allocates_nothing(name, rng):
    interpreter = _interpreter(name, rng)
    operators = {operator.name for operator in interpreter._model.operators}
    assert operators & {"FULLY_CONNECTED", "CONV_2D", "BATCH_MATMUL", "GATHER"}, sorted(operators)
    assert _peak_allocation(interpreter) < SMALL, sorted(operators)


def test_the_measure_sees_a_temporary(rng):
    """The measure is not blind: one array temporary per invoke (a kernel that broadcasts) shows."""
    interpreter = _interpreter("int8_mlp", rng)
    activations = np.zeros((BATCH, 128), np.int64)
    interpreter._calls.append(lambda: np.add(activations, np.ones(128, np.int64), out=activations))
    assert _peak_allocation(interpreter) > SMALL
