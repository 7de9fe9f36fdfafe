"""What a lowering function writes into: ONNX nodes, shared initializers, unique names and value layouts.

A lowering is ``function(scope, node)``: it reads the ONNX names of the node's inputs with
``scope.get`` (or ``scope.broadcast_input`` for elementwise ops), emits nodes with ``scope.node`` and
records the names of the node's outputs with ``scope.bind``. ``Lowering`` holds what one export shares
(opset, initializers, names); a ``GraphScope`` is one graph being written (the model, or a
``tf.cond`` branch or loop body, which read outer names directly as ONNX allows).
"""

from __future__ import annotations

import hashlib

import numpy as np

from exporter.errors import ExportError
from exporter.source import TRAINING_ONLY_REASON, Problem
from exporter.onnx.layout import CHANNELS_FIRST, NATURAL, TO_CHANNELS_FIRST, TO_CHANNELS_LAST, channels_first_array




def constant_array(value) -> np.ndarray:
    """The array behind a constant or variable value (a variable is read as it is now)."""
    return np.asarray(value.data if value.kind == "constant" else value.variable.numpy())


def is_constant(value) -> bool:
    return value.kind in ("constant", "variable")


def onnx_type(dtype) -> int:
    """The ONNX TensorProto element type of an emberflow DType."""
    from onnx import helper  # noqa: PLC0415 - onnx is imported only for ONNX export

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype.as_numpy_dtype))


class Lowering:
    """What every graph scope of one export shares: the opset, the lowering table, initializers and names."""

    def __init__(self, opset: int, table: dict, reserved=()):
        self.opset = opset
        self.table = table
        self.initializers: list = []
        self._by_content: dict[tuple, str] = {}
        self._used: set[str] = set(reserved)

    def unique(self, hint: str) -> str:
        """``hint``, or ``hint_1``, ``hint_2``, ... if taken: ONNX wants every tensor name defined once."""
        name, count = hint, 0
        while name in self._used:
            count += 1
            name = f"{hint}_{count}"
        self._used.add(name)
        return name

    def initializer(self, array: np.ndarray, hint: str) -> str:
        """The name of an initializer holding ``array``; identical arrays (dtype, shape, bytes) share one."""
        from onnx import numpy_helper  # noqa: PLC0415 - onnx is imported only for ONNX export

        array = np.asarray(array, order="C")  # (not ascontiguousarray, which makes scalars 1-D)
        key = (array.dtype.str, array.shape, hashlib.sha256(array.tobytes()).digest())
        name = self._by_content.get(key)
        if name is None:
            name = self._by_content[key] = self.unique(hint)
            self.initializers.append(numpy_helper.from_array(array, name))
        return name


class GraphScope:
    """One graph being lowered: its ONNX nodes and, per IR value, its ONNX name in each layout it has."""

    def __init__(self, lowering: Lowering, nodes: list | None = None):
        self.lowering = lowering
        self.opset = lowering.opset
        self.nodes = [] if nodes is None else nodes
        self.scope = ""  # the naming prefix of the node being lowered ("dense", "conv2d_1", ...)
        self.current = None  # the IR node being lowered, for error messages
        self._forms: dict[int, dict[str, str]] = {}  # value id -> {layout: ONNX name}
        self._home: dict[int, str] = {}  # value id -> the layout its producer wrote
        self._scope_of: dict[int, str] = {}
        self._consumers: dict[int, int] = {}

    def child(self, share_nodes: bool = False) -> GraphScope:
        """A scope for a subgraph (IR value ids restart in each graph); ``share_nodes`` inlines it here."""
        return GraphScope(self.lowering, self.nodes if share_nodes else None)

    # -- lowering a graph ---------------------------------------------------------------------------------
    def lower_graph(self, graph, problems: list | None = None) -> None:
        """Lowers every node of ``graph`` (its inputs already bound); with ``problems``, collects failures."""
        self._consumers = {key: len(nodes) for key, nodes in graph.consumers().items()}
        for node in graph.nodes:
            self._begin(node)
            lowering = self.lowering.table.get(node.op.name)
            try:
                if node.op.training_only:
                    self.unsupported(*TRAINING_ONLY_REASON)
                if lowering is None:
                    self.unsupported("no ONNX lowering is registered for it", "add one to exporter/onnx/lower.py")
                lowering(self, node)
            except ExportError as error:
                if problems is None:
                    raise
                problems.append(Problem(node.op.name, node.source, str(error)))
                for value in node.outputs:  # placeholders, so that the nodes after it can still be checked
                    self.bind(value, self.lowering.unique(f"{self.scope}/unlowered"))

    def _begin(self, node) -> None:
        """Names what ``node`` emits after its layer: the prefix of a weight it reads ("dense/kernel"),
        else the name its producer's layer gave, when this node is that value's only reader (the
        activation after a Dense), else the op name."""
        self.current = node
        prefix = next((v.name.rsplit("/", 1)[0] for v in node.inputs if is_constant(v) and "/" in v.name), None)
        if prefix is None:
            first = next((v for v in node.inputs if v.kind == "node"), None)
            if first is not None and self._consumers.get(first.id) == 1:
                prefix = self._scope_of.get(first.id)
        self.scope = prefix or node.op.name
        for value in node.outputs:
            self._scope_of[value.id] = self.scope

    # -- values -------------------------------------------------------------------------------------------
    def bind(self, value, name: str, layout: str = NATURAL) -> None:
        """Records that ``name`` holds ``value`` in ``layout`` (the layout other forms are made from)."""
        self._forms[value.id] = {layout: name}
        self._home[value.id] = layout

    def alias(self, value, same) -> None:
        """Records that ``value`` is ``same`` (identity ops): it shares every form ``same`` has or gets."""
        if is_constant(same):
            self.bind(value, self.get(same))
            return
        self._forms[value.id] = self._forms[same.id]
        self._home[value.id] = self._home[same.id]

    def home(self, value) -> str:
        return self._home.get(value.id, NATURAL)

    def get(self, value, layout: str = NATURAL) -> str:
        """The ONNX name of ``value`` in ``layout``; a Transpose is emitted the first time a form is needed."""
        if is_constant(value):
            array = constant_array(value)
            return self.constant(channels_first_array(array) if layout == CHANNELS_FIRST else array, self._hint(value))
        forms = self._forms[value.id]
        if layout not in forms:
            perm = TO_CHANNELS_FIRST if layout == CHANNELS_FIRST else TO_CHANNELS_LAST
            scope = self._scope_of.get(value.id, self.scope)
            suffix = "to_nchw" if layout == CHANNELS_FIRST else "to_nhwc"
            source = forms[self._home[value.id]]
            forms[layout] = self.node("Transpose", [source], name=f"{scope}/{suffix}", perm=list(perm))
        return forms[layout]

    def elementwise_layout(self, node) -> str:
        """The layout an elementwise op runs in: channels-first when its output is rank 4, one rank-4 input
        lives channels-first, and every other input can follow (rank 4, a scalar, or a constant)."""
        if any(len(value.shape) != 4 for value in node.outputs):
            return NATURAL
        if not any(len(v.shape) == 4 and not is_constant(v) and self.home(v) == CHANNELS_FIRST for v in node.inputs):
            return NATURAL
        if any(len(v.shape) not in (0, 4) and not is_constant(v) for v in node.inputs):
            return NATURAL
        return CHANNELS_FIRST

    def lives_channels_first(self, value) -> bool:
        """Whether an op that maps its axes should read ``value`` channels-first: rank 4, living so."""
        return len(value.shape) == 4 and not is_constant(value) and self.home(value) == CHANNELS_FIRST

    def broadcast_input(self, value, layout: str) -> str:
        """``value``'s name for an elementwise op running in ``layout`` (constants rearranged to broadcast)."""
        if layout == NATURAL or len(value.shape) == 0:
            return self.get(value)
        return self.get(value, CHANNELS_FIRST)

    # -- emitting -----------------------------------------------------------------------------------------
    def node(self, op_type: str, inputs, outputs: int = 1, name: str | None = None, **attrs):
        """Appends one ONNX node; returns its output name (a list of names when ``outputs`` > 1)."""
        from onnx import helper  # noqa: PLC0415

        base = self.lowering.unique(name or f"{self.scope}/{op_type}")
        names = [base] if outputs == 1 else [self.lowering.unique(f"{base}_{i}") for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=base, **attrs))
        return names[0] if outputs == 1 else names

    def constant(self, array, hint: str | None = None) -> str:
        return self.lowering.initializer(np.asarray(array), hint or f"{self.scope}/const")

    def int64s(self, values, hint: str = "axes") -> str:
        """A 1-D int64 initializer: the axes, shapes and pads ONNX takes as inputs."""
        return self.constant(np.asarray(list(values), dtype=np.int64), f"{self.scope}/{hint}")

    def scalar(self, number, dtype, hint: str = "const") -> str:
        """A rank-0 initializer of ``dtype`` (an emberflow DType or a NumPy dtype)."""
        numpy_dtype = getattr(dtype, "as_numpy_dtype", dtype)
        return self.constant(np.asarray(number, dtype=numpy_dtype), f"{self.scope}/{hint}")

    def reduce(self, op_type: str, name: str, axes, keepdims: bool) -> str:
        """A Reduce* node over ``axes`` (``None``: all); axes are an input from opset 18 (ReduceSum: 13)."""
        if axes is None:
            return self.node(op_type, [name], keepdims=int(keepdims))
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.node(op_type, [name, self.int64s(axes)], keepdims=int(keepdims))
        return self.node(op_type, [name], axes=list(axes), keepdims=int(keepdims))

    def _hint(self, value) -> str:
        return value.name or f"{self.scope}/const"

    # -- errors -------------------------------------------------------------------------------------------
    def unsupported(self, reason: str, suggestion: str):
        """Raises the ExportError for the current node: the op, its source line, why, and what to do."""
        node = self.current
        where = f" (at {node.source})" if node is not None and node.source else ""
        name = node.op.name if node is not None else "?"
        raise ExportError(f"ONNX export: op '{name}'{where} cannot be lowered: {reason}; {suggestion}\n  {node}")
