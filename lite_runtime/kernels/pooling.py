"""MAX_POOL_2D and AVERAGE_POOL_2D (float32); SAME average pooling divides by the count of valid pixels."""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from lite_runtime.kernels.base import FLOAT32, Kernel, Node, activation, bound_eval, window
from lite_runtime.schema import BuiltinOperator as Op


class PoolWindow(NamedTuple):
    """A pooling operator's geometry: input [batch, height, width, channels], window, strides, output size
    and (before, after) padding of each spatial dimension, as TFLite computes them."""

    batch: int
    height: int
    width: int
    channels: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    out_h: int
    out_w: int
    top: int
    bottom: int
    left: int
    right: int

    @property
    def tiles(self) -> bool:
        """Whether the windows tile the input exactly (2x2 stride 2, unpadded): the fast max-pool path."""
        return (self.kernel_h, self.kernel_w) == (self.stride_h, self.stride_w) and not any(
            (self.top, self.bottom, self.left, self.right)
        )


def pool_window(node: Node, x) -> PoolWindow:
    """Checks the input's rank and the window options of a float or int8 pooling operator."""
    node.check(len(x.shape) == 4, f"input must be NHWC, got {list(x.shape)}")
    batch, height, width, channels = x.shape
    kernel_h, kernel_w = node.option("filter_height"), node.option("filter_width")
    stride_h, stride_w = node.option("stride_h"), node.option("stride_w")
    node.check(0 < kernel_h * kernel_w <= 4096, f"pool window {kernel_h}x{kernel_w} is empty or over 4096 pixels")
    out_h, top, bottom = window(node, height, kernel_h, stride_h, 1, node.option("padding"))
    out_w, left, right = window(node, width, kernel_w, stride_w, 1, node.option("padding"))
    return PoolWindow(batch, height, width, channels, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w, top, bottom, left, right)


def _prepare(node: Node, fill: float):
    node.arity(1)
    geometry = pool_window(node, node.float_input(0))
    batch, height, width, channels, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w, top, bottom, left, right = geometry
    act = activation(node, node.option("fused_activation_function"), (batch, out_h, out_w, channels))
    if fill == -np.inf and geometry.tiles:
        # Windows that tile the input: the max of each block of rows is one reduce over contiguous runs of a row
        # (width · channels floats), then the max of each block of columns a few copies and maximums.
        rows = node.scratch((batch, out_h, width * channels)) if kernel_h > 1 else None
        column = node.scratch((batch, out_h, out_w, channels)) if kernel_w > 1 else None
        return [((batch, out_h, out_w, channels), FLOAT32)], (None, None, None, act, (kernel_h, kernel_w, rows, column))
    padded = node.scratch((batch, height + top + bottom, width + left + right, channels), fill=fill)
    interior = padded[:, top : top + height, left : left + width, :]
    taps = [padded[:, i : i + (out_h - 1) * stride_h + 1 : stride_h, j : j + (out_w - 1) * stride_w + 1 : stride_w, :]
            for i in range(kernel_h) for j in range(kernel_w)]  # fmt: skip
    valid = np.zeros((height + top + bottom, width + left + right), np.float32)
    valid[top : top + height, left : left + width] = 1
    counts = sum(v[i : i + (out_h - 1) * stride_h + 1 : stride_h, j : j + (out_w - 1) * stride_w + 1 : stride_w]
                 for v in [valid] for i in range(kernel_h) for j in range(kernel_w))  # fmt: skip
    counts = node.tiled(np.maximum(counts, 1)[None, :, :, None], (batch, out_h, out_w, channels), np.float32)
    return [((batch, out_h, out_w, channels), FLOAT32)], (interior, taps, counts, act, None)


def _view(array: np.ndarray, shape) -> np.ndarray:
    """``array`` reshaped without a copy (a planned array is C-contiguous, so its blocks always are views)."""
    view = array.reshape(shape)
    if view.size and not np.may_share_memory(view, array):
        raise ValueError(f"a {array.shape} view with strides {array.strides} cannot be reshaped to {shape} in place")
    return view


def _bind_max(state, inputs, outputs):
    _interior, _taps, _counts, act, blocks = state
    if blocks is None:
        return functools.partial(_eval_max, state, inputs, outputs)
    kernel_h, kernel_w, rows, column = blocks
    x, out = inputs[0], outputs[0]
    batch, out_h, out_w, channels = out.shape
    width = x.shape[2]
    row_blocks = _view(x[:, : out_h * kernel_h], (batch, out_h, kernel_h, width * channels)) if kernel_h > 1 else None
    by_rows = rows if kernel_h > 1 else x[:, :out_h]
    columns = _view(_view(by_rows, (batch, out_h, width, channels))[:, :, : out_w * kernel_w], (batch, out_h, out_w, kernel_w, channels))
    reduce, maximum = np.maximum.reduce, np.maximum
    firsts, others = columns[:, :, :, 0], [columns[:, :, :, j] for j in range(1, kernel_w)]

    def run():
        if row_blocks is not None:
            reduce(row_blocks, 2, None, rows)
        out[...] = firsts  # item assignment: np.copyto's copy without its dispatch
        for other in others:  # strided operands make a ufunc allocate; a copy to contiguous scratch does not
            column[...] = other
            maximum(out, column, out=out)
        if act is not None:
            act(out)

    return run


def _eval_max(state, inputs, outputs):
    interior, taps, _counts, act, _blocks = state
    np.copyto(interior, inputs[0])
    out = outputs[0]
    np.copyto(out, taps[0])
    for tap in taps[1:]:
        np.maximum(out, tap, out=out)
    if act is not None:
        act(out)


def _eval_average(state, inputs, outputs):
    interior, taps, counts, act, _blocks = state
    np.copyto(interior, inputs[0])
    out = outputs[0]
    np.copyto(out, taps[0])
    for tap in taps[1:]:
        np.add(out, tap, out=out)
    np.divide(out, counts, out=out)
    if act is not None:
        act(out)


BIND_MAX_EVAL = bound_eval(_bind_max)  # int8 MAX_POOL_2D runs the same calls on int8 codes (``quantized``)

KERNELS = {
    Op.MAX_POOL_2D: Kernel(lambda node: _prepare(node, -np.inf), BIND_MAX_EVAL, bind=_bind_max),
    Op.AVERAGE_POOL_2D: Kernel(lambda node: _prepare(node, 0.0), _eval_average),
}
