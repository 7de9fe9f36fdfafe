"""The TensorBoard callback, read back with TensorBoard's own event reader (the judge of our event files)."""

import os

import numpy as np
import pytest

import trainer as tf

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402


def _blobs(n=240, features=4, classes=3, seed=0):
    generator = np.random.default_rng(seed)
    centers = generator.normal(scale=4.0, size=(classes, features))
    labels = generator.integers(0, classes, n)
    return (centers[labels] + generator.normal(size=(n, features))).astype(np.float32), labels


def _classifier(optimizer="adam", seed=3):
    tf.keras.utils.set_random_seed(seed)
    tf.keras.backend.clear_session()
    model = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(8, activation="relu"), tf.keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _series(folder):
    accumulator = plugin_event_accumulator.EventAccumulator(str(folder), size_guidance={"tensors": 0})
    accumulator.Reload()
    return {tag: [(event.step, tensor_util.make_ndarray(event.tensor_proto)) for event in accumulator.Tensors(tag)] for tag in accumulator.Tags()["tensors"] if tag != "__run_graph__"}


def test_tensorboard_writes_epoch_scalars_for_train_and_validation(tmp_path):
    x, y = _blobs()
    model = _classifier(tf.keras.optimizers.SGD(learning_rate=0.05))
    history = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[tf.keras.callbacks.TensorBoard(tmp_path)])
    train, validation = _series(tmp_path / "train"), _series(tmp_path / "validation")
    assert set(train) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_time"}
    assert set(validation) == {"epoch_loss", "epoch_accuracy", "evaluation_loss_vs_iterations", "evaluation_accuracy_vs_iterations"}
    for name in ("loss", "accuracy"):
        assert [step for step, _ in train[f"epoch_{name}"]] == [0, 1, 2]
        np.testing.assert_allclose([float(v) for _, v in train[f"epoch_{name}"]], history.history[name], rtol=1e-6)
        np.testing.assert_allclose([float(v) for _, v in validation[f"epoch_{name}"]], history.history[f"val_{name}"], rtol=1e-6)
        # Keras 3 also logs each validation against the optimizer's iteration count: 6 batches an epoch.
        assert [step for step, _ in validation[f"evaluation_{name}_vs_iterations"]] == [6, 12, 18]
        np.testing.assert_allclose([float(v) for _, v in validation[f"evaluation_{name}_vs_iterations"]], history.history[f"val_{name}"], rtol=1e-6)
    np.testing.assert_allclose([float(v) for _, v in train["epoch_learning_rate"]], [0.05] * 3, rtol=1e-6)
    assert all(float(v) > 0 for _, v in train["epoch_time"])


def test_tensorboard_batch_scalars_and_weight_histograms(tmp_path):
    x, y = _blobs()
    model = _classifier()
    batch_losses = []
    recorder = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batch_losses.append(logs["loss"]))
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[recorder, tf.keras.callbacks.TensorBoard(tmp_path, histogram_freq=2, update_freq=3)])
    train = _series(tmp_path / "train")
    assert [step for step, _ in train["batch_loss"]] == [3, 6, 9, 12, 15]  # 8 batches an epoch, 16 in all
    np.testing.assert_allclose([float(v) for _, v in train["batch_loss"]], [batch_losses[s - 1] for s in (3, 6, 9, 12, 15)], rtol=1e-6)
    assert not os.path.exists(tmp_path / "validation")
    for weight in model.weights:
        [(step, table)] = train[weight.name.split(":")[0] + "/histogram"]  # histogram_freq=2: epoch 0 only
        assert step == 0 and table.shape == (30, 3) and table[:, 2].sum() == weight.numpy().size
    assert not any(tag.endswith("/image") for tag in train)  # write_images is off
    with pytest.raises(ValueError, match="update_freq"):
        tf.keras.callbacks.TensorBoard(tmp_path, update_freq="often")


def test_update_freq_batch_writes_every_batch_with_steps_per_second(tmp_path):
    x, y = _blobs(n=64)
    _classifier().fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[tf.keras.callbacks.TensorBoard(tmp_path, update_freq="batch", write_steps_per_second=True, write_graph=False)])
    train = _series(tmp_path / "train")
    assert [step for step, _ in train["batch_loss"]] == [1, 2, 3, 4]
    assert [step for step, _ in train["batch_steps_per_second"]] == [1, 2, 3, 4]
    assert all(float(v) > 0 for _, v in train["epoch_steps_per_second"])


def test_weights_are_written_as_images_laid_out_as_keras_does(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    import io

    x, y = _blobs(n=64)
    model = _classifier()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[tf.keras.callbacks.TensorBoard(tmp_path, histogram_freq=1, write_images=True)])
    train = _series(tmp_path / "train")
    kernel = model.weights[0].numpy()  # (4, 8): already wide, kept as is
    [(_, blobs)] = train["dense/kernel/image"]
    assert (blobs[0], blobs[1]) == (b"8", b"4")
    decoded = np.asarray(image_module.open(io.BytesIO(blobs[2]))).reshape(4, 8)
    expected = np.floor((kernel - kernel.min()) / (kernel.max() - kernel.min()) * 255.5).astype(np.uint8)
    np.testing.assert_array_equal(decoded, expected)
    [(_, bias_blobs)] = train["dense/bias/image"]
    assert (bias_blobs[0], bias_blobs[1]) == (b"8", b"1")


def test_the_model_graph_is_a_graph_def_tensorboard_reads(tmp_path):
    x, y = _blobs(n=64)
    model = _classifier()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[tf.keras.callbacks.TensorBoard(tmp_path)])
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "train"))
    accumulator.Reload()
    nodes = {node.name: node for node in accumulator.Graph().node}
    assert {"dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"} <= set(nodes)
    by_op = {}
    for node in nodes.values():
        by_op.setdefault(node.op, []).append(node)
    [matmul, matmul_1] = sorted(by_op["matmul"], key=lambda node: node.name)
    assert matmul.name.startswith("dense/") and "dense/kernel" in matmul.input
    assert matmul_1.name.startswith("dense_1/") and "dense_1/kernel" in matmul_1.input
    [placeholder] = by_op["Placeholder"]
    assert [dim.size for dim in placeholder.attr["_output_shapes"].list.shape[0].dim] == [-1, 4]
    assert all(source in nodes for node in nodes.values() for source in node.input)  # every edge resolves


def test_a_subclassed_model_built_by_fit_gets_its_graph_too(tmp_path):
    class Net(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = tf.keras.layers.Dense(3)

        def call(self, inputs):
            return self.dense(inputs)

    x, y = _blobs(n=32)
    built = Net()
    built.compile("sgd", "sparse_categorical_crossentropy")
    built.fit(x, y, verbose=0, callbacks=[tf.keras.callbacks.TensorBoard(tmp_path)])
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "train"))
    accumulator.Reload()
    assert sorted(node.op for node in accumulator.Graph().node) == ["Placeholder", "VarHandleOp", "VarHandleOp", "add", "matmul"]


def test_profile_batch_is_ignored_with_a_warning_and_embeddings_are_refused(tmp_path):
    with pytest.warns(UserWarning, match="profile_batch=2 is ignored"):
        tf.keras.callbacks.TensorBoard(tmp_path, profile_batch=2)
    with pytest.raises(NotImplementedError, match="embeddings"):
        tf.keras.callbacks.TensorBoard(tmp_path, embeddings_freq=1)


@pytest.mark.parametrize("as_dict", [False, True])
def test_functional_models_with_several_inputs_get_their_graph(tmp_path, as_dict):
    first, second = tf.keras.Input(shape=(3,), name="first"), tf.keras.Input(shape=(2,), name="second")
    joined = tf.keras.layers.Dense(1)(tf.keras.layers.Concatenate()([first, second]))
    model = tf.keras.Model({"first": first, "second": second} if as_dict else [first, second], joined)
    model.compile("sgd", "mse")
    x = [np.zeros((8, 3), np.float32), np.zeros((8, 2), np.float32)]
    model.fit(dict(zip(("first", "second"), x)) if as_dict else x, np.zeros((8, 1), np.float32), verbose=0, callbacks=[tf.keras.callbacks.TensorBoard(tmp_path)])
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "train"))
    accumulator.Reload()
    placeholders = [node for node in accumulator.Graph().node if node.op == "Placeholder"]
    assert sorted(dim.size for node in placeholders for dim in node.attr["_output_shapes"].list.shape[0].dim) == [-1, -1, 2, 3]
