"""Runs the benchmark suites and writes ``benchmarks/results/<suite>.json`` and ``.md``.

Usage: python -m benchmarks.run [--suite training] [--quick] [--systems emberflow,keras,pytorch]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import common  # noqa: F401 - pins threads before numpy, TensorFlow or PyTorch load

SUITES = ("training", "passes", "export", "inference", "callbacks", "web")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=SUITES, action="append", help="suite to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="one timed repeat, no accuracy runs")
    parser.add_argument("--systems", default=None, help="comma-separated systems (default: every system of the suite)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"), help="results folder")
    arguments = parser.parse_args(argv)
    for suite in arguments.suite or SUITES:
        module = __import__(f"benchmarks.{suite}", fromlist=["run"])
        options = {} if arguments.systems is None else {"systems": tuple(s.strip() for s in arguments.systems.split(",") if s.strip())}
        rows = module.run(quick=arguments.quick, log=lambda text: print(text, file=sys.stderr, flush=True), **options)
        json_path, markdown_path = common.write_results(rows, suite, Path(arguments.out))
        print(markdown_path.read_text())
        print(f"written: {json_path}, {markdown_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
