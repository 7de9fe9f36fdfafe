"""``tf.keras.optimizers.Ftrl``: "Follow The Regularized Leader", the optimizer of linear models at scale."""

from __future__ import annotations

from trainer.keras.saving.registration import keras_serializable
from trainer.ops import array_ops, math_ops

from .base import Optimizer


@keras_serializable("optimizers", "ftrl")
class Ftrl(Optimizer):
    """FTRL-Proximal (McMahan et al., 2013) with Keras 3's update rule and defaults.

    Args:
        learning_rate: a float, a ``LearningRateSchedule``, or a callable. Defaults to 0.001.
        learning_rate_power: how the per-coordinate rate shrinks with the accumulator (<= 0).
        initial_accumulator_value: the starting value of every accumulator (non-negative).
        l1_regularization_strength, l2_regularization_strength: L1 and L2 penalties (non-negative).
        l2_shrinkage_regularization_strength: an L2 penalty applied through the gradient (non-negative).
        beta: added to the L2 penalty as ``beta / (2 * learning_rate)``.
        **kwargs: the base ``Optimizer`` arguments.
    """

    def __init__(
        self,
        learning_rate=0.001,
        learning_rate_power=-0.5,
        initial_accumulator_value=0.1,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        l2_shrinkage_regularization_strength=0.0,
        beta=0.0,
        name="ftrl",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        checks = (
            ("learning_rate_power", learning_rate_power, learning_rate_power <= 0, "less than or equal to 0.0"),
            ("initial_accumulator_value", initial_accumulator_value, initial_accumulator_value >= 0, "non-negative"),
            ("l1_regularization_strength", l1_regularization_strength, l1_regularization_strength >= 0, "non-negative"),
            ("l2_regularization_strength", l2_regularization_strength, l2_regularization_strength >= 0, "non-negative"),
            ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength, l2_shrinkage_regularization_strength >= 0, "non-negative"),
        )
        for argument, value, valid, expected in checks:
            if not valid:
                raise ValueError(f"`{argument}` needs to be {expected}; received: {argument}={value}.")
        self.learning_rate_power = float(learning_rate_power)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.l1_regularization_strength = float(l1_regularization_strength)
        self.l2_regularization_strength = float(l2_regularization_strength)
        self.l2_shrinkage_regularization_strength = float(l2_shrinkage_regularization_strength)
        self.beta = float(beta)
        self.accumulators, self.linears = [], []

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        from trainer.keras import initializers  # noqa: PLC0415

        start = initializers.Constant(self.initial_accumulator_value)
        self.accumulators = self.add_optimizer_variables(var_list, "accumulator", initializer=start)
        self.linears = self.add_optimizer_variables(var_list, "linear")

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = math_ops.cast(learning_rate, variable.dtype)
        index = self._get_variable_index(variable)
        accumulator, linear = self.accumulators[index], self.linears[index]
        power = -self.learning_rate_power
        l2 = math_ops.add(self.l2_regularization_strength, math_ops.divide(self.beta, math_ops.multiply(2.0, learning_rate)))
        gradient_to_use = math_ops.add(gradient, math_ops.multiply(2.0 * self.l2_shrinkage_regularization_strength, variable))
        new_accumulator = math_ops.add(accumulator, math_ops.square(gradient))
        growth = math_ops.subtract(math_ops.pow(new_accumulator, power), math_ops.pow(accumulator, power))
        linear.assign_add(math_ops.subtract(gradient_to_use, math_ops.multiply(math_ops.divide(growth, learning_rate), variable)))
        quadratic = math_ops.add(math_ops.divide(math_ops.pow(new_accumulator, power), learning_rate), math_ops.multiply(2.0, l2))
        l1 = self.l1_regularization_strength
        clipped = array_ops.clip_by_value(linear, -l1, l1)
        variable.assign(math_ops.divide(math_ops.subtract(clipped, linear), quadratic))
        accumulator.assign(new_accumulator)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
                "beta": self.beta,
            }
        )
        return config
