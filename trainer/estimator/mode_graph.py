"""One mode of a ``model_fn``, traced once into a graph that runs every batch, with the variables it made."""

from __future__ import annotations

import contextlib
import inspect

from trainer import nest
from trainer.estimator.model_fn import EstimatorSpec, ModeKeys
from trainer.graph.function import Function
from trainer.shapes import TensorSpec

_MODEL_FN_ARGUMENTS = ("features", "labels", "mode", "params", "config")


def split_element(element):
    """``(features, labels)`` of a dataset element: a pair, or features alone (labels ``None``)."""
    if isinstance(element, tuple) and len(element) == 2:
        return element
    if isinstance(element, tuple):
        raise TypeError(f"input_fn's dataset must yield (features, labels) or features, got a tuple of {len(element)}")
    return element, None


def call_with_named_arguments(function, available: dict, owner: str):
    """Calls ``function`` with the entries of ``available`` its signature names (as TensorFlow calls model_fn and input_fn)."""
    parameters = inspect.signature(function).parameters
    unknown = [name for name, p in parameters.items() if name not in available and p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    if unknown:
        raise ValueError(f"{owner} has argument(s) {', '.join(unknown)}; it may take only {', '.join(available)}")
    return function(**{name: value for name, value in available.items() if name in parameters})


@contextlib.contextmanager
def fresh_layer_names():
    """Automatic layer and optimizer names restart at ``dense``, ``adam``, ... inside, so that every
    trace of a ``model_fn`` names its variables alike (TF1 got this from a fresh graph per call)."""
    from trainer.keras.layers import base  # noqa: PLC0415

    saved = dict(base._name_counts)  # the counters behind unique_name; restored for the caller's own models
    base._name_counts.clear()
    try:
        yield
    finally:
        base._name_counts.clear()
        base._name_counts.update(saved)


def _relaxed(spec):
    """``spec`` with an unknown batch dimension, so the last, smaller batch runs the same graph."""
    shape = spec.shape.as_list()
    return TensorSpec([None, *shape[1:]] if shape else [], spec.dtype, spec.name)


class ModeGraph:
    """``model_fn`` traced for one mode on the dataset's element structure.

    ``run(features, labels)`` runs one batch (the TRAIN graph also applies its ``train_op``) and returns
    ``{"loss": ...}`` (TRAIN, EVAL) or the predictions (PREDICT). ``variables`` maps each variable's
    name to the variable, without the metrics' variables (a checkpoint does not hold them).
    """

    def __init__(self, model_fn, mode: str, element_spec, params: dict, config):
        features_spec, labels_spec = split_element(element_spec)
        features_spec = nest.map_structure(_relaxed, features_spec)
        labels_spec = None if labels_spec is None or mode == ModeKeys.PREDICT else nest.map_structure(_relaxed, labels_spec)
        self.mode = mode
        self.spec: EstimatorSpec | None = None
        self._has_labels = labels_spec is not None

        def step(features, labels=None):
            arguments = {"features": features, "labels": labels, "mode": mode, "params": dict(params), "config": config}
            with fresh_layer_names():
                spec = call_with_named_arguments(model_fn, arguments, "model_fn")
            if not isinstance(spec, EstimatorSpec):
                raise TypeError(f"model_fn must return a tf.estimator.EstimatorSpec, got {type(spec).__name__}")
            if spec.mode != mode:
                raise ValueError(f"model_fn was called for mode {mode!r} but returned an EstimatorSpec for {spec.mode!r}")
            self.spec = spec
            return spec.predictions if mode == ModeKeys.PREDICT else {"loss": spec.loss}

        signature = nest.flatten(features_spec) + (nest.flatten(labels_spec) if self._has_labels else [])
        self._function = Function(step, input_signature=signature, autograph=False, name=f"model_fn_{mode}")
        arguments = (features_spec, labels_spec) if self._has_labels else (features_spec,)
        concrete = self._function.get_concrete_function(*arguments)
        metric_ids = {id(variable) for metric in self.spec.eval_metric_ops.values() for variable in metric.variables}
        self.variables = {}
        for value in concrete.graph.variables:
            if id(value.variable) in metric_ids:
                continue
            name, count = value.name, 1
            while name in self.variables:  # two variables may share a name; the trace order is stable
                name, count = f"{value.name}_{count}", count + 1
            self.variables[name] = value.variable

    def run(self, features, labels=None):
        if self._has_labels:
            return self._function(features, labels)
        return self._function(features)
