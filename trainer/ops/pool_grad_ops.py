"""``max_pool2d_grad_from_output``: the max-pooling gradient given the pooled output, for training graphs.

``max_pool2d_grad(x, grad)`` finds each window's maximum again (a running maximum and argmax over the
``kh * kw`` offsets) before it routes the gradient. A training step already holds that maximum: the
forward ``max_pool2d(x)``. The graph optimizer (``trainer/graph/passes/pooling_gradients.py``) gives
it to this op, which only compares each offset with it — about 40% fewer passes over the window.
"""

from __future__ import annotations

from trainer.ops import array_ops, conv_ops, parallel
from trainer.ops.registry import Spec, execute, register, require_same_dtype


def _infer(x: Spec, pooled: Spec, grad: Spec, *, ksize, strides, padding) -> Spec:
    require_same_dtype("max_pool2d_grad_from_output", x, pooled)
    return Spec(x.shape, grad.dtype)


@register("max_pool2d_grad_from_output", infer=_infer, training_only=True)
def max_pool2d_grad_from_output_op(xp, x, pooled, grad, *, ksize, strides, padding):
    """``max_pool2d_grad(x, grad)`` where ``pooled = max_pool2d(x)``: each window's gradient goes to
    the first element (row-major) of the window that equals the window's maximum, as there.
    """
    geometry = conv_ops._pool_geometry(x.shape, ksize, strides, padding)
    source = geometry.pad(xp, x, conv_ops._lowest(x.dtype))
    padded_shape = geometry.padded_shape(x.shape)
    disjoint = all(s >= k for s, k in zip(geometry.strides, geometry.kernel))
    (kh, kw), rows, cols = geometry.kernel, geometry.rows.size, geometry.cols.size
    tiles = geometry.kernel == geometry.strides and (rows * kh, cols * kw) == padded_shape[1:3]
    padded = (xp.empty if tiles else xp.zeros)(padded_shape, dtype=grad.dtype)
    offsets = geometry.offsets()

    def unpool(start, stop):  # images [start, stop) of the batch: their windows touch only their rows
        maximum, window_grad, target = pooled[start:stop], grad[start:stop], padded[start:stop]
        taken = None  # windows whose maximum an earlier offset already holds
        for index, (i, j) in enumerate(offsets):
            hit = geometry.view(source[start:stop], i, j) == maximum
            if taken is None:
                taken = hit
            else:
                xp.greater(hit, taken, out=hit)  # a hit here, and none before
                if index + 1 < len(offsets):
                    taken |= hit
            view = geometry.view(target, i, j)
            if disjoint:  # windows do not overlap: each input element is written once
                xp.multiply(window_grad, hit, out=view)
            else:
                view += window_grad * hit

    parallel.split(xp, unpool, x.shape[0], 4 * padded.nbytes)
    return geometry.crop(xp, padded, x.shape)


@max_pool2d_grad_from_output_op.def_gradient
def _(node, upstream):
    # As max_pool2d_grad's: linear in grad; where it goes changes only when the maximum moves.
    x, pooled, _ = node.inputs
    return (
        array_ops.zeros_like(x),
        array_ops.zeros_like(pooled),
        execute(conv_ops.max_pool2d_grad_grad_op, (x, upstream), node.attrs),
    )
