"""samples/estimator_mnist.py: a run that crashes mid-training and its rerun end where an uninterrupted run ends."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import trainer as tf

ROOT = Path(__file__).resolve().parents[2]
ARGUMENTS = ["--subset", "--max-steps", "50", "--save-checkpoints-steps", "20"]


def _run(model_dir, *extra):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "EMBERFLOW_OFFLINE": "1"}
    command = [sys.executable, str(ROOT / "samples" / "estimator_mnist.py"), "--model-dir", str(model_dir), *ARGUMENTS, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=environment, check=False)


def test_crashed_run_resumes_from_model_dir_to_the_uninterrupted_result(tmp_path):
    crashed = _run(tmp_path / "crashed", "--simulate-crash-after", "33")
    assert crashed.returncode == 3, crashed.stderr[-2000:]
    assert "simulated crash at step 33" in crashed.stderr and "Test accuracy" not in crashed.stdout
    assert tf.train.latest_checkpoint(str(tmp_path / "crashed")).endswith("model.ckpt-20")

    resumed = _run(tmp_path / "crashed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming from" in resumed.stdout and "model.ckpt-20" in resumed.stdout
    assert "Global step: 50" in resumed.stdout

    uninterrupted = _run(tmp_path / "uninterrupted")
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    accuracy = float(re.search(r"Test accuracy: ([0-9.]+)", uninterrupted.stdout).group(1))
    assert accuracy > 0.6  # 50 steps of 32 images
    assert re.search(r"Test accuracy: ([0-9.]+)", resumed.stdout).group(1) == f"{accuracy:.4f}"
    for name, _ in tf.train.list_variables(str(tmp_path / "uninterrupted")):
        if name.startswith(("model/", "optimizer/")):
            expected = tf.train.load_variable(str(tmp_path / "uninterrupted"), name)
            np.testing.assert_array_equal(tf.train.load_variable(str(tmp_path / "crashed"), name), expected, err_msg=name)
