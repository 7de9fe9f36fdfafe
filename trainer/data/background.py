"""Background work for ``tf.data``: ``prefetch`` on a producer thread and ``map`` on a thread pool.

Both start their threads when iteration starts and stop them when it ends — when the elements run
out, when the consumer stops early (the iterator is closed or dropped), or when an error occurs,
which is re-raised in the consuming thread with its original traceback.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from trainer.data.dataset import AUTOTUNE, UnaryDataset

_AUTOTUNE_BUFFER = 2  # elements in flight for prefetch(AUTOTUNE): one being consumed, one being made
_END = object()


class _Failure:
    """An exception raised on the producer thread, carried through the queue to the consumer."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


class PrefetchDataset(UnaryDataset):
    """What ``Dataset.prefetch`` returns: the input, produced ahead on a background thread."""

    def __init__(self, input_dataset, buffer_size):
        super().__init__(input_dataset)
        size = int(buffer_size)
        if size == AUTOTUNE:
            size = _AUTOTUNE_BUFFER
        elif size < 0:
            raise ValueError(f"prefetch(): buffer_size must be non-negative or tf.data.AUTOTUNE, got {buffer_size}")
        self._buffer_size = size

    def _elements(self):
        if self._buffer_size == 0:
            return self._input._elements()
        return prefetched(self._input._elements, self._buffer_size)


def _put(buffer: queue.Queue, item, stop: threading.Event) -> bool:
    """Puts ``item`` unless the consumer has gone; True when the producer should go on."""
    while not stop.is_set():
        try:
            buffer.put(item, timeout=0.05)
        except queue.Full:
            continue
        return not stop.is_set()
    return False


def _produce(make_elements, buffer: queue.Queue, stop: threading.Event) -> None:
    elements = make_elements()  # created, run and closed on this thread only
    try:
        for element in elements:
            if not _put(buffer, element, stop):
                return
        _put(buffer, _END, stop)
    except BaseException as error:  # noqa: BLE001 - every failure is handed to the consumer, none is lost
        _put(buffer, _Failure(error), stop)
    finally:
        close = getattr(elements, "close", None)
        if close is not None:
            close()


def prefetched(make_elements, buffer_size: int):
    """The elements of ``make_elements()``, produced up to ``buffer_size`` ahead on a background thread."""
    buffer: queue.Queue = queue.Queue(maxsize=buffer_size)
    stop = threading.Event()
    worker = threading.Thread(
        target=_produce, args=(make_elements, buffer, stop), name="emberflow-prefetch", daemon=True
    )
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # empty the queue so a producer blocked on a full one sees the stop
            try:
                buffer.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)


def parallel_map(function, elements, workers: int):
    """``map(function, elements)`` computed on ``workers`` threads, in input order."""
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="emberflow-map")
    pending: deque = deque()
    try:
        for element in elements:
            pending.append(executor.submit(function, element))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True)
