"""Summary writers, the default-writer stack and the default step behind ``tf.summary``."""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np

from trainer.summary.event_file import EventFileWriter, event

_default_writers: list = []
_default_step = [None]


class SummaryWriter:
    """Writes summaries to one event file in ``logdir``; made by ``tf.summary.create_file_writer``.

    Use it as the default writer (``with writer.as_default(): tf.summary.scalar(...)``), then
    ``flush()`` or ``close()`` it. Records are buffered and flushed every ``max_queue`` summaries or
    every ``flush_millis`` milliseconds.
    """

    def __init__(self, logdir, max_queue=10, flush_millis=120_000, filename_suffix=None):
        self.logdir = os.fspath(logdir)
        self.max_queue = 10 if max_queue is None else int(max_queue)
        self.flush_millis = 120_000 if flush_millis is None else int(flush_millis)
        self._file = EventFileWriter(self.logdir, filename_suffix or "")
        self._pending = 0
        self._last_flush = time.monotonic()

    @property
    def path(self) -> str:
        """The event file this writer appends to."""
        return self._file.path

    @contextlib.contextmanager
    def as_default(self, step=None):
        """Makes this the writer ``tf.summary.*`` ops write to (and ``step`` the default step) inside the block."""
        _default_writers.append(self)
        previous_step = _default_step[0]
        if step is not None:
            _default_step[0] = step
        try:
            yield self
        finally:
            _default_writers.pop()
            if step is not None:
                _default_step[0] = previous_step
            self.flush()

    def set_as_default(self, step=None) -> None:
        """Makes this the default writer until another one is set (TF's non-context form)."""
        _default_writers[:] = [self]
        if step is not None:
            _default_step[0] = step

    def write_values(self, values, step) -> None:
        if self._file.closed:
            raise ValueError(f"the summary writer for {self.logdir!r} is closed")
        self._file.write(event(step=step, summary_values=values))
        self._pending += 1
        if self._pending >= self.max_queue or (time.monotonic() - self._last_flush) * 1000 >= self.flush_millis:
            self.flush()

    def write_graph_def(self, graph_def: bytes, step: int = 0) -> None:
        """Appends an event holding an encoded ``GraphDef`` (what ``tf.summary.graph`` writes)."""
        if self._file.closed:
            raise ValueError(f"the summary writer for {self.logdir!r} is closed")
        self._file.write(event(step=step, graph_def=graph_def))
        self.flush()

    def flush(self) -> None:
        self._file.flush()
        self._pending, self._last_flush = 0, time.monotonic()

    def close(self) -> None:
        self.flush()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def create_file_writer(logdir, max_queue=None, flush_millis=None, filename_suffix=None, name=None, experimental_trackable=False) -> SummaryWriter:
    """A ``SummaryWriter`` for ``logdir`` (created if missing).

    Example:
        >>> writer = tf.summary.create_file_writer("logs/run1")
        >>> with writer.as_default(step=0):
        ...     tf.summary.scalar("loss", 0.25)
    """
    del name, experimental_trackable
    return SummaryWriter(logdir, max_queue, flush_millis, filename_suffix)


def default_writer():
    return _default_writers[-1] if _default_writers else None


def flush(writer=None) -> None:
    """Flushes ``writer``, or the default writer."""
    writer = writer or default_writer()
    if writer is not None:
        writer.flush()


def set_step(step) -> None:
    """Sets the default step for summary ops called without ``step=`` (an int, a tensor or a variable)."""
    _default_step[0] = step


def get_step():
    return _default_step[0]


def resolve_step(step) -> int:
    step = _default_step[0] if step is None else step
    if step is None:
        raise ValueError("No step set. Please specify one either through the `step` argument or through tf.summary.experimental.set_step()")
    return int(np.asarray(step.numpy() if hasattr(step, "numpy") else step))
