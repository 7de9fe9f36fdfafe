"""``tf.estimator.RunConfig``: where an estimator keeps its checkpoints and how often it writes them."""

from __future__ import annotations

import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How an ``Estimator`` runs, with TensorFlow's defaults.

    Args:
        model_dir: the folder for checkpoints (``None``: a temporary folder chosen by the estimator).
        tf_random_seed: passed to ``tf.random.set_seed`` at the start of every ``train``/``evaluate``/
            ``predict`` call, before ``input_fn`` and ``model_fn`` run (``None``: not reseeded).
        save_summary_steps: accepted for compatibility; emberflow's estimators write no summaries.
        save_checkpoints_steps: write a checkpoint every this many steps. Only one of this and
            ``save_checkpoints_secs`` may be set; when neither is, a checkpoint is written every 600 s.
        save_checkpoints_secs: write a checkpoint when this many seconds passed since the last one.
        keep_checkpoint_max: how many recent checkpoints to keep (``None`` or 0: all).
        keep_checkpoint_every_n_hours: also keep one checkpoint per this many hours.
        log_step_count_steps: log the loss and the step every this many steps (Python ``logging``, INFO);
            ``None`` logs nothing.
    """

    model_dir: str | None = None
    tf_random_seed: int | None = None
    save_summary_steps: int = 100
    save_checkpoints_steps: int | None = None
    save_checkpoints_secs: float | None = None
    session_config: object = None
    keep_checkpoint_max: int | None = 5
    keep_checkpoint_every_n_hours: float = 10000
    log_step_count_steps: int | None = 100

    def __post_init__(self):
        if self.save_checkpoints_steps is not None and self.save_checkpoints_secs is not None:
            raise ValueError("RunConfig: at most one of save_checkpoints_steps and save_checkpoints_secs can be set")
        if self.save_checkpoints_steps is None and self.save_checkpoints_secs is None:
            object.__setattr__(self, "save_checkpoints_secs", 600)
        for name in ("save_checkpoints_steps", "save_checkpoints_secs", "log_step_count_steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"RunConfig: {name} must be a positive number or None, got {value!r}")
        if self.model_dir is not None:
            object.__setattr__(self, "model_dir", os.fspath(self.model_dir))

    def replace(self, **kwargs) -> "RunConfig":
        """A copy with some fields changed (``RunConfig.replace`` in TensorFlow).

        As in TensorFlow, setting one of ``save_checkpoints_steps`` and ``save_checkpoints_secs`` to a
        value clears the other; setting both to values is an error.
        """
        steps, secs = kwargs.get("save_checkpoints_steps"), kwargs.get("save_checkpoints_secs")
        if "save_checkpoints_steps" in kwargs and "save_checkpoints_secs" not in kwargs and steps is not None:
            kwargs["save_checkpoints_secs"] = None
        elif "save_checkpoints_secs" in kwargs and "save_checkpoints_steps" not in kwargs and secs is not None:
            kwargs["save_checkpoints_steps"] = None
        return dataclasses.replace(self, **kwargs)
