"""Fused inference ops: a matmul or convolution with its bias and activation, and inference batch norm.

The graph optimizer (``trainer/graph/passes/fusion.py``, ``batch_norm_folding.py``) rewrites chains of
primitive ops into these, so a graph runs one kernel where it ran three and the exporter can lower
each to one TFLite op with a fused activation (``FULLY_CONNECTED``, ``CONV_2D``, ``DEPTHWISE_CONV_2D``).

The kernels compute the primitive kernel's result and then add the bias and apply the activation in
place on it, so they allocate nothing the unfused chain would not, and they give the same numbers.
The gradients are written with the component ops' rules, so a fused graph differentiates exactly as
the chain it replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trainer.ops import conv_ops, math_ops, nn_ops
from trainer.ops.math_ops import cast, multiply, subtract, unbroadcast
from trainer.ops.registry import (
    Node,
    OpError,
    Spec,
    broadcast_shapes,
    execute,
    register,
    require_floating,
    require_same_dtype,
)
from trainer.tensor import convert_to_tensor

# -- the activations a fused op can apply ---------------------------------------------------------------


def _sigmoid_in_place(xp, out):
    # The two-branch form of math_ops.sigmoid (no exp overflows), computed in the output buffer:
    # e = exp(-|x|); sigmoid = 1/(1+e) where x >= 0, else e/(1+e).
    positive = out >= 0
    xp.abs(out, out=out)
    xp.negative(out, out=out)
    xp.exp(out, out=out)
    denominator = out + 1
    xp.copyto(out, 1, where=positive)
    out /= denominator


def _relu6_gradient(grad, y):
    # The output lies strictly between 0 and 6 exactly where the input does, so the mask of relu6's
    # own gradient can be taken from the output.
    inside = math_ops.logical_and(math_ops.greater(y, 0), math_ops.less(y, 6))
    return multiply(grad, cast(inside, grad.dtype))


@dataclass(frozen=True)
class FusedActivation:
    """An activation a fused op applies in place, and its gradient computed from the op's output."""

    apply: Callable  # (xp, out) -> None, overwriting ``out``
    gradient: Callable  # (grad, output) -> the gradient before the activation, written with ops


# Keyed by the names of the unfused ops, so the fusion pass can look an activation node up directly.
FUSED_ACTIVATIONS = {
    "none": FusedActivation(lambda xp, out: None, lambda grad, y: grad),
    "relu": FusedActivation(
        lambda xp, out: xp.maximum(out, 0, out=out), lambda grad, y: execute(nn_ops.relu_grad_op, (grad, y), {})
    ),
    "relu6": FusedActivation(lambda xp, out: xp.clip(out, 0, 6, out=out), _relu6_gradient),
    "tanh": FusedActivation(
        lambda xp, out: xp.tanh(out, out=out), lambda grad, y: multiply(grad, subtract(1, multiply(y, y)))
    ),
    "sigmoid": FusedActivation(_sigmoid_in_place, lambda grad, y: multiply(grad, multiply(y, subtract(1, y)))),
}


def _check_activation(op_name: str, activation) -> None:
    if activation not in FUSED_ACTIVATIONS:
        raise OpError(f"op '{op_name}': activation {activation!r} is not one of {sorted(FUSED_ACTIVATIONS)}")


def _check_bias(op_name: str, output: Spec, bias: tuple) -> None:
    """The optional bias is one rank-1 vector as long as the output's last axis."""
    if len(bias) > 1:
        raise OpError(f"op '{op_name}' takes at most one bias input, got {len(bias)}")
    if bias:
        require_same_dtype(op_name, output, bias[0])
        channels = output.shape[-1]
        if len(bias[0].shape) != 1 or (channels is not None and bias[0].shape[0] not in (None, channels)):
            raise OpError(f"op '{op_name}': the bias must have shape ({channels},), got {tuple(bias[0].shape)}")


def _bias_and_activation(xp, out, bias, activation):
    """Adds the bias and applies the activation in the freshly computed ``out``: no temporaries."""
    if bias:
        out += bias[0]
    FUSED_ACTIVATIONS[activation].apply(xp, out)
    return out


def _component_gradients(op, node, grad, attrs):
    """The gradient of the fused op's first two inputs by the primitive ``op``'s own rule, and the bias's."""
    x, weights, *bias = node.inputs
    grad = FUSED_ACTIVATIONS[node.attrs["activation"]].gradient(grad, node.outputs[0])
    component = Node(op, (x, weights), (), attrs, tuple(node.needs_gradient[:2]))
    grad_x, grad_weights = op.gradient(component, grad)
    if not bias:
        return grad_x, grad_weights
    return grad_x, grad_weights, unbroadcast(grad, bias[0]) if node.needs_gradient[2] else None


# -- fused_matmul ------------------------------------------------------------------------------------------


def _fused_matmul_infer(x: Spec, weights: Spec, *bias: Spec, activation, transpose_b) -> Spec:
    require_floating("fused_matmul", x)
    _check_activation("fused_matmul", activation)
    if len(weights.shape) != 2:
        raise OpError(f"op 'fused_matmul' needs rank-2 weights, got shape {tuple(weights.shape)}")
    output = math_ops.matmul_op.infer(x, weights, transpose_a=False, transpose_b=transpose_b)
    _check_bias("fused_matmul", output, bias)
    return output


@register("fused_matmul", infer=_fused_matmul_infer)
def fused_matmul_op(xp, x, weights, *bias, activation, transpose_b):
    """``activation(x @ weights + bias)``; ``weights`` is [in, out], or [out, in] with ``transpose_b``."""
    out = xp.matmul(x, weights.T if transpose_b else weights)
    return _bias_and_activation(xp, out, bias, activation)


@fused_matmul_op.def_gradient
def _(node, grad):
    attrs = {"transpose_a": False, "transpose_b": node.attrs["transpose_b"]}
    return _component_gradients(math_ops.matmul_op, node, grad, attrs)


# -- fused_conv2d and fused_depthwise_conv2d -----------------------------------------------------------------


def _fused_conv_infer(name, conv_op):
    def infer(x: Spec, filters: Spec, *bias: Spec, activation, strides, padding, dilations) -> Spec:
        _check_activation(name, activation)
        output = conv_op.infer(x, filters, strides=strides, padding=padding, dilations=dilations)
        _check_bias(name, output, bias)
        return output

    return infer


def _fused_conv(name, conv_op):
    """Registers ``name``: ``activation(conv_op(x, filters) + bias)`` with ``conv_op``'s attributes."""

    def forward(xp, x, filters, *bias, activation, strides, padding, dilations):
        out = conv_op.forward(xp, x, filters, strides=strides, padding=padding, dilations=dilations)
        return _bias_and_activation(xp, out, bias, activation)

    forward.__doc__ = f"``activation({conv_op.name}(x, filters) + bias)`` in one kernel."
    op = register(name, infer=_fused_conv_infer(name, conv_op))(forward)

    @op.def_gradient
    def _(node, grad):
        attrs = {key: node.attrs[key] for key in ("strides", "padding", "dilations")}
        return _component_gradients(conv_op, node, grad, attrs)

    return op


fused_conv2d_op = _fused_conv("fused_conv2d", conv_ops.conv2d_op)
fused_depthwise_conv2d_op = _fused_conv("fused_depthwise_conv2d", conv_ops.depthwise_conv2d_op)


# -- batch_norm_inference --------------------------------------------------------------------------------------


def _batch_norm_infer(x: Spec, mean: Spec, variance: Spec, gamma: Spec, beta: Spec, *, epsilon) -> Spec:
    require_floating("batch_norm_inference", x)
    dtype = require_same_dtype("batch_norm_inference", x, mean, variance, gamma, beta)
    return Spec(broadcast_shapes(x.shape, mean.shape, variance.shape, gamma.shape, beta.shape), dtype)


@register("batch_norm_inference", infer=_batch_norm_infer)
def batch_norm_inference_op(xp, x, mean, variance, gamma, beta, *, epsilon):
    """``(x - mean) * (gamma / sqrt(variance + epsilon)) + beta`` with fixed statistics, in one buffer.

    The per-feature factor is computed first (a small vector), in the same order as the composition
    Keras's BatchNormalization used, so the numbers match it.
    """
    scale = 1 / xp.sqrt(variance + variance.dtype.type(epsilon))
    scale *= gamma
    out = x - mean
    out *= scale
    out += beta
    return out


@batch_norm_inference_op.def_gradient
def _(node, grad):
    x, mean, variance, gamma, beta = node.inputs
    need_x, need_mean, need_variance, need_gamma, need_beta = node.needs_gradient
    inverse_std = math_ops.rsqrt(math_ops.add(variance, node.attrs["epsilon"]))
    scale = multiply(inverse_std, gamma)
    grad_scaled = multiply(grad, scale)
    grad_x = unbroadcast(grad_scaled, x) if need_x else None
    grad_mean = unbroadcast(math_ops.negative(grad_scaled), mean) if need_mean else None
    grad_beta = unbroadcast(grad, beta) if need_beta else None
    grad_gamma = grad_variance = None
    if need_gamma or need_variance:
        grad_centered = multiply(grad, subtract(x, mean))
        if need_gamma:
            grad_gamma = unbroadcast(multiply(grad_centered, inverse_std), gamma)
        if need_variance:
            # d/dvariance of gamma * (variance + epsilon)^-1/2 is -gamma/2 * inverse_std^3.
            cubed = multiply(inverse_std, multiply(inverse_std, inverse_std))
            grad_variance = unbroadcast(multiply(grad_centered, multiply(multiply(gamma, cubed), -0.5)), variance)
    return grad_x, grad_mean, grad_variance, grad_gamma, grad_beta


def batch_normalization(x, mean, variance, offset, scale, variance_epsilon, name=None):
    """``tf.nn.batch_normalization``: ``(x - mean) / sqrt(variance + variance_epsilon) * scale + offset``.

    ``offset`` and ``scale`` may be ``None`` (no shift, no scaling). Every argument broadcasts against
    ``x``; one ``batch_norm_inference`` op computes it, which the graph optimizer folds into a
    preceding matmul or convolution.
    """
    x = convert_to_tensor(x)
    mean, variance = (convert_to_tensor(value, dtype=x.dtype) for value in (mean, variance))
    scale = convert_to_tensor(1 if scale is None else scale, dtype=x.dtype)
    offset = convert_to_tensor(0 if offset is None else offset, dtype=x.dtype)
    return execute(batch_norm_inference_op, (x, mean, variance, scale, offset), {"epsilon": float(variance_epsilon)})
