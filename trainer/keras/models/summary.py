"""``model.summary()``: the Keras table of layers, output shapes and parameter counts."""

from __future__ import annotations

from trainer import nest
from trainer.shapes import TensorShape


def _format_count(count: int) -> str:
    return f"{count:,}"


def _format_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"


def _shape_text(shape) -> str:
    if isinstance(shape, (list, tuple)) and shape and not isinstance(shape[0], (int, type(None))):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    return str(TensorShape(shape))


def _row(fields, positions) -> str:
    line = ""
    for index, field in enumerate(fields):
        if index > 0:
            line = line[:-1] + " "
        line += " " + str(field)
        line = line[: positions[index]]
        line += " " * (positions[index] - len(line))
    return line


def _layer_rows(model) -> list[tuple]:
    """(name (type), output shape text, param count, connected-to text) for each layer."""
    from trainer.keras.layers.input_layer import InputLayer  # noqa: PLC0415
    from trainer.keras.models.sequential import Sequential  # noqa: PLC0415

    rows = []
    if isinstance(model, Sequential):
        shapes = model.layer_output_shapes() if model.built else [None] * len(model.layers)
        for layer, shape in zip(model.layers, shapes):
            count = layer.count_params() if layer.built else 0
            rows.append((f"{layer.name} ({type(layer).__name__})", _shape_text(shape) if shape is not None else "?", count, ""))
        return rows
    nodes = getattr(model, "_nodes", None)
    if nodes is not None:
        for layer in model.layers:
            if isinstance(layer, InputLayer):
                rows.append((f"{layer.name} ({type(layer).__name__})", _shape_text(layer.batch_shape), 0, "[]"))
                continue
            for node in (n for n in nodes if n.layer is layer):
                output = nest.map_structure(lambda t: t.shape.as_tuple(), node.output_tensors)
                parents = [f"{t._keras_history.layer.name}[{t._keras_history.node_index}][{t._keras_history.tensor_index}]" for t in nest.flatten(node.inputs) if getattr(t, "_keras_history", None) is not None]
                rows.append((f"{layer.name} ({type(layer).__name__})", _shape_text(output), layer.count_params() if layer.built else 0, ", ".join(parents)))
        return rows
    for layer in model.layers:  # subclassed: shapes are only known per call
        rows.append((f"{layer.name} ({type(layer).__name__})", "multiple" if layer.built else "?", layer.count_params() if layer.built else 0, ""))
    return rows


def print_summary(model, line_length=None, positions=None, print_fn=None, show_trainable=False) -> None:
    """Prints (or passes to ``print_fn`` line by line) the summary table of ``model``."""
    print_fn = print_fn or print
    sequential_like = not any(row[3] and "," in row[3] for row in _layer_rows(model)) and not _has_branches(model)
    if sequential_like:
        line_length = line_length or 65
        positions = positions or [0.45, 0.85, 1.0]
        headers = ["Layer (type)", "Output Shape", "Param #"]
    else:
        line_length = line_length or 98
        positions = positions or [0.33, 0.55, 0.67, 1.0]
        headers = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]
    rows = _layer_rows(model)
    print_fn(f'Model: "{model.name}"')
    print_fn("_" * line_length)
    print_fn(_row(headers, positions))
    print_fn("=" * line_length)
    for index, (name, shape, count, connected) in enumerate(rows):
        fields = [name, shape, _format_count(count)] + ([connected] if not sequential_like else [])
        print_fn(_row(fields, positions))
        if index < len(rows) - 1:
            print_fn(" " * line_length)
    print_fn("=" * line_length)
    if not model.built:
        raise ValueError(
            "This model has not yet been built. Build the model first by calling `build()` or by calling the "
            "model on a batch of data."
        )
    trainable = sum(w.shape.num_elements() for w in model.trainable_weights)
    total = sum(w.shape.num_elements() for w in model.weights)
    total_bytes = sum(w.shape.num_elements() * w.dtype.size for w in model.weights)
    trainable_bytes = sum(w.shape.num_elements() * w.dtype.size for w in model.trainable_weights)
    print_fn(f"Total params: {_format_count(total)} ({_format_bytes(total_bytes)})")
    print_fn(f"Trainable params: {_format_count(trainable)} ({_format_bytes(trainable_bytes)})")
    print_fn(f"Non-trainable params: {_format_count(total - trainable)} ({_format_bytes(total_bytes - trainable_bytes)})")
    print_fn("_" * line_length)


def _has_branches(model) -> bool:
    nodes = getattr(model, "_nodes", None)
    if nodes is None:
        return False
    from trainer.keras.models.sequential import Sequential  # noqa: PLC0415

    if isinstance(model, Sequential):
        return False
    return len(model.inputs) > 1 or len(model.outputs) > 1 or any(len(node.parent_nodes) > 1 for node in nodes)
