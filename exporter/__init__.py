"""emberflow's exporter: graph passes, lowering to lite and ONNX, verification, and the ``emberflow`` CLI.

    from exporter.lite import to_lite
    from exporter.onnx import to_onnx
    to_lite(model, "model.lite"); to_onnx(model, "model.onnx")
"""

from __future__ import annotations

from exporter.errors import ExportError  # noqa: F401

TARGETS = ("lite", "onnx")


def check(model, targets=TARGETS, input_signature=None) -> list[str]:
    """Every op of ``model``'s inference graph that cannot be exported, one line per problem and target.

    Each line names the target, the op, where it came from (layer and source line) and what to do;
    an empty list means every target can take the model. Nothing is written.
    """
    from exporter.source import inference_graph  # noqa: PLC0415 - tracing imports the trainer lazily

    unknown = set(targets) - set(TARGETS)
    if unknown:
        raise ExportError(f"unknown export target(s) {sorted(unknown)}; emberflow exports to {', '.join(TARGETS)}")
    graph = inference_graph(model, input_signature).graph
    problems = []
    if "lite" in targets:
        from exporter.lite import check_lite  # noqa: PLC0415

        problems += [f"lite: {problem}" for problem in check_lite(graph)]
    if "onnx" in targets:
        from exporter.onnx import check_onnx  # noqa: PLC0415

        problems += [f"onnx: {problem}" for problem in check_onnx(graph)]
    return problems
