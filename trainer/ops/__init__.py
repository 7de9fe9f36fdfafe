"""The op layer: importing this package registers every primitive op (see ``registry.py``)."""

from trainer.ops import array_ops, conv_ops, fused_ops, math_ops, nn_ops, random_ops, training_ops  # noqa: F401 - registration side effects
from trainer.ops.registry import REGISTRY, OpDef, OpError, execute, get_op, register  # noqa: F401
