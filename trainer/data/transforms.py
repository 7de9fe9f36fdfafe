"""The dataset transformations that build new elements: batch, unbatch, map, filter, enumerate, zip, concatenate.

``batch`` over rows of arrays gathers each batch with one fancy-index per component from the row
index stream of ``ordering``; everything else stacks element by element. Cardinality rules follow
TensorFlow's kernels.
"""

from __future__ import annotations

import math

import numpy as np

from trainer import dtypes, nest
from trainer.context import state
from trainer.data import structure
from trainer.data.dataset import INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset, UnaryDataset
from trainer.shapes import TensorSpec
from trainer.tensor import Tensor

# -- batch, unbatch --------------------------------------------------------------------------------------


class BatchDataset(UnaryDataset):
    """What ``Dataset.batch`` returns: gathered batches for rows of arrays, stacked ones otherwise."""

    def __init__(self, input_dataset, batch_size, drop_remainder):
        super().__init__(input_dataset)
        self._batch_size = int(batch_size)
        if self._batch_size < 1:
            raise ValueError(f"batch(): batch_size must be a positive integer, got {batch_size}")
        self._drop_remainder = bool(drop_remainder)

    def _compute_cardinality(self):
        n = self._input.cardinality()
        if n < 0:
            return n
        return n // self._batch_size if self._drop_remainder else math.ceil(n / self._batch_size)

    def _compute_element_spec(self):
        batch_dim = self._batch_size if self._drop_remainder else None
        return nest.map_structure(lambda spec: structure.batched_spec(spec, batch_dim), self._input.element_spec)

    def _elements(self):
        source = self._input._slice_source()
        if source is not None:
            return self._gathered(source)
        return self._stacked()

    def _gathered(self, source):
        size = self._batch_size
        pending = np.empty(0, dtype=np.int64)
        for chunk in self._input._index_chunks():
            if pending.size:
                chunk = np.concatenate([pending, chunk])
            whole = chunk.size - chunk.size % size
            for start in range(0, whole, size):
                yield source.gather(chunk[start : start + size])
            pending = chunk[whole:]
        if pending.size and not self._drop_remainder:
            yield source.gather(pending)

    def _stacked(self):
        group = []
        for element in self._input._elements():
            group.append(element)
            if len(group) == self._batch_size:
                yield structure.stack(group)
                group = []
        if group and not self._drop_remainder:
            yield structure.stack(group)


class UnbatchDataset(UnaryDataset):
    """What ``Dataset.unbatch`` returns: every row of every input element."""

    def _compute_element_spec(self):
        return nest.map_structure(structure.unbatched_spec, self._input.element_spec)

    def _compute_cardinality(self):
        n = self._input.cardinality()
        if n in (0, INFINITE_CARDINALITY):
            return n
        leading = {spec.shape[0] for spec in nest.flatten(self._input.element_spec)}
        if n == UNKNOWN_CARDINALITY or len(leading) != 1 or None in leading:
            return UNKNOWN_CARDINALITY
        return n * leading.pop()

    def _elements(self):
        for element in self._input._elements():
            yield from structure.split_rows(element)


# -- map, filter, enumerate ------------------------------------------------------------------------------


def call_with_element(function, element):
    """TensorFlow's calling convention: a plain tuple is spread into positional arguments."""
    return function(*element) if type(element) is tuple else function(element)


def _output_spec(leaf) -> TensorSpec:
    if isinstance(leaf, Tensor):
        return TensorSpec(leaf.shape, leaf.dtype)
    value = structure.to_array(leaf)
    return TensorSpec(np.shape(value), dtypes.of_array(np.asarray(value)))


def _placeholder(spec: TensorSpec) -> Tensor:
    return Tensor.symbolic(spec.shape.as_list(), spec.dtype)  # as_list raises for an unknown rank


class MapDataset(UnaryDataset):
    """What ``Dataset.map`` returns: ``map_func`` applied to each element, optionally on a thread pool."""

    def __init__(self, input_dataset, function, parallelism):
        super().__init__(input_dataset)
        if not callable(function):
            raise TypeError(f"map(): `map_func` must be callable, got {type(function).__name__}")
        self._function = function
        self._parallelism = parallelism

    def _call(self, element):
        result = call_with_element(self._function, structure.to_tensors(element))
        return structure.to_arrays(tuple(result) if isinstance(result, list) else result)

    def _elements(self):
        if self._parallelism > 1:
            from trainer.data.background import parallel_map  # noqa: PLC0415

            return parallel_map(self._call, self._input._elements(), self._parallelism)
        return map(self._call, self._input._elements())

    def _compute_element_spec(self):
        # Like TensorFlow, trace the function once on placeholders (symbolic tensors) so that unknown dims
        # stay unknown. A function that needs concrete values (NumPy calls, Python branching on a tensor)
        # cannot be traced; its spec then comes from its output on the first element.
        input_spec = self._input.element_spec
        saved_graph, state.graph = state.graph, None
        try:
            placeholders = nest.map_structure(_placeholder, input_spec)
            result = call_with_element(self._function, placeholders)
            return structure.normalize(tuple(result) if isinstance(result, list) else result, _output_spec)
        except Exception as error:  # noqa: BLE001 - any failure of the trace means "use a concrete element"
            trace_error = error
        finally:
            state.graph = saved_graph
        for element in self._input._elements():
            return structure.spec_of(self._call(element))
        raise ValueError(
            "map(): cannot infer the element_spec: the input dataset is empty and `map_func` fails on symbolic "
            f"tensors ({type(trace_error).__name__}: {trace_error})"
        )


class FilterDataset(UnaryDataset):
    """What ``Dataset.filter`` returns: the elements for which the predicate is True."""

    def __init__(self, input_dataset, predicate):
        super().__init__(input_dataset)
        if not callable(predicate):
            raise TypeError(f"filter(): `predicate` must be callable, got {type(predicate).__name__}")
        self._predicate = predicate

    def _compute_cardinality(self):
        return UNKNOWN_CARDINALITY

    def _keep(self, element) -> bool:
        result = call_with_element(self._predicate, structure.to_tensors(element))
        value = result.numpy() if isinstance(result, Tensor) else np.asarray(result)
        if value.shape != () or value.dtype != np.bool_:
            raise ValueError(
                "filter(): `predicate` must return a scalar boolean tensor, "
                f"got shape {value.shape} dtype {value.dtype}"
            )
        return bool(value)

    def _elements(self):
        return (element for element in self._input._elements() if self._keep(element))


class EnumerateDataset(UnaryDataset):
    """What ``Dataset.enumerate`` returns: ``(position, element)`` pairs."""

    def __init__(self, input_dataset, start):
        super().__init__(input_dataset)
        self._start = int(start)

    def _compute_element_spec(self):
        return (TensorSpec((), dtypes.int64), self._input.element_spec)

    def _elements(self):
        for position, element in enumerate(self._input._elements(), self._start):
            yield np.int64(position), element


# -- zip, concatenate ------------------------------------------------------------------------------------


def _lists_to_tuples(value):
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return tuple(_lists_to_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: _lists_to_tuples(item) for key, item in value.items()}
    return value


class ZipDataset(Dataset):
    """What ``Dataset.zip`` returns: one element from each dataset, packed in the given nest."""

    def __init__(self, datasets):
        super().__init__()
        self._structure = _lists_to_tuples(datasets)
        self._datasets = nest.flatten(self._structure)
        for dataset in self._datasets:
            if not isinstance(dataset, Dataset):
                raise TypeError(
                    f"Dataset.zip() takes a (nested) structure of Dataset objects, got a {type(dataset).__name__}"
                )
        if not self._datasets:
            raise ValueError("Dataset.zip() needs at least one dataset")

    def _compute_element_spec(self):
        return nest.pack_sequence_as(self._structure, [dataset.element_spec for dataset in self._datasets])

    def _compute_cardinality(self):
        result = INFINITE_CARDINALITY
        for dataset in self._datasets:
            n = dataset.cardinality()
            if n == UNKNOWN_CARDINALITY:
                return n
            if n != INFINITE_CARDINALITY:
                result = n if result == INFINITE_CARDINALITY else min(result, n)
        return result

    def _elements(self):
        iterators = [dataset._elements() for dataset in self._datasets]
        while True:
            parts = []
            for iterator in iterators:
                try:
                    parts.append(next(iterator))
                except StopIteration:
                    return
            yield nest.pack_sequence_as(self._structure, parts)


class ConcatenateDataset(Dataset):
    """What ``Dataset.concatenate`` returns: the first dataset, then the second."""

    def __init__(self, first, second):
        super().__init__()
        if not isinstance(second, Dataset):
            raise TypeError(f"concatenate() takes a Dataset, got {type(second).__name__}")
        first_spec, second_spec = first.element_spec, second.element_spec
        compatible = structure.same_structure(first_spec, second_spec) and all(
            a.dtype == b.dtype for a, b in zip(nest.flatten(first_spec), nest.flatten(second_spec))
        )
        if not compatible:
            raise TypeError(f"Incompatible dataset elements:\n  {first_spec} vs.\n  {second_spec}")
        self._first, self._second = first, second

    def _compute_element_spec(self):
        first = nest.flatten(self._first.element_spec)
        second = nest.flatten(self._second.element_spec)
        merged = [structure.most_specific_compatible(a, b) for a, b in zip(first, second)]
        return nest.pack_sequence_as(self._first.element_spec, merged)

    def _compute_cardinality(self):
        for n in (self._first.cardinality(), self._second.cardinality()):
            if n in (INFINITE_CARDINALITY, UNKNOWN_CARDINALITY):
                return n
        return self._first.cardinality() + self._second.cardinality()

    def _elements(self):
        yield from self._first._elements()
        yield from self._second._elements()
