"""``tf.keras.optimizers.Optimizer``: the base class that turns gradients into variable updates.

What every optimizer shares lives here, with Keras 3's semantics: the ``iterations`` counter, the
learning rate (a variable, a schedule or a callable), slot variables created in ``build``, gradient
clipping, decoupled weight decay, skipping ``None`` gradients, constraints, and the config.

Every update goes through registered ops (``trainer/ops/training_ops.py`` and ``assign_variable``),
never through Python writes to arrays, so the same step runs eagerly and inside a traced graph.
"""

from __future__ import annotations

import re
import warnings

from trainer import backend, dtypes
from trainer.keras import initializers
from trainer.keras.layers.base import snake_case, unique_name
from trainer.keras.saving.registration import serialize
from trainer.ops import array_ops, math_ops
from trainer.ops.registry import execute
from trainer.ops.training_ops import apply_weight_decay_op
from trainer.tape import GradientTape
from trainer.tensor import Tensor, convert_to_tensor
from trainer.variables import Variable, name_scope

from . import schedules as schedules_module
from .clipping import clip_by_global_norm, clip_by_norm


class Optimizer:
    """Base class of Keras optimizers; subclasses implement ``build`` (slots) and ``update_step``.

    Args:
        learning_rate: a float, a ``LearningRateSchedule``, or a callable with no arguments.
        weight_decay: if set, decoupled weight decay ``variable -= variable * weight_decay *
            learning_rate`` before each update (see ``exclude_from_weight_decay``).
        clipnorm: clip each gradient to this L2 norm.
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: clip all gradients together so that their global L2 norm is at most this.
        use_ema, ema_momentum, ema_overwrite_frequency: moving averages of the weights; emberflow
            does not support ``use_ema=True``.
        loss_scale_factor: not supported by emberflow (must stay ``None``).
        gradient_accumulation_steps: not supported by emberflow (must stay ``None``).
        name: the optimizer's name; its variables are created under it.

    Example:
        >>> optimizer = tf.keras.optimizers.SGD(learning_rate=0.1)
        >>> with tf.GradientTape() as tape:
        ...     loss = tf.reduce_sum(w * w)
        >>> optimizer.apply_gradients(zip(tape.gradient(loss, [w]), [w]))
    """

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=None,
        **kwargs,
    ):
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.", stacklevel=2)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        unsupported = (("use_ema", use_ema, False), ("loss_scale_factor", loss_scale_factor, None))
        for argument, value, default in (
            *unsupported,
            ("gradient_accumulation_steps", gradient_accumulation_steps, None),
        ):
            if value != default:
                raise NotImplementedError(
                    f"{type(self).__name__}({argument}={value!r}) is not supported by emberflow; "
                    f"leave {argument}={default!r}"
                )
        if sum(value is not None for value in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}"
            )
        self.name = name if name is not None else unique_name(snake_case(type(self).__name__))
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.built = False
        self._variables: list[Variable] = []
        self._trainable_variables: list[Variable] = []
        self._variable_index: dict[int, int] = {}  # Variable._uid -> position in the built var_list
        self._exclude_ids: set[int] = set()
        self._exclude_pattern = None
        with name_scope(self.name):
            self._iterations = Variable(0, name="iteration", dtype=dtypes.int64, trainable=False)
        self._variables.append(self._iterations)
        if isinstance(learning_rate, schedules_module.LearningRateSchedule) or callable(learning_rate):
            self._learning_rate = learning_rate
        else:
            with name_scope(self.name):
                self._learning_rate = Variable(
                    _as_float(learning_rate), name="learning_rate", dtype=dtypes.float32, trainable=False
                )
            self._variables.append(self._learning_rate)

    # -- state -----------------------------------------------------------------------------------
    @property
    def iterations(self) -> Variable:
        """The number of update steps applied so far (an int64 variable)."""
        return self._iterations

    @property
    def variables(self) -> list:
        """``iterations``, the learning-rate variable (unless a schedule), then the slots in build order."""
        return list(self._variables)

    @property
    def learning_rate(self):
        """The current learning rate: the float32 variable, or the schedule evaluated at ``iterations``."""
        if isinstance(self._learning_rate, schedules_module.LearningRateSchedule):
            return self._learning_rate(self._iterations)
        if not isinstance(self._learning_rate, Variable):
            return self._learning_rate()
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        previous = self._learning_rate if isinstance(self._learning_rate, Variable) else None
        if isinstance(value, schedules_module.LearningRateSchedule) or (
            callable(value) and not isinstance(value, Tensor)
        ):
            self._learning_rate = value
            if previous is not None:
                self._variables.remove(previous)
            return
        if previous is None:
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
                "constructor argument, hence its learning rate is not settable. If you need the learning rate "
                "to be settable, you should instantiate the optimizer with a float `learning_rate` argument."
            )
        if isinstance(value, Tensor):
            previous.assign(math_ops.cast(value, dtypes.float32))
        else:
            previous.assign(_as_float(value))

    def build(self, var_list) -> None:
        """Records the variables this optimizer updates; subclasses then create their slots."""
        for index, variable in enumerate(var_list):
            self._variable_index[variable._uid] = index
        self._trainable_variables = list(var_list)
        self.built = True

    def add_variable(self, shape, initializer="zeros", dtype=None, aggregation="mean", name=None) -> Variable:
        """Creates a non-trainable optimizer variable under the optimizer's name and tracks it."""
        dtype = dtypes.as_dtype(dtype or dtypes.float32)
        with name_scope(self.name):
            variable = Variable(
                initializers.get(initializer)(tuple(shape), dtype=dtype), trainable=False, name=name, dtype=dtype
            )
        self._variables.append(variable)
        return variable

    def add_variable_from_reference(self, reference_variable, name=None, initializer="zeros") -> Variable:
        """A zero slot shaped like ``reference_variable``, named ``<its name>_<name>`` as Keras names it."""
        base = reference_variable.name.rsplit(":", 1)[0].replace("/", "_")
        if initializer == "zeros":
            # Made beside the reference's buffer (same device) without ops, so building works while tracing.
            reference = reference_variable._value
            value = Tensor(backend.module_of(reference).zeros(reference.shape, dtype=reference.dtype))
        else:
            value = initializers.get(initializer)(
                tuple(reference_variable.shape.as_list()), dtype=reference_variable.dtype
            )
        with name_scope(self.name):
            variable = Variable(value, trainable=False, name=f"{base}_{name or 'var'}")
        self._variables.append(variable)
        return variable

    def add_optimizer_variables(self, var_list, name, initializer="zeros") -> list:
        """One slot per variable in ``var_list`` (see ``add_variable_from_reference``)."""
        return [self.add_variable_from_reference(variable, name, initializer) for variable in var_list]

    def _get_variable_index(self, variable) -> int:
        return self._variable_index[variable._uid]

    # -- applying gradients ------------------------------------------------------------------------
    def apply_gradients(self, grads_and_vars):
        """Applies ``(gradient, variable)`` pairs; returns ``iterations`` (as tf.keras does)."""
        pairs = list(grads_and_vars)
        if pairs:
            grads, variables = zip(*pairs)
            self.apply(list(grads), list(variables))
        return self._iterations

    def apply(self, grads, trainable_variables=None) -> None:
        """Updates ``trainable_variables`` (or the variables it was built with) from ``grads``.

        ``None`` gradients are skipped with a warning; if every gradient is ``None`` it raises.
        """
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be built on a list of "
                    "variables. Call `optimizer.build(trainable_variables)` first."
                )
            if len(grads) != len(self._trainable_variables):
                raise ValueError(
                    f"Received a list of {len(grads)} gradients, but the optimizer is tracking "
                    f"{len(self._trainable_variables)} trainable variables."
                )
            trainable_variables = self._trainable_variables
        else:
            trainable_variables = list(trainable_variables)
            if len(grads) != len(trainable_variables):
                raise ValueError(f"apply: got {len(grads)} gradients for {len(trainable_variables)} variables")
            if not self.built:
                self.build(trainable_variables)
            self._check_variables_are_known(trainable_variables)
        grads, trainable_variables = self._filter_empty_gradients(grads, trainable_variables)
        grads = [self._prepare_gradient(grad, variable) for grad, variable in zip(grads, trainable_variables)]
        grads = self._clip_gradients(grads)
        learning_rate = self.learning_rate
        self._apply_weight_decay(trainable_variables, learning_rate)
        self._backend_update_step(grads, trainable_variables, learning_rate)
        self._iterations.assign_add(1)
        for variable in trainable_variables:
            if variable.constraint is not None:
                variable.assign(variable.constraint(variable))

    def minimize(self, loss, var_list, tape=None):
        """``tf.keras`` 2 style: gradients of ``loss`` (a tensor recorded on ``tape``, or a callable)
        with respect to ``var_list``, then ``apply_gradients``."""
        if callable(loss):
            with GradientTape() as tape:
                value = loss()
        elif tape is None:
            raise ValueError(
                "minimize: `tape` is required when `loss` is a tensor; pass a callable or the tape that recorded it"
            )
        else:
            value = loss
        var_list = list(var_list() if callable(var_list) else var_list)
        return self.apply_gradients(zip(tape.gradient(value, var_list), var_list))

    def _check_variables_are_known(self, variables) -> None:
        for variable in variables:
            if variable._uid not in self._variable_index:
                raise ValueError(
                    f"Unknown variable: {variable.name}. This optimizer can only be called for the variables it was "
                    "originally built with. When working with a new set of variables, you should recreate a new "
                    "optimizer instance."
                )

    def _filter_empty_gradients(self, grads, variables):
        missing = [variable.name for grad, variable in zip(grads, variables) if grad is None]
        if len(missing) == len(grads):
            raise ValueError(
                f"No gradients provided for any variable: {missing}. Check that the loss depends on the variables "
                "(and that it was computed inside the GradientTape)."
            )
        if missing:
            warnings.warn(
                f"Gradients do not exist for variables {missing} when minimizing the loss. If using "
                "`model.compile()`, did you forget to provide a `loss` argument?",
                stacklevel=3,
            )
            kept = [(grad, variable) for grad, variable in zip(grads, variables) if grad is not None]
            grads, variables = [pair[0] for pair in kept], [pair[1] for pair in kept]
        return grads, variables

    def _prepare_gradient(self, grad, variable) -> Tensor:
        grad = convert_to_tensor(grad)
        if grad.shape.as_tuple() != variable.shape.as_tuple() and None not in grad.shape.as_tuple():
            raise ValueError(
                f"{type(self).__name__}: gradient of shape {grad.shape} for variable '{variable.name}' of shape "
                f"{variable.shape}"
            )
        return math_ops.cast(grad, variable.dtype)

    def _clip_gradients(self, grads):
        """Keras's order of precedence: ``clipnorm``, then ``global_clipnorm``, then ``clipvalue``."""
        if self.clipnorm and self.clipnorm > 0:
            return [clip_by_norm(grad, self.clipnorm) for grad in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            return clip_by_global_norm(grads, self.global_clipnorm)
        if self.clipvalue and self.clipvalue > 0:
            return [array_ops.clip_by_value(grad, -self.clipvalue, self.clipvalue) for grad in grads]
        return grads

    def exclude_from_weight_decay(self, var_list=None, var_names=None) -> None:
        """Exempts variables from weight decay: those in ``var_list``, and those whose name contains
        (as a regular expression) any of ``var_names``. Call it before the optimizer is built."""
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before the optimizer is built.")
        self._exclude_ids = {variable._uid for variable in var_list or ()}
        self._exclude_pattern = re.compile("|".join(sorted(set(var_names)))) if var_names else None

    def _use_weight_decay(self, variable) -> bool:
        if variable._uid in self._exclude_ids:
            return False
        return self._exclude_pattern is None or self._exclude_pattern.search(variable.name) is None

    def _apply_weight_decay(self, variables, learning_rate) -> None:
        if self.weight_decay is None:
            return
        for variable in variables:
            if self._use_weight_decay(variable):
                rate = math_ops.cast(learning_rate, variable.dtype)
                execute(apply_weight_decay_op, (variable, rate), {"weight_decay": float(self.weight_decay)})

    def _backend_update_step(self, grads, variables, learning_rate) -> None:
        """Runs ``update_step`` for each pair; subclasses override it to share per-step scalars."""
        for grad, variable in zip(grads, variables):
            self.update_step(grad, variable, learning_rate)

    def update_step(self, gradient, variable, learning_rate) -> None:
        """Updates one variable from its gradient; every optimizer implements it."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement update_step(gradient, variable, learning_rate)"
        )

    # -- saving --------------------------------------------------------------------------------------
    def get_weights(self) -> list:
        """The values of ``variables`` as NumPy arrays."""
        return [variable.numpy() for variable in self._variables]

    def set_weights(self, weights) -> None:
        """Assigns ``weights`` (in ``variables`` order) to the optimizer's variables."""
        if not self.built:
            raise ValueError(
                "You are calling `set_weights()` on an optimizer that has not yet been built. Please call "
                "`optimizer.build(trainable_variables)` to create the optimizer weights before calling `set_weights()`."
            )
        weights = list(weights)
        if len(weights) != len(self._variables):
            raise ValueError(f"set_weights: got {len(weights)} arrays for {len(self._variables)} optimizer variables")
        for variable, weight in zip(self._variables, weights):
            if tuple(variable.shape.as_list()) != tuple(weight.shape):
                raise ValueError(
                    f"Optimizer variable {variable.name} has shape {variable.shape} not compatible with provided "
                    f"weight shape {tuple(weight.shape)}."
                )
            variable.assign(convert_to_tensor(weight, dtype=variable.dtype))

    def save_own_variables(self, store) -> None:
        """Writes each variable's value to ``store`` under keys "0", "1", ... (Keras 3's layout)."""
        for index, variable in enumerate(self._variables):
            store[str(index)] = variable.numpy()

    def load_own_variables(self, store) -> None:
        """Reads what ``save_own_variables`` wrote; warns and skips when the counts differ."""
        if len(store.keys()) != len(self._variables):
            message = (
                f"Skipping variable loading for optimizer '{self.name}', because it has {len(self._variables)} "
                f"variables whereas the saved optimizer has {len(store.keys())} variables. "
            )
            if not self.built:
                message += "This is likely because the optimizer has not been called/built yet."
            warnings.warn(message, stacklevel=2)
            return
        for index, variable in enumerate(self._variables):
            variable.assign(convert_to_tensor(store[str(index)], dtype=variable.dtype))

    # -- config --------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments, with the learning rate as a float or a serialized schedule."""
        if isinstance(self._learning_rate, schedules_module.LearningRateSchedule):
            learning_rate = schedules_module.serialize(self._learning_rate)
        elif isinstance(self._learning_rate, Variable):
            learning_rate = float(self._learning_rate.numpy())
        else:
            learning_rate = serialize(self._learning_rate)
        return {
            "name": self.name,
            "learning_rate": learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuilds an optimizer (without its state) from ``get_config``'s output."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules_module.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


def _as_float(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ValueError(
            "Argument `learning_rate` should be float, or an instance of LearningRateSchedule, or a callable "
            f"(that takes in the current iteration value and returns the corresponding learning rate value). "
            f"Received instead: learning_rate={value!r}"
        )
    return float(value)
