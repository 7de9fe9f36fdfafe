"""``tf.feature_column.numeric_column`` and ``dense_input``: shapes, dtypes and duplicate columns as TensorFlow treats them."""

from __future__ import annotations

import numpy as np
import pytest

import trainer as tf
from trainer.feature_column import dense_input


def test_numeric_columns_check_their_input():
    column = tf.feature_column.numeric_column("x", shape=(2,), normalizer_fn=lambda value: value * 2.0)
    np.testing.assert_array_equal(dense_input({"x": tf.constant([[1.0, 2.0]])}, [column]).numpy(), [[2.0, 4.0]])
    with pytest.raises(KeyError, match="feature 'x' is not in the features dict"):
        dense_input({"y": tf.constant([[1.0, 2.0]])}, [column])
    with pytest.raises(ValueError, match="per-example shape \\(3,\\)"):
        dense_input({"x": tf.constant([[1.0, 2.0, 3.0]])}, [column])
    with pytest.raises(ValueError, match="real integer or floating point dtype, got bool"):
        tf.feature_column.numeric_column("x", dtype=tf.bool)


def test_a_batch_of_scalars_fits_only_a_column_of_size_one():
    values = np.arange(8, dtype=np.float32)
    with pytest.raises(ValueError, match=r"feature 'x' has shape \(8,\): one value per example, but its numeric_column has shape \(4,\)"):
        dense_input({"x": tf.constant(values)}, [tf.feature_column.numeric_column("x", shape=4)])
    single = dense_input({"x": tf.constant(values)}, [tf.feature_column.numeric_column("x")])
    np.testing.assert_array_equal(single.numpy(), values.reshape(8, 1))


@pytest.mark.parametrize("shape", [(3, 4), (3, 2, 2), (3, 4, 1)])
def test_any_feature_shape_with_the_column_size_per_example_is_flattened(shape):
    values = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    out = dense_input({"x": tf.constant(values)}, [tf.feature_column.numeric_column("x", shape=(2, 2))])
    np.testing.assert_array_equal(out.numpy(), values.reshape(3, 4))


def test_duplicate_columns_are_refused_like_tensorflow():
    column = tf.feature_column.numeric_column("x", shape=4)
    with pytest.raises(ValueError, match="Duplicate feature column name found for columns"):
        dense_input({"x": tf.constant(np.ones((2, 4), np.float32))}, [column, column])
    with pytest.raises(ValueError, match="Duplicate feature column name found"):
        tf.estimator.LinearClassifier([column, tf.feature_column.numeric_column("x", shape=2)])


@pytest.mark.parametrize("dtype", ["int32", "int64", "float64", "float32"])
def test_integer_and_floating_columns_give_float32(dtype):
    column = tf.feature_column.numeric_column("x", shape=2, dtype=getattr(tf, dtype), normalizer_fn=lambda value: value * 3)
    out = dense_input({"x": tf.constant(np.array([[1, 2], [3, 4]], dtype=dtype))}, [column])
    assert out.dtype == tf.float32
    np.testing.assert_array_equal(out.numpy(), np.array([[3, 6], [9, 12]], np.float32))
