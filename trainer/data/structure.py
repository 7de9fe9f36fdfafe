"""Element structures for ``tf.data``: nests of tuples and dicts whose leaves are NumPy values.

Inside a pipeline an element is a nest of NumPy arrays (or NumPy scalars) kept on the host, the way
TensorFlow keeps input pipelines on the CPU; leaves become ``Tensor``s only when a user sees them.
As in TensorFlow, tuples (named or not) and dicts are structure, while a list is a value: ``[1, 2]``
is one tensor of shape (2,).
"""

from __future__ import annotations

import numpy as np

from trainer import dtypes, nest
from trainer.shapes import TensorShape, TensorSpec
from trainer.tensor import Tensor, convert_to_tensor


def normalize(value, leaf_function):
    """``value`` with tuples and dicts kept and every other part replaced by ``leaf_function(part)``."""
    if isinstance(value, dict):
        return {key: normalize(item, leaf_function) for key, item in value.items()}
    if isinstance(value, tuple):
        items = [normalize(item, leaf_function) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return leaf_function(value)


def to_array(value):
    """A host NumPy value for a tensor, an array or a Python value (Python floats become float32)."""
    if isinstance(value, Tensor):
        return value.numpy()
    if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind not in "USO":
        dtypes.of_array(value)  # rejects dtypes emberflow has no tensors for, naming the dtype
        return value
    return convert_to_tensor(value).numpy()


def to_arrays(value):
    """``value`` with every leaf a host NumPy value (see ``to_array``)."""
    return normalize(value, to_array)


def to_tensors(element):
    """An element as users see it: every leaf a ``Tensor`` on the current device."""
    return nest.map_structure(convert_to_tensor, element)


def spec_of(element):
    """The ``TensorSpec`` nest that describes one concrete element exactly."""
    return nest.map_structure(lambda leaf: TensorSpec(np.shape(leaf), _dtype_of(leaf)), element)


def _dtype_of(leaf):
    return leaf.dtype if isinstance(leaf, Tensor) else dtypes.of_array(np.asarray(leaf))


def map_specs(function, specs):
    """Applies ``function`` to every ``TensorSpec`` of a nest of specs."""
    return nest.map_structure(function, specs)


def batched_spec(spec: TensorSpec, batch_dim) -> TensorSpec:
    """``spec`` with a leading batch dimension (``None`` when batches may differ in size)."""
    return TensorSpec(TensorShape([batch_dim]).concatenate(spec.shape), spec.dtype)


def unbatched_spec(spec: TensorSpec) -> TensorSpec:
    """``spec`` without its leading dimension."""
    if spec.shape.rank == 0:
        raise ValueError(f"Unbatching a dataset is only supported for rank >= 1 components, got {spec}")
    return TensorSpec(spec.shape[1:], spec.dtype)


def same_structure(first, second) -> bool:
    """True when two nests have the same tuple/dict layout (leaves are not compared)."""
    if isinstance(first, dict) or isinstance(second, dict):
        return (
            isinstance(first, dict)
            and isinstance(second, dict)
            and sorted(first) == sorted(second)
            and all(same_structure(first[key], second[key]) for key in first)
        )
    if isinstance(first, tuple) or isinstance(second, tuple):
        return (
            isinstance(first, tuple)
            and isinstance(second, tuple)
            and len(first) == len(second)
            and all(same_structure(a, b) for a, b in zip(first, second))
        )
    return True


def most_specific_compatible(first: TensorSpec, second: TensorSpec) -> TensorSpec:
    """The spec both of two same-dtype specs satisfy: dims that differ become ``None``."""
    a, b = first.shape.as_tuple(), second.shape.as_tuple()
    if a is None or b is None or len(a) != len(b):
        return TensorSpec(TensorShape(None), first.dtype)
    return TensorSpec([x if x == y else None for x, y in zip(a, b)], first.dtype)


def stack(elements: list):
    """One batch from a list of same-structure elements, stacking each component along a new axis 0."""
    flats = [nest.flatten(element) for element in elements]
    columns = []
    for component, values in enumerate(zip(*flats)):
        first = np.shape(values[0])
        for position, value in enumerate(values):
            if np.shape(value) != first:
                raise ValueError(
                    f"Cannot batch tensors with different shapes in component {component}. First element had "
                    f"shape {list(first)} and element {position} had shape {list(np.shape(value))}."
                )
        columns.append(np.stack(values))
    return nest.pack_sequence_as(elements[0], columns)


def split_rows(element):
    """The rows of a batched element: the inverse of ``stack`` (all components share dimension 0)."""
    leaves = nest.flatten(element)
    sizes = set()
    for component, leaf in enumerate(leaves):
        if np.ndim(leaf) == 0:
            raise ValueError(f"unbatch(): component {component} is a scalar; every component needs a batch dimension")
        sizes.add(np.shape(leaf)[0])
    if len(sizes) > 1:
        shapes = ", ".join(str(np.shape(leaf)) for leaf in leaves)
        raise ValueError(f"unbatch(): components must share their first dimension, got shapes {shapes}")
    count = sizes.pop() if sizes else 0
    for row in range(count):
        yield nest.pack_sequence_as(element, [leaf[row] for leaf in leaves])
