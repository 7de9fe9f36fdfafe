"""``tf.estimator.ModeKeys`` and ``tf.estimator.EstimatorSpec``: what a ``model_fn`` is told and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field


class ModeKeys:
    """The three jobs a ``model_fn`` builds for: ``TRAIN``, ``EVAL`` and ``PREDICT`` (TensorFlow's strings)."""

    TRAIN = "train"
    EVAL = "eval"
    PREDICT = "infer"


_MODES = (ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.PREDICT)


@dataclass
class EstimatorSpec:
    """What a ``model_fn`` returns: the tensors and updates of one mode, like ``tf.estimator.EstimatorSpec``.

    Args:
        mode: a ``ModeKeys`` value.
        predictions: a tensor or a dict of tensors (required in PREDICT mode).
        loss: a scalar tensor (required in TRAIN and EVAL modes).
        train_op: what updates the model (required in TRAIN mode). In emberflow it is the value
            ``optimizer.minimize(loss, var_list, tape=tape)`` or ``optimizer.apply_gradients(...)``
            returns (the optimizer's ``iterations``): the ``model_fn`` is traced into a graph, so the
            update it performs is part of the step the estimator runs for every batch.
        eval_metric_ops: ``{name: metric}`` with Keras metrics whose ``update_state`` the ``model_fn``
            called on this batch; ``evaluate`` reports each ``metric.result()`` over all batches.
        training_chief_hooks, training_hooks, evaluation_hooks, prediction_hooks: ``SessionRunHook`` lists
            run by ``train``, ``evaluate`` and ``predict`` after the hooks passed to those calls.
        export_outputs, scaffold: accepted for compatibility.
    """

    mode: str
    predictions: object = None
    loss: object = None
    train_op: object = None
    eval_metric_ops: dict = field(default_factory=dict)
    export_outputs: object = None
    training_chief_hooks: list = field(default_factory=list)
    training_hooks: list = field(default_factory=list)
    scaffold: object = None
    evaluation_hooks: list = field(default_factory=list)
    prediction_hooks: list = field(default_factory=list)

    def __post_init__(self):
        if self.mode not in _MODES:
            raise ValueError(f"EstimatorSpec: mode must be one of {_MODES}, got {self.mode!r}")
        if self.mode == ModeKeys.TRAIN and (self.loss is None or self.train_op is None):
            raise ValueError("EstimatorSpec: TRAIN mode needs loss and train_op (e.g. optimizer.minimize(loss, variables, tape=tape))")
        if self.mode == ModeKeys.EVAL and self.loss is None:
            raise ValueError("EstimatorSpec: EVAL mode needs a loss")
        if self.mode == ModeKeys.PREDICT and self.predictions is None:
            raise ValueError("EstimatorSpec: PREDICT mode needs predictions")
        self.eval_metric_ops = dict(self.eval_metric_ops or {})
        for name, metric in self.eval_metric_ops.items():
            if not hasattr(metric, "result") or not hasattr(metric, "update_state"):
                raise TypeError(
                    f"EstimatorSpec: eval_metric_ops['{name}'] is a {type(metric).__name__}; emberflow takes Keras metric "
                    "objects whose update_state the model_fn called (TF1's (value_op, update_op) pairs are not supported)"
                )
