"""``tf.keras.layers.Layer``: the base of every layer and model.

A layer owns weights (created in ``build`` the first time it is called, when the input shape is
known), computes in ``call``, and describes itself in ``get_config``. ``__call__`` adds what every
layer needs around that: converting and casting inputs, checking them against ``input_spec``,
building, passing ``training`` down, naming errors after the layer, and — when called on symbolic
Keras inputs — recording the call so a functional ``Model`` can replay it.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
import threading
from collections import defaultdict

import numpy as np

from trainer import dtypes, nest
from trainer.context import state
from trainer.keras import constraints as constraints_module
from trainer.keras import initializers as initializers_module
from trainer.keras import regularizers as regularizers_module
from trainer.shapes import TensorShape
from trainer.tensor import Tensor, convert_to_tensor
from trainer.variables import Variable


class _WeightBudget(threading.local):
    """How many bytes of weights ``add_weight`` may still create on this thread (``None``: no limit)."""

    def __init__(self):
        self.remaining = None
        self.source = None


_weight_budget = _WeightBudget()


@contextlib.contextmanager
def weight_budget(nbytes: int, source: str):
    """Caps the bytes of weights created inside the block; ``source`` names what sets the cap in errors.

    Loading a file rebuilds the model from its config before reading any weights; this keeps a hostile
    config (``Dense(units=10**9)``) from allocating more weight memory than the file itself holds.
    """
    previous = (_weight_budget.remaining, _weight_budget.source)
    _weight_budget.remaining, _weight_budget.source = int(nbytes), source
    try:
        yield
    finally:
        _weight_budget.remaining, _weight_budget.source = previous


class _CallContext(threading.local):
    def __init__(self):
        self.training = None  # set by the outermost call that received training=...
        self.depth = 0


_call_context = _CallContext()
_name_counts: dict[str, int] = defaultdict(int)


def unique_name(base: str) -> str:
    """``dense``, ``dense_1``, ``dense_2``, ... as Keras names layers."""
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def reset_names() -> None:
    """Restarts automatic layer names (``tf.keras.backend.clear_session``)."""
    _name_counts.clear()


def snake_case(name: str) -> str:
    """Keras's default layer names: ``Conv2D`` -> ``conv2d``, ``MaxPooling2D`` -> ``max_pooling2d``."""
    intermediate = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()


class InputSpec:
    """What a layer accepts: ``ndim``/``min_ndim``/``max_ndim`` and fixed sizes on some ``axes``."""

    def __init__(self, dtype=None, shape=None, ndim=None, max_ndim=None, min_ndim=None, axes=None, allow_last_axis_squeeze=False, name=None):
        self.dtype = dtype
        self.shape = shape
        self.ndim = len(shape) if shape is not None else ndim
        self.max_ndim = max_ndim
        self.min_ndim = min_ndim
        self.axes = dict(axes or {})
        self.name = name


def _format_shape(shape) -> str:
    return str(TensorShape(shape))


class Layer:
    """Base class of all layers: weights, ``build``/``call``/``get_config``, and the call protocol.

    Args:
        trainable: whether the layer's weights are updated by training.
        name: the layer's name (unique by default: ``dense``, ``dense_1``, ...).
        dtype: the dtype of weights and computation (float32 by default).

    Example:
        >>> class Scale(tf.keras.layers.Layer):
        ...     def build(self, input_shape):
        ...         self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")
        ...     def call(self, x):
        ...         return x * self.w
    """

    _autocast = True  # cast numeric inputs to the layer's dtype (Keras casts floats; we cast ints too)

    def __init__(self, trainable: bool = True, name: str | None = None, dtype=None, **kwargs):
        object.__setattr__(self, "_tracked_layers", [])
        object.__setattr__(self, "_own_weights", [])
        allowed = {"input_shape", "batch_input_shape", "batch_size", "input_dim", "autocast", "activity_regularizer"}
        unknown = set(kwargs) - allowed
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {', '.join(sorted(unknown))}")
        self.name = name or unique_name(snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        self._dtype = dtypes.as_dtype(dtype.get("config", {}).get("name", "float32") if isinstance(dtype, dict) else (dtype or "float32"))
        self.built = False
        self.input_spec = None
        self.supports_masking = False
        self._call_losses = []
        self._inbound_nodes = []
        self._autocast = kwargs.get("autocast", type(self)._autocast)
        self.activity_regularizer = regularizers_module.get(kwargs.get("activity_regularizer"))
        self._batch_input_shape = _batch_input_shape_from(kwargs)
        self._build_input_shape = None

    # -- attribute tracking ------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if not name.startswith("__") and "_tracked_layers" in self.__dict__:
            for item in _layers_in(value):
                if item is not self and not any(item is known for known in self._tracked_layers):
                    self._tracked_layers.append(item)
            if isinstance(value, Variable) and not any(value is w for w in self._own_weights):
                self._own_weights.append(value)
        object.__setattr__(self, name, value)

    # -- weights -----------------------------------------------------------------------------------
    def add_weight(self, name=None, shape=None, dtype=None, initializer=None, regularizer=None, trainable=True, constraint=None, **kwargs):
        """Creates a weight of this layer (a ``Variable``), initialized and tracked.

        Both Keras orders work: ``add_weight(name, shape, ...)`` and ``add_weight(shape=..., ...)``.
        """
        if isinstance(name, (tuple, list, TensorShape)):  # Keras 3 order: shape first
            name, shape = None, name
        shape = tuple(TensorShape(shape if shape is not None else ()).as_list())
        if None in shape:
            raise ValueError(f"layer '{self.name}': weight {name!r} needs a fully known shape, got {shape}")
        dtype = dtypes.as_dtype(dtype or self._dtype)
        if _weight_budget.remaining is not None:
            nbytes = math.prod(shape) * dtype.size
            if nbytes > _weight_budget.remaining:
                raise ValueError(
                    f"layer '{self.name}': weight {name!r} of shape {shape} needs {nbytes} bytes, more than "
                    f"{_weight_budget.source} holds ({_weight_budget.remaining} bytes left)"
                )
            _weight_budget.remaining -= nbytes
        initializer = initializers_module.get(initializer if initializer is not None else ("glorot_uniform" if dtype.is_floating else "zeros"))
        with _layer_scope(self):
            variable = Variable(initializer(shape, dtype=dtype), trainable=trainable, name=name or "weight", dtype=dtype)
        variable.regularizer = regularizers_module.get(regularizer)
        variable.constraint = constraints_module.get(constraint)
        self._own_weights.append(variable)
        return variable

    add_variable = add_weight

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in self._tracked_layers:
            layer.trainable = value

    @property
    def weights(self) -> list:
        """Own weights (trainable first), then each sublayer's, without duplicates."""
        seen, result = set(), []
        own = [w for w in self._own_weights if w.trainable] + [w for w in self._own_weights if not w.trainable]
        for weight in own + [w for layer in self._tracked_layers for w in layer.weights]:
            if id(weight) not in seen:
                seen.add(id(weight))
                result.append(weight)
        return result

    @property
    def trainable_weights(self) -> list:
        if not self._trainable:
            return []
        seen, result = set(), []
        own = [w for w in self._own_weights if w.trainable]
        for weight in own + [w for layer in self._tracked_layers for w in layer.trainable_weights]:
            if id(weight) not in seen:
                seen.add(id(weight))
                result.append(weight)
        return result

    @property
    def non_trainable_weights(self) -> list:
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    variables = weights
    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def get_weights(self) -> list:
        """The weights' values as NumPy arrays, in ``weights`` order."""
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights) -> None:
        """Sets the weights from arrays in ``weights`` order; shapes must match exactly."""
        params = self.weights
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(
                f"layer '{self.name}' expects {len(params)} weight arrays, got {len(weights)}; "
                f"its weights are {[w.name for w in params]}"
            )
        # Every shape is checked before anything is assigned: a mismatch leaves all weights unchanged.
        # Values are cast to each weight's dtype, as Keras does (float64 arrays into float32 weights).
        arrays = [np.asarray(value.numpy() if isinstance(value, Tensor) else value, dtype=v.dtype.as_numpy_dtype) for v, value in zip(params, weights)]
        for variable, array in zip(params, arrays):
            if array.shape != tuple(variable.shape):
                raise ValueError(
                    f"layer '{self.name}': weight '{variable.name}' has shape {tuple(variable.shape)}, "
                    f"but the provided array has shape {array.shape}"
                )
        for variable, array in zip(params, arrays):
            variable.assign(array)

    def save_weights(self, filepath, overwrite=True) -> None:
        """Writes the weights of this layer and its sublayers to a ``.weights.ember`` file, atomically."""
        from trainer.keras.saving.saving import save_weights  # noqa: PLC0415

        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False) -> None:
        """Sets the weights from a ``save_weights`` (or ``save``) file, matched by layer name and order."""
        if skip_mismatch:
            raise NotImplementedError("load_weights(skip_mismatch=True) is not supported by emberflow; every weight must fit")
        from trainer.keras.saving.saving import load_weights  # noqa: PLC0415

        load_weights(self, filepath)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(
                f"You tried to call count_params on layer '{self.name}', but the layer isn't built. "
                "You can build it manually via: layer.build(batch_input_shape)"
            )
        return int(sum(w.shape.num_elements() for w in self.weights))

    # -- losses ------------------------------------------------------------------------------------
    def add_loss(self, loss) -> None:
        """Adds a scalar loss computed in ``call`` (cleared at the start of the layer's next call)."""
        self._call_losses.append(loss)

    @property
    def losses(self) -> list:
        """Losses added during the last call plus weight-regularization penalties, for all sublayers."""
        result = list(self._call_losses)
        for weight in self._own_weights:
            regularizer = getattr(weight, "regularizer", None)
            if regularizer is not None and self._trainable:
                result.append(regularizer(weight))
        for layer in self._tracked_layers:
            result.extend(layer.losses)
        return result

    # -- the call protocol -------------------------------------------------------------------------
    def build(self, input_shape) -> None:
        self._build_input_shape = input_shape
        self.built = True

    def call(self, inputs, *args, **kwargs):
        return inputs

    def __call__(self, *args, **kwargs):
        if not args:
            raise ValueError(f"layer '{self.name}' was called without inputs")
        inputs, rest = args[0], args[1:]
        if state.graph is None and any(
            isinstance(t, Tensor) and t._keras_history is not None for t in nest.flatten(inputs)
        ):
            from trainer.keras.models.functional import call_symbolically  # noqa: PLC0415

            return call_symbolically(self, inputs, rest, kwargs)
        return self._call_eager(nest.map_structure(self._convert_input, inputs), rest, kwargs)

    def _call_eager(self, inputs, rest, kwargs):
        if not self.built:
            self._maybe_build(inputs)
        self._check_input_spec(inputs)
        accepts_training = _call_accepts(type(self), "training")
        outer_training = _call_context.training
        if accepts_training:
            if kwargs.get("training") is None:
                kwargs["training"] = outer_training
            else:
                kwargs["training"] = bool(kwargs["training"])
        elif "training" in kwargs:
            kwargs.pop("training")
        self._call_losses = []
        _call_context.depth += 1
        if accepts_training:
            _call_context.training = kwargs["training"]
        try:
            outputs = self.call(inputs, *rest, **kwargs)
        except Exception as error:  # noqa: BLE001 - re-raised with the layer's name, never swallowed
            _annotate(error, self, inputs)
            raise
        finally:
            _call_context.depth -= 1
            _call_context.training = outer_training
        if self.activity_regularizer is not None:
            for output in nest.flatten(outputs):
                self.add_loss(self.activity_regularizer(output))
        return outputs

    def _convert_input(self, value):
        tensor = value if isinstance(value, Tensor) else convert_to_tensor(value)
        if self._autocast and tensor.dtype is not self._dtype and (tensor.dtype.is_floating or tensor.dtype.is_integer) and self._dtype.is_floating:
            from trainer.ops.math_ops import cast  # noqa: PLC0415

            tensor = cast(tensor, self._dtype)
        return tensor

    def _maybe_build(self, inputs) -> None:
        shapes = nest.map_structure(lambda t: t.shape, inputs)
        with _layer_scope(self):
            self.build(shapes)
        self.built = True
        if self._build_input_shape is None:
            self._build_input_shape = shapes

    def _check_input_spec(self, inputs) -> None:
        spec = self.input_spec
        if spec is None:
            return
        specs = spec if isinstance(spec, (list, tuple)) else [spec]
        flat = nest.flatten(inputs)
        for index, (tensor_spec, tensor) in enumerate(zip(specs, flat)):
            if tensor_spec is None:
                continue
            shape = tensor.shape.as_tuple()
            where = f'Input {index} of layer "{self.name}" ({type(self).__name__}) is incompatible with the layer'
            try:
                self._check_one_spec(tensor_spec, shape, where)
            except ValueError as error:
                error._emberflow_layer = self.name  # already names the layer; callers must not re-wrap it
                raise

    def _check_one_spec(self, tensor_spec, shape, where) -> None:
        if tensor_spec.ndim is not None and len(shape) != tensor_spec.ndim:
            raise ValueError(f"{where}: expected ndim={tensor_spec.ndim}, found ndim={len(shape)}. Full shape received: {_format_shape(shape)}")
        if tensor_spec.min_ndim is not None and len(shape) < tensor_spec.min_ndim:
            raise ValueError(f"{where}: expected min_ndim={tensor_spec.min_ndim}, found ndim={len(shape)}. Full shape received: {_format_shape(shape)}")
        if tensor_spec.max_ndim is not None and len(shape) > tensor_spec.max_ndim:
            raise ValueError(f"{where}: expected max_ndim={tensor_spec.max_ndim}, found ndim={len(shape)}. Full shape received: {_format_shape(shape)}")
        for axis, size in tensor_spec.axes.items():
            if -len(shape) <= axis < len(shape) and shape[axis] is not None and shape[axis] != size:
                raise ValueError(
                    f"{where}: expected axis {axis} of input shape to have value {size}, "
                    f"but received input with shape {_format_shape(shape)}"
                )

    def compute_output_shape(self, input_shape):
        """The output shape for an input shape, found by calling the layer on a symbolic input."""
        from trainer.ops.math_ops import cast  # noqa: F401,PLC0415 - ensures ops are registered

        placeholder = nest.map_structure(
            lambda s: Tensor.symbolic(TensorShape(s).as_tuple(), self._dtype),
            input_shape if _is_nested_shape(input_shape) else TensorShape(input_shape),
        )
        outputs = self._call_eager(placeholder, (), {})
        return nest.map_structure(lambda t: t.shape, outputs)

    # -- identity and config -----------------------------------------------------------------------
    @property
    def dtype(self) -> str:
        return self._dtype.name

    @property
    def compute_dtype(self) -> str:
        return self._dtype.name

    @property
    def variable_dtype(self) -> str:
        return self._dtype.name

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this layer (subclasses add theirs)."""
        config = {"name": self.name, "trainable": self._trainable, "dtype": self._dtype.name}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def get_build_config(self) -> dict | None:
        if self._build_input_shape is None:
            return None
        return {"input_shape": _shape_lists(self._build_input_shape)}

    def build_from_config(self, config) -> None:
        if config and "input_shape" in config:
            self._maybe_build_from_shape(config["input_shape"])

    def _maybe_build_from_shape(self, shape) -> None:
        with _layer_scope(self):
            self.build(TensorShape(shape) if not _is_nested_shape(shape) else shape)
        self.built = True

    # -- functional-API views ----------------------------------------------------------------------
    def _single_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"layer '{self.name}' has never been called on a Keras Input and thus has no defined {what}")
        if len(self._inbound_nodes) > 1:
            raise AttributeError(f"layer '{self.name}' has been called {len(self._inbound_nodes)} times; {what} is ambiguous")
        return self._inbound_nodes[0]

    @property
    def input(self):
        return self._single_node("input").input_tensors

    @property
    def output(self):
        return self._single_node("output").output_tensors

    @property
    def output_shape(self):
        return nest.map_structure(lambda t: t.shape, self.output)

    @property
    def input_shape(self):
        return nest.map_structure(lambda t: t.shape, self.input)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


class _layer_scope:  # noqa: N801 - used like a function: `with _layer_scope(layer):`
    """Names variables created while building ``layer`` as ``<layer name>/<weight name>:0``."""

    def __init__(self, layer):
        self.layer = layer

    def __enter__(self):
        self._pushed = not state.name_scopes or state.name_scopes[-1] != self.layer.name
        if self._pushed:
            state.name_scopes.append(self.layer.name)

    def __exit__(self, *exc):
        if self._pushed:
            state.name_scopes.pop()


def _layers_in(value):
    if isinstance(value, Layer):
        return [value]
    if isinstance(value, (list, tuple)):
        return [item for item in value if isinstance(item, Layer)]
    if isinstance(value, dict):
        return [item for item in value.values() if isinstance(item, Layer)]
    return []


def _batch_input_shape_from(kwargs):
    if kwargs.get("batch_input_shape") is not None:
        return tuple(kwargs["batch_input_shape"])
    if kwargs.get("input_shape") is not None:
        return (kwargs.get("batch_size"),) + tuple(kwargs["input_shape"])
    if kwargs.get("input_dim") is not None:
        return (kwargs.get("batch_size"), kwargs["input_dim"])
    return None


def _shape_lists(shape):
    """A build shape as JSON-ready lists: one shape (``(None, 6)``, a ``TensorShape``), or a list or dict of them."""
    if isinstance(shape, dict):
        return {key: _shape_lists(value) for key, value in shape.items()}
    if _is_nested_shape(shape):
        return [_shape_lists(item) for item in shape]
    return TensorShape(shape).as_list()


def _is_nested_shape(shape) -> bool:
    return isinstance(shape, (list, tuple)) and any(isinstance(item, (list, tuple, TensorShape)) for item in shape)


_signature_cache: dict = {}


def _call_accepts(cls, argument: str) -> bool:
    key = (cls, argument)
    if key not in _signature_cache:
        parameters = inspect.signature(cls.call).parameters
        _signature_cache[key] = argument in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    return _signature_cache[key]


def _annotate(error: Exception, layer: Layer, inputs) -> None:
    """Adds the innermost failing layer's name and input shapes to an error, once."""
    if getattr(error, "_emberflow_layer", None) is not None or not error.args:
        return
    shapes = ", ".join(_format_shape(t.shape.as_tuple()) for t in nest.flatten(inputs) if isinstance(t, Tensor))
    message = (
        f"Exception encountered when calling {type(layer).__name__}.call() (layer \"{layer.name}\", "
        f"inputs of shape {shapes}):\n{error.args[0]}"
    )
    error.args = (message,) + tuple(error.args[1:])
    error._emberflow_layer = layer.name


def in_training_call() -> bool | None:
    """The ``training`` flag of the enclosing layer call, if any."""
    return _call_context.training
