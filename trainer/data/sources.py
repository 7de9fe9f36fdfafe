"""Datasets that start a pipeline: slices of arrays, a single element, a range, a Python generator.

``TensorSliceDataset`` is also what the fast paths build on: its elements are rows of arrays, so a
pipeline of shuffles, takes, skips and repeats over it can run on row indices alone, and ``batch``
then gathers a whole batch with one fancy-index per component (see ``transforms.BatchDataset``).
"""

from __future__ import annotations

import numpy as np

from trainer import dtypes, nest
from trainer.data import structure
from trainer.data.dataset import UNKNOWN_CARDINALITY, Dataset
from trainer.shapes import TensorShape, TensorSpec
from trainer.tensor import Tensor

_INDEX_CHUNK = 1 << 16  # rows per index chunk: bounds the index memory of a huge dataset


class SliceSource:
    """Arrays whose rows are a dataset's elements, with the structure that packs one row back up."""

    __slots__ = ("template", "arrays")

    def __init__(self, template, arrays):
        self.template = template
        self.arrays = arrays

    def row(self, index):
        """One element: row ``index`` of every component."""
        return nest.pack_sequence_as(self.template, [array[index] for array in self.arrays])

    def gather(self, indices: np.ndarray):
        """Many rows at once: one fancy-index per component."""
        return nest.pack_sequence_as(self.template, [array[indices] for array in self.arrays])


def rows(source: SliceSource, index_chunks):
    """Elements one by one from a stream of index chunks."""
    for chunk in index_chunks:
        for index in chunk.tolist():
            yield source.row(index)


class TensorSliceDataset(Dataset):
    """Each element is one row (a slice along dimension 0) of every component of ``tensors``."""

    def __init__(self, tensors):
        if isinstance(tensors, Dataset):
            raise TypeError("from_tensor_slices() takes arrays or tensors, not a Dataset")
        template = structure.to_arrays(tensors)
        arrays = [np.asarray(leaf) for leaf in nest.flatten(template)]
        if not arrays:
            raise ValueError("from_tensor_slices() needs at least one component, got an empty structure")
        for array in arrays:
            if array.ndim == 0:
                raise ValueError(
                    f"from_tensor_slices(): every component needs a first dimension to slice, got a scalar {array!r}"
                )
        sizes = {array.shape[0] for array in arrays}
        if len(sizes) > 1:
            shapes = ", ".join(str(array.shape) for array in arrays)
            raise ValueError(
                "from_tensor_slices(): all components must have the same size in their first dimension, "
                f"got shapes {shapes}"
            )
        super().__init__()
        self._size = sizes.pop()
        self._source = SliceSource(template, arrays)

    def _compute_cardinality(self):
        return self._size

    def _compute_element_spec(self):
        specs = [TensorSpec(array.shape[1:], dtypes.of_array(array)) for array in self._source.arrays]
        return nest.pack_sequence_as(self._source.template, specs)

    def _slice_source(self):
        return self._source

    def _index_chunks(self):
        for start in range(0, self._size, _INDEX_CHUNK):
            yield np.arange(start, min(start + _INDEX_CHUNK, self._size), dtype=np.int64)

    def _elements(self):
        return rows(self._source, self._index_chunks())


class TensorDataset(Dataset):
    """A dataset of exactly one element: ``tensors`` as a whole."""

    def __init__(self, tensors):
        super().__init__()
        self._element = structure.to_arrays(tensors)

    def _compute_cardinality(self):
        return 1

    def _compute_element_spec(self):
        return structure.spec_of(self._element)

    def _elements(self):
        yield self._element


class RangeDataset(Dataset):
    """The integers of ``range(start, stop, step)`` as scalars of ``output_type`` (int64 by default)."""

    def __init__(self, args, output_type):
        if not 1 <= len(args) <= 3:
            raise TypeError(f"Dataset.range() takes 1 to 3 positional arguments (start, stop, step), got {len(args)}")
        self._range = range(*(int(value) for value in args))  # raises for step 0, like Python
        self._dtype = dtypes.as_dtype(output_type)
        if not (self._dtype.is_integer or self._dtype.is_floating):
            raise TypeError(f"Dataset.range(): output_type must be an integer or float dtype, got {self._dtype.name}")
        super().__init__()

    def _compute_cardinality(self):
        return len(self._range)

    def _compute_element_spec(self):
        return TensorSpec((), self._dtype)

    def _elements(self):
        scalar = self._dtype.as_numpy_dtype
        for value in self._range:
            yield scalar(value)


class GeneratorDataset(Dataset):
    """Elements produced by calling ``generator(*args)`` anew for each iteration, checked against a signature."""

    def __init__(self, generator, output_signature, args):
        if not callable(generator):
            raise TypeError(
                "`generator` must be a Python callable that returns an iterator (pass the generator function, "
                f"not a generator object), got {type(generator).__name__}"
            )
        super().__init__()
        self._generator = generator
        self._signature = output_signature
        self._args = tuple(args or ())

    def _compute_cardinality(self):
        return UNKNOWN_CARDINALITY

    def _compute_element_spec(self):
        return self._signature

    def _elements(self):
        for value in self._generator(*self._args):
            yield _conform(self._signature, value)


def signature_from_types(output_types, output_shapes):
    """An ``output_signature`` from the older ``output_types``/``output_shapes`` pair of ``from_generator``."""

    def build(types, shapes):
        if isinstance(types, dict):
            return {key: build(types[key], None if shapes is None else shapes[key]) for key in types}
        if isinstance(types, (tuple, list)):
            parts = [build(item, None if shapes is None else shapes[position]) for position, item in enumerate(types)]
            return tuple(parts)
        return TensorSpec(TensorShape(None) if shapes is None else shapes, types)

    return build(output_types, output_shapes)


def check_signature(signature):
    """``signature`` itself, once every leaf is known to be a ``TensorSpec``."""
    for leaf in nest.flatten(signature):
        if not isinstance(leaf, TensorSpec):
            raise TypeError(
                f"output_signature must be a nest of tf.TensorSpec (tuples and dicts), got a leaf {leaf!r}"
            )
    return signature


def _conform(spec, value):
    """``value`` (a yielded element) as NumPy leaves shaped like ``spec``; errors follow TensorFlow's wording."""
    if isinstance(spec, dict):
        if not isinstance(value, dict) or sorted(value) != sorted(spec):
            keys = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise TypeError(f"`generator` yielded {keys} where a dict with keys {sorted(spec)} was expected.")
        return {key: _conform(spec[key], value[key]) for key in spec}
    if isinstance(spec, tuple):
        if not isinstance(value, (tuple, list)) or len(value) != len(spec):
            got = type(value).__name__
            if isinstance(value, (tuple, list)):
                got += f" of length {len(value)}"
            raise TypeError(f"`generator` yielded a {got} where a tuple of {len(spec)} components was expected.")
        parts = [_conform(item_spec, item) for item_spec, item in zip(spec, value)]
        return type(spec)(*parts) if hasattr(spec, "_fields") else tuple(parts)
    if isinstance(value, Tensor):
        value = value.numpy()
    try:
        array = np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
    except (TypeError, ValueError) as error:
        raise TypeError(
            "`generator` yielded an element that could not be converted to the expected type. The expected type "
            f"was {spec.dtype.name}, but the yielded element was {value!r:.80}."
        ) from error
    if not spec.shape.is_compatible_with(array.shape):
        raise ValueError(
            f"`generator` yielded an element of shape {array.shape} where an element of shape {spec.shape} "
            "was expected."
        )
    return array
