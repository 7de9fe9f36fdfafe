"""``tf.train.experimental``: ``PythonState``, and emberflow's ``GlobalRandomState``."""

from trainer.train.random_state import GlobalRandomState
from trainer.train.trackable import PythonState

__all__ = ["GlobalRandomState", "PythonState"]
