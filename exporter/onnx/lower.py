"""The ONNX lowering table: one small function per registry op, emitting ``onnx.helper`` nodes.

``LOWERINGS[op_name](scope, node)`` reads the node's inputs from ``scope`` (``context.GraphScope``),
appends ONNX nodes and binds the node's outputs. Elementwise ops run in whatever layout their inputs
live in (see ``layout.py``); everything that depends on axis order reads channels-last forms unless
it maps its axes itself. Images, convolutions and pooling are in ``lower_image.py``, ``tf.cond`` and
``tf.while_loop`` in ``lower_control.py``; gradient ops (what a traced training step contains, never
a model's forward pass) are refused with an ``ExportError`` that says so.
"""

from __future__ import annotations

from exporter.onnx.context import constant_array, is_constant, onnx_type
from exporter.onnx.layout import CHANNELS_FIRST, NATURAL, channels_first_axis
from exporter.onnx.lower_array import ARRAY_LOWERINGS, cast_from_int64
from exporter.onnx.lower_control import CONTROL_FLOW_LOWERINGS
from exporter.onnx.lower_image import IMAGE_LOWERINGS
from trainer.ops.registry import normalize_axis

# -- elementwise ------------------------------------------------------------------------------------------


def elementwise(build):
    """A lowering for an elementwise op: ``build(scope, node, input_names)`` returns the output name."""

    def lower(scope, node):
        layout = scope.elementwise_layout(node)
        names = [scope.broadcast_input(value, layout) for value in node.inputs]
        scope.bind(node.outputs[0], build(scope, node, names), layout)

    return lower


def simple(op_type: str, **attrs):
    """The lowering of an op that is exactly one ONNX operator."""
    return elementwise(lambda scope, node, names: scope.node(op_type, names, **attrs))


def _alias(scope, node):
    scope.alias(node.outputs[0], node.inputs[0])


def _floordiv_names(scope, dtype, x, y):
    if dtype.is_floating:
        return scope.node("Floor", [scope.node("Div", [x, y])])
    # Integer Div truncates toward zero; subtracting the floored remainder first makes it exact floor division.
    return scope.node("Div", [scope.node("Sub", [x, scope.node("Mod", [x, y], fmod=0)]), y])


def _floormod(scope, node, names):
    x, y = names
    if node.outputs[0].dtype.is_floating:  # ONNX Mod on floats is C's fmod (sign of x); TF's follows y
        return scope.node("Sub", [x, scope.node("Mul", [scope.node("Floor", [scope.node("Div", [x, y])]), y])])
    return scope.node("Mod", [x, y], fmod=0)


def _log1p(scope, node, names):
    one = scope.scalar(1, node.outputs[0].dtype, "one")
    return scope.node("Log", [scope.node("Add", [names[0], one])])


def _leaky_relu(scope, node, names):
    return scope.node("LeakyRelu", names, alpha=float(node.attrs["alpha"]))  # a float attribute, even for alpha=1


def _relu6(scope, node, names):
    dtype = node.outputs[0].dtype
    return scope.node("Clip", [names[0], scope.scalar(0, dtype, "zero"), scope.scalar(6, dtype, "six")])


def _fill_like(number):
    """``zeros_like``/``ones_like``: ConstantOfShape of the input's run-time shape, in the input's layout."""

    def build(scope, node, names):
        from onnx import helper  # noqa: PLC0415

        dtype = node.outputs[0].dtype
        value = helper.make_tensor("value", onnx_type(dtype), [1], [number])
        return scope.node("ConstantOfShape", [scope.node("Shape", names)], value=value)

    return elementwise(build)


def _relu_grad(scope, node, names):
    grad, output = names
    zero = scope.scalar(0, node.inputs[1].dtype, "zero")
    mask = scope.node("Cast", [scope.node("Greater", [output, zero])], to=onnx_type(node.outputs[0].dtype))
    return scope.node("Mul", [grad, mask])


# -- axis-dependent ops ----------------------------------------------------------------------------------


def _softmax(op_type):
    def lower(scope, node):
        x, axis = node.inputs[0], node.attrs["axis"]
        if scope.lives_channels_first(x):
            out = scope.node(op_type, [scope.get(x, CHANNELS_FIRST)], axis=channels_first_axis(axis))
            scope.bind(node.outputs[0], out, CHANNELS_FIRST)
        else:
            scope.bind(node.outputs[0], scope.node(op_type, [scope.get(x)], axis=axis))

    return lower


def _reduction(op_type):
    def lower(scope, node):
        x, keepdims = node.inputs[0], node.attrs["keepdims"]
        rank, axis = len(x.shape), node.attrs["axis"]
        axes = range(rank) if axis is None else ([axis] if isinstance(axis, int) else axis)
        axes = sorted({normalize_axis(int(a), rank, node.op.name) for a in axes})
        if not axes:  # an empty axis list reduces nothing (ONNX would read it as "all axes")
            scope.alias(node.outputs[0], x)
            return
        layout, name = NATURAL, None
        if scope.lives_channels_first(x):
            kept = [a for a in range(4) if a not in axes]
            # Without keepdims the result is channels-last again when the kept axes keep their order (the
            # global pooling case: NCHW reduced over H, W gives the same [N, C] as NHWC).
            in_order = sorted(kept, key=channels_first_axis) == kept
            if keepdims or in_order:
                name, axes = scope.get(x, CHANNELS_FIRST), sorted(channels_first_axis(a) for a in axes)
                layout = CHANNELS_FIRST if keepdims else NATURAL
        name = name or scope.get(x)
        dtype = x.dtype
        if op_type == "ReduceMean" and dtype.is_integer:  # TF's integer mean floors the sum's quotient
            total = scope.reduce("ReduceSum", name, axes, keepdims)
            count = scope.node("Div", [scope.node("Size", [name]), scope.node("Size", [total])])
            out = _floordiv_names(scope, dtype, total, scope.node("Cast", [count], to=onnx_type(dtype)))
        else:
            out = scope.reduce(op_type, name, axes, keepdims)
        scope.bind(node.outputs[0], out, layout)

    return lower


def _arg(op_type):
    def lower(scope, node):
        out = scope.node(op_type, [scope.get(node.inputs[0])], axis=node.attrs["axis"], keepdims=0)
        scope.bind(node.outputs[0], cast_from_int64(scope, out, node.attrs["output_type"]))

    return lower


# -- matmul -----------------------------------------------------------------------------------------------


def _matmul_operand(scope, value, transposed: bool) -> tuple:
    """The operand's name, with a constant's transpose done now (one initializer); returns (name, still_transposed)."""
    if transposed and is_constant(value):
        return scope.constant(constant_array(value).swapaxes(-1, -2), value.name or None), False
    return scope.get(value), transposed


def _matmul(scope, node):
    a, b = node.inputs
    a_name, transpose_a = _matmul_operand(scope, a, node.attrs["transpose_a"])
    b_name, transpose_b = _matmul_operand(scope, b, node.attrs["transpose_b"])
    if (transpose_a or transpose_b) and len(a.shape) == len(b.shape) == 2:
        out = scope.node("Gemm", [a_name, b_name], transA=int(transpose_a) or None, transB=int(transpose_b) or None)
    else:
        if transpose_a:
            a_name = scope.node("Transpose", [a_name], perm=_swap_last(len(a.shape)))
        if transpose_b:
            b_name = scope.node("Transpose", [b_name], perm=_swap_last(len(b.shape)))
        out = scope.node("MatMul", [a_name, b_name])
    scope.bind(node.outputs[0], out)


def _swap_last(rank: int) -> list:
    return list(range(rank - 2)) + [rank - 1, rank - 2]



LOWERINGS: dict = {
    # binary elementwise
    "add": simple("Add"),
    "subtract": simple("Sub"),
    "multiply": simple("Mul"),
    "divide": simple("Div"),
    "maximum": simple("Max"),
    "minimum": simple("Min"),
    "pow": simple("Pow"),
    "floordiv": elementwise(lambda scope, node, names: _floordiv_names(scope, node.outputs[0].dtype, *names)),
    "floormod": elementwise(_floormod),
    "equal": simple("Equal"),
    "not_equal": elementwise(lambda scope, node, names: scope.node("Not", [scope.node("Equal", names)])),
    "less": simple("Less"),
    "less_equal": simple("LessOrEqual"),
    "greater": simple("Greater"),
    "greater_equal": simple("GreaterOrEqual"),
    "logical_and": simple("And"),
    "logical_or": simple("Or"),
    "where": simple("Where"),
    # unary elementwise and activations
    "negative": simple("Neg"),
    "abs": simple("Abs"),
    "exp": simple("Exp"),
    "log": simple("Log"),
    "log1p": elementwise(_log1p),
    "sqrt": simple("Sqrt"),
    "rsqrt": elementwise(lambda scope, node, names: scope.node("Reciprocal", [scope.node("Sqrt", names)])),
    "square": elementwise(lambda scope, node, names: scope.node("Mul", [names[0], names[0]])),
    "reciprocal": simple("Reciprocal"),
    "tanh": simple("Tanh"),
    "sin": simple("Sin"),
    "cos": simple("Cos"),
    "erf": simple("Erf"),
    "sign": simple("Sign"),
    "floor": simple("Floor"),
    "ceil": simple("Ceil"),
    "round": simple("Round"),  # both round half to even
    "logical_not": simple("Not"),
    "sigmoid": simple("Sigmoid"),
    "relu": simple("Relu"),
    "relu6": elementwise(_relu6),
    "leaky_relu": elementwise(_leaky_relu),
    "softmax": _softmax("Softmax"),
    "log_softmax": _softmax("LogSoftmax"),
    "cast": elementwise(lambda scope, node, names: scope.node("Cast", names, to=onnx_type(node.attrs["dtype"]))),
    "identity": _alias,
    "stop_gradient": _alias,
    "zeros_like": _fill_like(0),
    "ones_like": _fill_like(1),
    # reductions
    "reduce_sum": _reduction("ReduceSum"),
    "reduce_mean": _reduction("ReduceMean"),
    "reduce_max": _reduction("ReduceMax"),
    "reduce_min": _reduction("ReduceMin"),
    "reduce_prod": _reduction("ReduceProd"),
    "argmax": _arg("ArgMax"),
    "argmin": _arg("ArgMin"),
    "matmul": _matmul,
    "relu_grad": elementwise(_relu_grad),
    **ARRAY_LOWERINGS,
    **IMAGE_LOWERINGS,
    **CONTROL_FLOW_LOWERINGS,
}

