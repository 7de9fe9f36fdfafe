"""``tf.keras.regularizers``: weight penalties that layers add to the training loss."""

from __future__ import annotations

from trainer.keras.saving.registration import deserialize as _deserialize
from trainer.keras.saving.registration import keras_serializable
from trainer.keras.saving.registration import serialize as _serialize
from trainer.ops import math_ops


class Regularizer:
    """Base class: ``regularizer(weight)`` returns a scalar penalty tensor."""

    def __call__(self, x):
        return 0.0

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras_serializable("regularizers", "l1_l2")
class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x^2)``."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, x):
        penalty = None
        if self.l1:
            penalty = math_ops.multiply(math_ops.reduce_sum(math_ops.abs(x)), self.l1)
        if self.l2:
            term = math_ops.multiply(math_ops.reduce_sum(math_ops.square(x)), self.l2)
            penalty = term if penalty is None else math_ops.add(penalty, term)
        return penalty if penalty is not None else math_ops.multiply(math_ops.reduce_sum(x), 0.0)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


@keras_serializable("regularizers", "l1")
class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


@keras_serializable("regularizers", "l2")
class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1_l2 = L1L2


def get(identifier):
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        return _deserialize("regularizers", identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"could not interpret regularizer {identifier!r}")


def serialize(regularizer):
    return _serialize(regularizer)


deserialize = get
