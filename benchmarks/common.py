"""What every benchmark suite shares: result rows, thread pinning, timing, data, and the table writer."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

THREADS = int(os.environ.get("EMBERFLOW_BENCH_THREADS", "2"))
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
    os.environ.setdefault(_variable, str(THREADS))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np  # noqa: E402 - after the thread settings, which BLAS reads at load time


@dataclass
class Row:
    """One measurement: ``value`` is ``None`` when the system could not be measured (``note`` says why)."""

    suite: str
    case: str
    system: str
    metric: str
    value: float | None
    unit: str
    note: str = ""


def best_of(function, repeats: int = 3) -> float:
    """The fastest of ``repeats`` timed calls, in seconds (the least disturbed by the rest of the machine)."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return min(timings)


def mnist_subset():
    """The same real MNIST split every system trains on: (x_train, y_train), (x_test, y_test), float32 in [0, 1]."""
    import trainer as tf  # noqa: PLC0415

    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data(source="subset")
    return (x_train.astype(np.float32) / 255.0, y_train.astype(np.int64)), (x_test.astype(np.float32) / 255.0, y_test.astype(np.int64))


def peer_missing(suite: str, case: str, system: str, metric: str, unit: str, error: Exception) -> Row:
    return Row(suite, case, system, metric, None, unit, f"not measured: {type(error).__name__}: {error}")


def write_results(rows: list[Row], name: str, directory: Path) -> tuple[Path, Path]:
    """Writes ``name.json`` (one object per row, plus the machine) and ``name.md`` (a table with ratios)."""
    directory.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "threads": THREADS, "processor": platform.processor()}
    json_path = directory / f"{name}.json"
    json_path.write_text(json.dumps({"machine": machine, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    markdown_path = directory / f"{name}.md"
    markdown_path.write_text(markdown_table(rows) + "\n")
    return json_path, markdown_path


def markdown_table(rows: list[Row], reference: str = "emberflow") -> str:
    """A table per (suite, case, metric) with each system's value and emberflow's ratio to it."""
    lines = ["| suite | case | metric | system | value | unit | emberflow / system |", "|---|---|---|---|---:|---|---:|"]
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault((row.suite, row.case, row.metric), []).append(row)
    for (suite, case, metric), members in groups.items():
        ours = next((r.value for r in members if r.system == reference and r.value is not None), None)
        for row in members:
            if row.value is None:
                lines.append(f"| {suite} | {case} | {metric} | {row.system} | — | {row.unit} | {row.note} |")
                continue
            # a ratio of two differences (accuracy points gained or lost) means nothing, so none is shown
            no_ratio = ours is None or row.system == reference or row.value == 0 or row.unit == "points"
            ratio = "" if no_ratio else f"{ours / row.value:.2f}×"
            value = f"{row.value:,.0f}" if abs(row.value) >= 100 else f"{row.value:.4g}"
            lines.append(f"| {suite} | {case} | {metric} | {row.system} | {value} | {row.unit} | {ratio} |")
    return "\n".join(lines)
