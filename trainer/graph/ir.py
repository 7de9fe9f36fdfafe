"""The graph IR: typed values, nodes in topological order, constants by reference.

A ``Graph`` is what ``tf.function`` produces and what the exporter consumes::

    graph(%x: f32[?,28,28]) -> (%6)
      %1: f32[?,784]   = reshape(%x) {shape=(-1, 784)}
      %2: f32[?,128]   = matmul(%1, @dense/kernel:0) {transpose_a=False, transpose_b=False}
      ...

``%n`` are values computed by nodes, ``$n`` constants (held by reference, never copied) and ``@name``
variables (read, and possibly assigned, when the graph runs). ``check()`` verifies the structure and
the shapes against each op's inference rule; its errors print the text around the bad node.
"""

from __future__ import annotations

import itertools

import numpy as np

from trainer import dtypes
from trainer.ops.registry import OpDef, infer_outputs

_SHORT_DTYPES = {"float16": "f16", "float32": "f32", "float64": "f64", "int8": "i8", "uint8": "u8", "int16": "i16", "int32": "i32", "int64": "i64", "bool": "bool"}


class GraphError(ValueError):
    """The graph is malformed; the message shows the IR text around the offending node."""


class Value:
    """A typed value in a graph: a placeholder input, a constant, a variable, or a node's output."""

    __slots__ = ("id", "shape", "dtype", "kind", "producer", "index", "data", "variable", "name")

    def __init__(self, id: int, shape: tuple, dtype: dtypes.DType, kind: str, producer=None, index: int = 0, data=None, variable=None, name: str = ""):
        self.id = id
        self.shape = tuple(shape)
        self.dtype = dtype
        self.kind = kind  # "input", "node", "constant" or "variable"
        self.producer = producer
        self.index = index
        self.data = data  # the array of a constant (a reference, not a copy)
        self.variable = variable  # the Variable object of a variable value
        self.name = name

    @property
    def ref(self) -> str:
        if self.kind == "constant":
            return f"${self.id}"
        if self.kind == "variable":
            return f"@{self.name}"
        if self.kind == "input" and self.name:
            return f"%{self.name}"
        return f"%{self.id}"

    @property
    def type_text(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{_SHORT_DTYPES.get(self.dtype.name, self.dtype.name)}[{dims}]"

    def __repr__(self) -> str:
        return f"{self.ref}: {self.type_text}"


class Node:
    """One op application: ``outputs = op(inputs) {attrs}``, with where in the user's code it came from."""

    __slots__ = ("op", "inputs", "attrs", "outputs", "source")

    def __init__(self, op: OpDef, inputs: list, attrs: dict, outputs: list, source: str = ""):
        self.op = op
        self.inputs = list(inputs)
        self.attrs = dict(attrs)
        self.outputs = list(outputs)
        self.source = source

    def __str__(self) -> str:
        attrs = ", ".join(f"{key}={_format_attr(value)}" for key, value in self.attrs.items())
        left = ", ".join(f"{v.ref}: {v.type_text}" for v in self.outputs) or "()"
        right = f"{self.op.name}({', '.join(v.ref for v in self.inputs)})"
        return f"{left} = {right}" + (f" {{{attrs}}}" if attrs else "")


def _format_attr(value) -> str:
    if isinstance(value, dtypes.DType):
        return value.name
    if isinstance(value, Graph):
        return f"<graph {value.name or ''} {len(value.nodes)} nodes>"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


class Graph:
    """A function as data: input placeholders, nodes in execution order, outputs.

    Values are created through the graph (``input``, ``constant``, ``variable``, ``add_node``) so
    ids are unique within it.
    """

    def __init__(self, name: str = ""):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        self.constants: list[Value] = []
        self.variables: list[Value] = []
        self._ids = itertools.count(1)

    # -- construction ------------------------------------------------------------------------------
    def input(self, shape, dtype, name: str = "") -> Value:
        value = Value(next(self._ids), shape, dtypes.as_dtype(dtype), "input", name=name)
        self.inputs.append(value)
        return value

    def constant(self, array, name: str = "") -> Value:
        value = Value(next(self._ids), array.shape, dtypes.of_array(array), "constant", data=array, name=name)
        self.constants.append(value)
        return value

    def variable(self, variable) -> Value:
        for known in self.variables:
            if known.variable is variable:
                return known
        name = variable.name[:-2] if variable.name.endswith(":0") else variable.name
        value = Value(next(self._ids), variable.shape.as_tuple(), variable.dtype, "variable", variable=variable, name=name)
        self.variables.append(value)
        return value

    def add_node(self, op: OpDef, inputs: list, attrs: dict, output_specs, source: str = "") -> Node:
        node = Node(op, inputs, attrs, [], source)
        node.outputs = [Value(next(self._ids), spec.shape, spec.dtype, "node", producer=node, index=i) for i, spec in enumerate(output_specs)]
        self.nodes.append(node)
        return node

    # -- reading -----------------------------------------------------------------------------------
    def __str__(self) -> str:
        return "\n".join(self._text_lines(""))

    def _header(self) -> str:
        header = ", ".join(f"{v.ref}: {v.type_text}" for v in self.inputs)
        return f"graph {self.name}({header}) -> ({', '.join(v.ref for v in self.outputs)})".replace("graph (", "graph(")

    def _text_lines(self, indent: str) -> list[str]:
        """One line per node; a node's subgraphs (tf.cond branches, loop bodies) follow it, indented."""
        lines = [indent + self._header()]
        for node in self.nodes:
            lines.append(f"{indent}  {node}")
            for key, value in node.attrs.items():
                if isinstance(value, Graph):
                    nested = value._text_lines(indent + "    ")
                    nested[0] = f"{indent}    {key}: {nested[0].lstrip()}"
                    lines.extend(nested)
        return lines

    def consumers(self) -> dict[int, list[Node]]:
        """Value id -> the nodes that read it."""
        result: dict[int, list[Node]] = {}
        for node in self.nodes:
            for value in node.inputs:
                result.setdefault(value.id, []).append(node)
        return result

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op.name] = counts.get(node.op.name, 0) + 1
        return counts

    # -- verification ------------------------------------------------------------------------------
    def check(self) -> "Graph":
        """Verifies order, uniqueness and every node's shapes against its op's rule; returns self."""
        from trainer.tensor import Tensor  # noqa: PLC0415

        defined = {v.id for v in self.inputs} | {v.id for v in self.constants} | {v.id for v in self.variables}
        for position, node in enumerate(self.nodes):
            for value in node.inputs:
                if value.id not in defined:
                    self._fail(position, f"input {value.ref} is used before it is defined (or not in this graph)")
            placeholders = tuple(Tensor.symbolic(v.shape, v.dtype) for v in node.inputs)
            try:
                specs = infer_outputs(node.op, placeholders, node.attrs)
            except ValueError as error:
                self._fail(position, f"shape inference fails: {error}")
            if len(specs) != len(node.outputs):
                self._fail(position, f"op returns {len(specs)} outputs, node declares {len(node.outputs)}")
            for spec, value in zip(specs, node.outputs):
                if spec.dtype is not value.dtype or not _shapes_agree(spec.shape, value.shape):
                    self._fail(position, f"output {value.ref} is declared {value.type_text} but the op infers {_SHORT_DTYPES.get(spec.dtype.name)}[{','.join('?' if d is None else str(d) for d in spec.shape)}]")
                if value.id in defined:
                    self._fail(position, f"value {value.ref} is defined twice")
                defined.add(value.id)
            for key, value in node.attrs.items():
                if isinstance(value, Graph):
                    try:
                        value.check()
                    except GraphError as error:
                        self._fail(position, f"subgraph {key}: {error}")
        for value in self.outputs:
            if value.id not in defined:
                raise GraphError(f"graph output {value.ref} is not defined\n{self}")
        return self

    def _fail(self, position: int, message: str):
        lines = [self._header()] + [f"  {node}" for node in self.nodes]  # one line per node, subgraphs left out
        start, stop = max(1, position - 2), min(len(lines), position + 4)
        context = "\n".join(("> " if i == position + 1 else "  ") + lines[i] for i in range(start, stop))
        raise GraphError(f"node {position} ({self.nodes[position].op.name}): {message}\n{lines[0]}\n{context}")


def _shapes_agree(inferred, declared) -> bool:
    if len(inferred) != len(declared):
        return False
    return all(a is None or b is None or a == b for a, b in zip(inferred, declared))


def constant_array(value: Value) -> np.ndarray:
    return value.data
