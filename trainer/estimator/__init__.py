"""``tf.estimator``: ``Estimator`` with ``model_fn``/``input_fn``, ``RunConfig``, hooks, and pre-made classifiers.

Example:
    >>> estimator = tf.estimator.DNNClassifier(hidden_units=[64], feature_columns=[tf.feature_column.numeric_column("x", shape=(64,))], n_classes=10)
    >>> estimator.train(lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, y)).shuffle(1000, seed=1).batch(32).repeat(), max_steps=500)
    >>> estimator.evaluate(lambda: tf.data.Dataset.from_tensor_slices(({"x": x_test}, y_test)).batch(256))
"""

from trainer.estimator.canned.dnn import DNNClassifier
from trainer.estimator.canned.linear import LinearClassifier
from trainer.estimator.estimator import Estimator, NanLossDuringTrainingError
from trainer.estimator.hooks import SessionRunContext, SessionRunHook, SessionRunValues, StopAtStepHook
from trainer.estimator.model_fn import EstimatorSpec, ModeKeys
from trainer.estimator.run_config import RunConfig

__all__ = [
    "DNNClassifier",
    "Estimator",
    "EstimatorSpec",
    "LinearClassifier",
    "ModeKeys",
    "NanLossDuringTrainingError",
    "RunConfig",
    "SessionRunContext",
    "SessionRunHook",
    "SessionRunValues",
    "StopAtStepHook",
]
