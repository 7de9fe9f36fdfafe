"""Lite export: a model's optimized inference graph as a TFLite flatbuffer that LiteRT runs.

    model = tf.keras.Sequential([...]); model.fit(x, y)
    data = to_lite(model, "model.lite")          # the bytes, also written atomically to the path

One subgraph with a dynamic batch (``shape_signature`` -1), TFLite layouts (``lower_nn.py``), a
``serving_default`` signature under the model's own input and output names, and ``min_runtime_version``
and ``producer`` metadata. Constants are stored once per distinct content, aligned to 16 bytes. Lowering
lives in ``lower.py`` (one function per registry op), the file format in ``schema.py`` and
``builder.py``; every file is read back and checked by ``verify.py`` before it is returned.
"""

from __future__ import annotations

import os

from exporter.lite.context import Problem
from exporter.files import write_atomically
from exporter.source import InferenceGraph, as_inference_graph

__all__ = ["Problem", "check_lite", "lowering_table", "to_lite"]


def lowering_table() -> dict:
    """The lite lowering table, keyed by registry op names (the registry coverage test reads it)."""
    from exporter.lite.lower import LOWERINGS  # noqa: PLC0415

    return LOWERINGS


def to_lite(
    model_or_function,
    path=None,
    input_signature=None,
    quantize: str = "none",
    calibration=None,
    inference_input_type=None,
    inference_output_type=None,
    strict_int8: bool = False,
) -> bytes:
    """Exports a Keras model or ``tf.function`` to a lite (TFLite-schema) file; writes ``path`` atomically.

    Args:
        model_or_function: a built Keras model, a ``tf.function`` (with ``input_signature``), a concrete
            function, an ``InferenceGraph`` from ``exporter.source.inference_graph``, or a ``Graph``.
        path: where to write the file (a temporary file beside it is synced and renamed over it).
        input_signature: ``tf.TensorSpec``s, for a function without one; ``None`` dims stay dynamic.
        quantize: "none", "float16" (FLOAT16 weights + DEQUANTIZE), "dynamic" (int8 weights, float
            activations) or "int8" (full integer; needs ``calibration``). See ``exporter.quantize``.
        calibration: for "int8", sample inputs: a NumPy array, a ``tf.data.Dataset`` or a generator of batches.
        inference_input_type, inference_output_type: "int8" keeps an int8 model's input/output int8
            (default float32, with QUANTIZE / DEQUANTIZE inside the file).
        strict_int8: for "int8", refuse (``ExportError``) an op with no int8 form instead of keeping it in
            float32 between DEQUANTIZE and QUANTIZE with a warning (TensorFlow's converter's default); what
            TensorFlow documents for ``target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]``.

    Returns:
        The file's bytes, already read back and checked by ``exporter.lite.verify``.

    Raises:
        exporter.errors.ExportError: an op cannot be lowered (the message names it, its layer and source line, and
            what to do instead).
        exporter.errors.ExportError: a quantization argument or the calibration data is unusable (the message
            names it, with the expected and the received value), or an op has no int8 form for quantize="int8"
            with ``strict_int8=True``.

    Warns:
        UserWarning: quantize="int8" left ops with no int8 form in float32 (the warning lists them).

    Example:
        >>> to_lite(model, "mnist.lite")
        >>> to_lite(model, "mnist_int8.lite", quantize="int8", calibration=x_train[:500])
        >>> interpreter = ai_edge_litert.interpreter.Interpreter(model_path="mnist.lite")
    """
    from exporter.lite.builder import serialize  # noqa: PLC0415
    from exporter.lite.model import build_model  # noqa: PLC0415
    from exporter.lite.verify import verify  # noqa: PLC0415
    from exporter.quantize import check_arguments, quantize_model  # noqa: PLC0415

    check_arguments(quantize, calibration, inference_input_type, inference_output_type, strict_int8)
    lite_model = build_model(as_inference_graph(model_or_function, input_signature))
    data = serialize(lite_model)
    if quantize != "none":
        verify(data)
        quantize_model(lite_model, quantize, data, calibration, inference_input_type, inference_output_type,
                       strict_int8)  # fmt: skip
        data = serialize(lite_model)
    verify(data)
    if path is not None:
        write_atomically(os.fspath(path), data)
    return data


def check_lite(graph) -> list[Problem]:
    """Every reason ``graph`` (a model, function, ``InferenceGraph`` or ``Graph``) cannot be exported to a
    lite file, one ``Problem`` per op that cannot be lowered (its message names the op, layer, source
    line and what to do); an empty list when the export would succeed. Nothing is written."""
    from exporter.lite.model import build_model  # noqa: PLC0415

    problems: list[Problem] = []
    build_model(as_inference_graph(graph, None), problems)
    return problems
