"""Merging layers: combine a list of tensors elementwise (Add, Multiply, ...) or by Concatenate."""

from __future__ import annotations

from functools import reduce

from trainer.keras.layers.base import Layer
from trainer.keras.saving.registration import keras_serializable
from trainer.ops import array_ops, math_ops
from trainer.shapes import TensorShape


def _shape_text(shape) -> str:
    return str(TensorShape(shape))


class _Merge(Layer):
    """Base of the elementwise merge layers: checks that the input shapes broadcast, then folds ``_merge``."""

    _min_inputs = 1
    _max_inputs = None

    def build(self, input_shape):
        shapes = self._input_shapes(input_shape)
        self._output_sample_shape(shapes)
        self.built = True

    def _input_shapes(self, input_shape) -> list:
        kind = type(self).__name__
        if not isinstance(input_shape, (list, tuple)) or not all(
            isinstance(s, (list, tuple, TensorShape)) for s in input_shape
        ):
            raise ValueError(
                f"{kind} layer '{self.name}' should be called on a list of inputs, got input shape {input_shape}"
            )
        shapes = [TensorShape(s).as_list() for s in input_shape]
        count = len(shapes)
        if count < self._min_inputs or (self._max_inputs is not None and count > self._max_inputs):
            expected = (
                f"exactly {self._max_inputs}"
                if self._min_inputs == self._max_inputs
                else f"at least {self._min_inputs}"
            )
            raise ValueError(
                f"{kind} layer '{self.name}' should be called on {expected} inputs, got {count}: {', '.join(map(_shape_text, shapes))}"
            )
        return shapes

    def _output_sample_shape(self, shapes) -> list:
        """The broadcast of all ``shapes`` (NumPy rules, ``None`` unknown); raises naming the layer and shapes."""
        rank = max(len(s) for s in shapes)
        result = []
        for position in range(-rank, 0):
            dims = {s[position] for s in shapes if len(s) >= -position}
            known = dims - {None, 1}
            if len(known) > 1:
                raise ValueError(
                    f"{type(self).__name__} layer '{self.name}' got inputs with incompatible shapes "
                    f"{' and '.join(map(_shape_text, shapes))}: dimension {rank + position} differs ({', '.join(map(str, sorted(known)))})"
                )
            result.append(known.pop() if known else (None if None in dims else 1))
        return result

    def call(self, inputs):
        self._output_sample_shape(self._input_shapes([t.shape for t in inputs]))
        return self._merge(list(inputs))

    def _merge(self, inputs):
        return reduce(self._combine, inputs)

    def compute_output_shape(self, input_shape):
        return TensorShape(self._output_sample_shape(self._input_shapes(input_shape)))


@keras_serializable("layers")
class Add(_Merge):
    """Adds a list of inputs elementwise: ``Add()([a, b])`` is ``a + b``.

    Example:
        >>> tf.keras.layers.Add()([tf.ones((2, 3)), tf.ones((2, 3))]).numpy()[0]
        array([2., 2., 2.], dtype=float32)
    """

    _combine = staticmethod(math_ops.add)


@keras_serializable("layers")
class Subtract(_Merge):
    """Subtracts the second of exactly two inputs from the first.

    Example:
        >>> tf.keras.layers.Subtract()([tf.ones((2, 3)), tf.ones((2, 3))]).numpy()[0]
        array([0., 0., 0.], dtype=float32)
    """

    _min_inputs = _max_inputs = 2
    _combine = staticmethod(math_ops.subtract)


@keras_serializable("layers")
class Multiply(_Merge):
    """Multiplies a list of inputs elementwise.

    Example:
        >>> tf.keras.layers.Multiply()([tf.fill((2, 3), 2.0), tf.fill((2, 3), 3.0)]).numpy()[0]
        array([6., 6., 6.], dtype=float32)
    """

    _combine = staticmethod(math_ops.multiply)


@keras_serializable("layers")
class Average(_Merge):
    """Averages a list of inputs elementwise.

    Example:
        >>> tf.keras.layers.Average()([tf.zeros((2, 3)), tf.ones((2, 3))]).numpy()[0]
        array([0.5, 0.5, 0.5], dtype=float32)
    """

    def _merge(self, inputs):
        return math_ops.multiply(reduce(math_ops.add, inputs), 1.0 / len(inputs))


@keras_serializable("layers")
class Maximum(_Merge):
    """The elementwise maximum of a list of inputs.

    Example:
        >>> tf.keras.layers.Maximum()([tf.constant([[1.0, 5.0]]), tf.constant([[3.0, 2.0]])]).numpy()
        array([[3., 5.]], dtype=float32)
    """

    _combine = staticmethod(math_ops.maximum)


@keras_serializable("layers")
class Minimum(_Merge):
    """The elementwise minimum of a list of inputs.

    Example:
        >>> tf.keras.layers.Minimum()([tf.constant([[1.0, 5.0]]), tf.constant([[3.0, 2.0]])]).numpy()
        array([[1., 2.]], dtype=float32)
    """

    _combine = staticmethod(math_ops.minimum)


@keras_serializable("layers")
class Concatenate(_Merge):
    """Joins a list of inputs along ``axis``; all other dimensions must match.

    Args:
        axis: the axis to join along (the last by default).

    Example:
        >>> tf.keras.layers.Concatenate()([tf.zeros((2, 3)), tf.zeros((2, 4))]).shape
        TensorShape([2, 7])
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _output_sample_shape(self, shapes) -> list:
        rank = len(shapes[0])
        if not -rank <= self.axis < max(rank, 1):
            raise ValueError(
                f"Concatenate layer '{self.name}': axis {self.axis} is out of range for inputs of shape {_shape_text(shapes[0])}"
            )
        axis = self.axis % rank if rank else 0
        mismatch = any(len(s) != rank for s in shapes)
        result = list(shapes[0])
        for shape in shapes[1:]:
            if mismatch:
                break
            for i, (a, b) in enumerate(zip(result, shape)):
                if i == axis:
                    result[i] = None if a is None or b is None else a + b
                elif a is not None and b is not None and a != b:
                    mismatch = True
                else:
                    result[i] = a if a is not None else b
        if mismatch:
            raise ValueError(
                f"Concatenate layer '{self.name}' requires inputs with matching shapes except for the "
                f"concatenation axis {self.axis}, got shapes {' and '.join(map(_shape_text, shapes))}"
            )
        return result

    def _merge(self, inputs):
        return array_ops.concat(inputs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def add(inputs, **kwargs):
    """Functional form of ``Add``: ``tf.keras.layers.add([a, b])``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """Functional form of ``Subtract``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """Functional form of ``Multiply``."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """Functional form of ``Average``."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """Functional form of ``Maximum``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """Functional form of ``Minimum``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """Functional form of ``Concatenate``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
