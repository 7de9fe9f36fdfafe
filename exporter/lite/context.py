"""What a lite lowering function writes into: tensors, shared constant buffers, operator codes, operators.

A lowering is ``function(scope, node)``: it reads the tensor indices of the node's inputs with
``scope.tensor``, emits operators with ``scope.emit`` (or ``scope.op``, which also makes the output
tensor) and records the tensors holding the node's outputs with ``scope.bind``/``scope.output``.
"""

from __future__ import annotations

import hashlib

import numpy as np

from exporter.errors import ExportError
from exporter.source import TRAINING_ONLY_REASON, Problem
from exporter.lite.builder import LiteModel, LiteOperator, LiteTensor
from exporter.lite.schema import BuiltinOperator, TensorType

_TENSOR_TYPES = {
    "float32": TensorType.FLOAT32,
    "float16": TensorType.FLOAT16,
    "float64": TensorType.FLOAT64,
    "int8": TensorType.INT8,
    "uint8": TensorType.UINT8,
    "int16": TensorType.INT16,
    "int32": TensorType.INT32,
    "int64": TensorType.INT64,
    "bool": TensorType.BOOL,
}


def tensor_type(dtype) -> TensorType:
    """The TensorType of an emberflow DType or a NumPy dtype."""
    name = np.dtype(getattr(dtype, "as_numpy_dtype", dtype)).name
    if name not in _TENSOR_TYPES:
        raise ExportError(f"lite export: tensors of dtype {name} cannot be stored in a lite file")
    return _TENSOR_TYPES[name]




def is_constant(value) -> bool:
    return value.kind in ("constant", "variable")


def constant_array(value) -> np.ndarray:
    """The array behind a constant or variable value (a variable is read as it is now)."""
    return np.asarray(value.data if value.kind == "constant" else value.variable.numpy())


class Scope:
    """One graph being lowered into a ``LiteModel``: IR value ids mapped to tensor indices."""

    def __init__(self, model: LiteModel, table: dict):
        self.model = model
        self.table = table
        self.scope = ""  # the naming prefix of the node being lowered ("dense", "conv2d_1", ...)
        self.current = None  # the IR node being lowered, for error messages
        self._tensor_of: dict[int, int] = {}
        self._constant_of: dict[tuple, int] = {}
        self._opcode_of: dict[tuple, int] = {}
        self._scope_of: dict[int, str] = {}
        self._consumers: dict[int, int] = {}
        self._names: dict[str, int] = {}

    # -- lowering a graph ---------------------------------------------------------------------------------
    def lower_graph(self, graph, problems: list | None = None) -> None:
        """Lowers every node of ``graph`` (its inputs already bound); with ``problems``, collects failures."""
        self._consumers = {key: len(nodes) for key, nodes in graph.consumers().items()}
        for node in graph.nodes:
            self._begin(node)
            try:
                lowering = self.table.get(node.op.name)
                if node.op.training_only:
                    self.unsupported(*TRAINING_ONLY_REASON)
                if lowering is None:
                    self.unsupported("no lite lowering is registered for it", "add one to exporter/lite/lower.py")
                lowering(self, node)
            except ExportError as error:
                if problems is None:
                    raise
                problems.append(Problem(node.op.name, node.source, str(error)))
                for value in node.outputs:  # placeholders, so that the nodes after it can still be checked
                    self.output(value)

    def _begin(self, node) -> None:
        """Names what ``node`` emits after its layer: the prefix of a weight it reads ("dense/kernel"),
        else its producer's layer when it is that value's only reader (the activation after a Dense)."""
        self.current = node
        prefix = next((v.name.rsplit("/", 1)[0] for v in node.inputs if is_constant(v) and "/" in v.name), None)
        if prefix is None:
            first = next((v for v in node.inputs if v.kind == "node"), None)
            if first is not None and self._consumers.get(first.id) == 1:
                prefix = self._scope_of.get(first.id)
        self.scope = prefix or node.op.name
        for value in node.outputs:
            self._scope_of[value.id] = self.scope

    # -- tensors ------------------------------------------------------------------------------------------
    def tensor(self, value) -> int:
        """The tensor index holding IR ``value``; a constant or variable becomes a constant tensor."""
        if is_constant(value):
            return self.constant(constant_array(value), value.name or None)
        return self._tensor_of[value.id]

    def bind(self, value, index: int) -> None:
        """Records that tensor ``index`` holds ``value``."""
        self._tensor_of[value.id] = index

    def alias(self, value, same) -> None:
        """``value`` is ``same`` (identity ops emit nothing)."""
        self.bind(value, self.tensor(same))

    def output(self, value, hint: str | None = None) -> int:
        """A new tensor for the node output ``value`` (its IR shape and dtype), bound to it."""
        index = self.new_tensor(value.shape, value.dtype, hint or self.current.op.name)
        self.bind(value, index)
        return index

    def new_tensor(self, shape, dtype, hint: str) -> int:
        """A tensor without data; ``None`` dims are known only at run time."""
        self.model.tensors.append(
            LiteTensor(self._unique(f"{self.scope}/{hint}" if self.scope else hint), tuple(shape), tensor_type(dtype))
        )
        return len(self.model.tensors) - 1

    def constant(self, array, hint: str | None = None) -> int:
        """A constant tensor holding ``array``; identical constants are one tensor, identical bytes one buffer."""
        array = np.asarray(array)
        type_ = tensor_type(array.dtype)
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        key = (type_, array.shape, hashlib.sha256(data).digest())
        if key not in self._constant_of:
            buffer = self.model.add_buffer(data)
            name = self._unique(hint or f"{self.scope}/const")
            self.model.tensors.append(LiteTensor(name, array.shape, type_, buffer))
            self._constant_of[key] = len(self.model.tensors) - 1
        return self._constant_of[key]

    def int32s(self, values, hint: str = "shape") -> int:
        """A constant int32 vector: the shapes, axes and permutations operators take as inputs."""
        return self.constant(np.asarray(list(values), dtype=np.int32), f"{self.scope}/{hint}")

    def scalar(self, number, dtype, hint: str = "const") -> int:
        """A rank-0 constant of ``dtype`` (an emberflow DType or a NumPy dtype)."""
        numpy_dtype = getattr(dtype, "as_numpy_dtype", dtype)
        return self.constant(np.asarray(number, dtype=numpy_dtype), f"{self.scope}/{hint}")

    def reserve(self, name: str) -> None:
        """Keeps ``name`` (a user-facing input or output name) from the tensors the lowering creates."""
        self._unique(name)

    def _unique(self, name: str) -> str:
        count = self._names.get(name, 0)
        self._names[name] = count + 1
        return name if count == 0 else f"{name}_{count}"

    # -- operators ----------------------------------------------------------------------------------------
    def emit(self, code: BuiltinOperator, inputs, outputs, version: int = 1, **options) -> None:
        """Appends one operator; ``options`` are the fields of its options table (schema.OPERATOR_OPTIONS)."""
        key = (int(code), version)
        if key not in self._opcode_of:
            self._opcode_of[key] = len(self.model.operator_codes)
            self.model.operator_codes.append(key)
        self.model.operators.append(LiteOperator(self._opcode_of[key], list(inputs), list(outputs), options))

    def op(
        self, code: BuiltinOperator, inputs, shape, dtype, hint: str | None = None, version: int = 1, **options
    ) -> int:
        """Emits one operator with a new output tensor of ``shape`` and ``dtype``; returns that tensor."""
        output = self.new_tensor(shape, dtype, hint or code.name.lower())
        self.emit(code, inputs, [output], version, **options)
        return output

    def single(self, code: BuiltinOperator, node, **options) -> None:
        """Lowers ``node`` as exactly one operator on its inputs, writing its one output."""
        inputs = [self.tensor(value) for value in node.inputs]
        self.emit(code, inputs, [self.output(node.outputs[0])], **options)

    # -- errors -------------------------------------------------------------------------------------------
    def unsupported(self, reason: str, suggestion: str):
        """Raises the ExportError for the current node: the op, its layer and source line, why, what to do."""
        node = self.current
        name = node.op.name if node is not None else "?"
        where = f" in '{self.scope}'" if self.scope and self.scope != name else ""
        where += f" (at {node.source})" if node is not None and node.source else ""
        raise ExportError(f"lite export: op '{name}'{where} cannot be lowered: {reason}; {suggestion}\n  {node}")
