"""The float32 kernels' bound fast paths against LiteRT: each code path a shape or option picks at allocate time.

CONV_2D gathers by index below 8 floats a window row and by a strided copy above (from the input itself when
there is no padding), with the bias as a row of its matrix; MAX_POOL_2D reduces blocks when the windows tile
the input; FULLY_CONNECTED reads the file's weight layout at one row; SOFTMAX skips the max for one safe row.
"""

from __future__ import annotations

import numpy as np
import pytest

import lite_runtime
import trainer as tf
from exporter.lite import to_lite

litert = pytest.importorskip("ai_edge_litert.interpreter")
L = tf.keras.layers
BIAS = "random_normal"  # a zero bias would hide a bias row left out of the product


def _both(data: bytes, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    outputs = []
    for interpreter_class in (lite_runtime.Interpreter, litert.Interpreter):
        interpreter = interpreter_class(model_content=data)
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        interpreter.invoke()  # twice: a bound call must read the input again, not a copy made at allocate time
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    return outputs[0], outputs[1]


def _check(model, shape, rng, batches=(1, 3), scale=1.0):
    tf.keras.utils.set_random_seed(3)
    data = to_lite(model)
    for batch in batches:
        x = (rng.standard_normal((batch, *shape)) * scale).astype(np.float32)
        ours, theirs = _both(data, x)
        np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=1e-5)


CONVS = [  # (input shape, Conv2D keyword arguments): index gathers (kernel_w * channels < 8), then copies
    ((9, 9, 1), {"filters": 4, "kernel_size": 3}),
    ((9, 9, 1), {"filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}),
    ((10, 7, 2), {"filters": 3, "kernel_size": (3, 2), "strides": 2, "padding": "same", "activation": "relu6"}),
    ((11, 11, 1), {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "use_bias": False}),
    ((8, 8, 4), {"filters": 5, "kernel_size": 3, "activation": "relu"}),
    ((8, 9, 4), {"filters": 5, "kernel_size": 3, "strides": (2, 1), "padding": "same"}),
    ((9, 9, 3), {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "activation": "tanh", "use_bias": False}),
    ((5, 5, 8), {"filters": 3, "kernel_size": 1}),
]


@pytest.mark.parametrize("shape, options", CONVS)
def test_conv_2d_matches_litert(shape, options, rng):
    options = {"bias_initializer": BIAS, **options} if options.get("use_bias", True) else options
    _check(tf.keras.Sequential([tf.keras.Input(shape), L.Conv2D(**options)]), shape, rng)


POOLS = [  # (input shape, MaxPooling2D keyword arguments): tiling windows (blocks) and the general path
    ((8, 8, 3), {"pool_size": 2}),
    ((7, 9, 2), {"pool_size": 2}),
    ((9, 9, 2), {"pool_size": 3}),
    ((8, 6, 2), {"pool_size": (2, 1)}),
    ((6, 8, 2), {"pool_size": (1, 2)}),
    ((7, 7, 2), {"pool_size": 2, "padding": "same"}),
    ((8, 8, 2), {"pool_size": 3, "strides": 2}),
]


@pytest.mark.parametrize("shape, options", POOLS)
def test_max_pool_2d_matches_litert(shape, options, rng):
    _check(tf.keras.Sequential([tf.keras.Input(shape), L.MaxPooling2D(**options)]), shape, rng)


def test_conv_relu_then_pool_matches_litert(rng):
    model = tf.keras.Sequential([tf.keras.Input((12, 12, 1)), L.Conv2D(6, 3, activation="relu", bias_initializer=BIAS),
                                 L.MaxPooling2D(), L.Conv2D(8, 3, activation="relu", bias_initializer=BIAS),
                                 L.MaxPooling2D(), L.Flatten(), L.Dense(10, activation="softmax")])  # fmt: skip
    _check(model, (12, 12, 1), rng, batches=(1, 4))


@pytest.mark.parametrize("activation", [None, "relu", "relu6", "tanh"])
def test_dense_matches_litert_at_one_and_many_rows(activation, rng):
    model = tf.keras.Sequential([tf.keras.Input((20,)), L.Dense(7, activation=activation, bias_initializer=BIAS)])
    _check(model, (20,), rng, batches=(1, 6))


def test_dense_chains_add_their_bias_in_the_product_run_after_run(rng):
    """At one row each FULLY_CONNECTED multiplies [input, 1] by [weights; bias]: the 1 lives after the input in
    the arena, where later tensors of the same run write too, so each run must put it back. Three dense layers
    (the second's input slot is free again when the third writes) and runs on changing inputs show that it does."""
    model = tf.keras.Sequential([tf.keras.Input((28, 28)), L.Flatten()]
                                + [L.Dense(units, activation="relu", bias_initializer=BIAS) for units in (64, 48, 32)]
                                + [L.Dense(10, bias_initializer=BIAS)])  # fmt: skip
    data = to_lite(model)
    interpreter = lite_runtime.Interpreter(model_content=data)
    interpreter.allocate_tensors()
    folded = [call for call in interpreter._calls if "_bind_bias_in_product" in call.__qualname__]
    assert len(folded) == 4, "every one-row dense layer with a constant bias takes the bias-in-product path"
    reference = litert.Interpreter(model_content=data)
    reference.allocate_tensors()
    for _ in range(3):
        x = rng.standard_normal((1, 28, 28)).astype(np.float32)
        reference.set_tensor(reference.get_input_details()[0]["index"], x)
        reference.invoke()
        expected = reference.get_tensor(reference.get_output_details()[0]["index"])
        np.testing.assert_allclose(interpreter.run(x)[0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0, 200.0])
def test_softmax_matches_litert_from_tiny_to_overflowing_logits(scale, rng):
    """Logits x200 overflow exp without the max subtracted, and x0.01 sum below 1 with it: both the
    max-free row and TFLite's path are taken."""
    model = tf.keras.Sequential([tf.keras.Input((12,)), L.Dense(10, bias_initializer=BIAS), L.Softmax()])
    _check(model, (12,), rng, scale=scale)


def test_softmax_of_one_row_with_infinities_and_very_negative_logits():
    interpreter = lite_runtime.Interpreter(model_content=to_lite(tf.keras.Sequential([tf.keras.Input((4,)), L.Softmax()])))
    interpreter.allocate_tensors()
    index, output = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    for logits in ([-200.0, -201.0, -230.0, -np.inf], [np.inf, 0.0, 1.0, 2.0], [88.0, 89.0, 0.0, -5.0]):
        x = np.array([logits], np.float32)
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        with np.errstate(all="ignore"):
            shifted = np.exp(x.astype(np.float64) - x.max())
            expected = shifted / shifted.sum()
        np.testing.assert_allclose(interpreter.get_tensor(output), expected, atol=1e-7, rtol=1e-5)
