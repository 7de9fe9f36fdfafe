"""``plot_history``: the training curves of a ``fit``, one panel per metric, train and validation together."""

from __future__ import annotations

import io
import os

from trainer.files import write_atomically


def plot_history(history, path, metrics=None, title=None) -> str:
    """Draws each metric per epoch (train, and validation when logged) to an image file; returns its path.

    Args:
        history: what ``fit`` returns (a ``History``), or its ``history`` dict.
        path: the image to write (".png", ".svg", ".pdf", ... as matplotlib knows them), written atomically.
        metrics: the metric names to draw (default: every logged name without ``val_``, except the
            learning rate, loss first).
        title: a title above the panels.

    Needs matplotlib (``pip install matplotlib``, or emberflow's ``plot`` extra).

    Example:
        >>> history = model.fit(x, y, epochs=5, validation_split=0.1)
        >>> tf.keras.utils.plot_history(history, "training_curves.png")
    """
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")  # files only: never opens a window
        from matplotlib import pyplot  # noqa: PLC0415
        from matplotlib.ticker import MaxNLocator  # noqa: PLC0415
    except ImportError:
        raise ImportError("plot_history needs matplotlib: pip install matplotlib (or emberflow's 'plot' extra)") from None
    logs = dict(getattr(history, "history", history))
    epochs = list(getattr(history, "epoch", None) or range(len(next(iter(logs.values()), []))))
    if metrics is None:
        names = [name for name in logs if not name.startswith("val_") and name != "learning_rate"]
        metrics = sorted(names, key=lambda name: (name != "loss", name))
    missing = [name for name in metrics if name not in logs]
    if not metrics or missing:
        raise ValueError(f"plot_history: no logs for {missing or 'any metric'}; the history has {sorted(logs)}")
    figure, axes = pyplot.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5), squeeze=False)
    shown_epochs = [epoch + 1 for epoch in epochs]  # as the progress bar counts them
    for axis, name in zip(axes[0], metrics):
        axis.plot(shown_epochs, logs[name], marker="o", label="train")
        if f"val_{name}" in logs:
            validation = logs[f"val_{name}"]
            axis.plot(shown_epochs[-len(validation):], validation, marker="o", label="validation")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    image = io.BytesIO()  # rendered in memory, then written like every other file: whole, with the umask's mode
    try:
        figure.savefig(image, format=extension, dpi=100)
    finally:
        pyplot.close(figure)
    write_atomically(path, image.getvalue())
    return path
