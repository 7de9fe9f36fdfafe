"""The global random generator's state as checkpointable Python state, for resuming training exactly."""

from __future__ import annotations

import json

from trainer.ops import random_ops
from trainer.train.trackable import CheckpointError, PythonState


def get_global_state() -> dict:
    """The state of the generator behind initializers, dropout and shuffles, as a JSON-able dict."""
    return random_ops.generator().bit_generator.state


def set_global_state(state) -> None:
    """Puts the global generator back into ``state`` (from ``get_global_state``); a malformed one is an error."""
    generator = random_ops.generator().bit_generator
    if not isinstance(state, dict) or state.get("bit_generator") != type(generator).__name__:
        raise CheckpointError(f"random generator state must be a {type(generator).__name__} state dict, got {str(state)[:200]}")
    try:
        generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise CheckpointError(f"invalid random generator state: {error}") from None


class GlobalRandomState(PythonState):
    """Checkpoints the global random generator, so a resumed run draws the same shuffles and dropout masks.

    An emberflow addition (TensorFlow checkpoints ``tf.random.Generator`` objects instead).

    Example:
        >>> checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, rng=tf.train.experimental.GlobalRandomState())
    """

    def serialize(self) -> str:
        return json.dumps(get_global_state())

    def deserialize(self, string: str) -> None:
        try:
            state = json.loads(string)
        except ValueError as error:
            raise CheckpointError(f"random generator state is not JSON: {error}") from None
        set_global_state(state)
