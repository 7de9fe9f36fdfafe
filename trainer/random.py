"""``tf.random``: seeded draws shared by initializers, dropout and dataset shuffles."""

from trainer.ops.random_ops import normal, set_seed, shuffle, truncated_normal, uniform  # noqa: F401
