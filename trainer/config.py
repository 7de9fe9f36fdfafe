"""``tf.config``: choosing the array backend and listing devices."""

from __future__ import annotations

from dataclasses import dataclass

from trainer import backend
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


class threading:  # noqa: N801 - mirrors tf.config.threading
    """BLAS thread counts are set with OMP_NUM_THREADS before start-up; these report what is known."""

    @staticmethod
    def get_intra_op_parallelism_threads() -> int:
        return 0

    @staticmethod
    def get_inter_op_parallelism_threads() -> int:
        return 0
