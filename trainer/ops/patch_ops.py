"""``conv2d_patches``: a convolution's im2col patch matrix as an op of its own, for training graphs.

A training step uses each convolution's patches twice — the forward pass multiplies them by the
filters, the filter gradient multiplies their transpose by the output gradient — and each kernel
builds them again. The graph optimizer (``trainer/graph/passes/shared_patches.py``) rewrites that
pair into one ``conv2d_patches`` node read by two matmuls, so the patches are gathered once a step.
"""

from __future__ import annotations

import numpy as np

from trainer.ops import conv_ops
from trainer.ops.registry import GradientNotSupportedError, Spec, execute, register, require_floating
from trainer.tensor import convert_to_tensor


def _patches_infer(x: Spec, *, ksize, strides, padding, dilations) -> Spec:
    require_floating("conv2d_patches", x)
    geometry = conv_ops._geometry(x.shape, ksize, strides, dilations, padding)
    channels = x.shape[3]
    depth = None if channels is None else ksize[0] * ksize[1] * channels
    return Spec(geometry.output_shape(x.shape[0], depth), x.dtype)


@register("conv2d_patches", infer=_patches_infer, training_only=True)
def conv2d_patches_op(xp, x, *, ksize, strides, padding, dilations):
    """Every window of NHWC ``x`` as one row: ``[n, oh, ow, (i * kw + j) * C + c]`` is the input pixel
    that filter tap ``(i, j)`` reads at output ``(oh, ow)`` in channel ``c`` (zero in the padding), so
    ``conv2d(x, filters)`` is this matrix times ``filters.reshape(kh * kw * C, out)``."""
    geometry = conv_ops._geometry(x.shape, ksize, strides, dilations, padding)
    patches = conv_ops._patches(xp, x, geometry)
    return patches.reshape(geometry.output_shape(x.shape[0], -1))


@conv2d_patches_op.def_gradient
def _(node, grad):
    return scatter_patches(node.inputs[0], grad, node.attrs, "conv2d_patches")


def scatter_patches(x, grad, attrs: dict, op_name: str):
    """The adjoint of gathering ``x``'s patches (``grad`` shaped like ``conv2d_patches(x)``): each row
    goes back onto the pixels it came from, which is conv2d_backprop_input with identity filters (tap
    and channel -> column)."""
    kh, kw = attrs["ksize"]
    channels = x.spec.shape[3]
    if channels is None:
        raise GradientNotSupportedError(f"op '{op_name}': the gradient needs a known number of input channels")
    depth = kh * kw * channels
    identity = np.eye(depth, dtype=x.dtype.as_numpy_dtype).reshape(kh, kw, channels, depth)
    window = {key: attrs[key] for key in ("strides", "padding", "dilations")}
    return execute(conv_ops.conv2d_backprop_input_op, (x, convert_to_tensor(identity), grad), window)
