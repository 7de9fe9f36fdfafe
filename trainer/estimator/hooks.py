"""``tf.estimator.SessionRunHook`` and ``StopAtStepHook``: code that runs around every training step."""

from __future__ import annotations


class SessionRunContext:
    """Passed to ``before_run``/``after_run``: ``request_stop()`` ends training after this step."""

    def __init__(self):
        self.stop_requested = False

    def request_stop(self) -> None:
        self.stop_requested = True


class SessionRunValues:
    """Passed to ``after_run``: ``results`` holds what the step just run computed.

    In ``train`` and ``evaluate`` that is ``{"loss": float, "global_step": int}``; in ``predict``,
    ``{"predictions": the batch's predictions as NumPy values}``.
    """

    def __init__(self, results: dict):
        self.results = results


class SessionRunHook:
    """Hooks into ``Estimator.train``/``evaluate``/``predict``; override the methods you need.

    emberflow runs steps without a session: ``after_create_session`` and ``end`` receive ``None`` as
    the session, and ``after_run`` receives the step's results in ``run_values.results`` (see
    ``SessionRunValues``). ``run_context.request_stop()`` ends the ``train``, ``evaluate`` or ``predict`` call.
    """

    def begin(self) -> None:
        """Called once before the first step."""

    def after_create_session(self, session, coord) -> None:
        """Called once the checkpoint is restored, before the first step."""

    def before_run(self, run_context) -> None:
        """Called before each step."""

    def after_run(self, run_context, run_values) -> None:
        """Called after each step with its results."""

    def end(self, session) -> None:
        """Called once after the last step."""


class StopAtStepHook(SessionRunHook):
    """Stops training after ``num_steps`` more steps, or once the global step reaches ``last_step``."""

    def __init__(self, num_steps=None, last_step=None):
        if (num_steps is None) == (last_step is None):
            raise ValueError("StopAtStepHook: exactly one of num_steps and last_step must be given")
        self._num_steps, self._last_step = num_steps, last_step
        self._stop_at = last_step

    def after_run(self, run_context, run_values) -> None:
        step = run_values.results["global_step"]
        if self._stop_at is None:
            self._stop_at = step - 1 + self._num_steps
        if step >= self._stop_at:
            run_context.request_stop()
