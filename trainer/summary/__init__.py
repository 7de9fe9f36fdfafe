"""``tf.summary``: TensorBoard event files written in pure Python (no protobuf or TensorFlow at runtime).

``create_file_writer(logdir)`` makes a writer; inside ``with writer.as_default():`` the ops ``scalar``,
``histogram``, ``image``, ``text`` and ``graph`` append records to its event file. Files: ``event_file``
(TFRecord framing and the Event/Summary encoding), ``protobuf`` (the wire-format encoder), ``crc32c``,
``png`` (a zlib-based PNG encoder, no imaging library), ``graph_def`` (our graph IR as a GraphDef).

Example:
    >>> writer = tf.summary.create_file_writer("logs/run1")
    >>> with writer.as_default():
    ...     for step in range(3):
    ...         tf.summary.scalar("loss", 1.0 / (step + 1), step=step)
"""

from trainer.summary import experimental  # noqa: F401
from trainer.summary.ops import graph, histogram, image, scalar, text  # noqa: F401
from trainer.summary.writer import SummaryWriter, create_file_writer, flush  # noqa: F401
