"""A small, separable classification problem and a model for it, shared by the training and callback tests."""

from __future__ import annotations

import numpy as np

import trainer as tf


def blobs(n=240, features=4, classes=3, seed=0):
    """``n`` points around ``classes`` well-separated centres; returns (float32 features, int labels)."""
    generator = np.random.default_rng(seed)
    centers = generator.normal(scale=4.0, size=(classes, features))
    labels = generator.integers(0, classes, n)
    return (centers[labels] + generator.normal(size=(n, features))).astype(np.float32), labels


def classifier(optimizer="adam", seed=3):
    """A compiled 4 -> 8 -> 3 MLP with a fixed seed and a fresh session (layer names start again)."""
    tf.keras.utils.set_random_seed(seed)
    tf.keras.backend.clear_session()
    model = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(8, activation="relu"), tf.keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
