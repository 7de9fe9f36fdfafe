"""``tf.keras.utils.Progbar``: the progress bar ``fit``, ``evaluate`` and ``predict`` print."""

from __future__ import annotations

import os
import sys
import time


class Progbar:
    """A Keras-style progress bar: ``1875/1875 [==============================] - 3s 1ms/step - loss: 0.29``.

    Args:
        target: total number of steps, or ``None`` when unknown.
        width: width of the bar in characters.
        verbose: 1 draws the bar, 2 prints one line when the target is reached, 0 is silent.
        interval: minimum seconds between redraws.
        unit_name: what a step is called in the speed column.

    On a terminal the bar redraws in place; elsewhere (CI logs, pipes) only the final line is printed.
    """

    def __init__(self, target, width=30, verbose=1, interval=0.05, stateful_metrics=None, unit_name="step", stream=None):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stream = stream or sys.stdout
        # Any container works (ProgbarLogger passes one that contains every name).
        self.stateful_metrics = stateful_metrics if hasattr(stateful_metrics, "__contains__") else set(stateful_metrics or ())
        self._dynamic = (hasattr(self.stream, "isatty") and self.stream.isatty()) or "ipykernel" in sys.modules or os.environ.get("EMBERFLOW_PROGBAR") == "dynamic"
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._previous_width = 0
        self._values: dict[str, list] = {}
        self._seen = 0

    def update(self, current, values=None, finalize=None):
        """Moves the bar to step ``current``; ``values`` are ``(name, value)`` pairs shown after it."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for name, value in values or ():
            if name in self.stateful_metrics:
                self._values[name] = [value, 1]
            else:
                weight = max(current - self._seen, 1)
                total = self._values.setdefault(name, [0.0, 0])
                total[0] += value * weight
                total[1] += weight
        self._seen = current
        if self.verbose == 0:
            return
        now = time.perf_counter()
        if not finalize and (now - self._last_draw < self.interval or not self._dynamic):
            return
        self._last_draw = now
        elapsed = now - self._start
        if self.verbose == 1:
            line = self._bar(current) + self._timing(current, elapsed, finalize) + self._metrics()
            if self._dynamic:
                padding = max(self._previous_width - len(line), 0)
                self.stream.write("\r" + line + " " * padding)
                self._previous_width = len(line)
            else:
                self.stream.write(line)
            if finalize:
                self.stream.write("\n")
        elif finalize:
            self.stream.write(f"{current}/{self.target} - {elapsed:.0f}s{self._metrics()}\n")
        self.stream.flush()

    def add(self, n, values=None):
        self.update(self._seen + n, values)

    def _bar(self, current) -> str:
        if self.target is None:
            return f"{current:7d}/Unknown"
        digits = len(str(self.target))
        text = f"{current:{digits}d}/{self.target} ["
        progress = min(current / self.target, 1.0) if self.target else 1.0
        filled = int(self.width * progress)
        if filled > 0:
            text += "=" * (filled - 1) + (">" if current < self.target else "=")
        text += "." * (self.width - filled) + "]"
        return text

    def _timing(self, current, elapsed, finalize) -> str:
        per_step = elapsed / current if current else 0.0
        if finalize or self.target is None:
            return f" - {elapsed:.0f}s {_format_per_step(per_step)}/{self.unit_name}"
        eta = per_step * (self.target - current)
        if eta > 3600:
            eta_text = f"{int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}"
        elif eta > 60:
            eta_text = f"{int(eta // 60)}:{int(eta % 60):02d}"
        else:
            eta_text = f"{eta:.0f}s"
        return f" - ETA: {eta_text}"

    def _metrics(self) -> str:
        parts = []
        for name, (total, count) in self._values.items():
            value = total / max(count, 1)
            parts.append(f" - {name}: {value:.4f}" if abs(value) > 1e-3 or value == 0 else f" - {name}: {value:.4e}")
        return "".join(parts)


def _format_per_step(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms"
    return f"{seconds * 1e6:.0f}us"
