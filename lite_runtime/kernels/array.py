"""Operators that move data without arithmetic: RESHAPE, SQUEEZE, EXPAND_DIMS, SHAPE, PACK, CONCATENATION,
TRANSPOSE, PAD, PADV2, STRIDED_SLICE, GATHER."""

from __future__ import annotations

import math

import numpy as np

from lite_runtime.kernels.base import Kernel, Node, activation, normalize_axis
from lite_runtime.schema import BuiltinOperator as Op


def _copy_reshaped(_state, inputs, outputs):
    np.copyto(outputs[0], inputs[0].reshape(outputs[0].shape))


def _prepare_reshape(node: Node):
    node.arity(1, 2)
    x = node.inputs[0]
    if node.input(1) is not None:
        target = [int(d) for d in node.constant(1, "new shape").reshape(-1)]
    else:
        node.check(node.option("new_shape") is not None, "has neither a shape input nor new_shape options")
        target = list(node.option("new_shape"))
    size = math.prod(x.shape)
    node.check(target.count(-1) <= 1 and all(d >= -1 for d in target), f"new shape {target} is invalid")
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        node.check(known > 0 and size % known == 0, f"cannot reshape {list(x.shape)} to {target}")
        target[target.index(-1)] = size // known
    node.check(math.prod(target) == size, f"cannot reshape {list(x.shape)} ({size} elements) to {target}")
    return [(tuple(target), x.dtype)], None


def _prepare_squeeze(node: Node):
    node.arity(1)
    x = node.inputs[0]
    dims = node.option("squeeze_dims")
    if dims:
        axes = {normalize_axis(node, d, len(x.shape)) for d in dims}
        node.check(all(x.shape[a] == 1 for a in axes), f"cannot squeeze dims {list(dims)} of {list(x.shape)}")
    else:
        axes = {i for i, d in enumerate(x.shape) if d == 1}
    return [(tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype)], None


def _prepare_expand_dims(node: Node):
    node.arity(2)
    x = node.inputs[0]
    axis = node.constant(1, "axis").reshape(-1)
    node.check(axis.size == 1 and axis.dtype.kind == "i", "axis must be one integer")
    axis = normalize_axis(node, int(axis[0]), len(x.shape) + 1)
    return [((*x.shape[:axis], 1, *x.shape[axis:]), x.dtype)], None


def _prepare_shape(node: Node):
    node.arity(1)
    out_type = np.dtype(np.int64) if node.option("out_type") == 4 else np.dtype(np.int32)
    return [((len(node.inputs[0].shape),), out_type)], np.array(node.inputs[0].shape, out_type)


def _eval_shape(shape, _inputs, outputs):
    np.copyto(outputs[0], shape)


def _prepare_pack(node: Node):
    node.check(len(node.inputs) >= 1 and all(t is not None for t in node.inputs), "needs at least one input")
    node.arity(len(node.inputs))
    first = node.inputs[0]
    node.check(node.option("values_count") in (0, len(node.inputs)), f"values_count {node.option('values_count')}, got {len(node.inputs)} inputs")
    node.check(all(t.shape == first.shape and t.dtype == first.dtype for t in node.inputs), "inputs differ in shape or type")
    axis = normalize_axis(node, node.option("axis"), len(first.shape) + 1)
    return [((*first.shape[:axis], len(node.inputs), *first.shape[axis:]), first.dtype)], axis


def _eval_pack(axis, inputs, outputs):
    np.stack(inputs, axis=axis, out=outputs[0])


def _prepare_concatenation(node: Node):
    node.check(len(node.inputs) >= 1 and all(t is not None for t in node.inputs), "needs at least one input")
    node.arity(len(node.inputs))
    first = node.inputs[0]
    node.check(len(first.shape) >= 1, "inputs must have rank >= 1")
    axis = normalize_axis(node, node.option("axis"), len(first.shape))
    for t in node.inputs:
        same = len(t.shape) == len(first.shape) and all(a == b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis)
        node.check(same and t.dtype == first.dtype, f"input {list(t.shape)} {t.dtype} does not concatenate with {list(first.shape)} {first.dtype} on axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in node.inputs)
    act = activation(node, node.option("fused_activation_function"))
    return [(tuple(shape), first.dtype)], (axis, act)


def _eval_concatenation(state, inputs, outputs):
    axis, act = state
    np.concatenate(inputs, axis=axis, out=outputs[0])
    if act is not None:
        act(outputs[0])


def _prepare_transpose(node: Node):
    node.arity(2)
    x = node.inputs[0]
    perm = [int(p) for p in node.constant(1, "permutation").reshape(-1)]
    node.check(sorted(perm) == list(range(len(x.shape))), f"permutation {perm} does not fit rank {len(x.shape)}")
    return [(tuple(x.shape[p] for p in perm), x.dtype)], tuple(perm)


def _eval_transpose(perm, inputs, outputs):
    np.copyto(outputs[0], inputs[0].transpose(perm))


def _prepare_pad(node: Node):
    node.arity(2, 3)
    x = node.inputs[0]
    paddings = node.constant(1, "paddings")
    node.check(paddings.shape == (len(x.shape), 2) and paddings.dtype.kind == "i", f"paddings {list(paddings.shape)}, expected [{len(x.shape)}, 2]")
    node.check(bool((paddings >= 0).all()) and int(paddings.max(initial=0)) < 2**24, "paddings must be non-negative and small")
    # An int8 tensor pads with its zero point (the real 0), as TFLite's pad.cc.
    value = int(x.zero_points[0]) if x.dtype == np.int8 and x.zero_points is not None and len(x.zero_points) else 0
    if node.input(2) is not None:
        constant = node.constant(2, "pad value")
        node.check(constant.size == 1, "pad value must be a scalar")
        value = constant.reshape(-1)[0]
    shape = tuple(d + int(a) + int(b) for d, (a, b) in zip(x.shape, paddings))
    interior = tuple(slice(int(a), int(a) + d) for d, (a, _b) in zip(x.shape, paddings))
    return [(shape, x.dtype)], (interior, value)


def _eval_pad(state, inputs, outputs):
    interior, value = state
    outputs[0].fill(value)
    outputs[0][interior] = inputs[0]


def _prepare_strided_slice(node: Node):
    node.arity(3, 4)
    x = node.inputs[0]
    rank = len(x.shape)
    begin = [int(v) for v in node.constant(1, "begin").reshape(-1)]
    end = [int(v) for v in node.constant(2, "end").reshape(-1)]
    strides = [int(v) for v in node.constant(3, "strides").reshape(-1)] if node.input(3) is not None else [1] * len(begin)
    node.check(len(begin) == len(end) == len(strides) <= rank, f"begin/end/strides lengths {len(begin)}/{len(end)}/{len(strides)} for rank {rank}")
    node.check(node.option("ellipsis_mask") == 0 and node.option("new_axis_mask") == 0, "ellipsis and new-axis masks are not supported")
    node.check(all(s != 0 for s in strides), f"strides {strides} contain 0")
    slices, shape = [], []
    for i, dim in enumerate(x.shape):
        if i >= len(begin):
            slices.append(slice(None))
            shape.append(dim)
            continue
        if node.option("shrink_axis_mask") >> i & 1:
            index = begin[i] + dim if begin[i] < 0 else begin[i]
            node.check(0 <= index < dim, f"index {begin[i]} out of range for dim {i} of size {dim}")
            slices.append(slice(index, index + 1))
            continue
        start = None if node.option("begin_mask") >> i & 1 else begin[i]
        stop = None if node.option("end_mask") >> i & 1 else (begin[i] + end[i] if node.option("offset") else end[i])
        part = slice(start, stop, strides[i])
        slices.append(part)
        shape.append(len(range(*part.indices(dim))))
    return [(tuple(shape), x.dtype)], tuple(slices)


def _eval_strided_slice(slices, inputs, outputs):
    np.copyto(outputs[0], inputs[0][slices].reshape(outputs[0].shape))


def _prepare_gather(node: Node):
    node.arity(2)
    params, indices = node.inputs
    node.check(node.option("batch_dims") == 0, "batch_dims other than 0 is not supported")
    node.check(indices.dtype in (np.int32, np.int64), f"indices are {indices.dtype}, expected int32 or int64")
    axis = normalize_axis(node, node.option("axis"), len(params.shape))
    if indices.value is not None:
        node.check(bool(((indices.value >= 0) & (indices.value < params.shape[axis])).all()),
                   f"indices out of range [0, {params.shape[axis]})")  # fmt: skip
    shape = (*params.shape[:axis], *indices.shape, *params.shape[axis + 1 :])
    return [(shape, params.dtype)], (axis, params.shape[axis], node.scratch(indices.shape, np.intp))


def _eval_gather(state, inputs, outputs):
    # take's own bounds check copies its output, and int32 indices are converted: both allocate, so the
    # indices are copied into intp scratch and checked here, and take wraps (never, once checked).
    axis, size, indices = state
    np.copyto(indices, inputs[1])
    if indices.size and (np.minimum.reduce(indices, None) < 0 or np.maximum.reduce(indices, None) >= size):
        bad = indices[(indices < 0) | (indices >= size)][0]
        raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {size}")
    np.take(inputs[0], indices, axis=axis, out=outputs[0], mode="wrap")


KERNELS = {
    Op.RESHAPE: Kernel(_prepare_reshape, _copy_reshaped),
    Op.SQUEEZE: Kernel(_prepare_squeeze, _copy_reshaped),
    Op.EXPAND_DIMS: Kernel(_prepare_expand_dims, _copy_reshaped),
    Op.SHAPE: Kernel(_prepare_shape, _eval_shape, shapes_only=True),
    Op.PACK: Kernel(_prepare_pack, _eval_pack),
    Op.CONCATENATION: Kernel(_prepare_concatenation, _eval_concatenation),
    Op.TRANSPOSE: Kernel(_prepare_transpose, _eval_transpose),
    Op.PAD: Kernel(_prepare_pad, _eval_pad),
    Op.PADV2: Kernel(_prepare_pad, _eval_pad),
    Op.STRIDED_SLICE: Kernel(_prepare_strided_slice, _eval_strided_slice),
    Op.GATHER: Kernel(_prepare_gather, _eval_gather),
}
