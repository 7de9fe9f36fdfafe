"""Callbacks suite: what every Keras callback switched on costs a ``fit`` epoch of the MNIST MLP.

Two identical models train on the same real MNIST images, batch 32, 1,000 validation images: an epoch
of MNIST's size (the 4,000-image offline subset repeated to 60,000 images, so per-step work is the
chapter's) and, as a harsher second case, an epoch of the bare 4,000 images, where the callbacks'
per-epoch work (three saves, histograms, images) weighs fifteen times more. One model has no callbacks, one with all of them (CSVLogger, EarlyStopping, LearningRateScheduler,
ReduceLROnPlateau, two ModelCheckpoints, TerminateOnNaN, BackupAndRestore, LambdaCallback, and
TensorBoard with weight histograms and images every epoch and batch scalars every 25 batches). Their
epochs alternate in one process, so both see the same machine; the medians are compared, and so is the
time measured inside the callbacks' hooks, which a busy machine disturbs far less. Each timed
``fit`` is one epoch, so the callbacks' once-per-fit work (opening event files, tracing the graph for
TensorBoard) is charged to that epoch: the worst case. The goal is at most 10% overhead.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Row, mnist_subset

SUITE = "callbacks"
MNIST_EPOCH = 60_000  # images in one epoch of the full MNIST training set


def _model():
    import trainer as tf  # noqa: PLC0415

    model = tf.keras.Sequential(
        [tf.keras.Input(shape=(28, 28)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(128, activation="relu"), tf.keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def all_callbacks(folder: Path) -> list:
    """One of every callback, configured as a user who wants everything would."""
    import trainer as tf  # noqa: PLC0415

    callbacks = tf.keras.callbacks
    return [
        callbacks.CSVLogger(folder / "training.csv", append=True),
        callbacks.EarlyStopping(monitor="val_loss", patience=100, restore_best_weights=True),
        callbacks.LearningRateScheduler(lambda epoch, learning_rate: learning_rate),
        callbacks.ReduceLROnPlateau(monitor="val_loss", patience=100),
        callbacks.ModelCheckpoint(folder / "epoch-{epoch:02d}.weights.ember", save_weights_only=True),
        callbacks.ModelCheckpoint(folder / "best.ember", save_best_only=True),
        callbacks.TerminateOnNaN(),
        callbacks.BackupAndRestore(folder / "backup"),
        callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: None, on_epoch_end=lambda epoch, logs: None),
        callbacks.TensorBoard(folder / "logs", histogram_freq=1, write_images=True, update_freq=25),
    ]


def _timed(callbacks: list, clock: dict) -> list:
    """Wraps every hook the callbacks override so that the wall and CPU seconds spent inside add up in ``clock``."""
    from trainer.keras.callbacks.base import _HOOKS, _overrides  # noqa: PLC0415

    def wrap(method):
        def timed(*args):
            wall, cpu = time.perf_counter(), time.process_time()
            method(*args)
            clock["wall"] += time.perf_counter() - wall
            clock["cpu"] += time.process_time() - cpu

        return timed

    for callback in callbacks:
        for hook in [hook for hook in _HOOKS if _overrides(callback, hook)]:
            setattr(callback, hook, wrap(getattr(callback, hook)))
    return callbacks


def run(quick: bool = False, systems=("emberflow",), log=print) -> list[Row]:
    del systems  # one system: emberflow against itself
    (x_train, y_train), validation = mnist_subset()
    repeat = -(-MNIST_EPOCH // len(x_train))
    full = (np.tile(x_train, (repeat, 1, 1))[:MNIST_EPOCH], np.tile(y_train, repeat)[:MNIST_EPOCH])
    rows = _measure("mnist mlp fit, 1 epoch of 60,000 images, batch 32", full, validation, 3 if quick else 7, log)
    rows += _measure("mnist mlp fit, 1 epoch of 4,000 images, batch 32", (x_train, y_train), validation, 3 if quick else 9, log)
    return rows


def _measure(case: str, train, validation, repeats: int, log) -> list[Row]:
    (x_train, y_train), (x_test, y_test) = train, validation
    bare, watched = _model(), _model()
    timings: dict[tuple[str, str], list[float]] = {}
    clock = {"wall": 0.0, "cpu": 0.0}
    with tempfile.TemporaryDirectory(prefix="emberflow-callbacks-bench-") as folder:
        callbacks = _timed(all_callbacks(Path(folder)), clock)
        arguments = {"batch_size": 32, "epochs": 1, "verbose": 0, "validation_data": (x_test, y_test)}
        bare.fit(x_train, y_train, **arguments)  # warm-up: builds, traces, allocates
        watched.fit(x_train, y_train, callbacks=callbacks, **arguments)
        for repeat in range(repeats):
            for name, model, extra in (("bare", bare, []), ("callbacks", watched, callbacks)):
                clock.update(wall=0.0, cpu=0.0)
                wall, cpu = time.perf_counter(), time.process_time()
                model.fit(x_train, y_train, callbacks=extra, **arguments)
                timings.setdefault((name, "wall"), []).append(time.perf_counter() - wall)
                timings.setdefault((name, "cpu"), []).append(time.process_time() - cpu)
            timings.setdefault(("inside", "wall"), []).append(clock["wall"])
            timings.setdefault(("inside", "cpu"), []).append(clock["cpu"])
            log(
                f"[callbacks] {len(x_train):,} images, repeat {repeat + 1}/{repeats}: wall bare {timings['bare', 'wall'][-1]:.3f} s, all callbacks "
                f"{timings['callbacks', 'wall'][-1]:.3f} s (inside the hooks {clock['wall']:.3f} s); CPU bare "
                f"{timings['bare', 'cpu'][-1]:.3f} s, all callbacks {timings['callbacks', 'cpu'][-1]:.3f} s (inside {clock['cpu']:.3f} s)"
            )
    median = {key: statistics.median(values) for key, values in timings.items()}
    note = f"median of {repeats} interleaved epochs"
    rows = []
    for kind, label in (("wall", "wall"), ("cpu", "CPU (this process; less disturbed by a busy machine)")):
        bare_time, watched_time, inside = median["bare", kind], median["callbacks", kind], median["inside", kind]
        overhead, inside_share = 100.0 * (watched_time / bare_time - 1.0), 100.0 * inside / bare_time
        rows += [
            Row(SUITE, case, "emberflow", f"fit epoch {kind} time", watched_time, "s", f"all callbacks; {label}; {note}"),
            Row(SUITE, case, "emberflow-no-callbacks", f"fit epoch {kind} time", bare_time, "s", f"no callbacks; {label}; {note}"),
            Row(SUITE, case, "emberflow", f"overhead, {kind} time", overhead, "%", _verdict(overhead)),
            Row(SUITE, case, "emberflow", f"{kind} time inside the hooks / bare epoch", inside_share, "%", f"{inside:.3f} s an epoch; {_verdict(inside_share)}"),
        ]
    return rows


def _verdict(percent: float) -> str:
    return "within the 10% goal" if percent <= 10.0 else "over the 10% goal"
