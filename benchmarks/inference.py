"""Inference suite: our lite runtime against LiteRT and onnxruntime on the same exported models.

Batch-1 latency is one ``set_tensor`` + ``invoke`` + ``get_tensor`` (median and p99 over many calls);
batch-256 throughput is samples per second. Import time and peak RSS are measured in fresh processes.
"""

from __future__ import annotations

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
    """Writes the float MLP and CNN as lite and ONNX files; returns {kind: (lite path, onnx path, input shape)}."""
    from benchmarks.export import _emberflow_model  # noqa: PLC0415
    from exporter.lite import to_lite  # noqa: PLC0415
    from exporter.onnx import to_onnx  # noqa: PLC0415

    files = {}
    for kind, shape in (("mlp", (28, 28)), ("cnn", (28, 28, 1))):
        model = _emberflow_model(kind)
        lite, onnx_file = folder / f"{kind}.lite", folder / f"{kind}.onnx"
        to_lite(model, lite)
        to_onnx(model, onnx_file)
        files[kind] = (lite, onnx_file, shape)
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


def _fresh_process(system: str, code: str) -> tuple[float, float]:
    """(import seconds, peak RSS MiB) of ``code`` in a new interpreter (best of three for the time)."""
    # Peak RSS is the kernel's VmHWM for this process image: ru_maxrss would also count the pages of the
    # forked parent (the benchmark process) from before exec.
    script = (
        "import time\nstarted = time.perf_counter()\n" + code + "\n"
        "elapsed = time.perf_counter() - started\n"
        "peak = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
        "print(elapsed, peak / 1024)"
    )
    results = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split() for _ in range(3)]
    return min(float(r[0]) for r in results), min(float(r[1]) for r in results)


def run(quick: bool = False, systems=("emberflow", "litert", "onnxruntime"), log=print) -> list[Row]:
    calls = 200 if quick else 2000
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        files = _models(Path(folder))
        for kind, (lite, onnx_file, shape) in files.items():
            rng = np.random.default_rng(0)
            single, large = rng.random((1, *shape), dtype=np.float32), rng.random((256, *shape), dtype=np.float32)
            for system in systems:
                log(f"[inference] {kind}: {system} ...")
                try:
                    median, p99 = _latency(_runner(system, lite, onnx_file, single.shape), single, calls)
                    throughput = _throughput(_runner(system, lite, onnx_file, large.shape), large, 3 if quick else 10)
                except ImportError as error:
                    rows.append(peer_missing(SUITE, f"{kind} float32 batch 1", system, "latency median", "us", error))
                    continue
                rows.append(Row(SUITE, f"{kind} float32 batch 1", system, "latency median", median, "us"))
                rows.append(Row(SUITE, f"{kind} float32 batch 1", system, "latency p99", p99, "us"))
                rows.append(Row(SUITE, f"{kind} float32 batch 256", system, "throughput", throughput, "samples/s"))
            for system in systems:
                if kind != "mlp":
                    break
                code = _load_and_run_code(system, lite, onnx_file)
                try:
                    seconds, rss = _fresh_process(system, code)
                except subprocess.CalledProcessError as error:
                    rows.append(peer_missing(SUITE, "mlp load + one inference", system, "peak RSS", "MiB", error))
                    continue
                rows.append(Row(SUITE, "mlp load + one inference", system, "peak RSS", rss, "MiB"))
        for system in ("numpy", *systems):
            seconds, _ = _fresh_process(system, _IMPORTS[system])
            rows.append(Row(SUITE, "import in a fresh process", system, "import time", seconds * 1e3, "ms"))
    return rows
