"""Reductions over constant axes: MEAN, SUM, REDUCE_MAX, REDUCE_MIN, REDUCE_PROD; SOFTMAX and LOG_SOFTMAX."""

from __future__ import annotations

import functools

import numpy as np

from lite_runtime.kernels.base import FLOAT32, Kernel, Node, bound_eval, normalize_axis
from lite_runtime.schema import BuiltinOperator as Op


def _reducer(function):
    def prepare(node: Node):
        node.arity(2)
        x = node.inputs[0]
        node.check(x.dtype in (np.float32, np.int32, np.int64), f"input is {x.dtype}, expected float32, int32 or int64")
        axes = node.constant(1, "axes").reshape(-1)
        node.check(axes.dtype.kind == "i", f"axes are {axes.dtype}, expected int32")
        axes = tuple(sorted({normalize_axis(node, int(a), len(x.shape)) for a in axes}))
        keep = node.option("keep_dims")
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
        node.check(function not in (np.max, np.min) or all(x.shape[a] > 0 for a in axes), "reducing an empty axis")
        return [(shape, x.dtype)], (axes, keep)

    def evaluate(state, inputs, outputs):
        axes, keep = state
        function(inputs[0], axis=axes, keepdims=keep, out=outputs[0])

    return Kernel(prepare, evaluate)


# Row sums of at most this many classes are one product with a matrix of ones, which also spreads each sum
# over its row: one BLAS call for NumPy's reduce plus copy (about half the cost at batch 1).
_SUMS_BY_PRODUCT = 64
# One row whose exponentials sum within [1, 3e38] is normalized without subtracting its max first: the sum is
# finite and no term that matters is subnormal, so the quotients equal TFLite's to float32 rounding; any other
# row (inf, nan, all very negative) takes TFLite's max-subtracting path.
_SAFE_SUM = (1.0, 3.0e38)


def _prepare_softmax(node: Node, log: bool):
    node.arity(1)
    x = node.float_input(0)
    node.check(len(x.shape) >= 1 and x.shape[-1] > 0, f"input {list(x.shape)} has no last axis to normalize")
    beta = np.float32(1.0 if log else node.option("beta"))
    classes = x.shape[-1]
    ones = node.scratch((classes, classes), fill=1) if not log and classes <= _SUMS_BY_PRODUCT else None
    # the row reductions are spread over x's shape before they meet it: ufuncs that broadcast allocate (Node.tiled)
    return [(x.shape, FLOAT32)], (node.scratch((*x.shape[:-1], 1)), node.scratch(x.shape), beta, log, ones)


def _bind_softmax(state, inputs, outputs):
    reduced, spread, beta, log, ones = state
    x, out = inputs[0], outputs[0]
    if log or ones is None or beta != 1:
        return functools.partial(_eval_softmax, state, inputs, outputs)
    classes = x.shape[-1]
    rows = x.size // classes if classes else 0
    x2, out2, spread2 = x.reshape(rows, classes), out.reshape(rows, classes), spread.reshape(rows, classes)
    maximum, copyto, subtract, exp, dot, divide = np.maximum.reduce, np.copyto, np.subtract, np.exp, np.dot, np.divide
    low, high = _SAFE_SUM

    def by_product():
        maximum(x, -1, None, reduced, True)
        copyto(spread, reduced)
        subtract(x, spread, out)
        exp(out, out)
        dot(out2, ones, spread2)
        divide(out, spread, out)

    if rows != 1:
        return by_product

    def one_row():
        exp(x, out)
        dot(out2, ones, spread2)
        if low <= spread2[0, 0] <= high:
            divide(out, spread, out)
        else:
            by_product()

    return one_row


def _eval_softmax(state, inputs, outputs):
    reduced, spread, beta, log, _ones = state
    x, out = inputs[0], outputs[0]
    # The ufunc methods with positional arguments skip np.sum's Python wrapper: half the cost at batch 1.
    np.maximum.reduce(x, -1, None, reduced, True)
    np.copyto(spread, reduced)
    np.subtract(x, spread, out)
    if beta != 1:
        np.multiply(out, beta, out)
    if log:  # x − max − log Σ exp(x − max)
        np.exp(out, out=spread)
        np.add.reduce(spread, -1, None, reduced, True)
        np.log(reduced, out=reduced)
        np.copyto(spread, reduced)
        np.subtract(out, spread, out)
        return
    np.exp(out, out)
    np.add.reduce(out, -1, None, reduced, True)
    np.copyto(spread, reduced)
    np.divide(out, spread, out)


KERNELS = {
    Op.MEAN: _reducer(np.mean),
    Op.SUM: _reducer(np.sum),
    Op.REDUCE_MAX: _reducer(np.max),
    Op.REDUCE_MIN: _reducer(np.min),
    Op.REDUCE_PROD: _reducer(np.prod),
    Op.SOFTMAX: Kernel(lambda node: _prepare_softmax(node, False), bound_eval(_bind_softmax), bind=_bind_softmax),
    Op.LOG_SOFTMAX: Kernel(lambda node: _prepare_softmax(node, True), _eval_softmax),
}
