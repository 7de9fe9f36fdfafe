"""FULLY_CONNECTED and BATCH_MATMUL (float32): one matrix product into the planned output."""

from __future__ import annotations

import functools
import math

import numpy as np

from lite_runtime.kernels.base import FLOAT32, Kernel, Node, activation, bound_eval
from lite_runtime.schema import BuiltinOperator as Op


def _prepare_fully_connected(node: Node):
    node.arity(2, 3)
    x, weights = node.float_input(0), node.float_input(1)
    bias = node.input(2)
    node.check(node.option("weights_format") == 0, "only the DEFAULT weights format is supported")
    node.check(len(weights.shape) == 2, f"weights must be [out, in], got {list(weights.shape)}")
    units, depth = weights.shape
    size = math.prod(x.shape)
    node.check(depth > 0 and x.shape and size % depth == 0, f"input {list(x.shape)} does not divide into rows of {depth}")
    if node.option("keep_num_dims"):
        node.check(x.shape[-1] == depth, f"input last dim {x.shape[-1]}, expected {depth}")
        shape = (*x.shape[:-1], units)
    else:
        shape = (size // depth, units)
    if bias is not None:
        node.check(bias.dtype == FLOAT32 and bias.shape == (units,), f"bias {list(bias.shape)}, expected [{units}]")
    rows = size // depth
    # Constant weights: at one row, sgemv reads the file's [out, in] layout (as a transposed view) faster than
    # its transpose (2x at 10 units); at more rows sgemm is faster on a C-order [in, out] copy.
    matrix = None
    if weights.value is not None:
        matrix = np.ascontiguousarray(weights.value).T if rows == 1 else np.ascontiguousarray(weights.value.T)
    # A constant bias is tiled to the output (a ufunc that broadcasts allocates: Node.tiled); one computed at
    # run time is read as (1, units): equal ranks take NumPy's fast path, 3x at batch 1.
    constant_bias = node.tiled(bias.value, (rows, units), np.float32) if bias is not None and bias.value is not None else None
    act = activation(node, node.option("fused_activation_function"), (rows, units))
    # One row, constant weights and bias: the bias becomes the matrix's last row, multiplied by a 1 the
    # planner leaves room for after the input (Node.extend_input), so that sgemv adds it: one NumPy call less.
    augmented = None
    if rows == 1 and matrix is not None and constant_bias is not None:
        augmented = node.scratch((units, depth + 1))
        augmented[:, :depth], augmented[:, depth] = weights.value, bias.value
        node.extend_input(0, 1)
    return [(shape, FLOAT32)], (rows, depth, units, matrix, bias is not None, constant_bias, act, augmented)


def _bind_fully_connected(state, inputs, outputs, extended=None):
    rows, depth, units, matrix, has_bias, constant_bias, act, augmented = state
    x, out = inputs[0].reshape(rows, depth), outputs[0].reshape(rows, units)
    weights = inputs[1].T if matrix is None else matrix
    bias = (constant_bias if constant_bias is not None else inputs[2].reshape(1, units)) if has_bias else None
    dot, add = np.dot, np.add  # np.dot: a third less call overhead than np.matmul at batch 1, same BLAS
    if extended is not None and augmented is not None:
        return _bind_bias_in_product(extended, augmented.T, out, act)

    if bias is None and act is None:
        return functools.partial(dot, x, weights, out)
    if act is None:

        def run():
            dot(x, weights, out)
            add(out, bias, out)

        return run

    def run_activated():
        dot(x, weights, out)
        if bias is not None:
            add(out, bias, out)
        act(out)

    return run_activated


def _bind_bias_in_product(extended, matrix, out, act):
    """One row times [weights; bias] with the input's spare element set to 1 (``extended``: input, then 1)."""
    dot, one = np.dot, len(extended) - 1
    row = extended.reshape(1, -1)

    if act is None:

        def run():
            extended[one] = 1.0  # the arena lends this element to other tensors between runs
            dot(row, matrix, out)

        return run

    def run_activated():
        extended[one] = 1.0
        dot(row, matrix, out)
        act(out)

    return run_activated


def _prepare_batch_matmul(node: Node):
    node.arity(2)
    a, b = node.float_input(0), node.float_input(1)
    node.check(len(a.shape) >= 2 and len(b.shape) >= 2, f"operands {list(a.shape)}, {list(b.shape)} need rank >= 2")
    adj_x, adj_y = node.option("adj_x"), node.option("adj_y")
    rows, inner = (a.shape[-1], a.shape[-2]) if adj_x else a.shape[-2:]
    inner_b, cols = (b.shape[-1], b.shape[-2]) if adj_y else b.shape[-2:]
    node.check(inner == inner_b, f"inner dims differ: {list(a.shape)} x {list(b.shape)} (adj_x={adj_x}, adj_y={adj_y})")
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise node.fail(f"batch dims {list(a.shape[:-2])} and {list(b.shape[:-2])} do not broadcast") from None
    return [((*batch, rows, cols), FLOAT32)], (adj_x, adj_y)


def _eval_batch_matmul(state, inputs, outputs):
    adj_x, adj_y = state
    a = np.swapaxes(inputs[0], -1, -2) if adj_x else inputs[0]
    b = np.swapaxes(inputs[1], -1, -2) if adj_y else inputs[1]
    np.matmul(a, b, out=outputs[0])


KERNELS = {
    Op.FULLY_CONNECTED: Kernel(_prepare_fully_connected, bound_eval(_bind_fully_connected), bind=_bind_fully_connected),
    Op.BATCH_MATMUL: Kernel(_prepare_batch_matmul, _eval_batch_matmul),
}
