"""Inference suite: our lite runtime against LiteRT and onnxruntime on the same exported models.

Batch-1 latency is one ``set_tensor`` + ``invoke`` + ``get_tensor`` (median and p99 over many calls);
batch-256 throughput is samples per second; float32 files for all three, full-int8 files (float input and
output, as TensorFlow's converter writes by default) for the two lite interpreters. Import time, "import +
load + one inference" time and its peak RSS are medians over fresh processes, each with its packages'
bytecode already compiled, as after ``pip install`` (the checkout may run with PYTHONDONTWRITEBYTECODE).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import THREADS, Row, peer_missing

SUITE = "inference"


def _models(folder: Path) -> dict:
    """Writes the MLP and CNN as float32 lite and ONNX files and as int8 lite files (calibrated on 64 random
    inputs); returns {kind: (lite path, onnx path, int8 lite path, input shape)}."""
    from benchmarks.export import _emberflow_model  # noqa: PLC0415
    from exporter.lite import to_lite  # noqa: PLC0415
    from exporter.onnx import to_onnx  # noqa: PLC0415

    files = {}
    for kind, shape in (("mlp", (28, 28)), ("cnn", (28, 28, 1))):
        model = _emberflow_model(kind)
        lite, onnx_file, int8 = folder / f"{kind}.lite", folder / f"{kind}.onnx", folder / f"{kind}_int8.lite"
        to_lite(model, lite)
        to_onnx(model, onnx_file)
        calibration = np.random.default_rng(1).random((64, *shape), dtype=np.float32)
        to_lite(model, int8, quantize="int8", calibration=calibration)
        files[kind] = (lite, onnx_file, int8, shape)
    return files


def _interpreter_runner(interpreter_class, path, batch_shape, **options):
    interpreter = interpreter_class(model_path=str(path), **options)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], batch_shape)
    interpreter.allocate_tensors()
    input_index, output_index = detail["index"], interpreter.get_output_details()[0]["index"]

    def run(batch):
        interpreter.set_tensor(input_index, batch)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)

    return run


def _runner(system, lite, onnx_file, batch_shape):
    if system == "emberflow":
        from lite_runtime import Interpreter  # noqa: PLC0415

        return _interpreter_runner(Interpreter, lite, batch_shape)
    if system == "litert":
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

        return _interpreter_runner(Interpreter, lite, batch_shape, num_threads=THREADS)
    import onnxruntime  # noqa: PLC0415

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def _latency(run, batch, calls: int) -> tuple[float, float]:
    for _ in range(20):
        run(batch)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        run(batch)
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99) - 1] * 1e6


def _throughput(run, batch, repeats: int) -> float:
    run(batch)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run(batch)
        best = min(best, time.perf_counter() - started)
    return len(batch) / best


_IMPORTS = {"emberflow": "import lite_runtime", "litert": "from ai_edge_litert.interpreter import Interpreter", "onnxruntime": "import onnxruntime", "numpy": "import numpy"}


def _load_and_run_code(system: str, lite: Path, onnx_file: Path) -> str:
    """Python source that imports ``system``, loads the MLP file and runs one batch-1 inference."""
    if system == "onnxruntime":
        return (
            "import numpy as np, onnxruntime\n"
            f"s = onnxruntime.InferenceSession({str(onnx_file)!r}, providers=['CPUExecutionProvider'])\n"
            "s.run(None, {s.get_inputs()[0].name: np.zeros((1, 28, 28), np.float32)})"
        )
    module = "lite_runtime" if system == "emberflow" else "ai_edge_litert.interpreter"
    return (
        f"import numpy as np, {module} as m\ni = m.Interpreter(model_path={str(lite)!r}); i.allocate_tensors()\n"
        "d = i.get_input_details()[0]; i.set_tensor(d['index'], np.zeros(d['shape'], np.float32)); i.invoke()"
    )


def _fresh_processes(code: str, runs: int, bytecode: Path) -> tuple[float, float]:
    """Median (seconds, peak RSS MiB) of ``code`` over ``runs`` new interpreters, after one warm-up run that
    writes the bytecode every later run reads."""
    # Peak RSS is the kernel's VmHWM for this process image: ru_maxrss would also count the pages of the
    # forked parent (the benchmark process) from before exec.
    script = (
        "import time\nstarted = time.perf_counter()\n" + code + "\n"
        "elapsed = time.perf_counter() - started\n"
        "peak = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
        "print(elapsed, peak / 1024)"
    )
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    environment["PYTHONPYCACHEPREFIX"] = str(bytecode)
    command = [sys.executable, "-c", script]
    results = [subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout.split() for _ in range(runs + 1)]
    return statistics.median(float(r[0]) for r in results[1:]), statistics.median(float(r[1]) for r in results[1:])


def _latency_rows(case: str, system: str, runners, single, large, calls: int, repeats: int) -> list[Row]:
    median, p99 = _latency(runners[0], single, calls)
    throughput = _throughput(runners[1], large, repeats)
    return [
        Row(SUITE, f"{case} batch 1", system, "latency median", median, "us"),
        Row(SUITE, f"{case} batch 1", system, "latency p99", p99, "us"),
        Row(SUITE, f"{case} batch 256", system, "throughput", throughput, "samples/s"),
    ]


def run(quick: bool = False, systems=("emberflow", "litert", "onnxruntime"), log=print) -> list[Row]:
    calls = 200 if quick else 2000
    repeats, processes = (3, 5) if quick else (10, 30)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        bytecode = Path(folder) / "bytecode"
        files = _models(Path(folder))
        for kind, (lite, onnx_file, int8, shape) in files.items():
            rng = np.random.default_rng(0)
            single, large = rng.random((1, *shape), dtype=np.float32), rng.random((256, *shape), dtype=np.float32)
            for system in systems:
                log(f"[inference] {kind}: {system} ...")
                try:
                    runners = [_runner(system, lite, onnx_file, x.shape) for x in (single, large)]
                except ImportError as error:
                    rows.append(peer_missing(SUITE, f"{kind} float32 batch 1", system, "latency median", "us", error))
                    continue
                rows += _latency_rows(f"{kind} float32", system, runners, single, large, calls, repeats)
                if system != "onnxruntime":  # no int8 ONNX export: the int8 rows compare the two lite interpreters
                    runners = [_runner(system, int8, None, x.shape) for x in (single, large)]
                    rows += _latency_rows(f"{kind} int8", system, runners, single, large, calls // 4, max(1, repeats // 3))
            for system in systems:
                if kind != "mlp":
                    break
                try:
                    seconds, rss = _fresh_processes(_load_and_run_code(system, lite, onnx_file), processes // 3, bytecode)
                except subprocess.CalledProcessError as error:
                    rows.append(peer_missing(SUITE, "mlp load + one inference", system, "peak RSS", "MiB", error))
                    continue
                rows.append(Row(SUITE, "mlp import + load + one inference", system, "time", seconds * 1e3, "ms"))
                rows.append(Row(SUITE, "mlp load + one inference", system, "peak RSS", rss, "MiB"))
        for system in ("numpy", *systems):
            try:
                seconds, _ = _fresh_processes(_IMPORTS[system], processes, bytecode)
            except subprocess.CalledProcessError as error:
                rows.append(peer_missing(SUITE, "import in a fresh process", system, "import time", "ms", error))
                continue
            rows.append(Row(SUITE, "import in a fresh process", system, "import time", seconds * 1e3, "ms"))
    return rows
