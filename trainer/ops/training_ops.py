"""Optimizer updates: training-only ops that write new values into variables and their slots in place.

Each kernel is one fused update in NumPy/CuPy arithmetic, so a step costs one op call per variable
instead of a dozen. The inputs that are variables (the weight and its slots) are updated in place;
the gradient and the scalar inputs are only read. Scalars that change from step to step (the learning
rate, Adam's bias-corrected step size) arrive as 0-d tensor inputs, not attributes, so a traced
training step reads their current value on every run instead of baking in the value at trace time.

The optimizers in ``trainer/keras/optimizers/`` compute those scalars (in the variable's dtype) and
call these ops; the formulas are Keras 3's, written out in each op's docstring.
"""

from __future__ import annotations

import functools

import numpy as np

from trainer.ops import parallel
from trainer.ops.registry import OpError, Spec, register


def _update_infer(op_name: str, tensors: int):
    """Shape rule of an update: the first ``tensors`` inputs (variable, slots, gradient) share one
    shape and dtype; the rest are scalars of that dtype. The op has no outputs."""

    def infer(*specs: Spec, **_attrs) -> tuple:
        variable = specs[0]
        for index, spec in enumerate(specs[1:], start=1):
            if spec.dtype is not variable.dtype:
                raise OpError(
                    f"op '{op_name}': input {index} has dtype {spec.dtype.name}, the variable is {variable.dtype.name}"
                )
            expected = variable.shape if index < tensors else ()
            if len(spec.shape) != len(expected) or any(
                a is not None and b is not None and a != b for a, b in zip(spec.shape, expected)
            ):
                raise OpError(f"op '{op_name}': input {index} has shape {spec.shape}, expected {expected}")
        return ()

    return infer


def _training_op(name: str, tensors: int):
    return register(
        name,
        infer=_update_infer(name, tensors),
        num_outputs=0,
        differentiable=False,
        training_only=True,
        stateful=True,
    )


@_training_op("apply_gradient_descent", tensors=2)
def apply_gradient_descent_op(xp, variable, gradient, learning_rate):
    """Plain SGD: ``variable -= gradient * learning_rate``."""
    variable -= gradient * learning_rate


@_training_op("apply_momentum", tensors=3)
def apply_momentum_op(xp, variable, momentum_slot, gradient, learning_rate, *, momentum, nesterov):
    """Keras 3 SGD with momentum.

    ``m = momentum * m - gradient * learning_rate``; then ``variable += momentum * m - gradient *
    learning_rate`` when ``nesterov``, else ``variable += m``.
    """
    step = gradient * learning_rate
    momentum_slot *= momentum
    momentum_slot -= step
    if nesterov:
        variable += xp.subtract(momentum_slot * momentum, step, out=step)
    else:
        variable += momentum_slot


def _adam_moments(xp, m, v, gradient, beta_1, beta_2):
    """``m += (g - m) * (1 - beta_1)``; ``v += (g*g - v) * (1 - beta_2)``; returns a scratch buffer."""
    scratch = gradient - m
    scratch *= 1 - beta_1
    m += scratch
    xp.multiply(gradient, gradient, out=scratch)
    scratch -= v
    scratch *= 1 - beta_2
    v += scratch
    return scratch


def _adam_step(xp, variable, m, v, alpha, epsilon, scratch):
    """``variable -= m / (sqrt(v) + epsilon) * alpha``, computed in ``scratch``: no second buffer."""
    xp.sqrt(v, out=scratch)
    scratch += epsilon
    xp.divide(m, scratch, out=scratch)
    scratch *= alpha
    variable -= scratch


def _step_size_infer(iterations: Spec, learning_rate: Spec, *, beta_1, beta_2, dtype) -> Spec:
    for name, spec in (("iterations", iterations), ("learning_rate", learning_rate)):
        if spec.shape != ():
            raise OpError(f"op 'adam_step_size': {name} must be a scalar, got shape {spec.shape}")
    return Spec((), dtype)


@register("adam_step_size", infer=_step_size_infer, differentiable=False, training_only=True)
def adam_step_size_op(xp, iterations, learning_rate, *, beta_1, beta_2, dtype):
    """Adam's step size ``alpha = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` for step
    ``t = iterations + 1``, in ``dtype``: one node instead of nine scalar ones, with the same
    operations in the same order and dtype (so the same bits)."""
    float_type = dtype.as_numpy_dtype
    if xp is np:
        # NumPy scalars of the dtype: the same roundings as 0-d arrays, a few microseconds sooner.
        step = float_type(iterations + 1)
        one = float_type(1.0)
        beta_1_power = np.power(float_type(beta_1), step)
        beta_2_power = np.power(float_type(beta_2), step)
        return np.asarray(float_type(learning_rate) * np.sqrt(one - beta_2_power) / (one - beta_1_power))
    step = (iterations + 1).astype(float_type)
    one = xp.asarray(1.0, dtype=float_type)
    beta_1_power = xp.power(xp.asarray(beta_1, dtype=float_type), step)
    beta_2_power = xp.power(xp.asarray(beta_2, dtype=float_type), step)
    learning_rate = learning_rate.astype(float_type, copy=False)
    return xp.asarray(learning_rate * xp.sqrt(one - beta_2_power) / (one - beta_1_power))


def _elementwise_split(xp, update, arrays, passes: int) -> None:
    """Runs ``update(*arrays)`` over flat chunks of ``arrays`` on the intra-op threads when they are
    large and all C-contiguous (a flat view of any other array would be a copy, losing the writes)."""
    if passes * arrays[0].nbytes < parallel.MIN_SPLIT_BYTES or not all(a.flags.c_contiguous for a in arrays):
        update(*arrays)  # too small to split (most variables): no flat views, no slicing
        return
    flat = [a.reshape(-1) for a in arrays]
    parallel.split(
        xp, lambda start, stop: update(*[a[start:stop] for a in flat]), flat[0].size, passes * flat[0].nbytes
    )


@_training_op("apply_adam", tensors=4)
def apply_adam_op(xp, variable, m, v, gradient, alpha, *, beta_1, beta_2, epsilon):
    """Keras 3 Adam.

    ``m += (g - m) * (1 - beta_1)``; ``v += (g^2 - v) * (1 - beta_2)``;
    ``variable -= m * alpha / (sqrt(v) + epsilon)``, where the optimizer passes
    ``alpha = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` for step ``t = iterations + 1``.
    """

    if xp is not np:  # CuPy: one fused kernel launch per variable instead of twelve
        _cupy_adam_kernel(xp)(gradient, alpha, 1 - beta_1, 1 - beta_2, epsilon, variable, m, v)
        return

    def update(variable, m, v, gradient):
        scratch = _adam_moments(xp, m, v, gradient, beta_1, beta_2)
        _adam_step(xp, variable, m, v, alpha, epsilon, scratch)

    _elementwise_split(xp, update, (variable, m, v, gradient), passes=12)


@functools.cache
def _cupy_adam_kernel(cupy):
    """``apply_adam``'s arithmetic, in the same order, as one CuPy elementwise kernel (built on first use)."""
    return cupy.ElementwiseKernel(
        "T g, T alpha, T one_minus_beta_1, T one_minus_beta_2, T epsilon",
        "T variable, T m, T v",
        """
        m += (g - m) * one_minus_beta_1;
        v += (g * g - v) * one_minus_beta_2;
        variable -= m / (sqrt(v) + epsilon) * alpha;
        """,
        "emberflow_apply_adam",
    )


@_training_op("apply_adam_amsgrad", tensors=5)
def apply_adam_amsgrad_op(xp, variable, m, v, v_hat, gradient, alpha, *, beta_1, beta_2, epsilon):
    """Keras 3 Adam with ``amsgrad=True``: as ``apply_adam`` with ``v_hat = max(v_hat, v)`` in the
    denominator instead of ``v``."""

    def update(variable, m, v, v_hat, gradient):
        scratch = _adam_moments(xp, m, v, gradient, beta_1, beta_2)
        xp.maximum(v_hat, v, out=v_hat)
        _adam_step(xp, variable, m, v_hat, alpha, epsilon, scratch)

    _elementwise_split(xp, update, (variable, m, v, v_hat, gradient), passes=13)


def _rmsprop_infer(*specs: Spec, rho, momentum, epsilon, centered) -> tuple:
    # inputs: variable, velocity, gradient, learning_rate, then [average_gradient] [momentum_slot]
    extra = int(bool(centered)) + int(momentum > 0)
    if len(specs) != 4 + extra:
        raise OpError(
            f"op 'apply_rmsprop' with centered={centered}, momentum={momentum} takes {4 + extra} inputs, "
            f"got {len(specs)}"
        )
    reordered = (specs[0], specs[1], specs[2], *specs[4:], specs[3])
    return _update_infer("apply_rmsprop", 3 + extra)(*reordered)


@register("apply_rmsprop", infer=_rmsprop_infer, num_outputs=0, differentiable=False, training_only=True, stateful=True)
def apply_rmsprop_op(xp, variable, velocity, gradient, learning_rate, *slots, rho, momentum, epsilon, centered):
    """Keras 3 RMSprop; ``slots`` are ``average_gradient`` (when ``centered``) then the momentum slot
    (when ``momentum > 0``), the slots Keras creates.

    ``velocity = rho * velocity + (1 - rho) * g^2``; when centered, ``average_gradient = rho *
    average_gradient + (1 - rho) * g`` and ``denominator = velocity - average_gradient^2 + epsilon``,
    else ``denominator = velocity + epsilon``; ``increment = learning_rate * g / sqrt(denominator)``;
    with momentum ``m = momentum * m + increment; variable -= m``, else ``variable -= increment``.
    """
    scratch = gradient * gradient
    scratch *= 1 - rho
    velocity *= rho
    velocity += scratch
    if centered:
        average_gradient = slots[0]
        xp.multiply(gradient, 1 - rho, out=scratch)
        average_gradient *= rho
        average_gradient += scratch
        xp.multiply(average_gradient, average_gradient, out=scratch)
        xp.subtract(velocity, scratch, out=scratch)
        scratch += epsilon
    else:
        xp.add(velocity, epsilon, out=scratch)
    xp.sqrt(scratch, out=scratch)
    increment = learning_rate * gradient
    increment /= scratch
    if momentum > 0:
        momentum_slot = slots[-1]
        momentum_slot *= momentum
        momentum_slot += increment
        variable -= momentum_slot
    else:
        variable -= increment


@_training_op("apply_weight_decay", tensors=1)
def apply_weight_decay_op(xp, variable, learning_rate, *, weight_decay):
    """Decoupled weight decay as Keras 3 applies it before each update: ``variable -= variable *
    weight_decay * learning_rate``."""
    decay = variable * weight_decay
    decay *= learning_rate
    variable -= decay
