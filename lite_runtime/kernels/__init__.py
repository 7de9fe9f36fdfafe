"""The kernel table: builtin operator code -> ``Kernel`` (prepare + eval), one file per operator family."""

from __future__ import annotations

from lite_runtime.kernels import array, conv, elementwise, fully_connected, pooling, reduce, unary
from lite_runtime.kernels.base import Kernel, Node, TensorInfo

KERNELS: dict[int, Kernel] = {}
for _module in (array, conv, elementwise, fully_connected, pooling, reduce, unary):
    KERNELS.update(_module.KERNELS)

__all__ = ["KERNELS", "Kernel", "Node", "TensorInfo"]
