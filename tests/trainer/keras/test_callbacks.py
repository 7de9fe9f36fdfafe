"""Callbacks against Keras semantics: History is the reference for what each epoch logged."""

import csv
import os
import warnings

import numpy as np
import pytest

import trainer as tf
from trainer.keras.models.training import NonFiniteLossError


def _blobs(n=240, features=4, classes=3, seed=0):
    generator = np.random.default_rng(seed)
    centers = generator.normal(scale=4.0, size=(classes, features))
    labels = generator.integers(0, classes, n)
    return (centers[labels] + generator.normal(size=(n, features))).astype(np.float32), labels


def _classifier(optimizer="adam", seed=3):
    tf.keras.utils.set_random_seed(seed)
    tf.keras.backend.clear_session()
    model = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(8, activation="relu"), tf.keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _scripted(name, values):
    """A callback that overwrites logs[name] with the next scripted value, so monitors see known numbers."""
    return tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.__setitem__(name, values[epoch]))


# -- CSVLogger --------------------------------------------------------------------------------------------
def test_csv_logger_writes_one_row_per_epoch_matching_history(tmp_path):
    x, y = _blobs()
    path = tmp_path / "log.csv"
    history = _classifier().fit(x, y, epochs=3, batch_size=32, validation_split=0.25, verbose=0, callbacks=[tf.keras.callbacks.CSVLogger(path)])
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["epoch", *sorted(history.history)]
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    for name, values in history.history.items():
        np.testing.assert_allclose([float(row[name]) for row in rows], values, rtol=1e-6)


def test_csv_logger_append_continues_without_a_second_header_and_custom_separator(tmp_path):
    x, y = _blobs()
    path = tmp_path / "log.tsv"
    model = _classifier()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[tf.keras.callbacks.CSVLogger(path, separator="\t")])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[tf.keras.callbacks.CSVLogger(path, separator="\t", append=True)])
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and lines[0].split("\t") == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [line.split("\t")[0] for line in lines[1:]] == ["0", "1", "0"]
    model.fit(x, y, epochs=1, verbose=0, callbacks=[tf.keras.callbacks.CSVLogger(path, separator="\t")])
    assert len(path.read_text().splitlines()) == 2  # append=False starts over


def test_csv_logger_fills_missing_validation_columns_with_na(tmp_path):
    x, y = _blobs()
    path = tmp_path / "log.csv"
    _classifier().fit(x, y, epochs=2, validation_data=(x, y), validation_freq=2, verbose=0, callbacks=[tf.keras.callbacks.CSVLogger(path)])
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert rows[0]["val_loss"] == rows[0]["val_accuracy"] == "NA"
    assert float(rows[1]["val_loss"]) > 0 and 0 <= float(rows[1]["val_accuracy"]) <= 1


# -- LearningRateScheduler --------------------------------------------------------------------------------
def test_learning_rate_scheduler_sets_the_rate_the_optimizer_uses():
    x, y = _blobs()
    model = _classifier(tf.keras.optimizers.SGD(learning_rate=0.1))
    weights_after_first_epoch = []
    schedule = tf.keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.0 if epoch >= 1 else lr * 0.5)
    keep = tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epoch == 0 and weights_after_first_epoch.append(model.get_weights()))
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[schedule, keep])
    np.testing.assert_allclose(history.history["learning_rate"], [0.05, 0.0, 0.0], rtol=1e-6)
    for before, after in zip(weights_after_first_epoch[0], model.get_weights()):
        np.testing.assert_array_equal(before, after)  # a zero rate leaves the weights alone


def test_learning_rate_scheduler_accepts_one_argument_schedules_and_rejects_non_floats(capsys):
    x, y = _blobs()
    model = _classifier(tf.keras.optimizers.SGD(learning_rate=0.1))
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[tf.keras.callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1), verbose=1)])
    np.testing.assert_allclose(history.history["learning_rate"], [0.01, 0.02], rtol=1e-6)
    assert "Epoch 2: LearningRateScheduler setting learning rate to 0.02" in capsys.readouterr().out
    with pytest.raises(ValueError, match="must be a float, got 'fast'"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[tf.keras.callbacks.LearningRateScheduler(lambda epoch, lr: "fast")])


# -- ReduceLROnPlateau ------------------------------------------------------------------------------------
def test_reduce_lr_on_plateau_reduces_after_patience_respects_cooldown_and_min_lr():
    x, y = _blobs()
    model = _classifier(tf.keras.optimizers.SGD(learning_rate=0.1))
    losses = [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    reduce = tf.keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    history = model.fit(x, y, epochs=7, verbose=0, callbacks=[_scripted("loss", losses), reduce])
    # epoch 0 sets best; 1, 2 wait -> reduce after 2; epoch 3 cooldown; 4, 5 wait -> reduce after 5 (clamped).
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025], rtol=1e-6)
    np.testing.assert_allclose(tf.keras.callbacks.learning_rate.get_learning_rate(model), 0.025, rtol=1e-6)
    model.fit(x, y, epochs=4, verbose=0, callbacks=[_scripted("loss", losses), reduce])
    np.testing.assert_allclose(tf.keras.callbacks.learning_rate.get_learning_rate(model), 0.02, rtol=1e-6)


def test_reduce_lr_on_plateau_improvement_resets_wait_and_state_resets_between_fits():
    x, y = _blobs()
    model = _classifier(tf.keras.optimizers.SGD(learning_rate=0.1))
    reduce = tf.keras.callbacks.ReduceLROnPlateau(monitor="val_score", mode="max", factor=0.1, patience=1, min_delta=0.5)
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[_scripted("val_score", [1.0, 2.0, 2.4, 3.0]), reduce])
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.1, 0.1, 0.01], rtol=1e-5)
    # A second fit starts from a clean best: its first epoch is an improvement, so the rate stays.
    history = model.fit(x, y, epochs=1, verbose=0, callbacks=[_scripted("val_score", [0.0]), reduce])
    np.testing.assert_allclose(tf.keras.callbacks.learning_rate.get_learning_rate(model), 0.01, rtol=1e-5)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        tf.keras.callbacks.ReduceLROnPlateau(factor=1.5)


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: tf.keras.callbacks.ReduceLROnPlateau(monitor="val_nope"),
        lambda tmp: tf.keras.callbacks.ModelCheckpoint(str(tmp / "m.ember"), monitor="val_nope", save_best_only=True),
        lambda tmp: tf.keras.callbacks.EarlyStopping(monitor="val_nope"),
    ],
)
def test_monitoring_callbacks_share_the_base_and_warn_listing_available_metrics(tmp_path, make):
    x, y = _blobs()
    callback = make(tmp_path)
    assert isinstance(callback, tf.keras.callbacks.MonitorCallback)
    with pytest.warns(UserWarning, match="`val_nope` which is not available. Available metrics are: accuracy,(learning_rate,)?loss$"):
        _classifier().fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert not os.path.exists(tmp_path / "m.ember")


# -- TerminateOnNaN ---------------------------------------------------------------------------------------
def test_terminate_on_nan_stops_cleanly_where_fit_would_raise(capsys):
    x, y = _blobs()
    x[70] = np.nan  # in batch 2 of 32-sample batches
    batches = []
    counter = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    history = _classifier().fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0, callbacks=[tf.keras.callbacks.TerminateOnNaN(), counter])
    assert batches == [0, 1, 2] and history.epoch == [0] and np.isnan(history.history["loss"][0])
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out
    with pytest.raises(NonFiniteLossError):
        _classifier().fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)


# -- ModelCheckpoint --------------------------------------------------------------------------------------
def test_model_checkpoint_fills_the_template_with_one_based_epochs_and_logs(tmp_path):
    x, y = _blobs()
    model = _classifier()
    template = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.ember")
    history = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[tf.keras.callbacks.ModelCheckpoint(template)])
    expected = [f"ckpt-{epoch + 1:02d}-{loss:.2f}.ember" for epoch, loss in enumerate(history.history["val_loss"])]
    assert sorted(os.listdir(tmp_path)) == sorted(expected)
    restored = tf.keras.models.load_model(tmp_path / expected[-1])
    for a, b in zip(restored.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_save_best_only_with_threshold_and_mode(tmp_path):
    x, y = _blobs()
    template = str(tmp_path / "best-{epoch}.weights.ember")
    scores = [3.0, 1.0, 2.0, 0.5]
    checkpoint = tf.keras.callbacks.ModelCheckpoint(template, monitor="val_loss", save_best_only=True, save_weights_only=True, initial_value_threshold=2.0)
    _classifier().fit(x, y, epochs=4, verbose=0, callbacks=[_scripted("val_loss", scores), checkpoint])
    assert sorted(os.listdir(tmp_path)) == ["best-2.weights.ember", "best-4.weights.ember"]
    checkpoint = tf.keras.callbacks.ModelCheckpoint(str(tmp_path / "max-{epoch}.weights.ember"), monitor="val_auc", save_best_only=True, save_weights_only=True)
    assert checkpoint.mode == "max"
    _classifier().fit(x, y, epochs=4, verbose=0, callbacks=[_scripted("val_auc", scores), checkpoint])
    assert sorted(name for name in os.listdir(tmp_path) if name.startswith("max")) == ["max-1.weights.ember"]


def test_model_checkpoint_batch_frequency_weights_only_and_bad_names(tmp_path):
    x, y = _blobs()
    model = _classifier()
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[tf.keras.callbacks.ModelCheckpoint(str(tmp_path / "b-{epoch}-{batch}.weights.ember"), save_freq=4, save_weights_only=True)])
    assert sorted(os.listdir(tmp_path)) == sorted(f"b-{e}-{b}.weights.ember" for e in (1, 2) for b in (3, 7))
    other = _classifier(seed=9)
    other.load_weights(tmp_path / "b-2-7.weights.ember")
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="must end in '.weights.ember'"):
        tf.keras.callbacks.ModelCheckpoint(str(tmp_path / "w.ember"), save_weights_only=True)
    with pytest.raises(ValueError, match="must end in '.ember'"):
        tf.keras.callbacks.ModelCheckpoint(str(tmp_path / "w.keras"))
    with pytest.raises(ValueError, match="save_freq"):
        tf.keras.callbacks.ModelCheckpoint(str(tmp_path / "w.ember"), save_freq="batch")
    with pytest.raises(KeyError, match="names {val_acc}.*available fields: accuracy, epoch, loss"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[tf.keras.callbacks.ModelCheckpoint(str(tmp_path / "{val_acc}.ember"))])


# -- BackupAndRestore -------------------------------------------------------------------------------------
class _Crash(RuntimeError):
    pass


def _crash_at(epoch_to_crash, batch_to_crash):
    def maybe_crash(batch, logs):
        if state["epoch"] == epoch_to_crash and batch == batch_to_crash:
            raise _Crash(f"simulated crash in epoch {epoch_to_crash}")

    state = {"epoch": 0}
    return tf.keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: state.__setitem__("epoch", epoch), on_train_batch_end=maybe_crash)


@pytest.mark.parametrize("save_freq", ["epoch", 8])
def test_backup_and_restore_resumes_to_the_same_weights_as_an_uninterrupted_run(tmp_path, save_freq):
    x, y = _blobs()
    reference = _classifier()
    reference.fit(x, y, epochs=4, batch_size=32, shuffle=False, verbose=0)

    model = _classifier()
    backup_dir = tmp_path / "backup"
    backup = tf.keras.callbacks.BackupAndRestore(backup_dir, save_freq=save_freq)
    with pytest.raises(_Crash):
        model.fit(x, y, epochs=4, batch_size=32, shuffle=False, verbose=0, callbacks=[backup, _crash_at(2, 3)])
    assert os.path.isdir(backup_dir / "checkpoint")
    history = model.fit(x, y, epochs=4, batch_size=32, shuffle=False, verbose=0, callbacks=[backup])
    assert history.epoch == [2, 3]
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(model.optimizer.iterations.numpy(), reference.optimizer.iterations.numpy())
    assert not os.path.exists(backup_dir / "checkpoint")  # deleted once training finished
    assert model.fit(x, y, epochs=1, verbose=0).epoch == [0]  # later fits start over


def test_backup_and_restore_keeps_the_backup_when_asked_and_skips_finished_epochs(tmp_path):
    x, y = _blobs()
    model = _classifier()
    backup = tf.keras.callbacks.BackupAndRestore(tmp_path, delete_checkpoint=False)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[backup])
    assert os.path.exists(tmp_path / "checkpoint" / "training_state.json")
    assert model.fit(x, y, epochs=3, verbose=0, callbacks=[backup]).epoch == [2]
    with pytest.raises(ValueError, match="backup_dir"):
        tf.keras.callbacks.BackupAndRestore("")


def test_callbacks_import_paths_are_kept():
    from trainer.keras.callbacks import BackupAndRestore, Callback, CallbackList, CSVLogger, History, TerminateOnNaN  # noqa: F401

    assert tf.keras.callbacks.EarlyStopping.__mro__[1] is tf.keras.callbacks.MonitorCallback
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tf.keras.callbacks.ReduceLROnPlateau(epsilon=1e-3)


# -- TensorBoard ------------------------------------------------------------------------------------------
def _tensorboard_series(folder):
    from tensorboard.backend.event_processing import plugin_event_accumulator
    from tensorboard.util import tensor_util

    accumulator = plugin_event_accumulator.EventAccumulator(str(folder), size_guidance={"tensors": 0})
    accumulator.Reload()
    return {tag: [(event.step, tensor_util.make_ndarray(event.tensor_proto)) for event in accumulator.Tensors(tag)] for tag in accumulator.Tags()["tensors"]}


def test_tensorboard_writes_epoch_scalars_for_train_and_validation(tmp_path):
    pytest.importorskip("tensorboard")
    x, y = _blobs()
    model = _classifier(tf.keras.optimizers.SGD(learning_rate=0.05))
    history = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[tf.keras.callbacks.TensorBoard(tmp_path)])
    train, validation = _tensorboard_series(tmp_path / "train"), _tensorboard_series(tmp_path / "validation")
    assert set(train) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_time"}
    assert set(validation) == {"epoch_loss", "epoch_accuracy"}
    for name in ("loss", "accuracy"):
        assert [step for step, _ in train[f"epoch_{name}"]] == [0, 1, 2]
        np.testing.assert_allclose([float(v) for _, v in train[f"epoch_{name}"]], history.history[name], rtol=1e-6)
        np.testing.assert_allclose([float(v) for _, v in validation[f"epoch_{name}"]], history.history[f"val_{name}"], rtol=1e-6)
    np.testing.assert_allclose([float(v) for _, v in train["epoch_learning_rate"]], [0.05] * 3, rtol=1e-6)
    assert all(float(v) > 0 for _, v in train["epoch_time"])


def test_tensorboard_batch_scalars_and_weight_histograms(tmp_path):
    pytest.importorskip("tensorboard")
    x, y = _blobs()
    model = _classifier()
    batch_losses = []
    recorder = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batch_losses.append(logs["loss"]))
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[recorder, tf.keras.callbacks.TensorBoard(tmp_path, histogram_freq=2, update_freq=3)])
    train = _tensorboard_series(tmp_path / "train")
    assert [step for step, _ in train["batch_loss"]] == [3, 6, 9, 12, 15]  # 8 batches an epoch, 16 in all
    np.testing.assert_allclose([float(v) for _, v in train["batch_loss"]], [batch_losses[s - 1] for s in (3, 6, 9, 12, 15)], rtol=1e-6)
    assert not os.path.exists(tmp_path / "validation")
    for weight in model.weights:
        [(step, table)] = train[weight.name.split(":")[0]]  # histogram_freq=2: epoch 0 only
        assert step == 0 and table.shape == (30, 3) and table[:, 2].sum() == weight.numpy().size
    with pytest.raises(ValueError, match="update_freq"):
        tf.keras.callbacks.TensorBoard(tmp_path, update_freq="often")
