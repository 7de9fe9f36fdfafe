"""What every kernel sees: the ``Node`` handed to ``prepare`` and the ``Kernel`` record of a table entry.

``prepare(node)`` checks shapes, dtypes and options, computes parameters, reserves scratch through
``node.scratch`` and returns ``(outputs, state)``: each output's (shape, dtype) and whatever ``eval``
needs. ``eval(state, inputs, outputs)`` only computes, writing into the planned ``outputs`` arrays.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lite_runtime.errors import LiteFormatError
from lite_runtime.schema import Activation, Padding

FLOAT32 = np.dtype(np.float32)


@dataclass
class TensorInfo:
    """A tensor as ``prepare`` sees it: its shape, dtype, quantization and value when known before invoke."""

    shape: tuple[int, ...]
    dtype: np.dtype
    value: np.ndarray | None = None
    scales: np.ndarray | None = None
    zero_points: np.ndarray | None = None
    quantized_dimension: int = 0


class Node:
    """One operator during ``prepare``: its inputs (None where an optional input is absent), its outputs as
    the file declares them (dtype and quantization; the kernel computes their shapes) and its options."""

    def __init__(self, index: int, name: str, inputs: list, output_count: int, outputs: list, options: dict,
                 allocate: Callable):  # fmt: skip
        self.index, self.name, self.inputs, self.options = index, name, inputs, options
        self.output_count, self.outputs = output_count, outputs  # outputs as the file declares them
        self.output_dtypes = [t.dtype for t in outputs]
        self._allocate = allocate
        self.extended_input: tuple[int, int] | None = None  # (input position, spare elements): see extend_input

    def extend_input(self, i: int, elements: int) -> None:
        """Asks the planner for ``elements`` spare elements right after input ``i``'s bytes in the arena.

        Granted only where that input is planned (not a constant); ``bind`` then gets ``extended``: the
        input's elements followed by the spare ones, as one flat array. The spare elements belong to the
        kernel but are not preserved between invokes (the arena reuses them outside the input's lifetime),
        so the kernel writes them on every run. FULLY_CONNECTED uses one to add its bias inside the product."""
        self.extended_input = (i, elements)

    def fail(self, message: str) -> LiteFormatError:
        return LiteFormatError(f"operator {self.index} ({self.name}): {message}")

    def check(self, condition, message: str) -> None:
        if not condition:
            raise self.fail(message)

    def arity(self, low: int, high: int | None = None, outputs: int = 1) -> None:
        """Checks the number of inputs (``low``..``high``) and outputs; required inputs must be present."""
        high = low if high is None else high
        self.check(low <= len(self.inputs) <= high, f"takes {low}..{high} inputs, got {len(self.inputs)}")
        self.check(all(t is not None for t in self.inputs[:low]), f"its first {low} inputs are required")
        self.check(self.output_count == outputs, f"has {self.output_count} outputs, expected {outputs}")

    def input(self, i: int) -> TensorInfo | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def float_input(self, i: int) -> TensorInfo:
        tensor = self.inputs[i]
        self.check(tensor.dtype == FLOAT32, f"input {i} is {tensor.dtype}, expected float32 (only float32 runs here)")
        return tensor

    def constant(self, i: int, what: str) -> np.ndarray:
        """The value of input ``i``, which must be known before invoke (a constant or computed from shapes)."""
        tensor = self.input(i)
        self.check(tensor is not None and tensor.value is not None, f"{what} (input {i}) must be a constant")
        return tensor.value

    def option(self, name: str):
        return self.options[name]

    def scratch(self, shape, dtype=np.float32, fill=0) -> np.ndarray:
        """A buffer for ``eval`` to reuse on every run, counted against the interpreter's memory limit."""
        return self._allocate(tuple(int(d) for d in shape), np.dtype(dtype), fill)

    def tiled(self, values, shape, dtype) -> np.ndarray:
        """``values`` broadcast to ``shape`` in a scratch of its own: a full-sized constant operand for eval.

        NumPy 2's ufuncs allocate a buffer as large as their output (and run at half speed) when an operand
        broadcasts or is not contiguous; ``np.copyto`` does neither. So eval's ufuncs take contiguous
        operands of one shape, or Python scalars, and strided views are copied into scratch first."""
        out = self.scratch(shape, dtype)
        np.copyto(out, np.asarray(values).astype(dtype, copy=False))
        return out


@dataclass(frozen=True)
class Kernel:
    """A kernel table entry. ``shapes_only``: its output depends only on input shapes (SHAPE).

    ``bind(state, inputs, outputs)``, where given, returns the call ``invoke`` makes for these planned arrays:
    it reshapes views and picks its code path once, at allocate time, since at batch 1 each NumPy call and
    view costs about as much as the arithmetic. A kernel with ``bind`` defines ``eval`` as ``bind(...)()``."""

    prepare: Callable
    eval: Callable
    shapes_only: bool = False
    bind: Callable | None = None

    def bound(self, state, inputs: list, outputs: list, extended=None) -> Callable[[], None]:
        """The zero-argument call that runs this kernel on planned ``inputs`` into ``outputs``; ``extended``
        is the input the kernel's ``prepare`` asked to extend (``Node.extend_input``), where granted."""
        if self.bind is not None:
            return self.bind(state, inputs, outputs) if extended is None else self.bind(state, inputs, outputs, extended=extended)
        return functools.partial(self.eval, state, inputs, outputs)


def bound_eval(bind: Callable) -> Callable:
    """``eval`` for a kernel that has ``bind``: one code path for invoke, constant folding and tests. The
    ``eval`` carries its ``bind``, so that ``by_tensor_type`` binds whichever kernel its ``prepare`` picked."""

    def evaluate(state, inputs, outputs):
        bind(state, inputs, outputs)()

    evaluate.bind = bind
    return evaluate


QUANTIZED_TYPES = frozenset(np.dtype(t) for t in (np.int8, np.uint8, np.int16))


def by_tensor_type(float_kernel: Kernel | None, quantized_prepare: Callable) -> Kernel:
    """One table entry for an operator with a float32 kernel (or none) and quantized ones.

    ``prepare`` takes the quantized path when any input or output is int8, uint8 or int16 (hybrid
    kernels have float inputs and int8 weights). ``quantized_prepare(node)`` returns
    ``(outputs, (eval, state))``, so that it can pick among several kernels; the entry's ``eval`` runs
    the one picked."""

    def prepare(node: Node):
        if any(t is not None and t.dtype in QUANTIZED_TYPES for t in (*node.inputs, *node.outputs)):
            return quantized_prepare(node)
        if float_kernel is None:
            raise node.fail("has only quantized kernels, and none of its tensors is int8, uint8 or int16")
        outputs, state = float_kernel.prepare(node)
        return outputs, (float_kernel.eval, state)

    def evaluate(state, inputs, outputs):
        state[0](state[1], inputs, outputs)

    def bind(state, inputs, outputs, **extended):  # the picked kernel's own call, without this entry's dispatch
        picked = getattr(state[0], "bind", None)  # set on an eval made by ``bound_eval``
        if picked is not None:
            return picked(state[1], inputs, outputs, **extended)
        return functools.partial(state[0], state[1], inputs, outputs)

    return Kernel(prepare, evaluate, float_kernel is not None and float_kernel.shapes_only, bind)


def normalize_axis(node: Node, axis: int, rank: int) -> int:
    node.check(-rank <= axis < rank, f"axis {axis} out of range for rank {rank}")
    return axis % rank


def activation(node: Node, code: int, shape=None):
    """The in-place function for a fused activation (None for NONE).

    With ``shape`` (the output's), RELU, RELU6 and RELU_N1_TO_1 compare against full-sized constants in scratch
    (``Node.tiled``): a scalar bound costs 2x at batch 1 and 4x on a conv output, ``np.clip`` more."""
    if shape is not None and code in _BOUNDS:
        low, high = (node.tiled(bound, shape, np.float32) if bound is not None else None for bound in _BOUNDS[code])
        if high is None:
            return lambda out: np.maximum(out, low, out=out)
        return lambda out: (np.maximum(out, low, out=out), np.minimum(out, high, out=out))
    functions = {
        Activation.NONE: None,
        Activation.RELU: lambda out: np.maximum(out, 0, out=out),
        Activation.RELU_N1_TO_1: lambda out: np.clip(out, -1, 1, out=out),
        Activation.RELU6: lambda out: np.clip(out, 0, 6, out=out),
        Activation.TANH: lambda out: np.tanh(out, out=out),
    }
    node.check(code in functions, f"fused activation {code} is not supported")
    return functions[code]


_BOUNDS = {Activation.RELU: (0, None), Activation.RELU6: (0, 6), Activation.RELU_N1_TO_1: (-1, 1)}


def window(node: Node, size: int, kernel: int, stride: int, dilation: int, padding: int) -> tuple[int, int, int]:
    """Output size and (before, after) padding of one spatial dimension, as TFLite computes them."""
    node.check(stride >= 1 and dilation >= 1 and kernel >= 1, f"stride {stride}, dilation {dilation}, kernel {kernel} must be >= 1")
    effective = (kernel - 1) * dilation + 1
    if padding == Padding.SAME:
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + effective - size, 0)
        return out, total // 2, total - total // 2
    node.check(padding == Padding.VALID, f"padding {padding} is neither SAME (0) nor VALID (1)")
    out = math.ceil((size - effective + 1) / stride)
    node.check(out >= 1, f"window {effective} does not fit input size {size} with VALID padding")
    return out, 0, 0
