"""Activations, softmax and the neural-network primitives built on them."""

from __future__ import annotations

import math

from trainer import dtypes
from trainer.ops import array_ops, math_ops
from trainer.ops.math_ops import cast, multiply
from trainer.ops.registry import GradientNotSupportedError, OpError, Spec, broadcast_shapes, execute, normalize_axis, register, require_floating
from trainer.tensor import convert_to_tensor


def _float_infer(name):
    def infer(x: Spec, **_attrs) -> Spec:
        require_floating(name, x)
        return x

    return infer


@register("relu", infer=_float_infer("relu"))
def relu_op(xp, x):
    return xp.maximum(x, 0)


@relu_op.def_gradient
def _(node, grad):
    return execute(relu_grad_op, (grad, node.outputs[0]), {})


@register("relu_grad", infer=lambda grad, y: grad)
def relu_grad_op(xp, grad, y):
    """Passes ``grad`` where the ReLU output is positive (one fused kernel instead of compare+cast+mul)."""
    return grad * (y > 0)


@relu_grad_op.def_gradient
def _(node, grad):
    return execute(relu_grad_op, (grad, node.inputs[1]), {}), None


@register("relu6", infer=_float_infer("relu6"))
def relu6_op(xp, x):
    return xp.clip(x, 0, 6)


@relu6_op.def_gradient
def _(node, grad):
    x = node.inputs[0]
    inside = math_ops.logical_and(math_ops.greater(x, 0), math_ops.less(x, 6))
    return multiply(grad, cast(inside, grad.dtype))


@register("leaky_relu", infer=_float_infer("leaky_relu"))
def leaky_relu_op(xp, x, *, alpha):
    return xp.where(x > 0, x, x * x.dtype.type(alpha))


@leaky_relu_op.def_gradient
def _(node, grad):
    x = node.inputs[0]
    alpha = node.attrs["alpha"]
    ones = array_ops.ones_like(x)
    slope = array_ops.where(math_ops.greater(x, 0), ones, multiply(ones, alpha))
    return multiply(grad, slope)


@register("softmax", infer=_float_infer("softmax"))
def softmax_op(xp, x, *, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    exps = xp.exp(shifted)
    exps /= exps.sum(axis=axis, keepdims=True)
    return exps


@softmax_op.def_gradient
def _(node, grad):
    y = node.outputs[0]
    axis = node.attrs["axis"]
    inner = math_ops.reduce_sum(multiply(grad, y), axis, keepdims=True)
    return multiply(y, math_ops.subtract(grad, inner))


@register("log_softmax", infer=_float_infer("log_softmax"))
def log_softmax_op(xp, x, *, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


@log_softmax_op.def_gradient
def _(node, grad):
    y = node.outputs[0]
    axis = node.attrs["axis"]
    total = math_ops.reduce_sum(grad, axis, keepdims=True)
    return math_ops.subtract(grad, multiply(math_ops.exp(y), total))


def _sparse_crossentropy_infer(logits: Spec, labels: Spec, *grad: Spec) -> Spec:
    """The per-row loss [...] of logits [..., classes] and integer labels [...]; with ``grad`` (the
    gradient op), the logits' gradient [..., classes]."""
    name = "sparse_softmax_cross_entropy_grad" if grad else "sparse_softmax_cross_entropy_with_logits"
    require_floating(name, logits)
    if not logits.shape or not labels.dtype.is_integer:
        raise OpError(
            f"op '{name}': needs logits [..., classes] and integer labels [...], "
            f"got logits {logits.shape} and {labels.dtype.name} labels"
        )
    for what, spec in (("labels", labels), *(("gradient", g) for g in grad)):
        if len(spec.shape) != len(logits.shape) - 1 or not all(
            a is None or b is None or a == b for a, b in zip(spec.shape, logits.shape)
        ):
            raise OpError(f"op '{name}': {what} {spec.shape} do not match logits {logits.shape}")
    return Spec(logits.shape, logits.dtype) if grad else Spec(logits.shape[:-1], logits.dtype)


def _at_labels(xp, rows, labels):
    """The index (row numbers, labels) of each row's labelled element in ``rows`` (a 2-D view): a fancy
    index, 3x cheaper than ``take_along_axis`` on a batch of ten classes."""
    return xp.arange(rows.shape[0]), labels.reshape(-1)


@register("sparse_softmax_cross_entropy_with_logits", infer=_sparse_crossentropy_infer, training_only=True)
def sparse_softmax_cross_entropy_with_logits_op(xp, logits, labels):
    """``-log(softmax(logits)[label])`` per row, computed as TensorFlow's fused kernel does it:
    ``log(sum(exp(logits - max))) - (logits[label] - max)``. Labels must lie in ``[0, classes)`` (the losses
    check them with ``check_index_range`` first)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_sums = xp.log(xp.exp(shifted).sum(axis=-1))
    rows = shifted.reshape(-1, shifted.shape[-1])
    return log_sums - rows[_at_labels(xp, rows, labels)].reshape(labels.shape)


@sparse_softmax_cross_entropy_with_logits_op.def_gradient
def _(node, grad):
    logits, labels = node.inputs
    return execute(sparse_softmax_cross_entropy_grad_op, (logits, labels, grad), {}), None


@register("sparse_softmax_cross_entropy_grad", infer=_sparse_crossentropy_infer, training_only=True)
def sparse_softmax_cross_entropy_grad_op(xp, logits, labels, grad):
    """The gradient of ``sparse_softmax_cross_entropy_with_logits``: ``(softmax(logits) - one_hot(labels)) *
    grad[..., None]``, in one node (one pass to normalize, one to subtract the labels' ones, one to scale)."""
    probabilities = xp.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    rows = probabilities.reshape(-1, probabilities.shape[-1])  # a view: the array is new and contiguous
    rows[_at_labels(xp, rows, labels)] -= 1  # one label per row: no index repeats
    probabilities *= grad[..., None]
    return probabilities


def _loss_and_gradient_infer(logits: Spec, labels: Spec, grad: Spec) -> tuple:
    loss = _sparse_crossentropy_infer(logits, labels)
    # The upstream gradient may be any value that broadcasts to the loss's shape (and no further).
    fits = len(grad.shape) <= len(loss.shape)
    if fits:
        try:
            fits = broadcast_shapes(grad.shape, loss.shape) == tuple(loss.shape)
        except OpError:
            fits = False
    if not fits:
        raise OpError(f"op 'sparse_softmax_cross_entropy_and_grad': gradient {grad.shape} does not broadcast to the loss {loss.shape}")
    return loss, Spec(logits.shape, logits.dtype)


@register(
    "sparse_softmax_cross_entropy_and_grad", infer=_loss_and_gradient_infer, num_outputs=2, training_only=True
)
def sparse_softmax_cross_entropy_and_grad_op(xp, logits, labels, grad):
    """``sparse_softmax_cross_entropy_with_logits(logits, labels)`` and
    ``sparse_softmax_cross_entropy_grad(logits, labels, grad)`` from one softmax, as TensorFlow's kernel
    returns the loss and its backprop together: the same operations in the same order as the two
    ops, so the same bits (``trainer/graph/passes/crossentropy.py`` merges the pair in training steps)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exps = xp.exp(shifted)
    sums = exps.sum(axis=-1, keepdims=True)
    rows = shifted.reshape(-1, shifted.shape[-1])
    at_labels = _at_labels(xp, rows, labels)
    losses = xp.log(sums[..., 0]) - rows[at_labels].reshape(labels.shape)
    exps /= sums
    probabilities = exps.reshape(-1, exps.shape[-1])  # a view: the array is new and contiguous
    probabilities[at_labels] -= 1
    exps *= grad[..., None]
    return losses, exps


@sparse_softmax_cross_entropy_and_grad_op.def_gradient
def _(node, *grads):
    raise GradientNotSupportedError(
        "op 'sparse_softmax_cross_entropy_and_grad' has no gradient: it only appears in optimized training "
        "steps, after the gradients are taken"
    )


@sparse_softmax_cross_entropy_grad_op.def_gradient
def _(node, grad):
    raise GradientNotSupportedError(
        "the second derivative of a crossentropy computed from logits is not supported (its gradient is one "
        "fused op, as TensorFlow's); compute the loss with tf.nn.log_softmax for higher-order gradients"
    )


# -- public functions (tf.nn.*) ------------------------------------------------------------------------


def relu(features, name=None):
    return execute(relu_op, (convert_to_tensor(features),), {})


def relu6(features, name=None):
    return execute(relu6_op, (convert_to_tensor(features),), {})


def leaky_relu(features, alpha=0.2, name=None):
    return execute(leaky_relu_op, (convert_to_tensor(features),), {"alpha": float(alpha)})


def softmax(logits, axis=-1, name=None):
    x = convert_to_tensor(logits)
    return execute(softmax_op, (x,), {"axis": normalize_axis(axis, x.ndim, "softmax")})


def log_softmax(logits, axis=-1, name=None):
    x = convert_to_tensor(logits)
    return execute(log_softmax_op, (x,), {"axis": normalize_axis(axis, x.ndim, "log_softmax")})


def sigmoid(x, name=None):
    return math_ops.sigmoid(x)


def tanh(x, name=None):
    return math_ops.tanh(x)


def elu(features, alpha=1.0, name=None):
    x = convert_to_tensor(features)
    return array_ops.where(math_ops.greater(x, 0), x, multiply(math_ops.subtract(math_ops.exp(x), 1), alpha))


def selu(features, name=None):
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return multiply(elu(features, alpha), scale)


def softplus(features, name=None):
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|), stable for large |x|.
    x = convert_to_tensor(features)
    return math_ops.add(relu(x), math_ops.log1p(math_ops.exp(math_ops.negative(math_ops.abs(x)))))


def swish(features, beta=1.0, name=None):
    x = convert_to_tensor(features)
    return multiply(x, math_ops.sigmoid(multiply(x, beta) if beta != 1.0 else x))


silu = swish


def gelu(features, approximate=False, name=None):
    """Gaussian error linear unit; ``approximate=True`` uses the tanh form (Keras's default is exact)."""
    x = convert_to_tensor(features)
    if approximate:
        inner = multiply(math_ops.add(x, multiply(math_ops.pow(x, 3), 0.044715)), math.sqrt(2 / math.pi))
        return multiply(multiply(x, 0.5), math_ops.add(math_ops.tanh(inner), 1))
    return multiply(multiply(x, 0.5), math_ops.add(math_ops.erf(multiply(x, 1 / math.sqrt(2))), 1))


def hard_sigmoid(x, name=None):
    return array_ops.clip_by_value(math_ops.add(multiply(x, 1 / 6), 0.5), 0.0, 1.0)


def hard_swish(x, name=None):
    x = convert_to_tensor(x)
    return multiply(x, multiply(relu6(math_ops.add(x, 3.0)), 1 / 6))


def bias_add(value, bias, data_format=None, name=None):
    if data_format not in (None, "NHWC", "N...C"):
        raise NotImplementedError(f"bias_add data_format={data_format!r} is not supported by emberflow; use NHWC")
    return math_ops.add(value, bias)


def l2_normalize(x, axis=None, epsilon=1e-12, name=None):
    x = convert_to_tensor(x)
    squared = math_ops.reduce_sum(math_ops.square(x), axis, keepdims=True)
    return multiply(x, math_ops.rsqrt(math_ops.maximum(squared, epsilon)))


def dropout(x, rate, noise_shape=None, seed=None, name=None):
    """``tf.nn.dropout``: zeroes elements with probability ``rate`` and scales the rest by 1/(1-rate)."""
    from trainer.ops import random_ops  # noqa: PLC0415

    x = convert_to_tensor(x)
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    if rate == 0:
        return x
    keep = random_ops.uniform_like(x if noise_shape is None else array_ops.zeros(noise_shape, x.dtype), seed=seed)
    mask = cast(math_ops.greater_equal(keep, rate), x.dtype)
    return multiply(x, multiply(mask, 1 / (1 - rate)))


def sparse_softmax_cross_entropy_with_logits(labels, logits, name=None):
    """``-log(softmax(logits)[label])`` for each row, as one fused op (its gradient one more).

    Labels must lie in ``[0, classes)``; an out-of-range label raises (eagerly now, traced when the step runs).
    """
    logits = convert_to_tensor(logits)
    labels = convert_to_tensor(labels, dtype_hint=dtypes.int32)
    depth = logits.shape.as_tuple()[-1] if logits.shape.as_tuple() else None
    if depth is not None:
        context = "sparse_softmax_cross_entropy_with_logits: labels"
        labels = execute(array_ops.check_index_range_op, (labels,), {"depth": depth, "ignore": None, "context": context})
    return execute(sparse_softmax_cross_entropy_with_logits_op, (logits, labels), {})


def softmax_cross_entropy_with_logits(labels, logits, axis=-1, name=None):
    logits = convert_to_tensor(logits)
    labels = convert_to_tensor(labels, dtype=logits.dtype)
    return math_ops.negative(math_ops.reduce_sum(multiply(labels, log_softmax(logits, axis)), axis))


def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    # max(x, 0) - x*z + log(1 + e^-|x|): TensorFlow's overflow-free form.
    logits = convert_to_tensor(logits)
    labels = convert_to_tensor(labels, dtype=logits.dtype)
    return math_ops.add(
        math_ops.subtract(relu(logits), multiply(logits, labels)),
        math_ops.log1p(math_ops.exp(math_ops.negative(math_ops.abs(logits)))),
    )
