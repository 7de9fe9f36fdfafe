"""Shared test settings: no network, repeatable seeds, and a fresh layer-name counter per test."""

import os

import numpy as np
import pytest

os.environ.setdefault("EMBERFLOW_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _fresh_state():
    import trainer as tf  # noqa: PLC0415

    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)
