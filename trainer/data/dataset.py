"""``tf.data.Dataset``: re-iterable input pipelines built from arrays, ranges and generators.

A dataset is a recipe, not a buffer: every ``iter(dataset)`` runs the pipeline from the start, so one
dataset serves every epoch of ``model.fit`` (and ``shuffle`` reshuffles each time by default).
Elements flow through the pipeline as nests of NumPy values (see ``trainer.data.structure``) and
become ``Tensor``s only when they reach the user.
"""

from __future__ import annotations

import os

import numpy as np

from trainer import nest
from trainer.data import structure

AUTOTUNE = -1  # tf.data.AUTOTUNE: "pick a good value for me" for prefetch and num_parallel_calls
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2


class Dataset:
    """A sequence of elements (nests of tensors) produced by a pipeline of transformations, like ``tf.data.Dataset``.

    Build one with a source (``from_tensor_slices``, ``from_tensors``, ``range``, ``from_generator``,
    ``zip``) and chain transformations, each returning a new dataset. Iterate it with ``for``, pass it
    to ``model.fit``, or read NumPy values with ``as_numpy_iterator()``.

    Example:
        >>> dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train))
        >>> dataset = dataset.shuffle(60_000).batch(32).prefetch(tf.data.AUTOTUNE)
        >>> for images, labels in dataset:
        ...     train_step(images, labels)
    """

    def __init__(self):
        self._spec = None
        self._card = None

    # -- what every dataset implements ------------------------------------------------------------------
    def _elements(self):
        """A fresh iterator over the elements, as nests of NumPy values."""
        raise NotImplementedError

    def _compute_element_spec(self):
        raise NotImplementedError

    def _compute_cardinality(self) -> int:
        raise NotImplementedError

    def _slice_source(self):
        """The ``SliceSource`` whose rows are this dataset's elements, when ``_index_chunks`` can produce them."""
        return None

    def _index_chunks(self):
        """Row indices into ``_slice_source()``, in element order, as a stream of int64 arrays."""
        raise TypeError(f"{type(self).__name__} is not a dataset of array rows")

    # -- sources ------------------------------------------------------------------------------------
    @staticmethod
    def from_tensor_slices(tensors, name=None) -> "Dataset":
        """A dataset whose elements are the rows (slices along dimension 0) of ``tensors``.

        Args:
            tensors: an array, a tensor, or a nest of tuples/dicts of them; every component must have the
                same size in its first dimension. A list is one value: ``[1, 2, 3]`` gives three scalars.
            name: accepted for TensorFlow compatibility.
        """
        return _sources.TensorSliceDataset(tensors)

    @staticmethod
    def from_tensors(tensors, name=None) -> "Dataset":
        """A dataset of one element: ``tensors`` itself (an array, a tensor, or a nest of them)."""
        return _sources.TensorDataset(tensors)

    @staticmethod
    def range(*args, output_type="int64", name=None) -> "Dataset":
        """The integers of Python's ``range(*args)`` as scalar tensors of ``output_type`` (int64, like TensorFlow)."""
        return _sources.RangeDataset(args, output_type)

    @staticmethod
    def from_generator(generator, output_types=None, output_shapes=None, args=None, output_signature=None, name=None):
        """A dataset of the elements that ``generator(*args)`` yields, called anew for each iteration.

        Args:
            generator: a callable returning an iterator (a generator function, not a generator object).
            output_signature: a nest of ``tf.TensorSpec`` that every yielded element must match; values are
                converted to the spec's dtype and their shapes checked.
            output_types, output_shapes: the older way to give the signature, when ``output_signature`` is None.
            args: positional arguments passed to ``generator``.
        """
        if output_signature is None:
            if output_types is None:
                raise TypeError("from_generator() needs output_signature= (a nest of tf.TensorSpec)")
            output_signature = _sources.signature_from_types(output_types, output_shapes)
        elif output_types is not None or output_shapes is not None:
            raise TypeError("from_generator(): pass either output_signature or output_types/output_shapes, not both")
        if isinstance(output_signature, list):
            output_signature = tuple(output_signature)
        return _sources.GeneratorDataset(generator, _sources.check_signature(output_signature), args)

    @staticmethod
    def zip(*args, datasets=None, name=None) -> "Dataset":
        """Elements of several datasets side by side, in the nest they were given; stops with the shortest.

        Called as ``zip((a, b))``, ``zip({"x": a, "y": b})`` or ``zip(a, b)``.
        """
        if datasets is not None and args:
            raise TypeError("Dataset.zip() takes the datasets either positionally or as datasets=, not both")
        if datasets is None:
            if not args:
                raise TypeError("Dataset.zip() needs at least one dataset")
            datasets = args[0] if len(args) == 1 else tuple(args)
        return _transforms.ZipDataset(datasets)

    # -- transformations ----------------------------------------------------------------------------
    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None) -> "Dataset":
        """Randomly shuffles the elements with a buffer of ``buffer_size`` elements, as TensorFlow does.

        The buffer starts with the first ``buffer_size`` elements; each output is a random pick from the
        buffer, whose slot the next input element takes. A buffer at least as large as the dataset gives
        a uniform permutation. With ``seed=None`` the order follows ``tf.random.set_seed``; with
        ``reshuffle_each_iteration`` each iteration draws a new order.
        """
        return _ordering.ShuffleDataset(self, buffer_size, seed, reshuffle_each_iteration)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None, deterministic=None, name=None):
        """Combines consecutive elements into batches along a new first dimension.

        The last batch is smaller unless ``drop_remainder``; ``element_spec`` then has ``None`` as batch
        dimension. Rows of ``from_tensor_slices`` arrays (also after shuffle, take, skip, repeat, cache)
        are gathered with one fancy-index per component and batch, so ``num_parallel_calls`` is only
        accepted for compatibility.
        """
        _check_parallelism(num_parallel_calls)
        return _transforms.BatchDataset(self, batch_size, drop_remainder)

    def unbatch(self, name=None) -> "Dataset":
        """Splits every element along its first dimension into separate elements (the inverse of ``batch``)."""
        return _transforms.UnbatchDataset(self)

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None) -> "Dataset":
        """Applies ``map_func`` to every element; a tuple element is passed as positional arguments.

        ``map_func`` receives ``Tensor``s and returns a tensor, an array, a Python value or a nest of them.
        With ``num_parallel_calls`` (an int or ``tf.data.AUTOTUNE``) calls run on a thread pool; the
        output order is always the input order, whatever ``deterministic`` says.
        """
        return _transforms.MapDataset(self, map_func, _check_parallelism(num_parallel_calls))

    def filter(self, predicate, name=None) -> "Dataset":
        """Keeps the elements for which ``predicate`` (called like a ``map`` function) returns a scalar True."""
        return _transforms.FilterDataset(self, predicate)

    def repeat(self, count=None, name=None) -> "Dataset":
        """The dataset ``count`` times over (forever when ``count`` is None or -1), each pass a new iteration."""
        return _ordering.RepeatDataset(self, -1 if count is None else count)

    def take(self, count, name=None) -> "Dataset":
        """At most the first ``count`` elements (all of them when ``count`` is -1)."""
        return _ordering.TakeDataset(self, count)

    def skip(self, count, name=None) -> "Dataset":
        """All but the first ``count`` elements (none of them when ``count`` is -1)."""
        return _ordering.SkipDataset(self, count)

    def prefetch(self, buffer_size, name=None) -> "Dataset":
        """Produces up to ``buffer_size`` elements ahead on a background thread.

        ``tf.data.AUTOTUNE`` keeps 2 elements in flight; 0 turns prefetching off.
        """
        from trainer.data.background import PrefetchDataset  # noqa: PLC0415 - threads only when asked for

        return PrefetchDataset(self, buffer_size)

    def cache(self, filename="", name=None) -> "Dataset":
        """Keeps the elements of the first complete iteration in memory and replays them afterwards."""
        if filename:
            raise ValueError(
                f"cache(filename={filename!r}): caching to files is not supported by emberflow; use cache() "
                "to cache in memory"
            )
        return _ordering.CacheDataset(self)

    def enumerate(self, start=0, name=None) -> "Dataset":
        """Pairs every element with its int64 position: ``(start, e0), (start + 1, e1), ...``."""
        return _transforms.EnumerateDataset(self, start)

    def concatenate(self, dataset, name=None) -> "Dataset":
        """This dataset's elements followed by those of ``dataset`` (same structure and dtypes)."""
        return _transforms.ConcatenateDataset(self, dataset)

    def apply(self, transformation_func) -> "Dataset":
        """``transformation_func(self)``: lets a function that transforms datasets read as a chained call."""
        result = transformation_func(self)
        if not isinstance(result, Dataset):
            raise TypeError(f"apply(): `transformation_func` must return a Dataset, got {type(result).__name__}")
        return result

    # -- what a dataset is --------------------------------------------------------------------------
    @property
    def element_spec(self):
        """The nest of ``tf.TensorSpec`` that every element matches (``None`` for dims that vary)."""
        if self._spec is None:
            self._spec = self._compute_element_spec()
        return self._spec

    def cardinality(self) -> int:
        """The number of elements, or ``tf.data.INFINITE_CARDINALITY`` (-1) / ``UNKNOWN_CARDINALITY`` (-2)."""
        if self._card is None:
            self._card = int(self._compute_cardinality())
        return self._card

    def __len__(self) -> int:
        count = self.cardinality()
        if count == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if count == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown.")
        return count

    def __bool__(self) -> bool:
        return True  # defined because __len__ is: an empty dataset is still a dataset

    def __iter__(self):
        """Runs the pipeline from the start, yielding elements whose leaves are ``Tensor``s."""
        for element in self._elements():
            yield structure.to_tensors(element)

    def as_numpy_iterator(self):
        """Runs the pipeline from the start, yielding elements whose leaves are NumPy arrays (scalars for rank 0)."""
        for element in self._elements():
            yield nest.map_structure(_numpy_leaf, element)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} element_spec={self.element_spec}>"


class UnaryDataset(Dataset):
    """A transformation of one input dataset."""

    def __init__(self, input_dataset):
        if not isinstance(input_dataset, Dataset):
            raise TypeError(f"expected a tf.data.Dataset, got {type(input_dataset).__name__}")
        super().__init__()
        self._input = input_dataset

    def _compute_element_spec(self):
        return self._input.element_spec

    def _compute_cardinality(self):
        return self._input.cardinality()


def _numpy_leaf(value):
    return value[()] if isinstance(value, np.ndarray) and value.ndim == 0 else value


def _check_parallelism(num_parallel_calls) -> int:
    """The worker count for ``num_parallel_calls``: 1 when None, the CPU count (at most 8) for AUTOTUNE."""
    if num_parallel_calls is None:
        return 1
    count = int(num_parallel_calls)
    if count == AUTOTUNE:
        return max(1, min(8, os.cpu_count() or 1))
    if count < 1:
        raise ValueError(f"num_parallel_calls must be a positive integer or tf.data.AUTOTUNE, got {num_parallel_calls}")
    return count


def check_count(value, what: str) -> int:
    """A ``take``/``skip``/``repeat`` count as an int (-1 meaning "all"), rejecting anything below -1."""
    count = int(value)
    if count < -1:
        raise ValueError(f"{what}: count must be -1 or non-negative, got {count}")
    return count


from trainer.data import ordering as _ordering  # noqa: E402 - these modules subclass Dataset
from trainer.data import sources as _sources  # noqa: E402
from trainer.data import transforms as _transforms  # noqa: E402
