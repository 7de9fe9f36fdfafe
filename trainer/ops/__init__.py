"""The op layer: importing this package registers every primitive op (see ``registry.py``)."""

from trainer.ops import (  # noqa: F401 - registration side effects
    array_ops,
    conv_ops,
    fused_ops,
    math_ops,
    nn_ops,
    patch_ops,
    phase_ops,
    pool_grad_ops,
    random_ops,
    training_ops,
)
from trainer.ops.registry import REGISTRY, OpDef, OpError, execute, get_op, register  # noqa: F401
