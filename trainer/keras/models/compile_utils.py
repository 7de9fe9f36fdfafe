"""What ``compile`` sets up: losses and metrics per model output, resolved once shapes are known."""

from __future__ import annotations

from trainer import nest
from trainer.ops import math_ops


def _output_names(model, count: int) -> list[str]:
    names = getattr(model, "output_names", None)
    if names and len(names) == count:
        return list(names)
    return [f"output_{i + 1}" for i in range(count)]


def _per_output(spec, names: list[str], what: str) -> list:
    """Spreads a loss/metrics spec over outputs: one for all, a list in order, or a dict by output name."""
    if isinstance(spec, dict):
        unknown = set(spec) - set(names)
        if unknown:
            raise ValueError(f"compile: {what} names outputs {sorted(unknown)}, but the model's outputs are {names}")
        return [spec.get(name) for name in names]
    if isinstance(spec, (list, tuple)) and len(names) > 1 and (what == "loss" or (spec and isinstance(spec[0], (list, tuple, dict)))):
        if len(spec) != len(names):
            raise ValueError(f"compile: {len(spec)} {what} entries for {len(names)} outputs ({names})")
        return list(spec)
    return [spec] * len(names)


class CompiledLoss:
    """The compiled loss: per-output losses times ``loss_weights``, plus the model's regularization losses."""

    def __init__(self, loss, loss_weights=None):
        self.spec, self.loss_weights = loss, loss_weights
        self.functions = None
        self.names = None

    def build(self, model, y_pred) -> None:
        from trainer.keras import losses  # noqa: PLC0415

        flat = nest.flatten(y_pred)
        self.names = _output_names(model, len(flat))
        specs = _per_output(self.spec, self.names, "loss")
        self.functions = [None if s is None else losses.get(s) for s in specs]
        weights = self.loss_weights
        if weights is None:
            self.weights = [1.0] * len(flat)
        elif isinstance(weights, dict):
            self.weights = [float(weights.get(name, 1.0)) for name in self.names]
        else:
            self.weights = [float(w) for w in weights]

    def __call__(self, model, y, y_pred, sample_weight=None):
        if self.functions is None:
            self.build(model, y_pred)
        flat_pred = nest.flatten(y_pred)
        flat_true = _flatten_targets(y, self.names, len(flat_pred))
        total = None
        per_output = []
        for function, weight, target, prediction in zip(self.functions, self.weights, flat_true, flat_pred):
            if function is None or target is None:
                per_output.append(None)
                continue
            value = function(target, prediction, sample_weight=sample_weight)
            per_output.append(value)
            value = value if weight == 1.0 else math_ops.multiply(value, weight)
            total = value if total is None else math_ops.add(total, value)
        if total is None:
            raise ValueError("compile: no loss applies to any output (pass loss= to compile, and y to fit)")
        regularization = model.losses
        if regularization:
            total = math_ops.add(total, math_ops.add_n([math_ops.cast(r, total.dtype) for r in regularization]))
        return total, per_output


def _flatten_targets(y, names, count):
    if isinstance(y, dict):
        return [y.get(name) for name in names]
    flat = nest.flatten(y) if isinstance(y, (list, tuple)) else [y]
    if len(flat) != count:
        raise ValueError(f"the model has {count} outputs but {len(flat)} targets were given")
    return flat


class CompiledMetrics:
    """Per-output metric objects, created on the first batch (plain "accuracy" needs the shapes)."""

    def __init__(self, metrics, weighted_metrics=None):
        self.spec, self.weighted_spec = metrics, weighted_metrics
        self.per_output = None  # list (one per output) of lists of (metric, weighted)

    def build(self, model, y, y_pred, compiled_loss) -> None:
        from trainer.keras import metrics as metrics_module  # noqa: PLC0415

        flat_pred = nest.flatten(y_pred)
        names = _output_names(model, len(flat_pred))
        flat_true = _flatten_targets(y, names, len(flat_pred))
        plain = _per_output(self.spec or [], names, "metrics")
        weighted = _per_output(self.weighted_spec or [], names, "weighted_metrics")
        self.per_output = []
        for index, (specs, weighted_specs) in enumerate(zip(plain, weighted)):
            entries = []
            for spec_list, is_weighted in ((specs, False), (weighted_specs, True)):
                for spec in nest.flatten(spec_list or []):
                    if spec is None:
                        continue
                    metric = metrics_module.resolve(spec, flat_true[index].shape, flat_pred[index].shape)
                    if len(flat_pred) > 1:
                        metric.name = f"{names[index]}_{metric.name}"
                    entries.append((metric, is_weighted))
            self.per_output.append(entries)

    @property
    def metrics(self) -> list:
        return [metric for entries in (self.per_output or []) for metric, _ in entries]

    def update_state(self, model, y, y_pred, sample_weight, compiled_loss) -> None:
        if self.per_output is None:
            self.build(model, y, y_pred, compiled_loss)
        flat_pred = nest.flatten(y_pred)
        flat_true = _flatten_targets(y, compiled_loss.names or _output_names(model, len(flat_pred)), len(flat_pred))
        for entries, target, prediction in zip(self.per_output, flat_true, flat_pred):
            if target is None:
                continue
            for metric, is_weighted in entries:
                metric.update_state(target, prediction, sample_weight=sample_weight if is_weighted else None)
