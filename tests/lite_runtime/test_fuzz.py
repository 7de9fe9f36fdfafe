"""Mutated lite files: loading, planning and running one may only raise LiteFormatError, never crash or hang.

Mutations aim where parsers break: every integer the reader reads from a valid file (vtable sizes and slots,
table and vector offsets, vector lengths, scalar fields) and every element of the integer vectors it reads
(shapes, tensor indices) is recorded once by watching the reader parse the valid file; a case then overwrites
a few of those with edge values (0, -1, the file size, limits, near misses), splices, flips or truncates.
10,000 such cases run (derandomized when CI=true); a second test builds valid one-operator files for every
kernel on random types, shapes, constants and options, which byte mutations rarely reach. A case that runs
for seconds (a hang) or allocates hundreds of MiB (the address space is capped) fails.
"""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import resource
import signal
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lite_runtime
import trainer as tf
from exporter.lite import to_lite
from lite_runtime import reader, schema
from tests.lite_runtime.harness import load_plan_and_run

L = tf.keras.layers
FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures"
MEMORY_LIMIT = 1 << 20  # the interpreter's own budget for each case
HEADROOM = 256 << 20  # address space a case may add (NumPy included) before an allocation fails as giant
SECONDS_PER_CASE = 5.0  # far above a case's ~1 ms, so only a hang trips it, even on a loaded machine
_FORMATS = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


class _Target:
    """A valid file and the places worth corrupting: integer fields (position, width) and vector elements."""

    def __init__(self, data: bytes):
        self.data = data
        fields, elements = set(), set()
        original_scalar, original_vector = reader._Bytes.scalar, reader._Table._vector

        def scalar(self_, position, kind, what):
            fields.add((position, struct.calcsize(reader._SCALARS[kind])))
            return original_scalar(self_, position, kind, what)

        def vector(self_, slot, item_size, name):
            found = original_vector(self_, slot, item_size, name)
            if found is not None and item_size in (4, 8):
                elements.update((found[0] + item_size * i, item_size) for i in range(found[1]))
            return found

        reader._Bytes.scalar, reader._Table._vector = scalar, vector
        try:
            reader.read_model(data)
        finally:
            reader._Bytes.scalar, reader._Table._vector = original_scalar, original_vector
        self.fields, self.elements = sorted(fields), sorted(elements - fields)
        self.field_choices, self.element_choices = st.sampled_from(self.fields), st.sampled_from(self.elements)


def _edge_values(width: int, current: int, size: int, position: int) -> list[int]:
    """Values that break readers: bounds, near misses, offsets to the file's end, sign flips."""
    top = (1 << (8 * width)) - 1
    values = [0, 1, 2, 3, 4, 7, 8, top, top >> 1, (top >> 1) + 1, size, size - position, size - position - 4,
              2**16, 2**20, 2**31 - 1, current * 2, current >> 1, -current]  # fmt: skip
    values += [current + delta for delta in (-8, -4, -2, -1, 1, 2, 4, 8, 64)]
    return [v & top for v in values]


# Strategies are built once: building them inside each draw costs more than running the case.
_KINDS = st.sampled_from(["field"] * 3 + ["element"] * 4 + ["flip", "splice", "truncate"])
_COUNTS = st.integers(1, 2)
_EDGE_INDICES = st.integers(0, len(_edge_values(1, 0, 0, 0)) - 1)
_RANDOM_VALUES = {width: st.integers(0, (1 << (8 * width)) - 1) for width in _FORMATS}
_BYTES, _SPLICE_LENGTHS = st.integers(1, 255), st.integers(1, 64)


@st.composite
def _mutated(draw, target: _Target) -> bytes:
    data = bytearray(target.data)
    for _ in range(draw(_COUNTS)):
        if not data:
            break
        kind = draw(_KINDS)
        positions = st.integers(0, len(data) - 1)
        if kind in ("field", "element"):
            position, width = draw(target.field_choices if kind == "field" else target.element_choices)
            if position + width > len(data):
                continue
            if draw(st.booleans()):
                current = int.from_bytes(data[position : position + width], "little")
                value = _edge_values(width, current, len(data), position)[draw(_EDGE_INDICES)]
            else:
                value = draw(_RANDOM_VALUES[width])
            struct.pack_into(_FORMATS[width], data, position, value)
        elif kind == "flip":
            data[draw(positions)] ^= draw(_BYTES)
        elif kind == "splice":
            length, source, destination = draw(_SPLICE_LENGTHS), draw(positions), draw(positions)
            data[destination : destination + length] = data[source : source + length]
        else:
            del data[draw(positions) :]
    return bytes(data)


def _exported_cnn() -> bytes:
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([tf.keras.Input((6, 6, 2)), L.Conv2D(3, 3, activation="relu", padding="same"),
                                 L.MaxPooling2D(), L.Reshape((27,)), L.Dense(4, activation="softmax")])  # fmt: skip
    return to_lite(model)


@pytest.fixture(scope="module")
def targets() -> dict[str, _Target]:
    return {"exported cnn": _Target(_exported_cnn()), "tensorflow mlp": _Target((FIXTURES / "tf_small_mlp.tflite").read_bytes())}


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Fails a case that runs for ``seconds`` (a hang) with TimeoutError, which no caller catches."""

    def expire(_signal, _frame):
        raise TimeoutError(f"a fuzz case ran for over {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _load_plan_and_run(data: bytes) -> None:
    """Every public step a user takes, twice (the second time at another batch size); a rejection is fine."""
    with contextlib.suppress(lite_runtime.LiteFormatError):
        load_plan_and_run(data, MEMORY_LIMIT, batches=(None, 2))


@pytest.fixture(scope="module")
def bounded_memory():
    """Caps the address space HEADROOM above today's, so a giant allocation raises MemoryError (a failure)."""
    if not os.path.exists("/proc/self/statm"):  # not Linux: no cap, the interpreter's own limit still holds
        yield
        return
    with open("/proc/self/statm") as statm:
        in_use = int(statm.read().split()[0]) * resource.getpagesize()
    previous = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (in_use + HEADROOM, previous[1]))
    yield
    resource.setrlimit(resource.RLIMIT_AS, previous)


def test_targets_are_valid_and_well_covered(targets):
    for name, target in targets.items():
        load_plan_and_run(target.data, MEMORY_LIMIT, batches=(None, 2))  # must not even raise LiteFormatError
        interpreter = lite_runtime.Interpreter(model_content=target.data)
        interpreter.allocate_tensors()
        interpreter.invoke()
        assert len(target.fields) > 100 and len(target.elements) > 10, name


@settings(max_examples=10_000, deadline=None, database=None, derandomize=os.environ.get("CI") == "true",
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_mutated_files_raise_only_lite_format_error(targets, bounded_memory, data):
    mutated = data.draw(_mutated(targets[data.draw(st.sampled_from(sorted(targets)))]))
    with _time_limit(SECONDS_PER_CASE):
        _load_plan_and_run(mutated)


_TYPES = {"FLOAT32": np.float32, "INT32": np.int32, "INT8": np.int8, "BOOL": np.bool_, "INT64": np.int64}
_SHAPES = st.lists(st.sampled_from([0, 1, 1, 2, 3, 4]), max_size=5).map(tuple)


def _option_value(kind: str):
    if kind == "int32[]":
        return st.lists(st.integers(-2, 4), max_size=4)
    if kind == "float32":
        return st.sampled_from([0.0, 1.0, -1.0, 0.5, 1e30])
    return st.booleans() if kind == "bool" else st.sampled_from([0, 1, 2, 3, -1, 6, 100])


@st.composite
def _one_operator_model(draw) -> bytes:
    """A valid file of one operator with any kernel, on random types, shapes, constants and options."""
    from exporter.lite import schema as writer_schema  # noqa: PLC0415
    from exporter.lite.builder import LiteModel, LiteOperator, LiteTensor, Quantization, serialize  # noqa: PLC0415
    from lite_runtime.kernels import KERNELS  # noqa: PLC0415

    code = draw(st.sampled_from(sorted(KERNELS)))
    model = LiteModel("one operator")
    count = draw(st.integers(1, 3))
    for i in range(count + 1):
        type_name = draw(st.sampled_from(sorted(_TYPES)))
        shape = draw(_SHAPES)
        buffer = 0
        if 0 < i < count and draw(st.booleans()):  # a constant input
            values = draw(st.lists(st.integers(-3, 5), min_size=math.prod(shape), max_size=math.prod(shape)))
            buffer = model.add_buffer(np.array(values).astype(_TYPES[type_name]).tobytes())
        quantization = Quantization([draw(st.sampled_from([0.1, 1.0, 1e-30]))], [draw(st.integers(-3, 3))]) if type_name == "INT8" else None
        model.tensors.append(LiteTensor(f"t{i}", shape, writer_schema.TensorType[type_name], buffer, quantization))
    fields = schema.OPTIONS.get(code, ("", 0, ()))[2]
    options = {name: draw(_option_value(kind)) for name, kind, _default in fields}
    model.operator_codes = [(int(code), 1)]
    model.operators = [LiteOperator(0, list(range(count)), [count], options)]
    model.inputs, model.outputs = [i for i in range(count) if model.tensors[i].buffer == 0], [count]
    return serialize(model)


@settings(max_examples=500, deadline=None, database=None, derandomize=os.environ.get("CI") == "true",
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(data=_one_operator_model())
def test_any_kernel_on_random_shapes_and_options_raises_only_lite_format_error(bounded_memory, data):
    with _time_limit(SECONDS_PER_CASE), np.errstate(all="raise"):  # a warning leaking out of the runtime fails too
        _load_plan_and_run(data)
