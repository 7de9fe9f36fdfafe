"""AutoGraph: inside ``tf.function``, Python ``if``/``while``/``for`` on tensors become ``cond``/``while`` nodes.

``convert(f)`` parses ``f``'s source and moves the blocks of each control-flow statement into local
functions that a runtime helper of this module calls (``autograph_rewrite.py`` does the rewriting).
The variables a statement assigns and that are read later — its *state* — go in and come back
explicitly::

    if x > 0:                      def ag__if_body_1(y):
        y = x * 2                      y = x * 2
    else:               ──▶            return ag__.load(locals(), ('y',))
        y = -x                     def ag__if_else_1(y): ...
                                   (y,) = ag__.if_stmt(x > 0, ag__if_body_1, ag__if_else_1,
                                                       ag__.load(locals(), ('y',)), ('y',), 'f.py:12')

At run time the helper looks at the condition. A Python value (or a tensor with a value) runs the
statement as Python would, so Python control flow still unrolls while tracing. A symbolic tensor makes
``if`` one ``cond`` node and ``while`` one ``while`` node over the state; so does ``for`` over
``tf.range(...)`` or over a symbolic tensor (an index counts through its first dimension). State
variables may be tensors, numbers, or tuples, lists and dicts of them. ``and``/``or``/``not`` in
conditions and ``a if c else b`` work on tensors too, and early returns at the end of the function
(``if c: return a`` then ``return b``) become one ``cond``.

Not supported when the condition is a tensor (``AutoGraphError``, naming the file and line):
other ``return``/``break``/``continue`` inside the statement, assigning a ``global``/``nonlocal``
name in it, a variable assigned in only one branch and used after the ``if``, a loop variable without
a value before the loop, and Python values (strings, objects) that the branches or the loop body
change. Such statements still run as Python when their condition is a Python value. Functions without
source (built-ins, code from ``exec``), lambdas, generators and emberflow's own functions are
returned unchanged; functions a converted function calls are not converted.
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
import types
import warnings
import weakref

import numpy as np

from trainer import context, dtypes, nest
from trainer.graph import control_flow
from trainer.graph.autograph_rewrite import needs_conversion, rewrite_function
from trainer.ops import array_ops, math_ops
from trainer.tensor import Tensor, convert_to_tensor


class AutoGraphError(ValueError):
    """Tensor-dependent control flow that autograph cannot turn into graph ops; the message names the file and line."""


# -- converting a function ---------------------------------------------------------------------------

_UNCHANGED = object()
_converted: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # function -> converted function
_rewritten_code: dict = {}  # code object -> rewritten code object, or None when there is nothing to convert
_SKIPPED_FLAGS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def convert(function):
    """Returns ``function`` rewritten so that tensor-valued ``if``/``while``/``for`` become graph ops.

    The rewrite is cached per function; the result shares the original's globals and closure cells.
    A bound method is converted through its function. Anything that cannot be converted is returned
    unchanged.
    """
    if inspect.ismethod(function):
        converted = convert(function.__func__)
        return function if converted is function.__func__ else types.MethodType(converted, function.__self__)
    if not inspect.isfunction(function):
        return function
    converted = _converted.get(function)
    if converted is None:
        converted = _convert_function(function)
        _converted[function] = _UNCHANGED if converted is function else converted
    return function if converted is _UNCHANGED else converted


def _convert_function(function):
    code = function.__code__
    skipped = (
        function.__name__ == "<lambda>"  # a lambda holds no statements
        or code.co_flags & _SKIPPED_FLAGS
        or hasattr(function, "__wrapped__")  # getsource would give the wrapped function's source
        or (function.__module__ or "").startswith("trainer.")  # emberflow's own code needs no conversion
    )
    if skipped:
        return function
    if code not in _rewritten_code:
        _rewritten_code[code] = _rewrite(function)
    rewritten = _rewritten_code[code]
    return function if rewritten is None else _rebuild(function, rewritten)


def _rewrite(function):
    """The code object of ``function`` with its control flow converted, or None if it needs none."""
    code = function.__code__
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return None  # no source: defined in a shell or by exec
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        warnings.warn(
            f"autograph cannot parse the source of {function.__qualname__} ({error}); it runs unconverted", stacklevel=4
        )
        return None
    definition = tree.body[0] if tree.body else None
    if (
        not isinstance(definition, ast.FunctionDef)
        or definition.name != code.co_name
        or not needs_conversion(definition.body)
    ):
        return None
    ast.increment_lineno(tree, code.co_firstlineno - 1)
    rewrite_function(definition, code.co_filename)
    definition.decorator_list = []
    return _compile(definition, function)


def _compile(definition: ast.FunctionDef, function):
    """Compiles ``definition`` inside a factory whose parameters are ``ag__`` and the original's free
    variables, so that the new code reads them from closure cells, like the original."""
    factory = ast.parse(f"def ag__factory(ag__, {', '.join(function.__code__.co_freevars)}):\n    pass").body[0]
    factory.body = [definition, ast.Return(ast.Name(definition.name, ast.Load()))]
    outer = factory
    class_name = _enclosing_class(function.__qualname__)
    if class_name:
        # Code inside a class body is compiled inside a class of the same name, so that `self.__secret` is
        # name-mangled as it was in the original.
        outer = ast.parse(f"class {class_name}:\n    pass").body[0]
        outer.body = [factory]
    module = ast.fix_missing_locations(ast.Module(body=[outer], type_ignores=[]))
    factory_code = _find_code(compile(module, function.__code__.co_filename, "exec"), "ag__factory")
    return next(c for c in factory_code.co_consts if isinstance(c, types.CodeType) and c.co_name == definition.name)


def _enclosing_class(qualname: str) -> str | None:
    """The innermost class whose body holds the function named ``qualname`` (``A.f``, ``A.f.<locals>.g``)."""
    parts = qualname.split(".")
    for index in range(len(parts) - 2, -1, -1):
        is_function = parts[index + 1] == "<locals>"
        if parts[index].isidentifier() and not is_function:
            return parts[index]
    return None


def _find_code(code, name: str):
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            found = constant if constant.co_name == name else _find_code(constant, name)
            if found is not None:
                return found
    return None


def _rebuild(function, code):
    """A function running ``code`` with ``function``'s globals, closure cells, defaults and attributes."""
    cells = dict(zip(function.__code__.co_freevars, function.__closure__ or ()))
    cells["ag__"] = types.CellType(sys.modules[__name__])
    closure = tuple(cells[name] for name in code.co_freevars)
    converted = types.FunctionType(code, function.__globals__, function.__name__, function.__defaults__, closure)
    converted.__kwdefaults__ = function.__kwdefaults__
    converted.__dict__.update(function.__dict__)
    converted.__qualname__ = function.__qualname__
    converted.__doc__ = function.__doc__
    converted.__annotations__ = function.__annotations__
    return converted


# -- runtime: what the rewritten code calls (as ``ag__.name``) ---------------------------------------------


class Undefined:
    """The value of a variable that has none yet: assigned later, or only on a path not taken."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<undefined '{self.name}'>"


def load(namespace: dict, names) -> tuple:
    """The current values of ``names`` in ``namespace`` (a ``locals()``), ``Undefined`` for unbound ones."""
    return tuple(namespace[name] if name in namespace else Undefined(name) for name in names)


def is_undefined(value) -> bool:
    return isinstance(value, Undefined)


def if_stmt(test, body, orelse, values, names, location):
    """An ``if`` statement: Python picks a branch for a Python ``test``; a symbolic one adds a ``cond`` node."""
    if not control_flow.is_symbolic(test):
        return body(*values) if test else orelse(*values)
    control_flow.check_predicate(test.spec, "the condition of this `if`", location)
    then_trace = control_flow.trace_function(lambda: body(*values), (), "if_then")
    else_trace = control_flow.trace_function(lambda: orelse(*values), (), "if_else")
    pairs, labels = [], []  # the (then, else) tensors the cond node chooses between, and their variables
    plans = [
        _plan_variable(name, then_value, else_value, pairs, labels, location)
        for name, then_value, else_value in zip(names, then_trace.result, else_trace.result)
    ]
    outputs = control_flow.add_cond_node(
        test, then_trace, else_trace, [a for a, _ in pairs], [b for _, b in pairs], labels, location
    )
    return tuple(
        nest.map_structure(lambda leaf: outputs[leaf] if isinstance(leaf, _Chosen) else leaf, plan) for plan in plans
    )


class _Chosen(int):
    """In a variable's plan, a leaf the ``cond`` node chooses: the index of that node output."""


def _plan_variable(name, then_value, else_value, pairs, labels, location):
    """The value a variable has after a tensor ``if``: kept where both branches agree, and otherwise (leaf by
    leaf, for tuples, lists and dicts) a ``_Chosen`` output whose two tensors are appended to ``pairs``."""
    if then_value is else_value or (is_undefined(then_value) and is_undefined(else_value)):
        return then_value
    if is_undefined(then_value) or is_undefined(else_value):
        branch = "else" if is_undefined(then_value) else "if"
        raise AutoGraphError(
            f"{location}: '{name}' is assigned only in the `{branch}` branch of this `if`, whose condition is a "
            "tensor, but it is used after the `if`; give it a value before the `if` or in both branches"
        )
    if _structure(then_value) != _structure(else_value):
        raise AutoGraphError(
            f"{location}: '{name}' is {_describe(then_value)} in the `if` branch but {_describe(else_value)} in the "
            "`else` branch of this `if`, whose condition is a tensor; both branches must give it one structure"
        )
    leaves = []
    for then_leaf, else_leaf in zip(nest.flatten(then_value), nest.flatten(else_value)):
        if then_leaf is else_leaf or _same_python_value(then_leaf, else_leaf):
            leaves.append(then_leaf)
            continue
        if not (_is_tensor_like(then_leaf) and _is_tensor_like(else_leaf)):
            raise AutoGraphError(
                f"{location}: '{name}' holds {_describe(then_leaf)} in the `if` branch but {_describe(else_leaf)} in "
                "the `else` branch of this `if`, whose condition is a tensor; tf.cond can only choose between tensors"
            )
        pairs.append(control_flow.as_tensor_pair(then_leaf, else_leaf, f"'{name}'", location))
        labels.append(f"'{name}'")
        leaves.append(_Chosen(len(pairs) - 1))
    return nest.pack_sequence_as(then_value, leaves)


def while_stmt(test, body, values, names, location):
    """A ``while`` statement: a Python loop while ``test`` gives Python values, then a ``while`` node
    from the first time it gives a symbolic tensor."""
    values = tuple(values)
    while True:
        # A symbolic first test leaves its ops in the enclosing graph unread (as in TensorFlow); the
        # dead-node pass removes them.
        condition = test(*values)
        if control_flow.is_symbolic(condition):
            control_flow.check_predicate(condition.spec, "the condition of this `while`", location)
            return _tensor_loop(test, body, values, names, location, "while")
        if not condition:
            return values
        values = tuple(body(*values))


def for_stmt(iterable, body, values, names, location):
    """A ``for`` statement: a Python loop over Python iterables; a ``while`` node over ``tf.range`` while
    tracing, or over the first dimension of a symbolic tensor."""
    if isinstance(iterable, _Range):
        if context.state.graph is not None:
            return _range_loop(iterable, body, values, names, location)
        iterable = iterable.materialize()
    if control_flow.is_symbolic(iterable):
        return _tensor_iteration(iterable, body, values, names, location)
    values = tuple(values)
    for item in iterable:
        values = tuple(body(item, *values))
    return values


def if_exp(test, if_true, if_false):
    """``a if test else b``: Python for a Python ``test``, ``tf.cond`` for a symbolic one."""
    if not control_flow.is_symbolic(test):
        return if_true() if test else if_false()
    return control_flow.cond(test, if_true, if_false)


def and_(*operands):
    """``a and b``: Python's short circuit on Python values, ``tf.logical_and`` once a value is symbolic."""
    value = operands[0]()
    for operand in operands[1:]:
        if control_flow.is_symbolic(value):
            value = math_ops.logical_and(value, operand())
        elif not value:
            return value
        else:
            value = operand()
    return value


def or_(*operands):
    """``a or b``: Python's short circuit on Python values, ``tf.logical_or`` once a value is symbolic."""
    value = operands[0]()
    for operand in operands[1:]:
        if control_flow.is_symbolic(value):
            value = math_ops.logical_or(value, operand())
        elif value:
            return value
        else:
            value = operand()
    return value


def not_(value):
    return math_ops.logical_not(value) if control_flow.is_symbolic(value) else not value


def python_condition(test, reason: str, location: str):
    """The test of a statement that must stay Python; a symbolic one raises ``AutoGraphError``."""
    if control_flow.is_symbolic(test):
        raise AutoGraphError(f"{location}: {reason}")
    return test


def python_iterable(iterable, reason: str, location: str):
    """The iterable of a ``for`` that must stay Python; ``tf.range`` while tracing or a symbolic tensor raises."""
    if isinstance(iterable, _Range):
        if context.state.graph is not None:
            raise AutoGraphError(f"{location}: {reason}")
        return iterable.materialize()
    return python_condition(iterable, reason, location)


def range_call(function, *args, **kwargs):
    """``function(*args)``, except that ``tf.range`` as a loop's iterable stays a ``_Range`` of its bounds."""
    if function is array_ops.range:
        return _Range(*args, **kwargs)
    return function(*args, **kwargs)


class _Range:
    """The arguments of ``tf.range``: a traced loop counts through them without a tensor of all indices."""

    def __init__(self, start, limit=None, delta=1, dtype=None, name=None):
        del name  # a loop has no op to name
        if limit is None:
            start, limit = 0, start
        self.start, self.limit, self.delta, self.dtype = start, limit, delta, dtype

    def materialize(self) -> Tensor:
        return array_ops.range(self.start, self.limit, self.delta, dtype=self.dtype)

    def resolved_dtype(self):
        if self.dtype is not None:
            return self.dtype
        bounds = (self.start, self.limit, self.delta)
        tensor = next((value for value in bounds if isinstance(value, Tensor)), None)
        if tensor is not None:
            return tensor.dtype
        return dtypes.float32 if any(isinstance(value, float) for value in bounds) else dtypes.int32


def _range_loop(spec: _Range, body, values, names, location):
    dtype = spec.resolved_dtype()
    start, limit = convert_to_tensor(spec.start, dtype=dtype), convert_to_tensor(spec.limit, dtype=dtype)
    delta = spec.delta if isinstance(spec.delta, (int, float)) else convert_to_tensor(spec.delta, dtype=dtype)

    def test(index, *rest):
        if not isinstance(delta, Tensor):
            return index < limit if delta > 0 else index > limit
        return math_ops.logical_or(
            math_ops.logical_and(delta > 0, index < limit), math_ops.logical_and(delta < 0, index > limit)
        )

    def step(index, *rest):
        return (index + delta, *body(index, *rest))

    return _tensor_loop(test, step, (start, *values), ("the loop index", *names), location, "for")[1:]


def _tensor_iteration(tensor: Tensor, body, values, names, location):
    if tensor.ndim == 0:
        raise TypeError(f"{location}: iterating over a scalar (rank-0) tensor is not allowed")
    length = tensor.shape.as_tuple()[0]
    if length is None:
        length = array_ops.shape(tensor)[0]

    def test(index, *rest):
        return index < length

    def step(index, *rest):
        return (index + 1, *body(array_ops.gather(tensor, index), *rest))

    return _tensor_loop(test, step, (convert_to_tensor(0), *values), ("the loop index", *names), location, "for")[1:]


def _tensor_loop(test, body, values, names, location, keyword: str):
    """One ``while`` node carrying the tensors and numbers of the state (leaf by leaf, for tuples, lists and
    dicts); every other Python value in it must come out of the body unchanged."""
    for name, value in zip(names, values):
        if is_undefined(value):
            raise AutoGraphError(
                f"{location}: '{name}' has no value before this `{keyword}` loop, whose condition is a tensor, but the "
                "loop reads it or it is used after the loop; give it a value before the loop"
            )
    leaves = [nest.flatten(value) for value in values]
    carried = [(p, i) for p, flat in enumerate(leaves) for i, leaf in enumerate(flat) if _is_tensor_like(leaf)]

    def state(loop_values) -> list:
        new_leaves = [list(flat) for flat in leaves]
        for (p, i), value in zip(carried, loop_values):
            new_leaves[p][i] = value
        return [nest.pack_sequence_as(value, flat) for value, flat in zip(values, new_leaves)]

    def loop_body(*loop_values):
        new_values = tuple(body(*state(loop_values)))
        for p, (name, old, new) in enumerate(zip(names, values, new_values)):
            changed = _structure(old) != _structure(new) or any(
                (p, i) not in carried and a is not b for i, (a, b) in enumerate(zip(leaves[p], nest.flatten(new)))
            )
            if changed:
                raise AutoGraphError(
                    f"{location}: this `{keyword}` loop, whose condition is a tensor, changes '{name}' from "
                    f"{_describe(old)} to {_describe(new)}; a graph loop can only carry tensors, in one structure"
                )
        return [nest.flatten(new_values[p])[i] for p, i in carried]

    initial = [convert_to_tensor(leaves[p][i]) for p, i in carried]
    outputs = control_flow.add_while_node(
        lambda *loop_values: test(*state(loop_values)),
        loop_body,
        initial,
        [tensor.shape.as_tuple() for tensor in initial],
        [f"'{names[p]}'" for p, _ in carried],
        location,
        name=keyword,
    )
    return tuple(state(outputs))


def _structure(value):
    return nest.map_structure(lambda _: "*", value)


def _describe(value) -> str:
    """A short description of a value for error messages: its type, and its layout for containers."""
    if nest.is_nested(value):
        return f"a {type(value).__name__} laid out as {_structure(value)}"
    if isinstance(value, Tensor):
        return "a tensor"
    return f"the {type(value).__name__} {value!r:.40}"


def _is_tensor_like(value) -> bool:
    return isinstance(value, (Tensor, bool, int, float, np.ndarray, np.generic))


def _same_python_value(a, b) -> bool:
    """Whether two non-tensor values are equal, so a tensor ``if`` can keep the Python value."""
    if isinstance(a, (Tensor, np.ndarray)) or isinstance(b, (Tensor, np.ndarray)) or type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False
