"""Losses against NumPy re-implementations of Keras 3's formulas, their gradients against finite
differences, the reductions, sample weights, and the error messages for labels of the wrong kind."""

from __future__ import annotations

import numpy as np
import pytest

import trainer as tf
from trainer.keras import losses

EPS = 1e-7


# -- NumPy references (Keras 3: keras/src/losses/losses.py and the backends' nn.py) --------------------


def log_softmax(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def sparse_ce_reference(labels, predictions, from_logits):
    labels = labels.reshape(-1).astype(int)
    if from_logits:
        log_p = log_softmax(predictions)
    else:
        log_p = np.log(np.clip(predictions / predictions.sum(-1, keepdims=True), EPS, 1 - EPS))
    one_hot = np.eye(predictions.shape[-1])[labels]
    return -(one_hot * log_p).sum(-1)


def categorical_ce_reference(labels, predictions, from_logits, label_smoothing=0.0):
    labels = labels * (1 - label_smoothing) + label_smoothing / labels.shape[-1]
    if from_logits:
        log_p = log_softmax(predictions)
    else:
        log_p = np.log(np.clip(predictions / predictions.sum(-1, keepdims=True), EPS, 1 - EPS))
    return -(labels * log_p).sum(-1)


def binary_ce_reference(labels, predictions, from_logits, label_smoothing=0.0):
    labels = labels * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        p = 1 / (1 + np.exp(-predictions))
        elementwise = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    else:
        p = np.clip(predictions, EPS, 1 - EPS)
        elementwise = -(labels * np.log(p + EPS) + (1 - labels) * np.log(1 - p + EPS))
    return elementwise.mean(-1)


def huber_reference(labels, predictions, delta):
    error = predictions - labels
    quadratic = 0.5 * error**2
    linear = delta * np.abs(error) - 0.5 * delta**2
    return np.where(np.abs(error) <= delta, quadratic, linear).mean(-1)


def random_probabilities(rng, batch, classes, normalized=True):
    p = rng.uniform(0.01, 1.0, size=(batch, classes))
    return p / p.sum(-1, keepdims=True) if normalized else p


def value(tensor):
    return np.asarray(tensor.numpy(), dtype=np.float64)


# -- values ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("label_form", ["int", "float", "column"])
def test_sparse_categorical_crossentropy(seed, from_logits, label_form):
    rng = np.random.default_rng(seed)
    batch, classes = int(rng.integers(1, 9)), int(rng.integers(2, 7))
    predictions = (
        rng.normal(size=(batch, classes)) * 3
        if from_logits
        else random_probabilities(rng, batch, classes, normalized=seed != 0)
    )
    labels = rng.integers(0, classes, size=batch)
    given = {"int": labels, "float": labels.astype(np.float32), "column": labels.reshape(-1, 1)}[label_form]
    expected = sparse_ce_reference(labels, predictions, from_logits)
    function_value = losses.sparse_categorical_crossentropy(given, predictions, from_logits=from_logits)
    np.testing.assert_allclose(value(function_value), expected, rtol=1e-10)
    object_value = losses.SparseCategoricalCrossentropy(from_logits=from_logits)(given, predictions.astype(np.float32))
    np.testing.assert_allclose(value(object_value), expected.mean(), rtol=2e-5)


def test_sparse_crossentropy_clips_tiny_probabilities():
    predictions = np.array([[0.0, 1.0], [1.0, 0.0]])
    expected = sparse_ce_reference(np.array([0, 0]), predictions, False)
    np.testing.assert_allclose(value(losses.sparse_categorical_crossentropy([0, 0], predictions)), expected, rtol=1e-12)
    assert np.isfinite(expected).all() and expected[0] == pytest.approx(-np.log(EPS))


def test_sparse_crossentropy_of_a_softmax_activation_starts_from_its_logits():
    """As Keras 3: the softmax activation's output carries its logits, and the loss uses them, so a confidently
    wrong prediction costs its full -log p instead of the clipped -log(1e-7), in a step and eagerly."""
    logits = np.array([[40.0, 0.0, -5.0], [1.0, 2.0, 3.0]], np.float32)
    probabilities = tf.keras.activations.softmax(tf.constant(logits))
    expected = sparse_ce_reference(np.array([2, 0]), logits.astype(np.float64), True)
    got = value(losses.sparse_categorical_crossentropy([2, 0], probabilities))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[0] > 40 > -np.log(EPS), "the first row's loss must not stop at the clipping floor"
    plain = value(losses.sparse_categorical_crossentropy([2, 0], tf.constant(probabilities.numpy())))
    assert plain[0] == pytest.approx(-np.log(EPS), rel=1e-4), "probabilities without logits are clipped"

    @tf.function
    def traced(y_true, z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss = tf.reduce_sum(losses.sparse_categorical_crossentropy(y_true, tf.keras.activations.softmax(z)))
        return loss, tape.gradient(loss, z)

    loss, gradient = traced(tf.constant([2, 0]), tf.constant(logits))
    np.testing.assert_allclose(loss.numpy(), expected.sum(), rtol=1e-6)
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    np.testing.assert_allclose(gradient.numpy(), softmax - np.eye(3)[[2, 0]], atol=1e-6)


def test_categorical_and_binary_crossentropy_of_activations_start_from_their_logits():
    logits = np.array([[40.0, 0.0, -5.0], [1.0, 2.0, 3.0]], np.float32)
    one_hot = np.eye(3, dtype=np.float32)[[2, 0]]
    from_softmax = value(losses.categorical_crossentropy(one_hot, tf.keras.activations.softmax(tf.constant(logits))))
    np.testing.assert_allclose(from_softmax, value(losses.categorical_crossentropy(one_hot, logits, from_logits=True)), rtol=1e-6)
    assert from_softmax[0] > 40, "not clipped at -log(1e-7)"
    targets = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]], np.float32)
    from_sigmoid = value(losses.binary_crossentropy(targets, tf.keras.activations.sigmoid(tf.constant(logits))))
    np.testing.assert_allclose(from_sigmoid, value(losses.binary_crossentropy(targets, logits, from_logits=True)), rtol=1e-6)
    assert from_sigmoid[0] > 40 / 3, "the first row's -log(sigmoid(-40)) term is not clipped either"


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_categorical_crossentropy(seed, from_logits, label_smoothing):
    rng = np.random.default_rng(seed)
    batch, classes = int(rng.integers(1, 9)), int(rng.integers(2, 7))
    predictions = (
        rng.normal(size=(batch, classes))
        if from_logits
        else random_probabilities(rng, batch, classes, normalized=False)
    )
    labels = np.eye(classes)[rng.integers(0, classes, size=batch)]
    expected = categorical_ce_reference(labels, predictions, from_logits, label_smoothing)
    actual = losses.categorical_crossentropy(
        labels, predictions, from_logits=from_logits, label_smoothing=label_smoothing
    )
    np.testing.assert_allclose(value(actual), expected, rtol=1e-10)
    loss = losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing, dtype="float64")
    np.testing.assert_allclose(value(loss(labels, predictions)), expected.mean(), rtol=1e-10)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_binary_crossentropy(seed, from_logits, label_smoothing):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 9)), int(rng.integers(1, 4)))
    predictions = rng.normal(size=shape) * 4 if from_logits else rng.uniform(0, 1, size=shape)
    labels = rng.integers(0, 2, size=shape).astype(np.float64)
    expected = binary_ce_reference(labels, predictions, from_logits, label_smoothing)
    actual = losses.binary_crossentropy(labels, predictions, from_logits=from_logits, label_smoothing=label_smoothing)
    np.testing.assert_allclose(value(actual), expected, rtol=1e-9)


def test_binary_crossentropy_takes_flat_labels_for_a_column_of_predictions(rng):
    labels, predictions = rng.integers(0, 2, size=6), rng.uniform(size=(6, 1))
    expected = binary_ce_reference(labels.reshape(-1, 1).astype(float), predictions, False).mean()
    np.testing.assert_allclose(
        value(losses.BinaryCrossentropy(dtype="float64")(labels, predictions)), expected, rtol=1e-12
    )


@pytest.mark.parametrize("seed", range(3))
def test_regression_losses(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 9)), int(rng.integers(1, 5)))
    labels, predictions = rng.normal(size=shape), rng.normal(size=shape) * 2
    delta = float(rng.uniform(0.3, 2.0))
    np.testing.assert_allclose(
        value(losses.mean_squared_error(labels, predictions)), ((labels - predictions) ** 2).mean(-1), rtol=1e-12
    )
    np.testing.assert_allclose(
        value(losses.mean_absolute_error(labels, predictions)), np.abs(labels - predictions).mean(-1), rtol=1e-12
    )
    np.testing.assert_allclose(
        value(losses.huber(labels, predictions, delta)), huber_reference(labels, predictions, delta), rtol=1e-12
    )
    np.testing.assert_allclose(
        value(losses.Huber(delta, dtype="float64")(labels, predictions)),
        huber_reference(labels, predictions, delta).mean(),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        value(losses.MeanSquaredError(dtype="float64")(labels, predictions)),
        ((labels - predictions) ** 2).mean(),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        value(losses.MeanAbsoluteError(dtype="float64")(labels, predictions)),
        np.abs(labels - predictions).mean(),
        rtol=1e-12,
    )


def test_mse_of_flat_labels_against_a_column_of_predictions(rng):
    labels, predictions = rng.normal(size=5), rng.normal(size=(5, 1))
    expected = ((labels - predictions[:, 0]) ** 2).mean()
    np.testing.assert_allclose(
        value(losses.MeanSquaredError(dtype="float64")(labels, predictions)), expected, rtol=1e-12
    )


# -- reductions and weights -----------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean", "sum", "none", None, "mean_with_sample_weight"])
@pytest.mark.parametrize("weighted", [False, True])
def test_reductions_and_sample_weight(rng, reduction, weighted):
    labels, predictions = rng.integers(0, 4, size=7), random_probabilities(rng, 7, 4)
    weights = rng.uniform(0, 2, size=7) if weighted else None
    per_sample = sparse_ce_reference(labels, predictions, False) * (weights if weighted else 1)
    expected = {
        "sum_over_batch_size": per_sample.mean(),
        "mean": per_sample.mean(),
        "sum": per_sample.sum(),
        "none": per_sample,
        None: per_sample,
        "mean_with_sample_weight": per_sample.sum() / weights.sum() if weighted else per_sample.mean(),
    }[reduction]
    loss = losses.SparseCategoricalCrossentropy(reduction=reduction, dtype="float64")
    np.testing.assert_allclose(value(loss(labels, predictions, sample_weight=weights)), expected, rtol=1e-12)


def test_column_sample_weights_and_per_timestep_losses(rng):
    labels, predictions = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    weights = rng.uniform(size=(4, 1))
    expected = (((labels - predictions) ** 2).mean(-1) * weights[:, 0]).mean()
    loss = losses.MeanSquaredError(dtype="float64")
    np.testing.assert_allclose(value(loss(labels, predictions, sample_weight=weights)), expected, rtol=1e-12)
    sequence = losses.SparseCategoricalCrossentropy(reduction="none", dtype="float64")
    steps = rng.integers(0, 5, size=(2, 3))
    probabilities = random_probabilities(rng, 6, 5).reshape(2, 3, 5)
    np.testing.assert_allclose(
        value(sequence(steps, probabilities)),
        sparse_ce_reference(steps, probabilities.reshape(6, 5), False).reshape(2, 3),
        rtol=1e-12,
    )


def test_ignore_class_drops_those_samples_from_the_mean(rng):
    labels, predictions = rng.integers(0, 3, size=8), random_probabilities(rng, 8, 3)
    labels[[1, 4]] = -1
    keep = labels != -1
    expected = sparse_ce_reference(labels[keep], predictions[keep], False)
    loss = losses.SparseCategoricalCrossentropy(ignore_class=-1, dtype="float64")
    np.testing.assert_allclose(value(loss(labels, predictions)), expected.mean(), rtol=1e-12)
    per_sample = value(losses.sparse_categorical_crossentropy(labels, predictions, ignore_class=-1))
    np.testing.assert_allclose(per_sample[keep], expected, rtol=1e-12)
    assert (per_sample[~keep] == 0).all()


def test_invalid_reduction_is_rejected():
    with pytest.raises(ValueError, match="Invalid value for argument `reduction`"):
        losses.MeanSquaredError(reduction="average")


# -- gradients ------------------------------------------------------------------------------------------


def finite_difference_gradient(function, x, step=1e-6):
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        gradient[index] = (function(plus) - function(minus)) / (2 * step)
    return gradient


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    "loss, make_labels, from_logits",
    [
        (
            lambda: losses.SparseCategoricalCrossentropy(dtype="float64"),
            lambda rng, n, c: rng.integers(0, c, size=n),
            False,
        ),
        (
            lambda: losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64"),
            lambda rng, n, c: rng.integers(0, c, size=n),
            True,
        ),
        (
            lambda: losses.CategoricalCrossentropy(dtype="float64"),
            lambda rng, n, c: np.eye(c)[rng.integers(0, c, size=n)],
            False,
        ),
        (
            lambda: losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, dtype="float64"),
            lambda rng, n, c: np.eye(c)[rng.integers(0, c, size=n)],
            True,
        ),
        (
            lambda: losses.BinaryCrossentropy(dtype="float64"),
            lambda rng, n, c: rng.integers(0, 2, size=(n, c)).astype(float),
            False,
        ),
        (
            lambda: losses.BinaryCrossentropy(from_logits=True, dtype="float64"),
            lambda rng, n, c: rng.integers(0, 2, size=(n, c)).astype(float),
            True,
        ),
        (lambda: losses.Huber(0.5, dtype="float64"), lambda rng, n, c: rng.normal(size=(n, c)), True),
    ],
)
def test_gradients_match_finite_differences(seed, loss, make_labels, from_logits):
    rng = np.random.default_rng(seed)
    batch, classes = int(rng.integers(1, 5)), int(rng.integers(2, 5))
    loss = loss()
    labels = make_labels(rng, batch, classes)
    x = rng.normal(size=(batch, classes)) if from_logits else rng.uniform(0.05, 0.95, size=(batch, classes))
    weights = rng.uniform(0.5, 1.5, size=batch)
    predictions = tf.Variable(x)
    with tf.GradientTape() as tape:
        result = loss(labels, predictions, sample_weight=weights)
    analytic = tape.gradient(result, predictions).numpy()
    numeric = finite_difference_gradient(lambda p: float(loss(labels, p, sample_weight=weights)), x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


# -- errors ---------------------------------------------------------------------------------------------


def test_sparse_loss_with_one_hot_labels_says_to_use_categorical():
    with pytest.raises(ValueError) as raised:
        losses.SparseCategoricalCrossentropy()(np.eye(10)[np.arange(32) % 10], np.full((32, 10), 0.1, np.float32))
    message = str(raised.value)
    assert message.startswith(
        "SparseCategoricalCrossentropy: labels of shape (32, 10) do not match predictions of shape (32, 10)"
    )
    assert "use CategoricalCrossentropy for one-hot labels" in message and "(32,) or (32, 1)" in message


def test_categorical_loss_with_integer_labels_says_to_use_sparse():
    with pytest.raises(
        ValueError,
        match=r"^CategoricalCrossentropy: labels of shape \(4,\) do not match predictions of shape \(4, 3\)"
        r".*use SparseCategoricalCrossentropy",
    ):
        losses.CategoricalCrossentropy()(np.array([0, 1, 2, 1]), np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"^categorical_crossentropy: labels of shape \(4, 1\)"):
        losses.categorical_crossentropy(np.zeros((4, 1)), np.full((4, 3), 1 / 3))


def test_mismatched_shapes_name_the_loss_and_both_shapes():
    with pytest.raises(
        ValueError, match=r"^BinaryCrossentropy: labels of shape \(5, 2\) do not match predictions of shape \(5, 3\)"
    ):
        losses.BinaryCrossentropy()(np.zeros((5, 2)), np.full((5, 3), 0.5))
    with pytest.raises(
        ValueError, match=r"^MeanSquaredError: labels of shape \(4, 3\) do not match predictions of shape \(4, 2\)"
    ):
        losses.MeanSquaredError()(np.zeros((4, 3)), np.zeros((4, 2)))


def test_string_labels_are_a_type_error_naming_the_loss():
    with pytest.raises(TypeError, match="^SparseCategoricalCrossentropy: labels: .*encode labels as integers"):
        losses.SparseCategoricalCrossentropy()(np.array(["cat", "dog"]), np.full((2, 2), 0.5))


def test_out_of_range_labels_are_reported():
    with pytest.raises(ValueError, match=r"label values must lie in \[0, 10\) .* got values from 1 to 10"):
        losses.SparseCategoricalCrossentropy()(np.arange(1, 11), np.full((10, 10), 0.1))


# -- lookup and config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "identifier, function",
    [
        ("mse", losses.mean_squared_error),
        ("MAE", losses.mean_absolute_error),
        ("sparse_categorical_crossentropy", losses.sparse_categorical_crossentropy),
        ("binary_crossentropy", losses.binary_crossentropy),
        ("huber", losses.huber),
    ],
)
def test_get_wraps_function_names_into_losses(rng, identifier, function):
    loss = losses.get(identifier)
    assert isinstance(loss, losses.Loss)
    labels, predictions = (
        rng.integers(0, 2, size=(4, 3)).astype(np.float32),
        rng.uniform(0.1, 0.9, size=(4, 3)).astype(np.float32),
    )
    if identifier.startswith("sparse"):
        labels = labels[:, 0]
    np.testing.assert_allclose(value(loss(labels, predictions)), value(function(labels, predictions)).mean(), rtol=1e-6)


def test_get_accepts_classes_instances_dicts_and_callables():
    assert isinstance(losses.get("SparseCategoricalCrossentropy"), losses.SparseCategoricalCrossentropy)
    assert isinstance(losses.get(losses.Huber), losses.Huber)
    instance = losses.BinaryCrossentropy()
    assert losses.get(instance) is instance
    rebuilt = losses.get({"class_name": "Huber", "config": {"delta": 2.0}})
    assert isinstance(rebuilt, losses.Huber) and rebuilt.delta == 2.0
    custom = losses.get(lambda y_true, y_pred: tf.reduce_sum(y_pred - y_true, axis=-1))
    assert float(custom([[1.0, 2.0]], [[2.0, 4.0]])) == 3.0
    with pytest.raises(ValueError, match="Could not interpret loss identifier: 'crossentropy_of_doom'"):
        losses.get("crossentropy_of_doom")


@pytest.mark.parametrize(
    "loss",
    [
        lambda: losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=3, reduction="sum", name="scce"),
        lambda: losses.CategoricalCrossentropy(label_smoothing=0.1, axis=-1),
        lambda: losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.05),
        lambda: losses.MeanSquaredError(reduction="none"),
        lambda: losses.MeanAbsoluteError(),
        lambda: losses.Huber(delta=0.3),
        lambda: losses.LossFunctionWrapper(losses.huber, delta=0.7, name="wrapped"),
    ],
)
def test_config_round_trips(loss):
    original = loss()
    config = original.get_config()
    assert type(original).from_config(config).get_config() == config
    assert losses.deserialize(losses.serialize(original)).get_config() == config
