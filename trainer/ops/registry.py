"""The one op vocabulary: every primitive op is registered here once, with its shape rule, its
kernel and its gradient, and every op call goes through ``execute``.

An op is defined where it is implemented (``math_ops.py``, ``nn_ops.py``, ...)::

    @register("relu", infer=same_as_input)
    def relu(xp, x):
        return xp.maximum(x, 0)

    @relu.def_gradient
    def _(node, grad):
        return grad * cast(node.outputs[0] > 0, grad.dtype)

* ``forward(xp, *arrays, **attrs)`` computes with the array module ``xp`` (NumPy or CuPy).
* ``infer(*specs, **attrs)`` gives the output ``Spec`` (shape tuple with ``None``, DType) without data.
* the gradient takes the recorded ``node`` (``inputs``, ``outputs``, ``attrs``, ``needs_gradient``)
  and the output gradients, and returns one gradient (or ``None``) per input. It is written with ops,
  so gradients are themselves differentiable (nested tapes) and traceable (``tf.function``).

The exporter's lowering tables and the lite runtime's kernel tables are keyed by the same names; the
coverage test in ``tests/trainer/test_registry.py`` keeps all the tables complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from trainer import backend, dtypes
from trainer.context import state
from trainer.tensor import Spec, Tensor, convert_to_tensor


class OpError(ValueError):
    """An op was called with inputs or attributes it cannot accept; the message names the op."""


class GradientNotSupportedError(LookupError):
    """Raised by a gradient rule that emberflow does not implement (say, a second derivative of pooling)."""


@dataclass(eq=False)
class OpDef:
    """A registered primitive op: its name, shape rule, kernel and gradient, and what it is for."""

    name: str
    forward: Callable
    infer: Callable
    num_outputs: int = 1
    differentiable: bool = True
    training_only: bool = False
    stateful: bool = False
    gradient: Callable | None = None
    doc: str = field(default="", repr=False)

    def def_gradient(self, function: Callable) -> Callable:
        """Decorator registering ``function(node, *output_grads)`` as this op's gradient."""
        if not self.differentiable:
            raise OpError(f"op '{self.name}' is declared not differentiable; it cannot have a gradient")
        self.gradient = function
        return function

    def __call__(self, *inputs, **attrs):
        return execute(self, inputs, attrs)


REGISTRY: dict[str, OpDef] = {}


def register(
    name: str,
    *,
    infer: Callable,
    num_outputs: int = 1,
    differentiable: bool = True,
    training_only: bool = False,
    stateful: bool = False,
):
    """Decorator that registers ``forward`` as the kernel of a new op called ``name``.

    ``differentiable=False`` declares that the op has no gradient by nature (its output is an integer,
    boolean or piecewise constant: argmax, equal, one_hot); the tape does not record it.
    ``training_only=True`` declares that exported inference graphs never contain it (optimizer
    updates, random masks), so it needs no lite or ONNX lowering.
    """

    def decorate(forward: Callable) -> OpDef:
        if name in REGISTRY:
            raise OpError(f"op '{name}' is registered twice")
        op = OpDef(
            name,
            forward,
            infer,
            num_outputs=num_outputs,
            differentiable=differentiable,
            training_only=training_only,
            stateful=stateful,
            doc=forward.__doc__ or "",
        )
        REGISTRY[name] = op
        return op

    return decorate


def get_op(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise OpError(f"no op named '{name}' is registered") from None


class Node:
    """One op application as the tape records it: what the gradient rules see."""

    __slots__ = ("op", "inputs", "outputs", "attrs", "needs_gradient")

    def __init__(self, op, inputs, outputs, attrs, needs_gradient):
        self.op = op
        self.inputs = inputs
        self.outputs = outputs
        self.attrs = attrs
        self.needs_gradient = needs_gradient


def execute(op: OpDef, inputs, attrs: dict):
    """Runs ``op`` on ``inputs`` (tensors) with static ``attrs``: eagerly, or symbolically when tracing.

    Returns one tensor, a tuple of them for multi-output ops, or ``None`` for ops without outputs.
    """
    graph = state.graph
    if graph is not None:
        return graph.add_op(op, inputs, attrs)
    for tensor in inputs:
        if tensor._value is None:
            return _execute_symbolic(op, inputs, attrs)
    arrays = [tensor._value for tensor in inputs]
    xp = backend.check_same_device(arrays, op.name) if backend.cupy_in_use else np
    try:
        result = op.forward(xp, *arrays, **attrs)
    except (ValueError, TypeError, IndexError) as error:
        shapes = ", ".join(f"{tuple(a.shape)} {a.dtype}" for a in arrays)
        raise OpError(f"op '{op.name}' failed on inputs [{shapes}] with {attrs or 'no attributes'}: {error}") from error
    if op.num_outputs == 1:
        outputs = (Tensor(result if type(result) is np.ndarray else xp.asarray(result)),)
    elif op.num_outputs == 0:
        return None
    else:
        outputs = tuple(Tensor(r if type(r) is np.ndarray else xp.asarray(r)) for r in result)
    if state.tapes and op.differentiable:
        for tape in state.tapes:
            tape._record(op, inputs, outputs, attrs)
    return outputs[0] if op.num_outputs == 1 else outputs


def infer_outputs(op: OpDef, inputs, attrs: dict) -> tuple:
    """The output specs of ``op`` on ``inputs``, normalized to a tuple; errors name the op."""
    try:
        specs = op.infer(*[tensor.spec for tensor in inputs], **attrs)
    except OpError:
        raise
    except (ValueError, TypeError, IndexError) as error:
        shapes = ", ".join(f"{_format_shape(t.spec.shape)} {t.spec.dtype.name}" for t in inputs)
        raise OpError(f"op '{op.name}' cannot take inputs [{shapes}] with {attrs or 'no attributes'}: {error}") from error
    if op.num_outputs == 1:
        return (specs,)
    return () if op.num_outputs == 0 else tuple(specs)


def _execute_symbolic(op: OpDef, inputs, attrs: dict):
    specs = infer_outputs(op, inputs, attrs)
    outputs = tuple(Tensor.symbolic(spec.shape, spec.dtype) for spec in specs)
    if op.num_outputs == 0:
        return None
    return outputs[0] if op.num_outputs == 1 else outputs


def _format_shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


# -- shape-rule helpers shared by the op modules ---------------------------------------------------


def broadcast_shapes(*shapes) -> tuple:
    """NumPy broadcasting over static shapes where ``None`` is an unknown dimension."""
    rank = max(len(shape) for shape in shapes)
    result = []
    for axis in range(rank):
        dims = [shape[axis - rank + len(shape)] for shape in shapes if axis - rank + len(shape) >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise OpError(f"shapes {', '.join(_format_shape(s) for s in shapes)} cannot be broadcast together")
        if known:
            result.append(known.pop())
        elif any(d is None for d in dims):
            result.append(None)
        else:
            result.append(1)
    return tuple(result)


def same_as_input(x: Spec, **_attrs) -> Spec:
    return x


def normalize_axis(axis: int, rank: int, op_name: str) -> int:
    if not -rank <= axis < max(rank, 1):
        raise OpError(f"op '{op_name}': axis {axis} is out of range for a tensor of rank {rank}")
    return axis % rank if rank else 0


def require_same_dtype(op_name: str, *specs: Spec) -> dtypes.DType:
    first = specs[0].dtype
    for spec in specs[1:]:
        if spec.dtype is not first:
            raise OpError(
                f"op '{op_name}' needs inputs of one dtype, got {first.name} and {spec.dtype.name}; "
                "use tf.cast to convert one of them"
            )
    return first


def require_floating(op_name: str, spec: Spec) -> None:
    if not spec.dtype.is_floating:
        raise OpError(f"op '{op_name}' needs a floating-point input, got {spec.dtype.name}")


def as_tensors(*values, dtype_hint=None) -> tuple:
    """Converts op arguments to tensors; Python numbers take the dtype of the first tensor among them."""
    if dtype_hint is None:
        for value in values:
            if isinstance(value, Tensor):
                dtype_hint = value.dtype
                break
    return tuple(convert_to_tensor(value, dtype_hint=dtype_hint) for value in values)
