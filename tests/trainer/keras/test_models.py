"""Sequential, functional and subclassed models: building, forward passes, summary, weights and lookup."""

from __future__ import annotations

import re

import numpy as np
import pytest

import trainer as tf

layers = tf.keras.layers


def _relu(x):
    return np.maximum(x, 0)


def _summary_lines(model) -> list[str]:
    lines = []
    model.summary(print_fn=lines.append)
    return lines


def _row(lines, layer_name):
    matches = [line for line in lines if line.lstrip().startswith(f"{layer_name} (")]
    assert len(matches) == 1, f"no single summary row for {layer_name}: {lines}"
    return matches[0]


def _chapter_mlp():
    return tf.keras.Sequential(
        [
            layers.Flatten(input_shape=(28, 28)),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(10),
        ]
    )


# -- Sequential --------------------------------------------------------------------------------------


def test_chapter_mlp_summary_counts_parameters_like_keras():
    model = _chapter_mlp()
    lines = _summary_lines(model)
    hidden_params = 28 * 28 * 128 + 128
    output_params = 128 * 10 + 10
    total = hidden_params + output_params
    assert lines[0] == 'Model: "sequential"'
    assert re.search(rf"\(None, 128\)\s+{hidden_params:,}\b", _row(lines, "dense"))
    assert "100,480" in _row(lines, "dense")  # Keras's printed row for Dense(128) on 784 inputs
    assert re.search(r"\(None, 784\)\s+0\b", _row(lines, "flatten"))
    assert re.search(rf"\(None, 10\)\s+{output_params:,}\b", _row(lines, "dense_1"))
    assert f"Total params: {total:,} ({total * 4 / 1024:.2f} KB)" in lines
    assert f"Trainable params: {total:,} ({total * 4 / 1024:.2f} KB)" in lines
    assert "Non-trainable params: 0 (0.00 B)" in lines
    assert model.count_params() == total == sum(w.size for w in model.get_weights())


def test_summary_counts_non_trainable_weights_separately():
    model = tf.keras.Sequential([tf.keras.Input(shape=(6,)), layers.Dense(4), layers.BatchNormalization()])
    lines = _summary_lines(model)
    assert f"Total params: {6 * 4 + 4 + 4 * 4:,} ({(6 * 4 + 4 + 4 * 4) * 4:.2f} B)" in lines
    assert f"Trainable params: {6 * 4 + 4 + 2 * 4:,} ({(6 * 4 + 4 + 2 * 4) * 4:.2f} B)" in lines
    assert f"Non-trainable params: {2 * 4} ({2 * 4 * 4:.2f} B)" in lines


def test_sequential_with_input_first_computes_the_stacked_layers(rng):
    inputs = tf.keras.Input(shape=(5,))
    model = tf.keras.Sequential([inputs, layers.Dense(4, activation="relu"), layers.Dense(3, activation="softmax")])
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dense"]
    assert model.inputs == [inputs] and model.outputs[0].shape.as_list() == [None, 3]
    x = rng.standard_normal((7, 5)).astype(np.float32)
    kernel_1, bias_1, kernel_2, bias_2 = model.get_weights()
    logits = _relu(x @ kernel_1 + bias_1) @ kernel_2 + bias_2
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    result = model(x)
    assert result.dtype == tf.float32
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_flatten_input_shape_builds_the_model_at_once(rng):
    model = _chapter_mlp()
    assert model.built and [w.shape.as_list() for w in model.weights] == [[784, 128], [128], [128, 10], [10]]
    assert model.inputs[0].shape.as_list() == [None, 28, 28]
    x = rng.standard_normal((3, 28, 28)).astype(np.float32)
    kernel_1, bias_1, kernel_2, bias_2 = model.get_weights()
    np.testing.assert_allclose(
        model(x).numpy(), _relu(x.reshape(3, -1) @ kernel_1 + bias_1) @ kernel_2 + bias_2, rtol=1e-4, atol=1e-5
    )


def test_sequential_without_input_shape_builds_on_first_call_for_any_batch_size(rng):
    model = tf.keras.Sequential([layers.Dense(4, activation="relu"), layers.Dense(2)])
    assert not model.built and model.inputs == []
    with pytest.raises(ValueError, match="isn't built"):
        model.count_params()
    with pytest.raises(ValueError, match="has not yet been built"):
        model.summary(print_fn=lambda line: None)
    model(rng.standard_normal((3, 5)).astype(np.float32))
    assert model.built and model.inputs[0].shape.as_list() == [None, 5]
    assert model.count_params() == (5 * 4 + 4) + (4 * 2 + 2)
    x = rng.standard_normal((7, 5)).astype(np.float32)
    kernel_1, bias_1, kernel_2, bias_2 = model.get_weights()
    np.testing.assert_allclose(model(x).numpy(), _relu(x @ kernel_1 + bias_1) @ kernel_2 + bias_2, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected shape=\(None, 5\), found shape=\(2, 6\)"):
        model(np.zeros((2, 6), np.float32))


def test_sequential_build_with_a_shape():
    model = tf.keras.Sequential([layers.Dense(3)])
    model.build((None, 8))
    assert model.built and model.count_params() == 8 * 3 + 3
    assert _row(_summary_lines(model), "dense").split()[2:4] == ["(None,", "3)"]


def test_sequential_config_round_trip_rebuilds_the_same_model(rng):
    model = _chapter_mlp()
    clone = tf.keras.Sequential.from_config(model.get_config())
    assert [type(layer).__name__ for layer in clone.layers] == [type(layer).__name__ for layer in model.layers]
    clone.set_weights(model.get_weights())
    x = rng.standard_normal((2, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), rtol=1e-6)


def test_sequential_rejects_duplicate_names_and_non_layers():
    model = tf.keras.Sequential([layers.Dense(2, name="same")])
    with pytest.raises(ValueError, match='"same" is already the name'):
        model.add(layers.Dense(2, name="same"))
    with pytest.raises(TypeError, match="expects a Layer instance"):
        model.add("dense")


# -- functional --------------------------------------------------------------------------------------


def _two_input_two_output_model():
    image = tf.keras.Input(shape=(4,), name="image")
    meta = tf.keras.Input(shape=(3,), name="meta")
    left = layers.Dense(5, activation="relu", name="left")(image)
    right = layers.Dense(5, activation="relu", name="right")(image)
    joined = layers.Concatenate(name="join")([layers.Add(name="sum")([left, right]), meta])
    label = layers.Dense(2, activation="softmax", name="label")(joined)
    score = layers.Dense(1, name="score")(joined)
    return tf.keras.Model([image, meta], [label, score], name="branches")


def test_functional_model_with_branches_and_several_inputs_and_outputs(rng):
    model = _two_input_two_output_model()
    assert [layer.name for layer in model.layers] == ["image", "meta", "left", "right", "sum", "join", "label", "score"]
    assert [t.shape.as_list() for t in model.inputs] == [[None, 4], [None, 3]]
    assert [t.shape.as_list() for t in model.outputs] == [[None, 2], [None, 1]]
    x_image = rng.standard_normal((6, 4)).astype(np.float32)
    x_meta = rng.standard_normal((6, 3)).astype(np.float32)
    label, score = model([x_image, x_meta])
    weights = {layer.name: layer.get_weights() for layer in model.layers}
    hidden = _relu(x_image @ weights["left"][0] + weights["left"][1]) + _relu(
        x_image @ weights["right"][0] + weights["right"][1]
    )
    joined = np.concatenate([hidden, x_meta], axis=1)
    logits = joined @ weights["label"][0] + weights["label"][1]
    expected_label = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(label.numpy(), expected_label, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(score.numpy(), joined @ weights["score"][0] + weights["score"][1], rtol=1e-5, atol=1e-5)


def test_functional_summary_shows_connections_and_counts():
    model = _two_input_two_output_model()
    lines = _summary_lines(model)
    assert "Connected to" in lines[2]
    assert re.search(r"join \(Concatenate\)\s+\(None, 8\)\s+0\s+sum\[0\]\[0\], meta\[0\]\[0\]", _row(lines, "join"))
    assert re.search(rf"\(None, 2\)\s+{8 * 2 + 2}\s+join\[0\]\[0\]", _row(lines, "label"))
    total = 2 * (4 * 5 + 5) + (8 * 2 + 2) + (8 + 1)
    assert f"Total params: {total:,} ({total * 4:.2f} B)" in lines


def test_functional_model_checks_its_inputs():
    model = _two_input_two_output_model()
    with pytest.raises(ValueError, match=r"expects 2 inputs, got 1"):
        model([np.zeros((2, 4), np.float32)])
    with pytest.raises(
        ValueError, match=r'Input "meta" of model "branches" is incompatible: expected shape \(None, 3\)'
    ):
        model([np.zeros((2, 4), np.float32), np.zeros((2, 5), np.float32)])


def test_functional_model_reuses_a_shared_layer(rng):
    inputs = tf.keras.Input(shape=(3,))
    shared = layers.Dense(3, name="shared")
    model = tf.keras.Model(inputs, shared(shared(inputs)))
    kernel, bias = shared.get_weights()
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(model(x).numpy(), (x @ kernel + bias) @ kernel + bias, rtol=1e-5, atol=1e-6)
    assert model.count_params() == 12 and [layer.name for layer in model.layers][1:] == ["shared"]


# -- subclassed --------------------------------------------------------------------------------------


class _Subclassed(tf.keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(8, activation="relu")
        self.dropout = layers.Dropout(0.5)
        self.out = layers.Dense(3)

    def call(self, x, training=None):
        return self.out(self.dropout(self.hidden(x), training=training))


def test_subclassed_model_tracks_its_layers_and_passes_training(rng):
    model = _Subclassed(name="custom")
    assert not model.built
    x = rng.uniform(1, 2, size=(64, 4)).astype(np.float32)
    inference = model(x)
    assert model.built and [type(layer).__name__ for layer in model.layers] == ["Dense", "Dropout", "Dense"]
    kernel_1, bias_1, kernel_2, bias_2 = model.get_weights()
    expected = _relu(x @ kernel_1 + bias_1) @ kernel_2 + bias_2
    np.testing.assert_allclose(inference.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(model(x, training=True).numpy(), expected, atol=1e-3)
    assert model.count_params() == (4 * 8 + 8) + (8 * 3 + 3)
    assert model.get_layer(index=-1) is model.out
    lines = _summary_lines(model)
    assert re.search(rf"multiple\s+{4 * 8 + 8}\b", _row(lines, model.hidden.name))


def test_subclassed_model_build_with_a_shape():
    model = _Subclassed()
    model.build((None, 6))
    assert model.built and model.count_params() == (6 * 8 + 8) + (8 * 3 + 3)


# -- weights and lookup ------------------------------------------------------------------------------


def test_get_weights_set_weights_round_trip_reproduces_the_outputs(rng):
    source, target = _two_input_two_output_model(), _two_input_two_output_model()
    inputs = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((3, 3)).astype(np.float32)]
    assert not np.allclose(source(inputs)[0].numpy(), target(inputs)[0].numpy())
    target.set_weights(source.get_weights())
    for mine, theirs in zip(target(inputs), source(inputs)):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    copies = source.get_weights()
    copies[0][...] = 0  # get_weights returns copies, not views of the variables
    assert np.abs(source.get_weights()[0]).sum() > 0


def test_set_weights_mismatch_errors_name_the_counts_and_shapes():
    model = _chapter_mlp()
    weights = model.get_weights()
    with pytest.raises(ValueError, match=r"expects 4 weight arrays, got 3"):
        model.set_weights(weights[:3])
    weights[2] = np.zeros((128, 11), np.float32)
    with pytest.raises(
        ValueError, match=r"'dense_1/kernel:0' has shape \(128, 10\), but the provided array has shape \(128, 11\)"
    ):
        model.set_weights(weights)


def test_get_layer_by_name_and_index():
    model = _chapter_mlp()
    assert model.get_layer("dense_1") is model.layers[3]
    assert model.get_layer(index=0) is model.layers[0]
    with pytest.raises(
        ValueError, match=r"No such layer: missing. Existing layers are: \['flatten', 'dense', 'dropout', 'dense_1'\]"
    ):
        model.get_layer("missing")
    with pytest.raises(ValueError, match="index 4 is out of range"):
        model.get_layer(index=4)


# -- training ----------------------------------------------------------------------------------------


def _blobs(rng, count=128):
    """Two Gaussian blobs, 3 standard deviations apart: a problem a small model solves in a few epochs."""
    x = np.concatenate([rng.normal(-1.5, 1.0, (count, 2)), rng.normal(1.5, 1.0, (count, 2))]).astype(np.float32)
    return x, np.repeat([0, 1], count).astype(np.int32)


def _deferred_sequential():
    return tf.keras.Sequential([layers.Dense(8, activation="relu"), layers.Dense(2)])


def _sequential_with_batch_normalization():
    return tf.keras.Sequential(
        [tf.keras.Input(shape=(2,)), layers.Dense(8), layers.BatchNormalization(), layers.ReLU(), layers.Dense(2)]
    )


def _functional():
    inputs = tf.keras.Input(shape=(2,))
    branches = [layers.Dense(8, activation="relu")(inputs), layers.Dense(8, activation="tanh")(inputs)]
    return tf.keras.Model(inputs, layers.Dense(2)(layers.Concatenate()(branches)))


class _Classifier(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = layers.Dense(8, activation="relu")
        self.dropout = layers.Dropout(0.1)
        self.logits = layers.Dense(2)

    def call(self, x, training=None):
        return self.logits(self.dropout(self.hidden(x), training=training))


def _sparse_crossentropy_from_logits(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probabilities[np.arange(len(labels)), labels].mean()


@pytest.mark.parametrize(
    "make_model", [_deferred_sequential, _sequential_with_batch_normalization, _functional, _Classifier]
)
def test_fit_reduces_the_loss_and_evaluate_predict_agree_with_calling_the_model(rng, make_model):
    x, y = _blobs(rng)
    model = make_model()
    model.compile(
        optimizer=tf.keras.optimizers.Adam(0.05),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 5 and losses[-1] < 0.5 * losses[0]
    logits = model(x).numpy()
    expected_loss = _sparse_crossentropy_from_logits(logits.astype(np.float64), y)
    assert expected_loss < 0.3 and (logits.argmax(axis=1) == y).mean() > 0.9
    results = model.evaluate(x, y, batch_size=100, verbose=0, return_dict=True)  # batches of 100, 100, 56
    assert results["loss"] == pytest.approx(expected_loss, rel=1e-4)
    assert results["accuracy"] == pytest.approx((logits.argmax(axis=1) == y).mean())
    np.testing.assert_allclose(model.predict(x, batch_size=50, verbose=0), logits, rtol=1e-5, atol=1e-6)


def test_fit_updates_batch_normalization_statistics_and_evaluate_leaves_them(rng):
    x, y = _blobs(rng)
    model = _sequential_with_batch_normalization()
    model.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batch_normalization = model.layers[1]
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    after_fit = batch_normalization.moving_mean.numpy()
    assert np.abs(after_fit).sum() > 0
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    np.testing.assert_array_equal(batch_normalization.moving_mean.numpy(), after_fit)
