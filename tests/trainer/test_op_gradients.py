"""Every differentiable op's gradient against central finite differences, in float64, on random shapes.

The cases (inputs in valid domains, attributes) come from ``op_cases.py``; a differentiable op without a
case fails here, so a new op cannot skip the check. Second derivatives (nested tapes) are checked for
the ops in ``SECOND_ORDER_OPS`` against finite differences of the tape's first derivative.
"""

from __future__ import annotations

import numpy as np
import pytest

import trainer as tf
from tests.trainer.op_cases import CASES
from trainer.ops.registry import REGISTRY, GradientNotSupportedError, execute

SEEDS = range(5)
DIFFERENTIABLE_OPS = sorted(name for name, op in REGISTRY.items() if op.differentiable)

# Ops whose gradient rules are written with ops that are differentiable again; nested tapes must give
# their second derivatives (zero for the piecewise-linear ones, which still checks the plumbing).
SECOND_ORDER_OPS = [
    "abs", "add", "avg_pool2d", "conv2d", "cos", "depthwise_conv2d", "divide", "erf", "exp", "log",
    "log1p", "log_softmax", "matmul", "max_pool2d", "maximum", "minimum", "multiply", "negative", "pow",
    "reciprocal", "relu", "rsqrt", "sigmoid", "sin", "softmax", "sqrt", "square", "subtract", "tanh",
]  # fmt: skip


def _case(name, seed):
    if name not in CASES:
        pytest.fail(
            f"op '{name}' is registered but has no case in tests/trainer/op_cases.py; add a builder "
            "(inputs in the op's valid domain, its attributes) so that its gradient and shape rule are tested"
        )
    case = CASES[name](np.random.default_rng(seed))
    positions = [i for i, array in enumerate(case.inputs) if array.dtype.kind == "f" and i not in case.fixed]
    assert positions, f"the case for differentiable op '{name}' has no floating-point input to differentiate"
    return case, positions


def _run(name, arrays, attrs):
    return _differentiated(execute(REGISTRY[name], [tf.constant(array) for array in arrays], attrs))


def _differentiated(output):
    """The output the checks differentiate: the first of an op with several (``max_pool_phases``'
    maximum; its other output, an index, has no gradient)."""
    return output[0] if isinstance(output, tuple) else output


def numerical_gradients(function, arrays, positions, epsilon) -> list:
    """Central differences of the scalar ``function(arrays)`` with respect to ``arrays[p]``, p in ``positions``."""
    gradients = []
    for position in positions:
        gradient = np.zeros_like(arrays[position])
        for index in np.ndindex(arrays[position].shape):
            plus = [array.copy() for array in arrays]
            minus = [array.copy() for array in arrays]
            plus[position][index] += epsilon
            minus[position][index] -= epsilon
            gradient[index] = (function(plus) - function(minus)) / (2 * epsilon)
        gradients.append(gradient)
    return gradients


def _as_arrays(gradients, arrays, positions) -> list:
    """Tape gradients as arrays, with ``None`` (no dependence) as zeros."""
    return [
        np.zeros_like(arrays[p]) if g is None else g.numpy().astype(np.float64) for p, g in zip(positions, gradients)
    ]


def tape_gradients(name, arrays, attrs, cotangent, positions) -> list:
    """d <cotangent, op(arrays)> / d arrays[p] by the gradient tape."""
    tensors = [tf.constant(array) for array in arrays]
    with tf.GradientTape() as tape:
        for position in positions:
            tape.watch(tensors[position])
        output = _differentiated(execute(REGISTRY[name], tensors, attrs))
    seed = tf.constant(cotangent.astype(output.dtype.as_numpy_dtype))
    gradients = tape.gradient(output, [tensors[p] for p in positions], output_gradients=seed)
    return _as_arrays(gradients, arrays, positions)


def _cotangent(name, case, rng):
    output = _run(name, case.inputs, case.attrs).numpy()
    return rng.standard_normal(output.shape)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", DIFFERENTIABLE_OPS)
def test_gradient_matches_finite_differences(name, seed):
    case, positions = _case(name, seed)
    cotangent = _cotangent(name, case, np.random.default_rng(seed + 100))
    if case.gradient_unsupported:
        with pytest.raises(GradientNotSupportedError):
            tape_gradients(name, case.inputs, case.attrs, cotangent, positions)
        return

    def loss(arrays):
        return float(np.sum(_run(name, arrays, case.attrs).numpy().astype(np.float64) * cotangent))

    analytic = tape_gradients(name, case.inputs, case.attrs, cotangent, positions)
    numeric = numerical_gradients(loss, case.inputs, positions, case.epsilon)
    for position, computed, expected in zip(positions, analytic, numeric):
        np.testing.assert_allclose(
            computed, expected, rtol=case.tolerance, atol=case.tolerance,
            err_msg=f"gradient of '{name}' with respect to input {position} (attrs {case.attrs})",
        )  # fmt: skip


def first_derivative_total(name, tensors, attrs, cotangent, weights, positions):
    """sum_p <weights_p, d<cotangent, op>/d input_p>: a scalar whose gradient holds second derivatives."""
    with tf.GradientTape() as tape:
        for position in positions:
            tape.watch(tensors[position])
        output = execute(REGISTRY[name], tensors, attrs)
    firsts = tape.gradient(output, [tensors[p] for p in positions], output_gradients=tf.constant(cotangent))
    terms = [tf.reduce_sum(first * weight) for first, weight in zip(firsts, weights) if first is not None]
    return tf.add_n(terms) if terms else None


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", SECOND_ORDER_OPS)
def test_second_derivative_matches_finite_differences(name, seed):
    case, positions = _case(name, seed)
    rng = np.random.default_rng(seed + 200)
    cotangent = _cotangent(name, case, rng)
    weights = [rng.standard_normal(case.inputs[p].shape) for p in positions]

    tensors = [tf.constant(array) for array in case.inputs]
    with tf.GradientTape() as outer:
        for position in positions:
            outer.watch(tensors[position])
        total = first_derivative_total(name, tensors, case.attrs, cotangent, weights, positions)
    if total is None:
        analytic = [np.zeros_like(case.inputs[p]) for p in positions]
    else:
        analytic = _as_arrays(outer.gradient(total, [tensors[p] for p in positions]), case.inputs, positions)

    def first_derivatives(arrays):
        firsts = tape_gradients(name, arrays, case.attrs, cotangent, positions)
        return float(sum(np.sum(first * weight) for first, weight in zip(firsts, weights)))

    numeric = numerical_gradients(first_derivatives, case.inputs, positions, 1e-5)
    for position, computed, expected in zip(positions, analytic, numeric):
        np.testing.assert_allclose(
            computed, expected, rtol=1e-5, atol=1e-5,
            err_msg=f"second derivative of '{name}' with respect to input {position} (attrs {case.attrs})",
        )  # fmt: skip
