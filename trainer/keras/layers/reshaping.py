"""Reshaping layers: Reshape, Permute, RepeatVector, ZeroPadding2D, Cropping2D, UpSampling2D."""

from __future__ import annotations

import math

from trainer.keras.layers.base import InputSpec, Layer
from trainer.keras.saving.registration import keras_serializable
from trainer.ops import array_ops
from trainer.shapes import TensorShape


def _resolve_target_shape(layer, sample_shape, target_shape) -> tuple:
    """``target_shape`` with its -1 replaced by the size that keeps the element count (``None`` if unknowable)."""
    unknown = [i for i, d in enumerate(target_shape) if d == -1]
    fixed = math.prod(d for d in target_shape if d != -1)
    if None in sample_shape:
        return tuple(None if d == -1 else d for d in target_shape)
    total = math.prod(sample_shape)
    if (not unknown and total != fixed) or (unknown and (fixed == 0 or total % fixed)):
        raise ValueError(
            f"Reshape '{layer.name}': the total size of the tensor must be unchanged, but input shape "
            f"{TensorShape([None, *sample_shape])} ({total} values per sample) cannot become target_shape {target_shape}"
        )
    return tuple(total // fixed if d == -1 else d for d in target_shape)


@keras_serializable("layers")
class Reshape(Layer):
    """Reshapes every sample to ``target_shape``; the batch dimension is kept as it is.

    Args:
        target_shape: the new shape of one sample (without the batch); one entry may be -1.

    Example:
        >>> tf.keras.layers.Reshape((-1, 4))(tf.zeros((2, 12))).shape
        TensorShape([2, 3, 4])
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target_shape = tuple(int(d) for d in target_shape)
        if target_shape.count(-1) > 1 or any(d < -1 for d in target_shape):
            raise ValueError(
                f"Reshape target_shape may contain at most one -1 and no other negative sizes, got {target_shape}"
            )
        self.target_shape = target_shape

    def call(self, inputs):
        sample_shape = inputs.shape.as_list()[1:]
        resolved = _resolve_target_shape(self, sample_shape, self.target_shape)
        if None not in resolved:
            return array_ops.reshape(inputs, (-1, *resolved))
        batch = inputs.shape[0]
        if batch is None:
            raise ValueError(
                f"Reshape '{self.name}' cannot infer the -1 in target_shape {self.target_shape} from input shape "
                f"{inputs.shape}: give the non-batch dimensions of the input known sizes"
            )
        return array_ops.reshape(inputs, (batch, *self.target_shape))

    def compute_output_shape(self, input_shape):
        dims = TensorShape(input_shape).as_list()
        return TensorShape([dims[0], *_resolve_target_shape(self, dims[1:], self.target_shape)])

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


@keras_serializable("layers")
class Permute(Layer):
    """Reorders the non-batch axes: ``Permute((2, 1))`` swaps the two axes of each sample.

    Args:
        dims: a permutation of 1..rank-1 (the batch axis, 0, never moves).

    Example:
        >>> tf.keras.layers.Permute((2, 1))(tf.zeros((4, 10, 64))).shape
        TensorShape([4, 64, 10])
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(
                "Invalid permutation argument `dims` for Permute Layer. The set of indices in `dims` must be "
                f"consecutive and start from 1. Received dims={self.dims}"
            )
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)

    def call(self, inputs):
        return array_ops.transpose(inputs, (0, *self.dims))

    def compute_output_shape(self, input_shape):
        dims = TensorShape(input_shape).as_list()
        return TensorShape([dims[0], *(dims[d] for d in self.dims)])

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


@keras_serializable("layers")
class RepeatVector(Layer):
    """Repeats each input vector ``n`` times: (batch, features) becomes (batch, n, features).

    Args:
        n: how many times to repeat.

    Example:
        >>> tf.keras.layers.RepeatVector(3)(tf.zeros((2, 5))).shape
        TensorShape([2, 3, 5])
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"RepeatVector n must be a positive integer, got {n!r}")
        self.n = n
        self.input_spec = InputSpec(ndim=2)

    def call(self, inputs):
        return array_ops.concat([array_ops.expand_dims(inputs, 1)] * self.n, axis=1)

    def compute_output_shape(self, input_shape):
        batch, features = TensorShape(input_shape).as_list()
        return TensorShape([batch, self.n, features])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


def _pairs(value, name: str) -> tuple:
    """An int, a pair of ints or a pair of pairs as ((top, bottom), (left, right))."""
    if isinstance(value, int):
        return ((value, value), (value, value))
    if len(value) == 2 and all(isinstance(v, int) for v in value):
        return ((value[0], value[0]), (value[1], value[1]))
    if len(value) == 2 and all(len(v) == 2 for v in value):
        pairs = tuple((int(a), int(b)) for a, b in value)
        if all(v >= 0 for pair in pairs for v in pair):
            return pairs
    raise ValueError(
        f"`{name}` should be an int, a tuple of 2 ints, or a tuple of 2 tuples of 2 non-negative ints, got {value!r}"
    )


def _data_format(data_format) -> str:
    data_format = data_format or "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}")
    return data_format


def _spatial_axes(data_format: str) -> tuple[int, int]:
    return (1, 2) if data_format == "channels_last" else (2, 3)


@keras_serializable("layers")
class ZeroPadding2D(Layer):
    """Adds rows and columns of zeros around each image.

    Args:
        padding: an int (same on all sides), (rows, columns) added on both sides, or
            ((top, bottom), (left, right)).
        data_format: "channels_last" (NHWC, the default) or "channels_first" (NCHW).

    Example:
        >>> tf.keras.layers.ZeroPadding2D(((1, 0), (2, 3)))(tf.zeros((1, 4, 4, 3))).shape
        TensorShape([1, 5, 9, 3])
    """

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pairs(padding, "padding")
        self.data_format = _data_format(data_format)
        self.input_spec = InputSpec(ndim=4)

    def call(self, inputs):
        paddings = [(0, 0)] * 4
        height_axis, width_axis = _spatial_axes(self.data_format)
        paddings[height_axis], paddings[width_axis] = self.padding
        return array_ops.pad(inputs, paddings)

    def compute_output_shape(self, input_shape):
        dims = TensorShape(input_shape).as_list()
        for axis, (before, after) in zip(_spatial_axes(self.data_format), self.padding):
            dims[axis] = None if dims[axis] is None else dims[axis] + before + after
        return TensorShape(dims)

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding], "data_format": self.data_format}


@keras_serializable("layers")
class Cropping2D(Layer):
    """Removes rows and columns at the borders of each image.

    Args:
        cropping: an int (same on all sides), (rows, columns) removed on both sides, or
            ((top, bottom), (left, right)).
        data_format: "channels_last" (NHWC, the default) or "channels_first" (NCHW).

    Example:
        >>> tf.keras.layers.Cropping2D(((2, 2), (4, 4)))(tf.zeros((2, 28, 28, 3))).shape
        TensorShape([2, 24, 20, 3])
    """

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = _pairs(cropping, "cropping")
        self.data_format = _data_format(data_format)
        self.input_spec = InputSpec(ndim=4)

    def build(self, input_shape):
        dims = TensorShape(input_shape).as_list()
        for axis, (before, after) in zip(_spatial_axes(self.data_format), self.cropping):
            if dims[axis] is not None and before + after >= dims[axis]:
                raise ValueError(
                    f"Cropping2D '{self.name}': values in `cropping` must be smaller than the spatial dimension they "
                    f"crop; got input shape {TensorShape(dims)} and cropping={self.cropping}"
                )
        self.built = True

    def call(self, inputs):
        selector = [slice(None)] * 4
        for axis, (before, after) in zip(_spatial_axes(self.data_format), self.cropping):
            selector[axis] = slice(before, -after if after else None)
        return inputs[tuple(selector)]

    def compute_output_shape(self, input_shape):
        dims = TensorShape(input_shape).as_list()
        for axis, (before, after) in zip(_spatial_axes(self.data_format), self.cropping):
            dims[axis] = None if dims[axis] is None else dims[axis] - before - after
        return TensorShape(dims)

    def get_config(self):
        return {**super().get_config(), "cropping": [list(c) for c in self.cropping], "data_format": self.data_format}


@keras_serializable("layers")
class UpSampling2D(Layer):
    """Enlarges each image by repeating rows and columns (nearest-neighbour upsampling).

    Args:
        size: an int or (rows, columns) factors.
        data_format: "channels_last" (NHWC, the default) or "channels_first" (NCHW).
        interpolation: "nearest" (the only one emberflow implements).

    Example:
        >>> tf.keras.layers.UpSampling2D(2)(tf.zeros((1, 3, 4, 5))).shape
        TensorShape([1, 6, 8, 5])
    """

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2 or any(not isinstance(s, int) or s < 1 for s in size):
            raise ValueError(f"UpSampling2D size must be a positive int or a pair of them, got {size!r}")
        if interpolation != "nearest":
            raise NotImplementedError(
                f"UpSampling2D(interpolation={interpolation!r}) is not supported by emberflow; use interpolation='nearest'"
            )
        self.size = size
        self.data_format = _data_format(data_format)
        self.interpolation = interpolation
        self.input_spec = InputSpec(ndim=4)

    def call(self, inputs):
        dims = inputs.shape.as_list()
        if any(dims[a] is None for a in (1, 2, 3)):
            raise ValueError(
                f"UpSampling2D '{self.name}' needs known non-batch dimensions, got input shape {inputs.shape}"
            )
        # Each spatial axis gets a new axis after it that holds the copies; merging the pairs repeats rows/columns.
        height_axis, width_axis = _spatial_axes(self.data_format)
        outputs = inputs
        for axis, factor in sorted(zip((height_axis, width_axis), self.size), reverse=True):
            outputs = array_ops.concat([array_ops.expand_dims(outputs, axis + 1)] * factor, axis=axis + 1)
        return array_ops.reshape(outputs, (-1, *self.compute_output_shape(dims).as_list()[1:]))

    def compute_output_shape(self, input_shape):
        dims = TensorShape(input_shape).as_list()
        for axis, factor in zip(_spatial_axes(self.data_format), self.size):
            dims[axis] = None if dims[axis] is None else dims[axis] * factor
        return TensorShape(dims)

    def get_config(self):
        return {
            **super().get_config(),
            "size": list(self.size),
            "data_format": self.data_format,
            "interpolation": self.interpolation,
        }
