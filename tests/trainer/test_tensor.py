"""Tensors: dtypes, shapes, conversion rules, operators with broadcasting, indexing."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import trainer as tf
from trainer.ops.registry import OpError


def test_constant_reports_dtype_shape_rank_and_value():
    x = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert x.dtype == tf.float32
    assert x.shape == tf.TensorShape([2, 3])
    assert x.ndim == 2 and tf.rank(x).numpy() == 2
    np.testing.assert_array_equal(x.numpy(), np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    assert "CPU:0" in x.device


@pytest.mark.parametrize(
    "value, dtype",
    [(1.5, tf.float32), (3, tf.int32), (True, tf.bool), ([1, 2], tf.int32), (np.float64(2.0), tf.float64), (np.arange(3, dtype=np.uint8), tf.uint8)],
)
def test_python_and_numpy_values_convert_like_tensorflow(value, dtype):
    assert tf.constant(value).dtype == dtype


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "uint8", "int32", "int64", "bool"])
def test_every_supported_dtype_round_trips(dtype):
    x = tf.constant(np.zeros((2, 3)), dtype=dtype)
    assert x.dtype.name == dtype
    assert x.numpy().dtype == np.dtype(dtype)


def test_constant_with_shape_broadcasts_a_scalar_and_reshapes_a_list():
    np.testing.assert_array_equal(tf.constant(7, shape=(2, 2)).numpy(), np.full((2, 2), 7, np.int32))
    assert tf.constant([1, 2, 3, 4], shape=[2, 2]).shape == (2, 2)
    with pytest.raises(TypeError, match="cannot reshape"):
        tf.constant([1, 2, 3], shape=[2, 2])


def test_strings_are_rejected_with_a_clear_message():
    with pytest.raises(TypeError, match="string"):
        tf.constant(["a", "b"])
    with pytest.raises(TypeError, match="string"):
        tf.convert_to_tensor(np.array(["cat", "dog"]))


def test_mixed_dtypes_need_an_explicit_cast():
    with pytest.raises(OpError, match="use tf.cast"):
        tf.constant(1.0) + tf.constant(1)
    assert (tf.constant(1.0) + tf.cast(tf.constant(1), tf.float32)).numpy() == 2.0


def test_python_numbers_take_the_tensor_dtype():
    x = tf.constant([1.0, 2.0], dtype=tf.float64)
    assert (x * 2).dtype == tf.float64
    assert (2 - x).dtype == tf.float64
    assert (tf.constant([1, 2]) + 1).dtype == tf.int32


binary = st.sampled_from(
    [
        ("__add__", np.add),
        ("__sub__", np.subtract),
        ("__mul__", np.multiply),
        ("__truediv__", np.divide),
        ("__pow__", np.power),
        ("__lt__", np.less),
        ("__ge__", np.greater_equal),
        ("__eq__", np.equal),
    ]
)


@settings(max_examples=60, deadline=None)
@given(binary, hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4), st.integers(0, 2**31 - 1))
def test_operators_broadcast_like_numpy(operator, shapes, seed):
    name, reference = operator
    generator = np.random.default_rng(seed)
    a = generator.uniform(0.5, 2.0, shapes.input_shapes[0]).astype(np.float32)
    b = generator.uniform(0.5, 2.0, shapes.input_shapes[1]).astype(np.float32)
    result = getattr(tf.constant(a), name)(tf.constant(b))
    np.testing.assert_allclose(result.numpy(), reference(a, b), rtol=1e-6)
    assert result.shape == tf.TensorShape(shapes.result_shape)


def test_reflected_operators_with_numpy_on_the_left():
    x = tf.constant([1.0, 2.0])
    result = np.float32(3.0) - x
    assert isinstance(result, tf.Tensor)
    np.testing.assert_array_equal(result.numpy(), [2.0, 1.0])
    assert isinstance(np.array([1.0, 1.0], np.float32) * x, tf.Tensor)


def test_matmul_operator_and_unary_operators():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose((tf.constant(a) @ tf.constant(b)).numpy(), a @ b)
    np.testing.assert_array_equal((-tf.constant(a)).numpy(), -a)
    np.testing.assert_array_equal(abs(tf.constant(-a)).numpy(), a)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_indexing_and_slicing_match_numpy(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    key = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    np.testing.assert_array_equal(tf.constant(array)[key].numpy(), array[key])


def test_indexing_with_lists_points_to_gather():
    with pytest.raises(TypeError, match="tf.gather"):
        tf.constant([1, 2, 3])[[0, 2]]


def test_tensors_are_unhashable_but_have_refs():
    x = tf.constant(1.0)
    with pytest.raises(TypeError, match="ref"):
        {x: 1}
    assert {x.ref(): 1}[x.ref()] == 1 and x.ref().deref() is x


def test_scalar_conversions_and_truth_values():
    assert float(tf.constant(2.5)) == 2.5 and int(tf.constant(3)) == 3
    assert bool(tf.constant(True))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(tf.constant([1, 2]))
    assert [float(t) for t in tf.constant([1.0, 2.0])] == [1.0, 2.0]
    assert len(tf.constant(np.zeros((4, 2)))) == 4


def test_tensor_shape_with_unknown_dims():
    shape = tf.TensorShape([None, 28, 28])
    assert shape.rank == 3 and not shape.is_fully_defined()
    assert shape.is_compatible_with([32, 28, 28]) and not shape.is_compatible_with([32, 28, 27])
    assert not shape.is_compatible_with([32, 28])
    assert shape.merge_with([32, None, 28]).as_list() == [32, 28, 28]
    with pytest.raises(ValueError, match="incompatible"):
        shape.merge_with([1, 2, 3])
    assert tf.TensorShape(None).rank is None and tf.TensorShape(None).is_compatible_with([1, 2])
    assert str(shape) == "(None, 28, 28)"
    assert shape[1:] == tf.TensorShape([28, 28]) and shape[0] is None


def test_tensor_spec_describes_compatible_tensors():
    spec = tf.TensorSpec([None, 28, 28], tf.float32, name="images")
    assert spec.is_compatible_with(tf.zeros((5, 28, 28)))
    assert not spec.is_compatible_with(tf.zeros((5, 28, 28), dtype=tf.float64))
    assert spec == tf.TensorSpec([None, 28, 28], "float32", "images")
    assert "images" in repr(spec)


def test_printing_looks_like_tensorflow():
    assert repr(tf.constant([1, 2])) == "<tf.Tensor: shape=(2,), dtype=int32, numpy=[1 2]>"
    assert str(tf.constant(3.0)) == "tf.Tensor(3.0, shape=(), dtype=float32)"
