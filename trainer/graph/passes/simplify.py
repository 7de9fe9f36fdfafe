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

# op name -> the rules tried on its nodes; a rule returns the value that replaces the node's output,
# the node itself after rewriting it in place, or None when it does not apply.
_RULES: dict[str, list[Callable]] = {}
_LABELS: dict[Callable, str] = {}


def _rule(*op_names: str, label: str):
    def decorate(function):
        for name in op_names:
            _RULES.setdefault(name, []).append(function)
        _LABELS[function] = label
        return function

    return decorate


def simplify(graph: Graph) -> tuple[Graph, PassReport]:
    """Rewrites ``x*1``, ``1*x``, ``x+0``, ``0+x``, ``x-0`` and ``x/1`` to ``x`` (when the constant is all
    ones or zeros and broadcasting it cannot change ``x``'s shape), a transpose of a transpose to one
    transpose (or to nothing when the permutations cancel), a reshape of a reshape to one reshape,
    reshapes to the shape the input already has, casts to the dtype the input already has, and
    ``identity``/``stop_gradient`` (identities when a graph runs) to their input.

    Safe because each rewrite gives the same array: multiplying by one and adding zero are exact in
    IEEE arithmetic (up to the sign of a zero), reshapes and transposes compose, and the others return
    their input's values. Nodes reading a variable that a stateful node writes are left alone (see
    ``state_dependent``): forwarding a copy's input could move a read across the write.
    """
    graph = copy_graph(graph)
    report = PassReport("simplify")
    dependent = state_dependent(graph)
    replacement: dict[int, Value] = {}
    applied: dict[str, list[Node]] = {}
    for node in graph.nodes:
        node.inputs = [replacement.get(v.id, v) for v in node.inputs]
        if any(v.id in dependent for v in node.inputs):
            continue
        result = _apply_rules(node, applied)
        if result is not None:
            replacement[node.outputs[0].id] = result
    graph.outputs = [replacement.get(v.id, v) for v in graph.outputs]
    removed = remove_unused(graph)
    for label, nodes in applied.items():
        report.changes.append(f"{label}: {describe(nodes)}")
    if removed:
        report.changes.append(f"removed {plural(len(removed), 'node')} left unused: {describe(removed)}")
    return graph, report


def _apply_rules(node: Node, applied: dict) -> Value | None:
    """Applies the node's rules until none does; returns the value replacing its output, if any."""
    changed = True
    while changed:
        changed = False
        for rule in _RULES.get(node.op.name, ()):
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
