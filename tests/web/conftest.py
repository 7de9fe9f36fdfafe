"""Fixtures for the web tests: a small MNIST model trained once per session, its bundle, and Chromium.

Without Playwright or Chromium the browser tests skip with the reason, except under CI (``CI=true``),
where a missing browser is a broken setup and fails instead.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from web_export.testing import chromium, chromium_missing


@pytest.fixture(scope="session")
def mnist():
    """The bundled real MNIST subset, float32 in [0, 1]: (x_train, y_train), (x_test, y_test)."""
    import trainer as tf  # noqa: PLC0415

    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data(source="subset")
    return (x_train.astype(np.float32) / 255.0, y_train), (x_test.astype(np.float32) / 255.0, y_test)


@pytest.fixture(scope="session")
def mnist_model(mnist):
    """The demo's MLP trained for 4 epochs on 4,000 real digits (about 91% test accuracy; a few seconds)."""
    import trainer as tf  # noqa: PLC0415
    from exporter.demo import build_mnist_mlp  # noqa: PLC0415

    (x_train, y_train), _ = mnist
    tf.keras.utils.set_random_seed(0)
    model = build_mnist_mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="session")
def saved_model(mnist_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "mnist.ember"
    mnist_model.save(path)
    return path


@pytest.fixture(scope="session")
def browser():
    reason = chromium_missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI: {reason}")
        pytest.skip(reason)
    with chromium() as running:
        yield running
