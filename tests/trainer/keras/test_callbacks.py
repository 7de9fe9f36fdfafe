"""Callbacks against Keras semantics: History is the reference for what each epoch logged."""

import csv
import json
import os
import warnings

import numpy as np
import pytest

import trainer as tf
from tests.trainer.keras.toy_data import blobs as _blobs
from tests.trainer.keras.toy_data import classifier as _classifier
from trainer.keras.models.training import NonFiniteLossError


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
    # Keras 3 (TensorFlow 2.21) logs these rates and ends at 0.02 for the same script: epoch 0 sets best;
    # 1, 2 wait -> reduce after 2; epoch 3 ends the cooldown and already waits; 4 waits -> reduce; 6 -> clamped.
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025], rtol=1e-6)
    np.testing.assert_allclose(tf.keras.callbacks.learning_rate.get_learning_rate(model), 0.02, rtol=1e-6)
    reduce = tf.keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, cooldown=2)
    model = _classifier(tf.keras.optimizers.SGD(learning_rate=0.1))
    history = model.fit(x, y, epochs=8, verbose=0, callbacks=[_scripted("loss", [5.0] * 8), reduce])
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125], rtol=1e-6)
    np.testing.assert_allclose(tf.keras.callbacks.learning_rate.get_learning_rate(model), 0.00625, rtol=1e-6)


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
    # Epochs and batches counted from 1, as Keras 3 names them: every 4th of 8 batches an epoch.
    assert sorted(os.listdir(tmp_path)) == sorted(f"b-{e}-{b}.weights.ember" for e in (1, 2) for b in (4, 8))
    other = _classifier(seed=9)
    other.load_weights(tmp_path / "b-2-8.weights.ember")
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


@pytest.mark.parametrize("damaged", ["training_state.json", "model.weights.ember"])
def test_backup_and_restore_falls_back_to_the_previous_backup_when_the_latest_cannot_be_read(tmp_path, damaged):
    x, y = _blobs()
    reference = _classifier()
    reference.fit(x, y, epochs=4, batch_size=32, shuffle=False, verbose=0)

    model = _classifier()
    backup_dir = tmp_path / "backup"
    backup = tf.keras.callbacks.BackupAndRestore(backup_dir)
    with pytest.raises(_Crash):
        model.fit(x, y, epochs=4, batch_size=32, shuffle=False, verbose=0, callbacks=[backup, _crash_at(2, 3)])
    # what a power loss leaves when the disk had not written the latest backup's file: nothing in it
    (backup_dir / "checkpoint" / damaged).write_bytes(b"")
    with pytest.warns(UserWarning, match="the backup in .*checkpoint cannot be read .*trying the previous one"):
        history = model.fit(x, y, epochs=4, batch_size=32, shuffle=False, verbose=0, callbacks=[backup])
    assert history.epoch == [1, 2, 3]  # from the backup after epoch 0, not the damaged one after epoch 1
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not os.path.exists(backup_dir / "checkpoint.old")  # deleted with the backup once training finished


def test_backup_and_restore_syncs_every_file_before_swapping_the_backup_in(tmp_path, monkeypatch):
    from trainer import files
    from trainer.keras.callbacks import checkpoint

    events = []

    def write_atomically(path, data):
        files.write_atomically(path, data)
        events.append(("write", os.path.basename(path)))

    def fsync_directory(directory):
        files.fsync_directory(directory)
        events.append(("sync", sorted(os.listdir(directory))))

    monkeypatch.setattr(checkpoint, "write_atomically", write_atomically)
    monkeypatch.setattr(checkpoint, "fsync_directory", fsync_directory)
    backup_dir = tmp_path / "backup"
    x, y = _blobs(n=64)
    _classifier().fit(x, y, epochs=2, verbose=0, callbacks=[tf.keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False)])

    second = events[events.index(("sync", ["checkpoint"])) + 1 :]  # the second backup, with a first to replace
    assert second == [
        ("write", "optimizer.npz"),
        ("write", "training_state.json"),
        ("sync", ["checkpoint", "checkpoint.tmp"]),  # the complete new backup is on disk before the swap
        ("sync", ["checkpoint", "checkpoint.old"]),  # and the swap itself is on disk afterwards
    ]
    with open(backup_dir / "checkpoint" / "training_state.json") as file:
        assert json.load(file)["epoch"] == 2


def test_callbacks_import_paths_are_kept():
    from trainer.keras.callbacks import BackupAndRestore, Callback, CallbackList, CSVLogger, History, TerminateOnNaN  # noqa: F401

    assert tf.keras.callbacks.EarlyStopping.__mro__[1] is tf.keras.callbacks.MonitorCallback
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tf.keras.callbacks.ReduceLROnPlateau(epsilon=1e-3)


# -- the protocol: which hooks fit, evaluate and predict call, in what order, with what -------------------
class _Recorder(tf.keras.callbacks.Callback):
    """Overrides every hook; records (hook, index, sorted log names), leaving out logs that are None."""

    def __init__(self):
        super().__init__()
        self.calls = []


def _recording(hook):
    def record(self, *args):
        self.calls.append((hook, *[sorted(a) if isinstance(a, dict) else a for a in args if a is not None]))

    return record


for _hook in [name for name in vars(tf.keras.callbacks.Callback) if name.startswith("on_") and name not in ("on_batch_begin", "on_batch_end")]:
    setattr(_Recorder, _hook, _recording(_hook))


def test_fit_evaluate_and_predict_call_every_hook_in_keras_order_with_keras_logs():
    x, y = _blobs(n=40)
    model = _classifier()
    recorder = _Recorder()
    model.fit(x[:24], y[:24], epochs=2, batch_size=16, validation_data=(x[24:], y[24:]), validation_batch_size=16, verbose=0, callbacks=[recorder])
    assert recorder.model is model and recorder.params == {"verbose": 0, "epochs": 2, "steps": 2, "_in_fit": False}
    metrics, val = ["accuracy", "loss"], ["accuracy", "loss", "val_accuracy", "val_loss"]
    epoch = lambda e: [  # noqa: E731
        ("on_epoch_begin", e), ("on_train_batch_begin", 0), ("on_train_batch_end", 0, metrics),
        ("on_train_batch_begin", 1), ("on_train_batch_end", 1, metrics),
        ("on_test_begin",), ("on_test_batch_begin", 0), ("on_test_batch_end", 0, metrics), ("on_test_end", metrics),
        ("on_epoch_end", e, val),
    ]  # fmt: skip
    assert recorder.calls == [("on_train_begin",), *epoch(0), *epoch(1), ("on_train_end", val)]

    recorder.calls.clear()
    model.evaluate(x, y, batch_size=32, verbose=0, callbacks=[recorder])
    assert recorder.calls == [("on_test_begin",), ("on_test_batch_begin", 0), ("on_test_batch_end", 0, metrics), ("on_test_batch_begin", 1), ("on_test_batch_end", 1, metrics), ("on_test_end", metrics)]

    outputs = []
    catcher = tf.keras.callbacks.LambdaCallback(on_predict_batch_end=lambda batch, logs: outputs.append(logs["outputs"].numpy()))
    recorder.calls.clear()
    predictions = model.predict(x, batch_size=32, verbose=0, callbacks=[recorder, catcher])
    assert recorder.calls == [("on_predict_begin",), ("on_predict_batch_begin", 0), ("on_predict_batch_end", 0, ["outputs"]), ("on_predict_batch_begin", 1), ("on_predict_batch_end", 1, ["outputs"]), ("on_predict_end",)]
    np.testing.assert_array_equal(np.concatenate(outputs), predictions)


def test_a_callback_stops_training_by_setting_model_stop_training():
    x, y = _blobs()
    stopper = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batch == 2 and setattr(model, "stop_training", True))
    model = _classifier()
    batches = []
    counter = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    history = model.fit(x, y, epochs=5, batch_size=32, verbose=0, callbacks=[stopper, counter])
    assert history.epoch == [0] and batches == [0, 1, 2]
    with pytest.raises(ValueError, match="unknown hook 'on_epoch_finish'"):
        tf.keras.callbacks.LambdaCallback(on_epoch_finish=print)


# -- EarlyStopping: the epochs and restored weights Keras 3 gives for the same scripted metric ----------------
# Expected values come from running keras 3 (TensorFlow 2.21) with the same scripts and arguments.
_EARLY_STOPPING_CASES = {
    "patience_min_delta": (dict(monitor="loss", patience=2, min_delta=0.05), [1.0, 0.9, 0.95, 0.91, 0.8, 0.85, 0.86, 0.7, 0.7, 0.7], 4, None),
    "max_mode_baseline": (dict(monitor="val_score", patience=1, mode="max", baseline=0.5), [0.1, 0.2, 0.6, 0.55, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6], 4, None),
    "baseline_never_met": (dict(monitor="loss", patience=2, baseline=0.5), [1.0, 0.9, 0.8, 0.7, 0.6, 0.55, 0.52, 0.51, 0.5, 0.49], 10, None),
    "start_from_epoch": (dict(monitor="loss", patience=1, start_from_epoch=3), [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0], 5, None),
    "restore_after_stop": (dict(monitor="loss", patience=2, restore_best_weights=True), [1.0, 0.5, 0.7, 0.6, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], 4, 1),
    "restore_without_stop": (dict(monitor="loss", patience=5, restore_best_weights=True), [1.0, 0.5, 0.7, 0.6, 0.8, 0.9], 6, 1),
}


@pytest.mark.parametrize("case", sorted(_EARLY_STOPPING_CASES))
def test_early_stopping_matches_keras(case):
    arguments, values, epochs_run, restored_epoch = _EARLY_STOPPING_CASES[case]
    x, y = _blobs(n=64)
    model = _classifier(tf.keras.optimizers.SGD(0.1))
    kept = []
    script = tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: (logs.__setitem__(arguments["monitor"], values[epoch]), kept.append(model.get_weights())))
    history = model.fit(x, y, epochs=len(values), verbose=0, callbacks=[script, tf.keras.callbacks.EarlyStopping(**arguments)])
    assert len(history.epoch) == epochs_run
    expected = kept[-1 if restored_epoch is None else restored_epoch]
    for a, b in zip(model.get_weights(), expected):
        np.testing.assert_array_equal(a, b)
    if restored_epoch is not None:
        assert any(not np.array_equal(a, b) for a, b in zip(kept[-1], expected))  # restoring changed something


def test_early_stopping_prints_and_resets_between_fits(capsys):
    x, y = _blobs(n=64)
    model = _classifier()
    stopper = tf.keras.callbacks.EarlyStopping(monitor="loss", patience=0, verbose=1, restore_best_weights=True)
    assert model.fit(x, y, epochs=3, verbose=0, callbacks=[_scripted("loss", [1.0, 2.0, 3.0]), stopper]).epoch == [0, 1]
    assert "Epoch 2: early stopping" in capsys.readouterr().out
    assert model.fit(x, y, epochs=3, verbose=0, callbacks=[_scripted("loss", [5.0, 4.0, 3.0]), stopper]).epoch == [0, 1, 2]


# -- BackupAndRestore at batch granularity ---------------------------------------------------------------
def test_backup_and_restore_resumes_mid_epoch_after_the_last_backed_up_batch(tmp_path):
    x, y = _blobs()
    reference = _classifier()
    reference.fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0)

    model = _classifier()
    backup = tf.keras.callbacks.BackupAndRestore(tmp_path / "backup", save_freq=3)
    # 8 batches an epoch, a backup every 3 counted across epochs: the last one is after epoch 1's batch 6.
    with pytest.raises(_Crash):
        model.fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0, callbacks=[backup, _crash_at(1, 6)])
    trained = []
    counter = tf.keras.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: trained.append(batch))
    history = model.fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0, callbacks=[backup, counter])
    assert history.epoch == [1, 2] and trained[:3] == [7, 0, 1]
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(model.optimizer.iterations.numpy()) == int(reference.optimizer.iterations.numpy()) == 24


def test_keras_2_on_batch_hooks_still_run_from_subclasses_and_lambda_callbacks():
    class Counting(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.begun, self.ended = [], []

        def on_batch_begin(self, batch, logs=None):
            self.begun.append(batch)

        def on_batch_end(self, batch, logs=None):
            self.ended.append(sorted(logs))

    x, y = _blobs(n=64)
    counting, lambda_batches = Counting(), []
    legacy_lambda = tf.keras.callbacks.LambdaCallback(on_batch_end=lambda batch, logs: lambda_batches.append(batch))
    _classifier().fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[counting, legacy_lambda])
    assert counting.begun == [0, 1] and counting.ended == [["accuracy", "loss"]] * 2 and lambda_batches == [0, 1]
