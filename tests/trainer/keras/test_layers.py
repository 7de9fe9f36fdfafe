"""Activation, merging, reshaping and Dropout layers: Keras semantics checked against NumPy references."""

from __future__ import annotations

import json

import numpy as np
import pytest

import trainer as tf
from trainer.keras.saving import deserialize, serialize

layers = tf.keras.layers


def _round_trip(layer):
    """A new layer built from ``layer``'s config through JSON and the registry, as loading does."""
    config = json.loads(json.dumps(serialize(layer)))
    clone = deserialize("layers", config)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    return clone


# -- activations ---------------------------------------------------------------------------------------


def _reference_relu(x, max_value, negative_slope, threshold):
    passed = x if max_value is None else np.minimum(x, max_value)
    return np.where(x > threshold, passed, negative_slope * (x - threshold))


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"max_value": 6.0},
        {"max_value": 1.5},
        {"negative_slope": 0.1},
        {"threshold": 0.5},
        {"max_value": 2.0, "negative_slope": 0.2, "threshold": 0.3},
    ],
)
def test_relu_matches_the_keras_formula(rng, arguments):
    x = rng.uniform(-8, 8, size=(4, 7)).astype(np.float32)
    layer = layers.ReLU(**arguments)
    full = {"max_value": None, "negative_slope": 0.0, "threshold": 0.0, **arguments}
    result = layer(x)
    assert result.dtype == tf.float32 and result.shape == x.shape
    np.testing.assert_allclose(result.numpy(), _reference_relu(x, **full), rtol=1e-6)
    np.testing.assert_allclose(_round_trip(layer)(x).numpy(), result.numpy())


@pytest.mark.parametrize("arguments", [{"max_value": -1.0}, {"negative_slope": -0.1}, {"threshold": -1.0}])
def test_relu_rejects_negative_arguments(arguments):
    name = next(iter(arguments))
    with pytest.raises(ValueError, match=name):
        layers.ReLU(**arguments)


def test_leaky_relu_defaults_to_keras3_slope_and_accepts_keras2_alpha(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_allclose(layers.LeakyReLU()(x).numpy(), np.where(x > 0, x, 0.3 * x), rtol=1e-6)
    with pytest.warns(DeprecationWarning, match="negative_slope"):
        old_style = layers.LeakyReLU(alpha=0.1)
    assert old_style.negative_slope == pytest.approx(0.1)
    np.testing.assert_allclose(old_style(x).numpy(), np.where(x > 0, x, 0.1 * x), rtol=1e-6)
    assert _round_trip(old_style).negative_slope == pytest.approx(0.1)
    with pytest.raises(ValueError, match="negative_slope"):
        layers.LeakyReLU(-0.5)


def _reference_softmax(x, axis):
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 1, (1, 2)])
def test_softmax_normalizes_over_the_axis(rng, axis):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    result = layers.Softmax(axis=axis)(x).numpy()
    np.testing.assert_allclose(result, _reference_softmax(x, axis), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(_round_trip(layers.Softmax(axis=axis))(x).numpy(), result, rtol=1e-6)


def test_softmax_mask_gives_masked_positions_zero_probability(rng):
    x = rng.standard_normal((2, 5)).astype(np.float32)
    mask = np.array([[True, True, False, True, False], [False, True, True, True, True]])
    result = layers.Softmax()(x, mask=tf.constant(mask)).numpy()
    expected = np.where(mask, np.exp(x), 0)
    expected /= expected.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-7)


def test_elu_matches_the_formula_and_has_finite_gradients_for_large_inputs(rng):
    x = np.concatenate([rng.standard_normal(6), [-30.0, 100.0]]).astype(np.float32)
    layer = layers.ELU(alpha=0.7)
    np.testing.assert_allclose(layer(x).numpy(), np.where(x > 0, x, 0.7 * (np.exp(np.minimum(x, 0)) - 1)), rtol=1e-6)
    tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        y = tf.reduce_sum(layer(tensor))
    gradient = tape.gradient(y, tensor).numpy()
    np.testing.assert_allclose(gradient, np.where(x > 0, 1.0, 0.7 * np.exp(np.minimum(x, 0))), rtol=1e-6)


def test_prelu_learns_one_slope_per_unshared_position(rng):
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    layer = layers.PReLU(alpha_initializer="random_uniform", shared_axes=[1, 2])
    result = layer(x).numpy()
    alpha = layer.alpha.numpy()
    assert alpha.shape == (1, 1, 3) and [w.name for w in layer.trainable_weights] == ["p_re_lu/alpha:0"]
    np.testing.assert_allclose(result, np.where(x >= 0, x, alpha * x), rtol=1e-6)
    assert layers.PReLU()(x).numpy().min() >= 0  # zeros by default: a plain ReLU
    clone = _round_trip(layer)
    clone.build((None, 4, 4, 3))
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), result)


# -- merging -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer_class, reference",
    [
        (layers.Add, lambda xs: sum(xs)),
        (layers.Multiply, lambda xs: np.prod(xs, axis=0)),
        (layers.Average, lambda xs: np.mean(xs, axis=0)),
        (layers.Maximum, lambda xs: np.max(xs, axis=0)),
        (layers.Minimum, lambda xs: np.min(xs, axis=0)),
    ],
)
@pytest.mark.parametrize("count", [1, 2, 3])
def test_elementwise_merges_match_numpy(rng, layer_class, reference, count):
    inputs = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(count)]
    layer = layer_class()
    result = layer(inputs)
    assert result.dtype == tf.float32
    np.testing.assert_allclose(result.numpy(), reference(inputs), rtol=1e-6)
    np.testing.assert_allclose(_round_trip(layer)(inputs).numpy(), result.numpy(), rtol=1e-6)


def test_subtract_takes_exactly_two_inputs(rng):
    a, b = (rng.standard_normal((2, 3)).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(layers.Subtract()([a, b]).numpy(), a - b)
    with pytest.raises(ValueError, match=r"Subtract layer 'subtract_1' should be called on exactly 2 inputs, got 3"):
        layers.Subtract()([a, b, a])


def test_merge_broadcasts_size_one_dimensions(rng):
    a = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal((4, 1)).astype(np.float32)
    np.testing.assert_allclose(layers.Multiply()([a, b]).numpy(), a * b, rtol=1e-6)


def test_merge_shape_error_names_the_layer_and_both_shapes():
    a, b = tf.keras.Input(shape=(3,)), tf.keras.Input(shape=(4,))
    with pytest.raises(ValueError) as caught:
        layers.Add(name="sum_branches")([a, b])
    message = str(caught.value)
    assert "sum_branches" in message and "(None, 3)" in message and "(None, 4)" in message
    with pytest.raises(ValueError, match=r"should be called on a list of inputs"):
        layers.Add()(a)


def test_concatenate_joins_along_the_axis_and_checks_the_other_dimensions(rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 5, 4)).astype(np.float32)
    layer = layers.Concatenate(axis=1)
    np.testing.assert_allclose(layer([a, b]).numpy(), np.concatenate([a, b], axis=1))
    assert _round_trip(layer).axis == 1
    symbolic = layers.concatenate([tf.keras.Input(shape=(3, 4)), tf.keras.Input(shape=(5, 4))], axis=1)
    assert symbolic.shape.as_list() == [None, 8, 4]
    with pytest.raises(ValueError) as caught:
        layers.Concatenate(name="join")([a, b])
    assert "join" in str(caught.value) and "(2, 3, 4)" in str(caught.value) and "(2, 5, 4)" in str(caught.value)


def test_functional_merge_helpers_build_the_layers():
    a, b = tf.keras.Input(shape=(3,)), tf.keras.Input(shape=(3,))
    for helper, layer_class in [
        (layers.add, layers.Add),
        (layers.subtract, layers.Subtract),
        (layers.multiply, layers.Multiply),
        (layers.average, layers.Average),
        (layers.maximum, layers.Maximum),
        (layers.minimum, layers.Minimum),
    ]:
        output = helper([a, b])
        assert isinstance(output._keras_history.layer, layer_class) and output.shape.as_list() == [None, 3]


def test_merge_gradients_flow_to_every_input(rng):
    a, b = (tf.constant(rng.standard_normal((2, 3))) for _ in range(2))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([a, b])
        product = tf.reduce_sum(layers.Multiply(dtype="float64")([a, b]))
        joined = tf.reduce_sum(layers.Concatenate(dtype="float64")([a, b]) * np.arange(6.0))
    grad_a, grad_b = tape.gradient(product, [a, b])
    np.testing.assert_allclose(grad_a.numpy(), b.numpy())
    np.testing.assert_allclose(grad_b.numpy(), a.numpy())
    grad_a, grad_b = tape.gradient(joined, [a, b])
    np.testing.assert_allclose(grad_a.numpy(), np.broadcast_to(np.arange(3.0), (2, 3)))
    np.testing.assert_allclose(grad_b.numpy(), np.broadcast_to(np.arange(3.0, 6.0), (2, 3)))


# -- reshaping ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("target_shape", [(12,), (3, 4), (-1, 2), (2, -1, 3)])
def test_reshape_keeps_the_batch_and_resolves_minus_one(rng, target_shape):
    x = rng.standard_normal((5, 4, 3)).astype(np.float32)
    layer = layers.Reshape(target_shape)
    result = layer(x).numpy()
    np.testing.assert_array_equal(result, x.reshape((5, *target_shape)))
    symbolic = layers.Reshape(target_shape)(tf.keras.Input(shape=(4, 3)))
    assert symbolic.shape.as_list() == [None, *result.shape[1:]]
    assert tuple(layer.compute_output_shape((None, 4, 3))) == (None, *result.shape[1:])
    np.testing.assert_array_equal(_round_trip(layer)(x).numpy(), result)


def test_reshape_error_names_the_layer_and_the_shapes():
    with pytest.raises(ValueError) as caught:
        layers.Reshape((5, 5), name="to_square")(tf.keras.Input(shape=(4, 3)))
    message = str(caught.value)
    assert "to_square" in message and "(None, 4, 3)" in message and "(5, 5)" in message
    with pytest.raises(ValueError, match="at most one -1"):
        layers.Reshape((-1, -1))


def test_permute_reorders_the_sample_axes(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    layer = layers.Permute((3, 1, 2))
    np.testing.assert_array_equal(layer(x).numpy(), x.transpose(0, 3, 1, 2))
    assert tuple(layer.compute_output_shape((None, 3, 4, 5))) == (None, 5, 3, 4)
    assert _round_trip(layer).dims == (3, 1, 2)
    with pytest.raises(ValueError, match="consecutive and start from 1"):
        layers.Permute((0, 1))
    with pytest.raises(ValueError, match="expected ndim=4"):
        layer(x[0])


def test_repeat_vector_repeats_each_sample(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    layer = layers.RepeatVector(5)
    np.testing.assert_array_equal(layer(x).numpy(), np.repeat(x[:, None, :], 5, axis=1))
    assert layer(tf.keras.Input(shape=(4,))).shape.as_list() == [None, 5, 4]
    assert _round_trip(layer).n == 5


@pytest.mark.parametrize(
    "padding, expected", [(1, ((1, 1), (1, 1))), ((2, 0), ((2, 2), (0, 0))), (((1, 0), (2, 3)), ((1, 0), (2, 3)))]
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_zero_padding2d_matches_numpy_pad(rng, padding, expected, data_format):
    x = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    layer = layers.ZeroPadding2D(padding, data_format=data_format)
    spatial = [(0, 0), *expected, (0, 0)] if data_format == "channels_last" else [(0, 0), (0, 0), *expected]
    result = layer(x).numpy()
    np.testing.assert_array_equal(result, np.pad(x, spatial))
    assert tuple(layer.compute_output_shape(x.shape)) == result.shape
    np.testing.assert_array_equal(_round_trip(layer)(x).numpy(), result)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_cropping2d_matches_numpy_slicing(rng, data_format):
    x = rng.standard_normal((2, 6, 7, 5)).astype(np.float32)
    layer = layers.Cropping2D(((1, 2), (0, 3)), data_format=data_format)
    expected = x[:, 1:-2, 0:-3, :] if data_format == "channels_last" else x[:, :, 1:-2, 0:-3]
    result = layer(x).numpy()
    np.testing.assert_array_equal(result, expected)
    assert tuple(layer.compute_output_shape(x.shape)) == result.shape
    np.testing.assert_array_equal(_round_trip(layer)(x).numpy(), result)
    with pytest.raises(ValueError, match="must be smaller"):
        layers.Cropping2D(3)(x[:, :5, :5])


@pytest.mark.parametrize("size", [2, (2, 3)])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_upsampling2d_repeats_rows_and_columns(rng, size, data_format):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    rows, columns = (size, size) if isinstance(size, int) else size
    height_axis = 1 if data_format == "channels_last" else 2
    layer = layers.UpSampling2D(size, data_format=data_format)
    expected = x.repeat(rows, axis=height_axis).repeat(columns, axis=height_axis + 1)
    np.testing.assert_array_equal(layer(x).numpy(), expected)
    assert layer(tf.keras.Input(shape=x.shape[1:])).shape.as_list() == [None, *expected.shape[1:]]
    np.testing.assert_array_equal(_round_trip(layer)(x).numpy(), expected)
    with pytest.raises(NotImplementedError, match="interpolation"):
        layers.UpSampling2D(interpolation="bilinear")


def test_upsampling2d_gradient_sums_over_the_copies(rng):
    x = tf.constant(rng.standard_normal((1, 2, 2, 1)))
    weights = rng.standard_normal((1, 4, 6, 1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(layers.UpSampling2D((2, 3), dtype="float64")(x) * weights)
    expected = weights.reshape(1, 2, 2, 2, 3, 1).sum(axis=(2, 4))
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), expected)


# -- dtypes and Dropout ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_layer, shape",
    [
        (lambda: layers.ReLU(max_value=2.0, threshold=0.1), (2, 3)),
        (lambda: layers.Softmax(), (2, 3)),
        (lambda: layers.ELU(), (2, 3)),
        (lambda: layers.Reshape((3, 1)), (2, 3)),
        (lambda: layers.ZeroPadding2D(), (1, 2, 2, 1)),
    ],
)
def test_layers_compute_in_their_dtype(make_layer, shape):
    config = {**make_layer().get_config(), "dtype": "float64", "name": None}
    float64 = type(make_layer()).from_config(config)
    assert float64(np.ones(shape, np.float32)).dtype == tf.float64
    assert make_layer()(np.ones(shape, np.int32)).dtype == tf.float32


def test_dropout_zeroes_and_rescales_only_while_training(rng):
    x = rng.uniform(1, 2, size=(200, 50)).astype(np.float32)
    layer = layers.Dropout(0.4)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    dropped = layer(x, training=True).numpy()
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], x[kept] / 0.6, rtol=1e-6)
    assert abs(kept.mean() - 0.6) < 0.02  # 10,000 draws: the standard error is 0.005
    assert _round_trip(layer).rate == pytest.approx(0.4)


def test_dropout_follows_the_training_flag_of_the_enclosing_model(rng):
    x = rng.uniform(1, 2, size=(64, 32)).astype(np.float32)
    model = tf.keras.Sequential([tf.keras.Input(shape=(32,)), layers.Dropout(0.5)])
    np.testing.assert_array_equal(model(x, training=False).numpy(), x)
    assert (model(x, training=True).numpy() == 0).any()


# -- tracing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: layers.BatchNormalization(),
        lambda: layers.LayerNormalization(axis=[1, 2]),
        lambda: layers.Rescaling(0.5, offset=1.0),
        lambda: layers.Normalization(mean=0.5, variance=2.0),
        lambda: layers.Reshape((-1, 3)),
        lambda: layers.Permute((3, 1, 2)),
        lambda: layers.ZeroPadding2D(),
        lambda: layers.Cropping2D(1),
        lambda: layers.UpSampling2D(),
        lambda: layers.ReLU(max_value=2.0, threshold=0.1),
        lambda: layers.LeakyReLU(),
        lambda: layers.Softmax(),
        lambda: layers.ELU(),
        lambda: layers.PReLU(alpha_initializer="random_uniform"),
    ],
)
def test_traced_layers_compute_what_eager_layers_do(rng, make_layer):
    """Layers are built from ops, so tf.function records them: the traced graph must agree with eager calls."""
    x = rng.standard_normal((4, 6, 6, 3)).astype(np.float32)
    layer = make_layer()
    layer(x)
    traced = tf.function(
        lambda t: layer(t, training=True), input_signature=[tf.TensorSpec((None, 6, 6, 3), tf.float32)]
    )
    np.testing.assert_allclose(traced(tf.constant(x)).numpy(), layer(x, training=True).numpy(), rtol=1e-6, atol=1e-6)


def test_traced_batch_normalization_updates_the_moving_statistics(rng):
    x = rng.standard_normal((8, 3)).astype(np.float32) + 2
    layer = layers.BatchNormalization(momentum=0.5)
    traced = tf.function(lambda t: layer(t, training=True))
    traced(tf.constant(x))
    traced(tf.constant(x))
    np.testing.assert_allclose(layer.moving_mean.numpy(), x.mean(axis=0) * 0.75, rtol=1e-5)
