"""A training process killed with SIGKILL mid-epoch and restarted ends with the uninterrupted run's exact weights.

Each test runs this file as a child process (see ``_child`` at the bottom): once without interruption,
once until it signals (through a file) that it is inside the second epoch, where the test kills it,
and once more to resume. Both the Keras ``fit`` with ``BackupAndRestore`` and an Estimator's
``model_dir`` are covered; the data is shuffled, so the resumed run also has to restore the random
generator to draw the same order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES, BATCH, EPOCHS = 320, 32, 3  # 10 batches an epoch
KILL_AT_BATCH = 4  # of the second epoch


def _run(job: str, workdir: Path, result: Path, ready: Path | None = None) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "EMBERFLOW_OFFLINE": "1"}
    command = [sys.executable, __file__, job, str(workdir), str(result), str(ready or "")]
    return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> None:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]


def _kill_when_ready(process: subprocess.Popen, ready: Path) -> None:
    deadline = time.monotonic() + 120
    while not ready.exists():
        if process.poll() is not None:
            raise AssertionError(f"the child ended before it was killed:\n{process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the child never reached the kill point")
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def _load(result: Path) -> tuple[list, dict]:
    with np.load(result, allow_pickle=False) as arrays:
        weights = [arrays[f"arr_{index}"] for index in range(len(arrays.files))]
    return weights, json.loads(Path(str(result) + ".json").read_text())


@pytest.mark.parametrize("job", ["keras", "keras_mid_epoch_backups", "estimator"])
def test_killed_training_resumes_to_the_same_weights(job, tmp_path):
    reference = tmp_path / "reference.npz"
    _finish(_run(job, tmp_path / "reference_run", reference))

    resumed, ready = tmp_path / "resumed.npz", tmp_path / "ready"
    _kill_when_ready(_run(job, tmp_path / "crashing_run", resumed, ready), ready)
    assert not resumed.exists()
    _finish(_run(job, tmp_path / "crashing_run", resumed))

    expected, reference_report = _load(reference)
    got, report = _load(resumed)
    assert reference_report["resumed_from"] is None
    assert report["resumed_from"] is not None and report["resumed_from"] > 0  # it did not start over
    assert len(got) == len(expected) > 0
    for index, (a, b) in enumerate(zip(got, expected)):
        assert np.array_equal(a, b), f"weight {index} differs after the resumed run"


# -- the child process -------------------------------------------------------------------------------------
def _data():
    import trainer as tf  # noqa: PLC0415

    (x, y), _ = tf.keras.datasets.mnist.load_data(source="subset")
    picks = np.random.default_rng(0).choice(len(x), SAMPLES, replace=False)
    return (x[picks] / 255.0).astype(np.float32), y[picks].astype(np.int64)


def _mlp():
    import trainer as tf  # noqa: PLC0415

    model = tf.keras.Sequential(
        [
            tf.keras.layers.Flatten(input_shape=(28, 28)),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dropout(0.2),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _keras_job(workdir: Path, ready: str, save_freq="epoch") -> tuple[list, int | None]:
    import trainer as tf  # noqa: PLC0415

    tf.keras.utils.set_random_seed(7)
    x, y = _data()
    model = _mlp()
    started = {}

    class KillPoint(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.setdefault("epoch", epoch)

        def on_train_batch_end(self, batch, logs=None):
            if ready and self._epoch == 1 and batch == KILL_AT_BATCH:
                Path(ready).write_text("inside epoch 2")
                time.sleep(120)  # the test kills the process here

        def on_epoch_end(self, epoch, logs=None):
            self._epoch = epoch + 1

        _epoch = 0

    backup = tf.keras.callbacks.BackupAndRestore(str(workdir / "backup"), save_freq=save_freq)
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, callbacks=[backup, KillPoint()], verbose=0)
    return model.get_weights(), started["epoch"] or None


def _estimator_job(workdir: Path, ready: str) -> tuple[list, int | None]:
    import trainer as tf  # noqa: PLC0415

    tf.keras.utils.set_random_seed(7)
    x, y = _data()
    config = tf.estimator.RunConfig(save_checkpoints_steps=3, tf_random_seed=7)
    estimator = tf.keras.estimator.model_to_estimator(keras_model=_mlp(), model_dir=str(workdir / "model"), config=config)
    latest = estimator.latest_checkpoint()
    resumed_from = int(tf.train.load_variable(latest, "global_step")) if latest else None

    class KillPoint(tf.estimator.SessionRunHook):
        def after_run(self, run_context, run_values):
            if ready and run_values.results["global_step"] == SAMPLES // BATCH + KILL_AT_BATCH:
                Path(ready).write_text("inside epoch 2")
                time.sleep(120)

    def input_fn():
        return tf.data.Dataset.from_tensor_slices((x.reshape(-1, 28, 28), y)).shuffle(SAMPLES).batch(BATCH).repeat()

    estimator.train(input_fn, max_steps=EPOCHS * SAMPLES // BATCH, hooks=[KillPoint()])
    names = sorted(name for name in estimator.get_variable_names() if name.startswith("model/"))
    return [estimator.get_variable_value(name) for name in names], resumed_from


def _child(job: str, workdir: str, result: str, ready: str) -> None:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if job == "keras":
        weights, resumed_from = _keras_job(workdir, ready)
    elif job == "keras_mid_epoch_backups":  # the backup at batch 2 of the second epoch resumes at batch 3
        weights, resumed_from = _keras_job(workdir, ready, save_freq=3)
    else:
        weights, resumed_from = _estimator_job(workdir, ready)
    np.savez(result, *weights)
    Path(result + ".json").write_text(json.dumps({"resumed_from": resumed_from}))


if __name__ == "__main__":
    _child(*sys.argv[1:5])
