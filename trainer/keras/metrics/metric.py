"""The ``Metric`` base class and the reduction metrics built on it: ``Sum``, ``Mean``, ``MeanMetricWrapper``.

A metric's state lives in non-trainable variables and every update goes through ``assign_add`` (an
op), so ``update_state`` runs eagerly and inside traced steps alike.
"""

from __future__ import annotations

from trainer import dtypes
from trainer.keras.layers.base import snake_case, unique_name
from trainer.keras.losses.loss import divide_no_nan, squeeze_or_expand_to_same_rank
from trainer.keras.saving.registration import keras_serializable, registered_name
from trainer.ops import array_ops, math_ops
from trainer.ops.math_ops import broadcast_like_op
from trainer.ops.registry import execute
from trainer.tensor import convert_to_tensor
from trainer.variables import Variable, name_scope


@keras_serializable("metrics")
class Metric:
    """Base class of metrics: state in variables, ``update_state`` to accumulate, ``result`` to read.

    Subclasses create their state with ``add_variable`` in ``__init__`` and implement
    ``update_state(...)`` and ``result()``; ``reset_state`` zeroes every state variable, and calling
    the metric updates it and returns the result.

    Args:
        dtype: the dtype of the state and the result (float32 by default).
        name: the metric's name (the key in ``fit``'s logs).

    Example:
        >>> class Maximum(tf.keras.metrics.Metric):
        ...     def __init__(self, name="maximum"):
        ...         super().__init__(name=name)
        ...         self.peak = self.add_variable(shape=(), initializer="zeros", name="peak")
        ...     def update_state(self, values):
        ...         self.peak.assign(tf.maximum(self.peak, tf.reduce_max(values)))
        ...     def result(self):
        ...         return tf.identity(self.peak)
    """

    def __init__(self, dtype=None, name=None):
        self.name = name if name is not None else unique_name(snake_case(type(self).__name__))
        self._dtype = dtypes.as_dtype(dtype if dtype is not None else dtypes.float32)
        self._variables: list[Variable] = []

    @property
    def dtype(self) -> str:
        return self._dtype.name

    @property
    def variables(self) -> list:
        """The state variables, in creation order."""
        return list(self._variables)

    def add_variable(self, shape, initializer, dtype=None, aggregation="sum", name=None) -> Variable:
        """Creates a non-trainable state variable of this metric."""
        from trainer.keras import initializers  # noqa: PLC0415 - initializers import the layer stack

        dtype = dtypes.as_dtype(dtype if dtype is not None else self._dtype)
        with name_scope(self.name.replace("/", ">")):
            variable = Variable(
                initializers.get(initializer or "zeros")(tuple(shape), dtype=dtype),
                trainable=False,
                name=name,
                dtype=dtype,
            )
        self._variables.append(variable)
        return variable

    def add_weight(self, shape=(), initializer=None, dtype=None, name=None) -> Variable:
        return self.add_variable(shape=shape, initializer=initializer, dtype=dtype, name=name)

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement update_state(...)")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must implement result()")

    def reset_state(self) -> None:
        """Zeroes every state variable."""
        for variable in self._variables:
            variable.assign(array_ops.zeros_like(variable))

    reset_states = reset_state  # the tf.keras 2 name

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def _first_dim(values, dtype):
    dim = values.shape.as_tuple()[0]
    return float(dim) if dim is not None else math_ops.cast(array_ops.shape(values)[0], dtype)


def reduce_to_samplewise_values(values, sample_weight, reduce_fn, dtype):
    """Keras 3's rule: weight ``values`` by ``sample_weight`` (broadcast to them) and reduce every axis
    after the first with ``reduce_fn``; returns the per-sample values and weights."""
    values = math_ops.cast(convert_to_tensor(values), dtype)
    if sample_weight is not None:
        sample_weight = math_ops.cast(convert_to_tensor(sample_weight, dtype_hint=dtype), dtype)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        weight_rank, value_rank = sample_weight.ndim, values.ndim
        if value_rank > weight_rank:
            values = reduce_fn(values, axis=list(range(weight_rank, value_rank)))
        sample_weight = execute(broadcast_like_op, (sample_weight, values), {})
        values = math_ops.multiply(values, sample_weight)
        if weight_rank > 1:
            sample_weight = reduce_fn(sample_weight, axis=list(range(1, weight_rank)))
    if values.ndim > 1:
        values = reduce_fn(values, axis=list(range(1, values.ndim)))
    return values, sample_weight


@keras_serializable("metrics", "sum")
class Sum(Metric):
    """The (weighted) sum of the values it is given.

    Args:
        name: the metric's name.
        dtype: the dtype of the total.

    Example:
        >>> total = tf.keras.metrics.Sum()
        >>> total.update_state([1.0, 3.0, 5.0, 7.0])
        >>> float(total.result())
        16.0
    """

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype=self._dtype, name="total")

    def update_state(self, values, sample_weight=None):
        values, _ = reduce_to_samplewise_values(values, sample_weight, math_ops.reduce_sum, self._dtype)
        self.total.assign_add(math_ops.reduce_sum(values))

    def result(self):
        # A new tensor (identity would hand out the variable's buffer, which the next update changes).
        return math_ops.add(self.total, 0.0)


@keras_serializable("metrics", "mean")
class Mean(Metric):
    """The (weighted) mean of the values it is given: ``sum(values * weights) / sum(weights)``.

    Values of rank > 1 are first averaged over every axis but the first, so each sample counts once.

    Args:
        name: the metric's name.
        dtype: the dtype of the state and the result.

    Example:
        >>> mean = tf.keras.metrics.Mean()
        >>> mean.update_state([1.0, 3.0, 5.0, 7.0], sample_weight=[1, 1, 0, 0])
        >>> float(mean.result())
        2.0
    """

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype=self._dtype, name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype=self._dtype, name="count")

    def update_state(self, values, sample_weight=None):
        values, sample_weight = reduce_to_samplewise_values(values, sample_weight, math_ops.reduce_mean, self._dtype)
        self.total.assign_add(math_ops.reduce_sum(values))
        if sample_weight is not None:
            count = math_ops.reduce_sum(sample_weight)
        elif values.ndim >= 1:
            count = _first_dim(values, self._dtype)
        else:
            count = 1.0
        self.count.assign_add(count)

    def result(self):
        return divide_no_nan(self.total, self.count)


def _is_loss_function(fn) -> bool:
    return getattr(fn, "__module__", "").startswith("trainer.keras.losses")


def lookup_function(name):
    """The metric function registered as ``name`` (metric functions first, then loss functions)."""
    from trainer.keras.metrics import FUNCTIONS  # noqa: PLC0415 - the table lives in the package
    from trainer.keras.saving.registration import lookup  # noqa: PLC0415

    if name in FUNCTIONS:
        return FUNCTIONS[name]
    return lookup("losses", name)


@keras_serializable("metrics")
class MeanMetricWrapper(Mean):
    """The mean of ``fn(y_true, y_pred, **kwargs)`` over every sample seen.

    Args:
        fn: a function of ``(y_true, y_pred)`` returning one value per sample.
        name: the metric's name.
        dtype: the dtype of the state and the result.
        **kwargs: keyword arguments passed to ``fn``.

    Example:
        >>> metric = tf.keras.metrics.MeanMetricWrapper(tf.keras.metrics.binary_accuracy, threshold=0.7)
    """

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs
        if _is_loss_function(fn):
            self._direction = "down"

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        config["fn"] = registered_name(self._fn)
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("fn"), str):
            config["fn"] = lookup_function(config["fn"])
        return cls(**config)
