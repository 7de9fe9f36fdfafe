"""``tf.keras.optimizers.schedules``: learning rates that change with the optimizer's step.

A schedule is called with the step (the optimizer's ``iterations`` variable) and computes the rate
with ops, so inside a traced training step it reads the step's current value on every run. The
formulas are Keras 3's.
"""

from __future__ import annotations

import math

from trainer import dtypes
from trainer.keras.saving.registration import deserialize as _deserialize
from trainer.keras.saving.registration import keras_serializable
from trainer.keras.saving.registration import serialize as _serialize
from trainer.ops import array_ops, math_ops
from trainer.tensor import convert_to_tensor


@keras_serializable("schedules")
class LearningRateSchedule:
    """Base class of learning-rate schedules: ``schedule(step)`` returns the rate at ``step``.

    Subclasses implement ``__call__(step)`` with ops and ``get_config()``.

    Example:
        >>> class HalfEvery(tf.keras.optimizers.schedules.LearningRateSchedule):
        ...     def __call__(self, step):
        ...         return 0.1 * 0.5 ** tf.floor(tf.cast(step, "float32") / 100)
    """

    def __call__(self, step):
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`."
        )

    def get_config(self) -> dict:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` in order to be serializable."
        )

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_decay_steps(decay_steps, argument="decay_steps"):
    if decay_steps <= 0:
        raise ValueError(f"Argument `{argument}` must be > 0. Received: {argument}={decay_steps}")


def _step(step):
    return math_ops.cast(convert_to_tensor(step), dtypes.float32)


@keras_serializable("schedules")
class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ^ (step / decay_steps)``; the exponent is floored when
    ``staircase``.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: positive number of steps over which the rate is multiplied by ``decay_rate``.
        decay_rate: the factor per ``decay_steps``.
        staircase: decay in whole steps of ``decay_steps`` instead of continuously.
        name: the schedule's name.

    Example:
        >>> schedule = tf.keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.96)
        >>> optimizer = tf.keras.optimizers.SGD(learning_rate=schedule)
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        _check_decay_steps(decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step):
        exponent = math_ops.divide(_step(step), float(self.decay_steps))
        if self.staircase:
            exponent = math_ops.floor(exponent)
        return math_ops.multiply(float(self.initial_learning_rate), math_ops.pow(float(self.decay_rate), exponent))

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


@keras_serializable("schedules")
class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while ``boundaries[i-1] < step <=
    boundaries[i]``, and ``values[-1]`` after the last boundary.

    Args:
        boundaries: strictly increasing step numbers.
        values: one more value than there are boundaries.
        name: the schedule's name.

    Example:
        >>> schedule = tf.keras.optimizers.schedules.PiecewiseConstantDecay([1000, 2000], [0.1, 0.01, 0.001])
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. Received: "
                f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of length {len(values)}."
            )
        if any(later <= earlier for earlier, later in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay boundaries must be strictly increasing, got {boundaries}")
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step):
        step = convert_to_tensor(step)
        # Integer steps compare with integer boundaries exactly (as Keras casts boundaries to the
        # step's dtype); anything else compares in float32.
        if not (step.dtype.is_integer and all(float(b).is_integer() for b in self.boundaries)):
            step = math_ops.cast(step, dtypes.float32)
        convert = int if step.dtype.is_integer else float
        # Boundaries increase, so the value of the last boundary passed wins.
        result = convert_to_tensor(float(self.values[0]), dtype=dtypes.float32)
        for boundary, value in zip(self.boundaries, self.values[1:]):
            passed = math_ops.greater(step, convert(boundary))
            result = array_ops.where(passed, convert_to_tensor(float(value), dtype=dtypes.float32), result)
        return result

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


@keras_serializable("schedules")
class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - step / decay_steps) ^ power + end``, with ``step`` capped at
    ``decay_steps``; with ``cycle`` the horizon grows to the next multiple of ``decay_steps`` instead.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: positive number of steps to reach ``end_learning_rate``.
        end_learning_rate: the final rate.
        power: the polynomial's power (1.0 is linear).
        cycle: restart the decay after each ``decay_steps`` horizon.
        name: the schedule's name.

    Example:
        >>> schedule = tf.keras.optimizers.schedules.PolynomialDecay(0.1, 10000, end_learning_rate=0.01, power=0.5)
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        end_learning_rate=0.0001,
        power=1.0,
        cycle=False,
        name="PolynomialDecay",
    ):
        _check_decay_steps(decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step):
        step = _step(step)
        decay_steps = convert_to_tensor(float(self.decay_steps), dtype=dtypes.float32)
        if self.cycle:
            # the first multiple of decay_steps that is >= step (1 at step 0)
            multiplier = math_ops.ceil(math_ops.divide(step, decay_steps))
            multiplier = array_ops.where(math_ops.equal(step, 0.0), array_ops.ones_like(multiplier), multiplier)
            decay_steps = math_ops.multiply(decay_steps, multiplier)
        else:
            step = math_ops.minimum(step, decay_steps)
        remaining = math_ops.subtract(1.0, math_ops.divide(step, decay_steps))
        end = convert_to_tensor(float(self.end_learning_rate), dtype=dtypes.float32)
        span = math_ops.subtract(float(self.initial_learning_rate), end)
        return math_ops.add(math_ops.multiply(span, math_ops.pow(remaining, float(self.power))), end)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


@keras_serializable("schedules")
class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``; the ratio is floored when
    ``staircase``.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: positive number of steps per unit of decay.
        decay_rate: how fast the rate falls.
        staircase: decay in whole steps of ``decay_steps`` instead of continuously.
        name: the schedule's name.

    Example:
        >>> schedule = tf.keras.optimizers.schedules.InverseTimeDecay(0.1, decay_steps=1.0, decay_rate=0.5)
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        _check_decay_steps(decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step):
        ratio = math_ops.divide(_step(step), float(self.decay_steps))
        if self.staircase:
            ratio = math_ops.floor(ratio)
        denominator = math_ops.add(1.0, math_ops.multiply(float(self.decay_rate), ratio))
        return math_ops.divide(float(self.initial_learning_rate), denominator)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


@keras_serializable("schedules")
class CosineDecay(LearningRateSchedule):
    """Cosine decay from the initial rate to ``alpha`` times it over ``decay_steps``, optionally after a
    linear warmup.

    Without ``warmup_target``: ``initial * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) +
    alpha)`` with ``s = min(step, decay_steps)``. With it, the rate first rises linearly from
    ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps``, then decays from
    ``warmup_target`` as above (counting steps from the end of the warmup).

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: positive number of steps to decay over.
        alpha: the final rate as a fraction of the rate the decay starts from.
        name: the schedule's name.
        warmup_target: the rate reached at the end of the warmup; ``None`` skips the warmup.
        warmup_steps: the warmup's length in steps.

    Example:
        >>> schedule = tf.keras.optimizers.schedules.CosineDecay(0.0, 1000, warmup_target=0.1, warmup_steps=100)
    """

    def __init__(
        self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None, warmup_steps=0
    ):
        _check_decay_steps(decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target

    def _decay(self, step, decay_from):
        fraction = math_ops.divide(step, float(self.decay_steps))
        cosine = math_ops.multiply(0.5, math_ops.add(1.0, math_ops.cos(math_ops.multiply(math.pi, fraction))))
        decayed = math_ops.add(math_ops.multiply(1.0 - float(self.alpha), cosine), float(self.alpha))
        return math_ops.multiply(decay_from, decayed)

    def __call__(self, step):
        step = _step(step)
        initial = convert_to_tensor(float(self.initial_learning_rate), dtype=dtypes.float32)
        if self.warmup_target is None:
            return self._decay(math_ops.minimum(step, float(self.decay_steps)), initial)
        target = convert_to_tensor(float(self.warmup_target), dtype=dtypes.float32)
        warmup_steps = float(self.warmup_steps)
        step = math_ops.minimum(step, float(self.decay_steps) + warmup_steps)
        # Keras picks one branch with ops.cond; both are cheap scalars here, so compute both and select.
        warming = math_ops.less(step, warmup_steps)
        fraction = math_ops.divide(step, warmup_steps if warmup_steps > 0 else 1.0)
        warmup = math_ops.add(math_ops.multiply(math_ops.subtract(target, initial), fraction), initial)
        decay = self._decay(math_ops.subtract(step, warmup_steps), target)
        return array_ops.where(warming, warmup, decay)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


def serialize(learning_rate_schedule) -> dict:
    """``{"class_name": ..., "config": ...}`` for a schedule."""
    return _serialize(learning_rate_schedule)


def deserialize(config, custom_objects=None) -> LearningRateSchedule:
    """Rebuilds a schedule from ``serialize``'s output."""
    return _deserialize("schedules", config, custom_objects)
