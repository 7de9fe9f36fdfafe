"""A static memory plan: every intermediate tensor gets an offset in one arena, shared by lifetime.

Greedy by size, as TensorFlow Lite Micro's ``GreedyMemoryPlanner``: the largest buffers are placed
first, each at the lowest offset where it overlaps no already-placed buffer whose lifetime (first
writing operator to last reading operator) intersects its own.
"""

from __future__ import annotations

from typing import NamedTuple

ALIGNMENT = 64


class Request(NamedTuple):
    """A buffer to place: its size in bytes and the operator steps (inclusive) during which it is live."""

    size: int
    first: int
    last: int


def _align(value: int) -> int:
    return (value + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def plan(requests: list[Request]) -> tuple[list[int], int]:
    """The offset of each request and the arena size that holds them all."""
    offsets = [0] * len(requests)
    placed: list[int] = []
    order = sorted(range(len(requests)), key=lambda i: (-requests[i].size, requests[i].first, i))
    for i in order:
        request = requests[i]
        overlapping = sorted(
            (offsets[j], offsets[j] + requests[j].size)
            for j in placed
            if requests[j].first <= request.last and request.first <= requests[j].last
        )
        offset = 0
        for start, end in overlapping:
            if offset + request.size <= start:
                break
            offset = max(offset, _align(end))
        offsets[i] = offset
        placed.append(i)
    total = max((offsets[i] + requests[i].size for i in range(len(requests))), default=0)
    return offsets, _align(total)
