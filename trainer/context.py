"""Per-thread execution state: the active gradient tapes and the graph being traced, if any."""

from __future__ import annotations

import threading


class _ExecutionState(threading.local):
    def __init__(self):
        self.tapes: list = []  # recording GradientTapes, innermost last
        self.graph = None  # the graph builder of an enclosing trace (see trainer.function)
        self.name_scopes: list[str] = []


state = _ExecutionState()
