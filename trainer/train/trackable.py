"""What a checkpoint holds: every tracked object's state under a stable key.

A ``tf.train.Checkpoint`` tracks objects by attribute name; this module walks them and names each
piece of state by its path, as TensorFlow's object-based checkpoints do:

* a ``tf.Variable`` is the value at its attribute's path (``"step"``);
* a Keras layer or model holds its weights by position, not by (process-dependent) layer name:
  ``"model/layer_with_weights-0/kernel"``;
* an optimizer holds its variables in ``optimizer.variables`` order (iterations, learning rate, slots):
  ``"optimizer/0"``, ``"optimizer/1"``, ...;
* a ``PythonState`` holds one JSON-able string (``"rng"``);
* a nested ``Checkpoint`` prefixes its children with its attribute name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trainer.keras.saving.weights_store import owned_weights
from trainer.variables import Variable

_ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CheckpointError(ValueError):
    """A checkpoint cannot be written, read or matched to the objects; the message names the file and the value."""


class PythonState:
    """A Python object whose state a checkpoint saves as a string, like ``tf.train.experimental.PythonState``.

    Subclasses implement ``serialize() -> str`` and ``deserialize(string)``. The string is stored as
    text in the checkpoint (never executed), so keep it small: a step count, a JSON document.

    Example:
        >>> class Counter(tf.train.experimental.PythonState):
        ...     def __init__(self):
        ...         self.count = 0
        ...     def serialize(self):
        ...         return str(self.count)
        ...     def deserialize(self, string):
        ...         self.count = int(string)
        >>> checkpoint = tf.train.Checkpoint(counter=Counter())
    """

    def serialize(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement serialize() -> str")

    def deserialize(self, string: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement deserialize(string)")


@dataclass
class TrackedValue:
    """One variable of the object graph: its checkpoint key, the variable, and a description for errors."""

    key: str
    variable: Variable
    description: str


@dataclass
class TrackedGraph:
    """Everything a checkpoint of some objects holds, walked from its root."""

    values: list  # TrackedValue
    python_states: dict  # key -> PythonState
    unbuilt_layers: dict  # key prefix -> layer that has no weights yet
    optimizers: dict  # key prefix -> optimizer


def is_trackable(value) -> bool:
    """Whether a checkpoint can hold ``value``: a variable, layer, model, optimizer, PythonState or Checkpoint."""
    from trainer.keras.layers.base import Layer  # noqa: PLC0415 - keras imports the whole layer stack
    from trainer.keras.optimizers.base import Optimizer  # noqa: PLC0415

    return isinstance(value, (Variable, Layer, Optimizer, PythonState)) or hasattr(value, "_checkpoint_children")


def check_child(name: str, value, owner: str) -> None:
    """Refuses attribute names that cannot be keys and objects a checkpoint cannot hold."""
    if not _ATTRIBUTE_NAME.fullmatch(name):
        raise ValueError(f"{owner}: attribute name {name!r} is not a Python identifier")
    if not is_trackable(value):
        raise TypeError(
            f"{owner}: '{name}' is a {type(value).__name__}; a checkpoint tracks tf.Variable, Keras layers and models, "
            "optimizers, tf.train.experimental.PythonState and nested tf.train.Checkpoint objects"
        )


def walk(children: dict) -> TrackedGraph:
    """The tracked values under ``children`` (``{attribute: object}``); an object met twice is walked once."""
    from trainer.keras.layers.base import Layer  # noqa: PLC0415
    from trainer.keras.optimizers.base import Optimizer  # noqa: PLC0415

    graph = TrackedGraph([], {}, {}, {})
    seen: set[int] = set()

    def visit(prefix: str, value) -> None:
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, Variable):
            graph.values.append(TrackedValue(prefix, value, f"variable '{value.name}'"))
        elif isinstance(value, PythonState):
            graph.python_states[prefix] = value
        elif isinstance(value, Optimizer):
            graph.optimizers[prefix] = value
            for index, variable in enumerate(value.variables):
                graph.values.append(TrackedValue(f"{prefix}/{index}", variable, f"{type(value).__name__} variable '{variable.name}'"))
        elif isinstance(value, Layer):
            _visit_layer(prefix, value, graph)
        else:  # a nested Checkpoint
            for name, child in value._checkpoint_children().items():
                visit(f"{prefix}/{name}", child)

    for name, value in children.items():
        visit(name, value)
    return graph


def _visit_layer(prefix: str, layer, graph: TrackedGraph) -> None:
    holders = [(path, owner, weights) for path, owner, weights in owned_weights(layer) if weights]
    if not holders and not layer.built:
        graph.unbuilt_layers[prefix] = layer
    for position, (path, owner, weights) in enumerate(holders):
        used: set[str] = set()
        for index, variable in enumerate(weights):
            short = variable.name.rsplit(":", 1)[0].rsplit("/", 1)[-1]
            short = short if short not in used and _ATTRIBUTE_NAME.fullmatch(short) else f"weight_{index}"
            used.add(short)
            where = f"layer '{path or layer.name}' ({type(owner).__name__})"
            graph.values.append(TrackedValue(f"{prefix}/layer_with_weights-{position}/{short}", variable, f"{where} weight '{short}'"))
