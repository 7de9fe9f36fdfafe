"""``emberflow bench``: our lite runtime's latency and throughput on a file, beside the runtime a user would
pick instead (LiteRT for a lite file, onnxruntime for an ONNX file), on the same random inputs.

One timed call is ``set_tensor`` + ``invoke`` + ``get_tensor`` (onnxruntime: one ``session.run``), after a
warm-up. Peers are imported only here; one that is not installed gives a row that says so, never an error.
For the figures a performance claim rests on, see ``benchmarks/``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from exporter.errors import ExportError
from exporter.run import TensorSpec, open_exported
from exporter.verify import file_format

PROGRESS_SECONDS = 5  # a line at least this often while one system is being timed
_NAMES = {"emberflow": "emberflow lite_runtime", "litert": "LiteRT", "onnxruntime": "onnxruntime"}
_MODULES = {"emberflow": "lite_runtime", "litert": "ai_edge_litert", "onnxruntime": "onnxruntime"}
_DISTRIBUTIONS = {"emberflow": "emberflow", "litert": "ai-edge-litert", "onnxruntime": "onnxruntime"}


@dataclass
class Timing:
    """One system on the file: ``median_ms`` is ``None`` when it was not measured (``note`` says why)."""

    system: str
    version: str | None
    median_ms: float | None = None
    p99_ms: float | None = None
    samples_per_second: float | None = None
    note: str = ""


def bench_file(path, batch: int | None = None, runs: int = 100, threads: int = 1, progress=print) -> dict:
    """Times ``path`` in our lite runtime and in its peer; returns a JSON-ready dict with one row per system.

    Args:
        path: a .lite/.tflite or .onnx file.
        batch: rows per call (default: the file's fixed batch, or 1).
        runs: timed calls per system, after ``max(3, runs // 10)`` warm-up calls.
        threads: threads each runtime may use (ours: NumPy's BLAS pool, limited through threadpoolctl).
        progress: called with one line as each system starts and ends.
    """
    path = Path(path)
    if runs < 1 or threads < 1 or (batch is not None and batch < 1):
        raise ExportError(f"--runs, --threads and --batch must be at least 1 (got {runs}, {threads}, {batch})")
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    kind = file_format(path)
    primary = "emberflow" if kind == "lite" else "onnxruntime"  # the runtime the file is for
    rows, shapes = [], None
    systems = ("emberflow", "litert") if kind == "lite" else ("emberflow", "onnxruntime")
    for step, system in enumerate(systems, 1):
        if system == "emberflow" and kind == "onnx":
            rows.append(Timing(system, _version(system), note="(runs lite files: bench the model's .lite export)"))
        elif importlib.util.find_spec(_MODULES[system]) is None:
            rows.append(Timing(system, None, note="(not installed)"))
        else:
            started = time.perf_counter()
            label = f"[{step}/{len(systems)}] {_NAMES[system]}"
            # The file's own runtime failing on it means bad input (exit 2); a peer failing on a file that
            # ours runs is a finding, and its row says why.
            row, system_shapes = _measure(path, system, batch, runs, threads, system == primary, progress, label)
            rows.append(row)
            shapes = shapes or system_shapes
            progress(f"      {time.perf_counter() - started:.2f} s")
    ours = rows[0].median_ms
    return {
        "file": str(path),
        "format": kind,
        "batch": shapes[0][0] if shapes and shapes[0] else batch,
        "input_shapes": [list(shape) for shape in shapes] if shapes else None,
        "runs": runs,
        "warmup_runs": _warmup(runs),
        "threads": threads,
        "rows": [{**asdict(row), "emberflow_over_peer": _ratio(ours, row)} for row in rows],
    }


def _warmup(runs: int) -> int:
    return max(3, runs // 10)


def _ratio(ours: float | None, row: Timing) -> float | None:
    if row.system == "emberflow" or ours is None or not row.median_ms:
        return None
    return round(ours / row.median_ms, 3)


def _version(system: str) -> str | None:
    try:
        return metadata.version(_DISTRIBUTIONS[system])
    except metadata.PackageNotFoundError:
        return None


def _input_shapes(path: Path, specs: list[TensorSpec], batch: int | None) -> list[tuple]:
    """Each input's shape with the batch filled in; a fixed batch in the file wins over the default."""
    shapes = []
    for spec in specs:
        if not spec.shape:
            shapes.append(())
            continue
        fixed = spec.shape[0]
        if fixed is not None and batch is not None and batch != fixed:
            raise ExportError(f"{path}: input '{spec.name}' has its batch fixed at {fixed}; --batch {batch} cannot run")
        if any(d is None for d in spec.shape[1:]):
            raise ExportError(f"{path}: input '{spec.name}' {spec.describe()} has dynamic dimensions besides the batch")
        shapes.append((fixed or batch or 1, *spec.shape[1:]))
    return shapes


def _random_inputs(specs: list[TensorSpec], shapes: list[tuple]) -> list[np.ndarray]:
    """Random data of each input's dtype: [0, 1) floats, full-range int8/uint8, small indices."""
    rng = np.random.default_rng(0)
    arrays = []
    for spec, shape in zip(specs, shapes):
        if np.issubdtype(spec.dtype, np.floating):
            arrays.append(rng.random(shape, dtype=np.float32).astype(spec.dtype))
        elif spec.dtype == np.bool_:
            arrays.append(rng.random(shape) < 0.5)
        elif spec.dtype in (np.int8, np.uint8):
            limits = np.iinfo(spec.dtype)
            arrays.append(rng.integers(limits.min, limits.max, shape, endpoint=True, dtype=spec.dtype))
        else:
            arrays.append(rng.integers(0, 2, shape, dtype=spec.dtype))  # indices valid for any table
    return arrays


def _measure(path: Path, system: str, batch, runs: int, threads: int, primary: bool, progress, label: str):
    """Opens ``path`` in ``system`` and times it: (its row, the input shapes). A peer's failure to open or
    run the file becomes its row."""
    peer_errors = () if primary else Exception  # an empty tuple catches nothing: the primary's errors propagate
    try:
        executable = open_exported(path, system, threads)
    except peer_errors as error:
        return _failed(system, error), None
    shapes = _input_shapes(path, executable.inputs, batch)
    inputs = _random_inputs(executable.inputs, shapes)
    progress(f"{label}: {_warmup(runs)} warm-up and {runs} timed runs of batch {shapes[0][0] if shapes[0] else 1}")
    limit, note = _thread_limit(threads) if system == "emberflow" else (contextlib.nullcontext(), "")
    try:
        run = executable.runner(shapes)
        with limit:
            for _ in range(_warmup(runs)):
                run(inputs)
            times, next_report = np.empty(runs), time.perf_counter() + PROGRESS_SECONDS
            for k in range(runs):
                started = time.perf_counter()
                run(inputs)
                times[k] = time.perf_counter() - started
                if started > next_report:  # a slow model: say how far it got, outside the timed span
                    progress(f"      {k + 1}/{runs} runs")
                    next_report = started + PROGRESS_SECONDS
    except peer_errors as error:
        return _failed(system, error), shapes
    median = float(np.median(times))
    rows_per_call = shapes[0][0] if shapes and shapes[0] else 1
    return Timing(system, _version(system), round(median * 1e3, 6), round(float(np.percentile(times, 99)) * 1e3, 6),
                  round(rows_per_call / median, 1), note), shapes  # fmt: skip


def _failed(system: str, error: Exception) -> Timing:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return Timing(system, _version(system), note=f"(cannot run it: {message})")


def _thread_limit(threads: int):
    """Our runtime's threads are NumPy's BLAS pool; threadpoolctl limits it when it is installed."""
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415 - optional
    except ImportError:
        return contextlib.nullcontext(), "(BLAS threads not limited: threadpoolctl not installed)"
    return threadpool_limits(limits=threads), ""


def format_bench(report: dict) -> str:
    """The table ``emberflow bench`` prints."""
    lines = [f"{report['file']}: batch {report['batch']}, {report['runs']} runs after {report['warmup_runs']} warm-up, "
             f"{report['threads']} thread(s)"]  # fmt: skip
    header = f"{'system':<30} {'median ms':>10} {'p99 ms':>10} {'samples/s':>12} {'emberflow/peer':>15}"
    lines += [header, "-" * len(header)]
    for row in report["rows"]:
        name = f"{_NAMES[row['system']]} {row['version'] or ''}".strip()
        if row["median_ms"] is None:
            lines.append(f"{name:<30} {row['note']}")
            continue
        ratio = "—" if row["emberflow_over_peer"] is None else f"{row['emberflow_over_peer']:.2f}"
        lines.append(f"{name:<30} {row['median_ms']:>10.4f} {row['p99_ms']:>10.4f} {row['samples_per_second']:>12,.0f} "
                     f"{ratio:>15}  {row['note']}".rstrip())  # fmt: skip
    lines.append("emberflow/peer: our median latency over the peer's (above 1: the peer is faster)")
    return "\n".join(lines)
