"""``tf.estimator.LinearClassifier``: logistic (or softmax) regression over numeric feature columns."""

from __future__ import annotations

import math

from trainer.estimator.canned.head import check_labels, check_n_classes, classifier_spec, optimizer_factory
from trainer.estimator.estimator import Estimator
from trainer.feature_column.numeric import check_columns, dense_input

_LEARNING_RATE = 0.2  # TensorFlow's linear estimators: min(0.2, 1 / sqrt(number of columns))


class LinearClassifier(Estimator):
    """A linear classifier, like ``tf.estimator.LinearClassifier`` (TF2 defaults).

    Args:
        feature_columns: ``tf.feature_column.numeric_column`` objects naming the features.
        model_dir, config, warm_start_from: as for ``tf.estimator.Estimator``.
        n_classes: the number of classes (labels are integers in ``[0, n_classes)``), at least 2.
        optimizer: "Ftrl" (the default), "Adagrad", "Adam", "RMSprop" or "SGD", each with learning rate
            ``min(0.2, 1 / sqrt(len(feature_columns)))``; a Keras optimizer; or a callable returning one.
        weight_column, label_vocabulary: not supported by emberflow (must be ``None``).
        sparse_combiner: accepted for compatibility (numeric columns have nothing to combine).

    ``predict`` yields dicts with "logits", "probabilities" and "class_ids" (and "logistic" for two classes);
    ``evaluate`` reports "accuracy", "average_loss", "loss" and "global_step".
    """

    def __init__(
        self,
        feature_columns,
        model_dir=None,
        n_classes=2,
        weight_column=None,
        label_vocabulary=None,
        optimizer="Ftrl",
        config=None,
        warm_start_from=None,
        loss_reduction="sum_over_batch_size",
        sparse_combiner="sum",
    ):
        if weight_column is not None or label_vocabulary is not None:
            raise NotImplementedError("LinearClassifier: weight_column and label_vocabulary are not supported by emberflow; pass integer labels")
        if loss_reduction != "sum_over_batch_size":
            raise NotImplementedError(f"LinearClassifier(loss_reduction={loss_reduction!r}) is not supported by emberflow; the loss is the batch mean")
        columns = check_columns(feature_columns, "LinearClassifier")
        n_classes = check_n_classes(n_classes, "LinearClassifier")
        make_optimizer = optimizer_factory(optimizer, min(_LEARNING_RATE, 1.0 / math.sqrt(len(columns))), "LinearClassifier")

        def model_fn(features, labels, mode):
            from trainer.keras import layers  # noqa: PLC0415

            linear = layers.Dense(1 if n_classes == 2 else n_classes, kernel_initializer="zeros", name="linear_model")

            def logits_fn(training):
                return linear(dense_input(features, columns))

            return classifier_spec(mode, labels, n_classes, logits_fn, lambda: linear.trainable_variables, make_optimizer)

        super().__init__(model_fn, model_dir=model_dir, config=config, warm_start_from=warm_start_from)
        self._n_classes = n_classes

    def _check_labels(self, labels) -> None:
        check_labels(labels, self._n_classes, "LinearClassifier")
