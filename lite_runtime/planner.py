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
    # step -> the placed requests live then: a request is checked only against those its lifetime meets,
    # so a long chain of operators plans in linear time rather than comparing every pair.
    live: dict[int, list[int]] = {}
    order = sorted(range(len(requests)), key=lambda i: (-requests[i].size, requests[i].first, i))
    for i in order:
        request = requests[i]
        if request.size == 0:
            continue  # an empty tensor needs no bytes and blocks none
        steps = range(request.first, request.last + 1)
        meeting = {j for step in steps for j in live.get(step, ())}
        offset = 0
        for start, end in sorted((offsets[j], offsets[j] + requests[j].size) for j in meeting):
            if offset + request.size <= start:
                break
            offset = max(offset, _align(end))
        offsets[i] = offset
        for step in steps:
            live.setdefault(step, []).append(i)
    total = max((offsets[i] + requests[i].size for i in range(len(requests))), default=0)
    return offsets, _align(total)
