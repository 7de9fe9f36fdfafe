"""Flattening and rebuilding nested lists, tuples and dicts (the structures ``gradient`` accepts)."""

from __future__ import annotations


def is_nested(value) -> bool:
    return isinstance(value, (list, tuple, dict))


def flatten(structure) -> list:
    """Leaves of ``structure`` in a stable order (dicts by sorted key, as TensorFlow does)."""
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in flatten(structure[key])]
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    return [structure]


def pack_sequence_as(structure, flat: list):
    """Rebuilds ``structure`` with its leaves replaced, in order, by ``flat``."""
    leaves = iter(flat)

    def build(node):
        if isinstance(node, dict):
            return {key: build(node[key]) for key in sorted(node)}
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            return type(node)(*(build(item) for item in node))
        if isinstance(node, (list, tuple)):
            return type(node)(build(item) for item in node)
        return next(leaves)

    result = build(structure)
    if isinstance(structure, dict):  # keep the caller's key order
        result = {key: result[key] for key in structure}
    return result


def map_structure(function, structure):
    return pack_sequence_as(structure, [function(leaf) for leaf in flatten(structure)])
