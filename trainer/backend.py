"""Where arrays live: NumPy on the CPU (the default) or CuPy on a GPU.

Every kernel is written against an array module ``xp`` that is NumPy or CuPy, so one definition serves
both devices. A tensor's device is the device of its array; ops never move data between devices on
their own — crossing is explicit (``tensor.cpu()``, ``tensor.gpu()``, or ``tf.identity`` inside a
``tf.device`` scope).
"""

from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

CPU = "CPU:0"
GPU = "GPU:0"


class DeviceError(RuntimeError):
    """Raised when an op mixes devices or a GPU is requested but unavailable."""


class _Placement(threading.local):
    def __init__(self):
        self.stack: list[str] = []


_placement = _Placement()
_default_device = CPU
_cupy = None
cupy_in_use = False  # flips once a CuPy array exists; until then device checks cost nothing


def _load_cupy():
    global _cupy
    if _cupy is None:
        try:
            import cupy  # noqa: PLC0415 - optional dependency, imported only on request
        except ImportError as error:
            raise DeviceError(
                "the GPU backend needs CuPy: pip install 'emberflow[gpu]' (cupy-cuda12x)"
            ) from error
        try:
            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise DeviceError("CuPy is installed but no CUDA GPU is visible")
        except cupy.cuda.runtime.CUDARuntimeError as error:
            raise DeviceError(f"CuPy is installed but CUDA is not usable: {error}") from error
        _cupy = cupy
    return _cupy


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        _load_cupy()
    except DeviceError:
        return False
    return True


def _normalize(name: str) -> str:
    text = name.upper().replace("/DEVICE:", "").replace("/", "")
    if text in ("CPU", "CPU:0", "NUMPY"):
        return CPU
    if text in ("GPU", "GPU:0", "CUDA", "CUDA:0", "CUPY"):
        return GPU
    raise ValueError(f"unknown device {name!r}; emberflow knows 'CPU:0' (NumPy) and 'GPU:0' (CuPy)")


def set_backend(name: str) -> None:
    """Sets where new tensors are created: ``"numpy"`` (CPU) or ``"cupy"`` (GPU)."""
    global _default_device, cupy_in_use
    device = _normalize(name)
    if device == GPU:
        _load_cupy()
        cupy_in_use = True
    _default_device = device


def get_backend() -> str:
    return "cupy" if current_device() == GPU else "numpy"


def current_device() -> str:
    return _placement.stack[-1] if _placement.stack else _default_device


@contextlib.contextmanager
def device(name: str):
    """``with tf.device("GPU:0"):`` creates new tensors and variables on that device."""
    global cupy_in_use
    target = _normalize(name)
    if target == GPU:
        _load_cupy()
        cupy_in_use = True
    _placement.stack.append(target)
    try:
        yield
    finally:
        _placement.stack.pop()


def default_module():
    """The array module for newly created arrays (NumPy, or CuPy under a GPU placement)."""
    return _cupy if current_device() == GPU else np


def module_of(array):
    """The array module an existing array belongs to."""
    if type(array) is np.ndarray or not cupy_in_use:
        return np
    return _cupy if isinstance(array, _cupy.ndarray) else np


def device_of(array) -> str:
    return GPU if module_of(array) is not np else CPU


def to_device(array, target: str):
    """Copies an array to ``target`` (a no-op when it is already there)."""
    target = _normalize(target)
    if target == CPU:
        return array.get() if module_of(array) is not np else array
    return _load_cupy().asarray(array)


def to_numpy(array) -> np.ndarray:
    return array.get() if module_of(array) is not np else np.asarray(array)


def check_same_device(arrays, op_name: str):
    """The array module shared by ``arrays``; a clear error when an op would mix devices."""
    modules = {module_of(a) for a in arrays}
    if len(modules) > 1:
        raise DeviceError(
            f"op '{op_name}' got inputs on both CPU:0 and GPU:0; move one explicitly "
            "(tensor.cpu(), tensor.gpu(), or tf.identity inside a tf.device scope)"
        )
    return modules.pop() if modules else default_module()


# -- host memory -----------------------------------------------------------------------------------

# glibc gives freed blocks back to the OS when free space at the top of the heap passes a threshold
# that tracks the largest block freed so far (a few MB here), and serves blocks from 128 KiB up to
# that size with fresh mmaps. A training step frees and reallocates the same large arrays every
# step, so each step paid again for every page: 2,200 page faults per MNIST CNN step, 20.3 ms of CPU
# instead of 12.0 ms. Fixed thresholds keep freed blocks in the heap for the next step to reuse.
_MMAP_THRESHOLD = 32 * 1024 * 1024  # the largest glibc accepts; bigger blocks still get their own mmap
_TRIM_THRESHOLD = 512 * 1024 * 1024  # free heap kept for reuse before any is returned to the OS


def keep_freed_host_memory() -> bool:
    """Sets glibc's malloc thresholds so that freed arrays (up to 32 MiB each, 512 MiB in all) stay
    in the process for reuse; returns whether it applied (glibc only). ``import trainer`` calls it
    unless ``EMBERFLOW_KEEP_FREED_MEMORY=0``."""
    import ctypes  # noqa: PLC0415 - only needed once, at start-up
    import sys  # noqa: PLC0415

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_trim_threshold, _TRIM_THRESHOLD)) and bool(mallopt(m_mmap_threshold, _MMAP_THRESHOLD))


if os.environ.get("EMBERFLOW_KEEP_FREED_MEMORY", "1") != "0":
    keep_freed_host_memory()
