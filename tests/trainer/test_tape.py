"""GradientTape: watching, nesting, persistence, structures, and agreement with finite differences."""

import numpy as np
import pytest

import trainer as tf


def _central_difference(function, x, epsilon=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += epsilon
        minus[index] -= epsilon
        grad[index] = (function(plus) - function(minus)) / (2 * epsilon)
    return grad


def test_variables_are_watched_automatically_constants_must_be_watched():
    v = tf.Variable(3.0)
    c = tf.constant(2.0)
    with tf.GradientTape() as tape:
        y = v * v * c
    dv, dc = tape.gradient(y, [v, c])
    assert float(dv) == 12.0 and dc is None
    with tf.GradientTape() as tape:
        tape.watch(c)
        y = c * c
    assert float(tape.gradient(y, c)) == 4.0


def test_watch_accessed_variables_false_watches_only_what_is_asked():
    a, b = tf.Variable(1.0), tf.Variable(2.0)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(a)
        y = a * b
    grads = tape.gradient(y, [a, b])
    assert float(grads[0]) == 2.0 and grads[1] is None
    assert tape.watched_variables() == (a,)


def test_gradient_over_nested_structures():
    a, b, c = tf.Variable(1.0), tf.Variable(2.0), tf.Variable(3.0)
    with tf.GradientTape() as tape:
        y = a * b + c
    grads = tape.gradient(y, {"first": [a, b], "second": c})
    assert set(grads) == {"first", "second"}
    assert [float(g) for g in grads["first"]] == [2.0, 1.0] and float(grads["second"]) == 1.0


def test_unconnected_sources_give_none_or_zeros():
    a, unused = tf.Variable([1.0, 2.0]), tf.Variable([5.0, 5.0])
    with tf.GradientTape(persistent=True) as tape:
        y = tf.reduce_sum(a)
    assert tape.gradient(y, unused) is None
    np.testing.assert_array_equal(tape.gradient(y, unused, unconnected_gradients="zero").numpy(), [0.0, 0.0])


def test_stop_gradient_blocks_the_path():
    x = tf.Variable(2.0)
    with tf.GradientTape() as tape:
        y = x * tf.stop_gradient(x)
    assert float(tape.gradient(y, x)) == 2.0


def test_non_persistent_tape_refuses_a_second_call_persistent_allows_it():
    x = tf.Variable(2.0)
    with tf.GradientTape() as tape:
        y = x * x
    tape.gradient(y, x)
    with pytest.raises(RuntimeError, match="persistent"):
        tape.gradient(y, x)
    with tf.GradientTape(persistent=True) as tape:
        y, z = x * x, x * x * x
    assert float(tape.gradient(y, x)) == 4.0 and float(tape.gradient(z, x)) == 12.0


def test_stop_recording_hides_ops():
    x = tf.Variable(2.0)
    with tf.GradientTape() as tape:
        with tape.stop_recording():
            hidden = x * x
        y = x + hidden
    assert float(tape.gradient(y, x)) == 1.0


def test_output_gradients_weight_the_target():
    x = tf.Variable([1.0, 2.0])
    with tf.GradientTape() as tape:
        y = x * x
    np.testing.assert_allclose(tape.gradient(y, x, output_gradients=tf.constant([1.0, 10.0])).numpy(), [2.0, 40.0])


def test_a_tensor_used_twice_accumulates():
    x = tf.Variable(3.0)
    with tf.GradientTape() as tape:
        y = x * x + x
    assert float(tape.gradient(y, x)) == 7.0


@pytest.mark.parametrize(
    "function, numpy_function",
    [
        (lambda x: tf.exp(x) * tf.sin(x), lambda x: np.exp(x) * np.sin(x)),
        (lambda x: tf.tanh(x) * x, lambda x: np.tanh(x) * x),
        (lambda x: tf.sigmoid(x * x), lambda x: 1 / (1 + np.exp(-x * x))),
        (lambda x: tf.math.log(x) / x, lambda x: np.log(x) / x),
    ],
)
def test_nested_tapes_give_second_derivatives(function, numpy_function):
    values = np.random.default_rng(1).uniform(0.5, 2.0, size=5)
    x = tf.Variable(values)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            y = tf.reduce_sum(function(x))
        first = inner.gradient(y, x)
        total = tf.reduce_sum(first)
    second = outer.gradient(total, x).numpy()

    def first_derivative(v):
        return _central_difference(lambda p: numpy_function(p).sum(), v, 1e-5)

    reference = np.array(
        [(first_derivative(values + e)[i] - first_derivative(values - e)[i]) / 2e-4 for i, e in enumerate(np.eye(5) * 1e-4)]
    )
    np.testing.assert_allclose(second, reference, rtol=1e-3, atol=1e-4)


def test_matmul_mlp_gradient_matches_finite_differences():
    generator = np.random.default_rng(3)
    x = generator.normal(size=(4, 5))
    w = generator.normal(size=(5, 3))
    labels = np.eye(3)[[0, 2, 1, 0]]

    def loss_numpy(weights):
        logits = np.maximum(x @ weights, 0)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return -(labels * log_probabilities).sum() / len(x)

    weights = tf.Variable(w)
    with tf.GradientTape() as tape:
        logits = tf.nn.relu(tf.matmul(tf.constant(x), weights))
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(tf.constant(labels), logits))
    np.testing.assert_allclose(tape.gradient(loss, weights).numpy(), _central_difference(loss_numpy, w), rtol=1e-5, atol=1e-8)
