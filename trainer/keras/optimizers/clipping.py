"""Gradient clipping as Keras 3 does it, with ops (so traced steps clip too)."""

from __future__ import annotations

from trainer.ops import math_ops


def clip_by_norm(grad, clip_norm):
    """``grad * clip_norm / max(norm(grad), clip_norm)``: rescaled to L2 norm ``clip_norm`` when longer."""
    norm = math_ops.sqrt(math_ops.reduce_sum(math_ops.square(grad)))
    return math_ops.divide(math_ops.multiply(grad, clip_norm), math_ops.maximum(norm, clip_norm))


def global_norm(grads):
    """The L2 norm of all of ``grads`` together (``None`` entries are skipped)."""
    squared = [math_ops.reduce_sum(math_ops.square(grad)) for grad in grads if grad is not None]
    dtype = squared[0].dtype  # mixed-precision gradients add up in the first one's dtype
    return math_ops.sqrt(math_ops.add_n([math_ops.cast(value, dtype) for value in squared]))


def clip_by_global_norm(grads, clip_norm):
    """Every gradient times ``clip_norm * min(1 / global_norm, 1 / clip_norm)``; NaN when the norm is
    not finite (as Keras), so a diverged step shows up instead of being hidden."""
    norm = global_norm(grads)
    scale = math_ops.multiply(clip_norm, math_ops.minimum(math_ops.divide(1.0, norm), 1.0 / clip_norm))
    scale = math_ops.add(scale, math_ops.subtract(norm, norm))
    return [None if grad is None else math_ops.multiply(grad, math_ops.cast(scale, grad.dtype)) for grad in grads]
