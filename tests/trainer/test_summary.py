"""tf.summary event files, read back with TensorBoard's own reader, protobufs and CRC code as the reference."""

import io
import os

import numpy as np
import pytest

import trainer as tf
from trainer.summary import protobuf
from trainer.summary.crc32c import crc32c, masked_crc32c

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing import event_file_loader, plugin_event_accumulator  # noqa: E402
from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: E402
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402


def _accumulator(logdir):
    accumulator = plugin_event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    accumulator.Reload()
    return accumulator


def _series(accumulator, tag):
    return [(event.step, tensor_util.make_ndarray(event.tensor_proto)) for event in accumulator.Tensors(tag)]


def test_crc32c_matches_the_check_value_and_tensorboards_implementation():
    assert crc32c(b"123456789") == 0xE3069283
    generator = np.random.default_rng(0)
    # Sizes on both sides of the switch to the vectorized lanes (16 lanes of 256 bytes) and with a tail.
    for size in (0, 1, 7, 8, 100, 1000, 4095, 4096, 4097, 10_000, 70_001):
        data = generator.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert masked_crc32c(data) == pywrap_tensorflow.masked_crc32c(data)


@pytest.mark.parametrize("step", [0, 1, 127, 128, 300, 2**40, -1, -(2**40)])
def test_protobuf_encoder_agrees_with_the_compiled_event_proto(step):
    ours = protobuf.double_field(1, 12.5) + protobuf.int_field(2, step) + protobuf.bytes_field(3, "brain.Event:2")
    reference = event_pb2.Event(wall_time=12.5, step=step, file_version="brain.Event:2")
    assert event_pb2.Event.FromString(ours) == reference
    if step != 0:  # proto3 serializers leave out a zero step; the bytes agree otherwise
        assert ours == reference.SerializeToString()


def test_summary_value_encoding_parses_as_the_reference_message():
    from trainer.summary import event_file

    value = event_file.summary_value("a/b", event_file.tensor_proto(event_file.DT_FLOAT, (), floats=[1.5]), "scalars", event_file.DATA_CLASS_SCALAR, "about")
    parsed = summary_pb2.Summary.Value.FromString(value)
    assert parsed.tag == "a/b" and parsed.metadata.plugin_data.plugin_name == "scalars"
    assert parsed.metadata.summary_description == "about" and parsed.metadata.data_class == summary_pb2.DATA_CLASS_SCALAR
    assert tensor_util.make_ndarray(parsed.tensor) == np.float32(1.5)


def test_scalars_round_trip_with_steps_from_arguments_and_the_default_step(tmp_path):
    writer = tf.summary.create_file_writer(tmp_path / "run")
    with writer.as_default():
        for step in range(5):
            assert tf.summary.scalar("loss", 1.0 / (step + 1), step=step)
        tf.summary.experimental.set_step(tf.Variable(7, dtype=tf.int64))
        tf.summary.scalar("lr", tf.constant(0.25))
        tf.summary.experimental.set_step(None)
    with writer.as_default(step=9):
        tf.summary.scalar("lr", np.float32(0.5))
    writer.close()
    assert os.path.basename(writer.path).startswith("events.out.tfevents.")
    first = next(iter(event_file_loader.EventFileLoader(writer.path).Load()))
    assert first.file_version == "brain.Event:2"
    accumulator = _accumulator(tmp_path / "run")
    assert set(accumulator.Tags()["tensors"]) == {"loss", "lr"}
    loss = _series(accumulator, "loss")
    assert [step for step, _ in loss] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([value for _, value in loss], [1.0, 0.5, 1 / 3, 0.25, 0.2], rtol=1e-6)
    assert [(step, float(value)) for step, value in _series(accumulator, "lr")] == [(7, 0.25), (9, 0.5)]
    assert accumulator.SummaryMetadata("loss").plugin_data.plugin_name == "scalars"


def test_legacy_event_accumulator_sees_the_scalars_as_tensors_too(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with tf.summary.create_file_writer(tmp_path) as writer, writer.as_default():
        tf.summary.scalar("x", 3.0, step=4)
    accumulator = EventAccumulator(str(tmp_path))
    accumulator.Reload()
    [event] = accumulator.Tensors("x")
    assert event.step == 4 and tensor_util.make_ndarray(event.tensor_proto) == 3.0


def test_ops_without_a_writer_return_false_and_without_a_step_raise(tmp_path):
    assert tf.summary.scalar("x", 1.0, step=0) is False
    with tf.summary.create_file_writer(tmp_path).as_default():
        with pytest.raises(ValueError, match="No step set"):
            tf.summary.scalar("x", 1.0)
        with pytest.raises(ValueError, match="expects a scalar"):
            tf.summary.scalar("x", [1.0, 2.0], step=0)


def test_histogram_buckets_cover_the_data(tmp_path):
    data = np.random.default_rng(1).normal(size=1000)
    with tf.summary.create_file_writer(tmp_path).as_default():
        tf.summary.histogram("weights", tf.constant(data.astype(np.float32)), step=3)
        tf.summary.histogram("constant", np.full(10, 2.0), step=4, buckets=5)
    accumulator = _accumulator(tmp_path)
    [(step, table)] = _series(accumulator, "weights")
    assert step == 3 and table.shape == (30, 3)
    counts, edges = np.histogram(data.astype(np.float32).astype(np.float64), bins=30)
    np.testing.assert_allclose(table[:, 0], edges[:-1], rtol=1e-12)
    np.testing.assert_allclose(table[:, 1], edges[1:], rtol=1e-12)
    np.testing.assert_array_equal(table[:, 2], counts)
    [(_, constant)] = _series(accumulator, "constant")
    assert constant.shape == (5, 3) and constant[:, 2].sum() == 10 and constant[0, 0] == 1.5 and constant[-1, 1] == 2.5
    assert accumulator.SummaryMetadata("weights").plugin_data.plugin_name == "histograms"


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_images_are_pngs_that_pillow_decodes_to_the_same_pixels(tmp_path, channels):
    image_module = pytest.importorskip("PIL.Image")
    pixels = np.random.default_rng(channels).integers(0, 256, (5, 6, 7, channels), dtype=np.uint8)
    with tf.summary.create_file_writer(tmp_path).as_default():
        tf.summary.image("samples", pixels, step=2)  # max_outputs=3 keeps the first three
        tf.summary.image("floats", pixels[:1].astype(np.float32) / 255.0, step=2)
    accumulator = _accumulator(tmp_path)
    [(step, blobs)] = _series(accumulator, "samples")
    assert step == 2 and blobs[0] == b"7" and blobs[1] == b"6" and len(blobs) == 5
    for blob, expected in zip(blobs[2:], pixels):
        decoded = np.asarray(image_module.open(io.BytesIO(blob)))
        np.testing.assert_array_equal(decoded.reshape(expected.shape), expected)
    [(_, float_blobs)] = _series(accumulator, "floats")
    np.testing.assert_array_equal(np.asarray(image_module.open(io.BytesIO(float_blobs[2]))).reshape(pixels[0].shape), pixels[0])
    assert accumulator.SummaryMetadata("samples").plugin_data.plugin_name == "images"
    with pytest.raises(ValueError, match="expects \\(k, height, width, 1\\|3\\|4\\)"):
        tf.summary.image("bad", np.zeros((6, 7, 3)), step=0)


def test_text_round_trips_strings_and_tables(tmp_path):
    with tf.summary.create_file_writer(tmp_path).as_default(step=1):
        tf.summary.text("note", "**bold** ünïcode")
        tf.summary.text("table", np.array([["a", "b"], ["c", "d"]]))
    accumulator = _accumulator(tmp_path)
    [(step, note)] = _series(accumulator, "note")
    assert step == 1 and note.item().decode("utf-8") == "**bold** ünïcode"
    [(_, table)] = _series(accumulator, "table")
    assert table.shape == (2, 2) and table[1, 0] == b"c"
    assert accumulator.SummaryMetadata("note").plugin_data.plugin_name == "text"


def test_writers_flush_when_the_queue_fills_and_refuse_writes_after_close(tmp_path):
    writer = tf.summary.create_file_writer(tmp_path, max_queue=2)
    with writer.as_default():
        tf.summary.scalar("x", 1.0, step=0)
        size_after_one = os.path.getsize(writer.path)
        tf.summary.scalar("x", 2.0, step=1)
        assert os.path.getsize(writer.path) > size_after_one  # two pending: flushed without being asked
    writer.close()
    with writer.as_default(), pytest.raises(ValueError, match="closed"):
        tf.summary.scalar("x", 3.0, step=2)


def test_a_custom_training_loop_logs_with_the_optimizer_step_and_a_flush(tmp_path):
    tf.keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]], np.float32)
    model = tf.keras.Sequential([tf.keras.Input(shape=(3,)), tf.keras.layers.Dense(1)])
    optimizer = tf.keras.optimizers.SGD(0.1)
    writer = tf.summary.create_file_writer(str(tmp_path), flush_millis=10**9)  # nothing reaches disk until flushed
    losses = []
    with writer.as_default():
        for _ in range(4):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x) - y))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            tf.summary.scalar("loss", loss, step=optimizer.iterations)
            losses.append(float(loss.numpy()))
        tf.summary.flush()
        assert [step for step, _ in _series(_accumulator(tmp_path), "loss")] == [1, 2, 3, 4]
    np.testing.assert_allclose([float(v) for _, v in _series(_accumulator(tmp_path), "loss")], losses, rtol=1e-6)


def test_graphs_are_graph_defs_that_tensorboard_reads(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    @tf.function
    def affine(x):
        return tf.nn.relu(tf.matmul(x, tf.constant(np.ones((3, 2), np.float32))) + 1.0)

    concrete = affine.get_concrete_function(tf.TensorSpec([None, 3]))
    assert tf.summary.graph(concrete) is False  # no default writer
    with tf.summary.create_file_writer(tmp_path).as_default():
        assert tf.summary.graph(concrete)
        with pytest.raises(TypeError, match="expects a traced Graph"):
            tf.summary.graph("not a graph")
    accumulator = EventAccumulator(str(tmp_path))
    accumulator.Reload()
    nodes = list(accumulator.Graph().node)
    ops = [node.op for node in nodes]
    assert ops[0] == "Placeholder" and ops.count("Const") == len(concrete.graph.constants)
    assert [op for op in ops if op not in ("Placeholder", "Const")] == [node.op.name for node in concrete.graph.nodes]
    names = {node.name for node in nodes}
    assert all(source in names for node in nodes for source in node.input)
    assert [len(node.input) for node in nodes[-len(concrete.graph.nodes):]] == [len(node.inputs) for node in concrete.graph.nodes]
