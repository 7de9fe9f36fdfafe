"""Turning what ``fit``/``evaluate``/``predict`` receive (arrays, tensors, dicts, datasets) into batches."""

from __future__ import annotations

import math

import numpy as np

from trainer import nest
from trainer.ops import random_ops
from trainer.tensor import Tensor, convert_to_tensor


class DataError(ValueError):
    """The data given to fit/evaluate/predict cannot be used; the message says which argument and why."""


def _as_array(value, argument: str):
    if isinstance(value, Tensor):
        value = value.numpy()
    array = np.asarray(value)
    if array.dtype.kind in "USO":
        raise DataError(
            f"{argument} has dtype {array.dtype} (strings or Python objects); emberflow trains on numbers only. "
            "Encode class labels as integers, e.g. classes, y = np.unique(labels, return_inverse=True)"
        )
    if array.dtype == np.float64:
        array = array.astype(np.float32)  # Keras standardizes float inputs to floatx
    return array


def _is_list_of_scalars(value) -> bool:
    """Keras's ``ListsOfScalarsDataAdapter`` test: a (nested) list whose first elements end in a number, as
    ``x.tolist()`` gives. Such a list is one array, not a structure of per-sample inputs."""
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return isinstance(value, (int, float, bool, np.generic)) and not isinstance(value, np.ndarray)


def _lists_to_arrays(value):
    return np.asarray(value) if isinstance(value, (list, tuple)) and _is_list_of_scalars(value) else value


def _is_dataset(value) -> bool:
    return hasattr(value, "element_spec") and hasattr(value, "cardinality")


class ArrayAdapter:
    """Batches NumPy arrays (or nests of them): one shuffled index array per epoch, one fancy-index per batch."""

    def __init__(self, x, y=None, sample_weight=None, batch_size=32, shuffle=False):
        x, y = _lists_to_arrays(x), _lists_to_arrays(y)
        self.x = nest.map_structure(lambda v: _as_array(v, "x"), x)
        self.y = None if y is None else nest.map_structure(lambda v: _as_array(v, "y"), y)
        self.sample_weight = None if sample_weight is None else _as_array(sample_weight, "sample_weight")
        sizes = {}
        for name, part in (("x", self.x), ("y", self.y), ("sample_weight", self.sample_weight)):
            if part is not None:
                leaves = nest.flatten(part)
                for leaf in leaves:
                    if leaf.ndim == 0:
                        raise DataError(f"{name} must have a batch dimension, got a scalar")
                sizes[name] = [leaf.shape[0] for leaf in leaves]
        counts = {n for values in sizes.values() for n in values}
        if len(counts) > 1:
            detail = "\n".join(f"'{name}' sizes: {', '.join(map(str, values))}" for name, values in sizes.items())
            raise DataError(f"Data cardinality is ambiguous. Make sure all arrays contain the same number of samples.\n{detail}")
        self.num_samples = counts.pop()
        if batch_size is None:
            batch_size = 32
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle

    @property
    def steps(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def split(self, fraction: float):
        """Keras's ``validation_split``: the last ``fraction`` of the samples, taken before any shuffling."""
        if not 0 < fraction < 1:
            raise DataError(f"validation_split must be in (0, 1), got {fraction}")
        cut = int(self.num_samples * (1 - fraction))
        if cut == 0 or cut == self.num_samples:
            raise DataError(f"validation_split={fraction} leaves an empty training or validation set of {self.num_samples} samples")

        def part(structure, selection):
            return None if structure is None else nest.map_structure(lambda a: a[selection], structure)

        head, tail = slice(0, cut), slice(cut, None)
        train = ArrayAdapter(part(self.x, head), part(self.y, head), part(self.sample_weight, head), self.batch_size, self.shuffle)
        validation = ArrayAdapter(part(self.x, tail), part(self.y, tail), part(self.sample_weight, tail), self.batch_size, False)
        return train, validation

    def __iter__(self):
        order = None
        if self.shuffle:
            order = random_ops.generator().permutation(self.num_samples)
        for start in range(0, self.num_samples, self.batch_size):
            if order is None:
                selection = slice(start, start + self.batch_size)
            else:
                selection = order[start : start + self.batch_size]
            yield self._batch(selection)

    def _batch(self, selection):
        def take(structure):
            if structure is None:
                return None
            if isinstance(structure, np.ndarray):  # the common case, without the nest machinery
                return convert_to_tensor(structure[selection])
            return nest.map_structure(lambda a: convert_to_tensor(a[selection]), structure)

        return take(self.x), take(self.y), take(self.sample_weight)


class DatasetAdapter:
    """Iterates a ``tf.data.Dataset`` whose elements are ``x``, ``(x, y)`` or ``(x, y, sample_weight)``."""

    def __init__(self, dataset, steps=None):
        self.dataset = dataset
        cardinality = dataset.cardinality()
        cardinality = int(cardinality.numpy()) if isinstance(cardinality, Tensor) else int(cardinality)
        if steps is None and cardinality < 0:
            raise DataError(
                "the dataset is infinite or of unknown length: pass steps_per_epoch= (fit) or steps= (evaluate/predict)"
            )
        self._steps = steps if steps is not None else cardinality
        self._iterator = None

    @property
    def steps(self) -> int:
        return self._steps

    def __iter__(self):
        # With explicit steps, one iterator is shared across epochs (as Keras does), so epochs continue
        # where the previous one stopped instead of restarting the dataset.
        if self._iterator is None or self._steps is None:
            self._iterator = iter(self.dataset)
        for _ in range(self._steps):
            try:
                element = next(self._iterator)
            except StopIteration:
                self._iterator = iter(self.dataset)
                return
            yield unpack(element)


def unpack(element):
    if isinstance(element, tuple):
        if len(element) == 1:
            return element[0], None, None
        if len(element) == 2:
            return element[0], element[1], None
        if len(element) == 3:
            return element
        raise DataError(f"dataset elements must be x, (x, y) or (x, y, sample_weight); got a tuple of {len(element)}")
    return element, None, None


def make_adapter(x, y=None, sample_weight=None, batch_size=None, shuffle=False, steps=None):
    if _is_dataset(x):
        if y is not None:
            raise DataError("`y` argument is not supported when using a tf.data.Dataset as input; the dataset yields (x, y)")
        if batch_size is not None:
            raise DataError("`batch_size` is not supported with a tf.data.Dataset: batch the dataset itself with .batch()")
        return DatasetAdapter(x, steps)
    if x is None:
        raise DataError("no input data: pass x (arrays, tensors, a dict of arrays, or a tf.data.Dataset)")
    if hasattr(x, "__next__") or (hasattr(x, "__iter__") and not isinstance(x, (list, tuple, dict, np.ndarray, Tensor))):
        raise DataError(
            f"fit/evaluate/predict got a {type(x).__name__}; emberflow accepts arrays, tensors, dicts of them and "
            "tf.data.Dataset (wrap a generator with tf.data.Dataset.from_generator)"
        )
    return ArrayAdapter(x, y, sample_weight, batch_size or 32, shuffle)
