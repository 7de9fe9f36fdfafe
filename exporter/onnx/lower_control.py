"""ONNX lowerings of ``tf.cond`` (If) and ``tf.while_loop`` (Loop), whose subgraphs are lowered recursively.

An IR subgraph takes its captured outer tensors as inputs; an ONNX subgraph reads outer names
directly, so each capture is bound to the name the enclosing graph already has for it. Subgraph
constants become initializers of the main graph (shared and deduplicated like every other).
"""

from __future__ import annotations

from exporter.onnx.context import onnx_type


def _value_info(name: str, value):
    from onnx import helper  # noqa: PLC0415 - onnx is imported only for ONNX export

    return helper.make_tensor_value_info(name, onnx_type(value.dtype), list(value.shape))


def _graph_outputs(scope, names: list, values: list) -> list:
    """Value infos for a subgraph's outputs; ONNX wants each one produced inside the subgraph, so an
    outer name, an initializer or a repeated name is passed through an Identity first."""
    produced = {output for node in scope.nodes for output in node.output}
    infos, seen = [], set()
    for name, value in zip(names, values):
        if name not in produced or name in seen:
            name = scope.node("Identity", [name], name=f"{scope.scope}/output")
        seen.add(name)
        infos.append(_value_info(name, value))
    return infos


def _inline(scope, graph, names: list) -> list:
    """Lowers ``graph`` into ``scope``'s own node list with its inputs bound to ``names``; its outputs' names."""
    inner = scope.child(share_nodes=True)
    for value, name in zip(graph.inputs, names):
        inner.bind(value, name)
    inner.lower_graph(graph)
    return [inner.get(value) for value in graph.outputs]


def _cond(scope, node):
    from onnx import helper  # noqa: PLC0415

    pred, captures = node.inputs[0], node.inputs[1:]
    outer = [scope.get(value) for value in captures]
    branches = {}
    for key in ("then_branch", "else_branch"):
        graph = node.attrs[key]
        branch = scope.child()
        outputs = _inline(branch, graph, outer)
        infos = _graph_outputs(branch, outputs, graph.outputs)
        branches[key] = helper.make_graph(branch.nodes, scope.lowering.unique(f"{scope.scope}/{key}"), [], infos)
    count = len(node.outputs)
    names = scope.node("If", [scope.get(pred)], outputs=count, **branches)
    for value, name in zip(node.outputs, [names] if count == 1 else names):
        scope.bind(value, name)


def _while(scope, node):
    """Loop with no trip count: the condition is tested once before the loop (inlined here) and again at
    the end of each body run, as ``tf.while_loop`` tests it before every iteration."""
    from onnx import TensorProto, helper  # noqa: PLC0415

    cond, body = node.attrs["cond"], node.attrs["body"]
    count = len(node.outputs)
    initial = [scope.get(value) for value in node.inputs[:count]]
    outer = [scope.get(value) for value in node.inputs[count:]]
    (first_test,) = _inline(scope, cond, initial + outer)

    inner = scope.child()
    unique = scope.lowering.unique
    iteration, condition = unique(f"{scope.scope}/iteration"), unique(f"{scope.scope}/condition")
    carried = [unique(f"{scope.scope}/loop_var") for _ in range(count)]
    updated = _inline(inner, body, carried + outer)
    (next_test,) = _inline(inner, cond, updated + outer)
    outputs = _graph_outputs(inner, [next_test, *updated], [cond.outputs[0], *body.outputs])
    inputs = [
        helper.make_tensor_value_info(iteration, TensorProto.INT64, []),
        helper.make_tensor_value_info(condition, TensorProto.BOOL, []),
        *[_value_info(name, value) for name, value in zip(carried, body.inputs[:count])],
    ]
    graph = helper.make_graph(inner.nodes, unique(f"{scope.scope}/body"), inputs, outputs)
    names = scope.node("Loop", ["", first_test, *initial], outputs=count, body=graph)
    for value, name in zip(node.outputs, [names] if count == 1 else names):
        scope.bind(value, name)


CONTROL_FLOW_LOWERINGS = {"cond": _cond, "while": _while}
