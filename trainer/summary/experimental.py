"""``tf.summary.experimental``: the default step."""

from trainer.summary.writer import get_step, set_step  # noqa: F401
