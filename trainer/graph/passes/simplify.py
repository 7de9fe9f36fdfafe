"""Algebraic simplification: drop operations that provably do nothing, merge ones that compose."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from trainer.graph.ir import Graph, Node, Value
from trainer.graph.passes.rewrite import (
    PassReport,
    copy_graph,
    describe,
    plural,
    remove_unused,
    state_dependent,
    weight_array,
)
from trainer.ops.registry import OpError, broadcast_shapes

# op name -> the rules tried on its nodes; a rule returns the value that replaces the node's output,
# the node itself after rewriting it in place, or None when it does not apply.
_RULES: dict[str, list[Callable]] = {}
_LABELS: dict[Callable, str] = {}
# The rules that only drop views (broadcasts): the array read stays the same object, read at the same
# time, so they apply even to nodes that depend on a variable a stateful node writes.
_VIEW_RULES: set[Callable] = set()


def _rule(*op_names: str, label: str, drops_a_view: bool = False, reads_fresh_arrays: bool = False):
    """Registers a rule; ``drops_a_view`` and ``reads_fresh_arrays`` (the rule itself checks that the value
    it forwards is an array computed in the graph, never a variable or a view of one) let it apply to
    nodes that depend on a variable a stateful node writes."""

    def decorate(function):
        for name in op_names:
            _RULES.setdefault(name, []).append(function)
        _LABELS[function] = label
        if drops_a_view or reads_fresh_arrays:
            _VIEW_RULES.add(function)
        return function

    return decorate


def simplify(graph: Graph) -> tuple[Graph, PassReport]:
    """Rewrites ``x*1``, ``1*x``, ``x+0``, ``0+x``, ``x-0`` and ``x/1`` to ``x`` (when the constant is all
    ones or zeros and broadcasting it cannot change ``x``'s shape), a transpose of a transpose to one
    transpose (or to nothing when the permutations cancel), a reshape of a reshape to one reshape,
    reshapes to the shape the input already has, casts to the dtype the input already has,
    ``identity``/``stop_gradient`` (identities when a graph runs) to their input, an argmax of a softmax
    to the argmax of its logits, ``broadcast_like``
    to its input when that already has the shape, and an elementwise binary op's broadcast operand to
    the unbroadcast value when the op's own broadcasting gives the same output shape.

    Safe because each rewrite gives the same array: multiplying by one and adding zero are exact in
    IEEE arithmetic (up to the sign of a zero), reshapes and transposes compose, and the others return
    their input's values; an argmax of logits picks the probabilities' argmax, except where two
    probabilities round to the same float (then the larger logit wins, not the first). Nodes reading a variable that a stateful node writes are left alone (see
    ``state_dependent``): forwarding a copy's input could move a read across the write. Dropping a
    broadcast is safe even there, since ``broadcast_like`` returns a view of the very array it drops.
    """
    graph = copy_graph(graph)
    report = PassReport("simplify")
    dependent = state_dependent(graph)
    replacement: dict[int, Value] = {}
    applied: dict[str, list[Node]] = {}
    for node in graph.nodes:
        node.inputs = [replacement.get(v.id, v) for v in node.inputs]
        views_only = any(v.id in dependent for v in node.inputs)
        result = _apply_rules(node, applied, views_only)
        if result is not None:
            replacement[node.outputs[0].id] = result
    graph.outputs = [replacement.get(v.id, v) for v in graph.outputs]
    removed = remove_unused(graph)
    for label, nodes in applied.items():
        report.changes.append(f"{label}: {describe(nodes)}")
    if removed:
        report.changes.append(f"removed {plural(len(removed), 'node')} left unused: {describe(removed)}")
    return graph, report


def _apply_rules(node: Node, applied: dict, views_only: bool) -> Value | None:
    """Applies the node's rules (only the view-dropping ones when ``views_only``) until none does;
    returns the value replacing its output, if any."""
    changed = True
    while changed:
        changed = False
        for rule in _RULES.get(node.op.name, ()):
            if views_only and rule not in _VIEW_RULES:
                continue
            result = rule(node)
            if result is None:
                continue
            applied.setdefault(_LABELS[rule], []).append(node)
            if result is not node:
                return result
            changed = True
    return None


# -- neutral operands ---------------------------------------------------------------------------------------


def _is_filled_with(value: Value, number) -> bool:
    return value.kind == "constant" and bool(np.all(weight_array(value) == number))


def _broadcast_keeps_shape(shape: tuple, other: tuple) -> bool:
    """Whether broadcasting against a constant of shape ``other`` provably leaves ``shape`` as it is."""
    if len(other) > len(shape):
        return False
    return all(o == 1 or (s is not None and s == o) for s, o in zip(reversed(shape), reversed(other)))


def _neutral(node: Node, number, kept_positions) -> Value | None:
    """The operand at one of ``kept_positions`` when the other operand is a constant filled with ``number``."""
    for kept in kept_positions:
        x, other = node.inputs[kept], node.inputs[1 - kept]
        if x.dtype is not node.outputs[0].dtype or not _broadcast_keeps_shape(x.shape, other.shape):
            continue
        if _is_filled_with(other, number):
            return x
    return None


@_rule("multiply", label="removed multiplications by one")
def _times_one(node):
    return _neutral(node, 1, (0, 1))


@_rule("divide", label="removed divisions by one")
def _divided_by_one(node):
    return _neutral(node, 1, (0,))


@_rule("add", label="removed additions of zero")
def _plus_zero(node):
    return _neutral(node, 0, (0, 1))


@_rule("subtract", label="removed subtractions of zero")
def _minus_zero(node):
    return _neutral(node, 0, (0,))


# -- layout ops ---------------------------------------------------------------------------------------------


def _producer(value: Value, op_name: str) -> Node | None:
    return value.producer if value.kind == "node" and value.producer.op.name == op_name else None


@_rule("transpose", label="composed transposes of transposes")
def _transpose_of_transpose(node):
    inner = _producer(node.inputs[0], "transpose")
    if inner is None:
        return None
    # out[i] = mid[perm[i]] and mid[j] = x[inner[j]], so out[i] = x[inner[perm[i]]].
    node.attrs = {**node.attrs, "perm": tuple(inner.attrs["perm"][p] for p in node.attrs["perm"])}
    node.inputs = [inner.inputs[0]]
    return node


@_rule("transpose", label="removed identity transposes")
def _identity_transpose(node):
    perm = tuple(node.attrs["perm"])
    return node.inputs[0] if perm == tuple(range(len(perm))) else None


@_rule("reshape", label="merged reshapes of reshapes")
def _reshape_of_reshape(node):
    # A reshape keeps the elements in row-major order, so only the last target shape matters.
    inner = _producer(node.inputs[0], "reshape")
    if inner is None:
        return None
    node.inputs = [inner.inputs[0]]
    return node


@_rule("reshape", label="removed reshapes to the same shape")
def _reshape_to_same_shape(node):
    # With at most one unknown dimension, equal static shapes are equal at run time too: the element
    # count fixes the unknown one.
    x, shape = node.inputs[0], node.outputs[0].shape
    return x if x.shape == shape and list(shape).count(None) <= 1 else None


@_rule("cast", label="removed casts to the same dtype")
def _cast_to_same_dtype(node):
    return node.inputs[0] if node.inputs[0].dtype is node.attrs["dtype"] else None


@_rule("identity", "stop_gradient", label="removed identities")
def _identity(node):
    return node.inputs[0]


@_rule("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", label="removed reductions of scalars")
def _reduction_of_a_scalar(node):
    x = node.inputs[0]
    return x if x.shape == () and node.outputs[0].shape == () and x.dtype is node.outputs[0].dtype else None


# Ops whose output is always a new array: a node can read it at any time and see the same values.
_FRESH_OUTPUTS = ("add", "conv2d", "fused_conv2d", "fused_depthwise_conv2d", "fused_matmul", "matmul")


@_rule("argmax", label="took argmaxes of softmaxes from the logits", reads_fresh_arrays=True)
def _argmax_of_softmax(node):
    # softmax is increasing in each logit of its row, so the largest probability is the largest
    # logit's; an accuracy metric needs no probabilities. (Two logits closer than a float's rounding
    # of exp can round to equal probabilities, where the first wins; the logits still tell them apart.)
    # In a training step the logits depend on the weights the update writes, so the argmax may run
    # after it: it reads the logits only when they are a fresh array, not a view of a variable.
    softmax = _producer(node.inputs[0], "softmax")
    logits = None if softmax is None else softmax.inputs[0]
    if logits is None or logits.kind != "node" or logits.producer.op.name not in _FRESH_OUTPUTS:
        return None
    rank = len(node.inputs[0].shape)
    if node.attrs["axis"] % rank != softmax.attrs["axis"] % rank:
        return None
    node.inputs = [logits]
    return node


# -- broadcasts ----------------------------------------------------------------------------------------------
# Gradients of reductions and of broadcasting ops spread a value over a shape with ``broadcast_like``;
# NumPy builds each such view in Python (several microseconds), while the elementwise op reading it
# broadcasts by itself for free.

_BROADCASTING_OPS = (
    "add", "subtract", "multiply", "divide", "maximum", "minimum", "pow",
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
)  # fmt: skip


def _static(shape) -> bool:
    return None not in shape


@_rule("broadcast_like", label="removed broadcasts to the shape the input has", drops_a_view=True)
def _broadcast_to_same_shape(node):
    x = node.inputs[0]
    return x if _static(x.shape) and x.shape == node.outputs[0].shape else None


@_rule(*_BROADCASTING_OPS, label="removed broadcasts that the elementwise op does itself", drops_a_view=True)
def _implicit_broadcast(node):
    output = node.outputs[0].shape
    if not _static(output):
        return None
    for position, value in enumerate(node.inputs):
        broadcast = _producer(value, "broadcast_like")
        if broadcast is None:
            continue
        source, other = broadcast.inputs[0], node.inputs[1 - position]
        try:
            shape = broadcast_shapes(source.shape, other.shape)
        except OpError:
            continue
        if shape == output:
            node.inputs = [source if index == position else v for index, v in enumerate(node.inputs)]
            return node
    return None
