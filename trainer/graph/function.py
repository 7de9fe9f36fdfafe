"""``tf.function``: trace a Python function once per input signature, then run the cached graph.

The signature of a call is the dtype and shape of each tensor argument and the value of each other
argument. ``input_signature=[tf.TensorSpec([None, 28, 28])]`` fixes it up front (``None`` dims
accept any size). Each signature's trace is a ``ConcreteFunction``: a ``Graph`` plus its compiled
``Executable``. Calls from inside another trace are inlined into that trace.
"""

from __future__ import annotations

import functools
import inspect
import warnings
import weakref

import numpy as np

from trainer import nest
from trainer.context import state
from trainer.graph.evaluator import Executable
from trainer.graph.ir import Graph
from trainer.graph.tracing import GraphBuilder, tracing
from trainer.shapes import TensorShape, TensorSpec
from trainer.tensor import Tensor, convert_to_tensor

RETRACE_WARNING_THRESHOLD = 5


class ConcreteFunction:
    """One traced signature: ``graph`` (the IR), ``structured_outputs``, and a fast ``__call__``."""

    def __init__(self, graph: Graph, input_specs: list[TensorSpec], outputs_structure, name: str):
        self.graph = graph
        self.input_specs = input_specs
        self._outputs_structure = outputs_structure
        self.name = name
        self._executable = None
        self._optimized = None
        self.pass_reports = []

    @property
    def structured_outputs(self):
        return self._outputs_structure

    @property
    def structured_input_signature(self) -> tuple:
        return tuple(self.input_specs)

    @property
    def output_shapes(self):
        return nest.map_structure(lambda v: TensorShape(v.shape), self._outputs_structure)

    @property
    def optimized_graph(self) -> Graph:
        """What actually runs: the traced graph after the training-safe passes (no BN folding)."""
        if self._optimized is None:
            from trainer.graph.passes import optimize  # noqa: PLC0415 - passes import the op tables

            self._optimized, self.pass_reports = optimize(self.graph, for_inference=False)
        return self._optimized

    @property
    def executable(self) -> Executable:
        if self._executable is None:
            self._executable = Executable(self.optimized_graph)
        return self._executable

    def __call__(self, *args):
        flat = [a for a in nest.flatten(args) if isinstance(a, (Tensor, np.ndarray))]
        if len(flat) != len(self.graph.inputs):
            raise TypeError(f"{self.name}: expected {len(self.graph.inputs)} tensor arguments, got {len(flat)}")
        arrays = []
        for spec, value in zip(self.input_specs, flat):
            tensor = value if isinstance(value, Tensor) else convert_to_tensor(value, dtype=spec.dtype)
            if not spec.is_compatible_with(tensor):
                raise ValueError(f"{self.name}: argument of shape {tensor.shape} and dtype {tensor.dtype.name} does not match {spec}")
            arrays.append(tensor._value)
        return self.call_flat(arrays)

    def call_flat(self, arrays):
        """Runs the graph on ``arrays`` — one per graph input, already known to match the input specs
        (a caller that keys its own cache on exact shapes and dtypes skips ``__call__``'s checks)."""
        results = self.executable.run(*arrays)
        tensors = [Tensor(r if type(r) is np.ndarray else np.asarray(r)) if not hasattr(r, "device") else Tensor(r) for r in results]
        return nest.pack_sequence_as(self._outputs_structure, tensors) if self._outputs_structure is not None else None

    def __str__(self) -> str:
        return str(self.graph)


class Function:
    """What ``@tf.function`` returns: a callable that traces per signature and caches the result."""

    def __init__(self, python_function, input_signature=None, autograph=True, jit_compile=None, reduce_retracing=False, name=None):
        self.python_function = python_function
        self.input_signature = None if input_signature is None else [s if isinstance(s, TensorSpec) else TensorSpec(*s) for s in nest.flatten(input_signature)]
        self.autograph = autograph
        self.name = name or getattr(python_function, "__name__", type(python_function).__name__)
        self._cache: dict = {}
        self._tracing_count = 0
        self._recent_traces = 0
        functools.update_wrapper(self, python_function, updated=()) if inspect.isfunction(python_function) else None

    # -- the public surface ------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        if state.graph is not None:
            return self._callable()(*args, **kwargs)  # inside another trace: inline
        if state.tapes:
            # An enclosing tape must see every op to differentiate through this call; the cached graph
            # has no recorded ops, so the body runs op by op here (same values, same gradients).
            return self._callable()(*args, **kwargs)
        concrete, tensor_args = self._concrete_for(args, kwargs)
        return concrete(*tensor_args)

    def get_concrete_function(self, *args, **kwargs) -> ConcreteFunction:
        """The traced graph for these arguments (``TensorSpec`` arguments trace without data)."""
        if not args and not kwargs and self.input_signature is not None:
            args = tuple(self.input_signature)
        return self._concrete_for(args, kwargs)[0]

    def experimental_get_tracing_count(self) -> int:
        return self._tracing_count

    def __get__(self, instance, owner):
        if instance is None:
            return self
        bound = _bound_functions.setdefault(id(self), weakref.WeakKeyDictionary())
        if instance not in bound:
            bound[instance] = Function(self.python_function.__get__(instance, owner), self.input_signature, self.autograph, name=self.name)
        return bound[instance]

    # -- tracing -----------------------------------------------------------------------------------
    def _callable(self):
        if self.autograph:
            from trainer.graph.autograph import convert  # noqa: PLC0415

            return convert(self.python_function)
        return self.python_function

    def _concrete_for(self, args, kwargs):
        specs, key = self._signature(args, kwargs)
        concrete = self._cache.get(key)
        if concrete is None:
            concrete = self._trace(args, kwargs, specs)
            self._cache[key] = concrete
        tensor_args = [a for a in nest.flatten((args, kwargs)) if isinstance(a, (Tensor, np.ndarray))]
        return concrete, tensor_args

    def _signature(self, args, kwargs):
        """(the specs of the tensor arguments, a hashable cache key for the whole call)."""
        flat = nest.flatten((args, kwargs))
        specs, key = [], []
        tensor_index = 0
        for item in flat:
            if isinstance(item, (Tensor, np.ndarray, TensorSpec)):
                if isinstance(item, TensorSpec):
                    spec = item
                else:
                    tensor = item if isinstance(item, Tensor) else convert_to_tensor(item)
                    spec = TensorSpec(tensor.shape, tensor.dtype)
                if self.input_signature is not None:
                    if tensor_index >= len(self.input_signature):
                        raise TypeError(f"{self.name}: got more tensor arguments than its input_signature lists ({len(self.input_signature)})")
                    declared = self.input_signature[tensor_index]
                    if declared.dtype != spec.dtype or not declared.shape.is_compatible_with(spec.shape):
                        raise TypeError(
                            f"{self.name}: argument {tensor_index} of shape {spec.shape} and dtype {spec.dtype.name} "
                            f"does not match the input_signature {declared}"
                        )
                    spec = declared
                specs.append(spec)
                key.append(("tensor", spec.dtype.name, spec.shape.as_tuple()))
                tensor_index += 1
            else:
                try:
                    hash(item)
                except TypeError:
                    item = repr(item)
                key.append(("python", type(item).__name__, item))
        structure = _structure_key((args, kwargs))
        return specs, (structure, tuple(key))

    def _trace(self, args, kwargs, specs) -> ConcreteFunction:
        self._tracing_count += 1
        self._recent_traces += 1
        if self._recent_traces > RETRACE_WARNING_THRESHOLD and len(self._cache) >= RETRACE_WARNING_THRESHOLD:
            warnings.warn(
                f"{self._recent_traces} calls to {self.name} triggered tf.function retracing. Tracing is expensive: "
                "pass tensors (not Python numbers) that change between calls, or fix the shapes with "
                "input_signature=[tf.TensorSpec([None, ...])]",
                stacklevel=4,
            )
        graph = Graph(self.name)
        builder = GraphBuilder(graph)
        spec_iter = iter(enumerate(specs))
        names = _argument_names(self.python_function, len(specs))

        def to_placeholder(item):
            if isinstance(item, (Tensor, np.ndarray, TensorSpec)):
                index, spec = next(spec_iter)
                name = spec.name or (names[index] if index < len(names) else f"arg{index}")
                return builder.placeholder(spec.shape.as_tuple(), spec.dtype, name)
            return item

        symbolic_args, symbolic_kwargs = nest.map_structure(to_placeholder, (list(args), dict(kwargs)))
        with tracing(builder):
            outputs = self._callable()(*symbolic_args, **symbolic_kwargs)
        flat_outputs = []
        for item in nest.flatten(outputs) if outputs is not None else []:
            if not isinstance(item, Tensor):
                raise TypeError(f"{self.name} returned {type(item).__name__}; a traced function must return tensors (or nests of them)")
            flat_outputs.append(builder.value_of(item))
        graph.outputs = flat_outputs
        graph.check()
        structure = None if outputs is None else nest.pack_sequence_as(outputs, flat_outputs)
        return ConcreteFunction(graph, specs, structure, self.name)


_bound_functions: dict = {}


def _structure_key(structure):
    if isinstance(structure, dict):
        return ("dict", tuple((k, _structure_key(structure[k])) for k in sorted(structure)))
    if isinstance(structure, (list, tuple)):
        return (type(structure).__name__, tuple(_structure_key(item) for item in structure))
    return "leaf"


def _argument_names(function, count: int) -> list[str]:
    try:
        parameters = [p.name for p in inspect.signature(function).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        parameters = []
    return parameters[:count]


def function(func=None, input_signature=None, autograph=True, jit_compile=None, reduce_retracing=False, experimental_relax_shapes=None, name=None):
    """``@tf.function`` / ``tf.function(f)``: a callable that runs ``f`` as a cached graph per signature."""
    if func is None:
        return lambda f: Function(f, input_signature, autograph, jit_compile, reduce_retracing, name)
    return Function(func, input_signature, autograph, jit_compile, reduce_retracing, name)
