"""``tf.estimator``: custom model_fns, checkpoints in model_dir, resuming, model_to_estimator, the pre-made classifiers."""

from __future__ import annotations

import inspect
import json
import os
import zipfile

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


def test_a_crash_in_a_second_train_call_resumes_to_the_same_weights(tmp_path):
    class Crash(tf.estimator.SessionRunHook):
        def after_run(self, run_context, run_values):
            if run_values.results["global_step"] == 17:
                raise KeyboardInterrupt("simulated crash after step 17 (checkpoint at 15)")

    uninterrupted = _estimator(tmp_path / "a")
    uninterrupted.train(_input_fn(), max_steps=10)
    uninterrupted.train(_input_fn(), max_steps=30)
    crashed = _estimator(tmp_path / "b")
    crashed.train(_input_fn(), max_steps=10)
    with pytest.raises(KeyboardInterrupt):
        crashed.train(_input_fn(), max_steps=30, hooks=[Crash()])
    assert int(crashed.get_variable_value("global_step")) == 15
    crashed.train(_input_fn(), max_steps=30)
    for name in uninterrupted.get_variable_names():
        np.testing.assert_array_equal(crashed.get_variable_value(name), uninterrupted.get_variable_value(name), err_msg=name)


def _edit_progress(path, edit):
    """Rewrites the train_progress state inside the checkpoint file ``path`` with ``edit(call)``."""
    file = path + ".ckpt"
    with zipfile.ZipFile(file) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(entries["checkpoint.json"])
    progress = json.loads(manifest["python_state"]["train_progress"])
    edit(progress["call"])
    manifest["python_state"]["train_progress"] = json.dumps(progress)
    entries["checkpoint.json"] = json.dumps(manifest)
    with zipfile.ZipFile(file, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda call: call.update(start_step=1), "began at step 1 and trained 5 batches, but the global step is 5"),
        (lambda call: call.pop("start_step"), "train_progress must hold"),
        (lambda call: call.pop("max_steps"), "train_progress must hold"),
    ],
)
def test_progress_that_disagrees_with_the_checkpoint_is_refused(tmp_path, edit, message):
    estimator = _estimator(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        estimator.train(_input_fn(), max_steps=20, hooks=[_CrashAt(7)])
    _edit_progress(estimator.latest_checkpoint(), edit)
    with pytest.raises(tf.train.CheckpointError, match=message):
        estimator.train(_input_fn(), max_steps=20)


class _CrashAt(tf.estimator.SessionRunHook):
    def __init__(self, step):
        self.step = step

    def after_run(self, run_context, run_values):
        if run_values.results["global_step"] == self.step:
            raise KeyboardInterrupt(f"simulated crash after step {self.step}")


def test_run_config_logging_off_and_replace_switches_the_checkpoint_trigger(tmp_path):
    estimator = _estimator(tmp_path, log_step_count_steps=None)
    estimator.train(_input_fn(), steps=2)
    assert int(estimator.get_variable_value("global_step")) == 2
    by_secs = tf.estimator.RunConfig(save_checkpoints_steps=10).replace(save_checkpoints_secs=30)
    assert (by_secs.save_checkpoints_steps, by_secs.save_checkpoints_secs) == (None, 30)
    by_steps = tf.estimator.RunConfig(save_checkpoints_secs=30).replace(save_checkpoints_steps=10)
    assert (by_steps.save_checkpoints_steps, by_steps.save_checkpoints_secs) == (10, None)
    with pytest.raises(ValueError, match="at most one of save_checkpoints_steps and save_checkpoints_secs"):
        tf.estimator.RunConfig().replace(save_checkpoints_steps=10, save_checkpoints_secs=30)


class _Recorder(tf.estimator.SessionRunHook):
    def __init__(self, calls, name):
        self.calls, self.name = calls, name

    def begin(self):
        self.calls.append((self.name, "begin"))

    def after_create_session(self, session, coord):
        self.calls.append((self.name, "after_create_session"))

    def before_run(self, run_context):
        self.calls.append((self.name, "before_run"))

    def after_run(self, run_context, run_values):
        self.calls.append((self.name, "after_run", sorted(run_values.results)))

    def end(self, session):
        self.calls.append((self.name, "end"))


def test_evaluate_and_predict_run_every_hook_method(tmp_path):
    calls = []

    def hooked_model_fn(features, labels, mode, params):
        spec = model_fn(features, labels, mode, params)
        if mode == tf.estimator.ModeKeys.PREDICT:
            return tf.estimator.EstimatorSpec(mode, predictions=spec.predictions, prediction_hooks=[_Recorder(calls, "spec")])
        return spec

    estimator = tf.estimator.Estimator(hooked_model_fn, model_dir=str(tmp_path), params={"learning_rate": 0.05})
    estimator.train(_input_fn(), steps=2)
    estimator.evaluate(_input_fn(batch=48, repeat=False), hooks=[_Recorder(calls, "user")])
    step = ("user", "after_run", ["global_step", "loss"])
    assert calls == [("user", "begin"), ("user", "after_create_session")] + [("user", "before_run"), step] * 2 + [("user", "end")]
    calls.clear()
    predictions = list(estimator.predict(_input_fn(batch=48, repeat=False), hooks=[_Recorder(calls, "user")]))
    assert len(predictions) == len(X)
    per_batch = [("user", "before_run"), ("spec", "before_run"), ("user", "after_run", ["predictions"]), ("spec", "after_run", ["predictions"])]
    expected = [(name, method) for method in ("begin", "after_create_session") for name in ("user", "spec")]
    assert calls == expected + per_batch * 2 + [("user", "end"), ("spec", "end")]


@pytest.mark.parametrize(
    "classifier, n_classes, labels, message",
    [
        ("LinearClassifier", 2, [0, 1, 2, 1], r"labels must be 0 or 1 \(a binary classifier\); got label 2"),
        ("DNNClassifier", 3, [0, 1, 3, 1], r"labels must be class ids in \[0, 3\); got label 3"),
        ("LinearClassifier", 3, [0, -1, 2, 1], r"labels must be class ids in \[0, 3\); got label -1"),
        ("DNNClassifier", 2, [0.0, 0.5, 1.0, 1.0], r"labels must be integer class ids in \[0, 2\), got 0.5"),
    ],
)
def test_premade_classifiers_refuse_labels_out_of_range(tmp_path, classifier, n_classes, labels, message):
    columns = [tf.feature_column.numeric_column("x", shape=4)]
    arguments = {"hidden_units": [4]} if classifier == "DNNClassifier" else {}
    estimator = getattr(tf.estimator, classifier)(feature_columns=columns, n_classes=n_classes, model_dir=str(tmp_path), **arguments)
    labels = np.array(labels)

    def input_fn():
        return tf.data.Dataset.from_tensor_slices(({"x": X[:4]}, labels)).batch(4)

    with pytest.raises(ValueError, match=f"{classifier}: {message}"):
        estimator.train(input_fn, steps=1)
    estimator.train(lambda: tf.data.Dataset.from_tensor_slices(({"x": X[:4]}, np.array([0, 1, 1, 0]))).batch(4), steps=1)
    with pytest.raises(ValueError, match=message):
        estimator.evaluate(input_fn)


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
