"""A process killed (SIGKILL) while saving leaves the previous file whole: the save is atomic."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import trainer as tf
from trainer.keras.saving.file_format import SavingError

ROOT = Path(__file__).resolve().parents[3]

# Saves the same model over and over, every save with all weights set to the save's number, so a file
# that mixed two saves (or held half of one) would show it.
_SAVER = """
import sys
import numpy as np
import trainer as tf

path = sys.argv[1]
model = tf.keras.Sequential([tf.keras.Input(shape=(256,)), tf.keras.layers.Dense(512), tf.keras.layers.Dense(256)])
model.compile(optimizer="adam", loss="mse")
for number in range(1, 100_000):
    model.set_weights([np.full(w.shape, number, w.dtype) for w in model.get_weights()])
    model.save(path)
    if number == 1:
        print("saved", flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_a_process_killed_while_saving_leaves_a_file_that_loads_whole(tmp_path):
    path = tmp_path / "model.ember"
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    for delay in (0.0, 0.037, 0.111):
        process = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, cwd=ROOT, env=environment)
        try:
            assert process.stdout.readline() == b"saved\n"
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=60)
            process.stdout.close()
        assert process.returncode == -signal.SIGKILL
        weights = tf.keras.models.load_model(path).get_weights()
        number = weights[0].flat[0]
        assert number >= 1 and all(np.all(w == number) for w in weights)
        # At most the killed save's hidden temporary file is left beside it (the next save's cleanup is the user's).
        assert all(name == "model.ember" or (name.startswith(".model.ember.") and name.endswith(".tmp")) for name in os.listdir(tmp_path))


def test_load_weights_into_a_model_with_other_layers_names_both_lists(tmp_path):
    two = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(3, name="a"), tf.keras.layers.Dense(2, name="b")])
    two.save_weights(tmp_path / "two.weights.ember")
    one = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(3, name="c")])
    before = one.get_weights()
    with pytest.raises(SavingError, match=r"two\.weights\.ember: the file holds weights for 2 layers \('a', 'b'\) but the model has 1 layers with weights \('c'\)"):
        one.load_weights(tmp_path / "two.weights.ember")
    for a, b in zip(before, one.get_weights()):
        np.testing.assert_array_equal(a, b)
