"""Variables: in-place assignment, identity, names and memory."""

import gc
import weakref

import numpy as np
import pytest

import trainer as tf


def test_assign_updates_in_place_and_keeps_identity():
    v = tf.Variable([1.0, 2.0], name="weights")
    alias = v
    buffer = v._value
    v.assign([3.0, 4.0])
    v.assign_add([1.0, 1.0])
    v.assign_sub(tf.constant([0.5, 0.5]))
    np.testing.assert_array_equal(alias.numpy(), [3.5, 4.5])
    assert v._value is buffer  # same buffer: updates are in place


def test_assign_rejects_wrong_shape_and_dtype():
    v = tf.Variable(np.zeros((2, 3), np.float32), name="kernel")
    with pytest.raises(ValueError, match=r"kernel.*shape \(3, 2\).*\(2, 3\)"):
        v.assign(np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="float64"):
        v.assign(np.zeros((2, 3), np.float64))


def test_names_scopes_and_trainability():
    with tf.name_scope("block1"):
        v = tf.Variable(1.0, name="w", trainable=False)
    assert v.name == "block1/w:0" and not v.trainable
    assert tf.Variable(1.0).name == "Variable:0"


def test_callable_initial_value_and_dtype():
    v = tf.Variable(lambda: np.ones(3), dtype=tf.float32)
    assert v.dtype == tf.float32 and v.shape == (3,)


def test_read_value_is_a_snapshot():
    v = tf.Variable([1.0])
    snapshot = v.read_value()
    v.assign([2.0])
    assert snapshot.numpy()[0] == 1.0 and v.numpy()[0] == 2.0


def test_dropping_the_last_reference_frees_the_variable():
    v = tf.Variable(np.zeros((256, 256), np.float32))
    reference = weakref.ref(v)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(v * v)
    tape.gradient(loss, v)
    del v, tape, loss
    gc.collect()
    assert reference() is None


def test_variables_do_not_pickle():
    import pickle  # noqa: PLC0415 - the test proves pickling is refused

    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(tf.Variable(1.0))
