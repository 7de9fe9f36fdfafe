"""Export suite: file sizes and export times, ours against TensorFlow's converter and torch.onnx.

The same architecture is built in emberflow, Keras and PyTorch with identical weights (copied from the
emberflow model, re-laid-out), so the files hold the same numbers; sizes are bytes on disk, times the
best of a few exports.
"""

from __future__ import annotations

import os
import tempfile
import time

from benchmarks.common import Row, peer_missing

SUITE = "export"


def _emberflow_model(kind: str):
    import trainer as tf  # noqa: PLC0415

    layers = tf.keras.layers
    tf.keras.utils.set_random_seed(0)
    if kind == "mlp":
        model = tf.keras.Sequential([tf.keras.Input(shape=(28, 28)), layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10, activation="softmax")])
    else:
        model = tf.keras.Sequential(
            [
                tf.keras.Input(shape=(28, 28, 1)),
                layers.Conv2D(32, (3, 3), activation="relu"),
                layers.MaxPooling2D((2, 2)),
                layers.Conv2D(64, (3, 3), activation="relu"),
                layers.MaxPooling2D((2, 2)),
                layers.Flatten(),
                layers.Dense(10, activation="softmax"),
            ]
        )
    return model


def _keras_twin(model, kind: str):
    import tensorflow as tf  # noqa: PLC0415

    layers = tf.keras.layers
    if kind == "mlp":
        twin = tf.keras.Sequential([tf.keras.Input(shape=(28, 28)), layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10, activation="softmax")])
    else:
        twin = tf.keras.Sequential(
            [
                tf.keras.Input(shape=(28, 28, 1)),
                layers.Conv2D(32, (3, 3), activation="relu"),
                layers.MaxPooling2D((2, 2)),
                layers.Conv2D(64, (3, 3), activation="relu"),
                layers.MaxPooling2D((2, 2)),
                layers.Flatten(),
                layers.Dense(10, activation="softmax"),
            ]
        )
    twin.set_weights(model.get_weights())  # same layouts: Keras kernels are what emberflow stores
    return twin


def _torch_twin(model, kind: str):
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    weights = model.get_weights()
    if kind == "mlp":
        twin = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10), nn.Softmax(-1))
        linears = [twin[1], twin[3]]
        convs = []
    else:
        twin = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(1600, 10), nn.Softmax(-1),
        )  # fmt: skip
        convs, linears = [twin[0], twin[3]], [twin[7]]
    arrays = iter(weights)
    with torch.no_grad():
        for conv in convs:
            conv.weight.copy_(torch.from_numpy(next(arrays).transpose(3, 2, 0, 1).copy()))
            conv.bias.copy_(torch.from_numpy(next(arrays)))
        for linear in linears:
            linear.weight.copy_(torch.from_numpy(next(arrays).T.copy()))
            linear.bias.copy_(torch.from_numpy(next(arrays)))
    return twin.eval()


def _timed_export(export, repeats: int):
    """(bytes, best seconds) of ``export(path)`` run ``repeats`` times into a temporary file."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model")
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            export(path)
            best = min(best, time.perf_counter() - started)
        return os.path.getsize(path), best


def _emberflow_lite(model):
    from exporter.lite import to_lite  # noqa: PLC0415

    return lambda path: to_lite(model, path)


def _emberflow_onnx(model):
    from exporter.onnx import to_onnx  # noqa: PLC0415

    return lambda path: to_onnx(model, path)


def _tensorflow_lite(twin):
    import tensorflow as tf  # noqa: PLC0415

    def export(path):
        data = tf.lite.TFLiteConverter.from_keras_model(twin).convert()
        with open(path, "wb") as handle:
            handle.write(data)

    return export


def _torch_onnx(twin, kind: str):
    import torch  # noqa: PLC0415

    example = torch.zeros((1, 28, 28) if kind == "mlp" else (1, 1, 28, 28))

    def export(path):
        torch.onnx.export(twin, (example,), path, input_names=["input"], output_names=["output"], dynamic_axes={"input": {0: "batch"}}, dynamo=False)

    return export


def run(quick: bool = False, systems=("emberflow", "tensorflow", "pytorch"), log=print) -> list[Row]:
    repeats = 1 if quick else 3
    rows: list[Row] = []
    for kind in ("mlp", "cnn"):
        model = _emberflow_model(kind)
        exports = [("lite", "emberflow", lambda: _emberflow_lite(model)), ("onnx", "emberflow", lambda: _emberflow_onnx(model))]
        exports += [("lite", "tensorflow", lambda: _tensorflow_lite(_keras_twin(model, kind))), ("onnx", "pytorch", lambda: _torch_onnx(_torch_twin(model, kind), kind))]
        for file_format, system, make in exports:
            if system not in systems:
                continue
            case = f"{kind} float32 {file_format}"
            log(f"[export] {case}: {system} ...")
            try:
                size, seconds = _timed_export(make(), repeats)
            except ImportError as error:
                rows.append(peer_missing(SUITE, case, system, "file size", "bytes", error))
                continue
            rows.append(Row(SUITE, case, system, "file size", float(size), "bytes"))
            rows.append(Row(SUITE, case, system, "export time", seconds * 1e3, "ms"))
    return rows
