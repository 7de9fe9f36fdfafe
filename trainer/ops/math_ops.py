"""Elementwise math, reductions, matmul and cast: the arithmetic primitives and their gradients."""

from __future__ import annotations

import math

from trainer import dtypes
from trainer.ops.registry import (
    OpError,
    Spec,
    as_tensors,
    broadcast_shapes,
    execute,
    normalize_axis,
    register,
    require_floating,
    require_same_dtype,
    same_as_input,
)
from trainer.tensor import Tensor, convert_to_tensor

# -- binary elementwise ------------------------------------------------------------------------------


def _binary_infer(name):
    def infer(x: Spec, y: Spec) -> Spec:
        return Spec(broadcast_shapes(x.shape, y.shape), require_same_dtype(name, x, y))

    return infer


def _comparison_infer(name):
    def infer(x: Spec, y: Spec) -> Spec:
        require_same_dtype(name, x, y)
        return Spec(broadcast_shapes(x.shape, y.shape), dtypes.bool_)

    return infer


def _same_dtype_kernel(name, kernel):
    """Wraps a binary kernel with TensorFlow's rule that both operands share one dtype (no promotion)."""

    def forward(xp, x, y):
        if x.dtype != y.dtype:
            raise OpError(f"op '{name}' needs inputs of one dtype, got {x.dtype} and {y.dtype}; use tf.cast to convert one of them")
        return kernel(xp, x, y)

    forward.__doc__ = kernel.__doc__
    return forward


def _binary(name, kernel, infer=None, **flags):
    return register(name, infer=infer or _binary_infer(name), **flags)(_same_dtype_kernel(name, kernel))


add_op = _binary("add", lambda xp, x, y: x + y)
subtract_op = _binary("subtract", lambda xp, x, y: x - y)
multiply_op = _binary("multiply", lambda xp, x, y: x * y)
divide_op = _binary("divide", lambda xp, x, y: x / y)
maximum_op = _binary("maximum", lambda xp, x, y: xp.maximum(x, y))
minimum_op = _binary("minimum", lambda xp, x, y: xp.minimum(x, y))
pow_op = _binary("pow", lambda xp, x, y: xp.power(x, y))
floordiv_op = _binary("floordiv", lambda xp, x, y: xp.floor_divide(x, y), differentiable=False)
floormod_op = _binary("floormod", lambda xp, x, y: xp.mod(x, y), differentiable=False)


def _comparison(name, kernel):
    return _binary(name, kernel, infer=_comparison_infer(name), differentiable=False)


equal_op = _comparison("equal", lambda xp, x, y: x == y)
not_equal_op = _comparison("not_equal", lambda xp, x, y: x != y)
less_op = _comparison("less", lambda xp, x, y: x < y)
less_equal_op = _comparison("less_equal", lambda xp, x, y: x <= y)
greater_op = _comparison("greater", lambda xp, x, y: x > y)
greater_equal_op = _comparison("greater_equal", lambda xp, x, y: x >= y)
logical_and_op = _binary("logical_and", lambda xp, x, y: xp.logical_and(x, y), differentiable=False)
logical_or_op = _binary("logical_or", lambda xp, x, y: xp.logical_or(x, y), differentiable=False)


def unbroadcast(grad: Tensor, like: Tensor) -> Tensor:
    """Sums ``grad`` down to the shape of ``like`` (undoing broadcasting in a binary op's gradient)."""
    grad_shape, like_shape = grad.spec.shape, like.spec.shape
    if grad_shape == like_shape and None not in grad_shape:
        return grad
    return execute(sum_to_like_op, (grad, like), {})


@register("sum_to_like", infer=lambda grad, like: Spec(like.shape, grad.dtype))
def sum_to_like_op(xp, grad, like):
    """Sums ``grad`` over the axes that broadcasting added or stretched to reach ``like``'s shape."""
    target = like.shape
    extra = grad.ndim - len(target)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, d in enumerate(target) if d == 1 and grad.shape[extra + i] != 1
    )
    if axes == tuple(range(grad.ndim - 1)) and grad.ndim > 1 and grad.flags.c_contiguous:
        return _sum_rows(grad.reshape(-1, grad.shape[-1])).reshape(target)  # the bias-gradient case
    summed = grad.sum(axis=axes, keepdims=True) if axes else grad
    return summed.reshape(target)


def _sum_rows(matrix):
    """Column sums of a C-contiguous (rows, C) matrix.

    NumPy sums a narrow matrix along axis 0 slowly (one short row at a time); folding groups of rows
    into one wide row first lets the reduction run over long contiguous rows, ~5x faster for conv
    bias gradients such as (21632, 32).
    """
    rows, columns = matrix.shape
    if rows < 256:  # a few rows: one plain reduction is cheaper than folding (measured at 32 and 128 rows)
        return matrix.sum(axis=0)
    for fold in (64, 32, 16, 8, 4, 2):
        if rows % fold == 0 and rows > fold and fold * columns <= 4096:
            return matrix.reshape(rows // fold, fold * columns).sum(axis=0).reshape(fold, columns).sum(axis=0)
    return matrix.sum(axis=0)


@sum_to_like_op.def_gradient
def _(node, grad):
    return execute(broadcast_like_op, (grad, node.inputs[0]), {}), None


@register("broadcast_like", infer=lambda x, like: Spec(broadcast_shapes(x.shape, like.shape), x.dtype))
def broadcast_like_op(xp, x, like):
    """Broadcasts ``x`` to the shape of ``like`` (the transpose of ``sum_to_like``)."""
    if like.size <= 4096:
        # Small (a loss's per-sample weights): multiplying by ones is exact and skips
        # broadcast_to's Python-level setup, 6 µs of a 0.6 ms training step.
        return x * xp.ones_like(like, dtype=x.dtype)
    return xp.broadcast_to(x, xp.broadcast_shapes(x.shape, like.shape))


@broadcast_like_op.def_gradient
def _(node, grad):
    return unbroadcast(grad, node.inputs[0]), None


@add_op.def_gradient
def _(node, grad):
    x, y = node.inputs
    return unbroadcast(grad, x), unbroadcast(grad, y)


@subtract_op.def_gradient
def _(node, grad):
    x, y = node.inputs
    return unbroadcast(grad, x), unbroadcast(negative(grad), y)


@multiply_op.def_gradient
def _(node, grad):
    x, y = node.inputs
    need_x, need_y = node.needs_gradient
    return (
        unbroadcast(multiply(grad, y), x) if need_x else None,
        unbroadcast(multiply(grad, x), y) if need_y else None,
    )


@divide_op.def_gradient
def _(node, grad):
    x, y = node.inputs
    need_x, need_y = node.needs_gradient
    grad_x = unbroadcast(divide(grad, y), x) if need_x else None
    grad_y = unbroadcast(negative(multiply(grad, divide(node.outputs[0], y))), y) if need_y else None
    return grad_x, grad_y


def _select_gradient(grad, mask, x, y):
    zeros = zeros_like_grad(grad)
    return unbroadcast(where(mask, grad, zeros), x), unbroadcast(where(mask, zeros, grad), y)


@maximum_op.def_gradient
def _(node, grad):
    x, y = node.inputs
    return _select_gradient(grad, greater_equal(x, y), x, y)


@minimum_op.def_gradient
def _(node, grad):
    x, y = node.inputs
    return _select_gradient(grad, less_equal(x, y), x, y)


@pow_op.def_gradient
def _(node, grad):
    x, y = node.inputs
    need_x, need_y = node.needs_gradient
    grad_x = grad_y = None
    if need_x:
        grad_x = unbroadcast(multiply(grad, multiply(y, pow(x, subtract(y, 1)))), x)
    if need_y:
        safe_log = log(where(greater(x, 0), x, ones_like_grad(x)))
        grad_y = unbroadcast(multiply(grad, multiply(node.outputs[0], safe_log)), y)
    return grad_x, grad_y


def zeros_like_grad(x):
    from trainer.ops.array_ops import zeros_like  # noqa: PLC0415 - array_ops imports this module

    return zeros_like(x)


def ones_like_grad(x):
    from trainer.ops.array_ops import ones_like  # noqa: PLC0415

    return ones_like(x)


def where(condition, x, y):
    from trainer.ops.array_ops import where as _where  # noqa: PLC0415

    return _where(condition, x, y)


# -- unary elementwise -------------------------------------------------------------------------------


def _float_infer(name):
    def infer(x: Spec) -> Spec:
        require_floating(name, x)
        return x

    return infer


def _unary(name, kernel, *, floating=True, **flags):
    return register(name, infer=_float_infer(name) if floating else same_as_input, **flags)(kernel)


negative_op = _unary("negative", lambda xp, x: -x, floating=False)
abs_op = _unary("abs", lambda xp, x: xp.abs(x), floating=False)
exp_op = _unary("exp", lambda xp, x: xp.exp(x))
log_op = _unary("log", lambda xp, x: xp.log(x))
log1p_op = _unary("log1p", lambda xp, x: xp.log1p(x))
sqrt_op = _unary("sqrt", lambda xp, x: xp.sqrt(x))
rsqrt_op = _unary("rsqrt", lambda xp, x: 1 / xp.sqrt(x))
square_op = _unary("square", lambda xp, x: x * x, floating=False)
reciprocal_op = _unary("reciprocal", lambda xp, x: 1 / x)
tanh_op = _unary("tanh", lambda xp, x: xp.tanh(x))
sin_op = _unary("sin", lambda xp, x: xp.sin(x))
cos_op = _unary("cos", lambda xp, x: xp.cos(x))
sign_op = _unary("sign", lambda xp, x: xp.sign(x), floating=False, differentiable=False)
floor_op = _unary("floor", lambda xp, x: xp.floor(x), differentiable=False)
ceil_op = _unary("ceil", lambda xp, x: xp.ceil(x), differentiable=False)
round_op = _unary("round", lambda xp, x: xp.round(x), differentiable=False)
logical_not_op = _unary("logical_not", lambda xp, x: xp.logical_not(x), floating=False, differentiable=False)


@register("sigmoid", infer=_float_infer("sigmoid"))
def sigmoid_op(xp, x):
    # Two branches so that neither exp overflows: 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) below.
    positive = x >= 0
    z = xp.exp(xp.where(positive, -x, x))
    return xp.where(positive, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)


@register("erf", infer=_float_infer("erf"))
def erf_op(xp, x):
    if xp.__name__ != "numpy":
        import cupyx.scipy.special  # noqa: PLC0415 - CuPy ships erf

        return cupyx.scipy.special.erf(x)
    try:
        from scipy.special import erf as vector_erf  # noqa: PLC0415 - fast path when SciPy is present
    except ImportError:
        vector_erf = xp.frompyfunc(math.erf, 1, 1)  # exact, one Python call per element
    return xp.asarray(vector_erf(x), dtype=x.dtype)


@negative_op.def_gradient
def _(node, grad):
    return negative(grad)


@abs_op.def_gradient
def _(node, grad):
    return multiply(grad, sign(node.inputs[0]))


@exp_op.def_gradient
def _(node, grad):
    return multiply(grad, node.outputs[0])


@log_op.def_gradient
def _(node, grad):
    return divide(grad, node.inputs[0])


@log1p_op.def_gradient
def _(node, grad):
    return divide(grad, add(node.inputs[0], 1))


@sqrt_op.def_gradient
def _(node, grad):
    return divide(multiply(grad, 0.5), node.outputs[0])


@rsqrt_op.def_gradient
def _(node, grad):
    y = node.outputs[0]
    return multiply(grad, multiply(multiply(y, multiply(y, y)), -0.5))


@square_op.def_gradient
def _(node, grad):
    return multiply(grad, multiply(node.inputs[0], 2))


@reciprocal_op.def_gradient
def _(node, grad):
    y = node.outputs[0]
    return negative(multiply(grad, multiply(y, y)))


@tanh_op.def_gradient
def _(node, grad):
    y = node.outputs[0]
    return multiply(grad, subtract(1, multiply(y, y)))


@sigmoid_op.def_gradient
def _(node, grad):
    y = node.outputs[0]
    return multiply(grad, multiply(y, subtract(1, y)))


@sin_op.def_gradient
def _(node, grad):
    return multiply(grad, cos(node.inputs[0]))


@cos_op.def_gradient
def _(node, grad):
    return negative(multiply(grad, sin(node.inputs[0])))


@erf_op.def_gradient
def _(node, grad):
    x = node.inputs[0]
    return multiply(grad, multiply(exp(negative(square(x))), 2 / math.sqrt(math.pi)))


# -- reductions --------------------------------------------------------------------------------------


def _reduction_axes(axis, rank: int, name: str):
    if axis is None:
        return tuple(range(rank))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted({normalize_axis(int(a), rank, name) for a in axes}))


def _reduce_infer(name, output_dtype=None):
    def infer(x: Spec, *, axis, keepdims) -> Spec:
        axes = _reduction_axes(axis, len(x.shape), name)
        if keepdims:
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        else:
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return Spec(shape, output_dtype or x.dtype)

    return infer


@register("reduce_sum", infer=_reduce_infer("reduce_sum"))
def reduce_sum_op(xp, x, *, axis, keepdims):
    return x.sum(axis=axis, keepdims=keepdims, dtype=x.dtype)


@register("reduce_mean", infer=_reduce_infer("reduce_mean"))
def reduce_mean_op(xp, x, *, axis, keepdims):
    if x.dtype.kind in "iu":  # TensorFlow keeps integer means integral (truncating)
        return (x.sum(axis=axis, keepdims=keepdims) // _count(x.shape, axis)).astype(x.dtype)
    return x.mean(axis=axis, keepdims=keepdims, dtype=x.dtype)


@register("reduce_max", infer=_reduce_infer("reduce_max"))
def reduce_max_op(xp, x, *, axis, keepdims):
    return x.max(axis=axis, keepdims=keepdims)


@register("reduce_min", infer=_reduce_infer("reduce_min"))
def reduce_min_op(xp, x, *, axis, keepdims):
    return x.min(axis=axis, keepdims=keepdims)


@register("reduce_prod", infer=_reduce_infer("reduce_prod"))
def reduce_prod_op(xp, x, *, axis, keepdims):
    return x.prod(axis=axis, keepdims=keepdims, dtype=x.dtype)


def _count(shape, axis) -> int:
    axes = range(len(shape)) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    return max(1, math.prod(shape[a] for a in axes))


def _keepdims_grad(node, grad):
    """``grad`` reshaped so that it broadcasts against the reduction's input."""
    attrs = node.attrs
    if attrs["keepdims"]:
        return grad
    from trainer.ops.array_ops import expand_dims  # noqa: PLC0415

    for axis in _reduction_axes(attrs["axis"], node.inputs[0].ndim, node.op.name):
        grad = expand_dims(grad, axis)
    return grad


@reduce_sum_op.def_gradient
def _(node, grad):
    return execute(broadcast_like_op, (_keepdims_grad(node, grad), node.inputs[0]), {})


@reduce_mean_op.def_gradient
def _(node, grad):
    x = node.inputs[0]
    spread = execute(broadcast_like_op, (_keepdims_grad(node, grad), x), {})
    from trainer.ops.array_ops import size  # noqa: PLC0415

    count = divide(cast(size(x), grad.dtype), cast(size(node.outputs[0]), grad.dtype))
    return divide(spread, count)


def _extremum_gradient(node, grad):
    # Gradient flows to every element equal to the extremum, shared evenly among ties (as TensorFlow).
    x = node.inputs[0]
    y = _keepdims_grad(node, node.outputs[0])
    mask = cast(equal(x, y), grad.dtype)
    ties = _keepdims_grad(node, reduce_sum(mask, node.attrs["axis"], keepdims=node.attrs["keepdims"]))
    return multiply(divide(mask, ties), _keepdims_grad(node, grad))


reduce_max_op.def_gradient(_extremum_gradient)
reduce_min_op.def_gradient(_extremum_gradient)


@reduce_prod_op.def_gradient
def _(node, grad):
    # d/dx_i prod = prod / x_i; exact for inputs without zeros, which is what TensorFlow guarantees too.
    x = node.inputs[0]
    spread = execute(broadcast_like_op, (_keepdims_grad(node, grad), x), {})
    product = execute(broadcast_like_op, (_keepdims_grad(node, node.outputs[0]), x), {})
    return multiply(spread, divide(product, x))


def _arg_infer(name):
    def infer(x: Spec, *, axis, output_type) -> Spec:
        axis = normalize_axis(axis, len(x.shape), name)
        return Spec(tuple(d for i, d in enumerate(x.shape) if i != axis), output_type)

    return infer


@register("argmax", infer=_arg_infer("argmax"), differentiable=False)
def argmax_op(xp, x, *, axis, output_type):
    return x.argmax(axis=axis).astype(output_type.as_numpy_dtype, copy=False)


@register("argmin", infer=_arg_infer("argmin"), differentiable=False)
def argmin_op(xp, x, *, axis, output_type):
    return x.argmin(axis=axis).astype(output_type.as_numpy_dtype, copy=False)


# -- matmul and cast ---------------------------------------------------------------------------------


def _matmul_infer(a: Spec, b: Spec, *, transpose_a, transpose_b) -> Spec:
    dtype = require_same_dtype("matmul", a, b)
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise OpError(f"op 'matmul' needs inputs of rank >= 2, got ranks {len(a.shape)} and {len(b.shape)}")
    m, k = (a.shape[-1], a.shape[-2]) if transpose_a else (a.shape[-2], a.shape[-1])
    k2, n = (b.shape[-1], b.shape[-2]) if transpose_b else (b.shape[-2], b.shape[-1])
    if k is not None and k2 is not None and k != k2:
        raise OpError(f"op 'matmul': inner dimensions differ: {k} (a) vs {k2} (b)")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return Spec(batch + (m, n), dtype)


@register("matmul", infer=_matmul_infer)
def matmul_op(xp, a, b, *, transpose_a, transpose_b):
    if transpose_a:
        a = xp.swapaxes(a, -1, -2)
    if transpose_b:
        b = xp.swapaxes(b, -1, -2)
    return xp.matmul(a, b)


@matmul_op.def_gradient
def _(node, grad):
    a, b = node.inputs
    ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
    need_a, need_b = node.needs_gradient
    grad_a = grad_b = None
    if need_a:
        grad_a = matmul(b, grad, transpose_a=tb, transpose_b=True) if ta else matmul(grad, b, transpose_b=not tb)
        grad_a = unbroadcast(grad_a, a) if a.ndim > 2 or b.ndim > 2 else grad_a
    if need_b:
        grad_b = matmul(grad, a, transpose_a=True, transpose_b=ta) if tb else matmul(a, grad, transpose_a=not ta)
        grad_b = unbroadcast(grad_b, b) if a.ndim > 2 or b.ndim > 2 else grad_b
    return grad_a, grad_b


@register("cast", infer=lambda x, *, dtype: Spec(x.shape, dtype))
def cast_op(xp, x, *, dtype):
    return x.astype(dtype.as_numpy_dtype)


@cast_op.def_gradient
def _(node, grad):
    source = node.inputs[0].dtype
    return cast(grad, source) if source.is_floating else None


# -- the public functions (tf.add, tf.matmul, ...) --------------------------------------------------


def _binary_function(op):
    def function(x, y, name=None):
        return execute(op, as_tensors(x, y), {})

    function.__name__ = op.name
    function.__doc__ = f"Elementwise ``{op.name}`` with NumPy broadcasting."
    return function


add = _binary_function(add_op)
subtract = _binary_function(subtract_op)
multiply = _binary_function(multiply_op)
divide = truediv = _binary_function(divide_op)
maximum = _binary_function(maximum_op)
minimum = _binary_function(minimum_op)
pow = _binary_function(pow_op)  # noqa: A001 - the TensorFlow name
floordiv = _binary_function(floordiv_op)
floormod = mod = _binary_function(floormod_op)
equal = _binary_function(equal_op)
not_equal = _binary_function(not_equal_op)
less = _binary_function(less_op)
less_equal = _binary_function(less_equal_op)
greater = _binary_function(greater_op)
greater_equal = _binary_function(greater_equal_op)
logical_and = _binary_function(logical_and_op)
logical_or = _binary_function(logical_or_op)


def _unary_function(op):
    def function(x, name=None):
        return execute(op, (convert_to_tensor(x),), {})

    function.__name__ = op.name
    function.__doc__ = f"Elementwise ``{op.name}``."
    return function


negative = _unary_function(negative_op)
abs = _unary_function(abs_op)  # noqa: A001
exp = _unary_function(exp_op)
log = _unary_function(log_op)
log1p = _unary_function(log1p_op)
sqrt = _unary_function(sqrt_op)
rsqrt = _unary_function(rsqrt_op)
square = _unary_function(square_op)
reciprocal = _unary_function(reciprocal_op)
tanh = _unary_function(tanh_op)
sigmoid = _unary_function(sigmoid_op)
sin = _unary_function(sin_op)
cos = _unary_function(cos_op)
erf = _unary_function(erf_op)
sign = _unary_function(sign_op)
floor = _unary_function(floor_op)
ceil = _unary_function(ceil_op)
round = _unary_function(round_op)  # noqa: A001
logical_not = _unary_function(logical_not_op)


def squared_difference(x, y, name=None):
    difference = subtract(x, y)
    return multiply(difference, difference)


def _reduction_function(op):
    def function(input_tensor, axis=None, keepdims=False, name=None):
        x = convert_to_tensor(input_tensor)
        if isinstance(axis, Tensor):
            axis = axis.numpy().tolist()
        if isinstance(axis, list):
            axis = tuple(axis)
        return execute(op, (x,), {"axis": axis, "keepdims": bool(keepdims)})

    function.__name__ = op.name
    function.__doc__ = f"``tf.{op.name}``: reduces over ``axis`` (all axes when ``None``)."
    return function


reduce_sum = _reduction_function(reduce_sum_op)
reduce_mean = _reduction_function(reduce_mean_op)
reduce_max = _reduction_function(reduce_max_op)
reduce_min = _reduction_function(reduce_min_op)
reduce_prod = _reduction_function(reduce_prod_op)


def reduce_any(input_tensor, axis=None, keepdims=False, name=None):
    return cast(reduce_max(cast(input_tensor, dtypes.int32), axis, keepdims), dtypes.bool_)


def reduce_all(input_tensor, axis=None, keepdims=False, name=None):
    return cast(reduce_min(cast(input_tensor, dtypes.int32), axis, keepdims), dtypes.bool_)


def reduce_logsumexp(input_tensor, axis=None, keepdims=False, name=None):
    x = convert_to_tensor(input_tensor)
    from trainer.ops.array_ops import stop_gradient  # noqa: PLC0415

    peak = stop_gradient(reduce_max(x, axis, keepdims=True))
    total = log(reduce_sum(exp(subtract(x, peak)), axis, keepdims=True))
    result = add(total, peak)
    if not keepdims:
        from trainer.ops.array_ops import squeeze  # noqa: PLC0415

        result = squeeze(result, axis if axis is not None else list(range(x.ndim)))
    return result


def argmax(input, axis=None, output_type=dtypes.int64, name=None):  # noqa: A002 - the TensorFlow name
    return execute(argmax_op, (convert_to_tensor(input),), {"axis": 0 if axis is None else int(axis), "output_type": dtypes.as_dtype(output_type)})


def argmin(input, axis=None, output_type=dtypes.int64, name=None):  # noqa: A002
    return execute(argmin_op, (convert_to_tensor(input),), {"axis": 0 if axis is None else int(axis), "output_type": dtypes.as_dtype(output_type)})


def matmul(a, b, transpose_a=False, transpose_b=False, name=None):
    """``tf.matmul``: (batched) matrix product; batch dimensions broadcast."""
    a, b = as_tensors(a, b)
    return execute(matmul_op, (a, b), {"transpose_a": bool(transpose_a), "transpose_b": bool(transpose_b)})


def cast(x, dtype, name=None):
    """``tf.cast``: converts to ``dtype`` (floats to integers truncate toward zero, as in TensorFlow)."""
    x = convert_to_tensor(x)
    dtype = dtypes.as_dtype(dtype)
    if x.dtype is dtype:
        return x
    return execute(cast_op, (x,), {"dtype": dtype})


def add_n(inputs, name=None):
    total = inputs[0]
    for item in inputs[1:]:
        total = add(total, item)
    return total
