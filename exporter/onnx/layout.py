"""NHWC (our IR) versus NCHW (ONNX Conv and pooling): the permutations, weight layouts and transpose cleanup.

The IR keeps TensorFlow's channels-last images; ONNX convolutions and pools want channels first. The
lowering keeps each rank-4 value in the layout its producer left it in and transposes only when a
consumer needs the other one (``context.GraphScope.get``), so a conv stack runs channels-first from
its first convolution to the op that needs channels-last again (a Flatten), with one transpose at
each end. ``fold_transposes`` then merges transposes that follow each other (a user's own
``tf.transpose`` next to a layout change).
"""

from __future__ import annotations

import numpy as np

NATURAL = "natural"  # the IR's own layout (NHWC for images)
CHANNELS_FIRST = "channels_first"  # NCHW: a rank-4 value transposed by TO_CHANNELS_FIRST

TO_CHANNELS_FIRST = (0, 3, 1, 2)
TO_CHANNELS_LAST = (0, 2, 3, 1)


def channels_first_axis(axis: int) -> int:
    """Where natural (NHWC) axis ``axis`` of a rank-4 value sits in its NCHW form."""
    return TO_CHANNELS_LAST[axis % 4]


def channels_first_array(array: np.ndarray) -> np.ndarray:
    """A constant that broadcasts against NHWC values, rearranged to broadcast against their NCHW forms."""
    shaped = np.reshape(array, (1,) * (4 - array.ndim) + array.shape)
    return np.ascontiguousarray(shaped.transpose(TO_CHANNELS_FIRST))


def conv_filter(filters: np.ndarray) -> np.ndarray:
    """TensorFlow's conv2d filter ``[kh, kw, in, out]`` (HWIO) as ONNX's ``[out, in, kh, kw]`` (OIHW)."""
    return np.ascontiguousarray(filters.transpose(3, 2, 0, 1))


def depthwise_filter(filters: np.ndarray) -> np.ndarray:
    """A depthwise filter ``[kh, kw, in, multiplier]`` as the grouped-conv filter ``[in * multiplier, 1, kh, kw]``.

    TensorFlow's output channel ``c * multiplier + m`` reads ``filters[:, :, c, m]``, which is exactly the
    row-major flattening of the last two axes, so a reshape to ``[kh, kw, 1, in * multiplier]`` makes it an
    HWIO filter with one input channel per group.
    """
    kh, kw, channels, multiplier = filters.shape
    return conv_filter(filters.reshape(kh, kw, 1, channels * multiplier))


def compose(first: tuple, second: tuple) -> tuple:
    """The single permutation equal to transposing by ``first`` and then by ``second``."""
    return tuple(first[axis] for axis in second)


def fold_transposes(nodes: list, keep: set) -> list:
    """``nodes`` (onnx NodeProtos in order) with chained Transposes merged and inverse pairs removed.

    ``keep`` holds tensor names that must survive (graph outputs). A Transpose whose input comes from
    another Transpose is rewritten to read the first one's input with the composed permutation; when
    that composition is the identity its consumers read the original tensor directly. Nodes left without
    consumers (the now unused transposes) are dropped.
    """
    producer = {}
    alias: dict[str, str] = {}
    for node in nodes:
        _rename_inputs(node, alias)
        if node.op_type == "Transpose" and node.input[0] in producer:
            upstream = producer[node.input[0]]
            if upstream.op_type == "Transpose":
                perm = compose(_perm(upstream), _perm(node))
                if perm == tuple(range(len(perm))) and node.output[0] not in keep:
                    alias[node.output[0]] = upstream.input[0]
                    continue
                node.input[0] = upstream.input[0]
                del node.attribute[:]
                node.attribute.extend([_perm_attribute(perm)])
        for name in node.output:
            producer[name] = node
    return _drop_unused(nodes, keep)


def _perm(node) -> tuple:
    return tuple(next(attribute.ints for attribute in node.attribute if attribute.name == "perm"))


def _perm_attribute(perm):
    from onnx import helper  # noqa: PLC0415 - onnx is imported only for ONNX export

    return helper.make_attribute("perm", list(perm))


def _rename_inputs(node, alias: dict) -> None:
    """Points ``node`` (and the subgraphs it holds, which may read outer names) at aliased tensors."""
    if not alias:
        return
    for index, name in enumerate(node.input):
        if name in alias:
            node.input[index] = alias[name]
    for attribute in node.attribute:
        if attribute.g.node:
            for inner in attribute.g.node:
                _rename_inputs(inner, alias)


def _drop_unused(nodes: list, keep: set) -> list:
    used = set(keep)
    kept = []
    for node in reversed(nodes):
        if any(name in used for name in node.output):
            kept.append(node)
            used.update(node.input)
            used.update(_outer_reads(node))
    return kept[::-1]


def _outer_reads(node) -> set:
    """Names a node's subgraphs read, which may come from the enclosing graph (all of them, to be safe)."""
    names = set()
    for attribute in node.attribute:
        for inner in attribute.g.node:
            names.update(inner.input)
            names.update(_outer_reads(inner))
    return names
