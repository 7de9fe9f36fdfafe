"""``tf.keras.optimizers.RMSprop``: steps scaled by a running root-mean-square of the gradients."""

from __future__ import annotations

from trainer.keras.saving.registration import keras_serializable
from trainer.ops import math_ops
from trainer.ops.registry import execute
from trainer.ops.training_ops import apply_rmsprop_op

from .base import Optimizer


@keras_serializable("optimizers", "rmsprop")
class RMSprop(Optimizer):
    """RMSprop with Keras 3's update rule.

    ``velocity = rho * velocity + (1 - rho) * g^2``; ``increment = learning_rate * g /
    sqrt(velocity + epsilon)`` (with ``velocity - average_gradient^2`` when ``centered``); the
    weight moves by ``increment``, or by a momentum accumulation of it when ``momentum > 0``.

    Args:
        learning_rate: a float, a ``LearningRateSchedule``, or a callable. Defaults to 0.001.
        rho: discount factor of the squared-gradient average.
        momentum: momentum of the increments; 0 disables it.
        epsilon: added inside the square root.
        centered: normalize by the estimated variance instead of the second moment.
        **kwargs: the base ``Optimizer`` arguments (``weight_decay``, ``clipnorm``, ``name``, ...).

    Example:
        >>> model.compile(optimizer=tf.keras.optimizers.RMSprop(learning_rate=1e-3, rho=0.9), loss="mse")
    """

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name="rmsprop",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    def build(self, var_list):
        """Creates ``velocity`` slots, plus ``momentum`` and ``average_gradient`` ones when used."""
        if self.built:
            return
        super().build(var_list)
        self._velocities = self.add_optimizer_variables(var_list, "velocity")
        self._momentums = self.add_optimizer_variables(var_list, "momentum") if self.momentum > 0 else []
        self._average_gradients = self.add_optimizer_variables(var_list, "average_gradient") if self.centered else []

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        slots = []
        if self.centered:
            slots.append(self._average_gradients[index])
        if self.momentum > 0:
            slots.append(self._momentums[index])
        attrs = {
            "rho": float(self.rho),
            "momentum": float(self.momentum),
            "epsilon": float(self.epsilon),
            "centered": bool(self.centered),
        }
        learning_rate = math_ops.cast(learning_rate, variable.dtype)
        execute(apply_rmsprop_op, (variable, self._velocities[index], gradient, learning_rate, *slots), attrs)

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered})
        return config
