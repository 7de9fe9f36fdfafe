"""``tf.train.CheckpointManager``, ``tf.train.latest_checkpoint`` and the directory's ``checkpoint`` file.

The ``checkpoint`` file is TensorFlow's text format, one field a line, paths relative to the directory::

    model_checkpoint_path: "ckpt-3"
    all_model_checkpoint_paths: "ckpt-2"
    all_model_checkpoint_paths: "ckpt-3"
    all_model_checkpoint_timestamps: 1733300000.5
    all_model_checkpoint_timestamps: 1733300060.1
    last_preserved_timestamp: 1733299990.0

It is rewritten atomically (temporary file, fsync, rename) after the checkpoint it names is complete,
so a crash leaves it naming the previous complete checkpoint. Reading it treats it as hostile: size
capped, only these fields, and only names of files inside the directory (no path separator, NUL,
``.`` or ``..``; spaces, ``+`` and any other character a file name may hold are fine).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field

from trainer.files import write_atomically
from trainer.train import checkpoint_file
from trainer.train.trackable import CheckpointError

logger = logging.getLogger("trainer.train")

STATE_FILE = "checkpoint"
_MAX_STATE_BYTES = 1 << 20
_LINE = re.compile(r"(model_checkpoint_path|all_model_checkpoint_paths|all_model_checkpoint_timestamps|last_preserved_timestamp): (.+)")
_NOT_IN_A_FILE_NAME = ("/", "\\", "\0")


def _is_file_name(name: str) -> bool:
    """Whether ``name`` names a file inside a directory (and cannot escape it)."""
    return bool(name) and name not in (".", "..") and not any(character in name for character in _NOT_IN_A_FILE_NAME)


@dataclass
class CheckpointState:
    """The parsed ``checkpoint`` file (``tf.train.get_checkpoint_state``); paths are joined to the directory."""

    model_checkpoint_path: str
    all_model_checkpoint_paths: list = field(default_factory=list)
    all_model_checkpoint_timestamps: list = field(default_factory=list)
    last_preserved_timestamp: float = 0.0


def get_checkpoint_state(checkpoint_dir, latest_filename=None) -> CheckpointState | None:
    """The directory's checkpoint state, or ``None`` when it has no ``checkpoint`` file."""
    checkpoint_dir = os.fspath(checkpoint_dir)
    path = os.path.join(checkpoint_dir, latest_filename or STATE_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as file:
        data = file.read(_MAX_STATE_BYTES + 1)
    if len(data) > _MAX_STATE_BYTES:
        raise CheckpointError(f"{path}: more than {_MAX_STATE_BYTES} bytes; not a checkpoint state file")
    fields: dict[str, list] = {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: not UTF-8 text; not a checkpoint state file") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.fullmatch(line.strip())
        if match is None:
            raise CheckpointError(f"{path}: line {number} is not a checkpoint state field: {line[:100]!r}")
        fields.setdefault(match.group(1), []).append(_value(match.group(1), match.group(2), path, number))
    latest = fields.get("model_checkpoint_path", [])
    if len(latest) != 1:
        raise CheckpointError(f"{path}: needs exactly one model_checkpoint_path, found {len(latest)}")
    return CheckpointState(
        os.path.join(checkpoint_dir, latest[0]),
        [os.path.join(checkpoint_dir, name) for name in fields.get("all_model_checkpoint_paths", [])],
        fields.get("all_model_checkpoint_timestamps", []),
        (fields.get("last_preserved_timestamp") or [0.0])[-1],
    )


def _value(name: str, text: str, path: str, number: int):
    if name.endswith("timestamps") or name == "last_preserved_timestamp":
        try:
            return float(text)
        except ValueError:
            raise CheckpointError(f"{path}: line {number}: {name} must be a number, got {text[:100]!r}") from None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, str) or not _is_file_name(value):
        raise CheckpointError(f"{path}: line {number}: {name} must be a quoted file name in the checkpoint directory, got {text[:100]!r}")
    return value


def update_checkpoint_state(directory: str, latest: str, all_paths: list, timestamps=None, last_preserved_timestamp=None) -> None:
    """Atomically rewrites ``directory/checkpoint`` to name ``latest`` (names relative to ``directory``)."""
    names = [os.path.basename(os.fspath(name)) for name in all_paths]
    lines = [f"model_checkpoint_path: {json.dumps(os.path.basename(os.fspath(latest)))}"]
    lines += [f"all_model_checkpoint_paths: {json.dumps(name)}" for name in names]
    lines += [f"all_model_checkpoint_timestamps: {stamp!r}" for stamp in timestamps or ()]
    if last_preserved_timestamp is not None:
        lines.append(f"last_preserved_timestamp: {float(last_preserved_timestamp)!r}")
    write_atomically(os.path.join(directory, STATE_FILE), "\n".join(lines) + "\n")


def latest_checkpoint(checkpoint_dir, latest_filename=None) -> str | None:
    """The path of the newest complete checkpoint in ``checkpoint_dir`` (for ``restore``), or ``None``."""
    state = get_checkpoint_state(checkpoint_dir, latest_filename)
    if state is None or not checkpoint_file.exists(state.model_checkpoint_path):
        return None
    return state.model_checkpoint_path


class CheckpointManager:
    """Numbers, lists and prunes the checkpoints of one ``tf.train.Checkpoint`` in a directory.

    Args:
        checkpoint: the ``tf.train.Checkpoint`` to save.
        directory: where the checkpoints and the ``checkpoint`` state file go (created when needed).
        max_to_keep: how many recent checkpoints to keep; older ones are deleted (``None`` keeps all).
        keep_checkpoint_every_n_hours: also keep one checkpoint per this many hours, whatever ``max_to_keep`` says.
        checkpoint_name: the files' prefix: ``<directory>/<checkpoint_name>-<number>``.
        step_counter: a variable (e.g. the optimizer's ``iterations``) used with ``checkpoint_interval``.
        checkpoint_interval: save only when ``step_counter`` moved at least this far since the last save.
        init_fn: called by ``restore_or_initialize`` when there is no checkpoint.

    A manager created on a directory that already has checkpoints picks up their list, so a restarted
    job keeps pruning them.

    Example:
        >>> manager = tf.train.CheckpointManager(checkpoint, "/tmp/training", max_to_keep=3)
        >>> checkpoint.restore(manager.latest_checkpoint)
        >>> manager.save()
    """

    def __init__(
        self,
        checkpoint,
        directory,
        max_to_keep,
        keep_checkpoint_every_n_hours=None,
        checkpoint_name="ckpt",
        step_counter=None,
        checkpoint_interval=None,
        init_fn=None,
    ):
        if directory is None:
            raise ValueError("CheckpointManager: directory must be a folder path, got None")
        if max_to_keep is not None and (isinstance(max_to_keep, bool) or not isinstance(max_to_keep, int) or max_to_keep <= 0):
            raise ValueError(f"CheckpointManager: max_to_keep must be a positive integer or None, got {max_to_keep!r}")
        if checkpoint_interval is not None and step_counter is None:
            raise ValueError("CheckpointManager: checkpoint_interval needs a step_counter")
        if not isinstance(checkpoint_name, str) or not _is_file_name(checkpoint_name):
            raise ValueError(f"CheckpointManager: checkpoint_name must be a file name (no path), got {checkpoint_name!r}")
        self._checkpoint = checkpoint
        self._directory = os.fspath(directory)
        self._max_to_keep = max_to_keep
        self._keep_seconds = None if keep_checkpoint_every_n_hours is None else 3600.0 * keep_checkpoint_every_n_hours
        self._prefix = os.path.join(self._directory, checkpoint_name)
        self._step_counter, self._checkpoint_interval, self._init_fn = step_counter, checkpoint_interval, init_fn
        self._last_checkpoint_step = None
        os.makedirs(self._directory, exist_ok=True)
        self._maybe_delete: list[tuple[str, float]] = []
        self._latest = None
        self._recover(get_checkpoint_state(self._directory), time.time())

    def _recover(self, state: CheckpointState | None, now: float) -> None:
        """Picks up the checkpoints a previous manager listed, as TensorFlow's manager does.

        Checkpoints without timestamps count as saved at ``last_preserved_timestamp``, and those not newer
        than it are preserved for good (never deleted). Timestamps from the future (a clock that went
        backwards) are taken as now, so that old checkpoints are not deleted by mistake.
        """
        if state is None:
            self._last_preserved = now - 1.0  # a little back, so a manager re-created at once still counts its saves
            return
        self._last_preserved = state.last_preserved_timestamp
        if now < self._last_preserved:
            logger.warning("CheckpointManager: last_preserved_timestamp %s is in the future (now %s); using now", self._last_preserved, now)
            self._last_preserved = now
        paths = state.all_model_checkpoint_paths
        stamps = state.all_model_checkpoint_timestamps or [self._last_preserved] * len(paths)
        for path, stamp in zip(paths, stamps):
            stamp = min(stamp, now)
            if stamp > self._last_preserved and checkpoint_file.exists(path):
                self._maybe_delete.append((path, stamp))
        self._latest = latest_checkpoint(self._directory)

    @property
    def directory(self) -> str:
        return self._directory

    @property
    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint's path (``None`` before the first), for ``checkpoint.restore``."""
        return self._latest

    @property
    def checkpoints(self) -> list:
        """The paths of the kept checkpoints, oldest first."""
        return [path for path, _ in self._maybe_delete]

    @property
    def checkpoint(self):
        return self._checkpoint

    def save(self, checkpoint_number=None, check_interval=True, options=None) -> str | None:
        """Writes a checkpoint numbered ``checkpoint_number`` (default: the checkpoint's ``save_counter``).

        Returns its path, or ``None`` when ``checkpoint_interval`` says not to save. Then records it in
        the ``checkpoint`` file, deletes the checkpoints beyond ``max_to_keep``, and records the list again:
        a crash while deleting leaves a state file that names the new checkpoint.
        """
        if not self._interval_allows_save(check_interval):
            return None
        if checkpoint_number is not None:
            number = int(checkpoint_number.numpy() if hasattr(checkpoint_number, "numpy") else checkpoint_number)
        else:
            number = int(self._checkpoint.save_counter.numpy()) + 1
        self._checkpoint.save_counter.assign_add(1)
        path = self._checkpoint.write(f"{self._prefix}-{number}")
        now = time.time()
        self._maybe_delete = [(kept, stamp) for kept, stamp in self._maybe_delete if kept != path] + [(path, now)]
        self._latest = path
        self._record_state()
        self._sweep()
        self._record_state()
        return path

    def _interval_allows_save(self, check_interval: bool) -> bool:
        """TensorFlow's rule for ``checkpoint_interval``; records the step of a save it allows."""
        if self._checkpoint_interval is None:
            return True
        step = int(self._step_counter.numpy())
        if self._last_checkpoint_step is not None:
            if step == self._last_checkpoint_step:
                return False  # already saved at this step, even with check_interval=False
            if check_interval and step < self._last_checkpoint_step + self._checkpoint_interval:
                return False
        self._last_checkpoint_step = step
        return True

    def _record_state(self) -> None:
        update_checkpoint_state(
            self._directory, self._latest, self.checkpoints, [stamp for _, stamp in self._maybe_delete], self._last_preserved
        )

    def _sweep(self) -> None:
        """Deletes the oldest checkpoints beyond ``max_to_keep``, keeping one per ``keep_checkpoint_every_n_hours``."""
        if self._max_to_keep is None:
            return
        while len(self._maybe_delete) > self._max_to_keep:
            path, stamp = self._maybe_delete.pop(0)
            if self._keep_seconds is not None and stamp - self._keep_seconds >= self._last_preserved:
                self._last_preserved = stamp  # preserved for good: no longer listed, never deleted
                continue
            if checkpoint_file.exists(path):
                os.remove(checkpoint_file.file_of(path))

    def restore_or_initialize(self) -> str | None:
        """Restores the latest checkpoint and returns its path, or calls ``init_fn`` and returns ``None``."""
        if self._latest is not None:
            self._checkpoint.restore(self._latest)
            if self._checkpoint_interval is not None:
                self._last_checkpoint_step = int(self._step_counter.numpy())
            return self._latest
        if self._init_fn is not None:
            self._init_fn()
        return None
