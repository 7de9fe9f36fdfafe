"""``tf.keras.optimizers.Adagrad``: per-coordinate learning rates from the sum of squared gradients."""

from __future__ import annotations

from trainer.keras.saving.registration import keras_serializable
from trainer.ops import math_ops

from .base import Optimizer


@keras_serializable("optimizers", "adagrad")
class Adagrad(Optimizer):
    """Adagrad with Keras 3's rule: ``a += g * g``; ``w -= learning_rate * g / sqrt(a + epsilon)``.

    Args:
        learning_rate: a float, a ``LearningRateSchedule``, or a callable. Defaults to 0.001.
        initial_accumulator_value: the starting value of every accumulator (non-negative).
        epsilon: added inside the square root for numerical stability.
        **kwargs: the base ``Optimizer`` arguments (``weight_decay``, ``clipnorm``, ``name``, ...).

    Example:
        >>> optimizer = tf.keras.optimizers.Adagrad(learning_rate=0.05)
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, name="adagrad", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if initial_accumulator_value < 0:
            raise ValueError(f"initial_accumulator_value must be non-negative, got {initial_accumulator_value}")
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)
        self.accumulators = []

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        from trainer.keras import initializers  # noqa: PLC0415

        start = initializers.Constant(self.initial_accumulator_value)
        self.accumulators = self.add_optimizer_variables(var_list, "accumulator", initializer=start)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = math_ops.cast(learning_rate, variable.dtype)
        accumulator = self.accumulators[self._get_variable_index(variable)]
        accumulator.assign_add(math_ops.square(gradient))
        step = math_ops.divide(math_ops.multiply(learning_rate, gradient), math_ops.sqrt(math_ops.add(accumulator, self.epsilon)))
        variable.assign_sub(step)

    def get_config(self):
        config = super().get_config()
        config.update({"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon})
        return config
