"""Graph passes suite: what each training pass is worth, in train-step and evaluation-step throughput.

For the MNIST MLP and CNN at batch 32 and 128, the traced steps are built once with every pass
("emberflow") and once without each of the passes that shape a training step
(``tf.config.optimizer.set_experimental_options({name: False})``), all in one process. The variants
then take turns, a few steps each, for several rounds, and each keeps its best round: the machine's
drift falls on every variant alike, which separate runs could not promise.
"""

from __future__ import annotations

import time

from benchmarks.common import Row, mnist_subset

SUITE = "passes"
# The passes worth switching off one at a time in a training step (the others are cleanups whose
# absence changes little). Phase pooling rewrites what the three before it leave (fused convolutions,
# shared patches, pooling gradients that reuse the forward maximum), so switching any of those off
# switches it off too: their rows measure them together with it.
ABLATIONS = ("remapping", "shared_patches", "pooling_gradients", "phase_pooling")


def _variant(kind: str, batch: int, switched_off: str | None, x, y):
    """A compiled model whose training step was traced (and optimized) without the pass ``switched_off``."""
    import trainer as tf  # noqa: PLC0415

    from benchmarks.training import _emberflow_model  # noqa: PLC0415

    if switched_off:
        tf.config.optimizer.set_experimental_options({switched_off: False})
    try:
        model = _emberflow_model(kind)
        model.fit(x[: batch * 2], y[: batch * 2], batch_size=batch, epochs=1, verbose=0)  # traces and optimizes
        model.evaluate(x[: batch * 2], y[: batch * 2], batch_size=batch, verbose=0)  # the evaluation step too
    finally:
        if switched_off:
            tf.config.optimizer.set_experimental_options({switched_off: True})
    return model


def run(quick: bool = False, systems=None, log=print) -> list[Row]:
    import trainer as tf  # noqa: PLC0415

    names = ("emberflow",) + tuple(f"without {name}" for name in ABLATIONS)
    names = tuple(name for name in names if systems is None or name in systems)
    (x_train, y_train), _ = mnist_subset()
    rows = []
    for kind, batch in (("mlp", 32), ("mlp", 128), ("cnn", 32), ("cnn", 128)):
        x = x_train if kind == "mlp" else x_train.reshape(-1, 28, 28, 1)
        case = f"{kind} batch {batch}"
        log(f"[passes] {case}: tracing {len(names)} variants ...")
        models = {name: _variant(kind, batch, None if name == "emberflow" else name.split(" ", 1)[1], x, y_train) for name in names}
        steps = min(len(x) // batch, 40 if kind == "cnn" else 120)
        batches = [(tf.constant(x[i : i + batch]), tf.constant(y_train[i : i + batch])) for i in range(0, steps * batch, batch)]
        for metric, make in (("train throughput", "make_train_function"), ("evaluate throughput", "make_test_function")):
            best = dict.fromkeys(names, float("inf"))
            for _ in range(2 if quick else 8):
                for name, model in models.items():
                    step = getattr(model, make)()
                    step(batches[0])  # warm after the other variant's turn
                    started = time.perf_counter()
                    for batch_tensors in batches:
                        step(batch_tensors)
                    best[name] = min(best[name], (time.perf_counter() - started) / len(batches))
            rows += [Row(SUITE, case, name, metric, batch / best[name], "samples/s") for name in names]
    return rows
