"""``tf.cond`` and ``tf.while_loop``: plain Python eagerly, one graph node each while tracing.

Eagerly (the predicate has a value) ``cond`` calls one branch and ``while_loop`` loops in Python.
While tracing, each branch — or the loop's condition and body — is traced into its own ``Graph`` by a
nested builder, and ONE node joins the enclosing graph, its subgraphs held as attributes::

    %5: f32[3] = cond(%4, %x) {then_branch=<graph cond_then 1 nodes>, else_branch=<graph cond_else 1 nodes>}
        then_branch: graph cond_then(%1: f32[3]) -> (%3)
          %3: f32[3] = multiply(%1, $2)
        else_branch: graph cond_else(%1: f32[3]) -> (%2)
          %2: f32[3] = negative(%1)

Outer tensors a subgraph reads are *captured*: they become inputs of the subgraph and explicit inputs
of the node, so the IR has no hidden edges (constants stay inside, held by reference).

The ops: ``cond(pred, *captures)`` returns the branch outputs; ``while(*loop_vars, *captures)``
returns the final loop variables. The registry fixes an op's number of outputs, so a node with n
outputs uses ``_specialized(op, n, stateful)``: the same op (name, rules, gradient) for n outputs.
"""

from __future__ import annotations

import dataclasses
import functools

from trainer import dtypes, nest
from trainer.context import state
from trainer.graph.evaluator import Executable
from trainer.graph.ir import Graph
from trainer.graph.tracing import GraphBuilder, tracing, user_source_line
from trainer.ops import array_ops, math_ops
from trainer.ops.registry import GradientNotSupportedError, OpError, Spec, execute, register
from trainer.shapes import TensorShape
from trainer.tensor import Tensor, convert_to_tensor


class ControlFlowError(ValueError):
    """``tf.cond``/``tf.while_loop`` got branches or a body it cannot turn into a graph; the message names the line."""


def is_symbolic(value) -> bool:
    """Whether ``value`` is a tensor without a value (a traced tensor), which Python ``if`` cannot test."""
    return isinstance(value, Tensor) and value._value is None


# -- tracing a Python function into a subgraph --------------------------------------------------------


class _SubgraphBuilder(GraphBuilder):
    """Traces one branch or loop function into its own graph; outside tensors it reads become captures."""

    def __init__(self, graph: Graph):
        super().__init__(graph)
        self.captures: list[Tensor] = []  # outer tensors (symbolic or variables), in the order captured

    def value_of(self, tensor: Tensor):
        if id(tensor) in self._values or not (tensor._is_variable or tensor._value is None):
            return super().value_of(tensor)  # its own value, or an eager tensor becoming a constant
        spec = tensor.spec
        value = self.graph.input(spec.shape, spec.dtype)
        self._values[id(tensor)] = value
        self._alive.append(tensor)
        self.captures.append(tensor)
        return value


@dataclasses.dataclass
class Trace:
    """A Python function traced into a subgraph: the graph, its builder, its parameters and its result."""

    graph: Graph
    builder: _SubgraphBuilder
    parameters: list
    result: object


def trace_function(function, parameter_specs, name: str) -> Trace:
    """Calls ``function`` on placeholders of ``parameter_specs`` ((shape, dtype) pairs) in a nested trace."""
    graph = Graph(name)
    builder = _SubgraphBuilder(graph)
    parameters = [builder.placeholder(shape, dtype) for shape, dtype in parameter_specs]
    enclosing_tapes = state.tapes
    state.tapes = []  # enclosing tapes record the one control-flow node, not the ops inside it
    try:
        with tracing(builder):
            result = function(*parameters)
    finally:
        state.tapes = enclosing_tapes
    return Trace(graph, builder, parameters, result)


def _finish(traces, outputs_per_trace) -> list[Tensor]:
    """Sets each trace's graph outputs and gives all the subgraphs one input list: their parameters,
    then every outer tensor any of them captured (a capture a subgraph does not read is an unused input).
    Returns those captured outer tensors: the extra inputs of the node."""
    for trace, outputs in zip(traces, outputs_per_trace):
        trace.graph.outputs = [trace.builder.value_of(tensor) for tensor in outputs]
    captures, seen = [], set()
    for trace in traces:
        for tensor in trace.builder.captures:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                captures.append(tensor)
    for trace in traces:
        parameters = trace.graph.inputs[: len(trace.parameters)]
        trace.graph.inputs = parameters + [trace.builder.value_of(tensor) for tensor in captures]
    return captures


def _add_node(op, inputs, attrs, subgraphs, num_outputs: int) -> tuple:
    stateful = any(_first_stateful_op(graph) for graph in subgraphs)
    result = execute(_specialized(op, num_outputs, stateful), tuple(inputs), attrs)
    if num_outputs == 0:
        return ()
    return (result,) if num_outputs == 1 else tuple(result)


@functools.cache
def _specialized(op, num_outputs: int, stateful: bool):
    """``op`` with ``num_outputs`` outputs; stateful when a subgraph writes variables or draws random numbers."""
    if num_outputs == op.num_outputs and stateful == op.stateful:
        return op
    return dataclasses.replace(op, num_outputs=num_outputs, stateful=stateful)


def _first_stateful_op(graph: Graph) -> str | None:
    """The name of an op in ``graph`` (or its subgraphs) that writes variables or draws random numbers."""
    for node in graph.nodes:
        if node.op.stateful:
            return node.op.name
        for value in node.attrs.values():
            found = _first_stateful_op(value) if isinstance(value, Graph) else None
            if found:
                return found
    return None


# -- tf.cond --------------------------------------------------------------------------------------------


def cond(pred, true_fn=None, false_fn=None, name=None):
    """``tf.cond``: ``true_fn()`` if ``pred`` is true, else ``false_fn()``.

    Eagerly (``pred`` a Python bool or a tensor with a value) only the chosen branch runs. While
    tracing with a symbolic ``pred``, both branches are traced and one ``cond`` node is added; they
    must return the same structure of tensors (Python numbers are converted) with the same dtypes.

    Example:
        >>> tf.cond(tf.constant(2.0) > 0, lambda: tf.constant(1.0), lambda: tf.constant(-1.0))
    """
    if not callable(true_fn) or not callable(false_fn):
        raise TypeError("tf.cond needs callable true_fn and false_fn")
    if not is_symbolic(pred):
        return true_fn() if pred else false_fn()
    where = user_source_line()
    check_predicate(pred.spec, "the predicate of tf.cond", where)
    name = name or "cond"
    then_trace = trace_function(true_fn, (), f"{name}_then")
    else_trace = trace_function(false_fn, (), f"{name}_else")
    then_result, else_result = then_trace.result, else_trace.result
    if then_result is None and else_result is None:
        add_cond_node(pred, then_trace, else_trace, [], [], [], where)
        return None
    if _structure(then_result) != _structure(else_result):
        raise ControlFlowError(
            f"{where}: tf.cond branches must return the same structure, but true_fn returned "
            f"{_structure(then_result)} and false_fn returned {_structure(else_result)}"
        )
    labels = [f"output {index}" for index in range(len(nest.flatten(then_result)))]
    pairs = [
        as_tensor_pair(a, b, label, where)
        for a, b, label in zip(nest.flatten(then_result), nest.flatten(else_result), labels)
    ]
    outputs = add_cond_node(pred, then_trace, else_trace, [a for a, _ in pairs], [b for _, b in pairs], labels, where)
    return nest.pack_sequence_as(then_result, list(outputs))


def add_cond_node(pred, then_trace: Trace, else_trace: Trace, then_outputs, else_outputs, labels, where) -> tuple:
    """Adds the ``cond`` node choosing between two traced branches; ``*_outputs`` are their tensors.

    ``pred`` was checked with ``check_predicate`` before the branches were traced."""
    for then_value, else_value, label in zip(then_outputs, else_outputs, labels):
        problem = _branch_mismatch(then_value.spec, else_value.spec)
        if problem:
            raise ControlFlowError(f"{where}: {label} {problem}")
    captures = _finish((then_trace, else_trace), (then_outputs, else_outputs))
    attrs = {"then_branch": then_trace.graph, "else_branch": else_trace.graph}
    return _add_node(cond_op, [pred, *captures], attrs, attrs.values(), len(then_outputs))


def as_tensor_pair(then_value, else_value, label: str, where: str) -> tuple:
    """Both branch values as tensors; a Python number takes the dtype of the tensor in the other branch."""
    hint = next((v.dtype for v in (then_value, else_value) if isinstance(v, Tensor)), None)
    tensors = []
    for value, branch in ((then_value, "true"), (else_value, "false")):
        try:
            tensors.append(convert_to_tensor(value, dtype_hint=hint))
        except (TypeError, ValueError) as error:
            raise ControlFlowError(
                f"{where}: {label} of the {branch} branch is {type(value).__name__}, not a tensor: {error}"
            ) from None
    return tuple(tensors)


def _structure(value):
    """``value`` with every leaf replaced by ``'*'``: equal for results tf.cond can merge."""
    return nest.map_structure(lambda _: "*", value)


def check_predicate(spec: Spec, what: str, where: str) -> None:
    """Refuses a condition that is not a scalar bool, as the one value that picks a branch must be."""
    if spec.dtype is not dtypes.bool_ or len(spec.shape) != 0:
        raise ControlFlowError(
            f"{where}: {what} must be a scalar bool, got {spec.dtype.name} of shape {tuple(spec.shape)}; "
            "reduce it with tf.reduce_any or tf.reduce_all"
        )


def _branch_mismatch(then_spec: Spec, else_spec: Spec) -> str | None:
    """Why one value cannot be ``then_spec`` in one branch and ``else_spec`` in the other, or None."""
    if then_spec.dtype is not else_spec.dtype:
        return (
            f"is {then_spec.dtype.name} in the true branch but {else_spec.dtype.name} in the false branch; "
            "both branches must give the same dtype (use tf.cast)"
        )
    if len(then_spec.shape) != len(else_spec.shape):
        return (
            f"has shape {tuple(then_spec.shape)} in the true branch but {tuple(else_spec.shape)} in the false "
            "branch; the ranks must agree"
        )
    return None


def _merged_spec(then_spec: Spec, else_spec: Spec) -> Spec:
    """The spec of a value that is ``then_spec`` or ``else_spec``: dims the branches disagree on become None."""
    return Spec(tuple(a if a == b else None for a, b in zip(then_spec.shape, else_spec.shape)), then_spec.dtype)


def _shapes_compatible(first, second) -> bool:
    return TensorShape(first).is_compatible_with(second)


def _check_subgraph_inputs(op_name: str, key: str, graph: Graph, inputs) -> None:
    if len(graph.inputs) != len(inputs):
        raise OpError(f"op '{op_name}': {key} takes {len(graph.inputs)} inputs, the node passes {len(inputs)}")
    for index, (value, spec) in enumerate(zip(graph.inputs, inputs)):
        if value.dtype is not spec.dtype or not _shapes_compatible(value.shape, spec.shape):
            raise OpError(
                f"op '{op_name}': input {index} is {spec.dtype.name} {tuple(spec.shape)}, {key} expects {value!r}"
            )


def _as_infer_result(specs: list):
    return specs[0] if len(specs) == 1 else tuple(specs)


def _cond_infer(pred: Spec, *inputs: Spec, then_branch: Graph, else_branch: Graph):
    if pred.dtype is not dtypes.bool_ or len(pred.shape) != 0:
        raise OpError(f"op 'cond' needs a scalar bool predicate, got {pred.dtype.name} {tuple(pred.shape)}")
    for key, graph in (("then_branch", then_branch), ("else_branch", else_branch)):
        _check_subgraph_inputs("cond", key, graph, inputs)
    if len(then_branch.outputs) != len(else_branch.outputs):
        raise OpError(f"op 'cond': the branches have {len(then_branch.outputs)} and {len(else_branch.outputs)} outputs")
    specs = []
    for index, (a, b) in enumerate(zip(then_branch.outputs, else_branch.outputs)):
        then_spec, else_spec = Spec(a.shape, a.dtype), Spec(b.shape, b.dtype)
        problem = _branch_mismatch(then_spec, else_spec)
        if problem:
            raise OpError(f"op 'cond': output {index} {problem}")
        specs.append(_merged_spec(then_spec, else_spec))
    return _as_infer_result(specs)


@register("cond", infer=_cond_infer)
def cond_op(xp, pred, *inputs, then_branch, else_branch):
    """Runs ``then_branch`` or ``else_branch`` (subgraphs) on ``inputs``, as the scalar ``pred`` says."""
    return _run(then_branch if bool(pred) else else_branch, inputs)


def _run(graph: Graph, inputs):
    results = _executable(graph).run(*inputs)
    return results[0] if len(graph.outputs) == 1 else results


def _executable(graph: Graph) -> Executable:
    """The subgraph's compiled plan, built on its first run and kept on the graph for every later one."""
    executable = graph.__dict__.get("_control_flow_executable")
    if executable is None:
        executable = graph._control_flow_executable = Executable(graph)
    return executable


@cond_op.def_gradient
def _(node, *output_grads):
    """A cond of the branch gradients: each branch is replayed under a tape and differentiated."""
    pred, inputs = node.inputs[0], list(node.inputs[1:])
    wanted = [i for i, tensor in enumerate(inputs) if node.needs_gradient[i + 1] and tensor.dtype.is_floating]
    grads = [None] * len(node.inputs)
    if not wanted:
        return tuple(grads)

    def branch_gradient(graph):
        return lambda: _graph_gradient(graph, inputs, output_grads, wanted)

    results = cond(pred, branch_gradient(node.attrs["then_branch"]), branch_gradient(node.attrs["else_branch"]))
    for index, grad in zip(wanted, results):
        grads[index + 1] = grad
    return tuple(grads)


def _graph_gradient(graph: Graph, inputs, output_grads, wanted) -> list:
    """The gradients of ``graph``'s outputs, weighted by ``output_grads``, with respect to ``inputs[wanted]``."""
    from trainer.tape import GradientTape, UnconnectedGradients  # noqa: PLC0415 - the tape imports the op layer

    stateful = _first_stateful_op(graph)
    if stateful:
        raise GradientNotSupportedError(
            f"the gradient of tf.cond through a branch with the stateful op '{stateful}' is not supported by "
            "emberflow: differentiating the branch replays it, which would repeat the side effect"
        )
    with GradientTape(watch_accessed_variables=False) as tape:
        for index in wanted:
            tape.watch(inputs[index])
        outputs = call_graph(graph, inputs)
    targets = [(output, grad) for output, grad in zip(outputs, output_grads) if output.dtype.is_floating]
    sources = [inputs[index] for index in wanted]
    if not targets:
        return [array_ops.zeros_like(source) for source in sources]
    return list(
        tape.gradient(
            [output for output, _ in targets],
            sources,
            output_gradients=[grad for _, grad in targets],
            unconnected_gradients=UnconnectedGradients.ZERO,
        )
    )


def call_graph(graph: Graph, inputs) -> list[Tensor]:
    """Runs ``graph`` op by op through ``execute``, so that tapes and an enclosing trace see every op."""
    tensors = {value.id: tensor for value, tensor in zip(graph.inputs, inputs)}
    tensors.update((value.id, Tensor(value.data)) for value in graph.constants)
    tensors.update((value.id, value.variable) for value in graph.variables)
    for node in graph.nodes:
        result = execute(node.op, [tensors[value.id] for value in node.inputs], node.attrs)
        results = () if result is None else (result,) if node.op.num_outputs == 1 else result
        tensors.update((value.id, tensor) for value, tensor in zip(node.outputs, results))
    return [tensors[value.id] for value in graph.outputs]


# -- tf.while_loop --------------------------------------------------------------------------------------


def while_loop(
    cond,
    body,
    loop_vars,
    shape_invariants=None,
    parallel_iterations=10,
    back_prop=True,
    swap_memory=False,
    maximum_iterations=None,
    name=None,
):
    """``tf.while_loop``: repeats ``loop_vars = body(*loop_vars)`` while ``cond(*loop_vars)`` is true.

    Eagerly this is a Python loop. While tracing it adds one ``while`` node: ``cond`` and ``body`` are
    traced once each, and ``body`` must return the structure, dtypes and shapes of ``loop_vars``
    (``shape_invariants`` lists the shapes, with ``None`` for dims that change across iterations).
    ``maximum_iterations`` bounds the number of iterations. ``parallel_iterations`` and
    ``swap_memory`` are accepted and ignored: one loop runs its iterations in order on one device.
    The gradient of a traced loop is not supported (``GradientNotSupportedError``).

    Example:
        >>> tf.while_loop(lambda i, total: i < 5, lambda i, total: (i + 1, total + i), [0, 0])
        [5, 10]
    """
    del parallel_iterations, swap_memory
    if not callable(cond) or not callable(body):
        raise TypeError("tf.while_loop needs callable cond and body")
    single = not nest.is_nested(loop_vars)
    loop_vars = [loop_vars] if single else loop_vars
    if not nest.flatten(loop_vars):
        raise ValueError("tf.while_loop needs at least one loop variable")
    traced = state.graph is not None or any(is_symbolic(v) for v in nest.flatten(loop_vars))
    if traced:
        result = _traced_loop(cond, body, loop_vars, shape_invariants, maximum_iterations, name or "while")
    else:
        result = _python_loop(cond, body, loop_vars, maximum_iterations)
    if not back_prop:
        result = nest.map_structure(array_ops.stop_gradient, result)
    return result[0] if single else result


def _python_loop(cond, body, loop_vars, maximum_iterations):
    iteration = 0
    while (maximum_iterations is None or iteration < int(maximum_iterations)) and cond(*loop_vars):
        loop_vars = _same_structure(body(*loop_vars), loop_vars)
        iteration += 1
    return loop_vars


def _same_structure(result, loop_vars, where: str | None = None):
    """``body``'s result in the structure of ``loop_vars``; a bare value stands for a single loop variable."""
    if len(loop_vars) == 1 and not (isinstance(result, (list, tuple)) and len(result) == 1):
        result = [result]
    if not isinstance(result, (list, tuple)) or _structure(list(result)) != _structure(list(loop_vars)):
        raise ControlFlowError(
            f"{where or user_source_line()}: tf.while_loop body must return the structure of loop_vars "
            f"{_structure(list(loop_vars))}, got {_structure(result)}"
        )
    return nest.pack_sequence_as(loop_vars, nest.flatten(list(result)))


def _traced_loop(cond, body, loop_vars, shape_invariants, maximum_iterations, name):
    where = user_source_line()
    flat = [convert_to_tensor(v) for v in nest.flatten(loop_vars)]
    labels = [f"loop variable {index}" for index in range(len(flat))]
    if shape_invariants is None:
        invariants = [tensor.shape.as_tuple() for tensor in flat]
    else:
        single = len(flat) == 1 and not nest.is_nested(shape_invariants)
        invariants = [
            TensorShape(s).as_tuple() for s in ([shape_invariants] if single else nest.flatten(shape_invariants))
        ]

    def flat_cond(*tensors):
        return cond(*nest.pack_sequence_as(loop_vars, list(tensors)))

    def flat_body(*tensors):
        return nest.flatten(_same_structure(body(*nest.pack_sequence_as(loop_vars, list(tensors))), loop_vars, where))

    if maximum_iterations is not None:
        flat_cond, flat_body = _bounded(flat_cond, flat_body, maximum_iterations)
        flat, invariants, labels = [convert_to_tensor(0)] + flat, [()] + invariants, ["iteration counter"] + labels
    outputs = add_while_node(flat_cond, flat_body, flat, invariants, labels, where, name)
    if maximum_iterations is not None:
        outputs = outputs[1:]
    return nest.pack_sequence_as(loop_vars, list(outputs))


def _bounded(cond, body, maximum_iterations):
    """``cond`` and ``body`` with an int32 iteration counter in front that stops at ``maximum_iterations``."""
    limit = convert_to_tensor(maximum_iterations, dtype=dtypes.int32)

    def bounded_cond(counter, *tensors):
        return math_ops.logical_and(counter < limit, cond(*tensors))

    def bounded_body(counter, *tensors):
        return [counter + 1, *body(*tensors)]

    return bounded_cond, bounded_body


def add_while_node(cond, body, loop_tensors, invariants, labels, where, name: str = "while") -> tuple:
    """Traces flat ``cond``/``body`` over placeholders shaped like ``invariants`` and adds one ``while`` node."""
    for tensor, shape, label in zip(loop_tensors, invariants, labels):
        if not tensor.shape.is_compatible_with(shape):
            raise ControlFlowError(
                f"{where}: {label} has shape {tensor.shape}, which does not match its shape invariant {shape}"
            )
    specs = [(shape, tensor.dtype) for tensor, shape in zip(loop_tensors, invariants)]
    cond_trace = trace_function(cond, specs, f"{name}_cond")
    body_trace = trace_function(body, specs, f"{name}_body")
    test = cond_trace.result
    if not isinstance(test, Tensor):
        test = convert_to_tensor(test)
    check_predicate(test.spec, "the result of tf.while_loop's cond", where)
    outputs = _loop_outputs(body_trace.result, loop_tensors, invariants, labels, where)
    captures = _finish((cond_trace, body_trace), ([test], outputs))
    attrs = {"cond": cond_trace.graph, "body": body_trace.graph}
    return _add_node(while_op, [*loop_tensors, *captures], attrs, attrs.values(), len(loop_tensors))


def _loop_outputs(result, loop_tensors, invariants, labels, where) -> list[Tensor]:
    """The body's new loop variables as tensors, checked against the dtypes and shapes they entered with."""
    result = list(result) if isinstance(result, (list, tuple)) else [result]
    if len(result) != len(loop_tensors):
        raise ControlFlowError(
            f"{where}: the loop body returns {len(result)} values for {len(loop_tensors)} loop variables"
        )
    outputs = []
    for value, tensor, shape, label in zip(result, loop_tensors, invariants, labels):
        try:
            value = convert_to_tensor(value, dtype_hint=tensor.dtype)
        except (TypeError, ValueError) as error:
            raise ControlFlowError(
                f"{where}: the loop body makes {label} a {type(value).__name__}, not a tensor: {error}"
            ) from None
        if value.dtype is not tensor.dtype:
            raise ControlFlowError(
                f"{where}: {label} enters the loop as {tensor.dtype.name} but the body makes it {value.dtype.name}; "
                "a loop variable keeps its dtype (use tf.cast)"
            )
        if not value.shape.is_compatible_with(shape):
            raise ControlFlowError(
                f"{where}: {label} enters the loop with shape {shape} but has shape {value.shape} after one "
                "iteration; pass shape_invariants with None for the dimensions that change"
            )
        outputs.append(value)
    return outputs


def _while_infer(*inputs: Spec, cond: Graph, body: Graph):
    count = len(body.outputs)
    for key, graph in (("cond", cond), ("body", body)):
        _check_subgraph_inputs("while", key, graph, inputs)
    if len(cond.outputs) != 1 or cond.outputs[0].dtype is not dtypes.bool_ or cond.outputs[0].shape != ():
        raise OpError("op 'while': cond must have one scalar bool output")
    for index, (output, loop_input) in enumerate(zip(body.outputs, body.inputs)):
        if output.dtype is not loop_input.dtype or not _shapes_compatible(output.shape, loop_input.shape):
            raise OpError(f"op 'while': body output {index} is {output!r}, loop variable {index} is {loop_input!r}")
    return _as_infer_result([Spec(value.shape, value.dtype) for value in body.inputs[:count]])


@register("while", infer=_while_infer)
def while_op(xp, *inputs, cond, body):
    """Runs ``body`` (a subgraph) on the loop variables while ``cond`` says so; returns their final values."""
    count = len(body.outputs)
    loop_values, captured = list(inputs[:count]), inputs[count:]
    test, step = _executable(cond), _executable(body)
    while bool(test.run(*loop_values, *captured)[0]):
        loop_values = step.run(*loop_values, *captured)
    return loop_values[0] if count == 1 else loop_values


@while_op.def_gradient
def _(node, *output_grads):
    raise GradientNotSupportedError(
        "the gradient of a traced tf.while_loop is not supported by emberflow; unroll the loop with a Python "
        "`for i in range(n)` so that every iteration is recorded, or wrap the result in tf.stop_gradient"
    )
