"""``tf.keras.callbacks``: hooks into ``fit``/``evaluate``/``predict``.

One file per family: ``base`` (the protocol, History, ProgbarLogger, LambdaCallback), ``monitor`` (the
shared base of metric-watching callbacks, EarlyStopping), ``learning_rate``, ``checkpoint``,
``csv_logger``, ``terminate_on_nan`` and ``tensorboard``.
"""

from trainer.keras.callbacks.base import Callback, CallbackList, History, LambdaCallback, ProgbarLogger  # noqa: F401
from trainer.keras.callbacks.checkpoint import BackupAndRestore, ModelCheckpoint  # noqa: F401
from trainer.keras.callbacks.csv_logger import CSVLogger  # noqa: F401
from trainer.keras.callbacks.learning_rate import LearningRateScheduler, ReduceLROnPlateau  # noqa: F401
from trainer.keras.callbacks.monitor import EarlyStopping, MonitorCallback  # noqa: F401
from trainer.keras.callbacks.tensorboard import TensorBoard  # noqa: F401
from trainer.keras.callbacks.terminate_on_nan import TerminateOnNaN  # noqa: F401
