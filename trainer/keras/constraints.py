"""``tf.keras.constraints``: projections the optimizer applies to a weight after each update."""

from __future__ import annotations

from trainer.keras.saving.registration import deserialize as _deserialize
from trainer.keras.saving.registration import keras_serializable
from trainer.keras.saving.registration import serialize as _serialize
from trainer.ops import array_ops, math_ops


class Constraint:
    """Base class: ``constraint(weight)`` returns the projected weight."""

    def __call__(self, w):
        return w

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras_serializable("constraints", "non_neg")
class NonNeg(Constraint):
    def __call__(self, w):
        return math_ops.maximum(w, 0.0)


@keras_serializable("constraints", "max_norm")
class MaxNorm(Constraint):
    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = max_value, axis

    def __call__(self, w):
        norms = math_ops.sqrt(math_ops.reduce_sum(math_ops.square(w), self.axis, keepdims=True))
        desired = array_ops.clip_by_value(norms, 0.0, float(self.max_value))
        return math_ops.multiply(w, math_ops.divide(desired, math_ops.add(norms, 1e-7)))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


@keras_serializable("constraints", "unit_norm")
class UnitNorm(Constraint):
    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        norms = math_ops.sqrt(math_ops.reduce_sum(math_ops.square(w), self.axis, keepdims=True))
        return math_ops.divide(w, math_ops.add(norms, 1e-7))

    def get_config(self):
        return {"axis": self.axis}


def get(identifier):
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        return _deserialize("constraints", identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"could not interpret constraint {identifier!r}")


def serialize(constraint):
    return _serialize(constraint)


deserialize = get
