"""A static memory plan: every intermediate tensor gets an offset in one arena, shared by lifetime.

Greedy by size, as TensorFlow Lite Micro's ``GreedyMemoryPlanner``: the largest buffers are placed
first, each at the lowest offset where it overlaps no already-placed buffer whose lifetime (first
writing operator to last reading operator) intersects its own.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

ALIGNMENT = 64


class Request(NamedTuple):
    """A buffer to place: its size in bytes and the operator steps (inclusive) during which it is live."""

    size: int
    first: int
    last: int


def _align(value: int) -> int:
    return (value + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def plan(requests: list[Request], share: bool = True) -> tuple[list[int], int]:
    """The offset of each request and the arena size that holds them all; ``share=False`` gives every
    request its own bytes, one after another."""
    if not share:
        offsets, end = [], 0
        for request in requests:
            offsets.append(end)
            end = _align(end + request.size)
        return offsets, end
    offsets = [0] * len(requests)
    # The placed buffers as arrays, so each placement scans them in NumPy: a hostile file's tens of
    # thousands of tensors plan in a second, where a Python loop over all pairs would take minutes.
    firsts, lasts, starts, ends = (np.zeros(len(requests), np.int64) for _ in range(4))
    placed = 0
    for i in sorted(range(len(requests)), key=lambda i: (-requests[i].size, requests[i].first, i)):
        size, first, last = requests[i]
        if size == 0:
            continue  # an empty tensor needs no bytes and blocks none
        meeting = np.flatnonzero((firsts[:placed] <= last) & (lasts[:placed] >= first))
        offset = 0
        if len(meeting):
            by_start = meeting[np.argsort(starts[meeting], kind="stable")]
            # the lowest offset below each met buffer's start that clears every met buffer before it
            cleared = np.maximum.accumulate(-(-ends[by_start] // ALIGNMENT) * ALIGNMENT)
            below = np.concatenate(([0], cleared[:-1]))
            fits = np.flatnonzero(below + size <= starts[by_start])
            offset = int(below[fits[0]] if len(fits) else cleared[-1])
        offsets[i] = offset
        firsts[placed], lasts[placed], starts[placed], ends[placed] = first, last, offset, offset + size
        placed += 1
    total = max((offsets[i] + requests[i].size for i in range(len(requests))), default=0)
    return offsets, _align(total)
