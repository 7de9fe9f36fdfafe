"""The graph optimizer: passes over the IR, each in its own module, and ``optimize`` to run them.

A pass takes a ``Graph`` and returns a new one (the given graph is left as it is, since it usually
belongs to a ``ConcreteFunction`` that still runs it) and a ``PassReport`` of what it changed::

    graph, reports = optimize(concrete.graph)
    print("\\n".join(map(str, reports)))

``optimize`` runs ``graph.check()`` (the IR verifier) after every pass, so a pass that breaks the
graph is named at once. Passes see the top-level graph only; subgraphs (``cond`` branches, loop
bodies) are kept as they are.
"""

from __future__ import annotations

from trainer.graph.ir import Graph, GraphError
from trainer.graph.passes.batch_norm_folding import fold_batch_norms
from trainer.graph.passes.common_subexpressions import eliminate_common_subexpressions
from trainer.graph.passes.constant_folding import fold_constants
from trainer.graph.passes.crossentropy import merge_crossentropy_gradients
from trainer.graph.passes.dead_nodes import eliminate_dead_nodes
from trainer.graph.passes.fusion import fuse
from trainer.graph.passes.phase_pooling import pool_by_phases
from trainer.graph.passes.pooling_gradients import mask_before_unpooling
from trainer.graph.passes.rewrite import PassReport, copy_graph
from trainer.graph.passes.schedule import peak_live_bytes, schedule_for_memory
from trainer.graph.passes.shared_patches import share_patches
from trainer.graph.passes.simplify import simplify

# Folding first makes constants that simplification recognizes (``x * ones``); simplification
# removes identities, which can leave nodes reading only constants (a sum of a broadcast constant),
# so folding runs again; that lets repeated expressions meet; batch norms fold into plain ops, which
# fusion then fuses with their activations; in training graphs, each fused convolution then shares
# its patches with its filter gradient, and ReLU masks move before unpooling (their forward pooling
# is by then the one value CSE left); a convolution whose output only a tiling max pool reads is then
# gathered and pooled phase by phase (it matches the shapes those two passes leave); scheduling goes
# last, over the final nodes.
DEFAULT_PASSES = (
    eliminate_dead_nodes,
    fold_constants,
    simplify,
    fold_constants,
    eliminate_common_subexpressions,
    fold_batch_norms,
    fuse,
    merge_crossentropy_gradients,
    share_patches,
    mask_before_unpooling,
    pool_by_phases,
    eliminate_dead_nodes,
    schedule_for_memory,
)


# ``tf.config.optimizer.set_experimental_options`` names for the passes: TensorFlow's own where one of
# its Grappler optimizers does the same job (constant folding, the arithmetic optimizer, the remapper's
# fusions), ours for the rest. Each is on unless set to False.
PASS_OPTIONS = {
    "dead_node_elimination": eliminate_dead_nodes,
    "constant_folding": fold_constants,
    "arithmetic_optimization": simplify,
    "common_subexpression_elimination": eliminate_common_subexpressions,
    "batch_norm_folding": fold_batch_norms,
    "remapping": fuse,
    "crossentropy_gradients": merge_crossentropy_gradients,
    "shared_patches": share_patches,
    "pooling_gradients": mask_before_unpooling,
    "phase_pooling": pool_by_phases,
    "memory_schedule": schedule_for_memory,
}
_disabled: set = set()  # the passes switched off by set_experimental_options


def set_experimental_options(options: dict) -> None:
    """Switches passes on (True) or off (False) by their ``PASS_OPTIONS`` name, for the graphs
    optimized from now on (a function already traced keeps its optimized graph)."""
    unknown = sorted(set(options) - set(PASS_OPTIONS))
    if unknown:
        raise ValueError(f"unknown graph optimizer option(s) {unknown}; the options are {sorted(PASS_OPTIONS)}")
    for name, enabled in options.items():
        if not isinstance(enabled, bool):
            raise TypeError(f"graph optimizer option '{name}' must be True or False, got {enabled!r}")
        (_disabled.discard if enabled else _disabled.add)(PASS_OPTIONS[name])


def get_experimental_options() -> dict:
    """The options switched off, as ``{name: False}`` (TensorFlow lists only the options set)."""
    return {name: False for name, graph_pass in PASS_OPTIONS.items() if graph_pass in _disabled}


def optimize(graph: Graph, passes=DEFAULT_PASSES, for_inference: bool = True) -> tuple[Graph, list[PassReport]]:
    """Runs ``passes`` in order, verifying the graph after each; returns the new graph and the reports.

    ``for_inference=False`` skips the passes marked inference-only (batch-norm folding, which turns
    variables into constants), so the result still trains its variables; ``for_inference=True``
    skips the training-only ones (shared patches, pooling gradients), which only touch gradients.
    Passes switched off with ``set_experimental_options`` are skipped too.
    """
    graph.check()
    reports = []
    for graph_pass in passes:
        if graph_pass in _disabled:
            continue
        if getattr(graph_pass, "inference_only", False) and not for_inference:
            continue
        if getattr(graph_pass, "training_only", False) and for_inference:
            continue
        graph, report = graph_pass(graph)
        try:
            graph.check()
        except GraphError as error:
            raise GraphError(f"the '{report.name}' pass left an invalid graph: {error}") from error
        reports.append(report)
    return graph, reports


__all__ = [
    "DEFAULT_PASSES",
    "PASS_OPTIONS",
    "PassReport",
    "copy_graph",
    "eliminate_common_subexpressions",
    "eliminate_dead_nodes",
    "fold_batch_norms",
    "fold_constants",
    "fuse",
    "get_experimental_options",
    "merge_crossentropy_gradients",
    "pool_by_phases",
    "mask_before_unpooling",
    "optimize",
    "peak_live_bytes",
    "schedule_for_memory",
    "set_experimental_options",
    "share_patches",
    "simplify",
]
