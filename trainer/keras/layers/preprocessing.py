"""Preprocessing layers that live inside the model: Rescaling and (adaptable) Normalization."""

from __future__ import annotations

import math

import numpy as np

from trainer import nest
from trainer.keras import backend
from trainer.keras.layers.base import Layer
from trainer.keras.saving.registration import keras_serializable
from trainer.ops import array_ops, math_ops
from trainer.shapes import TensorShape
from trainer.tensor import Tensor, convert_to_tensor


def _constant(value, dtype):
    """A Python number stays a number (ops give it the input's dtype); arrays become tensors of ``dtype``."""
    if isinstance(value, (int, float)):
        return float(value)
    return convert_to_tensor(np.asarray(value), dtype=dtype)


def _config_value(value):
    return value if isinstance(value, (int, float)) or value is None else np.asarray(value).tolist()


@keras_serializable("layers")
class Rescaling(Layer):
    """Multiplies inputs by ``scale`` and adds ``offset``: ``Rescaling(1 / 255)`` maps pixels to [0, 1].

    Integer inputs (``uint8`` images) are cast to the layer's dtype first.

    Args:
        scale: a number, or per-channel values that broadcast against the input.
        offset: a number or per-channel values added after scaling.

    Example:
        >>> tf.keras.layers.Rescaling(1 / 127.5, offset=-1)(tf.constant([[0, 255]], tf.uint8)).numpy()
        array([[-1.,  1.]], dtype=float32)
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.offset = offset

    def call(self, inputs):
        outputs = math_ops.multiply(inputs, _constant(self.scale, self._dtype))
        return math_ops.add(outputs, _constant(self.offset, self._dtype))

    def compute_output_shape(self, input_shape):
        return TensorShape(input_shape)

    def get_config(self):
        return {**super().get_config(), "scale": _config_value(self.scale), "offset": _config_value(self.offset)}


@keras_serializable("layers")
class Normalization(Layer):
    """Standardizes features to zero mean and unit variance, with statistics given or learned by ``adapt``.

    The output is ``(x - mean) / max(sqrt(variance), epsilon)`` (``epsilon`` = 1e-7), or the inverse
    ``mean + x * max(sqrt(variance), epsilon)`` with ``invert=True``. The statistics are per index of
    the kept ``axis`` (the last by default) and are stored as the non-trainable weights ``mean`` and
    ``variance`` when learned by ``adapt``.

    Args:
        axis: the axis or axes that keep separate statistics; ``None`` means one mean and variance
            for everything.
        mean, variance: fixed statistics (both or neither) that broadcast against the kept axes.
        invert: undo the normalization instead of applying it.

    Example:
        >>> layer = tf.keras.layers.Normalization()
        >>> layer.adapt(np.array([[0.0, 10.0], [2.0, 30.0]]))
        >>> layer(np.array([[1.0, 20.0]])).numpy()
        array([[0., 0.]], dtype=float32)
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        elif isinstance(axis, int):
            axis = (axis,)
        self.axis = tuple(int(a) for a in axis)
        if (mean is None) != (variance is None):
            raise ValueError(
                f"When setting values directly, both `mean` and `variance` must be set. Received: mean={mean} and variance={variance}"
            )
        self.input_mean, self.input_variance = mean, variance
        self.invert = bool(invert)
        self.adapt_mean = self.adapt_variance = None

    def build(self, input_shape):
        input_shape = TensorShape(input_shape).as_list()
        rank = len(input_shape)
        if any(not -rank <= a < rank for a in self.axis):
            raise ValueError(
                f"Normalization '{self.name}': every axis must lie in [-{rank}, {rank}) for inputs of rank {rank}, got axis={self.axis}"
            )
        keep = sorted({a % rank for a in self.axis})
        for a in keep:
            if input_shape[a] is None:
                raise ValueError(
                    f"Normalization '{self.name}': the kept axes must have a known size, got axis={self.axis} "
                    f"and input shape {TensorShape(input_shape)} (axis {a} is unknown)"
                )
        self._keep_axis = tuple(keep)
        self._reduce_axis = tuple(i for i in range(rank) if i not in keep)
        self._statistics_shape = tuple(input_shape[a] for a in keep)
        self._broadcast_shape = tuple(input_shape[i] if i in keep else 1 for i in range(rank))
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(
                name="mean", shape=self._statistics_shape, initializer="zeros", trainable=False
            )
            self.adapt_variance = self.add_weight(
                name="variance", shape=self._statistics_shape, initializer="ones", trainable=False
            )
        else:
            self._fixed_mean = self._fixed_statistic(self.input_mean, "mean")
            self._fixed_variance = self._fixed_statistic(self.input_variance, "variance")
        self.built = True

    def _fixed_statistic(self, value, what):
        array = np.asarray(value, dtype=self._dtype.as_numpy_dtype)
        try:
            return convert_to_tensor(np.broadcast_to(array, self._broadcast_shape).copy())
        except ValueError:
            raise ValueError(
                f"Normalization '{self.name}': {what} of shape {array.shape} does not broadcast to {self._broadcast_shape}"
            ) from None

    def _statistics(self):
        if self.adapt_mean is None:
            return self._fixed_mean, self._fixed_variance
        return array_ops.reshape(self.adapt_mean, self._broadcast_shape), array_ops.reshape(
            self.adapt_variance, self._broadcast_shape
        )

    def call(self, inputs):
        mean, variance = self._statistics()
        spread = math_ops.maximum(math_ops.sqrt(variance), backend.epsilon())
        if self.invert:
            return math_ops.add(mean, math_ops.multiply(inputs, spread))
        return math_ops.divide(math_ops.subtract(inputs, mean), spread)

    def adapt(self, data, batch_size=None, steps=None):
        """Computes the mean and variance of ``data`` per index of the kept axes and stores them.

        Args:
            data: a NumPy array, a tensor, or a ``tf.data.Dataset`` of batches (a dataset of scalars or
                rank-1 elements is read in batches of 128, as Keras does for rank 1).
            batch_size: read an array in batches of this many samples (all at once by default).
            steps: read at most this many batches.
        """
        if self.input_mean is not None:
            raise ValueError(
                f"Normalization '{self.name}' was given mean= and variance=; adapt() cannot change fixed statistics"
            )
        batches, input_shape = _batches(data, batch_size, self.name)
        if not self.built:
            self._maybe_build_from_shape(input_shape)
            self._build_input_shape = TensorShape(input_shape)
        else:
            self._check_adapt_shape(input_shape)
        count, mean, squares = 0, np.zeros(self._statistics_shape), np.zeros(self._statistics_shape)
        for step, batch in enumerate(batches):
            if steps is not None and step >= steps:
                break
            batch = np.asarray(batch, dtype=np.float64)
            self._check_adapt_shape(batch.shape)
            batch_count = math.prod(batch.shape[a] for a in self._reduce_axis)
            if batch_count == 0:
                continue
            batch_mean = batch.mean(axis=self._reduce_axis)
            batch_squares = ((batch - batch_mean.reshape(self._broadcast_shape)) ** 2).sum(axis=self._reduce_axis)
            # Chan et al.'s pairwise update: exact for any split of the data into batches.
            total = count + batch_count
            delta = batch_mean - mean
            mean = mean + delta * (batch_count / total)
            squares = squares + batch_squares + delta**2 * (count * batch_count / total)
            count = total
        if count == 0:
            raise ValueError(f"Normalization '{self.name}'.adapt received no data")
        self.adapt_mean.assign(mean.astype(self._dtype.as_numpy_dtype))
        self.adapt_variance.assign((squares / count).astype(self._dtype.as_numpy_dtype))

    def _check_adapt_shape(self, shape) -> None:
        shape = tuple(shape)
        if len(shape) != len(self._broadcast_shape) or any(
            shape[a] is not None and shape[a] != self._broadcast_shape[a] for a in self._keep_axis
        ):
            raise ValueError(
                f"Normalization '{self.name}' was built for inputs of shape {TensorShape(self._build_input_shape or self._broadcast_shape)} "
                f"(kept axes {self._keep_axis}), but adapt() received data of shape {TensorShape(shape)}"
            )

    def compute_output_shape(self, input_shape):
        return TensorShape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": list(self.axis),
            "mean": _config_value(self.input_mean),
            "variance": _config_value(self.input_variance),
            "invert": self.invert,
        }


def _batches(data, batch_size, layer_name):
    """(an iterable of array batches, the batch shape with ``None`` for the sample axis) for ``adapt``."""
    if hasattr(data, "element_spec") and hasattr(data, "__iter__"):
        spec = data.element_spec
        if nest.is_nested(spec):
            raise ValueError(
                f"Normalization '{layer_name}'.adapt needs a dataset of single tensors, got elements of structure {spec}"
            )
        shape = TensorShape(spec.shape).as_list()
        if len(shape) <= 1:  # unbatched scalars or feature vectors
            data = data.batch(128)
            shape = TensorShape(data.element_spec.shape).as_list()
        return (np.asarray(_numpy(batch)) for batch in data), [None] + shape[1:]
    array = np.asarray(_numpy(data))
    if array.ndim == 0:
        raise ValueError(f"Normalization '{layer_name}'.adapt needs data with a batch axis, got a scalar")
    if batch_size is None:
        return [array], [None] + list(array.shape[1:])
    batch_size = int(batch_size)
    return (array[start : start + batch_size] for start in range(0, len(array), batch_size)), [None] + list(
        array.shape[1:]
    )


def _numpy(value):
    return value.numpy() if isinstance(value, Tensor) else value
