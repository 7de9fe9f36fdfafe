"""Shape and layout ops: reshape, transpose, concat, gather, pad, slicing, one_hot, where, fills."""

from __future__ import annotations

import builtins
import math

import numpy as np

from trainer import backend, dtypes
from trainer.ops import math_ops
from trainer.ops.registry import (
    OpError,
    Spec,
    as_tensors,
    broadcast_shapes,
    execute,
    normalize_axis,
    register,
    require_same_dtype,
    same_as_input,
)
from trainer.shapes import TensorShape
from trainer.tensor import Tensor, convert_to_tensor

# -- reshape and friends ------------------------------------------------------------------------------


def _reshape_infer(x: Spec, *, shape) -> Spec:
    if list(shape).count(-1) > 1:
        raise OpError(f"op 'reshape': at most one -1 is allowed in the new shape {list(shape)}")
    known_in = None not in x.shape
    total = math.prod(x.shape) if known_in else None
    fixed = math.prod(d for d in shape if d != -1)
    if -1 not in shape:
        if total is not None and total != fixed:
            raise OpError(f"op 'reshape': cannot reshape {x.shape} ({total} elements) to {tuple(shape)} ({fixed})")
        return Spec(tuple(shape), x.dtype)
    if total is not None:
        if fixed == 0 or total % fixed:
            raise OpError(f"op 'reshape': cannot reshape {x.shape} ({total} elements) to {tuple(shape)}")
        return Spec(tuple(total // fixed if d == -1 else d for d in shape), x.dtype)
    # The input has unknown dims: the -1 is known only when the unknown part cancels exactly, as in a
    # Flatten of (None, 28, 28) to (-1, 784), where -1 is the batch.
    known_part = math.prod(d for d in x.shape if d is not None)
    unknown_in = [d for d in x.shape if d is None]
    inferred = None
    if len(unknown_in) == 1 and known_part % fixed == 0 and known_part // fixed == 1:
        inferred = None  # the -1 takes the unknown batch
    return Spec(tuple(inferred if d == -1 else d for d in shape), x.dtype)


@register("reshape", infer=_reshape_infer)
def reshape_op(xp, x, *, shape):
    return x.reshape(shape)


@reshape_op.def_gradient
def _(node, grad):
    return reshape_like(grad, node.inputs[0])


@register("reshape_like", infer=lambda x, like: Spec(like.shape, x.dtype))
def reshape_like_op(xp, x, like):
    """Reshapes ``x`` to the (run-time) shape of ``like``: the gradient of every reshaping op."""
    return x.reshape(like.shape)


@reshape_like_op.def_gradient
def _(node, grad):
    return reshape_like(grad, node.inputs[0]), None


def reshape_like(x, like):
    if x.spec.shape == like.spec.shape and None not in x.spec.shape:
        return x
    return execute(reshape_like_op, (x, like), {})


def _transpose_infer(x: Spec, *, perm) -> Spec:
    if sorted(perm) != list(builtins.range(len(x.shape))):
        raise OpError(f"op 'transpose': perm {list(perm)} is not a permutation of the {len(x.shape)} axes")
    return Spec(tuple(x.shape[p] for p in perm), x.dtype)


@register("transpose", infer=_transpose_infer)
def transpose_op(xp, x, *, perm):
    return x.transpose(perm)


@transpose_op.def_gradient
def _(node, grad):
    perm = node.attrs["perm"]
    inverse = tuple(int(i) for i in np.argsort(perm))
    return execute(transpose_op, (grad,), {"perm": inverse})


def _concat_infer(*values: Spec, axis) -> Spec:
    dtype = require_same_dtype("concat", *values)
    rank = len(values[0].shape)
    axis = normalize_axis(axis, rank, "concat")
    shape = list(values[0].shape)
    for value in values[1:]:
        if len(value.shape) != rank:
            raise OpError(f"op 'concat': all inputs need rank {rank}, got {value.shape}")
        for i, (a, b) in enumerate(zip(shape, value.shape)):
            if i == axis:
                shape[i] = None if a is None or b is None else a + b
            elif a is None:
                shape[i] = b
            elif b is not None and a != b:
                raise OpError(f"op 'concat': inputs differ in dimension {i} ({a} vs {b}) besides axis {axis}")
    return Spec(tuple(shape), dtype)


@register("concat", infer=_concat_infer)
def concat_op(xp, *values, axis):
    return xp.concatenate(values, axis=axis)


@concat_op.def_gradient
def _(node, grad):
    inputs = node.inputs
    return tuple(
        execute(concat_piece_op, (grad, *inputs), {"axis": node.attrs["axis"], "index": i}) if needed else None
        for i, needed in enumerate(node.needs_gradient)
    )


@register("concat_piece", infer=lambda grad, *values, axis, index: Spec(values[index].shape, grad.dtype))
def concat_piece_op(xp, grad, *values, axis, index):
    """The part of a concat's gradient that belongs to input ``index`` (offsets known at run time)."""
    axis = axis % grad.ndim
    start = sum(v.shape[axis] for v in values[:index])
    selector = [builtins.slice(None)] * grad.ndim
    selector[axis] = builtins.slice(start, start + values[index].shape[axis])
    return grad[tuple(selector)]


@concat_piece_op.def_gradient
def _(node, grad):
    raise_unsupported("concat_piece", "second derivatives through concat")


def raise_unsupported(op_name: str, what: str):
    from trainer.ops.registry import GradientNotSupportedError  # noqa: PLC0415

    raise GradientNotSupportedError(f"op '{op_name}': {what} are not supported by emberflow")


def _squeeze_axes(shape, axis, op_name="squeeze"):
    if axis is None:
        if None in shape:
            raise OpError(f"op 'squeeze' without axis needs a fully known shape, got {shape}")
        return tuple(i for i, d in enumerate(shape) if d == 1)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(sorted(normalize_axis(a, len(shape), op_name) for a in axes))
    for a in axes:
        if shape[a] not in (1, None):
            raise OpError(f"op 'squeeze': cannot squeeze axis {a} of size {shape[a]} (shape {shape})")
    return axes


@register("squeeze", infer=lambda x, *, axis: Spec(tuple(d for i, d in enumerate(x.shape) if i not in _squeeze_axes(x.shape, axis)), x.dtype))
def squeeze_op(xp, x, *, axis):
    return x.squeeze(axis=_squeeze_axes(x.shape, axis))


@squeeze_op.def_gradient
def _(node, grad):
    return reshape_like(grad, node.inputs[0])


def _expand_infer(x: Spec, *, axis) -> Spec:
    rank = len(x.shape) + 1
    axis = normalize_axis(axis, rank, "expand_dims")
    shape = list(x.shape)
    shape.insert(axis, 1)
    return Spec(tuple(shape), x.dtype)


@register("expand_dims", infer=_expand_infer)
def expand_dims_op(xp, x, *, axis):
    # A reshape, not xp.expand_dims: the same view without its Python-level axis checks (2 µs).
    axis = axis + x.ndim + 1 if axis < 0 else axis
    return x.reshape(x.shape[:axis] + (1,) + x.shape[axis:])


@expand_dims_op.def_gradient
def _(node, grad):
    return reshape_like(grad, node.inputs[0])


@register("broadcast_to", infer=lambda x, *, shape: Spec(broadcast_shapes(x.shape, tuple(shape)), x.dtype))
def broadcast_to_op(xp, x, *, shape):
    return xp.broadcast_to(x, shape)


@broadcast_to_op.def_gradient
def _(node, grad):
    return math_ops.unbroadcast(grad, node.inputs[0])


# -- gather, pad, slicing ---------------------------------------------------------------------------


def _gather_infer(params: Spec, indices: Spec, *, axis) -> Spec:
    if not indices.dtype.is_integer:
        raise OpError(f"op 'gather' needs integer indices, got {indices.dtype.name}")
    axis = normalize_axis(axis, len(params.shape), "gather")
    return Spec(params.shape[:axis] + tuple(indices.shape) + params.shape[axis + 1 :], params.dtype)


@register("gather", infer=_gather_infer)
def gather_op(xp, params, indices, *, axis):
    size = params.shape[axis]
    if indices.size and (indices.min() < -size or indices.max() >= size):
        raise IndexError(f"gather indices must lie in [0, {size}) along axis {axis}, got {indices.min()}..{indices.max()}")
    return xp.take(params, indices, axis=axis)


@gather_op.def_gradient
def _(node, grad):
    params, indices = node.inputs
    return execute(gather_grad_op, (grad, indices, params), {"axis": node.attrs["axis"]}), None


@register("gather_grad", infer=lambda grad, indices, params, *, axis: Spec(params.shape, grad.dtype), training_only=True)
def gather_grad_op(xp, grad, indices, params, *, axis):
    """Scatter-adds ``grad`` back into a zero tensor shaped like ``params`` (repeated indices add up)."""
    axis = axis % params.ndim
    result = xp.zeros(params.shape, dtype=grad.dtype)
    moved = xp.moveaxis(result, axis, 0)
    grad_moved = grad.reshape(grad.shape[:axis] + (-1,) + grad.shape[axis + indices.ndim :]) if indices.ndim != 1 else grad
    grad_moved = xp.moveaxis(grad_moved, axis, 0)
    xp.add.at(moved, indices.reshape(-1), grad_moved)
    return result


@gather_grad_op.def_gradient
def _(node, grad):
    _, indices, _ = node.inputs
    return execute(gather_op, (grad, indices), {"axis": node.attrs["axis"]}), None, None


def _pad_infer(x: Spec, constant: Spec, *, paddings) -> Spec:
    if len(paddings) != len(x.shape):
        raise OpError(f"op 'pad': paddings has {len(paddings)} rows for a tensor of rank {len(x.shape)}")
    return Spec(tuple(None if d is None else d + a + b for d, (a, b) in zip(x.shape, paddings)), x.dtype)


@register("pad", infer=_pad_infer)
def pad_op(xp, x, constant, *, paddings):
    return xp.pad(x, paddings, mode="constant", constant_values=constant.reshape(()).item() if constant.size else 0)


@pad_op.def_gradient
def _(node, grad):
    spec = tuple(("slice", before, -after if after else None, 1) for before, after in node.attrs["paddings"])
    inner = execute(strided_slice_op, (grad,), {"spec": spec})
    grad_constant = None
    if node.needs_gradient[1]:  # every padded element is a copy of the constant: it gets their gradients' sum
        padding_total = math_ops.subtract(math_ops.reduce_sum(grad), math_ops.reduce_sum(inner))
        grad_constant = reshape_like(padding_total, node.inputs[1])
    return inner, grad_constant


def _slice_dim(item, dim):
    _, start, stop, step = item
    if dim is None:
        return None
    return len(builtins.range(*builtins.slice(start, stop, step).indices(dim)))


def _strided_slice_infer(x: Spec, *, spec) -> Spec:
    shape = []
    dims = list(x.shape)
    consumed = sum(1 for item in spec if item[0] in ("slice", "index"))
    if consumed > len(dims):
        raise OpError(f"op 'strided_slice': too many indices ({consumed}) for a tensor of rank {len(dims)}")
    position = 0
    for item in spec:
        kind = item[0]
        if kind == "newaxis":
            shape.append(1)
        elif kind == "ellipsis":
            span = len(dims) - consumed
            shape.extend(dims[position : position + span])
            position += span
        elif kind == "index":
            dim = dims[position]
            if dim is not None and not -dim <= item[1] < dim:
                raise OpError(f"op 'strided_slice': index {item[1]} is out of bounds for dimension {position} of size {dim}")
            position += 1
        else:
            shape.append(_slice_dim(item, dims[position]))
            position += 1
    shape.extend(dims[position:])
    return Spec(tuple(shape), x.dtype)


def _selector(spec):
    parts = []
    for item in spec:
        kind = item[0]
        if kind == "slice":
            parts.append(builtins.slice(item[1], item[2], item[3]))
        elif kind == "index":
            parts.append(item[1])
        elif kind == "newaxis":
            parts.append(None)
        else:
            parts.append(Ellipsis)
    return tuple(parts)


@register("strided_slice", infer=_strided_slice_infer)
def strided_slice_op(xp, x, *, spec):
    return x[_selector(spec)]


@strided_slice_op.def_gradient
def _(node, grad):
    return execute(strided_slice_grad_op, (grad, node.inputs[0]), node.attrs)


@register("strided_slice_grad", infer=lambda grad, like, *, spec: Spec(like.shape, grad.dtype), training_only=True)
def strided_slice_grad_op(xp, grad, like, *, spec):
    """Places ``grad`` at the sliced positions of a zero tensor shaped like the sliced input."""
    result = xp.zeros(like.shape, dtype=grad.dtype)
    result[_selector(spec)] = grad
    return result


@strided_slice_grad_op.def_gradient
def _(node, grad):
    return execute(strided_slice_op, (grad,), node.attrs), None


def index_spec(key) -> tuple:
    """Normalizes a Python index (ints, slices, None, Ellipsis, scalar tensors) to a hashable spec."""
    if not isinstance(key, tuple):
        key = (key,)
    spec = []
    for item in key:
        if item is None:
            spec.append(("newaxis",))
        elif item is Ellipsis:
            spec.append(("ellipsis",))
        elif isinstance(item, builtins.slice):
            spec.append(("slice", _index_int(item.start), _index_int(item.stop), _index_int(item.step) or 1))
        elif isinstance(item, (list, np.ndarray)) or (isinstance(item, Tensor) and item.ndim > 0):
            raise TypeError(
                "indexing a tensor with a list or tensor of indices is not supported; use tf.gather (or "
                "tf.boolean_mask for masks)"
            )
        else:
            spec.append(("index", _index_int(item)))
    return tuple(spec)


def _index_int(value):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("boolean indices are not supported; use tf.boolean_mask")
    try:
        return int(value.__index__())
    except AttributeError:
        raise TypeError(f"tensor indices must be integers, slices, None or Ellipsis, got {type(value).__name__}") from None


def getitem(x, key):
    return execute(strided_slice_op, (x,), {"spec": index_spec(key)})


# -- selection, fills, identity ----------------------------------------------------------------------


def _where_infer(condition: Spec, x: Spec, y: Spec) -> Spec:
    if not condition.dtype.is_bool:
        raise OpError(f"op 'where' needs a bool condition, got {condition.dtype.name}")
    return Spec(broadcast_shapes(condition.shape, x.shape, y.shape), require_same_dtype("where", x, y))


@register("where", infer=_where_infer)
def where_op(xp, condition, x, y):
    return xp.where(condition, x, y)


@where_op.def_gradient
def _(node, grad):
    condition, x, y = node.inputs
    zeros = zeros_like(grad)
    return (
        None,
        math_ops.unbroadcast(where(condition, grad, zeros), x),
        math_ops.unbroadcast(where(condition, zeros, grad), y),
    )


def _one_hot_infer(indices: Spec, *, depth, on_value, off_value, axis, dtype) -> Spec:
    if not indices.dtype.is_integer:
        raise OpError(f"op 'one_hot' needs integer indices, got {indices.dtype.name}")
    shape = list(indices.shape)
    shape.insert(axis % (len(shape) + 1), depth)
    return Spec(tuple(shape), dtype)


@register("one_hot", infer=_one_hot_infer, differentiable=False)
def one_hot_op(xp, indices, *, depth, on_value, off_value, axis, dtype):
    hot = indices[..., None] == xp.arange(depth, dtype=indices.dtype)
    if on_value == 1 and off_value == 0:  # the common case: the mask itself, converted (one pass, not two)
        result = hot.astype(dtype.as_numpy_dtype)
    else:
        result = xp.where(hot, on_value, off_value).astype(dtype.as_numpy_dtype)
    return xp.moveaxis(result, -1, axis) if axis not in (-1, indices.ndim) else result


@register("zeros_like", infer=same_as_input, differentiable=False)
def zeros_like_op(xp, x):
    return xp.zeros_like(x)


@register("ones_like", infer=same_as_input, differentiable=False)
def ones_like_op(xp, x):
    return xp.ones_like(x)


@register("fill", infer=lambda *, shape, value, dtype: Spec(tuple(shape), dtype), differentiable=False)
def fill_op(xp, *, shape, value, dtype):
    return xp.full(shape, value, dtype=dtype.as_numpy_dtype)


@register("identity", infer=same_as_input)
def identity_op(xp, x):
    """Returns ``x`` on the current device: ``tf.identity`` inside ``tf.device`` is how data moves."""
    if backend.cupy_in_use and backend.device_of(x) != backend.current_device():
        return backend.to_device(x, backend.current_device())
    return x


@identity_op.def_gradient
def _(node, grad):
    return grad


@register("stop_gradient", infer=same_as_input, differentiable=False)
def stop_gradient_op(xp, x):
    return x


@register("shape", infer=lambda x, *, out_type: Spec((len(x.shape),), out_type), differentiable=False)
def shape_op(xp, x, *, out_type):
    return xp.asarray(x.shape, dtype=out_type.as_numpy_dtype)


@register("size", infer=lambda x, *, out_type: Spec((), out_type), differentiable=False)
def size_op(xp, x, *, out_type):
    return xp.asarray(x.size, dtype=out_type.as_numpy_dtype)


@register("range", infer=lambda *, start, limit, delta, dtype: Spec((max(0, math.ceil((limit - start) / delta)),), dtype), differentiable=False)
def range_op(xp, *, start, limit, delta, dtype):
    return xp.arange(start, limit, delta, dtype=dtype.as_numpy_dtype)


@register("check_index_range", infer=lambda indices, *, depth, ignore, context: indices, differentiable=False, training_only=True)
def check_index_range_op(xp, indices, *, depth, ignore, context):
    """Passes ``indices`` through, failing when one lies outside [0, depth) (``ignore`` excepted).

    It sits in the data path (its output feeds the consumer), so a traced step checks its labels on
    every run just as eager code does, instead of silently selecting nothing for a bad label.
    """
    values = indices if ignore is None else indices[indices != ignore]
    if values.size and (int(values.min()) < 0 or int(values.max()) >= depth):
        raise ValueError(f"{context}: values must lie in [0, {depth}), got values from {int(values.min())} to {int(values.max())}")
    return indices


# -- the public functions -----------------------------------------------------------------------------


def reshape(tensor, shape, name=None):
    """``tf.reshape``: one dimension of ``shape`` may be -1 (inferred)."""
    x = convert_to_tensor(tensor)
    if isinstance(shape, Tensor):
        shape = shape.numpy().tolist()
    shape = tuple(-1 if d is None else int(d) for d in TensorShape(shape).as_list()) if not isinstance(shape, (list, tuple)) else tuple(int(d) if d is not None else -1 for d in shape)
    return execute(reshape_op, (x,), {"shape": shape})


def transpose(a, perm=None, name=None, conjugate=False):
    x = convert_to_tensor(a)
    perm = tuple(reversed(builtins.range(x.ndim))) if perm is None else tuple(int(p) % max(x.ndim, 1) for p in perm)
    return execute(transpose_op, (x,), {"perm": perm})


def concat(values, axis, name=None):
    tensors = as_tensors(*values)
    if len(tensors) == 1:
        return tensors[0]
    return execute(concat_op, tensors, {"axis": int(axis)})


def stack(values, axis=0, name=None):
    """``tf.stack``: joins same-shaped tensors along a new axis."""
    tensors = as_tensors(*values)
    rank = tensors[0].ndim + 1
    axis = normalize_axis(axis, rank, "stack")
    return concat([expand_dims(t, axis) for t in tensors], axis)


def unstack(value, num=None, axis=0, name=None):
    x = convert_to_tensor(value)
    axis = normalize_axis(axis, x.ndim, "unstack")
    count = x.shape[axis] if num is None else num
    if count is None:
        raise ValueError("tf.unstack needs a known size along the axis (or num=)")
    prefix = (builtins.slice(None),) * axis
    return [getitem(x, prefix + (i,)) for i in builtins.range(count)]


def squeeze(input, axis=None, name=None):  # noqa: A002 - the TensorFlow name
    if isinstance(axis, list):
        axis = tuple(axis)
    return execute(squeeze_op, (convert_to_tensor(input),), {"axis": axis})


def expand_dims(input, axis, name=None):  # noqa: A002
    return execute(expand_dims_op, (convert_to_tensor(input),), {"axis": int(axis)})


def broadcast_to(input, shape, name=None):  # noqa: A002
    return execute(broadcast_to_op, (convert_to_tensor(input),), {"shape": tuple(int(d) for d in shape)})


def gather(params, indices, axis=None, batch_dims=0, name=None):
    """``tf.gather``: takes slices of ``params`` along ``axis`` at integer ``indices``."""
    if batch_dims:
        raise NotImplementedError("tf.gather with batch_dims is not supported by emberflow; use batch_dims=0")
    params = convert_to_tensor(params)
    indices = convert_to_tensor(indices, dtype_hint=dtypes.int32)
    return execute(gather_op, (params, indices), {"axis": 0 if axis is None else int(axis)})


def pad(tensor, paddings, mode="CONSTANT", constant_values=0, name=None):
    if str(mode).upper() != "CONSTANT":
        raise NotImplementedError(f"tf.pad mode {mode!r} is not supported by emberflow; use mode='CONSTANT'")
    x = convert_to_tensor(tensor)
    if isinstance(paddings, Tensor):
        paddings = paddings.numpy()
    paddings = tuple((int(a), int(b)) for a, b in np.asarray(paddings).reshape(-1, 2))
    constant = convert_to_tensor(constant_values, dtype=x.dtype)
    return execute(pad_op, (x, constant), {"paddings": paddings})


def slice(input_, begin, size, name=None):  # noqa: A001 - the TensorFlow name
    """``tf.slice``: ``size[i] == -1`` takes everything from ``begin[i]`` to the end."""
    spec = tuple(("slice", int(b), None if int(s) == -1 else int(b) + int(s), 1) for b, s in zip(begin, size))
    return execute(strided_slice_op, (convert_to_tensor(input_),), {"spec": spec})


def where(condition, x=None, y=None, name=None):
    if x is None or y is None:
        raise NotImplementedError("tf.where with one argument (coordinates of true elements) is not supported by emberflow")
    condition = convert_to_tensor(condition)
    x, y = as_tensors(x, y)
    return execute(where_op, (condition, x, y), {})


def one_hot(indices, depth, on_value=None, off_value=None, axis=None, dtype=None, name=None):
    indices = convert_to_tensor(indices, dtype_hint=dtypes.int32)
    dtype = dtypes.as_dtype(dtype) if dtype is not None else dtypes.float32
    attrs = {
        "depth": int(depth),
        "on_value": 1 if on_value is None else on_value,
        "off_value": 0 if off_value is None else off_value,
        "axis": -1 if axis is None else int(axis),
        "dtype": dtype,
    }
    return execute(one_hot_op, (indices,), attrs)


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    x = convert_to_tensor(t)
    return math_ops.minimum(math_ops.maximum(x, clip_value_min), clip_value_max)


def zeros_like(input, dtype=None, name=None):  # noqa: A002
    result = execute(zeros_like_op, (convert_to_tensor(input),), {})
    return result if dtype is None else math_ops.cast(result, dtype)


def ones_like(input, dtype=None, name=None):  # noqa: A002
    result = execute(ones_like_op, (convert_to_tensor(input),), {})
    return result if dtype is None else math_ops.cast(result, dtype)


def fill(dims, value, name=None):
    dtype = convert_to_tensor(value).dtype
    return execute(fill_op, (), {"shape": tuple(int(d) for d in dims), "value": value, "dtype": dtype})


def zeros(shape, dtype=dtypes.float32, name=None):
    return execute(fill_op, (), {"shape": tuple(TensorShape(shape).as_list()), "value": 0, "dtype": dtypes.as_dtype(dtype)})


def ones(shape, dtype=dtypes.float32, name=None):
    return execute(fill_op, (), {"shape": tuple(TensorShape(shape).as_list()), "value": 1, "dtype": dtypes.as_dtype(dtype)})


def identity(input, name=None):  # noqa: A002
    return execute(identity_op, (convert_to_tensor(input),), {})


def stop_gradient(input, name=None):  # noqa: A002
    return execute(stop_gradient_op, (convert_to_tensor(input),), {})


def shape(input, out_type=dtypes.int32, name=None):  # noqa: A002
    return execute(shape_op, (convert_to_tensor(input),), {"out_type": dtypes.as_dtype(out_type)})


def size(input, out_type=dtypes.int32, name=None):  # noqa: A002
    return execute(size_op, (convert_to_tensor(input),), {"out_type": dtypes.as_dtype(out_type)})


def rank(input, name=None):  # noqa: A002
    return convert_to_tensor(convert_to_tensor(input).ndim)


def range(start, limit=None, delta=1, dtype=None, name=None):  # noqa: A001
    if limit is None:
        start, limit = 0, start
    if dtype is None:
        dtype = dtypes.float32 if any(isinstance(v, float) for v in (start, limit, delta)) else dtypes.int32
    return execute(range_op, (), {"start": start, "limit": limit, "delta": delta, "dtype": dtypes.as_dtype(dtype)})
