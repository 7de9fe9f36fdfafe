"""Binary elementwise operators with NumPy broadcasting: ADD, SUB, MUL, DIV (fused activation), MAXIMUM,
MINIMUM, POW."""

from __future__ import annotations

import numpy as np

from lite_runtime.kernels.base import Kernel, Node, activation
from lite_runtime.schema import BuiltinOperator as Op

_NUMERIC = {np.dtype(t) for t in (np.float32, np.int32, np.int64)}


def _binary(function, fused: bool):
    def prepare(node: Node):
        node.arity(2)
        a, b = node.inputs
        node.check(a.dtype == b.dtype and a.dtype in _NUMERIC, f"operand types {a.dtype}, {b.dtype} (expected equal float32, int32 or int64)")
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise node.fail(f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
        act = activation(node, node.option("fused_activation_function")) if fused else None
        node.check(act is None or a.dtype == np.float32, "a fused activation needs float32 operands")
        return [(shape, a.dtype)], act

    def evaluate(act, inputs, outputs):
        function(inputs[0], inputs[1], out=outputs[0])
        if act is not None:
            act(outputs[0])

    return Kernel(prepare, evaluate)


def _divide(a, b, out):
    if out.dtype.kind == "f":
        np.divide(a, b, out=out)
    else:
        np.floor_divide(a, b, out=out)


KERNELS = {
    Op.ADD: _binary(np.add, True),
    Op.SUB: _binary(np.subtract, True),
    Op.MUL: _binary(np.multiply, True),
    Op.DIV: _binary(_divide, True),
    Op.MAXIMUM: _binary(np.maximum, False),
    Op.MINIMUM: _binary(np.minimum, False),
    Op.POW: _binary(np.power, False),
}
