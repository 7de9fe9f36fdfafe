"""``tf.GradientTape``: records ops on watched tensors and plays them back in reverse.

Recording keeps, for each op that touched a watched tensor, the node (op, inputs, outputs, attrs).
``gradient`` walks those nodes newest first and calls each op's gradient rule. The rules are written
with ops, so an outer tape records the backward pass too: nested tapes give higher derivatives.
"""

from __future__ import annotations

import contextlib

from trainer import nest
from trainer.context import state
from trainer.ops.registry import GradientNotSupportedError, Node
from trainer.tensor import Tensor, convert_to_tensor


class UnconnectedGradients:
    NONE = "none"
    ZERO = "zero"


class GradientTape:
    """Records operations for automatic differentiation, like ``tf.GradientTape``.

    Args:
        persistent: allow several ``gradient`` calls on the same recording.
        watch_accessed_variables: watch every trainable ``Variable`` that an op reads while recording.

    Example:
        >>> x = tf.Variable(3.0)
        >>> with tf.GradientTape() as tape:
        ...     y = x * x
        >>> float(tape.gradient(y, x))
        6.0
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True):
        self._persistent = persistent
        self._watch_accessed_variables = watch_accessed_variables
        self._nodes: list[Node] = []
        self._watched: dict[int, Tensor] = {}  # id -> tensor; holding it keeps ids unique
        self._sources: dict[int, Tensor] = {}  # what watch() or variable access marked as a source
        self._used = False
        self._recording = False

    # -- recording ----------------------------------------------------------------------------------
    def __enter__(self) -> "GradientTape":
        if self._recording:
            raise RuntimeError("this GradientTape is already recording; a tape cannot be entered twice")
        self._recording = True
        state.tapes.append(self)
        return self

    def __exit__(self, *exc_info) -> None:
        self._recording = False
        if self in state.tapes:
            state.tapes.remove(self)

    def watch(self, tensor) -> None:
        """Marks a tensor, a variable, or a nested structure of them as a source to differentiate by."""
        for item in nest.flatten(tensor):
            if not isinstance(item, Tensor):
                raise TypeError(f"GradientTape.watch expects tensors or variables, got {type(item).__name__}")
            if not (item.dtype.is_floating):
                continue  # TensorFlow ignores integer sources the same way: they have no gradient
            self._watched[id(item)] = item
            self._sources[id(item)] = item

    def watched_variables(self) -> tuple:
        return tuple(t for t in self._sources.values() if t._is_variable)

    @contextlib.contextmanager
    def stop_recording(self):
        """Temporarily stops recording: ops inside run normally but are invisible to this tape."""
        if not self._recording:
            raise ValueError("stop_recording() needs a tape that is currently recording")
        state.tapes.remove(self)
        try:
            yield
        finally:
            state.tapes.append(self)

    def reset(self) -> None:
        """Forgets everything recorded so far (the tape keeps recording if it was)."""
        self._nodes.clear()
        self._watched.clear()
        self._sources.clear()

    def _record(self, op, inputs, outputs, attrs) -> None:
        watched = self._watched
        needs = None
        for position, tensor in enumerate(inputs):
            key = id(tensor)
            if key not in watched:
                if not (
                    tensor._is_variable
                    and self._watch_accessed_variables
                    and tensor.trainable
                    and tensor.dtype.is_floating
                ):
                    continue
                watched[key] = tensor
                self._sources[key] = tensor
            if needs is None:
                needs = [False] * len(inputs)
            needs[position] = True
        if needs is None:
            return
        self._nodes.append(Node(op, inputs, outputs, attrs, needs))
        for tensor in outputs:
            if tensor.dtype.is_floating:
                watched[id(tensor)] = tensor

    # -- playing back ------------------------------------------------------------------------------
    def gradient(self, target, sources, output_gradients=None, unconnected_gradients=UnconnectedGradients.NONE):
        """d(sum of ``target``)/d(``sources``), with ``sources`` in any nest of lists, tuples and dicts.

        A source the target does not depend on gets ``None`` (or zeros with
        ``unconnected_gradients="zero"``).
        """
        if self._used and not self._persistent:
            raise RuntimeError(
                "A non-persistent GradientTape can only be used to compute one set of gradients; "
                "use tf.GradientTape(persistent=True) to call gradient() more than once"
            )
        if unconnected_gradients not in (UnconnectedGradients.NONE, UnconnectedGradients.ZERO):
            raise ValueError(f"unconnected_gradients must be 'none' or 'zero', got {unconnected_gradients!r}")
        self._used = True
        flat_sources = nest.flatten(sources)
        for source in flat_sources:
            if not isinstance(source, Tensor):
                raise TypeError(f"GradientTape.gradient sources must be tensors or variables, got {type(source).__name__}")

        if self._recording:
            with self.stop_recording():
                flat_gradients = self._backward(target, flat_sources, output_gradients)
        else:
            flat_gradients = self._backward(target, flat_sources, output_gradients)

        if unconnected_gradients == UnconnectedGradients.ZERO:
            from trainer.ops.array_ops import zeros_like  # noqa: PLC0415

            flat_gradients = [zeros_like(s) if g is None else g for s, g in zip(flat_sources, flat_gradients)]
        if not self._persistent:
            self._nodes = []
            self._watched = {}
        return nest.pack_sequence_as(sources, flat_gradients)

    def _backward(self, target, flat_sources, output_gradients) -> list:
        from trainer.ops import math_ops  # noqa: PLC0415 - the tape uses the op layer, not the reverse
        from trainer.ops.array_ops import ones_like, zeros_like  # noqa: PLC0415

        gradients: dict[int, Tensor] = {}
        flat_targets = nest.flatten(target)
        seeds = nest.flatten(output_gradients) if output_gradients is not None else [None] * len(flat_targets)
        if len(seeds) != len(flat_targets):
            raise ValueError(f"output_gradients has {len(seeds)} entries for {len(flat_targets)} targets")
        for tensor, seed in zip(flat_targets, seeds):
            if not isinstance(tensor, Tensor):
                raise TypeError(f"GradientTape.gradient target must be a tensor, got {type(tensor).__name__}")
            seed = ones_like(tensor) if seed is None else convert_to_tensor(seed, dtype=tensor.dtype)
            _accumulate(gradients, id(tensor), seed, math_ops.add)

        keep = {id(source) for source in flat_sources}
        for node in reversed(self._nodes):
            output_grads = []
            for tensor in node.outputs:
                key = id(tensor)
                output_grads.append(gradients.get(key) if key in keep else gradients.pop(key, None))
            if all(g is None for g in output_grads):
                continue
            if len(output_grads) > 1:
                output_grads = [zeros_like(t) if g is None else g for t, g in zip(node.outputs, output_grads)]
            if node.op.gradient is None:
                raise GradientNotSupportedError(f"op '{node.op.name}' has no registered gradient")
            input_grads = node.op.gradient(node, *output_grads)
            if not isinstance(input_grads, (tuple, list)):
                input_grads = (input_grads,)
            if len(input_grads) != len(node.inputs):
                raise GradientNotSupportedError(
                    f"gradient of op '{node.op.name}' returned {len(input_grads)} values for {len(node.inputs)} inputs"
                )
            for tensor, grad, needed in zip(node.inputs, input_grads, node.needs_gradient):
                if needed and grad is not None:
                    _accumulate(gradients, id(tensor), grad, math_ops.add)
        return [gradients.get(id(source)) for source in flat_sources]


def _accumulate(gradients: dict, key: int, grad: Tensor, add) -> None:
    previous = gradients.get(key)
    gradients[key] = grad if previous is None else add(previous, grad)


def stop_gradient(x) -> Tensor:
    """The same values, but a gradient tape treats the result as a constant."""
    from trainer.ops.array_ops import stop_gradient as _stop  # noqa: PLC0415

    return _stop(x)
