"""samples/callbacks_tour.py: one short training leaves every callback's files where it says they are."""

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_tour_leaves_each_callbacks_files_and_prints_the_tensorboard_line(tmp_path):
    out = tmp_path / "tour"
    result = subprocess.run(
        [sys.executable, str(ROOT / "samples" / "callbacks_tour.py"), "--subset", "--epochs", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    assert f"To look at the logs: tensorboard --logdir {out / 'logs'}" in text
    assert float(re.search(r"Test accuracy: ([0-9.]+)", text).group(1)) > 0.8
    assert "[LambdaCallback] epoch 2" in text and "LearningRateScheduler setting learning rate" in text
    with open(out / "training.csv", newline="") as file:
        assert [row["epoch"] for row in csv.DictReader(file)] == ["0", "1"]
    assert len(list((out / "checkpoints").glob("epoch-0[12]-*.weights.ember"))) == 2
    assert (out / "best.ember").stat().st_size > 0 and not any((out / "backup").iterdir())
    if "not drawn" not in text:
        assert (out / "training_curves.png").read_bytes().startswith(b"\x89PNG")

    accumulator_module = pytest.importorskip("tensorboard.backend.event_processing.plugin_event_accumulator")
    tags = {}
    for run in ("train", "validation", "test"):
        accumulator = accumulator_module.EventAccumulator(str(out / "logs" / run))
        accumulator.Reload()
        tags[run] = set(accumulator.Tags()["tensors"])
    assert {"epoch_loss", "epoch_learning_rate", "batch_loss", "dense/kernel/histogram", "dense/kernel/image"} <= tags["train"]
    assert {"epoch_loss", "epoch_accuracy"} <= tags["validation"]
    assert tags["test"] == {"test_digits", "result", "test_accuracy"}
