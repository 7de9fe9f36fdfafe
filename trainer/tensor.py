"""``Tensor``: an immutable n-dimensional array on a device, or a symbolic placeholder while tracing.

An eager tensor holds a NumPy or CuPy array in ``_value``. A symbolic tensor (a Keras ``Input``, or a
value inside a traced function) has ``_value is None`` and carries only its static shape and dtype;
ops on it go through shape inference instead of kernels (see ``trainer.ops.registry.execute``).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from trainer import backend, dtypes
from trainer.shapes import TensorShape

Spec = namedtuple("Spec", "shape dtype")  # shape: tuple of int|None; dtype: DType
Spec.__doc__ = "What shape inference sees of a tensor: a plain shape tuple and a DType."


class Tensor:
    """A multi-dimensional array with a dtype, a (static) shape and a device, like ``tf.Tensor``."""

    # _keras_logits: set (only) on a Keras softmax activation's output, as Keras 3 does; crossentropy losses
    # then start from the logits (unset elsewhere: read it with getattr(tensor, "_keras_logits", None)).
    __slots__ = ("_value", "_static_shape", "_static_dtype", "_producer", "_keras_history", "_keras_logits", "__weakref__")
    __array_ufunc__ = None  # numpy defers `ndarray + tensor` to Tensor.__radd__
    __array_priority__ = 100
    _is_variable = False

    def __init__(self, value):
        self._value = value
        self._static_shape = None
        self._static_dtype = None
        self._producer = None
        self._keras_history = None

    @classmethod
    def symbolic(cls, shape, dtype, producer=None) -> "Tensor":
        """A placeholder with a known dtype and a shape that may contain ``None``."""
        tensor = cls.__new__(cls)
        tensor._value = None
        tensor._static_shape = tuple(shape)
        tensor._static_dtype = dtypes.as_dtype(dtype)
        tensor._producer = producer
        tensor._keras_history = None
        return tensor

    # -- what a tensor is -------------------------------------------------------------------------
    @property
    def is_symbolic(self) -> bool:
        return self._value is None

    @property
    def spec(self) -> Spec:
        if self._value is None:
            return Spec(self._static_shape, self._static_dtype)
        return Spec(self._value.shape, dtypes.of_array(self._value))

    @property
    def shape(self) -> TensorShape:
        return TensorShape(self._static_shape if self._value is None else self._value.shape)

    @property
    def dtype(self) -> dtypes.DType:
        return self._static_dtype if self._value is None else dtypes.of_array(self._value)

    @property
    def ndim(self) -> int:
        return len(self._static_shape) if self._value is None else self._value.ndim

    rank = ndim

    @property
    def device(self) -> str:
        if self._value is None:
            return ""
        return "/job:localhost/replica:0/task:0/device:" + backend.device_of(self._value)

    def get_shape(self) -> TensorShape:
        return self.shape

    def numpy(self) -> np.ndarray:
        """The value as a NumPy array (copied from the GPU when the tensor lives there)."""
        self._require_value("numpy()")
        return backend.to_numpy(self._value)

    def cpu(self) -> "Tensor":
        return Tensor(backend.to_device(self._require_value("cpu()"), backend.CPU))

    def gpu(self) -> "Tensor":
        return Tensor(backend.to_device(self._require_value("gpu()"), backend.GPU))

    def _require_value(self, what: str):
        if self._value is None:
            raise TypeError(
                f"{what} needs a concrete value, but this is a symbolic tensor of shape "
                f"{self.shape} ({self.dtype.name}) from a traced function or a Keras Input"
            )
        return self._value

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        return array if dtype is None else array.astype(dtype, copy=False)

    def ref(self):
        """A hashable reference to this tensor (tensors themselves compare elementwise)."""
        return _Reference(self)

    # -- Python protocol --------------------------------------------------------------------------
    def __repr__(self) -> str:
        if self._value is None:
            return f"<tf.Tensor shape={self.shape} dtype={self.dtype.name}>"
        body = _format_values(self.numpy())
        if "\n" in body:
            body = "\n" + body
        return f"<tf.Tensor: shape={self.shape}, dtype={self.dtype.name}, numpy={body}>"

    def __str__(self) -> str:
        if self._value is None:
            return repr(self)
        return f"tf.Tensor({_format_values(self.numpy())}, shape={self.shape}, dtype={self.dtype.name})"

    def __len__(self) -> int:
        dims = self.shape.as_tuple()
        if not dims:
            raise TypeError("len() of a scalar (rank-0) tensor")
        if dims[0] is None:
            raise TypeError("len() of a tensor whose first dimension is unknown; use tf.shape(x)[0]")
        return dims[0]

    def __iter__(self):
        dims = self.shape.as_tuple()
        if not dims:
            raise TypeError("iterating over a scalar (rank-0) tensor is not allowed")
        if dims[0] is None:
            raise TypeError("cannot iterate over a tensor whose first dimension is unknown while tracing")
        return (self[i] for i in range(dims[0]))

    def __bool__(self) -> bool:
        value = self._require_value("Using a tensor as a Python bool")
        if value.size != 1:
            raise ValueError(
                f"The truth value of a tensor with shape {self.shape} is ambiguous; use tf.reduce_any or tf.reduce_all"
            )
        return bool(value.reshape(()))

    def __float__(self) -> float:
        return float(self._require_value("float()").reshape(()))

    def __int__(self) -> int:
        return int(self._require_value("int()").reshape(()))

    def __index__(self) -> int:
        value = self._require_value("Using a tensor as an index")
        if value.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, got {self.dtype.name}")
        return int(value.reshape(()))

    def __hash__(self):
        raise TypeError("Tensor is unhashable. Instead, use tensor.ref() as the key.")

    # Operators are bound to the registered ops at the bottom of this module.


def _format_values(array: np.ndarray) -> str:
    if array.ndim == 0:
        return str(array[()])  # NumPy scalars print as TensorFlow does: 3.0, not 3.
    return np.array2string(array, separator=" ", threshold=200, edgeitems=3)


class _Reference:
    """What ``Tensor.ref()`` returns: hashable by identity, ``deref()`` gives the tensor back."""

    __slots__ = ("_tensor",)

    def __init__(self, tensor):
        self._tensor = tensor

    def deref(self):
        return self._tensor

    def __hash__(self):
        return id(self._tensor)

    def __eq__(self, other):
        return isinstance(other, _Reference) and other._tensor is self._tensor


def _python_value_dtype(value, dtype_hint):
    """TensorFlow's rule: Python floats are float32 and ints int32, unless a compatible hint says more."""
    array = np.asarray(value)
    kind = array.dtype.kind
    if kind in "USO":
        raise TypeError(
            f"cannot convert {type(value).__name__} value {value!r:.60} to a tensor: "
            "string and object tensors are not supported by emberflow (encode labels as integers)"
        )
    if dtype_hint is not None:
        hint = dtypes.as_dtype(dtype_hint)
        if kind == "b" and hint.is_bool:
            return hint
        if kind in "iu" and (hint.is_integer or hint.is_floating):
            return hint
        if kind == "f" and hint.is_floating:
            return hint
    if kind == "f":
        return dtypes.float32
    if kind in "iu":
        return dtypes.int32 if array.dtype.itemsize <= 4 or _fits_int32(array) else dtypes.int64
    if kind == "b":
        return dtypes.bool_
    return dtypes.as_dtype(array.dtype)


def _fits_int32(array) -> bool:
    return array.size == 0 or (array.min() >= -(2**31) and array.max() < 2**31)


def convert_to_tensor(value, dtype=None, dtype_hint=None, name=None) -> Tensor:
    """Converts tensors, NumPy/CuPy arrays and Python values to a ``Tensor`` on the current device.

    Python numbers follow TensorFlow: floats become float32 and ints int32 unless ``dtype`` (or a
    compatible ``dtype_hint``) says otherwise. Arrays keep their dtype.
    """
    del name
    if isinstance(value, Tensor):
        if dtype is not None and value.dtype != dtypes.as_dtype(dtype):
            raise TypeError(
                f"Tensor conversion requested dtype {dtypes.as_dtype(dtype).name} for a tensor of dtype {value.dtype.name}"
            )
        return value
    xp = backend.default_module()
    if isinstance(value, np.ndarray) or (backend.cupy_in_use and type(value).__module__.startswith("cupy")):
        target = value.dtype if dtype is None else dtypes.as_dtype(dtype).as_numpy_dtype
        if value.dtype.kind in "USO":
            raise TypeError(
                f"cannot convert an array of dtype {value.dtype} to a tensor: string and object tensors are "
                "not supported by emberflow (encode labels as integers)"
            )
        array = xp.asarray(value, dtype=target)
        dtypes.of_array(array)  # rejects unsupported dtypes (complex, ...) with a clear message
        return Tensor(array)
    if isinstance(value, (list, tuple)) and any(isinstance(item, Tensor) for item in value):
        from trainer.ops import array_ops  # noqa: PLC0415 - packing tensors needs the op layer

        return array_ops.stack([convert_to_tensor(item, dtype=dtype, dtype_hint=dtype_hint) for item in value])
    if isinstance(value, np.generic):
        target = dtypes.as_dtype(dtype) if dtype is not None else dtypes.as_dtype(value.dtype)
    else:
        target = dtypes.as_dtype(dtype) if dtype is not None else _python_value_dtype(value, dtype_hint)
    array = np.asarray(value)
    if array.dtype.kind in "USO":
        _python_value_dtype(value, None)  # raises the string/object error
    if dtype is not None and array.dtype.kind == "f" and target.is_integer:
        raise TypeError(f"cannot convert {value!r:.60} to {target.name} without losing the fraction; cast explicitly")
    return Tensor(xp.asarray(array, dtype=target.as_numpy_dtype))


def constant(value, dtype=None, shape=None, name=None) -> Tensor:
    """``tf.constant``: a tensor from a Python value or array, optionally reshaped or broadcast."""
    tensor = convert_to_tensor(value, dtype=dtype, name=name)
    if isinstance(value, Tensor):
        tensor = Tensor(value._require_value("tf.constant").copy())
    if shape is not None:
        dims = tuple(TensorShape(shape).as_list())
        array = tensor._value
        if array.size == 1:
            array = backend.module_of(array).broadcast_to(array.reshape(()), dims).copy()
        elif array.size == int(np.prod(dims)):
            array = array.reshape(dims)
        else:
            raise TypeError(f"tf.constant: cannot reshape a value with {array.size} elements to shape {list(dims)}")
        tensor = Tensor(array)
    return tensor


from trainer.ops import _operators  # noqa: E402 - binds +, -, [], ... once the op layer exists

_operators.install(Tensor)
