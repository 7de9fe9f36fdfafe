"""Element types of tensors: ``tf.float32`` and friends, mapped onto NumPy dtypes."""

from __future__ import annotations

import numpy as np


class DType:
    """An element type, such as ``tf.float32``; compares equal to its name and NumPy dtype."""

    __slots__ = ("name", "as_numpy_dtype", "_np")

    def __init__(self, name: str, numpy_type):
        self.name = name
        self.as_numpy_dtype = numpy_type
        self._np = np.dtype(numpy_type)

    @property
    def is_floating(self) -> bool:
        return self._np.kind == "f"

    @property
    def is_integer(self) -> bool:
        return self._np.kind in "iu"

    @property
    def is_unsigned(self) -> bool:
        return self._np.kind == "u"

    @property
    def is_bool(self) -> bool:
        return self._np.kind == "b"

    @property
    def size(self) -> int:
        return self._np.itemsize

    @property
    def min(self):
        return np.finfo(self._np).min if self.is_floating else (False if self.is_bool else np.iinfo(self._np).min)

    @property
    def max(self):
        return np.finfo(self._np).max if self.is_floating else (True if self.is_bool else np.iinfo(self._np).max)

    @property
    def base_dtype(self) -> "DType":
        return self

    def __eq__(self, other) -> bool:
        if other is self:
            return True
        try:
            return as_dtype(other) is self
        except TypeError:
            return False

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"tf.{self.name}"


float16 = DType("float16", np.float16)
float32 = DType("float32", np.float32)
float64 = DType("float64", np.float64)
int8 = DType("int8", np.int8)
uint8 = DType("uint8", np.uint8)
int16 = DType("int16", np.int16)
int32 = DType("int32", np.int32)
int64 = DType("int64", np.int64)
bool_ = DType("bool", np.bool_)
half, double = float16, float64

ALL_DTYPES = (float16, float32, float64, int8, uint8, int16, int32, int64, bool_)
_BY_NUMPY = {d._np: d for d in ALL_DTYPES}
_BY_NAME = {d.name: d for d in ALL_DTYPES}
_BY_NAME.update({"half": float16, "float": float32, "double": float64, "bool_": bool_})


def as_dtype(value) -> DType:
    """Converts a ``DType``, a name (``"float32"``) or a NumPy dtype into a ``DType``."""
    if isinstance(value, DType):
        return value
    if isinstance(value, str):
        found = _BY_NAME.get(value)
        if found is None:
            raise TypeError(f"unknown dtype {value!r}; emberflow supports {', '.join(d.name for d in ALL_DTYPES)}")
        return found
    if value is float:
        return float32
    if value is int:
        return int32
    if value is bool:
        return bool_
    try:
        found = _BY_NUMPY.get(np.dtype(value))
    except TypeError:
        found = None
    if found is None:
        raise TypeError(
            f"dtype {value!r} is not supported by emberflow; use one of {', '.join(d.name for d in ALL_DTYPES)}"
        )
    return found


def of_array(array) -> DType:
    """The ``DType`` of a NumPy or CuPy array (fast path for the op dispatcher)."""
    found = _BY_NUMPY.get(array.dtype)
    if found is None:
        raise TypeError(f"arrays of dtype {array.dtype} are not supported by emberflow")
    return found
