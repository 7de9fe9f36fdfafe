"""Metrics against NumPy formulas over random data: accumulation over batches, sample weights, reset,
lookup, Keras 3's reading of plain "accuracy", and config round trips."""

from __future__ import annotations

import numpy as np
import pytest

import trainer as tf
from trainer.keras import metrics


def batches(rng, count, make):
    return [make(rng, int(rng.integers(1, 9))) for _ in range(count)]


def accumulate(metric, data, weighted=False):
    for batch in data:
        metric.update_state(*batch) if weighted else metric.update_state(*batch[:2])
    return float(metric.result())


def weighted_mean(values, weights):
    values, weights = np.concatenate(values), np.concatenate(weights)
    return float((values * weights).sum() / weights.sum())


# -- reduction metrics ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_mean_and_sum_accumulate_weighted_values(seed):
    rng = np.random.default_rng(seed)
    data = [(rng.normal(size=n), rng.uniform(0, 2, size=n)) for n in rng.integers(1, 9, size=4)]
    mean, total = metrics.Mean(), metrics.Sum()
    for values, weights in data:
        mean.update_state(values, sample_weight=weights)
        total.update_state(values, sample_weight=weights)
    assert float(mean.result()) == pytest.approx(weighted_mean([d[0] for d in data], [d[1] for d in data]), rel=1e-5)
    assert float(total.result()) == pytest.approx(sum(float((v * w).sum()) for v, w in data), rel=1e-5, abs=1e-5)


def test_mean_of_rank_two_values_counts_each_sample_once(rng):
    values, weights = rng.normal(size=(5, 3)), rng.uniform(size=5)
    mean = metrics.Mean(dtype="float64")
    mean.update_state(values, sample_weight=weights)
    assert float(mean.result()) == pytest.approx(float((values.mean(1) * weights).sum() / weights.sum()), rel=1e-12)
    unweighted = metrics.Mean(dtype="float64")
    unweighted.update_state(values)
    assert float(unweighted.result()) == pytest.approx(float(values.mean()), rel=1e-12)


def test_reset_state_zeroes_every_variable_and_the_result(rng):
    mean = metrics.Mean()
    mean.update_state(rng.normal(size=4))
    mean.reset_state()
    assert all(float(v) == 0 for v in mean.variables) and float(mean.result()) == 0.0
    values = rng.normal(size=3)
    assert float(mean(values)) == pytest.approx(float(values.mean()), rel=1e-6)


def test_state_lives_in_non_trainable_variables_named_after_the_metric():
    mean = metrics.Mean(name="loss")
    assert [v.name for v in mean.variables] == ["loss/total:0", "loss/count:0"]
    assert not any(v.trainable for v in mean.variables)


def test_results_are_snapshots_not_views_of_the_state():
    total = metrics.Sum()
    total.update_state([1.0, 2.0])
    first = total.result()
    total.update_state([10.0])
    assert float(first) == 3.0 and float(total.result()) == 13.0


def test_metric_updates_inside_a_traced_function_match_eager(rng):
    values = [rng.normal(size=4).astype(np.float32) for _ in range(3)]
    eager, traced = metrics.Mean(), metrics.Mean()
    step = tf.function(lambda v: traced.update_state(v))
    for v in values:
        eager.update_state(v)
        step(tf.constant(v))
    assert float(traced.result()) == float(eager.result())


# -- accuracy -------------------------------------------------------------------------------------------


def class_data(rng, n, classes=5):
    probabilities = rng.uniform(size=(n, classes))
    return rng.integers(0, classes, size=n), probabilities, rng.uniform(0, 2, size=n)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_categorical_accuracy(seed, weighted):
    rng = np.random.default_rng(seed)
    data = batches(rng, 4, class_data)
    matches = [(p.argmax(1) == y).astype(float) for y, p, _ in data]
    weights = [w if weighted else np.ones_like(w) for _, _, w in data]
    assert accumulate(metrics.SparseCategoricalAccuracy(), data, weighted) == pytest.approx(
        weighted_mean(matches, weights), rel=1e-6
    )
    columns = [(y.reshape(-1, 1).astype(np.float32), p, w) for y, p, w in data]  # (N, 1) float labels work too
    assert accumulate(metrics.SparseCategoricalAccuracy(), columns, weighted) == pytest.approx(
        weighted_mean(matches, weights), rel=1e-6
    )


@pytest.mark.parametrize("seed", range(3))
def test_categorical_accuracy(seed):
    rng = np.random.default_rng(seed)
    data = [(np.eye(5)[y], p, w) for y, p, w in batches(rng, 4, class_data)]
    matches = [(p.argmax(1) == y.argmax(1)).astype(float) for y, p, _ in data]
    assert accumulate(metrics.CategoricalAccuracy(), data, True) == pytest.approx(
        weighted_mean(matches, [d[2] for d in data]), rel=1e-6
    )


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_binary_accuracy(seed, threshold):
    rng = np.random.default_rng(seed)
    data = [
        (rng.integers(0, 2, size=(n, 1)), rng.uniform(size=(n, 1)), rng.uniform(size=n))
        for n in rng.integers(1, 9, size=4)
    ]
    matches = [((p > threshold).astype(int) == y).astype(float)[:, 0] for y, p, _ in data]
    metric = metrics.BinaryAccuracy(threshold=threshold)
    assert accumulate(metric, data, True) == pytest.approx(weighted_mean(matches, [d[2] for d in data]), rel=1e-6)


def test_accuracy_counts_exact_matches(rng):
    labels = rng.integers(0, 3, size=(10, 1))
    predictions = rng.integers(0, 3, size=(10, 1))
    assert float(metrics.Accuracy()(labels, predictions)) == pytest.approx(
        float((labels == predictions).mean()), rel=1e-6
    )


def top_k_reference(labels, predictions, k):
    # in the top k when fewer than k predictions are strictly larger than the label's (ties count in)
    target = predictions[np.arange(len(labels)), labels]
    return ((predictions > target[:, None]).sum(1) < k).astype(float)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_accuracies(seed, k):
    rng = np.random.default_rng(seed)
    data = batches(rng, 3, lambda r, n: class_data(r, n, classes=6))
    matches = [top_k_reference(y, p, k) for y, p, _ in data]
    weights = [w for _, _, w in data]
    assert accumulate(metrics.SparseTopKCategoricalAccuracy(k=k), data, True) == pytest.approx(
        weighted_mean(matches, weights), rel=1e-6
    )
    one_hot = [(np.eye(6)[y], p, w) for y, p, w in data]
    assert accumulate(metrics.TopKCategoricalAccuracy(k=k), one_hot, True) == pytest.approx(
        weighted_mean(matches, weights), rel=1e-6
    )


def test_top_k_counts_ties_at_the_boundary_as_in():
    predictions = np.array([[0.5, 0.5, 0.5, 0.1]])
    assert (
        float(metrics.sparse_top_k_categorical_accuracy([2], predictions, k=1)[0])
        == top_k_reference(np.array([2]), predictions, 1)[0]
    )


@pytest.mark.parametrize("seed", range(2))
def test_regression_metrics(seed):
    rng = np.random.default_rng(seed)
    data = [(rng.normal(size=(n, 3)), rng.normal(size=(n, 3)), rng.uniform(size=n)) for n in rng.integers(1, 9, size=3)]
    squared = [((y - p) ** 2).mean(1) for y, p, _ in data]
    absolute = [np.abs(y - p).mean(1) for y, p, _ in data]
    weights = [w for _, _, w in data]
    assert accumulate(metrics.MeanSquaredError(), data, True) == pytest.approx(
        weighted_mean(squared, weights), rel=1e-5
    )
    assert accumulate(metrics.MeanAbsoluteError(), data, True) == pytest.approx(
        weighted_mean(absolute, weights), rel=1e-5
    )


# -- precision and recall -------------------------------------------------------------------------------


def confusion_reference(labels, predictions, weights, thresholds, top_k=None, class_id=None):
    labels, predictions = labels.astype(float), predictions.astype(float)
    if top_k is not None:
        order = np.argsort(-predictions, axis=-1, kind="stable")  # equal values: lower index first
        keep = np.zeros_like(predictions, dtype=bool)
        np.put_along_axis(keep, order[:, :top_k], True, axis=-1)
        predictions = np.where(keep, predictions, -1e10)
    weights = np.broadcast_to(weights.reshape(-1, *([1] * (predictions.ndim - 1))), predictions.shape)
    if class_id is not None:
        labels, predictions, weights = labels[:, class_id], predictions[:, class_id], weights[:, class_id]
    positive = labels != 0
    counts = []
    for threshold in thresholds:
        predicted = predictions > threshold
        counts.append(
            (
                (weights * (predicted & positive)).sum(),
                (weights * (predicted & ~positive)).sum(),
                (weights * (~predicted & positive)).sum(),
            )
        )
    return np.array(counts)  # [threshold, (tp, fp, fn)]


def ratio(numerator, other):
    return np.where(numerator + other > 0, numerator / np.maximum(numerator + other, 1e-300), 0.0)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"thresholds": [0.0, 0.3, 0.75]},
        {"class_id": 2},
        {"top_k": 2},
        {"top_k": 1, "class_id": 0},
    ],
)
def test_precision_and_recall(seed, options):
    rng = np.random.default_rng(seed)
    multi = "class_id" in options or "top_k" in options
    shape_of = (lambda n: (n, 4)) if multi else (lambda n: (n,))
    data = []
    for n in rng.integers(1, 9, size=3):
        predictions = rng.uniform(size=shape_of(n))
        if seed == 0:
            predictions = np.round(predictions, 1)  # ties between classes and with thresholds
        data.append((rng.integers(0, 2, size=shape_of(n)), predictions, rng.uniform(0, 2, size=n)))
    thresholds = options.get("thresholds", [0.5] if "top_k" not in options else [-1e10])
    counts = sum(
        confusion_reference(y, p, w, thresholds, options.get("top_k"), options.get("class_id")) for y, p, w in data
    )
    precision, recall = metrics.Precision(**options), metrics.Recall(**options)
    for y, p, w in data:
        precision.update_state(y, p, sample_weight=w)
        recall.update_state(y, p, sample_weight=w)
    expected_precision, expected_recall = ratio(counts[:, 0], counts[:, 1]), ratio(counts[:, 0], counts[:, 2])
    if len(thresholds) == 1:
        expected_precision, expected_recall = expected_precision[0], expected_recall[0]
    np.testing.assert_allclose(precision.result().numpy(), expected_precision, rtol=1e-5)
    np.testing.assert_allclose(recall.result().numpy(), expected_recall, rtol=1e-5)
    precision.reset_state()
    assert float(np.sum(precision.result().numpy())) == 0.0


def test_precision_thresholds_must_lie_in_the_unit_interval():
    with pytest.raises(ValueError, match=r"Threshold values must be in \[0, 1\]"):
        metrics.Precision(thresholds=[0.5, 1.5])


# -- lookup ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "identifier, cls",
    [
        ("sparse_categorical_accuracy", metrics.SparseCategoricalAccuracy),
        ("SparseCategoricalAccuracy", metrics.SparseCategoricalAccuracy),
        ("categorical_accuracy", metrics.CategoricalAccuracy),
        ("binary_accuracy", metrics.BinaryAccuracy),
        ("accuracy", metrics.Accuracy),
        ("precision", metrics.Precision),
        ("recall", metrics.Recall),
        ("mean_squared_error", metrics.MeanSquaredError),
        ("top_k_categorical_accuracy", metrics.TopKCategoricalAccuracy),
    ],
)
def test_get_resolves_names_to_metric_objects(identifier, cls):
    assert type(metrics.get(identifier)) is cls


@pytest.mark.parametrize(
    "identifier, function", [("mse", metrics.mean_squared_error), ("MAE", metrics.mean_absolute_error)]
)
def test_function_aliases_become_mean_metrics_named_as_given(rng, identifier, function):
    metric = metrics.get(identifier)
    labels, predictions = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    assert metric.name == identifier
    assert float(metric(labels, predictions)) == pytest.approx(
        float(np.mean(function(labels, predictions).numpy())), rel=1e-6
    )


def test_get_passes_instances_through_and_rejects_unknown_names():
    metric = metrics.Recall()
    assert metrics.get(metric) is metric
    assert isinstance(metrics.get(metrics.Mean), metrics.Mean)
    with pytest.raises(ValueError, match="Could not interpret metric identifier: 'f1_of_doom'"):
        metrics.get("f1_of_doom")


@pytest.mark.parametrize(
    "true_shape, pred_shape, expected",
    [
        ((32, 1), (32, 1), metrics.BinaryAccuracy),
        ((32,), (32, 1), metrics.BinaryAccuracy),
        ((32,), (32, 10), metrics.SparseCategoricalAccuracy),
        ((32, 1), (32, 10), metrics.SparseCategoricalAccuracy),
        ((32, 10), (32, 10), metrics.CategoricalAccuracy),
        ((None, 10), (None, 10), metrics.CategoricalAccuracy),
    ],
)
def test_plain_accuracy_follows_keras_3_shape_rule(true_shape, pred_shape, expected):
    resolved = metrics.resolve_accuracy(true_shape, pred_shape)
    assert type(resolved) is expected and resolved.name == "accuracy"
    via_resolve = metrics.resolve("acc", np.zeros([d or 2 for d in true_shape]), np.zeros([d or 2 for d in pred_shape]))
    assert type(via_resolve) is expected and via_resolve.name == "acc"


def test_resolve_names_other_metrics_after_the_identifier():
    assert metrics.resolve("mse", (4, 1), (4, 1)).name == "mse"
    assert type(metrics.resolve("precision", (4,), (4,))) is metrics.Precision


# -- config ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric",
    [
        lambda: metrics.Mean(name="running"),
        lambda: metrics.Sum(),
        lambda: metrics.BinaryAccuracy(threshold=0.7),
        lambda: metrics.SparseTopKCategoricalAccuracy(k=3),
        lambda: metrics.TopKCategoricalAccuracy(k=2, name="top2"),
        lambda: metrics.Precision(thresholds=[0.2, 0.8], class_id=1),
        lambda: metrics.Recall(top_k=2),
        lambda: metrics.MeanMetricWrapper(metrics.binary_accuracy, name="strict", threshold=0.9),
        lambda: metrics.MeanSquaredError(),
    ],
)
def test_config_round_trips(metric):
    original = metric()
    config = original.get_config()
    assert type(original).from_config(config).get_config() == config
    assert metrics.deserialize(metrics.serialize(original)).get_config() == config
