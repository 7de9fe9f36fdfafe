"""The ``emberflow`` command line (exit codes: 0 success, 1 a verification failed, 2 bad usage or input)."""

from __future__ import annotations

import argparse
import sys


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emberflow", description="Train Keras-style models and ship them.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train the MNIST MLP on bundled real data and report its accuracy")
    demo.add_argument("--out", default="out/demo", help="folder for report.json and artifacts (default: out/demo)")
    demo.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5, as in the chapter)")
    demo.add_argument("--source", choices=("auto", "idx", "subset"), default="subset", help="MNIST source (default: the bundled 5,000-image subset)")
    return parser


def main(argv=None) -> int:
    parser = _build_parser()
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_request:  # argparse exits 2 on bad usage, 0 on --help
        return int(exit_request.code or 0)
    if arguments.command == "demo":
        from exporter.demo import run_demo  # noqa: PLC0415 - keeps `emberflow --help` instant

        try:
            run_demo(arguments.out, epochs=arguments.epochs, source=arguments.source)
        except (OSError, ValueError) as error:
            print(f"emberflow demo: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
