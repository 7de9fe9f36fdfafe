"""tf.function: tracing once per signature, input signatures with None dims, and graphs that match eager."""

import warnings

import numpy as np
import pytest

import trainer as tf


def test_the_chapter_example_adds_two_constants():
    @tf.function
    def add(a, b):
        return a + b

    result = add(tf.constant(1), tf.constant(2))
    assert isinstance(result, tf.Tensor) and int(result) == 3


def test_same_signature_reuses_the_trace_new_shape_or_dtype_traces_again():
    f = tf.function(lambda x: x * 2)
    f(tf.constant([1.0, 2.0]))
    f(tf.constant([3.0, 4.0]))
    assert f.experimental_get_tracing_count() == 1
    f(tf.constant([1.0, 2.0, 3.0]))
    assert f.experimental_get_tracing_count() == 2
    f(tf.constant([1.0, 2.0], dtype=tf.float64))
    assert f.experimental_get_tracing_count() == 3


def test_python_arguments_are_part_of_the_signature():
    f = tf.function(lambda x, scale: x * scale)
    f(tf.constant(1.0), 2.0)
    f(tf.constant(1.0), 2.0)
    f(tf.constant(1.0), 3.0)
    assert f.experimental_get_tracing_count() == 2
    assert float(f(tf.constant(1.0), 3.0)) == 3.0


def test_input_signature_with_none_dims_traces_once_for_every_batch_size():
    f = tf.function(lambda x: tf.reduce_sum(x, axis=1), input_signature=[tf.TensorSpec([None, 28, 28], tf.float32)])
    for batch in (1, 7, 32):
        np.testing.assert_allclose(f(np.ones((batch, 28, 28), np.float32)).numpy(), np.full((batch, 28), 28.0))
    assert f.experimental_get_tracing_count() == 1
    with pytest.raises(TypeError, match="input_signature"):
        f(np.ones((2, 28, 27), np.float32))


def test_retracing_too_often_warns():
    f = tf.function(lambda x: x + 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for size in range(1, 9):
            f(tf.zeros((size,)))
    assert any("retracing" in str(w.message) for w in caught)


def test_captured_variables_are_read_and_assigned_through_the_graph():
    counter = tf.Variable(0.0)
    weights = tf.Variable([1.0, 2.0])

    @tf.function
    def step(x):
        counter.assign_add(1.0)
        return tf.reduce_sum(x * weights)

    assert float(step(tf.constant([1.0, 1.0]))) == 3.0
    weights.assign([10.0, 20.0])
    assert float(step(tf.constant([1.0, 1.0]))) == 30.0
    assert float(counter) == 2.0 and step.experimental_get_tracing_count() == 1


def test_a_gradient_step_inside_a_function_updates_the_real_variables():
    w = tf.Variable([[1.0], [2.0]])
    x = tf.constant([[1.0, 1.0], [2.0, 0.5]])

    def loss_and_grad():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - 1.0))
        return loss, tape.gradient(loss, w)

    eager_loss, eager_grad = loss_and_grad()

    @tf.function
    def train_step():
        loss, grad = loss_and_grad()
        w.assign_sub(grad * 0.1)
        return loss, grad

    graph_loss, graph_grad = train_step()
    np.testing.assert_allclose(graph_loss.numpy(), eager_loss.numpy(), rtol=1e-6)
    np.testing.assert_allclose(graph_grad.numpy(), eager_grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(w.numpy(), np.array([[1.0], [2.0]]) - 0.1 * eager_grad.numpy(), rtol=1e-6)


def test_a_keras_model_traces_to_the_chapter_graph_and_matches_eager():
    model = tf.keras.Sequential(
        [tf.keras.layers.Flatten(input_shape=(28, 28)), tf.keras.layers.Dense(128, activation="relu"), tf.keras.layers.Dropout(0.2), tf.keras.layers.Dense(10, activation="softmax")]
    )
    concrete = tf.function(model).get_concrete_function(tf.TensorSpec([None, 28, 28]))
    ops = [node.op.name for node in concrete.graph.nodes]
    assert ops == ["reshape", "matmul", "add", "relu", "matmul", "add", "softmax"]  # dropout is off at inference
    text = str(concrete.graph)
    assert "f32[?,28,28]" in text and "@dense/kernel" in text and "= softmax(" in text
    images = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(concrete(images).numpy(), model(images).numpy(), rtol=1e-6)


def test_graph_printing_is_stable():
    f = tf.function(lambda x: tf.nn.relu(tf.matmul(x, tf.ones((3, 2)))))
    first = str(f.get_concrete_function(tf.TensorSpec([None, 3])).graph)
    second = str(tf.function(lambda x: tf.nn.relu(tf.matmul(x, tf.ones((3, 2))))).get_concrete_function(tf.TensorSpec([None, 3])).graph)
    assert first.splitlines()[1:] == second.splitlines()[1:]
    assert first.splitlines()[1].endswith("= fill() {shape=(3, 2), value=1, dtype=float32}") or "matmul" in first


def test_graph_check_reports_the_bad_node_with_context():
    from trainer.graph import Graph, GraphError  # noqa: PLC0415
    from trainer.ops import get_op  # noqa: PLC0415
    from trainer.tensor import Spec  # noqa: PLC0415

    graph = Graph("broken")
    x = graph.input((None, 3), tf.float32, "x")
    node = graph.add_node(get_op("relu"), [x], {}, [Spec((None, 4), tf.float32)])
    graph.outputs = node.outputs
    with pytest.raises(GraphError, match=r"node 0 \(relu\).*declared f32\[\?,4\].*infers f32\[\?,3\]"):
        graph.check()


def test_a_tape_outside_a_function_differentiates_through_it():
    w = tf.Variable([2.0, 3.0])
    f = tf.function(lambda x: tf.reduce_sum(x * w * w))
    x = tf.constant([1.0, 1.0])
    with tf.GradientTape() as tape:
        y = f(x)
    np.testing.assert_allclose(tape.gradient(y, w).numpy(), [4.0, 6.0])
