"""The TensorBoard callback, read back with TensorBoard's own event reader (the judge of our event files)."""

import os

import numpy as np
import pytest

import trainer as tf
from tests.trainer.keras.toy_data import blobs as _blobs
from tests.trainer.keras.toy_data import classifier as _classifier

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402


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
    assert (bias_blobs[0], bias_blobs[1]) == (b"1", b"8")  # width, height: Keras draws a bias as a column [1, n, 1, 1]
    bias = model.weights[1].numpy()
    decoded = np.asarray(image_module.open(io.BytesIO(bias_blobs[2]))).reshape(8, 1)
    np.testing.assert_array_equal(decoded[:, 0], np.floor((bias - bias.min()) / (bias.max() - bias.min()) * 255.5).astype(np.uint8))


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


def test_batch_steps_per_second_times_the_batch_without_the_writing(tmp_path, monkeypatch):
    from trainer import summary
    from trainer.keras.callbacks import tensorboard

    clock = [0.0]
    monkeypatch.setattr(tensorboard, "time", type("FakeTime", (), {"perf_counter": staticmethod(lambda: clock[0])}))
    scalar = summary.scalar

    def slow_scalar(name, data, step=None, description=None):
        clock[0] += 10.0  # writing takes far longer than training here
        return scalar(name, data, step=step, description=description)

    monkeypatch.setattr(summary, "scalar", slow_scalar)
    trained = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: clock.__setitem__(0, clock[0] + 0.25))
    x, y = _blobs(n=64)
    board = tf.keras.callbacks.TensorBoard(tmp_path, update_freq="batch", write_steps_per_second=True, write_graph=False)
    _classifier().fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[trained, board])
    train = _series(tmp_path / "train")
    np.testing.assert_allclose([float(v) for _, v in train["batch_steps_per_second"]], [4.0, 4.0])  # 1 / 0.25 s


def test_evaluate_after_fit_closes_the_writer_it_opens(tmp_path, monkeypatch):
    from trainer import summary

    writers = []
    create_file_writer = summary.create_file_writer

    def recording_create_file_writer(*args, **kwargs):
        writers.append(create_file_writer(*args, **kwargs))
        return writers[-1]

    monkeypatch.setattr(summary, "create_file_writer", recording_create_file_writer)
    x, y = _blobs(n=64)
    model = _classifier()
    board = tf.keras.callbacks.TensorBoard(tmp_path, write_graph=False)
    model.fit(x, y, epochs=1, validation_split=0.5, verbose=0, callbacks=[board])
    assert len(writers) == 2 and all(writer._file.closed for writer in writers)  # train and validation
    logs = model.evaluate(x, y, verbose=0, return_dict=True, callbacks=[board])
    model.evaluate(x, y, verbose=0, callbacks=[board])

    assert len(writers) == 4 and all(writer._file.closed for writer in writers)
    evaluated = _series(tmp_path / "validation")["evaluation_loss_vs_iterations"]
    assert [step for step, _ in evaluated] == [1, 1, 1]  # after fit's validation, the two evaluations
    np.testing.assert_allclose(float(evaluated[1][1]), logs["loss"], rtol=1e-6)


def test_a_second_fit_writes_the_graph_without_tracing_the_model_again(tmp_path, monkeypatch):
    from trainer.graph.function import Function

    x, y = _blobs(n=32)
    model = _classifier()
    board = tf.keras.callbacks.TensorBoard(tmp_path)
    model.fit(x, y, verbose=0, callbacks=[board])
    traced = []
    get_concrete_function = Function.get_concrete_function

    def recording(self, *args, **kwargs):
        traced.append(self.name)
        return get_concrete_function(self, *args, **kwargs)

    monkeypatch.setattr(Function, "get_concrete_function", recording)
    model.fit(x, y, verbose=0, callbacks=[board])
    assert model.name not in traced
    graphs = []
    for path in sorted((tmp_path / "train").iterdir()):
        accumulator = event_accumulator.EventAccumulator(str(path))
        accumulator.Reload()
        graphs.append(sorted(node.name for node in accumulator.Graph().node))
    assert len(graphs) == 2 and graphs[0] == graphs[1]  # each run's event file has the graph

