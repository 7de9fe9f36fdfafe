"""``CSVLogger``: one CSV row of logs per epoch."""

from __future__ import annotations

import csv
import os

from trainer.keras.callbacks.base import Callback
from trainer.keras.saving.registration import keras_serializable


@keras_serializable("callbacks")
class CSVLogger(Callback):
    """Streams the epoch logs to a CSV file: a header ``epoch,<sorted metric names>``, then one row per epoch.

    As in Keras 3, when the first epoch has no validation logs, ``val_`` columns are added and hold "NA".

    Args:
        filename: the CSV file.
        separator: the field separator.
        append: continue an existing file (no second header) instead of overwriting it.

    Example:
        >>> model.fit(x, y, epochs=3, callbacks=[tf.keras.callbacks.CSVLogger("training.csv")])
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.writer = self.keys = self.csv_file = None
        self.append_header = True

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self.append_header = not exists
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in on_train_end
        self.writer, self.keys = None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            # With validation_freq > 1 the first epoch has no val_ logs; Keras 3 adds their columns anyway.
            if not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch", *self.keys], delimiter=self.sep)
            if self.append_header:
                self.writer.writeheader()
        # An epoch without validation (validation_freq > 1) still gets a full row.
        row = {"epoch": epoch, **{key: _cell(logs.get(key, "NA")) for key in self.keys}}
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
        self.writer = self.csv_file = None


def _cell(value):
    if isinstance(value, (list, tuple)) or (hasattr(value, "ndim") and getattr(value, "ndim", 0) > 0):
        return f'"[{", ".join(str(v) for v in value)}]"'
    return value
