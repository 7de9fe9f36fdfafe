"""``TerminateOnNaN``: stops training cleanly at the first NaN or infinite loss."""

from __future__ import annotations

import math

from trainer.keras.callbacks.base import Callback
from trainer.keras.saving.registration import keras_serializable


@keras_serializable("callbacks")
class TerminateOnNaN(Callback):
    """Stops training when a batch's loss is NaN or infinite.

    Without it ``fit`` raises ``NonFiniteLossError`` with a diagnosis; with it, ``fit`` lets the batch
    finish and this callback sets ``model.stop_training`` (Keras's behaviour), so ``fit`` returns.
    """

    handles_non_finite_loss = True  # read by CallbackList, which fit asks before raising

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
