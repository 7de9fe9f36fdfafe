"""``TensorBoard``: epoch and batch scalars, weight histograms and images, and the model graph as event files."""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

from trainer.keras.callbacks.base import Callback
from trainer.keras.callbacks.learning_rate import get_learning_rate
from trainer.keras.saving.registration import keras_serializable


@keras_serializable("callbacks")
class TensorBoard(Callback):
    """Writes what ``fit`` logs to ``log_dir/train`` and ``log_dir/validation`` for ``tensorboard --logdir``.

    Tags follow Keras 3: ``epoch_<metric>`` at step = epoch (from 0), with ``val_`` metrics written without
    the prefix to ``validation/``; ``epoch_learning_rate`` and ``epoch_time`` (seconds) in ``train/``;
    ``batch_<metric>`` every ``update_freq`` batches (step = batches trained so far); after each
    validation, ``evaluation_<metric>_vs_iterations`` in ``validation/`` at step = optimizer iterations;
    ``<weight>/histogram`` (and with ``write_images``, ``<weight>/image``) every ``histogram_freq`` epochs.

    Args:
        log_dir: the folder for the run's event files.
        histogram_freq: write weight histograms every this many epochs (0: never).
        write_graph: write the model's inference graph (our traced graph as a GraphDef) for the Graphs tab.
        write_images: with ``histogram_freq``, also write each weight as a grayscale image, scaled to
            its own [min, max] (Keras passes raw values, which TensorBoard clips to [0, 1]).
        write_steps_per_second: also write ``epoch_steps_per_second`` (and ``batch_steps_per_second``).
        update_freq: "epoch", "batch" (= 1), or an int N to also write batch-level scalars every N batches.
        profile_batch: accepted for compatibility and ignored with a warning: emberflow has no profiler.

    Example:
        >>> model.fit(x, y, epochs=5, validation_split=0.2, callbacks=[tf.keras.callbacks.TensorBoard("logs/run1")])
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False, write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and not (isinstance(update_freq, int) and not isinstance(update_freq, bool) and update_freq > 0):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive int, got {update_freq!r}")
        if profile_batch:
            warnings.warn(f"TensorBoard: profile_batch={profile_batch!r} is ignored; emberflow has no profiler (use benchmarks/ for timings)", stacklevel=2)
        if embeddings_freq:
            raise NotImplementedError("TensorBoard embeddings are not supported by emberflow; use embeddings_freq=0")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq, self.write_graph, self.update_freq = histogram_freq, write_graph, update_freq
        self.write_images, self.write_steps_per_second = write_images, write_steps_per_second
        self._writers = {}
        self._training = False  # inside fit: its writers stay open until on_train_end
        self._traced = None  # (key, graph): the inference graph last written, reused by a later fit of the same model
        self._global_train_batch = 0
        self._epoch_start = self._batch_start = None
        self._epoch_batches = 0

    def _writer(self, name):
        from trainer import summary  # noqa: PLC0415 - tf.summary loads only when this callback is used

        if name not in self._writers:
            self._writers[name] = summary.create_file_writer(os.path.join(self.log_dir, name))
        return self._writers[name]

    def on_train_begin(self, logs=None):
        self._training = True
        self._global_train_batch = 0
        self._writer("train")
        if self.write_graph:
            self._write_model_graph()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch_batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        if self.write_steps_per_second:
            self._batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # Runs every batch: keep it to counters unless this batch is one that gets written.
        self._global_train_batch += 1
        self._epoch_batches = batch + 1
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq:
            return
        from trainer import summary  # noqa: PLC0415

        # The batch's time ends here, before any writing, as in Keras: steps per second is the training's speed.
        batch_seconds = time.perf_counter() - self._batch_start if self._batch_start is not None else None
        with self._writer("train").as_default(step=self._global_train_batch):
            if self.write_steps_per_second and batch_seconds is not None:
                summary.scalar("batch_steps_per_second", 1.0 / max(batch_seconds, 1e-9))
            for name, value in (logs or {}).items():
                summary.scalar(f"batch_{name}", value)

    def on_test_end(self, logs=None):
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        if iterations is None or not logs:
            return
        from trainer import summary  # noqa: PLC0415

        with self._writer("validation").as_default(step=iterations):
            for name, value in logs.items():
                summary.scalar(f"evaluation_{name}_vs_iterations", value)
        if not self._training:  # evaluate() outside fit: no on_train_end will close this writer
            self._writers.pop("validation").close()

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
                self._write_weights()
        if validation:
            with self._writer("validation").as_default(step=epoch):
                for name, value in validation.items():
                    summary.scalar(f"epoch_{name}", value)

    def on_train_end(self, logs=None):
        self._training = False
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def _write_weights(self):
        from trainer import summary  # noqa: PLC0415

        for weight in self.model.weights:
            name = weight.name.split(":")[0]
            values = weight.numpy()
            summary.histogram(f"{name}/histogram", values)
            if self.write_images:
                picture = _weight_image(values)
                if picture is not None:
                    summary.image(f"{name}/image", picture)

    def _write_model_graph(self):
        """The model traced for inference, as Keras's Graphs tab shows it (batch dimension unknown)."""
        from trainer import nest, summary  # noqa: PLC0415
        from trainer.graph.function import Function  # noqa: PLC0415
        from trainer.shapes import TensorSpec  # noqa: PLC0415

        def spec(tensor):
            return TensorSpec([None, *tensor.shape.as_list()[1:]], tensor.dtype)

        structure = getattr(self.model, "_inputs_structure", None)  # a functional model: its inputs' nest
        inputs = getattr(self.model, "inputs", None)
        if structure is not None:
            signature = nest.map_structure(spec, structure)
        elif inputs:
            signature = spec(inputs[0])
        elif getattr(self.model, "_build_input_shape", None) is not None:
            signature = TensorSpec([None, *self.model._build_input_shape[1:]], "float32")
        else:
            warnings.warn(f"TensorBoard: model '{self.model.name}' has no known input shape, so no graph is written", stacklevel=2)
            return
        # The graph holds the weights by reference, so a later fit of the same model (same weights, same
        # inputs) writes the graph traced before instead of tracing the model again.
        key = (id(self.model), tuple(id(weight) for weight in self.model.weights), signature)
        if self._traced is not None and self._traced[0] == key:
            graph = self._traced[1]
        else:
            graph = Function(self.model, autograph=False, name=self.model.name).get_concrete_function(signature).graph
            self._traced = (key, graph)
        with self._writer("train").as_default():
            summary.graph(graph)


def _weight_image(values):
    """A weight as (k, height, width, 1) floats in [0, 1], laid out as Keras does; None when it has no 2-D view."""
    values = np.squeeze(values)
    if values.ndim == 1:  # a bias: one column, as Keras draws it
        values = values.reshape(1, -1, 1, 1)
    elif values.ndim == 2:  # a Dense kernel, wide side horizontal
        values = (values.T if values.shape[0] > values.shape[1] else values)[None, :, :, None]
    elif values.ndim == 3:  # a conv kernel: one picture per output channel
        values = np.transpose(values, (2, 0, 1))[..., None]
    else:
        return None
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values, dtype=np.float32)
