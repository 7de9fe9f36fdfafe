"""The kernel table: builtin operator code -> ``Kernel`` (prepare + eval), one file per operator family.

Operators with quantized kernels (``quantized``, ``quantized_linear``, ``quantized_conv``) get one entry that picks the
float32 or the quantized kernel by the tensor types (``base.by_tensor_type``).
"""

from __future__ import annotations

from lite_runtime.kernels import (array, conv, elementwise, fully_connected, pooling, quantized, quantized_conv,
                                  quantized_linear, reduce, unary)  # fmt: skip
from lite_runtime.kernels.base import Kernel, Node, TensorInfo, by_tensor_type

KERNELS: dict[int, Kernel] = {}
for _module in (array, conv, elementwise, fully_connected, pooling, reduce, unary):
    KERNELS.update(_module.KERNELS)
for _module in (quantized, quantized_linear, quantized_conv):
    KERNELS.update({code: by_tensor_type(KERNELS.get(code), prepare) for code, prepare in _module.PREPARES.items()})

__all__ = ["KERNELS", "Kernel", "Node", "TensorInfo"]
