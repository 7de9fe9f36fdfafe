"""Learning rates: the schedules against Keras 3's formulas (written out in Python floats) and their configs,
and the optimizer's ``learning_rate`` (a settable float32 variable, a schedule, or a callable)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import trainer as tf
from trainer.keras import optimizers
from trainer.keras.optimizers import schedules

STEPS_TO_CHECK = [0, 1, 5, 9, 10, 11, 37, 100, 250]


def exponential(step, initial_learning_rate, decay_steps, decay_rate, staircase):
    p = step / decay_steps
    return initial_learning_rate * decay_rate ** (math.floor(p) if staircase else p)


def polynomial(step, initial_learning_rate, decay_steps, end_learning_rate, power, cycle):
    if cycle:
        decay_steps = decay_steps * (1 if step == 0 else math.ceil(step / decay_steps))
    else:
        step = min(step, decay_steps)
    return (initial_learning_rate - end_learning_rate) * (1 - step / decay_steps) ** power + end_learning_rate


def inverse_time(step, initial_learning_rate, decay_steps, decay_rate, staircase):
    p = step / decay_steps
    return initial_learning_rate / (1 + decay_rate * (math.floor(p) if staircase else p))


def cosine(step, initial_learning_rate, decay_steps, alpha, warmup_target, warmup_steps):
    if warmup_target is None:
        step = min(step, decay_steps)
        return initial_learning_rate * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * step / decay_steps)) + alpha)
    step = min(step, decay_steps + warmup_steps)
    if step < warmup_steps:
        return (warmup_target - initial_learning_rate) * step / warmup_steps + initial_learning_rate
    step -= warmup_steps
    return warmup_target * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * step / decay_steps)) + alpha)


def piecewise(step, boundaries, values):
    for boundary, value in zip(boundaries, values):
        if step <= boundary:
            return value
    return values[-1]


SCHEDULE_CASES = [
    (
        schedules.ExponentialDecay,
        dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.9, staircase=False),
        exponential,
    ),
    (
        schedules.ExponentialDecay,
        dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.9, staircase=True),
        exponential,
    ),
    (
        schedules.PolynomialDecay,
        dict(initial_learning_rate=0.1, decay_steps=40, end_learning_rate=0.001, power=0.5, cycle=False),
        polynomial,
    ),
    (
        schedules.PolynomialDecay,
        dict(initial_learning_rate=0.1, decay_steps=40, end_learning_rate=0.001, power=2.0, cycle=True),
        polynomial,
    ),
    (
        schedules.InverseTimeDecay,
        dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5, staircase=False),
        inverse_time,
    ),
    (
        schedules.InverseTimeDecay,
        dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5, staircase=True),
        inverse_time,
    ),
    (
        schedules.CosineDecay,
        dict(initial_learning_rate=0.1, decay_steps=90, alpha=0.05, warmup_target=None, warmup_steps=0),
        cosine,
    ),
    (
        schedules.CosineDecay,
        dict(initial_learning_rate=0.0, decay_steps=90, alpha=0.0, warmup_target=0.2, warmup_steps=10),
        cosine,
    ),
    (schedules.PiecewiseConstantDecay, dict(boundaries=[10, 100], values=[0.1, 0.01, 0.001]), piecewise),
]


@pytest.mark.parametrize("cls, kwargs, formula", SCHEDULE_CASES)
def test_schedules_follow_their_formulas(cls, kwargs, formula):
    schedule = cls(**kwargs)
    iterations = tf.Variable(0, dtype=tf.int64, trainable=False)
    for step in STEPS_TO_CHECK:
        iterations.assign(step)
        assert float(schedule(iterations)) == pytest.approx(formula(step, **kwargs), rel=1e-5, abs=1e-9), step
    config = schedule.get_config()
    assert cls.from_config(config).get_config() == config
    assert schedules.deserialize(schedules.serialize(schedule)).get_config() == config


def test_schedules_validate_their_arguments():
    with pytest.raises(ValueError, match="`decay_steps` must be > 0"):
        schedules.ExponentialDecay(0.1, 0, 0.9)
    with pytest.raises(ValueError, match="boundaries should be 1 less than the length of values"):
        schedules.PiecewiseConstantDecay([10, 20], [0.1, 0.01])


def test_an_optimizer_reads_its_schedule_at_its_own_iterations():
    schedule = schedules.InverseTimeDecay(0.3, decay_steps=2, decay_rate=1.0)
    optimizer = optimizers.SGD(learning_rate=schedule)
    w = tf.Variable([0.0])
    expected = 0.0
    for step in range(5):
        assert float(optimizer.learning_rate) == pytest.approx(inverse_time(step, 0.3, 2, 1.0, False), rel=1e-6)
        expected -= inverse_time(step, 0.3, 2, 1.0, False)
        optimizer.apply_gradients([(tf.constant([1.0]), w)])
    assert float(w.numpy()[0]) == pytest.approx(expected, rel=1e-6)


def test_learning_rate_setter_updates_the_variable_used_by_the_next_step():
    optimizer = optimizers.SGD(learning_rate=0.1)
    w = tf.Variable([0.0])
    optimizer.apply_gradients([(tf.constant([1.0]), w)])
    optimizer.learning_rate = 0.25
    assert float(optimizer.learning_rate) == float(np.float32(0.25))
    assert any(v is optimizer.learning_rate for v in optimizer.variables)
    optimizer.apply_gradients([(tf.constant([1.0]), w)])
    np.testing.assert_allclose(w.numpy(), [-(np.float32(0.1) + np.float32(0.25))], rtol=1e-6)
    optimizer.learning_rate = np.float64(0.5)  # callbacks pass NumPy scalars too
    assert float(optimizer.learning_rate) == 0.5


def test_a_schedule_drives_the_learning_rate_and_cannot_be_overwritten_by_a_float():
    schedule = schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.5)
    optimizer = optimizers.SGD(learning_rate=schedule)
    w = tf.Variable([0.0])
    for step in range(4):
        assert float(optimizer.learning_rate) == pytest.approx(0.5 * 0.5**step)
        optimizer.apply_gradients([(tf.constant([1.0]), w)])
    np.testing.assert_allclose(w.numpy(), [-sum(0.5 * 0.5**s for s in range(4))], rtol=1e-6)
    with pytest.raises(TypeError, match="not settable"):
        optimizer.learning_rate = 0.1
    assert all(v.name.rsplit("/", 1)[-1] != "learning_rate:0" for v in optimizer.variables)


def test_a_callable_learning_rate_is_called_each_step():
    calls = []

    def rate():
        calls.append(1)
        return tf.constant(0.5)

    optimizer = optimizers.SGD(learning_rate=rate)
    w = tf.Variable([0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            optimizer.apply_gradients([(tf.constant([2.0]), w)])
    assert w.numpy()[0] == -2.0 and len(calls) == 2
