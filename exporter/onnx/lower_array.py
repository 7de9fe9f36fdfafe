"""ONNX lowerings of the shape, slicing and gathering ops (``array_ops.py``), keyed like the registry.

Most read channels-last forms: their attributes (shapes, slices, axes) speak of NHWC. ``concat``,
``pad`` and ``transpose`` map their axes instead when an input lives channels-first, so a conv stack's
concat or padding does not force a transpose back and forth.
"""

from __future__ import annotations

import numpy as np

from exporter.onnx.context import constant_array, is_constant, onnx_type
from exporter.onnx.layout import (
    CHANNELS_FIRST,
    NATURAL,
    TO_CHANNELS_FIRST,
    TO_CHANNELS_LAST,
    channels_first_axis,
    compose,
)
from trainer.ops.registry import normalize_axis

INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)


def _concat(scope, node):
    axis = normalize_axis(node.attrs["axis"], len(node.outputs[0].shape), "concat")
    if len(node.outputs[0].shape) == 4 and any(scope.lives_channels_first(value) for value in node.inputs):
        names = [scope.get(value, CHANNELS_FIRST) for value in node.inputs]
        scope.bind(node.outputs[0], scope.node("Concat", names, axis=channels_first_axis(axis)), CHANNELS_FIRST)
    else:
        scope.bind(node.outputs[0], scope.node("Concat", [scope.get(v) for v in node.inputs], axis=axis))


def _pad(scope, node):
    x, constant = node.inputs
    paddings = [tuple(pair) for pair in node.attrs["paddings"]]
    layout = CHANNELS_FIRST if scope.lives_channels_first(x) else NATURAL
    if layout == CHANNELS_FIRST:
        paddings = [paddings[axis] for axis in TO_CHANNELS_FIRST]
    if is_constant(constant):
        array = constant_array(constant).reshape(-1)
        value = scope.scalar(array[0] if array.size else 0, constant.dtype, "pad_value")
    else:
        value = scope.node("Reshape", [scope.get(constant), scope.int64s([], "scalar_shape")])
    pads = scope.int64s([before for before, _ in paddings] + [after for _, after in paddings], "pads")
    scope.bind(node.outputs[0], scope.node("Pad", [scope.get(x, layout), pads, value]), layout)


def _reshape(scope, node):
    shape = [int(d) for d in node.attrs["shape"]]
    allow_zero = int(0 in shape)  # a 0 means "copy this dim" in ONNX unless allowzero is set
    out = scope.node("Reshape", [scope.get(node.inputs[0]), scope.int64s(shape, "shape")], allowzero=allow_zero or None)
    scope.bind(node.outputs[0], out)


def _reshape_like(scope, node):
    x, like = node.inputs
    scope.bind(node.outputs[0], scope.node("Reshape", [scope.get(x), scope.node("Shape", [scope.get(like)])]))


def _transpose(scope, node):
    x, perm = node.inputs[0], tuple(node.attrs["perm"])
    if scope.lives_channels_first(x):  # read the NCHW form and transpose once, not back and forth
        source, perm = scope.get(x, CHANNELS_FIRST), compose(TO_CHANNELS_LAST, perm)
    else:
        source = scope.get(x)
    if perm == tuple(range(len(perm))):
        scope.bind(node.outputs[0], source)
    else:
        scope.bind(node.outputs[0], scope.node("Transpose", [source], perm=list(perm)))


def _squeeze(scope, node):
    x, axis = node.inputs[0], node.attrs["axis"]
    rank = len(x.shape)
    if axis is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    else:
        axes = sorted(normalize_axis(a, rank, "squeeze") for a in ((axis,) if isinstance(axis, int) else axis))
    if not axes:
        scope.alias(node.outputs[0], x)
        return
    scope.bind(node.outputs[0], scope.node("Squeeze", [scope.get(x), scope.int64s(axes)]))


def _expand_dims(scope, node):
    x = node.inputs[0]
    axis = normalize_axis(node.attrs["axis"], len(x.shape) + 1, "expand_dims")
    scope.bind(node.outputs[0], scope.node("Unsqueeze", [scope.get(x), scope.int64s([axis])]))


def _broadcast_to(scope, node):
    shape = scope.int64s(node.attrs["shape"], "shape")
    scope.bind(node.outputs[0], scope.node("Expand", [scope.get(node.inputs[0]), shape]))


def _broadcast_like(scope, node):
    x, like = node.inputs
    scope.bind(node.outputs[0], scope.node("Expand", [scope.get(x), scope.node("Shape", [scope.get(like)])]))


def _sum_to_like(scope, node):
    grad, like = node.inputs
    extra = len(grad.shape) - len(like.shape)
    if any(d is None for d in like.shape):
        unknown = [extra + i for i, d in enumerate(like.shape) if d is None and grad.shape[extra + i] != 1]
        if unknown:
            scope.unsupported(
                f"whether axes {unknown} were broadcast is known only at run time",
                "export with a fully known input_signature",
            )
    axes = list(range(extra)) + [extra + i for i, d in enumerate(like.shape) if d == 1]
    summed = scope.reduce("ReduceSum", scope.get(grad), axes, True) if axes else scope.get(grad)
    scope.bind(node.outputs[0], scope.node("Reshape", [summed, scope.node("Shape", [scope.get(like)])]))


def _gather(scope, node):
    params, indices = node.inputs
    out = scope.node("Gather", [scope.get(params), scope.get(indices)], axis=node.attrs["axis"])
    scope.bind(node.outputs[0], out)


def _slice_bounds(start, stop, step, size) -> tuple:
    """ONNX Slice's (start, end, step) for the Python slice ``start:stop:step`` over an axis of ``size``.

    With a known size the slice is resolved exactly as Python does (``slice.indices``). ONNX clamps
    most out-of-range bounds as Python does, but not a negative step's start below ``-size`` (Python:
    empty, ONNX: from index 0), which therefore stays exact only for known sizes.
    """
    if size is not None:
        start, stop, step = slice(start, stop, step).indices(size)
        if not range(start, stop, step):
            return 0, 0, 1
        return start, (INT64_MIN if stop < 0 else stop), step  # a negative stop here means "past index 0"
    if step > 0:
        return (0 if start is None else start), (INT64_MAX if stop is None else stop), step
    return (INT64_MAX if start is None else start), (INT64_MIN if stop is None else stop), step


def _strided_slice(scope, node):
    """``x[...]``: one Slice over the sliced and indexed axes, a Squeeze of the indexed ones, an Unsqueeze
    for each ``None``."""
    x, spec = node.inputs[0], node.attrs["spec"]
    consumed = sum(1 for item in spec if item[0] in ("slice", "index"))
    sliced = []  # (start, end, axis, step) for each input axis that is not taken whole
    squeezed, inserted = [], []
    position = out = 0  # the input axis the next item reads, the output axis it writes
    for item in spec:
        kind = item[0]
        if kind == "newaxis":
            inserted.append(out)
            out += 1
        elif kind == "ellipsis":
            span = len(x.shape) - consumed
            position, out = position + span, out + span
        elif kind == "index":
            index = item[1]
            sliced.append((index, INT64_MAX if index == -1 else index + 1, position, 1))
            squeezed.append(position)
            position += 1
        else:
            _, start, stop, step = item
            if not (start is None and stop is None and step == 1):
                begin, end, step = _slice_bounds(start, stop, step, x.shape[position])
                sliced.append((begin, end, position, step))
            position, out = position + 1, out + 1
    name = scope.get(x)
    if sliced:
        starts, ends, axes, steps = zip(*sliced)
        bounds = [scope.int64s(starts, "starts"), scope.int64s(ends, "ends"), scope.int64s(axes)]
        name = scope.node("Slice", [name, *bounds, scope.int64s(steps, "steps")])
    if squeezed:
        name = scope.node("Squeeze", [name, scope.int64s(squeezed)])
    if inserted:
        name = scope.node("Unsqueeze", [name, scope.int64s(inserted)])
    scope.bind(node.outputs[0], name)


def _concat_piece(scope, node):
    """The slice of a concat's gradient that belongs to input ``index``; offsets from run-time shapes."""
    grad, values = node.inputs[0], node.inputs[1:]
    axis = normalize_axis(node.attrs["axis"], len(grad.shape), "concat_piece")

    def size(value):
        dim = value.shape[axis]
        if dim is not None:
            return scope.int64s([dim], "size")
        return scope.node("Shape", [scope.get(value)], start=axis, end=axis + 1)

    start = scope.int64s([0], "start")
    for value in values[: node.attrs["index"]]:
        start = scope.node("Add", [start, size(value)])
    end = scope.node("Add", [start, size(values[node.attrs["index"]])])
    scope.bind(node.outputs[0], scope.node("Slice", [scope.get(grad), start, end, scope.int64s([axis])]))


def _one_hot(scope, node):
    """Compares each index with 0..depth-1 (an index outside that range gives all ``off_value``, as in TF;
    ONNX OneHot would wrap negative indices) and selects the on and off values."""
    indices, attrs = node.inputs[0], node.attrs
    positions = scope.constant(np.arange(attrs["depth"], dtype=indices.dtype.as_numpy_dtype))
    hot = scope.node("Equal", [scope.node("Unsqueeze", [scope.get(indices), scope.int64s([-1])]), positions])
    on = scope.scalar(attrs["on_value"], attrs["dtype"], "on")
    out = scope.node("Where", [hot, on, scope.scalar(attrs["off_value"], attrs["dtype"], "off")])
    rank = len(indices.shape) + 1
    axis = attrs["axis"] % rank
    if axis != rank - 1:
        perm = list(range(axis)) + [rank - 1] + list(range(axis, rank - 1))
        out = scope.node("Transpose", [out], perm=perm)
    scope.bind(node.outputs[0], out)


def _fill(scope, node):
    from onnx import helper  # noqa: PLC0415

    attrs = node.attrs
    value = helper.make_tensor("value", onnx_type(attrs["dtype"]), [1], [attrs["value"]])
    scope.bind(node.outputs[0], scope.node("ConstantOfShape", [scope.int64s(attrs["shape"], "shape")], value=value))


def _range(scope, node):
    attrs = node.attrs
    bounds = [scope.scalar(attrs[key], attrs["dtype"], key) for key in ("start", "limit", "delta")]
    scope.bind(node.outputs[0], scope.node("Range", bounds))


def cast_from_int64(scope, name: str, dtype) -> str:
    return name if dtype.name == "int64" else scope.node("Cast", [name], to=onnx_type(dtype))


def _shape_of(op_type):
    def lower(scope, node):
        out = scope.node(op_type, [scope.get(node.inputs[0])])
        scope.bind(node.outputs[0], cast_from_int64(scope, out, node.attrs["out_type"]))

    return lower


ARRAY_LOWERINGS = {
    "reshape": _reshape,
    "reshape_like": _reshape_like,
    "transpose": _transpose,
    "concat": _concat,
    "squeeze": _squeeze,
    "expand_dims": _expand_dims,
    "broadcast_to": _broadcast_to,
    "broadcast_like": _broadcast_like,
    "sum_to_like": _sum_to_like,
    "gather": _gather,
    "pad": _pad,
    "strided_slice": _strided_slice,
    "concat_piece": _concat_piece,
    "one_hot": _one_hot,
    "fill": _fill,
    "range": _range,
    "shape": _shape_of("Shape"),
    "size": _shape_of("Size"),
}
