"""Optimizers, clipping and weight decay against NumPy re-implementations of Keras 3's rules.

The references below are written from Keras 3's published update rules (keras/src/optimizers/*.py),
independently of emberflow's code: plain NumPy on float64 copies, one step at a time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import trainer as tf
from trainer.keras import optimizers
from trainer.keras.optimizers import schedules

SHAPES = [(3, 4), (5,)]
STEPS = 6


def lr32(value):
    """Keras keeps a float learning rate in a float32 variable; the references use that value."""
    return float(np.float32(value))


# -- references (Keras 3 update rules) ------------------------------------------------------------------


def sgd_reference(weights, gradients, lr, momentum=0.0, nesterov=False, weight_decay=None):
    weights = [w.astype(np.float64) for w in weights]
    velocity = [np.zeros_like(w) for w in weights]
    for step_gradients in gradients:
        for i, g in enumerate(step_gradients):
            if weight_decay is not None:
                weights[i] = weights[i] - weights[i] * weight_decay * lr
            if momentum:
                velocity[i] = momentum * velocity[i] - lr * g
                weights[i] = weights[i] + (momentum * velocity[i] - lr * g if nesterov else velocity[i])
            else:
                weights[i] = weights[i] - lr * g
    return weights


def adam_reference(weights, gradients, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, weight_decay=None):
    weights = [w.astype(np.float64) for w in weights]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    v_max = [np.zeros_like(w) for w in weights]
    for t, step_gradients in enumerate(gradients, start=1):
        alpha = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        for i, g in enumerate(step_gradients):
            if weight_decay is not None:
                weights[i] = weights[i] - weights[i] * weight_decay * lr
            m[i] = m[i] + (g - m[i]) * (1 - beta_1)
            v[i] = v[i] + (g * g - v[i]) * (1 - beta_2)
            v_max[i] = np.maximum(v_max[i], v[i])
            denominator = np.sqrt(v_max[i] if amsgrad else v[i]) + epsilon
            weights[i] = weights[i] - m[i] * alpha / denominator
    return weights


def rmsprop_reference(weights, gradients, lr, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
    weights = [w.astype(np.float64) for w in weights]
    velocity = [np.zeros_like(w) for w in weights]
    average = [np.zeros_like(w) for w in weights]
    accumulated = [np.zeros_like(w) for w in weights]
    for step_gradients in gradients:
        for i, g in enumerate(step_gradients):
            velocity[i] = rho * velocity[i] + (1 - rho) * g * g
            if centered:
                average[i] = rho * average[i] + (1 - rho) * g
                denominator = velocity[i] - average[i] ** 2 + epsilon
            else:
                denominator = velocity[i] + epsilon
            increment = lr * g / np.sqrt(denominator)
            if momentum > 0:
                accumulated[i] = momentum * accumulated[i] + increment
                weights[i] = weights[i] - accumulated[i]
            else:
                weights[i] = weights[i] - increment
    return weights


# -- helpers --------------------------------------------------------------------------------------------


def random_problem(rng, dtype):
    weights = [rng.normal(size=shape).astype(dtype) for shape in SHAPES]
    gradients = [[rng.normal(size=shape).astype(dtype) for shape in SHAPES] for _ in range(STEPS)]
    return weights, gradients


def run(optimizer, weights, gradients):
    variables = [tf.Variable(w, name=f"w{i}") for i, w in enumerate(weights)]
    for step_gradients in gradients:
        optimizer.apply_gradients(zip([tf.constant(g) for g in step_gradients], variables))
    return [v.numpy() for v in variables]


def assert_all_close(actual, expected, dtype):
    tolerance = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-5, atol=1e-6)}[dtype]
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, **tolerance)


# -- update rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True), (0.5, True)])
def test_sgd_matches_keras_rule(rng, dtype, momentum, nesterov):
    weights, gradients = random_problem(rng, dtype)
    lr = float(rng.uniform(0.01, 0.2))
    actual = run(optimizers.SGD(learning_rate=lr, momentum=momentum, nesterov=nesterov), weights, gradients)
    assert_all_close(actual, sgd_reference(weights, gradients, lr32(lr), momentum, nesterov), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_keras_rule(rng, dtype, amsgrad):
    weights, gradients = random_problem(rng, dtype)
    betas = dict(beta_1=float(rng.uniform(0.8, 0.95)), beta_2=float(rng.uniform(0.99, 0.9999)), epsilon=1e-6)
    lr = float(rng.uniform(1e-3, 1e-1))
    actual = run(optimizers.Adam(learning_rate=lr, amsgrad=amsgrad, **betas), weights, gradients)
    assert_all_close(actual, adam_reference(weights, gradients, lr32(lr), amsgrad=amsgrad, **betas), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_adamw_is_adam_after_decoupled_weight_decay(rng, dtype):
    weights, gradients = random_problem(rng, dtype)
    actual = run(optimizers.AdamW(learning_rate=0.05, weight_decay=0.1), weights, gradients)
    assert_all_close(actual, adam_reference(weights, gradients, lr32(0.05), weight_decay=0.1), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("momentum, centered", [(0.0, False), (0.0, True), (0.7, False), (0.7, True)])
def test_rmsprop_matches_keras_rule(rng, dtype, momentum, centered):
    weights, gradients = random_problem(rng, dtype)
    rho = float(rng.uniform(0.8, 0.95))
    actual = run(
        optimizers.RMSprop(learning_rate=0.01, rho=rho, momentum=momentum, centered=centered), weights, gradients
    )
    expected = rmsprop_reference(weights, gradients, lr32(0.01), rho=rho, momentum=momentum, centered=centered)
    assert_all_close(actual, expected, dtype)


def test_defaults_are_keras_defaults():
    assert optimizers.SGD().get_config()["learning_rate"] == lr32(0.01)
    adam = optimizers.Adam().get_config()
    assert (adam["learning_rate"], adam["beta_1"], adam["beta_2"], adam["epsilon"], adam["amsgrad"]) == (
        lr32(0.001),
        0.9,
        0.999,
        1e-7,
        False,
    )
    assert optimizers.AdamW().weight_decay == 0.004
    rms = optimizers.RMSprop().get_config()
    assert (rms["rho"], rms["momentum"], rms["epsilon"], rms["centered"]) == (0.9, 0.0, 1e-7, False)
    assert [o.name for o in (optimizers.SGD(), optimizers.Adam(), optimizers.AdamW(), optimizers.RMSprop())] == [
        "SGD",
        "adam",
        "adamw",
        "rmsprop",
    ]


def test_training_a_quadratic_through_the_tape_converges():
    target = np.array([1.0, -2.0, 3.0], np.float32)
    w = tf.Variable(np.zeros(3, np.float32))
    optimizer = optimizers.Adam(learning_rate=0.1)
    for _ in range(300):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(w - target))
        optimizer.apply_gradients(zip(tape.gradient(loss, [w]), [w]))
    np.testing.assert_allclose(w.numpy(), target, atol=1e-2)
    assert int(optimizer.iterations) == 300 and optimizer.iterations.dtype == tf.int64


@pytest.mark.parametrize(
    "make",
    [
        lambda: optimizers.Adam(0.1),
        lambda: optimizers.SGD(schedules.ExponentialDecay(0.1, 2, 0.5), momentum=0.9, nesterov=True, clipnorm=1.0),
        lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True, weight_decay=0.1),
        lambda: optimizers.AdamW(0.1, amsgrad=True, global_clipnorm=0.5),
    ],
)
def test_a_traced_step_matches_eager_steps(make):
    """Step-dependent scalars (Adam's alpha, schedules) are inputs of the traced graph, not constants."""

    def train(traced):
        w = tf.Variable(np.array([1.0, -2.0, 3.0], np.float32))
        optimizer = make()
        optimizer.build([w])

        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(w * w * w)
            optimizer.apply_gradients(zip(tape.gradient(loss, [w]), [w]))

        runner = tf.function(step) if traced else step
        for _ in range(5):
            runner()
        return w.numpy(), int(optimizer.iterations)

    eager, traced = train(False), train(True)
    np.testing.assert_array_equal(eager[0], traced[0])
    assert eager[1] == traced[1] == 5


# -- clipping and weight decay --------------------------------------------------------------------------


def one_sgd_step(optimizer, gradients):
    variables = [tf.Variable(np.zeros_like(g)) for g in gradients]
    optimizer.apply_gradients(zip([tf.constant(g) for g in gradients], variables))
    return [-v.numpy() for v in variables]  # lr = 1 and w = 0: the applied (clipped) gradient


@pytest.mark.parametrize("clipnorm", [0.5, 100.0])
def test_clipnorm_rescales_each_gradient_to_at_most_that_norm(rng, clipnorm):
    gradients = [rng.normal(size=shape) for shape in SHAPES]
    applied = one_sgd_step(optimizers.SGD(learning_rate=1.0, clipnorm=clipnorm), gradients)
    for a, g in zip(applied, gradients):
        np.testing.assert_allclose(a, g * clipnorm / max(np.linalg.norm(g), clipnorm), rtol=1e-12)


@pytest.mark.parametrize("global_clipnorm", [0.5, 100.0])
def test_global_clipnorm_rescales_all_gradients_together(rng, global_clipnorm):
    gradients = [rng.normal(size=shape) for shape in SHAPES]
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in gradients))
    applied = one_sgd_step(optimizers.SGD(learning_rate=1.0, global_clipnorm=global_clipnorm), gradients)
    for a, g in zip(applied, gradients):
        np.testing.assert_allclose(a, g * global_clipnorm * min(1 / norm, 1 / global_clipnorm), rtol=1e-12)


def test_clipvalue_clips_each_element(rng):
    gradients = [rng.normal(size=shape) * 3 for shape in SHAPES]
    applied = one_sgd_step(optimizers.SGD(learning_rate=1.0, clipvalue=0.7), gradients)
    for a, g in zip(applied, gradients):
        np.testing.assert_array_equal(a, np.clip(g, -0.7, 0.7))


def test_only_one_clipping_argument_is_allowed():
    with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        optimizers.Adam(clipnorm=1.0, clipvalue=0.5)


def test_weight_decay_is_decoupled_and_honours_exclusions(rng):
    weights, gradients = random_problem(rng, "float64")
    variables = [tf.Variable(w, name=name) for w, name in zip(weights, ["dense/kernel", "dense/bias"])]
    optimizer = optimizers.SGD(learning_rate=0.1, weight_decay=0.2)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    for step_gradients in gradients:
        optimizer.apply_gradients(zip([tf.constant(g) for g in step_gradients], variables))
    decayed = sgd_reference(weights[:1], [s[:1] for s in gradients], lr32(0.1), weight_decay=0.2)
    plain = sgd_reference(weights[1:], [s[1:] for s in gradients], lr32(0.1))
    assert_all_close([v.numpy() for v in variables], decayed + plain, "float64")
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.exclude_from_weight_decay(var_list=variables)


def test_weight_decay_exclusion_by_variable(rng):
    weights, gradients = random_problem(rng, "float64")
    variables = [tf.Variable(w) for w in weights]
    optimizer = optimizers.AdamW(learning_rate=0.01, weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_list=[variables[0]])
    for step_gradients in gradients:
        optimizer.apply_gradients(zip([tf.constant(g) for g in step_gradients], variables))
    expected = adam_reference(weights[:1], [s[:1] for s in gradients], lr32(0.01)) + adam_reference(
        weights[1:], [s[1:] for s in gradients], lr32(0.01), weight_decay=0.5
    )
    assert_all_close([v.numpy() for v in variables], expected, "float64")


def test_constraints_are_applied_after_the_update():
    w = tf.Variable(np.array([0.5, -0.5]))
    w.constraint = lambda value: tf.maximum(value, 0.0)
    optimizers.SGD(learning_rate=1.0).apply_gradients([(tf.constant([1.0, -1.0], dtype=tf.float64), w)])
    np.testing.assert_array_equal(w.numpy(), np.maximum(np.array([0.5, -0.5]) - np.array([1.0, -1.0]) * lr32(1.0), 0))


# -- None gradients, errors -----------------------------------------------------------------------------


def test_none_gradients_are_skipped_with_a_warning(rng):
    a, b = tf.Variable(rng.normal(size=3), name="a"), tf.Variable(rng.normal(size=3), name="b")
    before = b.numpy()
    gradient = rng.normal(size=3)
    optimizer = optimizers.SGD(learning_rate=0.5)
    with pytest.warns(UserWarning, match="Gradients do not exist for variables \\['b:0'\\]"):
        optimizer.apply_gradients([(tf.constant(gradient), a), (None, b)])
    np.testing.assert_array_equal(b.numpy(), before)
    assert int(optimizer.iterations) == 1


def test_all_none_gradients_raise_naming_the_variables():
    variables = [tf.Variable([1.0], name="kernel"), tf.Variable([2.0], name="bias")]
    with pytest.raises(ValueError, match=r"No gradients provided for any variable: \['kernel:0', 'bias:0'\]"):
        optimizers.Adam().apply_gradients(zip([None, None], variables))


def test_unknown_variables_and_mismatched_gradients_raise():
    a, b = tf.Variable([1.0, 2.0]), tf.Variable([3.0])
    optimizer = optimizers.SGD()
    optimizer.apply_gradients([(tf.constant([1.0, 1.0]), a)])
    with pytest.raises(ValueError, match="Unknown variable"):
        optimizer.apply_gradients([(tf.constant([1.0]), b)])
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\) for variable"):
        optimizers.SGD().apply_gradients([(tf.constant([1.0, 1.0, 1.0]), a)])


@pytest.mark.parametrize(
    "argument", [{"use_ema": True}, {"loss_scale_factor": 128.0}, {"gradient_accumulation_steps": 4}]
)
def test_unsupported_arguments_say_so(argument):
    with pytest.raises(NotImplementedError, match="not supported by emberflow"):
        optimizers.Adam(**argument)


def test_unknown_arguments_are_rejected_and_decay_warns():
    with pytest.raises(ValueError, match="Argument\\(s\\) not recognized"):
        optimizers.SGD(lr=0.1)
    with pytest.warns(UserWarning, match="`decay` is no longer supported"):
        optimizers.SGD(decay=0.1)


# -- state and config -----------------------------------------------------------------------------------


def test_variables_are_iterations_learning_rate_then_slots_in_keras_order():
    kernel, bias = tf.Variable(np.ones((2, 2)), name="dense/kernel"), tf.Variable(np.ones(2), name="dense/bias")
    optimizer = optimizers.Adam(amsgrad=True)
    optimizer.build([kernel, bias])
    names = [v.name for v in optimizer.variables]
    slots = [f"adam/dense_{p}_{s}:0" for s in ("momentum", "velocity", "velocity_hat") for p in ("kernel", "bias")]
    assert names == ["adam/iteration:0", "adam/learning_rate:0", *slots]
    assert all(not v.trainable for v in optimizer.variables)


def test_state_round_trips_through_save_and_load_own_variables(rng):
    weights, gradients = random_problem(rng, "float32")
    source = optimizers.RMSprop(momentum=0.5, centered=True)
    run(source, weights, gradients[:3])
    store = {}
    source.save_own_variables(store)
    target = optimizers.RMSprop(momentum=0.5, centered=True)
    target.build([tf.Variable(w) for w in weights])
    target.load_own_variables(store)
    for a, b in zip(source.variables, target.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    copy = optimizers.RMSprop(momentum=0.5, centered=True)
    copy.build([tf.Variable(w) for w in weights])
    copy.set_weights(source.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(copy.get_weights(), source.get_weights()))
    assert int(copy.iterations) == 3
    with pytest.warns(UserWarning, match="has not been called/built yet"):
        optimizers.RMSprop(momentum=0.5, centered=True).load_own_variables(store)


def test_minimize_takes_a_loss_callable_or_a_tensor_with_its_tape(rng):
    start, target = rng.normal(size=3), rng.normal(size=3)
    by_callable, by_tape = tf.Variable(start), tf.Variable(start)
    optimizers.SGD(learning_rate=0.1).minimize(lambda: tf.reduce_sum(tf.square(by_callable - target)), [by_callable])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(by_tape - target))
    optimizers.SGD(learning_rate=0.1).minimize(loss, [by_tape], tape=tape)
    expected = start - np.float32(0.1) * 2 * (start - target)
    np.testing.assert_allclose(by_callable.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(by_tape.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True, clipvalue=1.0),
        lambda: optimizers.Adam(
            learning_rate=schedules.CosineDecay(0.1, 100, alpha=0.1, warmup_target=0.2, warmup_steps=10)
        ),
        lambda: optimizers.AdamW(weight_decay=0.01, amsgrad=True, global_clipnorm=2.0),
        lambda: optimizers.RMSprop(rho=0.8, momentum=0.1, centered=True, name="custom"),
    ],
)
def test_config_round_trips(optimizer):
    original = optimizer()
    config = original.get_config()
    assert type(original).from_config(config).get_config() == config
    rebuilt = optimizers.deserialize(optimizers.serialize(original))
    assert type(rebuilt) is type(original) and rebuilt.get_config() == config


@pytest.mark.parametrize(
    "identifier, expected",
    [("adam", "Adam"), ("ADAM", "Adam"), ("sgd", "SGD"), ("RMSProp", "RMSprop"), ("adamw", "AdamW")],
)
def test_get_accepts_names_in_any_case(identifier, expected):
    assert type(optimizers.get(identifier)).__name__ == expected


def test_get_accepts_dicts_and_instances_and_rejects_the_rest():
    instance = optimizers.SGD()
    assert optimizers.get(instance) is instance
    assert optimizers.get({"class_name": "Adam", "config": {"learning_rate": 0.5}}).get_config()["learning_rate"] == 0.5
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier: 'adafactor'"):
        optimizers.get("adafactor")
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier"):
        optimizers.get(42)


def _numpy_adagrad(weights, gradients, learning_rate, initial=0.1, epsilon=1e-7):
    accumulator = np.full_like(weights, initial)
    for gradient in gradients:
        accumulator += gradient * gradient
        weights = weights - learning_rate * gradient / np.sqrt(accumulator + epsilon)
    return weights


def _numpy_ftrl(weights, gradients, learning_rate, l1, l2, shrinkage, beta, power=-0.5, initial=0.1):
    accumulator, linear = np.full_like(weights, initial), np.zeros_like(weights)
    l2 = l2 + beta / (2.0 * learning_rate)
    for gradient in gradients:
        new_accumulator = accumulator + gradient**2
        linear += gradient + 2 * shrinkage * weights - (new_accumulator ** -power - accumulator ** -power) / learning_rate * weights
        quadratic = new_accumulator ** -power / learning_rate + 2 * l2
        weights = (np.clip(linear, -l1, l1) - linear) / quadratic
        accumulator = new_accumulator
    return weights


@pytest.mark.parametrize("name", ["Adagrad", "Ftrl"])
def test_adagrad_and_ftrl_follow_keras_update_rules(name):
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(3, 2)).astype(np.float32)
    gradients = [rng.normal(size=(3, 2)).astype(np.float32) for _ in range(4)]
    variable = tf.Variable(weights)
    if name == "Adagrad":
        optimizer, expected = tf.keras.optimizers.Adagrad(0.05), _numpy_adagrad(weights.astype(np.float64), gradients, 0.05)
    else:
        arguments = {"l1_regularization_strength": 0.01, "l2_regularization_strength": 0.1, "l2_shrinkage_regularization_strength": 0.05, "beta": 0.1}
        optimizer = tf.keras.optimizers.Ftrl(0.2, **arguments)
        expected = _numpy_ftrl(weights.astype(np.float64), gradients, 0.2, 0.01, 0.1, 0.05, 0.1)
    for gradient in gradients:
        optimizer.apply_gradients([(tf.constant(gradient), variable)])
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert type(tf.keras.optimizers.get(name.lower())) is type(optimizer)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_step_size_op_equals_its_scalar_ops_bit_for_bit(dtype):
    from trainer.ops import math_ops  # noqa: PLC0415
    from trainer.ops.registry import execute  # noqa: PLC0415
    from trainer.ops.training_ops import adam_step_size_op  # noqa: PLC0415

    rng = np.random.default_rng(3)
    for _ in range(50):
        iterations = tf.constant(np.int64(rng.integers(0, 100_000)))
        learning_rate = tf.constant(np.float32(rng.uniform(1e-5, 1e-1)))
        beta_1, beta_2 = float(rng.uniform(0.5, 0.99)), float(rng.uniform(0.9, 0.9999))
        step = math_ops.cast(math_ops.add(iterations, 1), dtype)
        beta_1_power = math_ops.pow(tf.constant(beta_1, dtype=dtype), step)
        beta_2_power = math_ops.pow(tf.constant(beta_2, dtype=dtype), step)
        expected = math_ops.divide(
            math_ops.multiply(math_ops.cast(learning_rate, dtype), math_ops.sqrt(math_ops.subtract(1.0, beta_2_power))),
            math_ops.subtract(1.0, beta_1_power),
        )
        attrs = {"beta_1": beta_1, "beta_2": beta_2, "dtype": tf.as_dtype(dtype)}
        actual = execute(adam_step_size_op, (iterations, learning_rate), attrs)
        assert actual.dtype == expected.dtype and actual.numpy().tobytes() == expected.numpy().tobytes()
