"""Conv2D, DepthwiseConv2D and the pooling layers: Keras semantics checked against loop references."""

from __future__ import annotations

import json

import numpy as np
import pytest

import trainer as tf
from tests.trainer.test_conv_ops import reference_conv2d, reference_pool
from trainer.keras.saving import deserialize, serialize

layers = tf.keras.layers


def _images(rng, shape=(2, 9, 8, 3)):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    "padding, strides, dilation", [("valid", 1, 1), ("same", 2, 1), ("same", 1, 2), ("valid", (2, 1), 1)]
)
def test_conv2d_is_convolution_plus_bias_then_activation(rng, padding, strides, dilation):
    x = _images(rng)
    layer = layers.Conv2D(
        4, (3, 2), strides=strides, padding=padding, dilation_rate=dilation, activation="relu",
        bias_initializer="random_normal",
    )  # fmt: skip
    result = layer(x).numpy()
    kernel, bias = (w.numpy() for w in layer.weights)
    assert [w.name.rsplit("/", 1)[-1] for w in layer.weights] == ["kernel:0", "bias:0"]
    assert kernel.shape == (3, 2, 3, 4) and bias.shape == (4,)
    strides, dilation = layer.strides, layer.dilation_rate
    expected = np.maximum(reference_conv2d(x, kernel, strides, padding.upper(), dilation) + bias, 0)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)
    assert tuple(layer.compute_output_shape((None, 9, 8, 3))) == (None, *result.shape[1:])


def test_grouped_conv2d_convolves_each_group_separately(rng):
    x = _images(rng, (2, 6, 6, 4))
    layer = layers.Conv2D(6, 3, groups=2, use_bias=False)
    result = layer(x).numpy()
    kernel = layer.kernel.numpy()
    assert kernel.shape == (3, 3, 2, 6)
    groups = [
        reference_conv2d(x[..., 2 * g : 2 * g + 2], kernel[..., 3 * g : 3 * g + 3], (1, 1), "VALID", (1, 1))
        for g in range(2)
    ]
    expected = np.concatenate(groups, axis=-1)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


def test_depthwise_conv2d_matches_the_reference(rng):
    x = _images(rng)
    layer = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", bias_initializer="ones")
    result = layer(x).numpy()
    kernel = layer.kernel.numpy()
    assert kernel.shape == (3, 3, 3, 2) and layer.bias.shape.as_list() == [6]
    assert layer.depthwise_kernel is layer.kernel
    expected = reference_conv2d(x, kernel, (1, 1), "SAME", (1, 1), depthwise=True) + 1
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer_class, reduce", [(layers.MaxPooling2D, np.max), (layers.AveragePooling2D, np.mean)])
@pytest.mark.parametrize(
    "arguments", [{}, {"pool_size": 3, "strides": 1, "padding": "same"}, {"pool_size": (2, 3), "strides": (1, 2)}]
)
def test_pooling_layers_match_the_reference(rng, layer_class, reduce, arguments):
    x = _images(rng)
    layer = layer_class(**arguments)
    result = layer(x).numpy()
    expected = reference_pool(x, layer.pool_size, layer.strides, layer.padding.upper(), reduce)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-6)
    assert tuple(layer.compute_output_shape((None, 9, 8, 3))) == (None, *result.shape[1:])


def test_pooling_strides_default_to_the_pool_size():
    assert layers.MaxPooling2D(3).strides == (3, 3)
    assert layers.AveragePooling2D((2, 3), strides=1).strides == (1, 1)
    assert layers.MaxPool2D is layers.MaxPooling2D and layers.AvgPool2D is layers.AveragePooling2D


@pytest.mark.parametrize(
    "layer_class, reduce", [(layers.GlobalAveragePooling2D, np.mean), (layers.GlobalMaxPooling2D, np.max)]
)
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_reduces_height_and_width(rng, layer_class, reduce, keepdims):
    x = _images(rng)
    layer = layer_class(keepdims=keepdims)
    result = layer(x).numpy()
    np.testing.assert_allclose(result, reduce(x, axis=(1, 2), keepdims=keepdims), rtol=1e-6)
    assert tuple(layer.compute_output_shape((None, 9, 8, 3))) == (None, *result.shape[1:])


def test_layers_work_on_symbolic_inputs_with_unknown_batch():
    inputs = tf.keras.Input((28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = layers.AveragePooling2D(padding="same")(x)
    assert x.shape.as_list() == [None, 7, 7, 64]
    assert layers.GlobalMaxPooling2D()(x).shape.as_list() == [None, 64]


@pytest.mark.parametrize(
    "layer",
    [
        layers.Conv2D(8, (3, 2), strides=2, padding="same", groups=2, activation="relu", kernel_regularizer="l2"),
        layers.DepthwiseConv2D(3, depth_multiplier=3, dilation_rate=2, use_bias=False),
        layers.MaxPooling2D(3, strides=2, padding="same"),
        layers.AveragePooling2D((1, 2)),
        layers.GlobalAveragePooling2D(keepdims=True),
        layers.GlobalMaxPooling2D(),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trips_through_json(layer):
    config = json.loads(json.dumps(serialize(layer)))
    rebuilt = deserialize("layers", config)
    assert type(rebuilt) is type(layer)
    assert json.loads(json.dumps(serialize(rebuilt))) == config


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.Conv2D(4, 3, data_format="channels_first"),
        lambda: layers.DepthwiseConv2D(3, data_format="channels_first"),
        lambda: layers.MaxPooling2D(data_format="channels_first"),
        lambda: layers.AveragePooling2D(data_format="channels_first"),
        lambda: layers.GlobalAveragePooling2D(data_format="channels_first"),
        lambda: layers.GlobalMaxPooling2D(data_format="channels_first"),
    ],
)
def test_channels_first_is_refused_plainly(make):
    with pytest.raises(NotImplementedError, match="channels_first.*not supported by emberflow"):
        make()


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: layers.Conv2D(4, 3, strides=2, dilation_rate=2), "dilation_rate"),
        (lambda: layers.Conv2D(4, 0), "kernel_size"),
        (lambda: layers.Conv2D(4, 3, padding="causal"), "padding"),
        (lambda: layers.Conv2D(5, 3, groups=2), "divisible"),
        (lambda: layers.Conv2D(4, 3, groups=3)(tf.zeros((1, 5, 5, 4))), "divisible"),
        (lambda: layers.Conv2D(4, 3)(tf.zeros((1, 5, 5))), "4-D NHWC input"),
        (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier"),
    ],
)
def test_bad_arguments_are_reported_with_the_value(make, words):
    with pytest.raises(ValueError, match=words):
        make()


def test_a_small_cnn_learns_with_plain_gradient_descent(rng):
    """The MNIST CNN's layer stack, trained by hand, separates two kinds of random images."""
    images = rng.standard_normal((32, 10, 10, 1)).astype(np.float32)
    labels = (rng.random(32) < 0.5).astype(np.int32)
    images[labels == 1, 2:5, 2:5, :] += 2.0  # class 1 has a bright patch
    model = tf.keras.Sequential([
        layers.Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1)),
        layers.MaxPooling2D(),
        layers.Conv2D(4, 3),
        layers.GlobalAveragePooling2D(),
        layers.Dense(2),
    ])  # fmt: skip

    def loss():
        logits = model(images)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))

    first = float(loss())
    for _ in range(30):
        with tf.GradientTape() as tape:
            value = loss()
        for variable, gradient in zip(model.trainable_weights, tape.gradient(value, model.trainable_weights)):
            variable.assign_sub(0.3 * gradient)
    assert float(loss()) < 0.5 * first
