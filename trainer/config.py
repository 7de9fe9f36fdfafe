"""``tf.config``: choosing the array backend and listing devices."""

from __future__ import annotations

from dataclasses import dataclass

from trainer import backend
from trainer.ops import parallel
from trainer.backend import get_backend, set_backend  # noqa: F401


@dataclass(frozen=True)
class PhysicalDevice:
    name: str
    device_type: str


def list_physical_devices(device_type: str | None = None) -> list[PhysicalDevice]:
    devices = [PhysicalDevice("/physical_device:CPU:0", "CPU")]
    if backend.gpu_available():
        devices.append(PhysicalDevice("/physical_device:GPU:0", "GPU"))
    return [d for d in devices if device_type is None or d.device_type == device_type.upper()]


class optimizer:  # noqa: N801 - mirrors tf.config.optimizer
    """The graph optimizer's passes, on or off by name, as TensorFlow's Grappler options are:
    ``tf.config.optimizer.set_experimental_options({"phase_pooling": False})``. The names are in
    ``trainer.graph.passes.PASS_OPTIONS``; a function traced afterwards is optimized without the passes
    switched off."""

    @staticmethod
    def set_experimental_options(options: dict) -> None:
        from trainer.graph import passes  # noqa: PLC0415 - the passes import the op tables

        passes.set_experimental_options(options)

    @staticmethod
    def get_experimental_options() -> dict:
        from trainer.graph import passes  # noqa: PLC0415

        return passes.get_experimental_options()


class threading:  # noqa: N801 - mirrors tf.config.threading
    """Intra-op threads: how many threads a large element-wise kernel splits into (see
    ``trainer/ops/parallel.py``). BLAS thread counts are set with OMP_NUM_THREADS before start-up."""

    @staticmethod
    def get_intra_op_parallelism_threads() -> int:
        return parallel.threads()

    @staticmethod
    def set_intra_op_parallelism_threads(num_threads: int) -> None:
        """Sets the intra-op threads; ``0`` means the default (the CPUs available, capped by
        ``OMP_NUM_THREADS``), as in TensorFlow."""
        parallel.set_threads(num_threads or parallel.default_threads())

    @staticmethod
    def get_inter_op_parallelism_threads() -> int:
        return 0
