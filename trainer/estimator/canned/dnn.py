"""``tf.estimator.DNNClassifier``: a feed-forward network over numeric feature columns."""

from __future__ import annotations

from trainer.estimator.canned.head import check_labels, check_n_classes, classifier_spec, optimizer_factory
from trainer.estimator.estimator import Estimator
from trainer.feature_column.numeric import check_columns, dense_input

_LEARNING_RATE = 0.05  # TensorFlow's DNN estimators' default for a named optimizer


class DNNClassifier(Estimator):
    """A classifier of fully connected hidden layers, like ``tf.estimator.DNNClassifier`` (TF2 defaults).

    Args:
        hidden_units: the width of each hidden layer, e.g. ``[64, 32]``.
        feature_columns: ``tf.feature_column.numeric_column`` objects naming the features.
        model_dir, config, warm_start_from: as for ``tf.estimator.Estimator``.
        n_classes: the number of classes (labels are integers in ``[0, n_classes)``), at least 2.
        optimizer: "Adagrad" (the default, with learning rate 0.05), "Adam", "Ftrl", "RMSprop", "SGD"
            (each with learning rate 0.05), a Keras optimizer, or a callable returning one.
        activation_fn: the hidden layers' activation (a Keras activation name or function; ``relu``).
        dropout: the rate of the dropout after every hidden layer while training (``None``: none).
        batch_norm: not supported by emberflow (must be False).
        weight_column, label_vocabulary: not supported by emberflow (must be ``None``).

    ``predict`` yields dicts with "logits", "probabilities" and "class_ids" (and "logistic" for two classes);
    ``evaluate`` reports "accuracy", "average_loss", "loss" and "global_step".
    """

    def __init__(
        self,
        hidden_units,
        feature_columns,
        model_dir=None,
        n_classes=2,
        weight_column=None,
        label_vocabulary=None,
        optimizer="Adagrad",
        activation_fn="relu",
        dropout=None,
        config=None,
        warm_start_from=None,
        loss_reduction="sum_over_batch_size",
        batch_norm=False,
    ):
        if weight_column is not None or label_vocabulary is not None:
            raise NotImplementedError("DNNClassifier: weight_column and label_vocabulary are not supported by emberflow; pass integer labels")
        if batch_norm:
            raise NotImplementedError("DNNClassifier(batch_norm=True) is not supported by emberflow")
        if loss_reduction != "sum_over_batch_size":
            raise NotImplementedError(f"DNNClassifier(loss_reduction={loss_reduction!r}) is not supported by emberflow; the loss is the batch mean")
        if not hidden_units or not all(isinstance(units, int) and units > 0 for units in hidden_units):
            raise ValueError(f"DNNClassifier: hidden_units must be a non-empty list of positive integers, got {hidden_units!r}")
        if dropout is not None and not 0 <= dropout < 1:
            raise ValueError(f"DNNClassifier: dropout must be in [0, 1), got {dropout!r}")
        columns = check_columns(feature_columns, "DNNClassifier")
        n_classes = check_n_classes(n_classes, "DNNClassifier")
        make_optimizer = optimizer_factory(optimizer, _LEARNING_RATE, "DNNClassifier")
        hidden_units = list(hidden_units)

        def model_fn(features, labels, mode):
            from trainer.keras import layers  # noqa: PLC0415

            stack = []
            for units in hidden_units:
                stack.append(layers.Dense(units, activation=activation_fn))
                if dropout:
                    stack.append(layers.Dropout(dropout))
            stack.append(layers.Dense(1 if n_classes == 2 else n_classes, name="logits"))

            def logits_fn(training):
                value = dense_input(features, columns)
                for layer in stack:
                    value = layer(value, training=training)
                return value

            def trainable_variables():
                return [variable for layer in stack for variable in layer.trainable_variables]

            return classifier_spec(mode, labels, n_classes, logits_fn, trainable_variables, make_optimizer)

        super().__init__(model_fn, model_dir=model_dir, config=config, warm_start_from=warm_start_from)
        self._n_classes = n_classes

    def _check_labels(self, labels) -> None:
        check_labels(labels, self._n_classes, "DNNClassifier")
