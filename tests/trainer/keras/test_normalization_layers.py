"""BatchNormalization, LayerNormalization, Normalization and Rescaling against NumPy and finite differences."""

from __future__ import annotations

import json

import numpy as np
import pytest

import trainer as tf
from trainer.keras.saving import deserialize, serialize

layers = tf.keras.layers


def _round_trip(layer):
    config = json.loads(json.dumps(serialize(layer)))
    clone = deserialize("layers", config)
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    return clone


def _reference_normalize(x, axes, gamma, beta, epsilon):
    mean = x.mean(axis=axes, keepdims=True)
    variance = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def _central_difference(function, x, epsilon=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += epsilon
        minus[index] -= epsilon
        grad[index] = (function(plus) - function(minus)) / (2 * epsilon)
    return grad


def _random_weights(layer, rng):
    layer.set_weights(
        [
            rng.uniform(0.5, 1.5, w.shape.as_list()) if "variance" in w.name else rng.standard_normal(w.shape.as_list())
            for w in layer.weights
        ]
    )


# -- BatchNormalization --------------------------------------------------------------------------------


def test_batch_normalization_weights_are_gamma_beta_then_moving_statistics():
    layer = layers.BatchNormalization()
    layer.build((None, 5))
    assert [w.name for w in layer.weights] == [
        f"batch_normalization/{n}:0" for n in ("gamma", "beta", "moving_mean", "moving_variance")
    ]
    assert [w.trainable for w in layer.weights] == [True, True, False, False]
    assert layer.count_params() == 20 and len(layer.trainable_weights) == 2
    np.testing.assert_array_equal(layer.gamma.numpy(), np.ones(5))
    np.testing.assert_array_equal(layer.moving_variance.numpy(), np.ones(5))
    bare = layers.BatchNormalization(center=False, scale=False)
    bare.build((None, 5))
    assert [w.name.split("/")[-1] for w in bare.weights] == ["moving_mean:0", "moving_variance:0"]


@pytest.mark.parametrize("axis, shape", [(-1, (16, 4)), (-1, (6, 3, 3, 2)), (1, (6, 3, 4, 4))])
def test_batch_normalization_training_uses_batch_statistics(rng, axis, shape):
    x = rng.standard_normal(shape).astype(np.float32) * 3 + 1
    layer = layers.BatchNormalization(axis=axis, epsilon=1e-3)
    layer.build((None, *shape[1:]))
    _random_weights(layer, rng)
    gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
    result = layer(x, training=True)
    axes = tuple(i for i in range(len(shape)) if i != axis % len(shape))
    feature_shape = [1] * len(shape)
    feature_shape[axis] = shape[axis]
    expected = _reference_normalize(x, axes, gamma.reshape(feature_shape), beta.reshape(feature_shape), 1e-3)
    assert result.dtype == tf.float32 and result.shape == shape
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("training", [False, None])
def test_batch_normalization_inference_uses_the_moving_statistics(rng, training):
    x = rng.standard_normal((8, 3)).astype(np.float32)
    layer = layers.BatchNormalization(epsilon=0.01)
    layer.build((None, 3))
    _random_weights(layer, rng)
    gamma, beta, mean, variance = layer.get_weights()
    before = layer.get_weights()
    result = layer(x, training=training).numpy()
    np.testing.assert_allclose(result, (x - mean) / np.sqrt(variance + 0.01) * gamma + beta, rtol=1e-5, atol=1e-6)
    for old, new in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_batch_normalization_updates_moving_statistics_by_the_momentum_formula(rng):
    layer = layers.BatchNormalization(momentum=0.9)
    moving_mean, moving_variance = np.zeros(4), np.ones(4)
    for _ in range(3):
        x = rng.standard_normal((10, 4)).astype(np.float32) * 2 + 5
        layer(x, training=True)
        moving_mean = moving_mean * 0.9 + x.mean(axis=0) * 0.1
        moving_variance = moving_variance * 0.9 + x.var(axis=0) * 0.1  # biased, as Keras 3
        np.testing.assert_allclose(layer.moving_mean.numpy(), moving_mean, rtol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy(), moving_variance, rtol=1e-5)


def test_frozen_batch_normalization_runs_in_inference_mode(rng):
    x = rng.standard_normal((8, 3)).astype(np.float32) + 4
    layer = layers.BatchNormalization(trainable=False)
    result = layer(x, training=True).numpy()
    np.testing.assert_allclose(result, x / np.sqrt(1 + 1e-3), rtol=1e-6)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(3))
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4


def test_batch_normalization_in_a_model_follows_the_training_flag(rng):
    x = rng.standard_normal((16, 3)).astype(np.float32) + 2
    model = tf.keras.Sequential([tf.keras.Input(shape=(3,)), layers.BatchNormalization(momentum=0.5)])
    model(x)
    np.testing.assert_array_equal(model.layers[0].moving_mean.numpy(), np.zeros(3))
    model(x, training=True)
    np.testing.assert_allclose(model.layers[0].moving_mean.numpy(), x.mean(axis=0) * 0.5, rtol=1e-5)


def test_batch_normalization_rejects_inputs_with_another_feature_size():
    layer = layers.BatchNormalization(name="bn")
    layer(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r'layer "bn".*axis 1 .*value 3.*\(2, 4\)'):
        layer(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="single integer axis"):
        layers.BatchNormalization(axis=[1, 2])


def test_batch_normalization_config_round_trip(rng):
    layer = layers.BatchNormalization(
        axis=1, momentum=0.8, epsilon=1e-5, center=False, gamma_initializer="random_normal", gamma_regularizer="l2"
    )
    clone = _round_trip(layer)
    x = rng.standard_normal((4, 3, 2)).astype(np.float32)
    layer(x)
    clone(x)
    assert clone.momentum == 0.8 and clone.beta is None and len(clone.losses) == 1
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x, training=True).numpy(), layer(x, training=True).numpy(), rtol=1e-6)


# -- LayerNormalization --------------------------------------------------------------------------------


@pytest.mark.parametrize("axis, shape", [(-1, (5, 6)), ([1, 2], (3, 4, 5)), (1, (3, 4, 5))])
def test_layer_normalization_normalizes_each_sample(rng, axis, shape):
    x = rng.standard_normal(shape).astype(np.float32) * 2 - 1
    layer = layers.LayerNormalization(axis=axis)
    layer.build((None, *shape[1:]))
    _random_weights(layer, rng)
    axes = tuple(a % len(shape) for a in (axis if isinstance(axis, list) else [axis]))
    weight_shape = [shape[i] if i in axes else 1 for i in range(len(shape))]
    gamma, beta = (w.numpy().reshape(weight_shape) for w in layer.weights)
    result = layer(x)
    np.testing.assert_allclose(result.numpy(), _reference_normalize(x, axes, gamma, beta, 1e-3), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(layer(x, training=True).numpy(), result.numpy())
    clone = _round_trip(layer)
    clone.build((None, *shape[1:]))
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), result.numpy(), rtol=1e-6)


def test_layer_normalization_rms_scaling_divides_by_the_root_mean_square(rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    layer = layers.LayerNormalization(rms_scaling=True, epsilon=1e-6)
    result = layer(x).numpy()
    assert [w.name.split("/")[-1] for w in layer.weights] == ["gamma:0"]
    np.testing.assert_allclose(result, x / np.sqrt((x**2).mean(axis=-1, keepdims=True) + 1e-6), rtol=1e-5)


# -- gradients against finite differences --------------------------------------------------------------


def _check_gradients(layer, x, rng, call_kwargs):
    """Gradients of a random projection of the output w.r.t. the input and every trainable weight."""
    projection = rng.standard_normal(x.shape)
    weights = layer.trainable_weights

    def loss_value(x_value, weight_values):
        originals = [w.numpy() for w in weights]
        for weight, value in zip(weights, weight_values):
            weight.assign(value)
        value = float(np.sum(layer(x_value, **call_kwargs).numpy() * projection))
        for weight, value_back in zip(weights, originals):
            weight.assign(value_back)
        return value

    tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        loss = tf.reduce_sum(layer(tensor, **call_kwargs) * projection)
    grads = tape.gradient(loss, [tensor, *weights])
    current = [w.numpy() for w in weights]
    expected = _central_difference(lambda v: loss_value(v, current), x)
    np.testing.assert_allclose(grads[0].numpy(), expected, rtol=1e-6, atol=1e-8)
    for index in range(len(weights)):

        def vary(value, index=index):
            return loss_value(x, [value if i == index else c for i, c in enumerate(current)])

        np.testing.assert_allclose(
            grads[index + 1].numpy(), _central_difference(vary, current[index]), rtol=1e-6, atol=1e-8
        )


@pytest.mark.parametrize("training", [True, False])
def test_batch_normalization_gradients_match_finite_differences(rng, training):
    layer = layers.BatchNormalization(axis=1, dtype="float64")
    x = rng.standard_normal((4, 3, 2))
    layer.build((None, 3, 2))
    _random_weights(layer, rng)
    assert layer.gamma.dtype == tf.float64
    _check_gradients(layer, x, rng, {"training": training})


@pytest.mark.parametrize("arguments", [{}, {"axis": [1, 2]}, {"rms_scaling": True}])
def test_layer_normalization_gradients_match_finite_differences(rng, arguments):
    layer = layers.LayerNormalization(dtype="float64", **arguments)
    x = rng.standard_normal((3, 2, 4))
    layer.build((None, 2, 4))
    _random_weights(layer, rng)
    _check_gradients(layer, x, rng, {})


# -- Normalization and Rescaling --------------------------------------------------------------------------


@pytest.mark.parametrize("axis, keep", [(-1, (2,)), ((1, 2), (1, 2)), (None, ())])
@pytest.mark.parametrize("batch_size, steps", [(None, None), (7, None), (7, 3)])
def test_normalization_adapt_matches_numpy_mean_and_variance(rng, axis, keep, batch_size, steps):
    data = (rng.standard_normal((50, 4, 3)) * [1.0, 2.0, 3.0] + [0.0, -1.0, 5.0]).astype(np.float32)
    layer = layers.Normalization(axis=axis)
    layer.adapt(data, batch_size=batch_size, steps=steps)
    seen = data[: batch_size * steps] if steps else data
    reduce = tuple(i for i in range(3) if i not in keep)
    mean, variance = seen.astype(np.float64).mean(axis=reduce), seen.astype(np.float64).var(axis=reduce)
    np.testing.assert_allclose(layer.adapt_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.adapt_variance.numpy(), variance, rtol=1e-5)
    assert [w.trainable for w in layer.weights] == [False, False]
    broadcast = [data.shape[i] if i in keep else 1 for i in range(3)]
    expected = (data - mean.reshape(broadcast)) / np.sqrt(variance.reshape(broadcast))
    np.testing.assert_allclose(layer(data).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_normalization_adapts_to_tensors_and_datasets(rng):
    data = rng.standard_normal((40, 3)).astype(np.float32) * 4 + 2
    from_tensor = layers.Normalization()
    from_tensor.adapt(tf.constant(data))
    from_dataset = layers.Normalization()
    from_dataset.adapt(tf.data.Dataset.from_tensor_slices(data).batch(6))
    for layer in (from_tensor, from_dataset):
        np.testing.assert_allclose(layer.adapt_mean.numpy(), data.mean(axis=0), rtol=1e-5)
        np.testing.assert_allclose(layer.adapt_variance.numpy(), data.var(axis=0), rtol=1e-5)
    scalars = layers.Normalization(axis=None)
    scalars.adapt(tf.data.Dataset.from_tensor_slices(data[:, 0]))  # rank-1 elements: read in batches
    np.testing.assert_allclose(scalars.adapt_mean.numpy(), data[:, 0].mean(), rtol=1e-5)


def test_normalization_with_fixed_statistics_and_invert(rng):
    x = rng.standard_normal((5, 3)).astype(np.float32)
    mean, variance = [1.0, -2.0, 0.5], [4.0, 0.25, 0.0]
    layer = layers.Normalization(mean=mean, variance=variance)
    spread = np.maximum(np.sqrt(variance), 1e-7)
    np.testing.assert_allclose(layer(x).numpy(), (x - mean) / spread, rtol=1e-5)
    assert layer.weights == []
    inverse = _round_trip(layers.Normalization(mean=mean, variance=variance, invert=True))
    np.testing.assert_allclose(inverse(x).numpy(), mean + x * spread, rtol=1e-6)
    np.testing.assert_allclose(inverse(layer(x)).numpy(), x, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="both `mean` and `variance`"):
        layers.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="fixed statistics"):
        layer.adapt(x)


def test_normalization_adapt_checks_the_feature_size(rng):
    layer = layers.Normalization(name="norm")
    layer.adapt(rng.standard_normal((10, 3)))
    with pytest.raises(ValueError, match=r"norm.*\(None, 3\).*\(None, 4\)"):
        layer.adapt(rng.standard_normal((10, 4)))


def test_rescaling_scales_and_offsets_in_the_layer_dtype(rng):
    pixels = rng.integers(0, 256, size=(2, 4, 4, 3)).astype(np.uint8)
    layer = layers.Rescaling(1 / 127.5, offset=-1)
    result = layer(pixels)
    assert result.dtype == tf.float32
    np.testing.assert_allclose(result.numpy(), pixels / 127.5 - 1, rtol=1e-6, atol=1e-6)
    per_channel = _round_trip(layers.Rescaling([1.0, 2.0, 3.0], offset=[0.0, 0.5, 1.0]))
    np.testing.assert_allclose(
        per_channel(pixels).numpy(), pixels * np.array([1.0, 2.0, 3.0]) + [0.0, 0.5, 1.0], rtol=1e-6
    )
    assert layers.Rescaling(0.5, dtype="float64")(pixels).dtype == tf.float64
