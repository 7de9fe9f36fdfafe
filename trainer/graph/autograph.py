"""AutoGraph: converts Python control flow on tensors into graph ops (filled in with the control-flow work)."""

from __future__ import annotations


def convert(function):
    """Returns ``function`` rewritten so that tensor-valued ``if``/``while``/``for`` become graph ops.

    Until the conversion lands this returns the function unchanged: Python control flow on Python
    values unrolls at trace time, and control flow on a symbolic tensor raises a clear error from
    ``Tensor.__bool__``.
    """
    return function
