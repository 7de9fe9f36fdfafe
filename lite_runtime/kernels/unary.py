"""Elementwise one-input operators (float32): activations, math functions, CAST and DEQUANTIZE."""

from __future__ import annotations

import functools
import math

import numpy as np

from lite_runtime.kernels.base import FLOAT32, Kernel, Node, bound_eval
from lite_runtime.schema import BuiltinOperator as Op


def _float_unary(function, needs_scratch: bool = False):
    """A float32 -> float32 operator; ``function(x, out, node_state)`` computes into ``out``."""

    def prepare(node: Node):
        node.arity(1)
        x = node.float_input(0)
        state = (node.scratch(x.shape) if needs_scratch else None, node.options)
        return [(x.shape, FLOAT32)], state

    def evaluate(state, inputs, outputs):
        function(inputs[0], outputs[0], state)

    return Kernel(prepare, evaluate)


def _logistic(x, out, _state):
    np.negative(x, out=out)
    np.exp(out, out=out)
    np.add(out, 1, out=out)
    np.reciprocal(out, out=out)


def _leaky_relu(x, out, state):
    scratch, options = state
    np.multiply(x, np.float32(options["alpha"]), out=scratch)
    np.maximum(x, scratch, out=out) if options["alpha"] <= 1 else np.minimum(x, scratch, out=out)


def _hard_swish(x, out, state):
    scratch, _ = state
    np.add(x, 3, out=scratch)
    np.clip(scratch, 0, 6, out=scratch)
    np.multiply(scratch, x, out=out)
    np.divide(out, 6, out=out)


def _erf(x, out, scratch):
    """erf to about 1e-7 (Abramowitz & Stegun 7.1.26); NumPy has none and the runtime takes no SciPy."""
    np.abs(x, out=scratch)
    np.multiply(scratch, 0.3275911, out=out)
    np.add(out, 1, out=out)
    np.reciprocal(out, out=out)  # t
    t = out
    polynomial = np.multiply(t, 1.061405429)  # allocations here are a few small temporaries of x's size
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        np.add(polynomial, coefficient, out=polynomial)
        np.multiply(polynomial, t, out=polynomial)
    np.square(scratch, out=scratch)
    np.negative(scratch, out=scratch)
    np.exp(scratch, out=scratch)
    np.multiply(polynomial, scratch, out=out)
    np.subtract(1, out, out=out)
    np.copysign(out, x, out=out)


def _gelu(x, out, state):
    scratch, options = state
    if options["approximate"]:
        np.power(x, 3, out=scratch)
        np.multiply(scratch, 0.044715, out=scratch)
        np.add(scratch, x, out=scratch)
        np.multiply(scratch, math.sqrt(2 / math.pi), out=scratch)
        np.tanh(scratch, out=scratch)
    else:
        np.multiply(x, 1 / math.sqrt(2), out=out)
        _erf(out, scratch, np.empty_like(out))
    np.add(scratch, 1, out=scratch)
    np.multiply(scratch, x, out=out)
    np.multiply(out, 0.5, out=out)


def _rsqrt(x, out, _state):
    np.sqrt(x, out=out)
    np.reciprocal(out, out=out)


def _ufunc(function):
    return _float_unary(lambda x, out, _state: function(x, out=out))


def _prepare_cast(node: Node):
    node.arity(1)
    node.check(len(node.output_dtypes) == 1, "CAST has one output")
    return [(node.inputs[0].shape, node.output_dtypes[0])], None


def _eval_cast(_state, inputs, outputs):
    np.copyto(outputs[0], inputs[0], casting="unsafe")


def _prepare_dequantize(node: Node):
    node.arity(1)
    x = node.inputs[0]
    if x.dtype == np.float16:
        return [(x.shape, FLOAT32)], None
    node.check(x.dtype in (np.int8, np.uint8, np.int16), f"input is {x.dtype}, expected int8, uint8, int16 or float16")
    node.check(x.scales is not None and len(x.scales) > 0, "the quantized input has no scale")
    zero_points = np.broadcast_to(x.zero_points if len(x.zero_points) else 0, x.scales.shape).astype(np.float32)
    scales = x.scales.astype(np.float32)
    if len(scales) == 1 and x.dtype in (np.int8, np.uint8):
        # One scale over 8-bit codes: a table of (code − zero point) · scale, computed as eval would, read by index.
        codes = np.arange(256, dtype=np.uint8).view(x.dtype)  # byte order: a code's table entry is at its byte
        table = (codes.astype(np.float32) - zero_points[0]) * scales[0]
        return [(x.shape, FLOAT32)], ("table", (table, node.scratch(x.shape, np.intp)))
    if len(scales) == 1:
        return [(x.shape, FLOAT32)], (scales[0], zero_points[0])
    shape = [1] * len(x.shape)
    shape[x.quantized_dimension] = len(scales)
    # per channel: constants as large as the output, so that eval's ufuncs do not broadcast (see Node.tiled)
    return [(x.shape, FLOAT32)], (node.tiled(scales.reshape(shape), x.shape, np.float32),
                                  node.tiled(zero_points.reshape(shape), x.shape, np.float32))  # fmt: skip


def _bind_dequantize(state, inputs, outputs):
    if state is None or not isinstance(state[0], str):
        return functools.partial(_eval_dequantize, state, inputs, outputs)
    (table, indices), x, out, take = state[1], inputs[0], outputs[0], np.take

    def run():
        indices[...] = x  # an int8 −1 becomes index −1, which "wrap" takes to entry 255: its byte
        take(table, indices, out=out, mode="wrap")

    return run


def _eval_dequantize(state, inputs, outputs):
    np.copyto(outputs[0], inputs[0], casting="unsafe")
    if state is not None:
        scales, zero_points = state
        np.subtract(outputs[0], zero_points, out=outputs[0])
        np.multiply(outputs[0], scales, out=outputs[0])


KERNELS = {
    Op.RELU: _float_unary(lambda x, out, _s: np.maximum(x, 0, out=out)),
    Op.RELU6: _float_unary(lambda x, out, _s: np.clip(x, 0, 6, out=out)),
    Op.LEAKY_RELU: _float_unary(_leaky_relu, needs_scratch=True),
    Op.LOGISTIC: _float_unary(_logistic),
    Op.TANH: _ufunc(np.tanh),
    Op.EXP: _ufunc(np.exp),
    Op.LOG: _ufunc(np.log),
    Op.SQRT: _ufunc(np.sqrt),
    Op.RSQRT: _float_unary(_rsqrt),
    Op.SQUARE: _ufunc(np.square),
    Op.ABS: _ufunc(np.abs),
    Op.NEG: _ufunc(np.negative),
    Op.FLOOR: _ufunc(np.floor),
    Op.CEIL: _ufunc(np.ceil),
    Op.SIN: _ufunc(np.sin),
    Op.COS: _ufunc(np.cos),
    Op.SIGN: _ufunc(np.sign),
    Op.GELU: _float_unary(_gelu, needs_scratch=True),
    Op.HARD_SWISH: _float_unary(_hard_swish, needs_scratch=True),
    Op.CAST: Kernel(_prepare_cast, _eval_cast),
    Op.DEQUANTIZE: Kernel(_prepare_dequantize, bound_eval(_bind_dequantize), bind=_bind_dequantize),
}
