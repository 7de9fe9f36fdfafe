"""``tf.keras.optimizers.SGD``: gradient descent, optionally with (Nesterov) momentum."""

from __future__ import annotations

from trainer.keras.saving.registration import keras_serializable
from trainer.ops import math_ops
from trainer.ops.registry import execute
from trainer.ops.training_ops import apply_gradient_descent_op, apply_momentum_op

from .base import Optimizer


@keras_serializable("optimizers", "sgd")
class SGD(Optimizer):
    """Stochastic gradient descent with Keras 3's momentum rule.

    Without momentum ``w -= learning_rate * g``. With it, ``m = momentum * m - learning_rate * g`` and
    ``w += m``, or ``w += momentum * m - learning_rate * g`` when ``nesterov``.

    Args:
        learning_rate: a float, a ``LearningRateSchedule``, or a callable. Defaults to 0.01.
        momentum: a float in [0, 1] that accelerates descent along consistent directions.
        nesterov: use Nesterov momentum.
        **kwargs: the base ``Optimizer`` arguments (``weight_decay``, ``clipnorm``, ``name``, ...).

    Example:
        >>> optimizer = tf.keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
        >>> model.compile(optimizer=optimizer, loss="mse")
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.0,
        nesterov=False,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name="SGD",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            name=name,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            **kwargs,
        )
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: momentum={momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = nesterov
        self.momentums = []

    def build(self, var_list):
        """Creates one momentum slot per variable when ``momentum`` is not 0."""
        if self.built:
            return
        super().build(var_list)
        self.momentums = self.add_optimizer_variables(var_list, "momentum") if self.momentum != 0 else []

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = math_ops.cast(learning_rate, variable.dtype)
        if self.momentum != 0:
            slot = self.momentums[self._get_variable_index(variable)]
            attrs = {"momentum": self.momentum, "nesterov": bool(self.nesterov)}
            execute(apply_momentum_op, (variable, slot, gradient, learning_rate), attrs)
        else:
            execute(apply_gradient_descent_op, (variable, gradient, learning_rate), {})

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config
