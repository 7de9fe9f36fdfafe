"""The CuPy backend agrees with the NumPy one: every registered op, its gradient, traced graphs and ``fit``.

Each op runs on the example inputs of ``op_cases.py`` once on the CPU and once under
``tf.device("GPU:0")``; outputs and tape gradients must match (float64 inputs, so the tolerance only
absorbs the two libraries' different summation orders and transcendental functions). Then whole models:
a traced training step, ``fit`` of the MNIST MLP and CNN from the same initial weights, and the export of
a model trained on the GPU. Skipped, with the reason, where CuPy or a CUDA GPU is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

import trainer as tf
from tests.trainer.op_cases import CASES
from trainer import backend
from trainer.ops.registry import REGISTRY, GradientNotSupportedError, execute

pytestmark = pytest.mark.skipif(not backend.gpu_available(), reason="CuPy with a CUDA GPU is not available on this machine")

SEEDS = range(3)
RANDOM_OPS = {"random_normal", "random_uniform"}  # same distribution, different generator: checked by shape


def _outputs(op, result) -> list:
    if op.num_outputs == 0 or result is None:
        return []
    return [result] if op.num_outputs == 1 else list(result)


def _on(device: str, name: str, case, with_gradients: bool):
    """Outputs (and tape gradients for every floating input) of op ``name`` on ``device``, as NumPy arrays."""
    op = REGISTRY[name]
    with tf.device(device):
        tensors = [tf.constant(array) for array in case.inputs]
        positions = [i for i, array in enumerate(case.inputs) if array.dtype.kind == "f" and i not in case.fixed]
        with tf.GradientTape() as tape:
            for position in positions:
                tape.watch(tensors[position])
            outputs = _outputs(op, execute(op, tensors, case.attrs))
        for output in outputs:
            assert output.device.endswith(device), f"op '{name}' on {device} returned a tensor on {output.device}"
        gradients = []
        if with_gradients and outputs and outputs[0].dtype.is_floating:
            cotangent = np.linspace(-1.0, 1.0, int(np.prod(outputs[0].shape))).reshape(outputs[0].shape)
            seed = tf.constant(cotangent.astype(outputs[0].dtype.as_numpy_dtype))
            found = tape.gradient(outputs[0], [tensors[p] for p in positions], output_gradients=seed)
            gradients = [None if g is None else g.numpy() for g in found]
    return [output.numpy() for output in outputs], gradients


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_op_and_its_gradient_agree_between_cpu_and_gpu(name, seed):
    case = CASES[name](np.random.default_rng(seed))
    op = REGISTRY[name]
    with_gradients = op.differentiable and not case.gradient_unsupported and name not in RANDOM_OPS
    try:
        cpu, cpu_gradients = _on("CPU:0", name, case, with_gradients)
    except GradientNotSupportedError:  # then the GPU must refuse it too, and the outputs still agree
        with pytest.raises(GradientNotSupportedError):
            _on("GPU:0", name, case, with_gradients)
        with_gradients = False
        cpu, cpu_gradients = _on("CPU:0", name, case, with_gradients)
    gpu, gpu_gradients = _on("GPU:0", name, case, with_gradients)
    assert len(gpu) == len(cpu)
    for index, (expected, got) in enumerate(zip(cpu, gpu)):
        assert got.dtype == expected.dtype and got.shape == expected.shape, f"op '{name}' output {index}"
        if name in RANDOM_OPS:
            continue
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9, err_msg=f"op '{name}' output {index} (attrs {case.attrs})")
    for index, (expected, got) in enumerate(zip(cpu_gradients, gpu_gradients)):
        assert (expected is None) == (got is None), f"op '{name}': gradient {index} exists on one device only"
        if expected is not None:
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9, err_msg=f"gradient {index} of op '{name}'")


def _model(kind: str, seed: int = 0):
    tf.keras.utils.set_random_seed(seed)
    layers = tf.keras.layers
    if kind == "mlp":
        body = [layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dropout(0.0), layers.Dense(10, activation="softmax")]
        shape = (28, 28)
    else:
        body = [
            layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2), layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10, activation="softmax"),
        ]  # fmt: skip
        shape = (28, 28, 1)
    return tf.keras.Sequential([tf.keras.Input(shape=shape)] + body)


def _data(kind: str):
    rng = np.random.default_rng(3)
    x = rng.random((192, 28, 28) if kind == "mlp" else (192, 28, 28, 1), dtype=np.float32)
    return x, rng.integers(0, 10, 192)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_fit_on_the_gpu_matches_fit_on_the_cpu(kind):
    """The traced train step (forward, backward, Adam) gives the CPU's weights from the same start."""
    x, y = _data(kind)
    trained = {}
    for device in ("numpy", "cupy"):
        tf.config.set_backend(device)
        try:
            model = _model(kind)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            history = model.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
            assert all(w.device.endswith("GPU:0" if device == "cupy" else "CPU:0") for w in model.weights)
            trained[device] = ([w.numpy() for w in model.weights], history.history["loss"], model.predict(x[:16], verbose=0))
        finally:
            tf.config.set_backend("numpy")
    (cpu_weights, cpu_loss, cpu_pred), (gpu_weights, gpu_loss, gpu_pred) = trained["numpy"], trained["cupy"]
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-4)
    for cpu, gpu in zip(cpu_weights, gpu_weights):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-4)
    assert isinstance(gpu_pred, np.ndarray), "predict returns host arrays, as Keras does"
    np.testing.assert_allclose(gpu_pred, cpu_pred, rtol=1e-3, atol=1e-5)


def test_a_traced_function_runs_its_graph_on_the_gpu():
    @tf.function
    def step(x, w):
        return tf.reduce_sum(tf.nn.relu(x @ w), axis=1)

    a = np.random.default_rng(4).normal(size=(5, 7)).astype(np.float32)
    b = np.random.default_rng(5).normal(size=(7, 3)).astype(np.float32)
    expected = step(tf.constant(a), tf.constant(b)).numpy()
    with tf.device("GPU:0"):
        got = step(tf.constant(a), tf.constant(b))
    assert got.device.endswith("GPU:0")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    assert step.experimental_get_tracing_count() == 1, "the device is not part of the signature: one graph serves both"


def test_a_model_trained_on_the_gpu_exports_and_runs_in_the_lite_runtime(tmp_path):
    from exporter.lite import to_lite  # noqa: PLC0415
    from lite_runtime import Interpreter  # noqa: PLC0415

    x, y = _data("mlp")
    tf.config.set_backend("cupy")
    try:
        model = _model("mlp")
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=1, batch_size=32, verbose=0)
        expected = model.predict(x[:4], verbose=0)
        lite = to_lite(model)
    finally:
        tf.config.set_backend("numpy")
    (got,) = Interpreter(model_content=lite).run(x[:4])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
