"""``tf.keras.utils.plot_history``: training curves as an image, with a clear error without matplotlib."""

import os
import sys

import numpy as np
import pytest

import trainer as tf


def _history(validation=True):
    history = tf.keras.callbacks.History()
    for epoch in range(3):
        logs = {"loss": 1.0 / (epoch + 1), "accuracy": 0.5 + 0.1 * epoch, "learning_rate": 0.01}
        if validation:
            logs.update(val_loss=1.2 / (epoch + 1), val_accuracy=0.45 + 0.1 * epoch)
        history.on_epoch_end(epoch, logs)
    return history


def test_plot_history_draws_one_panel_per_metric_with_train_and_validation(tmp_path):
    pytest.importorskip("matplotlib")
    image_module = pytest.importorskip("PIL.Image")
    path = tf.keras.utils.plot_history(_history(), tmp_path / "curves.png", title="run 1")
    with image_module.open(path) as picture:
        assert picture.format == "PNG" and picture.size == (900, 350)  # two panels of 4.5 x 3.5 inches at 100 dpi
        pixels = np.asarray(picture.convert("RGB"))
    # matplotlib's first two colours (blue train, orange validation) are both drawn.
    assert (np.abs(pixels.astype(int) - [31, 119, 180]).sum(axis=-1) < 30).sum() > 100
    assert (np.abs(pixels.astype(int) - [255, 127, 14]).sum(axis=-1) < 30).sum() > 100
    single = tf.keras.utils.plot_history(_history(validation=False).history, tmp_path / "loss.png", metrics=["loss"])
    with image_module.open(single) as picture:
        assert picture.size == (450, 350)
        assert (np.abs(np.asarray(picture.convert("RGB")).astype(int) - [255, 127, 14]).sum(axis=-1) < 30).sum() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "loss.png"]  # no temporary files left


def test_plot_history_errors_name_what_is_missing(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match=r"no logs for \['auc'\]; the history has \['accuracy', 'learning_rate', 'loss'"):
        tf.keras.utils.plot_history(_history(), tmp_path / "x.png", metrics=["auc"])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="plot_history needs matplotlib: pip install matplotlib"):
        tf.keras.utils.plot_history(_history(), tmp_path / "x.png")


def test_plot_history_writes_a_file_with_the_umasks_mode_like_any_other(tmp_path):
    pytest.importorskip("matplotlib")
    umask = os.umask(0o022)
    try:
        path = tf.keras.utils.plot_history(_history(), tmp_path / "training_curves.png")
    finally:
        os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o644
    with open(path, "rb") as image:
        assert image.read(8) == b"\x89PNG\r\n\x1a\n"
