"""Binds Python operators (``+``, ``@``, ``[]``, ``<`` ...) on ``Tensor`` to the registered ops.

The functions are looked up when an operator runs, not when it is bound, because ``Tensor`` is
defined before the op modules that implement it finish importing.
"""

from __future__ import annotations

import sys

_BINARY = {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "truediv": "divide",
    "floordiv": "floordiv",
    "mod": "floormod",
    "pow": "pow",
    "matmul": "matmul",
    "and": "logical_and",
    "or": "logical_or",
}
_COMPARISONS = {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal", "eq": "equal", "ne": "not_equal"}
_UNARY = {"neg": "negative", "abs": "abs", "invert": "logical_not"}


def _math(name):
    return getattr(sys.modules["trainer.ops.math_ops"], name)


def _forward(function_name):
    def operator(self, other):
        return _math(function_name)(self, other)

    return operator


def _reflected(function_name):
    def operator(self, other):
        return _math(function_name)(other, self)

    return operator


def _unary(function_name):
    def operator(self):
        return _math(function_name)(self)

    return operator


def _getitem(self, key):
    return sys.modules["trainer.ops.array_ops"].getitem(self, key)


def install(tensor_class) -> None:
    for dunder, function_name in _BINARY.items():
        setattr(tensor_class, f"__{dunder}__", _forward(function_name))
        setattr(tensor_class, f"__r{dunder}__", _reflected(function_name))
    for dunder, function_name in _COMPARISONS.items():
        setattr(tensor_class, f"__{dunder}__", _forward(function_name))
    for dunder, function_name in _UNARY.items():
        setattr(tensor_class, f"__{dunder}__", _unary(function_name))
    tensor_class.__pos__ = lambda self: self
    tensor_class.__getitem__ = _getitem
