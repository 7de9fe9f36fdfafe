"""``tf.train``: object-based checkpoints (``Checkpoint``), their management and inspection.

Example:
    >>> checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    >>> manager = tf.train.CheckpointManager(checkpoint, "/tmp/run", max_to_keep=3)
    >>> checkpoint.restore(manager.latest_checkpoint)   # None on the first run: nothing to restore
    >>> manager.save()
"""

from trainer.train import experimental
from trainer.train.checkpoint import Checkpoint, LoadStatus
from trainer.train.checkpoint_management import CheckpointManager, CheckpointState, get_checkpoint_state, latest_checkpoint
from trainer.train.inspection import list_variables, load_checkpoint, load_variable
from trainer.train.trackable import CheckpointError

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointManager",
    "CheckpointState",
    "LoadStatus",
    "experimental",
    "get_checkpoint_state",
    "latest_checkpoint",
    "list_variables",
    "load_checkpoint",
    "load_variable",
]
