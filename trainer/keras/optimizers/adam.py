"""``tf.keras.optimizers.Adam``: adaptive moment estimation, Keras 3's formulation."""

from __future__ import annotations

from trainer import dtypes
from trainer.keras.saving.registration import keras_serializable
from trainer.ops import math_ops
from trainer.ops.registry import execute
from trainer.ops.training_ops import adam_step_size_op, apply_adam_amsgrad_op, apply_adam_op
from trainer.tensor import convert_to_tensor

from .base import Optimizer


@keras_serializable("optimizers", "adam")
class Adam(Optimizer):
    """Adam: per-weight step sizes from running averages of the gradient and its square.

    With ``t = iterations + 1``: ``m += (g - m) * (1 - beta_1)``, ``v += (g^2 - v) * (1 - beta_2)``,
    ``w -= alpha * m / (sqrt(v) + epsilon)`` where ``alpha = learning_rate * sqrt(1 - beta_2^t) /
    (1 - beta_1^t)``. With ``amsgrad`` the denominator uses the running maximum of ``v``.

    Args:
        learning_rate: a float, a ``LearningRateSchedule``, or a callable. Defaults to 0.001.
        beta_1: decay rate of the first-moment average.
        beta_2: decay rate of the second-moment average.
        epsilon: added to the denominator ("epsilon hat" of the paper).
        amsgrad: use the AMSGrad variant.
        **kwargs: the base ``Optimizer`` arguments (``weight_decay``, ``clipnorm``, ``name``, ...).

    Example:
        >>> model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name="adam",
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
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad

    def build(self, var_list):
        """Creates the ``momentum`` and ``velocity`` slots (and ``velocity_hat`` with amsgrad)."""
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")
        self._velocities = self.add_optimizer_variables(var_list, "velocity")
        self._velocity_hats = self.add_optimizer_variables(var_list, "velocity_hat") if self.amsgrad else []

    def _step_size(self, learning_rate, dtype):
        """``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` as an op, so a traced step recomputes it."""
        attrs = {"beta_1": float(self.beta_1), "beta_2": float(self.beta_2), "dtype": dtypes.as_dtype(dtype)}
        return execute(adam_step_size_op, (self.iterations, convert_to_tensor(learning_rate)), attrs)

    def _backend_update_step(self, grads, variables, learning_rate):
        step_sizes = {}  # one alpha per dtype per step, not one per variable
        for grad, variable in zip(grads, variables):
            alpha = step_sizes.get(variable.dtype)
            if alpha is None:
                alpha = step_sizes[variable.dtype] = self._step_size(learning_rate, variable.dtype)
            self._apply(grad, variable, alpha)

    def update_step(self, gradient, variable, learning_rate):
        self._apply(math_ops.cast(gradient, variable.dtype), variable, self._step_size(learning_rate, variable.dtype))

    def _apply(self, gradient, variable, alpha):
        index = self._get_variable_index(variable)
        attrs = {"beta_1": float(self.beta_1), "beta_2": float(self.beta_2), "epsilon": float(self.epsilon)}
        m, v = self._momentums[index], self._velocities[index]
        if self.amsgrad:
            execute(apply_adam_amsgrad_op, (variable, m, v, self._velocity_hats[index], gradient, alpha), attrs)
        else:
            execute(apply_adam_op, (variable, m, v, gradient, alpha), attrs)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad})
        return config
