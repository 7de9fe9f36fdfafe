"""The summary ops: ``scalar``, ``histogram``, ``image``, ``text`` and ``graph``, each written as TF 2 writes it."""

from __future__ import annotations

import numpy as np

from trainer.summary import event_file
from trainer.summary.graph_def import graph_def
from trainer.summary.png import encode_png
from trainer.summary.writer import default_writer, resolve_step


def _numpy(data):
    return np.asarray(data.numpy() if hasattr(data, "numpy") else data)


def _write(name, tensor, plugin_name, data_class, step, description) -> bool:
    writer = default_writer()
    if writer is None:
        return False  # TF's contract: no default writer, nothing written, False returned
    value = event_file.summary_value(name, tensor, plugin_name, data_class, description)
    writer.write_values([value], resolve_step(step))
    return True


def scalar(name, data, step=None, description=None) -> bool:
    """Writes one float (``data``) under ``name`` at ``step`` (default: ``tf.summary.experimental.set_step``).

    Returns True when written, False when there is no default writer.
    """
    value = _numpy(data)
    if value.size != 1:
        raise ValueError(f"tf.summary.scalar({name!r}) expects a scalar, got shape {value.shape}")
    tensor = event_file.tensor_proto(event_file.DT_FLOAT, (), floats=[float(value.reshape(()))])
    return _write(name, tensor, "scalars", event_file.DATA_CLASS_SCALAR, step, description)


def histogram(name, data, step=None, buckets=30, description=None) -> bool:
    """Writes the distribution of ``data`` as ``buckets`` equal-width buckets over [min, max].

    Stored as TF 2 stores it: a float64 tensor of shape (buckets, 3) holding left edge, right edge, count.
    """
    values = _numpy(data).astype(np.float64).reshape(-1)
    buckets = 30 if buckets is None else int(buckets)
    if buckets < 1:
        raise ValueError(f"tf.summary.histogram({name!r}) needs buckets >= 1, got {buckets}")
    if values.size == 0:
        table = np.zeros((0, 3))
    else:
        low, high = float(values.min()), float(values.max())
        if low == high:  # one value: one bucket of unit width around it, so the edges are distinct
            low, high = low - 0.5, high + 0.5
        counts, edges = np.histogram(values, bins=buckets, range=(low, high))
        table = np.stack([edges[:-1], edges[1:], counts.astype(np.float64)], axis=1)
    tensor = event_file.tensor_proto(event_file.DT_DOUBLE, table.shape, doubles=table.reshape(-1).tolist())
    return _write(name, tensor, "histograms", event_file.DATA_CLASS_TENSOR, step, description)


def image(name, data, step=None, max_outputs=3, description=None) -> bool:
    """Writes up to ``max_outputs`` images from ``data`` shaped (k, height, width, channels), channels 1, 3 or 4.

    Floats are taken in [0, 1] and converted as ``tf.image.convert_image_dtype`` does; uint8 is kept.
    """
    images = _numpy(data)
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"tf.summary.image({name!r}) expects (k, height, width, 1|3|4), got shape {images.shape}")
    if images.dtype == np.uint8:
        pixels = images
    elif np.issubdtype(images.dtype, np.floating):
        pixels = np.floor(np.clip(images, 0.0, 1.0) * 255.5).astype(np.uint8)
    else:
        raise ValueError(f"tf.summary.image({name!r}) expects float images in [0, 1] or uint8, got {images.dtype}")
    pixels = pixels[: max(int(max_outputs), 0)]
    height, width = images.shape[1:3]
    blobs = [str(width).encode(), str(height).encode()] + [encode_png(picture) for picture in pixels]
    tensor = event_file.tensor_proto(event_file.DT_STRING, (len(blobs),), strings=blobs)
    return _write(name, tensor, "images", event_file.DATA_CLASS_BLOB_SEQUENCE, step, description)


def text(name, data, step=None, description=None) -> bool:
    """Writes a string (or an array of strings, shown as a table) as Markdown in TensorBoard's text tab."""
    values = _numpy(data)
    strings = [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in values.reshape(-1).tolist()]
    tensor = event_file.tensor_proto(event_file.DT_STRING, values.shape, strings=[s.encode("utf-8") for s in strings])
    return _write(name, tensor, "text", event_file.DATA_CLASS_TENSOR, step, description)


def graph(graph_data) -> bool:
    """Writes a graph for TensorBoard's Graphs tab: a traced ``Graph``, a concrete function, or GraphDef bytes.

    Example:
        >>> concrete = tf.function(model).get_concrete_function(tf.TensorSpec([None, 784]))
        >>> with writer.as_default():
        ...     tf.summary.graph(concrete.graph)
    """
    writer = default_writer()
    if writer is None:
        return False
    if isinstance(graph_data, (bytes, bytearray)):
        encoded = bytes(graph_data)
    else:
        ir = getattr(graph_data, "graph", graph_data)  # a ConcreteFunction carries its Graph
        if not hasattr(ir, "nodes") or not hasattr(ir, "variables"):
            raise TypeError(f"tf.summary.graph expects a traced Graph, a concrete function or GraphDef bytes, got {type(graph_data).__name__}")
        encoded = graph_def(ir)
    writer.write_graph_def(encoded)
    return True
