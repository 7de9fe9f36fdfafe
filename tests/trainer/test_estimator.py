"""``tf.estimator``: custom model_fns, checkpoints in model_dir, resuming, model_to_estimator, the pre-made classifiers."""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

import trainer as tf

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 4)).astype(np.float32)
Y = (X @ np.array([1.0, -2.0, 0.5, 1.5]) > 0).astype(np.int64)


def _input_fn(batch=16, repeat=True, shuffle=True):
    def input_fn():
        dataset = tf.data.Dataset.from_tensor_slices(({"x": X}, Y))
        dataset = dataset.shuffle(len(X)) if shuffle else dataset
        return dataset.batch(batch).repeat() if repeat else dataset.batch(batch)

    return input_fn


def model_fn(features, labels, mode, params):
    model = tf.keras.Sequential([tf.keras.layers.Dense(8, activation="relu"), tf.keras.layers.Dropout(0.1), tf.keras.layers.Dense(2)])
    with tf.GradientTape() as tape:
        logits = model(features["x"], training=mode == tf.estimator.ModeKeys.TRAIN)
        if mode == tf.estimator.ModeKeys.PREDICT:
            return tf.estimator.EstimatorSpec(mode, predictions={"class_ids": tf.argmax(logits, axis=1), "logits": logits})
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    if mode == tf.estimator.ModeKeys.TRAIN:
        optimizer = tf.keras.optimizers.Adam(params["learning_rate"])
        return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=optimizer.minimize(loss, model.trainable_variables, tape=tape))
    accuracy = tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    accuracy.update_state(labels, logits)
    return tf.estimator.EstimatorSpec(mode, loss=loss, eval_metric_ops={"accuracy": accuracy})


def _estimator(model_dir, **config):
    config = tf.estimator.RunConfig(**{"save_checkpoints_steps": 5, "tf_random_seed": 3, **config})
    return tf.estimator.Estimator(model_fn, model_dir=str(model_dir), params={"learning_rate": 0.05}, config=config)


def test_train_checkpoints_evaluate_and_predict_agree(tmp_path):
    estimator = _estimator(tmp_path, keep_checkpoint_max=2)
    assert estimator.train(_input_fn(), max_steps=23) is estimator
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model.ckpt-20.ckpt", "model.ckpt-23.ckpt"]
    assert estimator.latest_checkpoint() == str(tmp_path / "model.ckpt-23")
    assert int(estimator.get_variable_value("global_step")) == 23

    results = estimator.evaluate(_input_fn(batch=32, repeat=False))
    predictions = list(estimator.predict(_input_fn(batch=32, repeat=False, shuffle=False)))
    assert len(predictions) == len(X) and set(predictions[0]) == {"class_ids", "logits"}
    class_ids = np.array([prediction["class_ids"] for prediction in predictions])
    assert results["accuracy"] == pytest.approx(np.mean(class_ids == Y))
    assert results["global_step"] == 23 and results["accuracy"] > 0.8

    # the loss is the mean of the batches' losses, computed here from the logits that predict gives
    logits = np.array([prediction["logits"] for prediction in predictions])
    shifted = logits - logits.max(axis=1, keepdims=True)
    per_example = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(Y)), Y]
    assert results["loss"] == pytest.approx(np.mean([per_example[i : i + 32].mean() for i in range(0, len(Y), 32)]), rel=1e-5)

    only_logits = next(iter(estimator.predict(_input_fn(repeat=False), predict_keys=["logits"])))
    assert set(only_logits) == {"logits"}
    with pytest.raises(ValueError, match="provided \\['probabilities'\\]"):
        next(iter(estimator.predict(_input_fn(repeat=False), predict_keys="probabilities")))


def test_train_continues_from_the_latest_checkpoint(tmp_path):
    estimator = _estimator(tmp_path)
    estimator.train(_input_fn(), steps=4)
    estimator.train(_input_fn(), steps=3)
    assert int(estimator.get_variable_value("global_step")) == 7
    before = estimator.get_variable_value("dense/kernel")
    estimator.train(_input_fn(), max_steps=7)  # already there: nothing to do
    np.testing.assert_array_equal(estimator.get_variable_value("dense/kernel"), before)
    stopper = tf.estimator.StopAtStepHook(num_steps=2)
    estimator.train(_input_fn(), steps=10, hooks=[stopper])
    assert int(estimator.get_variable_value("global_step")) == 9


def test_a_train_call_interrupted_and_repeated_matches_an_uninterrupted_one(tmp_path):
    class Crash(tf.estimator.SessionRunHook):
        def after_run(self, run_context, run_values):
            if run_values.results["global_step"] == 13:
                raise KeyboardInterrupt("simulated crash after step 13 (checkpoint at 10)")

    uninterrupted = _estimator(tmp_path / "a")
    uninterrupted.train(_input_fn(), max_steps=22)
    crashed = _estimator(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        crashed.train(_input_fn(), max_steps=22, hooks=[Crash()])
    assert int(crashed.get_variable_value("global_step")) == 10
    tf.random.set_seed(999)  # the resumed call must not depend on the state the crash left
    crashed.train(_input_fn(), max_steps=22)
    names = uninterrupted.get_variable_names()
    assert names == crashed.get_variable_names() and "adam/iteration" in names
    for name in names:
        np.testing.assert_array_equal(crashed.get_variable_value(name), uninterrupted.get_variable_value(name), err_msg=name)


def test_estimator_errors_say_what_is_wrong(tmp_path):
    estimator = _estimator(tmp_path)
    with pytest.raises(ValueError, match="Could not find trained model in model_dir"):
        estimator.evaluate(_input_fn(repeat=False))
    with pytest.raises(ValueError, match="Can not provide both steps and max_steps"):
        estimator.train(_input_fn(), steps=1, max_steps=2)
    with pytest.raises(TypeError, match="input_fn must return a tf.data.Dataset"):
        estimator.train(lambda: (X, Y), steps=1)
    with pytest.raises(TypeError, match="model_fn must return a tf.estimator.EstimatorSpec"):
        tf.estimator.Estimator(lambda features, labels, mode: None, model_dir=str(tmp_path / "c")).train(_input_fn(), steps=1)
    with pytest.raises(ValueError, match="model_dir are set both in constructor and RunConfig"):
        tf.estimator.Estimator(model_fn, model_dir=str(tmp_path), config=tf.estimator.RunConfig(model_dir=str(tmp_path / "other")))
    with pytest.raises(ValueError, match="TRAIN mode needs loss and train_op"):
        tf.estimator.EstimatorSpec(tf.estimator.ModeKeys.TRAIN, loss=tf.constant(1.0))
    with pytest.raises(ValueError, match="at most one of save_checkpoints_steps and save_checkpoints_secs"):
        tf.estimator.RunConfig(save_checkpoints_steps=10, save_checkpoints_secs=10)
    assert tf.estimator.RunConfig().save_checkpoints_secs == 600 and tf.estimator.RunConfig().keep_checkpoint_max == 5


def test_model_to_estimator_trains_the_compiled_model(tmp_path):
    model = tf.keras.Sequential([tf.keras.layers.Dense(8, activation="relu", input_shape=(4,)), tf.keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="has not been compiled yet"):
        tf.keras.estimator.model_to_estimator(keras_model=model)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    config = tf.estimator.RunConfig(save_checkpoints_steps=10, tf_random_seed=1)
    estimator = tf.keras.estimator.model_to_estimator(keras_model=model, model_dir=str(tmp_path), config=config)
    estimator.train(lambda: tf.data.Dataset.from_tensor_slices((X, Y)).shuffle(96).batch(16).repeat(), max_steps=30)
    assert "model/layer_with_weights-0/kernel" in estimator.get_variable_names() and "optimizer/0" in estimator.get_variable_names()

    results = estimator.evaluate(lambda: tf.data.Dataset.from_tensor_slices((X, Y)).batch(96))
    expected = model.evaluate(X, Y, batch_size=96, verbose=0, return_dict=True)  # the model now holds the checkpoint's weights
    np.testing.assert_array_equal(model.get_weights()[0], estimator.get_variable_value("model/layer_with_weights-0/kernel"))
    assert results["accuracy"] == pytest.approx(expected["accuracy"]) and results["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert results["accuracy"] > 0.8 and results["global_step"] == 30

    prediction = next(iter(estimator.predict(lambda: tf.data.Dataset.from_tensor_slices(X[:4]).batch(4))))
    np.testing.assert_allclose(prediction[model.layers[-1].name], model.predict(X[:1], verbose=0)[0], rtol=1e-5)


def _mnist_input_fns():
    (x, y), (x_test, y_test) = tf.keras.datasets.mnist.load_data(source="subset")
    x, x_test = (x.reshape(-1, 784) / 255.0).astype(np.float32), (x_test.reshape(-1, 784) / 255.0).astype(np.float32)
    train = lambda: tf.data.Dataset.from_tensor_slices(({"pixels": x}, y.astype(np.int64))).shuffle(len(x), seed=1).batch(32).repeat()  # noqa: E731
    test = lambda: tf.data.Dataset.from_tensor_slices(({"pixels": x_test}, y_test.astype(np.int64))).batch(500)  # noqa: E731
    return train, test


def test_dnn_classifier_learns_mnist_digits(tmp_path):
    assert inspect.signature(tf.estimator.DNNClassifier).parameters["optimizer"].default == "Adagrad"
    train, test = _mnist_input_fns()
    columns = [tf.feature_column.numeric_column("pixels", shape=(784,))]
    classifier = tf.estimator.DNNClassifier(hidden_units=[64], feature_columns=columns, n_classes=10, dropout=0.1, model_dir=str(tmp_path))
    classifier.train(train, max_steps=250)
    results = classifier.evaluate(test)
    assert results["accuracy"] > 0.85, results
    assert any(name.endswith("_accumulator") for name in classifier.get_variable_names())  # trained with Adagrad
    prediction = next(iter(classifier.predict(test)))
    assert prediction["probabilities"].shape == (10,) and prediction["class_ids"].shape == (1,)
    assert prediction["class_ids"][0] == np.argmax(prediction["logits"])


def test_linear_classifier_separates_a_separable_problem(tmp_path):
    assert inspect.signature(tf.estimator.LinearClassifier).parameters["optimizer"].default == "Ftrl"
    columns = [tf.feature_column.numeric_column("x", shape=4)]
    classifier = tf.estimator.LinearClassifier(feature_columns=columns, model_dir=str(tmp_path))
    classifier.train(_input_fn(), max_steps=150)
    results = classifier.evaluate(_input_fn(batch=96, repeat=False))
    assert results["accuracy"] >= 0.95, results
    assert any(name.endswith("_linear") for name in classifier.get_variable_names())  # trained with Ftrl
    prediction = next(iter(classifier.predict(_input_fn(repeat=False))))
    np.testing.assert_allclose(prediction["logistic"], 1 / (1 + np.exp(-prediction["logits"])), rtol=1e-5)
    np.testing.assert_allclose(prediction["probabilities"].sum(), 1.0, rtol=1e-6)


def test_numeric_columns_check_their_input():
    column = tf.feature_column.numeric_column("x", shape=(2,), normalizer_fn=lambda value: value * 2.0)
    from trainer.feature_column import dense_input

    np.testing.assert_array_equal(dense_input({"x": tf.constant([[1.0, 2.0]])}, [column]).numpy(), [[2.0, 4.0]])
    with pytest.raises(KeyError, match="feature 'x' is not in the features dict"):
        dense_input({"y": tf.constant([[1.0, 2.0]])}, [column])
    with pytest.raises(ValueError, match="per-example shape \\(3,\\)"):
        dense_input({"x": tf.constant([[1.0, 2.0, 3.0]])}, [column])
    with pytest.raises(ValueError, match="dtype must be a floating dtype"):
        tf.feature_column.numeric_column("x", dtype=tf.int32)


def _numpy_adagrad(weights, gradients, learning_rate, initial=0.1, epsilon=1e-7):
    accumulator = np.full_like(weights, initial)
    for gradient in gradients:
        accumulator += gradient * gradient
        weights = weights - learning_rate * gradient / np.sqrt(accumulator + epsilon)
    return weights


def _numpy_ftrl(weights, gradients, learning_rate, l1, l2, shrinkage, beta, power=-0.5, initial=0.1):
    accumulator, linear = np.full_like(weights, initial), np.zeros_like(weights)
    l2 = l2 + beta / (2.0 * learning_rate)
    for gradient in gradients:
        new_accumulator = accumulator + gradient**2
        linear += gradient + 2 * shrinkage * weights - (new_accumulator ** -power - accumulator ** -power) / learning_rate * weights
        quadratic = new_accumulator ** -power / learning_rate + 2 * l2
        weights = (np.clip(linear, -l1, l1) - linear) / quadratic
        accumulator = new_accumulator
    return weights


@pytest.mark.parametrize("name", ["Adagrad", "Ftrl"])
def test_adagrad_and_ftrl_follow_keras_update_rules(name):
    weights = RNG.normal(size=(3, 2)).astype(np.float32)
    gradients = [RNG.normal(size=(3, 2)).astype(np.float32) for _ in range(4)]
    variable = tf.Variable(weights)
    if name == "Adagrad":
        optimizer, expected = tf.keras.optimizers.Adagrad(0.05), _numpy_adagrad(weights.astype(np.float64), gradients, 0.05)
    else:
        arguments = {"l1_regularization_strength": 0.01, "l2_regularization_strength": 0.1, "l2_shrinkage_regularization_strength": 0.05, "beta": 0.1}
        optimizer = tf.keras.optimizers.Ftrl(0.2, **arguments)
        expected = _numpy_ftrl(weights.astype(np.float64), gradients, 0.2, 0.01, 0.1, 0.05, 0.1)
    for gradient in gradients:
        optimizer.apply_gradients([(tf.constant(gradient), variable)])
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert type(tf.keras.optimizers.get(name.lower())) is type(optimizer)
