"""``TensorBoard``: epoch and batch scalars and weight histograms as TensorBoard event files."""

from __future__ import annotations

import os
import time

from trainer.keras.callbacks.base import Callback
from trainer.keras.callbacks.learning_rate import get_learning_rate
from trainer.keras.saving.registration import keras_serializable


@keras_serializable("callbacks")
class TensorBoard(Callback):
    """Writes what ``fit`` logs to ``log_dir/train`` and ``log_dir/validation`` for ``tensorboard --logdir``.

    Tags follow Keras: ``epoch_<metric>`` at step = epoch (from 0) for every epoch, with ``val_`` metrics
    written without the prefix to ``validation/``; ``epoch_learning_rate`` and ``epoch_time`` (seconds)
    in ``train/``; ``batch_<metric>`` every ``update_freq`` batches (step = batches trained so far) when
    ``update_freq`` is an int; a histogram of every weight (tag: the variable's name) every
    ``histogram_freq`` epochs.

    Args:
        log_dir: the folder for the run's event files.
        histogram_freq: write weight histograms every this many epochs (0: never).
        write_graph: accepted for Keras compatibility; emberflow's graphs are not TensorFlow GraphDefs, so
            no graph is written.
        update_freq: "epoch", or an int N to also write batch-level scalars every N batches.

    Example:
        >>> model.fit(x, y, epochs=5, validation_split=0.2, callbacks=[tf.keras.callbacks.TensorBoard("logs/run1")])
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False, write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive int, got {update_freq!r}")
        if profile_batch or embeddings_freq:
            raise NotImplementedError("TensorBoard profiling and embeddings are not supported by emberflow; use profile_batch=0, embeddings_freq=0")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq, self.write_graph, self.update_freq = histogram_freq, write_graph, update_freq
        self.write_images, self.write_steps_per_second = write_images, write_steps_per_second
        self._writers = {}
        self._global_train_batch = 0
        self._epoch_start = None

    def _writer(self, name):
        from trainer import summary  # noqa: PLC0415 - tf.summary loads only when this callback is used

        if name not in self._writers:
            self._writers[name] = summary.create_file_writer(os.path.join(self.log_dir, name))
        return self._writers[name]

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0
        self._writer("train")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch_batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self._global_train_batch += 1
        self._epoch_batches = batch + 1
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq:
            return
        from trainer import summary  # noqa: PLC0415

        with self._writer("train").as_default(step=self._global_train_batch):
            for name, value in (logs or {}).items():
                summary.scalar(f"batch_{name}", value)

    def on_epoch_end(self, epoch, logs=None):
        from trainer import summary  # noqa: PLC0415

        logs = dict(logs or {})
        elapsed = time.perf_counter() - self._epoch_start if self._epoch_start is not None else None
        if "learning_rate" not in logs and getattr(self.model, "optimizer", None) is not None:
            logs["learning_rate"] = get_learning_rate(self.model)
        train = {name: value for name, value in logs.items() if not name.startswith("val_")}
        validation = {name[len("val_"):]: value for name, value in logs.items() if name.startswith("val_")}
        with self._writer("train").as_default(step=epoch):
            for name, value in train.items():
                summary.scalar(f"epoch_{name}", value)
            if elapsed is not None:
                summary.scalar("epoch_time", elapsed)
                if self.write_steps_per_second and elapsed > 0:
                    summary.scalar("epoch_steps_per_second", self._epoch_batches / elapsed)
            if self.histogram_freq and epoch % self.histogram_freq == 0:
                for weight in self.model.weights:
                    summary.histogram(weight.name.split(":")[0], weight.numpy())
        if validation:
            with self._writer("validation").as_default(step=epoch):
                for name, value in validation.items():
                    summary.scalar(f"epoch_{name}", value)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
