"""Transformations that only reorder, drop or repeat elements: shuffle, take, skip, repeat, cache.

Over rows of arrays (``from_tensor_slices``) they run on a stream of row indices instead of elements,
and ``batch`` turns that stream into one fancy-index per component and batch (see
``transforms.BatchDataset``). Iterating element by element reads the same index stream, so both ways
give the same elements in the same order. Cardinality rules follow TensorFlow's kernels.
"""

from __future__ import annotations

import itertools

import numpy as np

from trainer.data.dataset import INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, UnaryDataset, check_count
from trainer.data.sources import rows
from trainer.ops import random_ops

_INDEX_BLOCK = 4096  # shuffled indices per chunk on the buffered path


class RowPreserving(UnaryDataset):
    """A transformation that only reorders, drops or repeats elements, so it can run on row indices."""

    def _slice_source(self):
        return self._input._slice_source()

    def _elements(self):
        source = self._slice_source()
        if source is not None:
            return rows(source, self._index_chunks())
        return self._element_stream()

    def _element_stream(self):
        raise NotImplementedError


# -- shuffle --------------------------------------------------------------------------------------------


class _RandomSlots:
    """Uniform picks of a buffer slot, drawn from the generator in blocks (one NumPy call per 1024 picks)."""

    def __init__(self, generator: np.random.Generator):
        self._generator = generator
        self._uniforms: list[float] = []

    def below(self, count: int) -> int:
        if not self._uniforms:
            self._uniforms = self._generator.random(1024).tolist()
        return min(int(self._uniforms.pop() * count), count - 1)


def buffer_shuffle(items, buffer_size: int, generator: np.random.Generator):
    """TensorFlow's shuffle buffer: fill it, then emit a random slot and refill that slot from ``items``."""
    slots = _RandomSlots(generator)
    buffer = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        slot = slots.below(len(buffer))
        yield buffer[slot]
        buffer[slot] = item
    while buffer:
        slot = slots.below(len(buffer))
        buffer[slot], buffer[-1] = buffer[-1], buffer[slot]
        yield buffer.pop()


class ShuffleDataset(RowPreserving):
    """What ``Dataset.shuffle`` returns: a buffered shuffle, or a permutation when the buffer holds everything."""

    def __init__(self, input_dataset, buffer_size, seed, reshuffle_each_iteration):
        super().__init__(input_dataset)
        self._buffer_size = int(buffer_size)
        if self._buffer_size < 1:
            raise ValueError(f"shuffle(): buffer_size must be greater than zero, got {buffer_size}")
        # Without an op seed, the seed comes from the global generator now, so tf.random.set_seed before
        # building the pipeline makes every iteration's order repeatable.
        self._seed = int(seed) % 2**63 if seed is not None else int(random_ops.generator().integers(2**63))
        self._reshuffle = True if reshuffle_each_iteration is None else bool(reshuffle_each_iteration)
        self._iteration = 0

    def _generator(self) -> np.random.Generator:
        iteration = self._iteration if self._reshuffle else 0
        self._iteration += 1
        return np.random.default_rng([self._seed, iteration])

    def _covers_input(self) -> bool:
        return 0 <= self._input.cardinality() <= self._buffer_size

    def _index_chunks(self):
        generator = self._generator()
        chunks = self._input._index_chunks()
        if self._covers_input():  # a buffer holding everything is a uniform permutation
            indices = list(chunks)
            if indices:
                yield generator.permutation(np.concatenate(indices))
            return
        block = []
        for index in buffer_shuffle((i for chunk in chunks for i in chunk.tolist()), self._buffer_size, generator):
            block.append(index)
            if len(block) == _INDEX_BLOCK:
                yield np.array(block, dtype=np.int64)
                block = []
        if block:
            yield np.array(block, dtype=np.int64)

    def _element_stream(self):
        generator = self._generator()
        if self._covers_input():
            elements = list(self._input._elements())
            for position in generator.permutation(len(elements)).tolist():
                yield elements[position]
            return
        yield from buffer_shuffle(self._input._elements(), self._buffer_size, generator)


# -- take, skip, repeat, cache ---------------------------------------------------------------------------


class TakeDataset(RowPreserving):
    """What ``Dataset.take`` returns: at most the first ``count`` elements."""

    def __init__(self, input_dataset, count):
        super().__init__(input_dataset)
        self._count = check_count(count, "take()")

    def _compute_cardinality(self):
        n = self._input.cardinality()
        if n == UNKNOWN_CARDINALITY:
            return n
        if self._count < 0:
            return n
        return self._count if n == INFINITE_CARDINALITY else min(n, self._count)

    def _index_chunks(self):
        remaining = self._count
        if remaining == 0:
            return
        for chunk in self._input._index_chunks():
            if remaining < 0:
                yield chunk
                continue
            part = chunk[:remaining]
            remaining -= part.size
            yield part
            if remaining == 0:
                return  # never pull another chunk: the input may be infinite

    def _element_stream(self):
        if self._count < 0:
            return self._input._elements()
        return itertools.islice(self._input._elements(), self._count)


class SkipDataset(RowPreserving):
    """What ``Dataset.skip`` returns: the elements after the first ``count``."""

    def __init__(self, input_dataset, count):
        super().__init__(input_dataset)
        self._count = check_count(count, "skip()")

    def _compute_cardinality(self):
        n = self._input.cardinality()
        if n in (INFINITE_CARDINALITY, UNKNOWN_CARDINALITY):
            return n
        return 0 if self._count < 0 else max(0, n - self._count)

    def _index_chunks(self):
        remaining = self._count
        for chunk in self._input._index_chunks():
            if remaining < 0:
                continue
            if remaining >= chunk.size:
                remaining -= chunk.size
                continue
            yield chunk[remaining:]
            remaining = 0

    def _element_stream(self):
        elements = self._input._elements()
        if self._count < 0:
            for _ in elements:
                pass
            return iter(())
        return itertools.islice(elements, self._count, None)


class RepeatDataset(RowPreserving):
    """What ``Dataset.repeat`` returns: ``count`` fresh passes over the input (forever for -1)."""

    def __init__(self, input_dataset, count):
        super().__init__(input_dataset)
        self._count = check_count(count, "repeat()")

    def _compute_cardinality(self):
        n = self._input.cardinality()
        if self._count < 0:
            return 0 if n == 0 else INFINITE_CARDINALITY
        if self._count == 0:
            return 0
        if n in (INFINITE_CARDINALITY, UNKNOWN_CARDINALITY):
            return n
        return n * self._count

    def _passes(self, make_stream, size_of):
        passes = 0
        while self._count < 0 or passes < self._count:
            produced = 0
            for item in make_stream():
                produced += size_of(item)
                yield item
            passes += 1
            if produced == 0 and self._count < 0:
                return  # repeating an empty dataset forever gives nothing, not a hang

    def _index_chunks(self):
        return self._passes(self._input._index_chunks, lambda chunk: chunk.size)

    def _element_stream(self):
        return self._passes(self._input._elements, lambda element: 1)


class CacheDataset(RowPreserving):
    """Records the first complete iteration (the row indices, for rows of arrays) and replays it."""

    def __init__(self, input_dataset):
        super().__init__(input_dataset)
        self._cached_indices = None
        self._cached_elements = None

    def _index_chunks(self):
        if self._cached_indices is not None:
            yield self._cached_indices
            return
        seen = []
        for chunk in self._input._index_chunks():
            seen.append(chunk)
            yield chunk
        if self._cached_indices is None:  # only a complete pass is cached, as in TensorFlow
            self._cached_indices = np.concatenate(seen) if seen else np.empty(0, dtype=np.int64)

    def _element_stream(self):
        if self._cached_elements is not None:
            yield from self._cached_elements
            return
        seen = []
        for element in self._input._elements():
            seen.append(element)
            yield element
        if self._cached_elements is None:
            self._cached_elements = seen
