"""The lite runtime's exceptions: a bad file, and a call made out of order."""

from __future__ import annotations


class LiteFormatError(ValueError):
    """A lite file the runtime cannot trust or run; the message names the bad field and the expected value."""


class LiteStateError(RuntimeError):
    """An interpreter call made before the step it depends on; the message names the missing step."""
