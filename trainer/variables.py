"""``tf.Variable``: a tensor whose value can be updated in place, and ``tf.name_scope``."""

from __future__ import annotations

import contextlib
import itertools

from trainer import dtypes
from trainer.context import state
from trainer.ops.registry import execute, register
from trainer.shapes import TensorShape
from trainer.tensor import Spec, Tensor, convert_to_tensor

_uids = itertools.count(1)


class Variable(Tensor):
    """A mutable tensor that keeps its identity across updates, like ``tf.Variable``.

    Args:
        initial_value: a tensor, array, Python value, or a zero-argument callable returning one.
        trainable: whether tapes watch it automatically and ``model.trainable_weights`` lists it.
        name: the variable's name; enclosing ``tf.name_scope`` scopes prefix it.
        dtype: convert the initial value to this dtype.

    ``assign``, ``assign_add`` and ``assign_sub`` write into the variable's own buffer: every
    reference to the variable sees the new value. Variables are not kept alive by any global
    registry, so dropping the last reference frees their memory.
    """

    __slots__ = ("_name", "_trainable", "_uid", "_aggregation", "regularizer", "constraint")
    _is_variable = True

    def __init__(self, initial_value, trainable: bool = True, name: str | None = None, dtype=None, shape=None, **kwargs):
        if callable(initial_value):
            initial_value = initial_value()
        value = convert_to_tensor(initial_value, dtype=None if dtype is None else dtypes.as_dtype(dtype))
        array = value._require_value("tf.Variable's initial value")
        super().__init__(array.copy())
        if shape is not None and not TensorShape(shape).is_compatible_with(array.shape):
            raise ValueError(f"tf.Variable: initial value of shape {array.shape} does not match shape={shape}")
        self._uid = next(_uids)
        base = name if name is not None else "Variable"
        scope = "/".join(state.name_scopes)
        self._name = f"{scope}/{base}:0" if scope else f"{base}:0"
        self._trainable = bool(trainable)
        self._aggregation = kwargs.get("aggregation")
        self.regularizer = None  # set by Layer.add_weight; read by Layer.losses
        self.constraint = None  # applied by the optimizer after each update

    @property
    def name(self) -> str:
        return self._name

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def value(self) -> Tensor:
        return self.read_value()

    def read_value(self) -> Tensor:
        """A tensor with the variable's current value (a copy: later assignments do not change it)."""
        return Tensor(self._value.copy())

    def assign(self, value, use_locking=None, name=None, read_value=True):
        """Writes ``value`` into the variable in place; its shape and dtype must match."""
        execute(assign_op, (self, self._coerce(value, "assign")), {"mode": "set"})
        return self if read_value else None

    def assign_add(self, delta, use_locking=None, name=None, read_value=True):
        execute(assign_op, (self, self._coerce(delta, "assign_add")), {"mode": "add"})
        return self if read_value else None

    def assign_sub(self, delta, use_locking=None, name=None, read_value=True):
        execute(assign_op, (self, self._coerce(delta, "assign_sub")), {"mode": "subtract"})
        return self if read_value else None

    def _coerce(self, value, method: str) -> Tensor:
        tensor = convert_to_tensor(value, dtype_hint=self.dtype)
        if tensor.dtype != self.dtype:
            raise TypeError(f"Variable '{self._name}'.{method}: value of dtype {tensor.dtype.name}, variable is {self.dtype.name}")
        if not self.shape.is_compatible_with(tensor.shape) and tensor.ndim != 0:
            raise ValueError(
                f"Variable '{self._name}'.{method}: value of shape {tensor.shape}, variable has shape {self.shape}"
            )
        return tensor

    def numpy(self):
        return super().numpy().copy()

    def __repr__(self) -> str:
        return f"<tf.Variable '{self._name}' shape={self.shape} dtype={self.dtype.name}, numpy={self.numpy()!r}>"

    def __reduce__(self):
        raise TypeError("emberflow variables cannot be pickled; save models with model.save(...)")


def _assign_infer(variable: Spec, value: Spec, *, mode):
    return None


@register("assign_variable", infer=_assign_infer, num_outputs=0, differentiable=False, training_only=True, stateful=True)
def assign_op(xp, variable, value, *, mode):
    """Writes into the variable's buffer: ``mode`` is "set", "add" or "subtract"."""
    if mode == "set":
        variable[...] = value
    elif mode == "add":
        variable += value
    else:
        variable -= value


@contextlib.contextmanager
def name_scope(name: str):
    """``with tf.name_scope("block1"):`` prefixes the names of variables created inside."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name_scope needs a non-empty string, got {name!r}")
    state.name_scopes.append(name.rstrip("/"))
    try:
        yield name
    finally:
        state.name_scopes.pop()
