"""Backends: NumPy always; CuPy where a GPU exists (skipped with the reason otherwise)."""

import sys

import numpy as np
import pytest

import trainer as tf
from trainer import backend

needs_gpu = pytest.mark.skipif(not backend.gpu_available(), reason="CuPy with a CUDA GPU is not available on this machine")


def test_cpu_is_the_default_and_tensors_report_it():
    assert tf.config.get_backend() == "numpy"
    with tf.device("CPU:0"):
        x = tf.constant([1.0])
    assert x.device.endswith("device:CPU:0")
    assert [d.device_type for d in tf.config.list_physical_devices("CPU")] == ["CPU"]


def test_unknown_devices_are_rejected():
    with pytest.raises(ValueError, match="unknown device"):
        with tf.device("TPU:0"):
            pass


@pytest.mark.skipif(backend.gpu_available(), reason="this machine has a GPU; the error path cannot be shown")
def test_asking_for_a_gpu_without_one_says_what_is_missing():
    with pytest.raises(backend.DeviceError, match="CuPy|CUDA|GPU"):
        with tf.device("GPU:0"):
            pass


@needs_gpu
def test_gpu_tensors_compute_like_cpu_ones_and_crossing_is_explicit():
    a = np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)
    b = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    with tf.device("GPU:0"):
        x, y = tf.constant(a), tf.constant(b)
        product = tf.nn.relu(x @ y)
    assert product.device.endswith("GPU:0")
    np.testing.assert_allclose(product.numpy(), np.maximum(a @ b, 0), rtol=1e-5)
    with pytest.raises(backend.DeviceError, match="tensor.cpu"):
        tf.constant(a) @ y
    np.testing.assert_allclose((tf.constant(a) @ y.cpu()).numpy(), a @ b, rtol=1e-5)


@needs_gpu
def test_gpu_gradients_match_cpu_gradients():
    values = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)

    def gradient():
        v = tf.Variable(values)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.nn.softmax(v) * v)
        return tape.gradient(loss, v).numpy()

    cpu = gradient()
    with tf.device("GPU:0"):
        gpu = gradient()
    np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-6)


@needs_gpu
def test_mnist_mlp_trains_on_the_gpu_backend():
    tf.config.set_backend("cupy")
    try:
        rng = np.random.default_rng(0)
        x = rng.random((256, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, 256)
        model = tf.keras.Sequential([tf.keras.layers.Flatten(input_shape=(28, 28)), tf.keras.layers.Dense(32, activation="relu"), tf.keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        history = model.fit(x, y, epochs=3, batch_size=64, verbose=0)
        assert history.history["loss"][-1] < history.history["loss"][0]
        assert model.weights[0].device.endswith("GPU:0")
    finally:
        tf.config.set_backend("numpy")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc thresholds")
def test_freed_arrays_are_reused_without_page_faults():
    import resource  # noqa: PLC0415

    if not backend.keep_freed_host_memory():
        pytest.skip("not glibc")

    def step():  # several large arrays live at once, as in a training step (~2,700 faults each without reuse)
        return [np.ones(size, np.float32) for size in (2_000_000, 1_000_000, 3_000_000, 500_000)]

    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 500, f"{faults} page faults in 20 steps that reallocate the same arrays"
