"""The classification head the pre-made classifiers share: logits to loss, predictions and metrics."""

from __future__ import annotations

import numpy as np

from trainer import nn
from trainer.estimator.model_fn import EstimatorSpec, ModeKeys
from trainer.ops import array_ops, math_ops
from trainer.tape import GradientTape


def check_n_classes(n_classes, owner: str) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"{owner}: n_classes must be an integer >= 2, got {n_classes!r}")
    return n_classes


def check_labels(labels, n_classes: int, owner: str) -> None:
    """Refuses labels outside ``[0, n_classes)`` (binary: 0 or 1), like TensorFlow's classification heads."""
    if labels is None:
        return
    values = np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels)
    if values.size == 0:
        return
    if values.dtype.kind not in "iub" and not np.all(np.mod(values, 1) == 0):
        bad = values[np.mod(values, 1) != 0].flat[0].item()
        raise ValueError(f"{owner}: labels must be integer class ids in [0, {n_classes}), got {bad!r}")
    low, high = values.min(), values.max()
    if low < 0 or high > n_classes - 1:
        expected = "0 or 1 (a binary classifier)" if n_classes == 2 else f"class ids in [0, {n_classes})"
        bad = (low if low < 0 else high).item()
        raise ValueError(f"{owner}: labels must be {expected}; got label {bad!r} (Labels must be >= 0 and <= n_classes - 1 = {n_classes - 1})")


def optimizer_factory(optimizer, default_learning_rate: float, owner: str):
    """A function making a fresh optimizer for every trace of the model_fn, from what the user passed.

    A name gets the pre-made estimator's default learning rate (as TensorFlow does); an optimizer
    instance is copied from its config (its state lives in the checkpoint); a callable is called.
    """
    from trainer.keras import optimizers  # noqa: PLC0415

    if isinstance(optimizer, str):
        optimizers.get(optimizer)  # unknown names fail here, when the estimator is made
        return lambda: optimizers.get({"class_name": optimizer, "config": {"learning_rate": default_learning_rate}})
    if isinstance(optimizer, optimizers.Optimizer):
        config = optimizer.get_config()
        return lambda: type(optimizer).from_config(config)
    if callable(optimizer):
        return optimizer
    raise TypeError(f"{owner}: optimizer must be a name ('Adagrad', 'Adam', 'Ftrl', 'RMSprop', 'SGD'), an optimizer or a callable, got {type(optimizer).__name__}")


def classifier_spec(mode, labels, n_classes: int, logits_fn, trainable_variables_fn, make_optimizer) -> EstimatorSpec:
    """The ``EstimatorSpec`` of a classifier whose ``logits_fn(training)`` computes ``[batch, logits]``.

    Binary classifiers have one logit and a sigmoid loss; multi-class ones ``n_classes`` logits and a
    softmax loss. The loss is the mean over the batch (TensorFlow's SUM_OVER_BATCH_SIZE).
    """
    from trainer.keras import losses, metrics  # noqa: PLC0415

    with GradientTape() as tape:
        logits = logits_fn(mode == ModeKeys.TRAIN)
        if mode != ModeKeys.PREDICT:
            label_ids = math_ops.cast(array_ops.reshape(labels, (-1,)), "int64")
            if n_classes == 2:
                per_example = losses.binary_crossentropy(math_ops.cast(array_ops.reshape(labels, (-1, 1)), "float32"), logits, from_logits=True)
            else:
                per_example = losses.sparse_categorical_crossentropy(label_ids, logits, from_logits=True)
            loss = math_ops.reduce_mean(per_example)
    if n_classes == 2:
        logistic = nn.sigmoid(logits)
        probabilities = array_ops.concat([1.0 - logistic, logistic], axis=1)
    else:
        probabilities = nn.softmax(logits)
    class_ids = math_ops.argmax(probabilities, axis=1)
    if mode == ModeKeys.PREDICT:
        predictions = {"logits": logits, "probabilities": probabilities, "class_ids": array_ops.expand_dims(class_ids, -1)}
        if n_classes == 2:
            predictions["logistic"] = logistic
        return EstimatorSpec(mode, predictions=predictions)
    if mode == ModeKeys.TRAIN:
        variables = trainable_variables_fn()
        return EstimatorSpec(mode, loss=loss, train_op=make_optimizer().minimize(loss, variables, tape=tape))
    accuracy, average_loss = metrics.Accuracy(name="accuracy"), metrics.Mean(name="average_loss")
    accuracy.update_state(label_ids, class_ids)
    average_loss.update_state(per_example)
    return EstimatorSpec(mode, loss=loss, eval_metric_ops={"accuracy": accuracy, "average_loss": average_loss})
