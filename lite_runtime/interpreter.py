"""``Interpreter``: runs a lite file with TFLite's Python API, in the states load -> allocate -> invoke.

Loading validates the whole file (``reader``) and checks every operator has a kernel. ``allocate_tensors``
prepares each kernel in order (shapes, parameters, scratch), folds operators whose inputs are all known
before invoke (constants, or SHAPE of a planned tensor), and lays every other tensor out in one arena
(``planner``); a RESHAPE-like operator's output becomes a view of its input and leaves the run. What is left
is a flat list of kernel ``eval`` calls bound to their arena views, so ``invoke`` checks and allocates
nothing: it only makes those calls.
"""

from __future__ import annotations

import math

import numpy as np

from lite_runtime import planner
from lite_runtime.errors import LiteFormatError, LiteStateError
from lite_runtime.reader import open_model_bytes, read_model
from lite_runtime.schema import BuiltinOperator as Op

DEFAULT_MEMORY_LIMIT = 1 << 30
# What a kernel's arithmetic raises on values the file's shapes did not rule out; reported as a bad file.
_KERNEL_ERRORS = (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError)
# Operators whose output is their first input's bytes under another shape: the plan gives the output the
# input's memory and drops the step (as TFLite shares a RESHAPE's buffer), so invoke never runs them.
_VIEW_OPERATORS = frozenset({Op.RESHAPE, Op.SQUEEZE, Op.EXPAND_DIMS})
_ALLOCATE_HINT = "call allocate_tensors() first"


class Interpreter:
    """Runs a lite file (``model_path=`` or ``model_content=``) with NumPy.

    Args:
        model_path: a lite file, memory-mapped; constant tensors are views of the map.
        model_content: the file's bytes instead of a path.
        memory_limit_bytes: the most the arena, scratch and folded tensors may take together.
        experimental_preserve_all_tensors: give every intermediate tensor its own buffer instead of sharing
            the arena by lifetime, so ``get_tensor`` reads any tensor's value after ``invoke`` (as LiteRT's).
        num_threads: accepted as TFLite accepts it (``None``, ``-1`` or a count of at least 1) and kept as
            ``interpreter.num_threads``; it changes nothing. The kernels are NumPy calls, and NumPy's BLAS thread
            count is a setting of the whole process, which an interpreter does not change behind its caller's
            back (set ``OMP_NUM_THREADS`` or use threadpoolctl for that).

    Example:
        >>> interpreter = Interpreter(model_path="mnist.lite")
        >>> interpreter.allocate_tensors()
        >>> interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        >>> interpreter.invoke()
    """

    def __init__(self, model_path=None, model_content=None, memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT,
                 experimental_preserve_all_tensors: bool = False, num_threads: int | None = None):  # fmt: skip
        if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                        or not (num_threads >= 1 or num_threads == -1)):  # fmt: skip
            raise ValueError(f"num_threads should be >= 1 or -1 (let the runtime choose), got {num_threads!r}")
        self.num_threads = num_threads
        self._data = open_model_bytes(model_path, model_content)
        self._model = read_model(self._data)
        # The kernels are imported with the first model, not with the package: they are most of its import time.
        from lite_runtime.kernels import KERNELS  # noqa: PLC0415

        for operator in self._model.operators:
            if operator.code not in KERNELS:
                raise LiteFormatError(f"lite file: operator {operator.index} ({operator.name}) is not supported by lite_runtime")
        self._memory_limit = memory_limit_bytes
        self._preserve_all_tensors = bool(experimental_preserve_all_tensors)
        self._shapes = {i: self._model.tensors[i].shape for i in self._model.inputs}
        self._state = "loaded"
        self._arrays: dict[int, np.ndarray] = {}
        self._input_arrays: dict[int, np.ndarray] = {}  # set_tensor's targets, filled once planned
        self._calls: list = []  # one bound kernel eval per operator left to run at invoke
        self._step_operators: list = []
        self.arena_bytes = 0

    # -- planning ---------------------------------------------------------------------------------------
    def allocate_tensors(self) -> None:
        """Prepares every kernel for the current input shapes and plans the arena (again after a resize)."""
        # Preparing and folding compute on values the file chose: inf and nan are results there, as in invoke.
        with np.errstate(all="ignore"):
            self._prepare_and_plan()

    def _prepare_and_plan(self) -> None:
        model, used = self._model, [0]

        def allocate(shape, dtype, fill=0):
            nbytes = math.prod(shape) * dtype.itemsize
            used[0] += nbytes
            if used[0] > self._memory_limit:
                raise LiteFormatError(f"the model needs over {used[0]} bytes, more than the limit of {self._memory_limit}")
            return np.full(shape, fill, dtype)

        from lite_runtime.kernels import KERNELS, Node, TensorInfo  # noqa: PLC0415 - imported by __init__ already

        infos: dict[int, TensorInfo] = {}
        for tensor in model.tensors:
            if tensor.data is not None and tensor.index not in self._shapes:
                infos[tensor.index] = TensorInfo(tensor.shape, tensor.dtype, tensor.data, tensor.scales, tensor.zero_points,
                                                 tensor.quantized_dimension)  # fmt: skip
        for index, shape in self._shapes.items():
            tensor = model.tensors[index]
            infos[index] = TensorInfo(shape, tensor.dtype, None, tensor.scales, tensor.zero_points, tensor.quantized_dimension)
        pending, producers, extensions = [], {}, {}
        for operator in model.operators:
            kernel = KERNELS[operator.code]
            inputs = [None if i == -1 else infos[i] for i in operator.inputs]
            declared = [TensorInfo(t.shape, t.dtype, None, t.scales, t.zero_points, t.quantized_dimension)
                        for t in (model.tensors[i] for i in operator.outputs)]  # fmt: skip
            node = Node(operator.index, operator.name, inputs, len(operator.outputs), declared, operator.options, allocate)
            try:
                outputs, state = kernel.prepare(node)
            except LiteFormatError:
                raise
            except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, OverflowError) as error:
                raise node.fail(f"cannot prepare: {error}") from error
            for k, (index, (shape, dtype)) in enumerate(zip(operator.outputs, outputs)):
                if np.dtype(dtype) != model.tensors[index].dtype:
                    raise node.fail(f"output {k} (tensor {index}) is {model.tensors[index].dtype} in the file, the kernel computes {dtype}")
                if math.prod(shape) > 2**31 - 1:
                    raise node.fail(f"output shape {list(shape)} is too large")
                infos[index] = TensorInfo(tuple(int(d) for d in shape), np.dtype(dtype), None, declared[k].scales,
                                          declared[k].zero_points, declared[k].quantized_dimension)  # fmt: skip
            known = all(t is None or t.value is not None for t in inputs) or kernel.shapes_only
            if node.extended_input is not None and not known:
                position, elements = node.extended_input
                extensions[operator.index] = (operator.inputs[position], elements)
            if known:
                values = [allocate(infos[i].shape, infos[i].dtype) for i in operator.outputs]
                ins = [None if t is None else t.value for t in inputs]
                self._run(operator, kernel.eval, state, ins, values)
                for index, value in zip(operator.outputs, values):
                    value.flags.writeable = False
                    infos[index].value = value
            else:
                pending.append((operator, kernel, state))
                for index in operator.outputs:
                    producers[index] = len(pending) - 1
        self._plan(infos, pending, producers, extensions, allocate)
        self._state = "allocated"

    def _plan(self, infos, pending, producers, extensions, allocate) -> None:
        model = self._model
        last_step = len(pending)
        lifetimes = {index: [-1, last_step] for index in self._shapes}  # inputs stay readable throughout
        for index, step in producers.items():
            lifetimes[index] = [step, step]
        for step, (operator, _kernel, _state) in enumerate(pending):
            for index in operator.inputs:
                if index in lifetimes:
                    lifetimes[index][1] = max(lifetimes[index][1], step)
        for index in model.outputs:
            if index in lifetimes:
                lifetimes[index][1] = last_step
        aliases = self._view_aliases(infos, pending)
        for index, root in aliases.items():  # a view keeps its root's bytes alive for as long as it is read
            lifetimes[root] = [min(lifetimes[root][0], lifetimes[index][0]), max(lifetimes[root][1], lifetimes[index][1])]
        order = sorted(index for index in lifetimes if index not in aliases)
        # Spare elements after a planned tensor, where a kernel asked for them (Node.extend_input).
        spare = {}
        for tensor, elements in extensions.values():
            root = aliases.get(tensor, tensor)
            if root in lifetimes:
                spare[root] = max(spare.get(root, 0), elements)
        sizes = {i: math.prod(infos[i].shape) * infos[i].dtype.itemsize for i in order}
        requests = [planner.Request(sizes[i] + spare.get(i, 0) * infos[i].dtype.itemsize, *lifetimes[i]) for i in order]
        offsets, total = planner.plan(requests, share=not self._preserve_all_tensors)
        arena = allocate((total,), np.dtype(np.uint8))
        self.arena_bytes = total
        self.intermediate_bytes = sum(r.size for r in requests)
        arrays, extended = {}, {}
        for index, offset, request in zip(order, offsets, requests):
            info = infos[index]
            arrays[index] = arena[offset : offset + sizes[index]].view(info.dtype).reshape(info.shape)
            if index in spare:
                extended[index] = arena[offset : offset + request.size].view(info.dtype)
        for index, root in aliases.items():
            arrays[index] = arrays[root].reshape(infos[index].shape)
            if root in extended:
                extended[index] = extended[root]
        for index, info in infos.items():
            if index not in arrays and info.value is not None:
                arrays[index] = info.value
        self._arrays, self._arena = arrays, arena
        self._input_arrays = {index: arrays[index] for index in self._shapes}
        steps = [(operator, kernel, state) for operator, kernel, state in pending if operator.outputs[0] not in aliases]
        self._step_operators = [operator for operator, _kernel, _state in steps]
        def extended_input(operator):  # the input the kernel asked to extend, with its spare elements, if granted
            tensor, _elements = extensions.get(operator.index, (None, 0))
            return extended.get(tensor)

        self._calls = [self._bind(operator, kernel, state, arrays, extended_input(operator)) for operator, kernel, state in steps]

    @staticmethod
    def _view_aliases(infos, pending) -> dict[int, int]:
        """{output: root} for each view operator whose output can share its (planned) input's bytes."""
        aliases: dict[int, int] = {}
        for operator, _kernel, _state in pending:
            if operator.code not in _VIEW_OPERATORS or len(operator.outputs) != 1 or not operator.inputs:
                continue
            source, target = operator.inputs[0], operator.outputs[0]
            if source == -1 or infos[source].value is not None or infos[source].dtype != infos[target].dtype:
                continue
            if math.prod(infos[source].shape) == math.prod(infos[target].shape):
                aliases[target] = aliases.get(source, source)
        return aliases

    @staticmethod
    def _bind(operator, kernel, state, arrays, extended=None):
        inputs, outputs = [None if i == -1 else arrays[i] for i in operator.inputs], [arrays[i] for i in operator.outputs]
        try:
            return kernel.bound(state, inputs, outputs, extended)
        except _KERNEL_ERRORS as error:
            raise LiteFormatError(f"operator {operator.index} ({operator.name}) cannot run on its planned tensors: {error}") from error

    @staticmethod
    def _run(operator, evaluate, state, inputs, outputs) -> None:
        try:
            evaluate(state, inputs, outputs)
        except _KERNEL_ERRORS as error:
            raise LiteFormatError(f"operator {operator.index} ({operator.name}) failed: {error}") from error

    # -- running ----------------------------------------------------------------------------------------
    def _require(self, call: str) -> None:
        if self._state == "loaded":
            raise LiteStateError(f"{call} needs planned tensors: {_ALLOCATE_HINT}"
                                 + (" (the inputs were resized since)" if self._arrays else ""))  # fmt: skip

    def invoke(self) -> None:
        """Runs every operator once on the tensors set with ``set_tensor``."""
        if self._state == "loaded":
            self._require("invoke()")
        _call_all(self._calls, self._step_operators)
        self._state = "invoked"

    def set_tensor(self, tensor_index: int, value) -> None:
        """Copies ``value`` into an input tensor; its shape and dtype must match the planned tensor."""
        target = self._input_arrays.get(tensor_index)
        if target is not None and type(value) is np.ndarray and value.dtype == target.dtype and value.shape == target.shape:
            target[...] = value  # the common case, checked in one line (a third cheaper than np.copyto's dispatch)
            return
        self._require("set_tensor()")
        if tensor_index not in self._shapes:
            raise ValueError(f"tensor {tensor_index} is not an input (inputs: {sorted(self._shapes)})")
        target = self._arrays[tensor_index]
        value = np.asarray(value)
        if value.dtype != target.dtype:
            raise ValueError(f"tensor {tensor_index} expects {target.dtype}, got {value.dtype}")
        if value.shape != target.shape:
            raise ValueError(
                f"tensor {tensor_index} expects shape {list(target.shape)}, got {list(value.shape)}; "
                "call resize_tensor_input() and allocate_tensors() for another shape"
            )
        np.copyto(target, value)

    def get_tensor(self, tensor_index: int) -> np.ndarray:
        """A copy of a tensor's current value."""
        array = self._arrays.get(tensor_index) if self._state != "loaded" else None
        return (self._array(tensor_index, "get_tensor()") if array is None else array).copy()

    def tensor(self, tensor_index: int):
        """A function returning a view of the tensor's planned buffer (valid until the next allocate_tensors)."""
        array = self._array(tensor_index, "tensor()")
        return lambda: array

    def _array(self, tensor_index: int, call: str) -> np.ndarray:
        self._require(call)
        if not 0 <= tensor_index < len(self._model.tensors):
            raise ValueError(f"tensor index {tensor_index} out of range (model has {len(self._model.tensors)} tensors)")
        if tensor_index not in self._arrays:
            raise ValueError(f"tensor {tensor_index} is not kept by the plan (it is only an operator's scratch)")
        return self._arrays[tensor_index]

    def resize_tensor_input(self, input_index: int, tensor_size, strict: bool = False) -> None:
        """Sets an input's shape (dims that are -1 in its shape_signature may change); re-plans on the next
        ``allocate_tensors``."""
        if input_index not in self._shapes:
            raise ValueError(f"tensor {input_index} is not an input (inputs: {sorted(self._shapes)})")
        shape = tuple(int(d) for d in tensor_size)
        tensor = self._model.tensors[input_index]
        if len(shape) != len(tensor.shape) or any(d < 0 for d in shape):
            raise ValueError(f"input {input_index} has rank {len(tensor.shape)}, cannot resize to {list(shape)}")
        if strict and any(s != -1 and s != d for s, d in zip(tensor.shape_signature, shape)):
            raise ValueError(f"input {input_index} signature {list(tensor.shape_signature)} does not allow {list(shape)}")
        if shape != self._shapes[input_index]:
            self._shapes[input_index] = shape
            self._state = "loaded"
            self._input_arrays = {}

    # -- description ------------------------------------------------------------------------------------
    def _details(self, index: int) -> dict:
        tensor = self._model.tensors[index]
        shape = self._arrays[index].shape if index in self._arrays else self._shapes.get(index, tensor.shape)
        zero_points = tensor.zero_points.astype(np.int32)
        return {
            "name": tensor.name,
            "index": index,
            "shape": np.array(shape, np.int32),
            "shape_signature": np.array(tensor.shape_signature, np.int32),
            "dtype": tensor.dtype.type,
            "quantization": (float(tensor.scales[0]) if len(tensor.scales) else 0.0,
                             int(zero_points[0]) if len(zero_points) else 0),  # fmt: skip
            "quantization_parameters": {
                "scales": tensor.scales.copy(),
                "zero_points": zero_points,
                "quantized_dimension": tensor.quantized_dimension,
            },
            "sparsity_parameters": {},
        }

    def get_input_details(self) -> list[dict]:
        """One dict per input, as TFLite's: name, index, shape, shape_signature, dtype, quantization, ..."""
        return [self._details(i) for i in self._model.inputs]

    def get_output_details(self) -> list[dict]:
        """One dict per output (see ``get_input_details``)."""
        return [self._details(i) for i in self._model.outputs]

    def get_tensor_details(self) -> list[dict]:
        """One dict per tensor of the subgraph, in index order (see ``get_input_details``)."""
        return [self._details(i) for i in range(len(self._model.tensors))]

    def get_signature_list(self) -> dict:
        """``{key: {"inputs": [names], "outputs": [names]}}`` for each signature of subgraph 0."""
        return {key: {"inputs": list(s["inputs"]), "outputs": list(s["outputs"])} for key, s in self._model.signatures.items()}

    def get_signature_runner(self, signature_key: str | None = None) -> SignatureRunner:
        """A callable running one signature with keyword inputs (default: the only one, or serving_default)."""
        signatures = self._model.signatures
        if signature_key is None:
            signature_key = next(iter(signatures)) if len(signatures) == 1 else "serving_default"
        if signature_key not in signatures:
            raise ValueError(f"no signature '{signature_key}' (the model has {sorted(signatures)})")
        return SignatureRunner(self, signatures[signature_key])

    def run(self, inputs):
        """Runs the model on ``inputs``, resizing and re-planning when the batch size changes.

        Args:
            inputs: a list in input order, a dict by signature or tensor name, or — for a model with one
                input — the array itself. Each value is converted to its input's dtype. A floating-point
                value for an int8 or uint8 input that has a scale is quantized as TFLite's QUANTIZE does:
                ``clip(round(x / scale) + zero_point)`` in float32, rounding ties away from zero and clipping
                to the integer type's range. A floating-point value for an integer input without a scale is
                an error, as is a shape whose rank or non-batch dims differ from the input's.

        Returns:
            outputs of the same kind as ``inputs``: a dict by output name for a dict, else a list.
        """
        names = self._input_names()
        if isinstance(inputs, np.ndarray):
            if len(self._model.inputs) != 1:
                raise ValueError(f"the model takes {len(self._model.inputs)} inputs ({sorted(names)}); pass a list or a dict, "
                                 f"got one array of shape {inputs.shape}")  # fmt: skip
            inputs = [inputs]
        if isinstance(inputs, dict):
            unknown = set(inputs) - set(names)
            if unknown:
                raise ValueError(f"unknown inputs {sorted(unknown)}; the model takes {sorted(names)}")
            by_index = {names[name]: value for name, value in inputs.items()}
        else:
            inputs = list(inputs)
            if len(inputs) != len(self._model.inputs):
                raise ValueError(f"the model takes {len(self._model.inputs)} inputs, got {len(inputs)}")
            by_index = dict(zip(self._model.inputs, inputs))
        self._feed(by_index)
        self.invoke()
        outputs = [self.get_tensor(i) for i in self._model.outputs]
        if isinstance(inputs, dict):
            return dict(zip(self._output_names(), outputs))
        return outputs

    def _feed(self, by_index: dict) -> None:
        arrays = {}
        for index, value in by_index.items():
            value = self._convert_input(index, np.asarray(value))
            arrays[index] = value
            self.resize_tensor_input(index, value.shape)
        if self._state == "loaded":
            self.allocate_tensors()
        for index, value in arrays.items():
            self.set_tensor(index, value)

    def _convert_input(self, index: int, value: np.ndarray) -> np.ndarray:
        """``value`` checked against input ``index``'s shape signature and converted (or quantized) to its dtype."""
        tensor = self._model.tensors[index]
        signature = tensor.shape_signature
        # The first dim may always change (TFLite's non-strict resize); the others must match where fixed.
        if value.ndim != len(signature) or any(s != -1 and s != d for s, d in zip(signature[1:], value.shape[1:])):
            dims = ["batch" if k == 0 and d == -1 else "None" if d == -1 else str(d) for k, d in enumerate(signature)]
            expected = f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"
            raise ValueError(
                f"input '{self._input_name(index)}' expects {expected} {tensor.dtype}, got {value.shape} {value.dtype}"
            )
        if value.dtype == tensor.dtype:
            return value
        if np.issubdtype(value.dtype, np.floating) and not np.issubdtype(tensor.dtype, np.floating):
            if tensor.dtype not in (np.dtype(np.int8), np.dtype(np.uint8)) or len(tensor.scales) != 1:
                raise ValueError(
                    f"input '{self._input_name(index)}' is {tensor.dtype} without a quantization scale, got {value.dtype} "
                    f"values; pass {tensor.dtype} values"
                )
            from lite_runtime.kernels.fixed_point import round_half_away  # noqa: PLC0415 - loaded with the kernels

            zero_point = int(tensor.zero_points[0]) if len(tensor.zero_points) else 0
            limits = np.iinfo(tensor.dtype)
            scaled = value.astype(np.float32) / np.float32(tensor.scales[0])
            return np.clip(round_half_away(scaled) + zero_point, limits.min, limits.max).astype(tensor.dtype)
        return value.astype(tensor.dtype)

    def _input_name(self, index: int) -> str:
        signature = self._model.signatures.get("serving_default")
        for name, tensor_index in (signature["inputs"].items() if signature else ()):
            if tensor_index == index:
                return name
        return self._model.tensors[index].name

    def _input_names(self) -> dict[str, int]:
        signature = self._model.signatures.get("serving_default")
        names = {self._model.tensors[i].name: i for i in self._model.inputs}
        if signature:
            names.update(signature["inputs"])
        return names

    def _output_names(self) -> list[str]:
        signature = self._model.signatures.get("serving_default")
        if signature and sorted(signature["outputs"].values()) == sorted(self._model.outputs):
            by_index = {index: name for name, index in signature["outputs"].items()}
            return [by_index[i] for i in self._model.outputs]
        return [self._model.tensors[i].name for i in self._model.outputs]


def _call_each(calls: list, operators: list) -> None:
    """Makes each bound kernel call in order; a kernel's error names its operator."""
    step = 0
    try:
        for step, call in enumerate(calls):
            call()
    except _KERNEL_ERRORS as error:
        raise LiteFormatError(f"operator {operators[step].index} ({operators[step].name}) failed: {error}") from error


try:  # NumPy 2 keeps its floating-point error state in a context variable; np.errstate rebuilds it per call
    from numpy._core._ufunc_config import _extobj_contextvar as _ERROR_STATE

    with np.errstate(all="ignore"):
        _IGNORE_ERRORS = _ERROR_STATE.get()
except ImportError:  # another NumPy: the public way, 0.4 us more per invoke
    _ERROR_STATE = None


def _call_all(calls: list, operators: list) -> None:
    """``_call_each`` with NumPy's floating-point errors ignored: inf and nan are results, as in TFLite."""
    if _ERROR_STATE is None:
        with np.errstate(all="ignore"):
            _call_each(calls, operators)
        return
    token = _ERROR_STATE.set(_IGNORE_ERRORS)
    step = 0
    try:  # _call_each, inlined: a frame is a few percent of a batch-1 invoke
        for step, call in enumerate(calls):
            call()
    except _KERNEL_ERRORS as error:
        raise LiteFormatError(f"operator {operators[step].index} ({operators[step].name}) failed: {error}") from error
    finally:
        _ERROR_STATE.reset(token)


class SignatureRunner:
    """One signature of an ``Interpreter``: call it with keyword inputs by signature name; returns a dict."""

    def __init__(self, interpreter: Interpreter, signature: dict):
        self._interpreter, self._signature = interpreter, signature

    def get_input_details(self) -> dict:
        return {name: self._interpreter._details(i) for name, i in self._signature["inputs"].items()}

    def get_output_details(self) -> dict:
        return {name: self._interpreter._details(i) for name, i in self._signature["outputs"].items()}

    def __call__(self, **inputs) -> dict:
        expected = self._signature["inputs"]
        if set(inputs) != set(expected):
            raise ValueError(f"signature inputs are {sorted(expected)}, got {sorted(inputs)}")
        self._interpreter._feed({expected[name]: value for name, value in inputs.items()})
        self._interpreter.invoke()
        return {name: self._interpreter.get_tensor(i) for name, i in self._signature["outputs"].items()}
