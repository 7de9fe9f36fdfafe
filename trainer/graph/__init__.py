"""Graphs: the IR (``ir.py``), tracing Python into it (``tracing.py``, ``function.py``) and running it."""

from trainer.graph.evaluator import Executable  # noqa: F401
from trainer.graph.function import ConcreteFunction, Function, function  # noqa: F401
from trainer.graph.ir import Graph, GraphError, Node, Value  # noqa: F401
