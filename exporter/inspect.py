"""``emberflow inspect``: what a lite (or TensorFlow-written .tflite) file or an ONNX file holds."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import numpy as np

from exporter.errors import ExportError

_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool", 7: "int16", 9: "int8", 10: "float64"}
_TYPE_SIZES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8}


def inspect_file(path) -> dict:
    """A summary of an exported file: ops with counts, tensors, signatures, metadata, parameter bytes."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    if path.suffix.lower() == ".onnx":
        return _inspect_onnx(path)
    data = path.read_bytes()
    try:
        return _inspect_lite(data, str(path))
    except (IndexError, struct.error, ValueError, UnicodeDecodeError) as error:
        if isinstance(error, ExportError):
            raise
        # The summary walks the file loosely; the runtime's validating reader names the field that is bad.
        from exporter.verify import check_lite_file  # noqa: PLC0415

        check_lite_file(path)
        raise ExportError(f"{path}: malformed lite file ({type(error).__name__}: {error})") from None


def _inspect_lite(data: bytes, name: str) -> dict:
    from exporter.lite.schema import BuiltinOperator  # noqa: PLC0415
    from exporter.lite.verify import read_model  # noqa: PLC0415

    model = read_model(data)
    codes = []
    for code in model.tables("operator_codes", "OperatorCode"):
        number = max(code.scalar("builtin_code", "int32"), code.scalar("deprecated_builtin_code", "int8"))
        try:
            codes.append(BuiltinOperator(number).name)
        except ValueError:
            codes.append(code.string("custom_code") or f"BUILTIN_{number}")
    buffers = model.tables("buffers", "Buffer")
    subgraphs = model.tables("subgraphs", "SubGraph")
    if not subgraphs:
        raise ExportError(f"{name}: the file has no subgraph")
    graph = subgraphs[0]
    operators = graph.tables("operators", "Operator")
    op_counts = Counter()
    for operator in operators:
        index = operator.scalar("opcode_index", "uint32")
        if index >= len(codes):
            raise ExportError(f"{name}: operator opcode_index {index} out of range ({len(codes)} operator codes)")
        op_counts[codes[index]] += 1
    tensors, parameter_bytes = [], 0
    for index, tensor in enumerate(graph.tables("tensors", "Tensor")):
        buffer_index = tensor.scalar("buffer", "uint32")
        if buffer_index >= len(buffers):
            raise ExportError(f"{name}: tensor {index} buffer index {buffer_index} out of range (model has {len(buffers)} buffers)")
        data_size = len(buffers[buffer_index].numbers("data", np.uint8)) if buffer_index else 0
        parameter_bytes += data_size
        entry = {
            "index": index,
            "name": tensor.string("name") or "",
            "shape": tensor.numbers("shape", np.int32).tolist(),
            "shape_signature": tensor.numbers("shape_signature", np.int32).tolist() or None,
            "dtype": _TYPE_NAMES.get(tensor.scalar("type", "int8"), f"type {tensor.scalar('type', 'int8')}"),
            "constant_bytes": data_size,
        }
        entry.update(_quantization(tensor))
        tensors.append(entry)
    signatures = []
    for signature in model.tables("signature_defs", "SignatureDef"):
        signatures.append(
            {
                "key": signature.string("signature_key"),
                "inputs": {m.string("name"): m.scalar("tensor_index", "uint32") for m in signature.tables("inputs", "TensorMap")},
                "outputs": {m.string("name"): m.scalar("tensor_index", "uint32") for m in signature.tables("outputs", "TensorMap")},
            }
        )
    metadata = {}
    for entry in model.tables("metadata", "Metadata"):
        buffer_index = entry.scalar("buffer", "uint32")
        raw = bytes(buffers[buffer_index].numbers("data", np.uint8)) if buffer_index < len(buffers) else b""
        metadata[entry.string("name")] = raw.rstrip(b"\0").decode("utf-8", "replace") if len(raw) <= 64 else f"<{len(raw)} bytes>"
    return {
        "file": name,
        "format": "lite",
        "bytes": len(data),
        "description": model.string("description"),
        "ops": dict(op_counts),
        "inputs": graph.numbers("inputs", np.int32).tolist(),
        "outputs": graph.numbers("outputs", np.int32).tolist(),
        "tensors": tensors,
        "signatures": signatures,
        "metadata": metadata,
        "parameter_bytes": parameter_bytes,
    }


def _quantization(tensor) -> dict:
    """Scale and zero point of a quantized tensor (an empty dict for float tensors)."""
    table = tensor.table_field("quantization", "QuantizationParameters")
    if table is None:
        return {}
    scale = table.numbers("scale", np.float32)
    if not scale.size:
        return {}
    return {"scale": scale.tolist(), "zero_point": table.numbers("zero_point", np.int64).tolist(), "quantized_dimension": table.scalar("quantized_dimension", "int32")}


def _quantization_text(tensor: dict) -> str:
    """``scale 0.00392 zero point -128``, or for per-channel parameters their count, axis and range."""
    scales, zero_points = tensor["scale"], tensor["zero_point"]
    if len(scales) == 1:
        return f"scale {scales[0]:.6g} zero point {zero_points[0] if zero_points else 0}"
    points = sorted(set(zero_points)) or [0]
    zero_text = f"zero point {points[0]}" if len(points) == 1 else f"zero points {points[0]}..{points[-1]}"
    return (f"per-channel: {len(scales)} scales along axis {tensor['quantized_dimension']}, "
            f"{min(scales):.6g}..{max(scales):.6g}, {zero_text}")  # fmt: skip


def _inspect_onnx(path: Path) -> dict:
    try:
        import onnx  # noqa: PLC0415
    except ImportError as error:
        raise ExportError("inspecting ONNX files needs onnx: pip install 'emberflow[onnx]'") from error
    try:
        model = onnx.load(str(path))
    except Exception as error:  # noqa: BLE001 - onnx raises assorted protobuf errors; one clear line instead
        raise ExportError(f"{path}: not a readable ONNX file ({type(error).__name__})") from None
    parameter_bytes = sum(onnx.numpy_helper.to_array(t).nbytes for t in model.graph.initializer)

    def shape(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return {
        "file": str(path),
        "format": "onnx",
        "bytes": path.stat().st_size,
        "opset": [{"domain": o.domain or "ai.onnx", "version": o.version} for o in model.opset_import],
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "ops": dict(Counter(node.op_type for node in model.graph.node)),
        "inputs": [{"name": v.name, "shape": shape(v)} for v in model.graph.input],
        "outputs": [{"name": v.name, "shape": shape(v)} for v in model.graph.output],
        "initializers": [{"name": t.name, "shape": list(t.dims)} for t in model.graph.initializer],
        "parameter_bytes": int(parameter_bytes),
    }


def format_summary(summary: dict) -> str:
    """The human-readable form ``emberflow inspect`` prints."""
    lines = [f"{summary['file']}: {summary['format']}, {summary['bytes']:,} bytes, {summary['parameter_bytes']:,} bytes of parameters"]
    if summary["format"] == "lite":
        lines.append(f"description: {summary['description']}")
        lines.append("ops: " + ", ".join(f"{name} x{count}" for name, count in summary["ops"].items()))
        for signature in summary["signatures"]:
            lines.append(f"signature {signature['key']!r}: inputs {signature['inputs']}, outputs {signature['outputs']}")
        for key, value in summary["metadata"].items():
            lines.append(f"metadata {key}: {value}")
        lines.append(f"{'tensor':>6}  {'dtype':<8} {'shape':<18} {'bytes':>9}  name  [quantization]")
        for tensor in summary["tensors"]:
            signature = tensor["shape_signature"] or tensor["shape"]
            quantized = f"  [{_quantization_text(tensor)}]" if "scale" in tensor else ""
            lines.append(f"{tensor['index']:>6}  {tensor['dtype']:<8} {str(signature):<18} {tensor['constant_bytes']:>9}  {tensor['name']}{quantized}")
    else:
        lines.append(f"producer: {summary['producer']}; opset {summary['opset']}")
        lines.append("ops: " + ", ".join(f"{name} x{count}" for name, count in summary["ops"].items()))
        for kind in ("inputs", "outputs"):
            for value in summary[kind]:
                lines.append(f"{kind[:-1]} {value['name']}: {value['shape']}")
    return "\n".join(lines)
