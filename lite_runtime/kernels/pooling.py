"""MAX_POOL_2D and AVERAGE_POOL_2D (float32); SAME average pooling divides by the count of valid pixels."""

from __future__ import annotations

import numpy as np

from lite_runtime.kernels.base import FLOAT32, Kernel, Node, activation, window
from lite_runtime.schema import BuiltinOperator as Op


def _prepare(node: Node, fill: float):
    node.arity(1)
    x = node.float_input(0)
    node.check(len(x.shape) == 4, f"input must be NHWC, got {list(x.shape)}")
    batch, height, width, channels = x.shape
    kernel_h, kernel_w = node.option("filter_height"), node.option("filter_width")
    stride_h, stride_w = node.option("stride_h"), node.option("stride_w")
    node.check(0 < kernel_h * kernel_w <= 4096, f"pool window {kernel_h}x{kernel_w} is empty or over 4096 pixels")
    out_h, top, bottom = window(node, height, kernel_h, stride_h, 1, node.option("padding"))
    out_w, left, right = window(node, width, kernel_w, stride_w, 1, node.option("padding"))
    padded = node.scratch((batch, height + top + bottom, width + left + right, channels), fill=fill)
    interior = padded[:, top : top + height, left : left + width, :]
    taps = [padded[:, i : i + (out_h - 1) * stride_h + 1 : stride_h, j : j + (out_w - 1) * stride_w + 1 : stride_w, :]
            for i in range(kernel_h) for j in range(kernel_w)]  # fmt: skip
    valid = np.zeros((height + top + bottom, width + left + right), np.float32)
    valid[top : top + height, left : left + width] = 1
    counts = sum(v[i : i + (out_h - 1) * stride_h + 1 : stride_h, j : j + (out_w - 1) * stride_w + 1 : stride_w]
                 for v in [valid] for i in range(kernel_h) for j in range(kernel_w))  # fmt: skip
    state = (interior, taps, np.maximum(counts, 1)[None, :, :, None].astype(np.float32),
             activation(node, node.option("fused_activation_function")))  # fmt: skip
    return [((batch, out_h, out_w, channels), FLOAT32)], state


def _eval_max(state, inputs, outputs):
    interior, taps, _counts, act = state
    np.copyto(interior, inputs[0])
    out = outputs[0]
    np.copyto(out, taps[0])
    for tap in taps[1:]:
        np.maximum(out, tap, out=out)
    if act is not None:
        act(out)


def _eval_average(state, inputs, outputs):
    interior, taps, counts, act = state
    np.copyto(interior, inputs[0])
    out = outputs[0]
    np.copyto(out, taps[0])
    for tap in taps[1:]:
        np.add(out, tap, out=out)
    np.divide(out, counts, out=out)
    if act is not None:
        act(out)


KERNELS = {
    Op.MAX_POOL_2D: Kernel(lambda node: _prepare(node, -np.inf), _eval_max),
    Op.AVERAGE_POOL_2D: Kernel(lambda node: _prepare(node, 0.0), _eval_average),
}
