"""Tracing: running Python code on symbolic tensors while ``execute`` records each op into a ``Graph``."""

from __future__ import annotations

import os
import sys

from trainer.context import state
from trainer.graph.ir import Graph, GraphError
from trainer.ops.registry import infer_outputs
from trainer.tensor import Tensor

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_source_line() -> str:
    """``file:line`` of the innermost frame outside emberflow's own code: where the user wrote the op."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_ROOT) and "trainer/" not in filename.replace("\\", "/").split("site-packages")[-1][:9]:
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


class GraphBuilder:
    """The object ``state.graph`` points at while tracing: ``execute`` hands it every op."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self._values: dict[int, object] = {}
        self._alive: list[Tensor] = []  # keeps captured tensors alive so their ids stay unique
        self._arrays: dict[int, object] = {}

    def placeholder(self, shape, dtype, name: str = "") -> Tensor:
        value = self.graph.input(shape, dtype, name)
        return self._symbolic(value)

    def _symbolic(self, value) -> Tensor:
        tensor = Tensor.symbolic(value.shape, value.dtype, producer=value)
        self._values[id(tensor)] = value
        self._alive.append(tensor)
        return tensor

    def value_of(self, tensor: Tensor):
        """The graph value for a tensor: its own, or a new capture of an outside constant or variable."""
        found = self._values.get(id(tensor))
        if found is not None:
            return found
        if tensor._is_variable:
            value = self.graph.variable(tensor)
        elif tensor._value is not None:
            array = tensor._value
            value = self._arrays.get(id(array))
            if value is None:
                value = self.graph.constant(array)
                self._arrays[id(array)] = value
        else:
            raise GraphError(
                f"a symbolic tensor ({tensor!r}) from outside this trace was used inside it; symbolic Keras "
                "tensors and tensors of other traced functions cannot be captured"
            )
        self._values[id(tensor)] = value
        self._alive.append(tensor)
        return value

    def add_op(self, op, inputs, attrs):
        values = [self.value_of(t) for t in inputs]
        specs = infer_outputs(op, inputs, attrs)
        node = self.graph.add_node(op, values, attrs, specs, source=user_source_line())
        outputs = tuple(self._symbolic(value) for value in node.outputs)
        if state.tapes and op.differentiable:
            for tape in state.tapes:
                tape._record(op, tuple(inputs), outputs, attrs)
        if op.num_outputs == 0:
            return None
        return outputs[0] if op.num_outputs == 1 else outputs


class tracing:  # noqa: N801 - used as `with tracing(builder):`
    """Makes ``builder`` the target of every op executed inside the block."""

    def __init__(self, builder: GraphBuilder):
        self.builder = builder

    def __enter__(self):
        self._previous = state.graph
        state.graph = self.builder
        return self.builder

    def __exit__(self, *exc):
        state.graph = self._previous
