"""The training loop: fit/evaluate/predict semantics, graph vs eager steps, and clear errors for bad data."""

import numpy as np
import pytest

import trainer as tf
from trainer.keras.models.data_adapter import DataError


def _blobs(n=240, features=4, classes=3, seed=0):
    generator = np.random.default_rng(seed)
    centers = generator.normal(scale=4.0, size=(classes, features))
    labels = generator.integers(0, classes, n)
    return (centers[labels] + generator.normal(size=(n, features))).astype(np.float32), labels


def _classifier(classes=3):
    model = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(16, activation="relu"), tf.keras.layers.Dense(classes, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_graph_steps_and_eager_steps_train_to_the_same_weights():
    x, y = _blobs()
    results = []
    for eager in (False, True):
        tf.keras.utils.set_random_seed(5)
        tf.keras.backend.clear_session()
        model = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(8, activation="relu"), tf.keras.layers.Dropout(0.1), tf.keras.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], run_eagerly=eager)
        history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
        results.append((history.history, model.get_weights()))
    (graph_history, graph_weights), (eager_history, eager_weights) = results
    for a, b in zip(graph_weights, eager_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(graph_history["loss"], eager_history["loss"], rtol=1e-5)


def test_graph_steps_and_eager_steps_train_a_cnn_to_the_same_weights():
    # The optimized training graph of a CNN shares im2col patches and moves ReLU masks before unpooling.
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((48, 9, 9, 2)).astype(np.float32), rng.integers(0, 3, 48)
    results = []
    for eager in (False, True):
        tf.keras.utils.set_random_seed(7)
        tf.keras.backend.clear_session()
        layers = tf.keras.layers
        model = tf.keras.Sequential([
            tf.keras.Input(shape=(9, 9, 2)),
            layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(5, 2, activation="relu", padding="same"), layers.MaxPooling2D(2, strides=1),
            layers.Flatten(), layers.Dense(3, activation="softmax"),
        ])  # fmt: skip
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=eager)
        history = model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
        results.append((history.history["loss"], model.get_weights()))
    (graph_loss, graph_weights), (eager_loss, eager_weights) = results
    for a, b in zip(graph_weights, eager_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(graph_loss, eager_loss, rtol=1e-5)


def test_fit_returns_history_with_validation_metrics_and_respects_initial_epoch():
    x, y = _blobs()
    model = _classifier()
    history = model.fit(x, y, epochs=3, batch_size=32, validation_split=0.25, initial_epoch=1, verbose=0)
    assert history.epoch == [1, 2]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 2 for values in history.history.values())


def test_validation_split_takes_the_last_samples_before_shuffling():
    x, y = _blobs(n=100)
    model = _classifier()
    model.fit(x, y, epochs=1, batch_size=10, validation_split=0.2, verbose=0)
    expected = model.evaluate(x[80:], y[80:], verbose=0, return_dict=True)
    model2 = _classifier()
    model2.set_weights(model.get_weights())
    assert model2.evaluate(x[80:], y[80:], verbose=0) == pytest.approx([expected["loss"], expected["accuracy"]], rel=1e-6)


def test_evaluate_matches_a_numpy_computation_of_the_loss():
    x, y = _blobs(n=90)
    model = _classifier()
    model.fit(x, y, epochs=1, verbose=0)
    probabilities = np.clip(model.predict(x, verbose=0), 1e-7, 1 - 1e-7)
    expected_loss = -np.log(probabilities[np.arange(len(y)), y]).mean()
    loss, accuracy = model.evaluate(x, y, batch_size=32, verbose=0)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert accuracy == pytest.approx((probabilities.argmax(1) == y).mean())


def test_fit_accepts_a_dataset_and_sample_weights():
    x, y = _blobs()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(240).batch(32)
    model = _classifier()
    history = model.fit(dataset, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    weights = np.where(y == 0, 0.0, 1.0).astype(np.float32)
    model.fit(x, y, sample_weight=weights, epochs=1, verbose=0)


def test_custom_training_loop_with_apply_gradients():
    x, y = _blobs()
    model = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(3)])
    loss_function = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = tf.keras.optimizers.SGD(learning_rate=0.1)
    losses = []
    for _ in range(20):
        with tf.GradientTape() as tape:
            loss = loss_function(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


def test_train_on_batch_and_predict_on_batch():
    x, y = _blobs(n=32)
    model = _classifier()
    loss, accuracy = model.train_on_batch(x, y)
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    np.testing.assert_allclose(model.predict_on_batch(x), model(x).numpy(), rtol=1e-6)


def test_string_labels_get_a_clear_error():
    x, _ = _blobs(n=10)
    model = _classifier()
    with pytest.raises(DataError, match="strings.*integers"):
        model.fit(x, np.array(["cat"] * 10), verbose=0)


def test_mismatched_sample_counts_get_a_clear_error():
    x, y = _blobs(n=10)
    with pytest.raises(DataError, match="(?s)'x' sizes: 10.*'y' sizes: 9"):
        _classifier().fit(x, y[:9], verbose=0)


def test_wrong_input_shape_names_the_model_and_both_shapes():
    model = _classifier()
    with pytest.raises(ValueError, match=r"expected shape=\(None, 4\), found shape=\(10, 5\)"):
        model.fit(np.zeros((10, 5), np.float32), np.zeros(10, np.int64), verbose=0)


def test_nan_loss_stops_training_and_names_the_first_bad_layer():
    x, y = _blobs(n=64)
    x[5, 0] = np.nan
    model = _classifier()
    with pytest.raises(tf.keras.models.NonFiniteLossError, match=r"layer 'dense' \(Dense.*contains NaN"):
        model.fit(x, y, batch_size=64, verbose=0)


def test_fit_before_compile_says_what_to_do():
    with pytest.raises(RuntimeError, match="compile"):
        tf.keras.Sequential([tf.keras.layers.Dense(1)]).fit(np.zeros((2, 1)), np.zeros(2), verbose=0)


def test_progress_bar_prints_steps_and_metrics(capsys):
    x, y = _blobs(n=64)
    model = _classifier()
    model.fit(x, y, epochs=2, batch_size=32, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "2/2 [==============================]" in out and "loss: " in out and "accuracy: " in out and "/step" in out


def test_early_stopping_stops_and_restores_the_best_weights():
    x, y = _blobs()
    model = _classifier()
    stopper = tf.keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0, restore_best_weights=True)
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[stopper])
    assert len(history.epoch) == 2 and model.stop_training


@pytest.mark.parametrize("eager", [False, True])
def test_out_of_range_labels_fail_in_graph_and_eager_steps(eager):
    x, y = _blobs(n=64)
    y[3] = 3  # the model has 3 classes: 0, 1, 2
    model = _classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=eager)
    with pytest.raises(ValueError, match=r"\[0, 3\).*from 0 to 3"):
        model.fit(x, y, verbose=0)


def test_nested_python_lists_are_arrays_as_in_keras():
    x, y = _blobs(n=12)
    model = _classifier()
    np.testing.assert_array_equal(model.predict(x[:2].tolist(), verbose=0), model.predict(x[:2], verbose=0))
    before = model.evaluate(x, y, verbose=0)
    assert model.evaluate(x.tolist(), y.tolist(), verbose=0) == pytest.approx(before, rel=1e-6)
    two_inputs = tf.keras.Input((2,)), tf.keras.Input((3,))
    joined = tf.keras.Model(list(two_inputs), tf.keras.layers.Concatenate()(list(two_inputs)))
    left, right = np.ones((4, 2), np.float32), np.zeros((4, 3), np.float32)
    assert joined.predict([left, right], verbose=0).shape == (4, 5)  # a list of arrays stays one array per input
