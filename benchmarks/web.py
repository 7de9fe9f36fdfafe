"""Web suite: our JS runtime against onnxruntime-web (WebAssembly, one thread) in one headless Chromium.

The same MNIST MLP and CNN as the inference suite (lite file for us, ONNX for onnxruntime-web), served
from 127.0.0.1, each measurement in a fresh browser context (nothing cached), the two runtimes taking
turns (seven pages each; rows give medians): per-inference latency at batch 1, cold start (import the
runtime while fetching the model, load it, first inference), and the download a page pays for the
runtime plus the model, gzipped; and where the cold start goes (rows "cold start: ..."): importing the
runtime and fetching the model (side by side, each from the start), loading the model once both are
there (our parse; onnxruntime-web's session, WebAssembly included), the first inference (ours plans
the model then). Both runtimes' outputs are checked against our Python lite runtime on
the same real MNIST image.

onnxruntime-web comes from npm (``npm install`` at the repository root: a devDependency in
``package.json``); without it, or without Chromium, the rows say so instead of giving numbers.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import Row, mnist_subset, peer_missing

SUITE = "web"
ROOT = Path(__file__).resolve().parents[1]
BENCH_PAGE = Path(__file__).with_name("web_bench.js")
ORT_DIST = Path(os.environ.get("EMBERFLOW_NODE_MODULES", ROOT / "node_modules")) / "onnxruntime-web" / "dist"
# What a page using onnxruntime-web's WebAssembly build downloads besides the model.
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
OUR_FILES = ("emberflow-lite.js",)
CHECK_TOLERANCE = 1e-4
# Fresh pages per system and model, the systems taking turns (ours, theirs, ours, ...) so that a change of
# load on a shared machine hits both; each row gives the median over a system's pages.
ROUNDS = 7


def _gzipped_bytes(paths) -> int:
    return sum(len(gzip.compress(Path(path).read_bytes(), compresslevel=9)) for path in paths)


def _prepare_site(folder: Path, systems) -> dict:
    """Writes the models, the runtimes, the bench page and one real MNIST image into ``folder``.

    Returns ``{kind: (input shape, our Python runtime's output on that image)}``.
    """
    from benchmarks.inference import _models  # noqa: PLC0415
    from lite_runtime import Interpreter  # noqa: PLC0415
    from web_export.bundle import PACKAGE  # noqa: PLC0415

    _, (x_test, _) = mnist_subset()
    image = x_test[0]
    (folder / "input.json").write_text(json.dumps(image.ravel().tolist()))
    (folder / "bench.html").write_text(
        '<!doctype html><meta charset="utf-8"><script type="module" src="bench.js"></script>\n'
    )
    shutil.copy(BENCH_PAGE, folder / "bench.js")
    for name in OUR_FILES:
        shutil.copy(PACKAGE / "js" / name, folder / name)
    if "onnxruntime-web" in systems and ORT_DIST.is_dir():
        for name in ORT_FILES:
            shutil.copy(ORT_DIST / name, folder / name)
    cases = {}
    for kind, (lite, *_other_files, shape) in _models(folder).items():  # (lite, onnx, int8 lite, shape)
        expected = Interpreter(model_path=str(lite)).run([image.reshape(1, *shape)])[0][0]
        cases[kind] = ((1, *shape), expected)
    return cases


def _measure(browser, url: str, system: str, kind: str, shape, seconds: float) -> dict:
    context = browser.new_context()
    try:
        page = context.new_page()
        query = f"system={system}&model={kind}&shape={','.join(map(str, shape))}&seconds={seconds}"
        page.goto(f"{url}bench.html?{query}")
        return page.evaluate("() => window.benchmark")
    finally:
        context.close()


def _warm_up(browser, url: str) -> None:
    """Opens and closes one page that no row counts: the browser's first page pays for starting its network
    and renderer processes, which would otherwise land on whichever system's page comes first."""
    context = browser.new_context()
    try:
        context.new_page().goto(f"{url}input.json")
    finally:
        context.close()


def _download_row(folder: Path, system: str, kind: str) -> Row:
    case = f"{kind} float32 batch 1"
    if system == "emberflow":
        files = [folder / name for name in OUR_FILES] + [folder / f"{kind}.lite"]
    else:
        files = [folder / name for name in ORT_FILES] + [folder / f"{kind}.onnx"]
    parts = ", ".join(f"{path.name} {_gzipped_bytes([path]) / 1024:.1f}" for path in files)
    return Row(
        SUITE,
        case,
        system,
        "download (gzip)",
        _gzipped_bytes(files) / 1024,
        "KiB",
        f"runtime + model, KiB gzipped: {parts}",
    )


def _pages(browser, url: str, systems, kind: str, shape, seconds: float) -> dict:
    """``ROUNDS`` pages of each system in turn: {system: [page result, ...], or the error a page raised}."""
    from playwright.sync_api import Error as PageError  # noqa: PLC0415

    results = {system: [] for system in systems}
    for _ in range(ROUNDS):
        for system in systems:
            if isinstance(results[system], list):
                try:
                    results[system].append(_measure(browser, url, system, kind, shape, seconds))
                except PageError as error:  # the page threw or timed out: a row that says why, not a number
                    results[system] = error
    return results


# The cold start's phases from a page's marks (ms from the start): import and fetch overlap, so each counts
# from the start; load starts once both are done.
PHASES = {
    "import runtime": lambda page: page["marks"]["import"],
    "fetch model": lambda page: page["marks"]["fetch"],
    "load model": lambda page: page["marks"]["load"] - max(page["marks"]["import"], page["marks"]["fetch"]),
    "first run": lambda page: page["coldStartMs"] - page["marks"]["load"],
}


def _system_rows(folder: Path, system: str, kind: str, expected, pages) -> list[Row]:
    """The rows of one system on one model: download size, then latency, cold start (and its phases) and the
    output check."""
    name = f"{kind} float32 batch 1"
    rows = [_download_row(folder, system, kind)]
    if isinstance(pages, Exception):
        return rows + [peer_missing(SUITE, name, system, "latency median", "us", pages)]
    difference = max(float(np.max(np.abs(np.asarray(page["output"], np.float32) - expected))) for page in pages)
    agreement = "WRONG OUTPUT: " if difference > CHECK_TOLERANCE else ""
    note = f"{agreement}max difference from the Python lite runtime {difference:.2g}; median of {len(pages)} pages"
    latencies, cold_starts = [page["medianMs"] * 1e3 for page in pages], [page["coldStartMs"] for page in pages]
    calls = sum(page["calls"] for page in pages)
    latency_note = f"{note}: {', '.join(f'{us:.0f}' for us in latencies)} us; {calls} timed calls"
    cold_note = f"{note}: {', '.join(f'{ms:.0f}' for ms in cold_starts)} ms"
    cold = "cold start (import + load + first run)"
    phases = [
        Row(SUITE, name, system, f"cold start: {phase}", float(np.median([of(page) for page in pages])), "ms",
            f"median of {len(pages)} pages: {', '.join(f'{of(page):.1f}' for page in pages)} ms")
        for phase, of in PHASES.items()
    ]
    return rows + [
        Row(SUITE, name, system, "latency median", float(np.median(latencies)), "us", latency_note),
        Row(SUITE, name, system, cold, float(np.median(cold_starts)), "ms", cold_note),
        *phases,
    ]


def run(quick: bool = False, systems=("emberflow", "onnxruntime-web"), log=print) -> list[Row]:
    from web_export.testing import chromium, chromium_missing, serve  # noqa: PLC0415

    missing_browser = chromium_missing()
    if missing_browser is not None:
        return [
            peer_missing(SUITE, "mlp float32 batch 1", system, "latency median", "us", RuntimeError(missing_browser))
            for system in systems
        ]
    if "onnxruntime-web" in systems and not ORT_DIST.is_dir():
        log(f"[web] {ORT_DIST} is missing: run `npm install` at the repository root for onnxruntime-web")
    seconds = 0.3 if quick else 1.0
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        cases = _prepare_site(folder, systems)
        with serve(folder) as url, chromium() as browser:
            _warm_up(browser, url)
            for kind, (shape, expected) in cases.items():
                present = [system for system in systems if system != "onnxruntime-web" or ORT_DIST.is_dir()]
                for system in systems:
                    if system not in present:
                        missing = FileNotFoundError(f"{ORT_DIST}: run `npm install` at the repository root")
                        rows.append(
                            peer_missing(SUITE, f"{kind} float32 batch 1", system, "latency median", "us", missing)
                        )
                log(f"[web] {kind}: {', '.join(present)}, {ROUNDS} pages each ...")
                pages = _pages(browser, url, present, kind, shape, seconds)
                for system in present:
                    rows += _system_rows(folder, system, kind, expected, pages[system])
    return rows
