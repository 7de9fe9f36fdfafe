"""The lite lowering table: one small function per registry op, emitting TFLite builtin operators.

``LOWERINGS[op_name](scope, node)`` reads the node's input tensors from ``scope``
(``context.Scope``), emits operators and binds the node's outputs. Elementwise math and reductions
are here; shapes and indexing are in ``lower_array.py``; matmul, convolutions, pooling, batch norm
and activations with layouts of their own in ``lower_nn.py``. Ops a lite file cannot hold raise an
``ExportError`` naming the op, where it came from and what to do instead.
"""

from __future__ import annotations

import numpy as np

from exporter.lite.context import tensor_type
from exporter.lite.lower_array import ARRAY_LOWERINGS, reduction_axes
from exporter.lite.lower_nn import NN_LOWERINGS
from exporter.lite.schema import BuiltinOperator as Op


def single(code: Op, **options):
    """The lowering of an op that is exactly one TFLite operator with the same inputs."""
    return lambda scope, node: scope.single(code, node, **options)


def _alias(scope, node):
    scope.alias(node.outputs[0], node.inputs[0])


def _square(scope, node):
    if node.outputs[0].dtype.is_floating:
        scope.single(Op.SQUARE, node)
    else:  # SQUARE is a float kernel; integers multiply
        x = scope.tensor(node.inputs[0])
        scope.emit(Op.MUL, [x, x], [scope.output(node.outputs[0])])


def _log1p(scope, node):
    x, out = node.inputs[0], node.outputs[0]
    plus_one = scope.op(Op.ADD, [scope.tensor(x), scope.scalar(1, out.dtype, "one")], out.shape, out.dtype, "plus_one")
    scope.emit(Op.LOG, [plus_one], [scope.output(out)])


def _reciprocal(scope, node):
    out = node.outputs[0]
    scope.emit(Op.DIV, [scope.scalar(1, out.dtype, "one"), scope.tensor(node.inputs[0])], [scope.output(out)])


# Abramowitz & Stegun 7.1.26: erf(x) = 1 - t*(a1 + t*(a2 + ... + t*a5)) * exp(-x^2), t = 1/(1 + p|x|),
# for x >= 0 and odd in x; its error is below 1.5e-7, under float32's own rounding of the result.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erf(scope, node):
    """TFLite has no erf kernel; the rational-exponential approximation above, in builtin operators."""
    x, out = scope.tensor(node.inputs[0]), node.outputs[0]
    shape, dtype = out.shape, out.dtype

    def const(number):
        return scope.scalar(number, dtype, "erf_coefficient")

    def step(code, *inputs):
        return scope.op(code, list(inputs), shape, dtype, "erf")

    magnitude = step(Op.ABS, x)
    t = step(Op.DIV, const(1.0), step(Op.ADD, step(Op.MUL, magnitude, const(_ERF_P)), const(1.0)))
    poly = step(Op.MUL, t, const(_ERF_A[4]))
    for coefficient in reversed(_ERF_A[:4]):
        poly = step(Op.MUL, t, step(Op.ADD, poly, const(coefficient)))
    decay = step(Op.EXP, step(Op.NEG, step(Op.SQUARE, x)))
    positive = step(Op.SUB, const(1.0), step(Op.MUL, poly, decay))
    scope.emit(Op.MUL, [step(Op.SIGN, x), positive], [scope.output(out)])


def _ones_like(scope, node):
    x, out = node.inputs[0], node.outputs[0]
    shape = scope.op(
        Op.SHAPE, [scope.tensor(x)], (len(x.shape),), np.int32, "shape", out_type=int(tensor_type(np.int32))
    )
    scope.emit(Op.FILL, [shape, scope.scalar(1, out.dtype, "one")], [scope.output(out)])


def _cast(scope, node):
    source, target = tensor_type(node.inputs[0].dtype), tensor_type(node.outputs[0].dtype)
    scope.single(Op.CAST, node, in_data_type=int(source), out_data_type=int(target))


def _reduction(code: Op):
    def lower(scope, node):
        x, out = node.inputs[0], node.outputs[0]
        axes = reduction_axes(node.attrs["axis"], len(x.shape), node.op.name)
        if not axes:  # reducing over no axes changes nothing
            scope.alias(out, x)
            return
        inputs = [scope.tensor(x), scope.int32s(axes, "axes")]
        scope.emit(code, inputs, [scope.output(out)], keep_dims=bool(node.attrs["keepdims"]))

    return lower


def _arg(code: Op):
    def lower(scope, node):
        x, out = node.inputs[0], node.outputs[0]
        axis = node.attrs["axis"] % len(x.shape)
        inputs = [scope.tensor(x), scope.int32s([axis], "axis")]
        scope.emit(code, inputs, [scope.output(out)], output_type=int(tensor_type(out.dtype)))

    return lower


def _refuse_control_flow(scope, node):
    scope.unsupported(
        "lite files hold one subgraph, and tf.cond / tf.while_loop need subgraphs of their own",
        "compute both branches and select with tf.where (or unroll the loop), or export to ONNX, which keeps If/Loop",
    )



LOWERINGS: dict = {
    # binary elementwise (TFLite broadcasts like NumPy)
    "add": single(Op.ADD),
    "subtract": single(Op.SUB),
    "multiply": single(Op.MUL),
    "divide": single(Op.DIV),
    "maximum": single(Op.MAXIMUM),
    "minimum": single(Op.MINIMUM),
    "pow": single(Op.POW),
    "floordiv": single(Op.FLOOR_DIV),
    "floormod": single(Op.FLOOR_MOD),  # TensorFlow's FloorMod: the sign follows the divisor, as in NumPy
    "equal": single(Op.EQUAL),
    "not_equal": single(Op.NOT_EQUAL),
    "less": single(Op.LESS),
    "less_equal": single(Op.LESS_EQUAL),
    "greater": single(Op.GREATER),
    "greater_equal": single(Op.GREATER_EQUAL),
    "logical_and": single(Op.LOGICAL_AND),
    "logical_or": single(Op.LOGICAL_OR),
    "where": single(Op.SELECT_V2),
    # unary elementwise
    "negative": single(Op.NEG),
    "abs": single(Op.ABS),
    "exp": single(Op.EXP),
    "log": single(Op.LOG),
    "log1p": _log1p,
    "sqrt": single(Op.SQRT),
    "rsqrt": single(Op.RSQRT),
    "square": _square,
    "reciprocal": _reciprocal,
    "tanh": single(Op.TANH),
    "sin": single(Op.SIN),
    "cos": single(Op.COS),
    "erf": _erf,
    "sign": single(Op.SIGN),
    "floor": single(Op.FLOOR),
    "ceil": single(Op.CEIL),
    "round": single(Op.ROUND),  # both round half to even
    "logical_not": single(Op.LOGICAL_NOT),
    "sigmoid": single(Op.LOGISTIC),
    "cast": _cast,
    "identity": _alias,
    "stop_gradient": _alias,
    "zeros_like": single(Op.ZEROS_LIKE),
    "ones_like": _ones_like,
    # reductions
    "reduce_sum": _reduction(Op.SUM),
    "reduce_mean": _reduction(Op.MEAN),
    "reduce_max": _reduction(Op.REDUCE_MAX),
    "reduce_min": _reduction(Op.REDUCE_MIN),
    "reduce_prod": _reduction(Op.REDUCE_PROD),
    "argmax": _arg(Op.ARG_MAX),
    "argmin": _arg(Op.ARG_MIN),
    # control flow
    "cond": _refuse_control_flow,
    "while": _refuse_control_flow,
    **ARRAY_LOWERINGS,
    **NN_LOWERINGS,
}
