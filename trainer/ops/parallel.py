"""Intra-op threads: large element-wise kernels split their arrays across a small persistent pool.

NumPy releases the GIL inside ufuncs and copies over large arrays, so two threads each running half
of an ``apply_adam`` or an im2col copy finish it in about half the time, as PyTorch's intra-op
threads do. Splitting costs a hand-off (15-60 µs, more on a busy machine), so kernels split only
above ``MIN_SPLIT_BYTES`` of memory traffic and only on NumPy (CuPy already runs on the device).

The thread count is ``EMBERFLOW_NUM_THREADS`` when set. Otherwise it is 1 while NumPy's BLAS runs
its matrix products on several threads (the default), because the BLAS's idle workers spin for a
while after each product and a worker of ours then competes with them for the same cores: in
training, where products and element-wise kernels alternate, splitting made a CNN step 5-20% slower
on 2 cores (same-process A/B of ``set_threads(1)`` and ``(2)``), although it pays off on an element-wise
kernel alone. With a one-thread BLAS (``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS``
=1) the count is the CPUs this process may run on. ``tf.config.threading.set_intra_op_parallelism_threads(n)``
changes it at run time, ``1`` turns splitting off. Every split writes disjoint slices, so results are
bit-for-bit those of one thread.
"""

from __future__ import annotations

import os
import queue
import threading

import numpy as np

# Bytes read and written over all of a kernel's passes below which a hand-off costs more than half
# the work saves. Measured on the Adam update (12 passes over 4 arrays) with 2 threads on a busy
# 2-core machine: 100k float32 weights (4.8 MB of traffic) ran 155 µs alone and 176 µs split;
# 205k weights (9.6 MB) 298 µs alone and 239 µs split.
MIN_SPLIT_BYTES = 8 * 1024 * 1024


def default_threads() -> int:
    """``EMBERFLOW_NUM_THREADS``; else the CPUs available when the BLAS was given one thread, and 1 when
    the BLAS has the CPUs (see the module's docstring)."""
    configured = os.environ.get("EMBERFLOW_NUM_THREADS")
    if configured:
        return max(1, int(configured))
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return max(1, available) if int(value) == 1 else 1
    return 1


class _Pool:
    """``threads - 1`` daemon workers; the calling thread runs the first chunk itself."""

    def __init__(self):
        self.threads = default_threads()
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()  # one split at a time: the done queue is shared

    def _ensure_workers(self, count: int) -> None:
        while len(self._workers) < count:
            worker = threading.Thread(target=self._work, name=f"emberflow-intra-op-{len(self._workers)}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def _work(self) -> None:
        while True:
            function, start, stop = self._tasks.get()
            try:
                function(start, stop)
                self._done.put(None)
            except BaseException as error:  # noqa: BLE001 - handed back and re-raised in the caller
                self._done.put(error)

    def run(self, function, length: int, parts: int) -> None:
        bounds = [length * k // parts for k in range(parts + 1)]
        if not self._lock.acquire(blocking=False):  # a split inside a split, or another thread's: run inline
            function(0, length)
            return
        try:
            self._ensure_workers(parts - 1)
            for k in range(1, parts):
                self._tasks.put((function, bounds[k], bounds[k + 1]))
            error = None
            try:
                function(bounds[0], bounds[1])
            except BaseException as raised:  # noqa: BLE001 - still collect the workers' chunks first
                error = raised
            for _ in range(parts - 1):
                failure = self._done.get()
                error = error or failure
            if error is not None:
                raise error
        finally:
            self._lock.release()


_pool = _Pool()


def _reset_after_fork() -> None:
    # A forked child has none of the parent's worker threads (and maybe a held lock): start afresh.
    global _pool
    threads = _pool.threads
    _pool = _Pool()
    _pool.threads = threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def threads() -> int:
    """How many threads a large kernel splits into."""
    return _pool.threads


def set_threads(count: int) -> None:
    """Sets the number of intra-op threads (``1`` runs every kernel on the calling thread)."""
    count = int(count)
    if count < 1:
        raise ValueError(f"the number of intra-op threads must be at least 1, got {count}")
    _pool.threads = count


def split(xp, function, length: int, nbytes: int) -> None:
    """Calls ``function(start, stop)`` over ``[0, length)`` in contiguous chunks, one per thread, when
    ``nbytes`` (the memory traffic of the whole work, all passes) pays for the hand-off; else once.

    ``function`` must write only to the slices its range selects; chunks run concurrently.
    """
    parts = min(_pool.threads, length)
    if parts < 2 or nbytes < MIN_SPLIT_BYTES or xp is not np:
        function(0, length)
    else:
        _pool.run(function, length, parts)

