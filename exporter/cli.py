"""The ``emberflow`` command line (exit codes: 0 success, 1 a verification failed, 2 bad usage or input).

    emberflow demo [--out DIR]                      train, export and verify the MNIST MLP
    emberflow export MODEL -o OUT [--quantize ...]  a saved model as a lite, ONNX or web export
    emberflow inspect FILE [--json]                 ops, tensors (dtype, quantization), signatures
    emberflow verify MODEL FILE...                  exported files against the model
    emberflow run FILE --input X.npy [--output Y.npy] [--top K]
    emberflow bench FILE [--batch N] [--runs R] [--threads T] [--json [PATH]]
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

EXIT_OK, EXIT_VERIFY_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE: what a shell reports for a process that signal ended


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emberflow", description="Train Keras-style models and ship them.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train the MNIST MLP on bundled real data, export and verify it")
    demo.add_argument("--out", default="out/demo", help="folder for report.json and the exported files (default: out/demo)")
    demo.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5, as in the chapter)")
    demo.add_argument("--source", choices=("auto", "idx", "subset"), default="subset", help="MNIST source (default: the bundled 5,000-image subset)")

    export = commands.add_parser("export", help="export a saved model to a lite (TFLite-schema) file, ONNX, or a web bundle; optionally quantized")
    export.add_argument("model", help="a saved model file (model.save('m.ember'))")
    export.add_argument("-o", "--output", required=True, help="the file to write (.lite or .onnx), or the folder for --format web")
    export.add_argument("--format", choices=("lite", "onnx", "web"), help="default: from the output's extension")
    export.add_argument("--quantize", choices=("none", "dynamic", "int8", "float16"), default="none")
    export.add_argument("--calibration", help="a .npy file of sample inputs (verification inputs; calibration for int8)")
    export.add_argument("--inference-input-type", choices=("float32", "int8"), default="float32", help="with --quantize int8: the lite file's input type; int8 takes inputs quantized with the input's scale and zero point (default: float32)")
    export.add_argument("--inference-output-type", choices=("float32", "int8"), default="float32", help="with --quantize int8: the lite file's output type (default: float32)")
    export.add_argument("--strict-int8", action="store_true", help="with --quantize int8: fail on an op with no int8 form instead of keeping it in float32 (as TF documents for supported_ops=[TFLITE_BUILTINS_INT8])")
    export.add_argument("--report", metavar="DIR", help="with --quantize: write the per-layer error table and chart to DIR")
    export.add_argument("--check", action="store_true", help="only list what cannot be exported; write nothing")
    export.add_argument("--no-verify", action="store_true", help="skip comparing the file with the model")

    inspect = commands.add_parser("inspect", help="list the ops, tensors (dtype, quantization), signatures and metadata of a lite or ONNX file")
    inspect.add_argument("file", help="a .lite/.tflite (ours or TensorFlow's) or .onnx file")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")

    verify = commands.add_parser("verify", help="compare exported files with the model they came from")
    verify.add_argument("model", help="the saved model file")
    verify.add_argument("files", nargs="+", help="exported .lite/.tflite/.onnx files")
    verify.add_argument("--inputs", help="a .npy file of inputs (default: random data of the model's input shape)")
    verify.add_argument("--labels", help="a .npy file of integer labels, to report accuracy")

    run = commands.add_parser("run", help="run a lite or ONNX file on inputs from a .npy file and show its outputs")
    run.add_argument("file", help="a .lite/.tflite file (run in lite_runtime) or .onnx file (run in onnxruntime)")
    run.add_argument("--input", required=True, metavar="X.npy", help="the inputs: one sample or a batch, float (quantized for an int8 input) or the input's own dtype; an .npz by input name for several inputs")
    run.add_argument("--output", metavar="Y.npy", help="write the outputs here (several outputs: an .npz by output name)")
    run.add_argument("--top", type=int, default=3, metavar="K", help="classes to show per row of a classifier output (default: 3)")

    bench = commands.add_parser("bench", help="time a lite or ONNX file in lite_runtime beside LiteRT or onnxruntime")
    bench.add_argument("file", help="a .lite/.tflite or .onnx file")
    bench.add_argument("--batch", type=int, metavar="N", help="rows per call (default: the file's fixed batch, or 1)")
    bench.add_argument("--runs", type=int, default=100, metavar="R", help="timed calls per runtime, after a warm-up (default: 100)")
    bench.add_argument("--threads", type=int, default=1, metavar="T", help="threads each runtime may use (default: 1)")
    bench.add_argument("--json", nargs="?", const="-", metavar="PATH", help="print the results as JSON, or write them to PATH beside the table")
    return parser


def main(argv=None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader went away (`emberflow inspect f.lite | head`). As Python's docs recommend (library/signal,
        # "Note on SIGPIPE"), point stdout at the null device so the final flush cannot fail again, and exit
        # quietly with 141, the status of a process killed by SIGPIPE: cut short, but not a failed verification (1).
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
        return EXIT_BROKEN_PIPE


def _main(argv=None) -> int:
    parser = _build_parser()
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_request:  # argparse exits 2 on bad usage, 0 on --help
        return int(exit_request.code or 0)
    try:
        if arguments.command == "demo":
            from exporter.demo import run_demo  # noqa: PLC0415 - keeps `emberflow --help` instant

            report = run_demo(arguments.out, epochs=arguments.epochs, source=arguments.source)
            return EXIT_OK if all(row["passed"] for row in report["exports"]) else EXIT_VERIFY_FAILED
        if arguments.command == "export":
            return _export(arguments)
        if arguments.command == "verify":
            return _verify(arguments)
        if arguments.command == "inspect":
            return _inspect(arguments)
        if arguments.command == "run":
            return _run(arguments)
        if arguments.command == "bench":
            return _bench(arguments)
    except UsageError as error:
        print(f"emberflow {arguments.command}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # an OSError, but not bad input: main ends quietly
        raise
    except (OSError, ValueError, TypeError, NotImplementedError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"emberflow {arguments.command}: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _progress(step: int, total: int, text: str) -> None:
    print(f"[{step}/{total}] {text}", flush=True)


def _load_model(path: str):
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such file")
    from trainer.keras.models import load_model  # noqa: PLC0415

    return load_model(path, compile=False)


def _load_array(path: str | None, what: str):
    if path is None:
        return None
    import numpy as np  # noqa: PLC0415

    if not Path(path).is_file():
        raise UsageError(f"{path}: no such {what} file")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        raise UsageError(f"{path}: not a .npy array ({error})") from None


def _sample_inputs(model, given):
    """The inputs verification runs on: the given array (checked against the model) or random data."""
    import numpy as np  # noqa: PLC0415

    from exporter.source import model_input_signature  # noqa: PLC0415

    spec = model_input_signature(model)[0]
    expected = spec.shape.as_list()[1:]
    if given is not None:
        if list(given.shape[1:]) != expected:
            raise UsageError(f"inputs have shape {given.shape}, but the model takes (batch, {', '.join(map(str, expected))})")
        return given.astype(np.float32)
    return np.random.default_rng(0).random([8] + expected, dtype=np.float32)


def _export(arguments) -> int:
    output = Path(arguments.output)
    kind = arguments.format or {".lite": "lite", ".tflite": "lite", ".onnx": "onnx"}.get(output.suffix.lower())
    if kind is None:
        raise UsageError(f"cannot tell the format from {output.name!r}: pass --format lite|onnx|web")
    if arguments.quantize != "none" and kind not in ("lite", "web"):
        raise UsageError(f"--quantize {arguments.quantize} is available for lite files and web bundles only; use --quantize none for {kind}")
    if arguments.quantize == "int8" and arguments.calibration is None:
        raise UsageError("--quantize int8 needs --calibration x.npy: a few hundred typical inputs to measure activation ranges")
    int8_options = {"--inference-input-type int8": arguments.inference_input_type == "int8",
                    "--inference-output-type int8": arguments.inference_output_type == "int8",
                    "--strict-int8": arguments.strict_int8}  # fmt: skip
    for option in (option for option, given in int8_options.items() if given):
        if arguments.quantize != "int8":
            raise UsageError(f"{option} applies to --quantize int8 only (got --quantize {arguments.quantize})")
        if kind != "lite":
            raise UsageError(f"{option} is available for lite files only; a web bundle quantizes with the defaults")
    if arguments.report and arguments.quantize == "none":
        raise UsageError("--report compares a quantized file with the float model: pass --quantize dynamic|int8|float16")
    total = 2 if arguments.no_verify else 3
    _progress(1, total, f"loading {arguments.model}")
    model = _load_model(arguments.model)
    calibration = _load_array(arguments.calibration, "calibration")
    from exporter import check  # noqa: PLC0415

    problems = check(model, targets=("lite" if kind == "web" else kind,))  # a web bundle carries a lite file
    if problems:
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        raise UsageError(f"{len(problems)} op(s) cannot be exported to {kind}; nothing was written")
    if arguments.check:
        print(f"every op of '{model.name}' can be exported to {kind}")
        return EXIT_OK
    _progress(2, total, f"writing {output} ({kind})")
    if kind == "web":
        return _export_web(arguments, model, calibration, total)
    output.parent.mkdir(parents=True, exist_ok=True)
    if kind == "lite":
        from exporter.lite import to_lite  # noqa: PLC0415

        int8_calibration = calibration if arguments.quantize == "int8" else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            to_lite(model, output, quantize=arguments.quantize, calibration=int8_calibration,
                    inference_input_type=arguments.inference_input_type,
                    inference_output_type=arguments.inference_output_type, strict_int8=arguments.strict_int8)  # fmt: skip
        for warning in caught:
            print(f"emberflow export: warning: {warning.message}", file=sys.stderr)
    else:
        from exporter.onnx import to_onnx  # noqa: PLC0415

        to_onnx(model, output)
    print(f"      {output.stat().st_size:,} bytes")
    return _report_and_verify(arguments, model, output, calibration, total)


def _export_web(arguments, model, calibration, total: int) -> int:
    """``--format web``: the demo page, the JS runtime, the lite file and its manifest in the folder ``-o``."""
    from web_export import bundle  # noqa: PLC0415
    from web_export.bundle import MODEL_FILE  # noqa: PLC0415

    output = Path(arguments.output)
    int8_calibration = calibration if arguments.quantize == "int8" else None
    manifest = bundle(model, output, quantize=arguments.quantize, calibration=int8_calibration)
    lite_file = output / MODEL_FILE
    print(f"      {lite_file}: {manifest['model']['bytes']:,} bytes; see the page with: python -m http.server --directory {output}")
    return _report_and_verify(arguments, model, lite_file, calibration, total)


def _report_and_verify(arguments, model, exported: Path, calibration, total: int) -> int:
    """The steps after writing ``exported``: the quantization report (``--report``), then verification
    against the model with the tolerance of the quantization mode, unless ``--no-verify``."""
    if arguments.report:
        _write_quantization_report(model, exported, _sample_inputs(model, calibration), Path(arguments.report))
    if arguments.no_verify:
        return EXIT_OK
    _progress(3, total, "verifying against the model")
    from exporter.verify import QUANTIZED_TOLERANCE  # noqa: PLC0415

    tolerance = QUANTIZED_TOLERANCE[arguments.quantize]
    return _print_verification(model, [exported], _sample_inputs(model, calibration), None, tolerance)


def _write_quantization_report(model, output: Path, inputs, folder: Path) -> None:
    """Writes ``quantization_report.txt`` and ``.png`` (the per-layer error) to ``folder``; prints the table."""
    from exporter.files import write_atomically  # noqa: PLC0415
    from exporter.quantize import quantization_report  # noqa: PLC0415

    report = quantization_report(model, inputs, output)
    folder.mkdir(parents=True, exist_ok=True)
    table = report.table()
    write_atomically(str(folder / "quantization_report.txt"), (table + "\n").encode())
    report.plot(folder / "quantization_report.png")
    print(table)
    standouts = ", ".join(layer.tensor for layer in report.standouts()) or "none stands out from the median SQNR"
    print(f"      worst layers: {standouts}; report in {folder}")


def _inspect(arguments) -> int:
    import json  # noqa: PLC0415

    from exporter.inspect import format_summary, inspect_file  # noqa: PLC0415

    summary = inspect_file(arguments.file)
    print(json.dumps(summary, indent=2) if arguments.json else format_summary(summary))
    return EXIT_OK


def _run(arguments) -> int:
    from exporter.run import format_result, run_exported, save_outputs  # noqa: PLC0415

    if arguments.top < 0:
        raise UsageError(f"--top takes a count of classes, 0 or more (got {arguments.top})")
    inputs = _load_array(arguments.input, "input")
    result = run_exported(arguments.file, inputs)
    print(format_result(result, top=arguments.top))
    if arguments.output:
        print(f"wrote {save_outputs(result, arguments.output)}")
    return EXIT_OK


def _bench(arguments) -> int:
    import json  # noqa: PLC0415

    from exporter.bench import bench_file, format_bench  # noqa: PLC0415
    from exporter.files import write_atomically  # noqa: PLC0415

    def progress(line: str) -> None:  # on stderr, so that --json's stdout is JSON only
        print(line, file=sys.stderr, flush=True)

    report = bench_file(arguments.file, arguments.batch, arguments.runs, arguments.threads, progress)
    if arguments.json == "-":
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(format_bench(report))
    if arguments.json:
        write_atomically(arguments.json, (json.dumps(report, indent=2) + "\n").encode())
        print(f"wrote {arguments.json}")
    return EXIT_OK


def _verify(arguments) -> int:
    from exporter.verify import check_lite_file, file_format  # noqa: PLC0415

    if arguments.labels and not arguments.inputs:
        raise UsageError("--labels needs --inputs: the labels are those inputs' classes (without --inputs the data is random)")
    for path in arguments.files:
        if not Path(path).is_file():
            raise UsageError(f"{path}: no such file")
        if file_format(path) == "lite":
            check_lite_file(path)
    model = _load_model(arguments.model)
    inputs = _sample_inputs(model, _load_array(arguments.inputs, "inputs"))
    labels = _load_array(arguments.labels, "labels")
    if labels is not None:
        if labels.ndim not in (1, 2) or (labels.ndim == 2 and labels.shape[1] != 1):
            raise UsageError(f"{arguments.labels}: labels should be class numbers shaped (N,) or (N, 1), got {labels.shape}")
        if len(labels) != len(inputs):
            raise UsageError(f"{arguments.labels} has {len(labels)} labels but {arguments.inputs} has {len(inputs)} inputs; "
                             "they must match row for row")  # fmt: skip
    return _print_verification(model, arguments.files, inputs, labels)


def _print_verification(model, files, inputs, labels, tolerance=None) -> int:
    from exporter.verify import FLOAT_TOLERANCE, format_table, verify_file  # noqa: PLC0415

    reference = model.predict(inputs, verbose=0)
    rows = [verify_file(reference, path, inputs, labels, tolerance or FLOAT_TOLERANCE) for path in files]
    print(format_table(rows))
    return EXIT_OK if all(row.passed for row in rows) else EXIT_VERIFY_FAILED


if __name__ == "__main__":
    sys.exit(main())
