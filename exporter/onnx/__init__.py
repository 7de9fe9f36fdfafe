"""ONNX export: a model's optimized inference graph as an ``onnx.ModelProto`` that onnxruntime runs.

    model = tf.keras.Sequential([...]); model.fit(x, y)
    onnx_model = to_onnx(model, "model.onnx")        # checked with full_check and strict shape inference

The batch dimension stays dynamic (``dim_param "batch"``), initializers are named after the variables
they hold (``dense/kernel``) and identical arrays share one. Image models take NHWC inputs as in
Keras; the graph transposes to NCHW once for its convolutions (see ``layout.py``). Lowering lives in
``lower.py`` (one function per registry op), assembly in ``model.py``. ``onnx`` is imported only
when this package's functions are called.
"""

from __future__ import annotations

import os

from exporter.errors import ExportError
from exporter.files import write_atomically
from exporter.onnx.context import Problem
from exporter.source import InferenceGraph, as_inference_graph

MIN_OPSET = 17  # Softmax over one axis (13), Squeeze/Unsqueeze/Pad with input axes (13), allowzero (14)
NEWEST_OPSET = 21  # the newest opset the exporter is tested with (onnxruntime 1.18 and later run it)

__all__ = ["MIN_OPSET", "NEWEST_OPSET", "Problem", "check_onnx", "default_opset", "to_onnx"]


def default_opset() -> int:
    """The opset files are written with: the newest tested one the installed ``onnx`` knows."""
    import onnx  # noqa: PLC0415

    return min(onnx.defs.onnx_opset_version(), NEWEST_OPSET)


def to_onnx(model_or_function, path=None, input_signature=None, opset: int | None = None):
    """Exports a Keras model or ``tf.function`` to ONNX; writes ``path`` atomically when given.

    Args:
        model_or_function: a built Keras model, a ``tf.function`` (with ``input_signature``), a concrete
            function, or an ``InferenceGraph`` from ``exporter.source.inference_graph``.
        path: where to write the ``.onnx`` file (a temporary file is renamed over it once complete).
        input_signature: ``tf.TensorSpec``s, for a function without one; ``None`` dims stay dynamic.
        opset: the ONNX opset, ``MIN_OPSET`` or newer (default: ``default_opset()``).

    Returns:
        The ``onnx.ModelProto``, already validated by ``onnx.checker`` (full check) and strict shape
        inference.

    Raises:
        ExportError: an op cannot be lowered (the message names it, its source line and what to do),
            or the opset is out of range.

    Example:
        >>> onnx_model = to_onnx(model, "mnist.onnx")
        >>> onnxruntime.InferenceSession("mnist.onnx").run(None, {"input": images})
    """
    from exporter.onnx.model import build_model  # noqa: PLC0415

    model = build_model(as_inference_graph(model_or_function, input_signature), _opset(opset))
    validate(model)
    if path is not None:
        write_atomically(os.fspath(path), model.SerializeToString())
    return model


def check_onnx(graph, opset: int | None = None) -> list[Problem]:
    """Every reason ``graph`` (a model, function, ``InferenceGraph`` or ``Graph``) cannot be exported to
    ONNX, one ``Problem`` per op that cannot be lowered; an empty list when the export is valid."""
    from exporter.onnx.model import build_model  # noqa: PLC0415

    problems: list[Problem] = []
    model = build_model(as_inference_graph(graph, None), _opset(opset), problems)
    if model is not None:
        try:
            validate(model)
        except ExportError as error:
            problems.append(Problem("", "", str(error)))
    return problems


def validate(model) -> None:
    """Runs ``onnx.checker`` with full check and strict shape inference; failures are ExportErrors."""
    import onnx  # noqa: PLC0415

    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(f"ONNX export produced a model that onnx rejects (an exporter bug): {error}") from error


def _opset(opset: int | None) -> int:
    import onnx  # noqa: PLC0415

    if opset is None:
        return default_opset()
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= int(opset) <= newest:
        raise ExportError(
            f"ONNX opset {opset} is not supported: use {MIN_OPSET} to {newest} (the installed onnx's newest)"
        )
    return int(opset)
