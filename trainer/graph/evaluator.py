"""Running a ``Graph``: a flat plan of kernel calls over numbered slots, with no per-op dispatch.

``Executable(graph)`` resolves everything once — kernels, attributes, slot numbers, when each value
dies — so a call is one loop of ``kernel(*args)`` over preplanned slots, each kernel bound to its
array module and attributes ahead of time. Intermediate arrays are dropped after their last use, so
peak memory follows the schedule, not the graph size.
"""

from __future__ import annotations

import functools

import numpy as np

from trainer import backend
from trainer.graph.ir import Graph


class Executable:
    """A graph compiled into a plan; ``run(*arrays)`` returns the output arrays."""

    def __init__(self, graph: Graph):
        self.graph = graph
        slot_of: dict[int, int] = {}

        def slot(value) -> int:
            if value.id not in slot_of:
                slot_of[value.id] = len(slot_of)
            return slot_of[value.id]

        self._input_slots = [slot(v) for v in graph.inputs]
        self._constants = [(slot(v), v.data) for v in graph.constants]
        self._variables = [(slot(v), v.variable) for v in graph.variables]
        last_use: dict[int, int] = {}
        for position, node in enumerate(graph.nodes):
            for value in node.inputs:
                last_use[slot(value)] = position
            for value in node.outputs:
                slot(value)
        output_slots = [slot(v) for v in graph.outputs]
        keep = set(output_slots) | {s for s, _ in self._constants} | {s for s, _ in self._variables} | set(self._input_slots)
        self._steps = []
        for position, node in enumerate(graph.nodes):
            inputs = tuple(slot_of[v.id] for v in node.inputs)
            outputs = tuple(slot_of[v.id] for v in node.outputs)
            free = tuple(s for s in set(inputs) if last_use.get(s) == position and s not in keep)
            self._steps.append((node.op.forward, inputs, outputs, node.attrs, free))
        self._output_slots = output_slots
        self._size = len(slot_of)
        self._plans: dict = {}  # array module -> the steps with kernels bound to it

    def _plan(self, xp) -> list:
        """The steps as ``(kernel, input slots, output slots, slots to free)``, kernels bound to ``xp``."""
        plan = self._plans.get(xp)
        if plan is None:
            plan = self._plans[xp] = [
                (functools.partial(forward, xp, **attrs), inputs, outputs, free)
                for forward, inputs, outputs, attrs, free in self._steps
            ]
        return plan

    def run(self, *arrays):
        env = [None] * self._size
        for index, array in zip(self._input_slots, arrays):
            env[index] = array
        for index, array in self._constants:
            env[index] = array
        for index, variable in self._variables:
            env[index] = variable._value
        xp = np
        if backend.cupy_in_use:
            xp = backend.check_same_device([a for a in env if a is not None], self.graph.name or "graph")
        for kernel, inputs, outputs, free in self._plan(xp):
            result = kernel(*[env[i] for i in inputs])
            if len(outputs) == 1:
                env[outputs[0]] = result
            elif outputs:
                for index, item in zip(outputs, result):
                    env[index] = item
            for index in free:
                env[index] = None
        return [env[i] for i in self._output_slots]
