"""``tf.keras.estimator.model_to_estimator``: an Estimator that trains a compiled Keras model."""

from __future__ import annotations

from trainer import nest
from trainer.estimator.estimator import Estimator
from trainer.estimator.model_fn import EstimatorSpec, ModeKeys
from trainer.tape import GradientTape
from trainer.train.trackable import walk


def model_to_estimator(
    keras_model=None,
    keras_model_path=None,
    custom_objects=None,
    model_dir=None,
    config=None,
    checkpoint_format="checkpoint",
    metric_names_map=None,
    export_outputs=None,
):
    """An ``Estimator`` that trains ``keras_model`` with its compiled optimizer, loss and metrics.

    Args:
        keras_model: a compiled ``tf.keras.Model``. The estimator trains this model's own variables
            (TensorFlow trains a clone); after ``train``/``evaluate``/``predict`` they hold the values
            of the checkpoint used.
        keras_model_path: a ``.ember`` file saved with ``model.save``, instead of ``keras_model``.
        custom_objects: for loading ``keras_model_path``.
        model_dir, config: as for ``tf.estimator.Estimator``.
        checkpoint_format: "checkpoint" (object-based keys: ``model/layer_with_weights-0/kernel``,
            ``optimizer/0``, ...); "saver" is not supported by emberflow.
        metric_names_map: ``{compiled metric name: name in evaluate's results}``.

    ``input_fn`` returns a ``tf.data.Dataset`` of ``(features, labels)`` batches; features are the
    model's input (a tensor, or a dict by input name). ``predict`` yields ``{output name: value}``.

    Example:
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        >>> estimator = tf.keras.estimator.model_to_estimator(keras_model=model, model_dir="/tmp/mnist")
        >>> estimator.train(train_input_fn, max_steps=1000)
    """
    if (keras_model is None) == (keras_model_path is None):
        raise ValueError("model_to_estimator: pass exactly one of keras_model and keras_model_path")
    if checkpoint_format != "checkpoint":
        raise NotImplementedError(f"model_to_estimator(checkpoint_format={checkpoint_format!r}) is not supported by emberflow; use 'checkpoint'")
    if export_outputs is not None:
        raise NotImplementedError("model_to_estimator(export_outputs=...) is not supported by emberflow")
    if keras_model is None:
        from trainer.keras.saving.saving import load_model  # noqa: PLC0415

        keras_model = load_model(keras_model_path, custom_objects=custom_objects)
    if not getattr(keras_model, "compiled", False):
        raise ValueError(
            "The given keras model has not been compiled yet. Please compile the model with `model.compile()` before "
            "calling `model_to_estimator()`."
        )
    return _KerasEstimator(keras_model, dict(metric_names_map or {}), model_dir=model_dir, config=config)


class _KerasEstimator(Estimator):
    """An Estimator whose ``model_fn`` runs a compiled Keras model; checkpoints are keyed by model structure."""

    def __init__(self, keras_model, metric_names_map: dict, model_dir=None, config=None):
        self._keras_model = keras_model
        self._metric_names_map = metric_names_map
        super().__init__(self._model_fn_for_keras, model_dir=model_dir, config=config)

    def _model_fn_for_keras(self, features, labels, mode):
        from trainer.keras.models.compile_utils import CompiledMetrics  # noqa: PLC0415

        model = self._keras_model
        inputs = _model_inputs(model, features)
        if mode == ModeKeys.PREDICT:
            outputs = model(inputs, training=False)
            return EstimatorSpec(mode, predictions=dict(zip(_output_names(model, outputs), nest.flatten(outputs))))
        with GradientTape() as tape:
            outputs = model(inputs, training=mode == ModeKeys.TRAIN)
            loss = model.compute_loss(inputs, labels, outputs)
        if mode == ModeKeys.TRAIN:
            return EstimatorSpec(mode, loss=loss, train_op=model.optimizer.minimize(loss, model.trainable_variables, tape=tape))
        metrics = CompiledMetrics(model._compile_config.get("metrics"), model._compile_config.get("weighted_metrics"))
        metrics.update_state(model, labels, outputs, None, model._compiled_loss)
        return EstimatorSpec(mode, loss=loss, eval_metric_ops={self._metric_names_map.get(metric.name, metric.name): metric for metric in metrics.metrics})

    def _checkpoint_variables(self, graph) -> dict:
        """The graph's variables under the keys ``tf.train.Checkpoint(model=..., optimizer=...)`` gives them."""
        in_graph = {id(variable) for variable in graph.variables.values()}
        tracked = walk({"model": self._keras_model, "optimizer": self._keras_model.optimizer})
        return {value.key: value.variable for value in tracked.values if id(value.variable) in in_graph}


def _model_inputs(model, features):
    names = list(getattr(model, "input_names", None) or [])
    if isinstance(features, dict):
        if len(features) == 1 and len(names) <= 1:
            return next(iter(features.values()))
        missing = [name for name in names if name not in features]
        if missing:
            raise KeyError(f"model_to_estimator: features lack the model input(s) {missing}; features have {sorted(features)}")
        return [features[name] for name in names]
    return features


def _output_names(model, outputs) -> list:
    count = len(nest.flatten(outputs))
    names = list(getattr(model, "output_names", None) or [])
    if len(names) == count:
        return names
    if count == 1 and getattr(model, "layers", None):
        return [model.layers[-1].name]
    return [f"output_{index + 1}" for index in range(count)]
