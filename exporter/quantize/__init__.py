"""Post-training quantization: a pass over the lowered lite graph (STYLE.md rule 16), chosen by ``to_lite``.

    to_lite(model, "m.lite", quantize="float16")                          # FLOAT16 weights + DEQUANTIZE
    to_lite(model, "m.lite", quantize="dynamic")                          # int8 weights, hybrid kernels
    to_lite(model, "m.lite", quantize="int8", calibration=x_train[:500])  # full integer (ops with no int8
                                                                          # form stay float32, with a warning)
    to_lite(model, "m.lite", quantize="int8", calibration=x, strict_int8=True)  # ... or an ExportError
    report = quantization_report(model, x_test[:200], "m.lite")           # per-layer error of a file

The formulas live once, in ``params.py``; ``calibrate.py`` records activation ranges by running the float
file in our own ``lite_runtime`` (LiteRT is not needed); ``int8.py`` and ``weights.py`` rewrite the
``LiteModel``; ``editing.py`` holds the edits they share; ``report.py`` compares layers.
"""

from __future__ import annotations

import warnings

import numpy as np

from exporter.errors import ExportError

MODES = ("none", "dynamic", "int8", "float16")
IO_TYPES = ("float32", "int8")

__all__ = ["IO_TYPES", "MODES", "check_arguments", "quantization_report", "quantize_model"]


def quantize_model(model, mode: str, float_data: bytes | None = None, calibration=None, inference_input_type=None,
                   inference_output_type=None, strict_int8=False) -> dict[int, int]:  # fmt: skip
    """Rewrites lite ``model`` (a ``LiteModel``, whose serialized float bytes are ``float_data``) for ``mode``;
    returns the old -> new tensor index map. With "int8", operators that have no int8 form stay float32 and
    a ``UserWarning`` names them, or, with ``strict_int8``, the first of them raises ``ExportError``."""
    from exporter.quantize import editing  # noqa: PLC0415

    check_arguments(mode, calibration, inference_input_type, inference_output_type)
    if mode == "float16":
        from exporter.quantize.weights import float16  # noqa: PLC0415

        float16(model)
    elif mode == "dynamic":
        from exporter.quantize.weights import dynamic_range  # noqa: PLC0415

        dynamic_range(model)
    elif mode == "int8":
        from exporter.quantize.calibrate import ranges  # noqa: PLC0415
        from exporter.quantize.int8 import full_integer  # noqa: PLC0415

        input_type, output_type = _io_type(inference_input_type), _io_type(inference_output_type)
        left_float = full_integer(model, ranges(float_data, model, calibration), input_type, output_type,
                                  strict=strict_int8)  # fmt: skip
        if left_float:
            warnings.warn(
                f"int8 quantization: {len(left_float)} operator(s) have no int8 form and stay float32, between "
                f"DEQUANTIZE and QUANTIZE: {', '.join(left_float)}; pass strict_int8=True to refuse them instead",
                UserWarning,
                stacklevel=3,
            )
    return editing.finish(model)


def check_arguments(mode, calibration, inference_input_type=None, inference_output_type=None,
                    strict_int8=False) -> None:  # fmt: skip
    """Raises ``ExportError`` for a mode, calibration or input/output type ``to_lite`` cannot honour."""
    if strict_int8 and mode != "int8":
        raise ExportError(f"strict_int8=True applies to quantize='int8' only (got quantize={mode!r}); leave it out")
    if mode not in MODES:
        raise ExportError(f"quantize={mode!r} is not a quantization mode; use one of {', '.join(map(repr, MODES))}")
    io_types = {"inference_input_type": inference_input_type, "inference_output_type": inference_output_type}
    for name, value in io_types.items():
        io_type = _io_type(value)
        if io_type not in IO_TYPES:
            raise ExportError(f"{name}={value!r} is not supported; use 'float32' (the default) or 'int8'")
        if io_type == "int8" and mode != "int8":
            raise ExportError(f"{name}='int8' needs quantize='int8' (got quantize={mode!r})")
    if mode == "int8" and calibration is None:
        raise ExportError(
            "quantize='int8' needs calibration data: pass calibration=<a NumPy array, tf.data.Dataset or generator "
            "of input batches> (a few hundred typical inputs)"
        )
    if mode != "int8" and calibration is not None:
        raise ExportError(f"calibration data is used by quantize='int8' only (got quantize={mode!r}); leave it out")


def _io_type(value) -> str | None:
    """'float32' or 'int8' from a string, a NumPy dtype or ``tf.int8`` / ``tf.float32``; None means float32."""
    if value is None:
        return "float32"
    if isinstance(value, str):
        return value
    try:
        return np.dtype(getattr(value, "as_numpy_dtype", value)).name
    except TypeError:
        return repr(value)


def quantization_report(model_or_function, inputs, quantized_file, input_signature=None):
    """The per-layer error of ``quantized_file`` (a lite file's path or bytes) against the float export of
    the same model, both run in our lite runtime on ``inputs`` (an array, dataset or generator of batches).

    Returns:
        A ``report.QuantizationReport``: ``.table()``, ``.plot(png_path)``, ``.worst(n)``, ``.layers``.
    """
    from exporter.quantize.report import build_report  # noqa: PLC0415

    return build_report(model_or_function, inputs, quantized_file, input_signature)
