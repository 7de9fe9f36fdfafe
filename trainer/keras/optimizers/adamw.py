"""``tf.keras.optimizers.AdamW``: Adam with decoupled weight decay."""

from __future__ import annotations

from trainer.keras.saving.registration import keras_serializable

from .adam import Adam


@keras_serializable("optimizers", "adamw")
class AdamW(Adam):
    """Adam plus decoupled weight decay: before each Adam step ``w -= w * weight_decay * learning_rate``.

    Args:
        learning_rate: a float, a ``LearningRateSchedule``, or a callable. Defaults to 0.001.
        weight_decay: the decay rate; required (Keras 3 default 0.004).
        beta_1, beta_2, epsilon, amsgrad: as ``Adam``.
        **kwargs: the other base ``Optimizer`` arguments (``clipnorm``, ``name``, ...).

    Example:
        >>> optimizer = tf.keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=1e-4)
        >>> optimizer.exclude_from_weight_decay(var_names=["bias"])
    """

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name="adamw",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
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
        if self.weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
