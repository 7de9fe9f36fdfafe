"""The graph evaluator: generated straight-line code that runs like the graph says, readable and debuggable."""

from __future__ import annotations

import traceback

import numpy as np
import pytest

import trainer as tf
from trainer.graph.evaluator import Executable

RNG = np.random.default_rng(7)


def _concrete(function, *specs):
    return tf.function(function, input_signature=list(specs)).get_concrete_function()


def test_source_has_one_line_per_node_and_runs_like_eager():
    weights = tf.Variable(RNG.standard_normal((4, 3)).astype(np.float32))

    def function(x):
        y = tf.nn.relu(tf.matmul(x, weights)) * 2.0
        pair = tf.cond(tf.reduce_sum(x) > 0, lambda: (y, y + 1.0), lambda: (y - 1.0, y))  # a two-output node
        return y, tf.reduce_sum(y, axis=1), pair[0], pair[1]

    concrete = _concrete(function, tf.TensorSpec([None, 4], tf.float32))
    executable = Executable(concrete.graph)
    for node in concrete.graph.nodes:
        assert f"# {' '.join(str(node).split())}"[:60] in executable.source
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    expected = [t.numpy() for t in tf.nest.flatten(function(tf.constant(x)))]
    for actual, wanted in zip(executable.run(x), expected):
        np.testing.assert_allclose(actual, wanted, rtol=1e-6)


def test_variables_are_read_at_each_call():
    weights = tf.Variable(np.ones(3, np.float32))
    executable = Executable(_concrete(lambda x: x * weights, tf.TensorSpec([3], tf.float32)).graph)
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(executable.run(x)[0], x)
    weights.assign(np.full(3, 2, np.float32))
    np.testing.assert_array_equal(executable.run(x)[0], 2 * x)


def test_a_kernel_error_points_at_the_generated_line():
    executable = Executable(_concrete(lambda x: tf.reshape(x, (-1, 4)), tf.TensorSpec([None], tf.float32)).graph)
    with pytest.raises(ValueError) as raised:
        executable.run(np.zeros(5, np.float32))
    text = "".join(traceback.format_exception(raised.value))
    assert "emberflow graph" in text and "reshape(" in text
