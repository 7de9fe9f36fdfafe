"""Training suite: samples/s of the MNIST MLP and CNN train steps, and the test accuracy they reach.

"emberflow" runs ``fit`` with traced train steps (the default, as in Keras); "emberflow-eager" runs the
same model with ``run_eagerly=True``. Every system trains the same architecture on the same real MNIST subset (4,000 training images) with
Adam and sparse categorical cross-entropy, pinned to the same number of threads, each system in a
process of its own started by the same run (another framework's idle thread pool must not take its cores).
Throughput is one epoch of the system's idiomatic training loop (``fit`` for emberflow and Keras; for
PyTorch both a lean loop that indexes preloaded tensors ("pytorch") and the tutorial form with a
``DataLoader`` ("pytorch-dataloader")) after a warm-up epoch, the best of three epochs in each of
three rounds in which the systems take turns (see ``run``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmarks.common import THREADS, Row, mnist_subset, peer_missing

SUITE = "training"


# -- emberflow -----------------------------------------------------------------------------------------


def _emberflow_model(kind: str, run_eagerly: bool = False):
    import trainer as tf  # noqa: PLC0415

    layers = tf.keras.layers
    if kind == "mlp":
        body = [layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10, activation="softmax")]
        shape = (28, 28)
    else:
        body = [
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
        shape = (28, 28, 1)
    model = tf.keras.Sequential([tf.keras.Input(shape=shape)] + body)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], run_eagerly=run_eagerly)
    return model


def _keras_model(kind: str):
    import tensorflow as tf  # noqa: PLC0415

    layers = tf.keras.layers
    if kind == "mlp":
        body = [layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10, activation="softmax")]
        shape = (28, 28)
    else:
        body = [
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
        shape = (28, 28, 1)
    model = tf.keras.Sequential([tf.keras.Input(shape=shape)] + body)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _fit_system(build, x, y, batch, repeats):
    """(samples/s of the best timed epoch) for a Keras-API system (emberflow or Keras)."""
    model = build()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # warm-up: builds, traces, allocates
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        best = min(best, time.perf_counter() - started)
    return len(x) / best


def _on_gpu(function):
    """``function`` run with emberflow's CuPy backend as the default (tensors and variables on the GPU)."""
    import trainer as tf  # noqa: PLC0415

    def run(*args):
        tf.config.set_backend("cupy")
        try:
            return function(*args)
        finally:
            tf.config.set_backend("numpy")

    return run


def _fit_accuracy(build, x, y, x_test, y_test, epochs):
    model = build()
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return float(accuracy)


# -- PyTorch -------------------------------------------------------------------------------------------


def _torch_model(kind: str):
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    torch.set_num_threads(THREADS)
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


def _torch_epoch(model, optimizer, x, y, batch):
    import torch  # noqa: PLC0415

    loss_function = torch.nn.CrossEntropyLoss()  # on logits: softmax + log-loss fused, as PyTorch users write it
    order = torch.randperm(len(x), device=x.device)
    model.train()
    for start in range(0, len(x), batch):
        index = order[start : start + batch]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model(x[index]), y[index])
        loss.backward()
        optimizer.step()


def _torch_loader_epoch(model, optimizer, loader):
    import torch  # noqa: PLC0415

    loss_function = torch.nn.CrossEntropyLoss()
    model.train()
    for images, labels in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model(images), labels)
        loss.backward()
        optimizer.step()


def _torch_loader_throughput(kind, x, y, batch, repeats):
    """PyTorch as its tutorials write it: a DataLoader over a TensorDataset, shuffled, per-sample collation."""
    import torch  # noqa: PLC0415
    from torch.utils.data import DataLoader, TensorDataset  # noqa: PLC0415

    torch.manual_seed(0)
    model = _torch_model(kind)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(*_torch_inputs(kind, x, y)), batch_size=batch, shuffle=True)
    _torch_loader_epoch(model, optimizer, loader)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        _torch_loader_epoch(model, optimizer, loader)
        best = min(best, time.perf_counter() - started)
    return len(x) / best


def _torch_inputs(kind, x, y):
    import torch  # noqa: PLC0415

    images = torch.from_numpy(x if kind == "mlp" else np.ascontiguousarray(x.reshape(-1, 1, 28, 28)))
    return images, torch.from_numpy(y)


def _torch_throughput(kind, x, y, batch, repeats, device="cpu"):
    """The lean loop; with ``device="cuda"`` the model and the whole dataset live on the GPU."""
    import torch  # noqa: PLC0415

    torch.manual_seed(0)
    model = _torch_model(kind).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = (tensor.to(device) for tensor in _torch_inputs(kind, x, y))
    _torch_epoch(model, optimizer, images, labels, batch)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        _torch_epoch(model, optimizer, images, labels, batch)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return len(x) / best


def _torch_accuracy(kind, x, y, x_test, y_test, epochs):
    import torch  # noqa: PLC0415

    torch.manual_seed(0)
    model = _torch_model(kind)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = _torch_inputs(kind, x, y)
    for _ in range(epochs):
        _torch_epoch(model, optimizer, images, labels, 32)
    model.eval()
    with torch.no_grad():
        test_images, test_labels = _torch_inputs(kind, x_test, y_test)
        return float((model(test_images).argmax(1) == test_labels).float().mean())


# -- the suite -----------------------------------------------------------------------------------------


CPU_SYSTEMS = ("emberflow", "emberflow-eager", "keras", "pytorch", "pytorch-dataloader")
GPU_SYSTEMS = ("emberflow-gpu", "pytorch-cuda")  # part of the default run where a CUDA GPU is present


def _gpu_present() -> bool:
    from trainer import backend  # noqa: PLC0415

    return backend.gpu_available()


def _cases(systems) -> list[tuple[str, int]]:
    cases = [("mlp", 32), ("mlp", 128), ("cnn", 32), ("cnn", 128)]
    if set(systems) & set(GPU_SYSTEMS):
        cases += [("mlp", 512), ("cnn", 512)]  # where a GPU earns its keep
    return cases


def _measure(system: str, cases, quick: bool, log, accuracy: bool = True) -> list[Row]:
    """Every case of one system, in this process (and the test accuracies too with ``accuracy``)."""
    (x_train, y_train), (x_test, y_test) = mnist_subset()
    repeats = 1 if quick else 3
    rows: list[Row] = []
    for kind, batch in cases:
        x = x_train if kind == "mlp" else x_train.reshape(-1, 28, 28, 1)
        case = f"{kind} batch {batch}"
        log(f"[training] {case}: {system} ...")
        try:
            if system == "emberflow":
                value = _fit_system(lambda: _emberflow_model(kind), x, y_train, batch, repeats)
            elif system == "emberflow-gpu":
                value = _on_gpu(_fit_system)(lambda: _emberflow_model(kind), x, y_train, batch, repeats)
            elif system == "pytorch-cuda":
                value = _torch_throughput(kind, x_train, y_train, batch, repeats, device="cuda")
            elif system == "emberflow-eager":
                value = _fit_system(lambda: _emberflow_model(kind, run_eagerly=True), x, y_train, batch, repeats)
            elif system == "keras":
                value = _fit_system(lambda: _keras_model(kind), x, y_train, batch, repeats)
            elif system == "pytorch-dataloader":
                value = _torch_loader_throughput(kind, x_train, y_train, batch, repeats)
            else:
                value = _torch_throughput(kind, x_train, y_train, batch, repeats)
            rows.append(Row(SUITE, case, system, "train throughput", value, "samples/s"))
        except ImportError as error:
            rows.append(peer_missing(SUITE, case, system, "train throughput", "samples/s", error))
    if quick or not accuracy or system in ("emberflow-eager", "pytorch-dataloader") + GPU_SYSTEMS:
        return rows
    for kind, epochs in {"mlp": 5, "cnn": 3}.items():
        x = x_train if kind == "mlp" else x_train.reshape(-1, 28, 28, 1)
        xt = x_test if kind == "mlp" else x_test.reshape(-1, 28, 28, 1)
        case = f"{kind} {epochs} epochs batch 32"
        log(f"[training] accuracy {case}: {system} ...")
        try:
            if system == "emberflow":
                value = _fit_accuracy(lambda: _emberflow_model(kind), x, y_train, xt, y_test, epochs)
            elif system == "keras":
                value = _fit_accuracy(lambda: _keras_model(kind), x, y_train, xt, y_test, epochs)
            else:
                value = _torch_accuracy(kind, x_train, y_train, x_test, y_test, epochs)
            rows.append(Row(SUITE, case, system, "test accuracy", value, "fraction"))
        except ImportError as error:
            rows.append(peer_missing(SUITE, case, system, "test accuracy", "fraction", error))
    return rows


def _child(system: str, cases_json: str, quick: str, accuracy: str = "1") -> None:
    """Entry point of one system's process: its rows as JSON on stdout, progress on stderr."""
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    cases = [tuple(case) for case in json.loads(cases_json)]
    print(json.dumps([asdict(row) for row in _measure(system, cases, quick == "1", log, accuracy == "1")]))


ROUNDS = 3  # full runs: every system this many times, in turn; --quick: once


def run(quick: bool = False, systems=None, log=print) -> list[Row]:
    """Each system runs in a process of its own: an idle framework's spinning worker threads (TensorFlow's
    and PyTorch's pools, OpenBLAS's) would otherwise take cores from whichever system runs after it.

    The systems take turns for ``ROUNDS`` rounds and each keeps its best throughput: on a shared machine
    whose speed drifts over minutes, a slow spell then costs every system a round instead of costing
    whichever system it happened to fall on its only measurement. Accuracies come from the first round.
    """
    systems = tuple(systems or CPU_SYSTEMS + (GPU_SYSTEMS if _gpu_present() else ()))
    cases = _cases(systems)
    best: dict[tuple, Row] = {}
    for round_ in range(1 if quick else ROUNDS):
        for system in systems:
            command = [sys.executable, "-c", "import sys; from benchmarks.training import _child; _child(*sys.argv[1:])",
                       system, json.dumps(cases), "1" if quick else "0", "1" if round_ == 0 else "0"]  # fmt: skip
            log(f"[training] round {round_ + 1}: {system} in a fresh process")
            done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
            if done.returncode != 0:
                raise RuntimeError(f"the training benchmark of {system} failed (exit {done.returncode}); its output is above")
            for row in (Row(**fields) for fields in json.loads(done.stdout.strip().splitlines()[-1])):
                key = (row.case, row.system, row.metric)
                kept = best.get(key)
                if kept is None or (row.value is not None and (kept.value is None or row.value > kept.value)):
                    best[key] = row
    rows = list(best.values())
    order = {case: i for i, case in enumerate(dict.fromkeys(row.case for row in rows))}
    return sorted(rows, key=lambda row: (row.metric != "train throughput", order[row.case], systems.index(row.system)))
