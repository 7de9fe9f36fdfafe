"""Writing files so that a crash never leaves a half-written one behind: the trainer's one implementation."""

from __future__ import annotations

from trainer.files import write_atomically

__all__ = ["write_atomically"]
