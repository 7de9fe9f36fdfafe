"""Lite lowerings of the shape and indexing ops: reshapes, transposes, concat, slices, gather, pad, fills.

Shapes known at export time become constant operands; where a dimension is known only at run time
(the batch), a reshape writes -1 for it, and when more than one is unknown the shape is read at run
time with SHAPE. TFLite's RESHAPE takes the new shape both as its second input and in its options.
"""

from __future__ import annotations

import numpy as np

from exporter.lite.context import constant_array, is_constant, tensor_type
from exporter.lite.schema import BuiltinOperator as Op
from trainer.ops.registry import normalize_axis

_BROADCAST_TO_VERSION = 2  # version 1 of BROADCAST_TO was withdrawn; LiteRT registers versions 2 and up


def reduction_axes(axis, rank: int, op_name: str) -> list[int]:
    """The sorted, non-negative axes a reduction's ``axis`` attribute names (``None``: all of them)."""
    if axis is None:
        return list(range(rank))
    axes = [axis] if isinstance(axis, int) else list(axis)
    return sorted({normalize_axis(int(a), rank, op_name) for a in axes})


def reshape_to(scope, x: int, shape, dtype, output: int | None = None, like: int | None = None) -> int:
    """RESHAPE of tensor ``x`` to ``shape`` (``None``: known at run time) into ``output`` (or a new tensor).

    One unknown dimension is written -1; with more, the shape is taken at run time from ``like``, a
    tensor of the target shape, which the caller must then give.
    """
    if output is None:
        output = scope.new_tensor(shape, dtype, "reshape")
    unknown = sum(d is None for d in shape)
    if unknown <= 1:
        new_shape = [-1 if d is None else int(d) for d in shape]
        scope.emit(Op.RESHAPE, [x, scope.int32s(new_shape, "new_shape")], [output], new_shape=new_shape)
    else:
        if like is None:
            scope.unsupported(
                f"the target shape {tuple(shape)} has several dimensions known only at run time",
                "export with a fully known input_signature",
            )
        shape_tensor = scope.op(Op.SHAPE, [like], (len(shape),), np.int32, "shape", out_type=int(tensor_type(np.int32)))
        scope.emit(Op.RESHAPE, [x, shape_tensor], [output])
    return output


def _reshape(scope, node):
    x, out = node.inputs[0], node.outputs[0]
    new_shape = [int(d) for d in node.attrs["shape"]]
    scope.emit(
        Op.RESHAPE, [scope.tensor(x), scope.int32s(new_shape, "new_shape")], [scope.output(out)], new_shape=new_shape
    )


def _reshape_like(scope, node):
    x, like = node.inputs
    reshape_to(
        scope, scope.tensor(x), node.outputs[0].shape, x.dtype, scope.output(node.outputs[0]), scope.tensor(like)
    )


def _same_elements(scope, node):
    """squeeze and expand_dims: the elements stay in order, only the shape changes."""
    x, out = node.inputs[0], node.outputs[0]
    if sum(d is None for d in out.shape) <= 1:
        reshape_to(scope, scope.tensor(x), out.shape, out.dtype, scope.output(out))
    elif node.op.name == "squeeze":
        axes = (
            [i for i, d in enumerate(x.shape) if d == 1]
            if node.attrs["axis"] is None
            else reduction_axes(node.attrs["axis"], len(x.shape), "squeeze")
        )
        scope.emit(Op.SQUEEZE, [scope.tensor(x)], [scope.output(out)], squeeze_dims=axes)
    else:
        axis = normalize_axis(node.attrs["axis"], len(out.shape), "expand_dims")
        scope.emit(Op.EXPAND_DIMS, [scope.tensor(x), scope.int32s([axis], "axis")], [scope.output(out)])


def _transpose(scope, node):
    x, perm = node.inputs[0], [int(p) for p in node.attrs["perm"]]
    if perm == list(range(len(perm))):
        scope.alias(node.outputs[0], x)
        return
    scope.emit(Op.TRANSPOSE, [scope.tensor(x), scope.int32s(perm, "perm")], [scope.output(node.outputs[0])])


def _concat(scope, node):
    out = node.outputs[0]
    if len(node.inputs) == 1:
        scope.alias(out, node.inputs[0])
        return
    axis = normalize_axis(node.attrs["axis"], len(out.shape), "concat")
    scope.emit(Op.CONCATENATION, [scope.tensor(v) for v in node.inputs], [scope.output(out)], axis=axis)


def _broadcast(scope, x: int, x_shape, target_shape_tensor, out) -> None:
    """BROADCAST_TO ``out``'s shape: a constant when known, else BROADCAST_ARGS of the run-time shapes."""
    if None not in out.shape:
        target = scope.int32s(out.shape, "broadcast_shape")
    else:
        own = scope.op(Op.SHAPE, [x], (len(x_shape),), np.int32, "shape", out_type=int(tensor_type(np.int32)))
        target = scope.op(Op.BROADCAST_ARGS, [own, target_shape_tensor], (len(out.shape),), np.int32, "broadcast_shape")
    scope.emit(Op.BROADCAST_TO, [x, target], [scope.output(out)], version=_BROADCAST_TO_VERSION)


def _broadcast_to(scope, node):
    x = node.inputs[0]
    _broadcast(scope, scope.tensor(x), x.shape, scope.int32s(node.attrs["shape"], "shape"), node.outputs[0])


def _broadcast_like(scope, node):
    x, like = node.inputs
    target = None
    if None in node.outputs[0].shape:
        target = scope.op(
            Op.SHAPE, [scope.tensor(like)], (len(like.shape),), np.int32, "shape", out_type=int(tensor_type(np.int32))
        )
    _broadcast(scope, scope.tensor(x), x.shape, target, node.outputs[0])


def _sum_to_like(scope, node):
    """Sums a broadcast gradient back to ``like``'s shape: over the leading axes and the axes of size 1."""
    grad, like = node.inputs
    extra = len(grad.shape) - len(like.shape)
    unknown = [extra + i for i, d in enumerate(like.shape) if d is None and grad.shape[extra + i] != 1]
    if unknown:
        scope.unsupported(
            f"whether axes {unknown} were broadcast is known only at run time",
            "export with a fully known input_signature",
        )
    axes = list(range(extra)) + [extra + i for i, d in enumerate(like.shape) if d == 1 and grad.shape[extra + i] != 1]
    summed = scope.tensor(grad)
    if axes:
        kept = tuple(1 if i in axes else d for i, d in enumerate(grad.shape))
        summed = scope.op(Op.SUM, [summed, scope.int32s(axes, "axes")], kept, grad.dtype, "sum", keep_dims=True)
    reshape_to(scope, summed, like.shape, grad.dtype, scope.output(node.outputs[0]), scope.tensor(like))


def _gather(scope, node):
    params, indices = node.inputs
    axis = normalize_axis(node.attrs["axis"], len(params.shape), "gather")
    index_tensor = scope.tensor(indices)
    if is_constant(indices) and params.shape[axis] is not None:
        # GATHER reads indices in [0, size); Python-style negative constant indices are wrapped here.
        index_tensor = scope.constant(
            np.mod(constant_array(indices), params.shape[axis]).astype(indices.dtype.as_numpy_dtype),
            indices.name or None,
        )
    scope.emit(Op.GATHER, [scope.tensor(params), index_tensor], [scope.output(node.outputs[0])], axis=axis)


def _pad(scope, node):
    x, constant = node.inputs
    paddings = scope.constant(
        np.asarray(node.attrs["paddings"], dtype=np.int32).reshape(len(x.shape), 2), f"{scope.scope}/paddings"
    )
    if is_constant(constant):
        values = constant_array(constant).reshape(-1)
        if not values.size or values[0] == 0:
            scope.emit(Op.PAD, [scope.tensor(x), paddings], [scope.output(node.outputs[0])])
            return
        value = scope.scalar(values[0], x.dtype, "pad_value")
    else:
        value = reshape_to(scope, scope.tensor(constant), (), x.dtype)
    scope.emit(Op.PADV2, [scope.tensor(x), paddings, value], [scope.output(node.outputs[0])])


def _strided_slice(scope, node):
    """Python indexing as one STRIDED_SLICE (masks for open bounds, shrink for integer indices), the
    Ellipsis expanded at export, and new axes added by a reshape after it."""
    x, out = node.inputs[0], node.outputs[0]
    rank = len(x.shape)
    spec = list(node.attrs["spec"])
    consumed = sum(item[0] in ("slice", "index") for item in spec)
    items = []
    for item in spec:
        if item[0] == "ellipsis":
            items += [("slice", None, None, 1)] * (rank - consumed)
        elif item[0] != "newaxis":
            items.append(item)
    items += [("slice", None, None, 1)] * (rank - len(items))
    begin, end, strides, masks = [], [], [], {"begin_mask": 0, "end_mask": 0, "shrink_axis_mask": 0}
    for axis, item in enumerate(items):
        if item[0] == "index":
            begin.append(item[1])
            end.append(item[1] + 1)
            strides.append(1)
            masks["shrink_axis_mask"] |= 1 << axis
            continue
        _, start, stop, step = item
        begin.append(0 if start is None else start)
        end.append(0 if stop is None else stop)
        strides.append(step)
        masks["begin_mask"] |= (start is None) << axis
        masks["end_mask"] |= (stop is None) << axis
    sliced_shape = tuple(d for d, kept in zip(out.shape, _from_input(spec, rank)) if kept)
    needs_slice = masks["shrink_axis_mask"] or any(item[1:] != (None, None, 1) for item in items)
    has_new_axes = len(sliced_shape) != len(out.shape)
    result = scope.tensor(x)
    if needs_slice:
        target = scope.output(out) if not has_new_axes else scope.new_tensor(sliced_shape, out.dtype, "strided_slice")
        inputs = [result, scope.int32s(begin, "begin"), scope.int32s(end, "end"), scope.int32s(strides, "strides")]
        scope.emit(Op.STRIDED_SLICE, inputs, [target], **masks)
        result = target
    if has_new_axes:
        if sum(d is None for d in out.shape) > 1:
            scope.unsupported(
                "new axes on a tensor with several dimensions known only at run time",
                "add the axes with tf.expand_dims, one at a time",
            )
        reshape_to(scope, result, out.shape, out.dtype, scope.output(out))
    elif not needs_slice:
        scope.alias(out, x)


def _from_input(spec, rank: int) -> list[bool]:
    """Per output axis of the index ``spec``, whether it comes from the input (False: a new axis)."""
    consumed = sum(item[0] in ("slice", "index") for item in spec)
    flags, used = [], 0
    for item in spec:
        if item[0] == "newaxis":
            flags.append(False)
        elif item[0] == "slice":
            flags.append(True)
            used += 1
        elif item[0] == "index":
            used += 1
        else:  # the Ellipsis stands for every axis the other items leave
            flags += [True] * (rank - consumed)
            used += rank - consumed
    return flags + [True] * (rank - used)


def _concat_piece(scope, node):
    """The slice of a concat's gradient that belongs to input ``index``, at an offset known at export."""
    grad, values = node.inputs[0], node.inputs[1:]
    axis = normalize_axis(node.attrs["axis"], len(grad.shape), "concat_piece")
    sizes = [value.shape[axis] for value in values[: node.attrs["index"] + 1]]
    if None in sizes:
        scope.unsupported(
            "the offset of the piece is known only at run time", "export with a fully known input_signature"
        )
    start = sum(sizes[:-1])
    rank = len(grad.shape)
    begin = [start if i == axis else 0 for i in range(rank)]
    end = [start + sizes[-1] if i == axis else 0 for i in range(rank)]
    open_axes = sum(1 << i for i in range(rank) if i != axis)
    inputs = [
        scope.tensor(grad),
        scope.int32s(begin, "begin"),
        scope.int32s(end, "end"),
        scope.int32s([1] * rank, "strides"),
    ]
    scope.emit(Op.STRIDED_SLICE, inputs, [scope.output(node.outputs[0])], begin_mask=open_axes, end_mask=open_axes)


def _one_hot(scope, node):
    attrs, out = node.attrs, node.outputs[0]
    depth = scope.constant(np.asarray(attrs["depth"], dtype=np.int32), f"{scope.scope}/depth")
    on, off = (scope.scalar(attrs[key], out.dtype, key) for key in ("on_value", "off_value"))
    axis = attrs["axis"] % len(out.shape)
    scope.emit(Op.ONE_HOT, [scope.tensor(node.inputs[0]), depth, on, off], [scope.output(out)], axis=axis)


def _constant_result(compute):
    """An op whose result is known at export (fills, ranges, static shapes): a constant tensor."""

    def lower(scope, node):
        out = node.outputs[0]
        scope.bind(
            out,
            scope.constant(np.asarray(compute(node), dtype=out.dtype.as_numpy_dtype), f"{scope.scope}/{node.op.name}"),
        )

    return lower


def _shape(scope, node):
    x, out = node.inputs[0], node.outputs[0]
    if None not in x.shape:
        _constant_result(lambda n: x.shape)(scope, node)
        return
    scope.emit(Op.SHAPE, [scope.tensor(x)], [scope.output(out)], out_type=int(tensor_type(out.dtype)))


def _size(scope, node):
    x, out = node.inputs[0], node.outputs[0]
    if None not in x.shape:
        _constant_result(lambda n: int(np.prod(x.shape)))(scope, node)
        return
    shape = scope.op(
        Op.SHAPE, [scope.tensor(x)], (len(x.shape),), out.dtype, "shape", out_type=int(tensor_type(out.dtype))
    )
    scope.emit(Op.REDUCE_PROD, [shape, scope.int32s([0], "axes")], [scope.output(out)], keep_dims=False)


ARRAY_LOWERINGS = {
    "reshape": _reshape,
    "reshape_like": _reshape_like,
    "squeeze": _same_elements,
    "expand_dims": _same_elements,
    "transpose": _transpose,
    "concat": _concat,
    "broadcast_to": _broadcast_to,
    "broadcast_like": _broadcast_like,
    "sum_to_like": _sum_to_like,
    "gather": _gather,
    "pad": _pad,
    "strided_slice": _strided_slice,
    "concat_piece": _concat_piece,
    "one_hot": _one_hot,
    "fill": _constant_result(lambda node: np.full(node.attrs["shape"], node.attrs["value"])),
    "range": _constant_result(lambda node: np.arange(node.attrs["start"], node.attrs["limit"], node.attrs["delta"])),
    "shape": _shape,
    "size": _size,
}
