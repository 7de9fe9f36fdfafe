"""The op registry is complete: every op has a gradient or says why not, and a shape rule that agrees
with its kernel; every table keyed by op names (the exporter's lowerings) covers the registry.
"""

from __future__ import annotations

import numpy as np
import pytest

import trainer as tf
from tests.trainer.op_cases import CASES
from trainer import dtypes
from trainer.ops.registry import REGISTRY, execute
from trainer.tensor import Spec

SEEDS = range(5)

# The exporter's lowering tables join the coverage check here, each under its name, as they land:
#     LOWERING_TABLES = {"lite": exporter.lower.lite.LOWERINGS, "onnx": exporter.lower.onnx.LOWERINGS}
# Each must then have an entry for every registered op that is not declared training_only.
LOWERING_TABLES: dict[str, dict] = {}

from exporter.onnx.lower import LOWERINGS as ONNX_LOWERINGS  # noqa: E402 - imports no onnx, only the table

LOWERING_TABLES["onnx"] = ONNX_LOWERINGS

from exporter.lite import lowering_table as lite_lowering_table  # noqa: E402 - imports only the table

LOWERING_TABLES["lite"] = lite_lowering_table()


def test_every_op_has_a_gradient_or_declares_why_not():
    offenders = sorted(
        name for name, op in REGISTRY.items() if op.gradient is None and op.differentiable
    )
    assert not offenders, (
        f"ops without a gradient rule: {offenders}; register one with @op.def_gradient (raising "
        "GradientNotSupportedError if emberflow cannot differentiate it), or declare the op "
        "differentiable=False when it has no derivative by nature"
    )


@pytest.mark.parametrize("table_name", sorted(LOWERING_TABLES))
def test_every_exported_op_has_a_lowering(table_name):
    table = LOWERING_TABLES[table_name]
    missing = sorted(name for name, op in REGISTRY.items() if not op.training_only and name not in table)
    assert not missing, f"ops with no {table_name} lowering (add one, or declare the op training_only=True): {missing}"


def test_every_table_names_only_registered_ops():
    for table_name, table in LOWERING_TABLES.items():
        unknown = sorted(set(table) - set(REGISTRY))
        assert not unknown, f"the {table_name} lowering table names ops that are not registered: {unknown}"


def _outputs(op, result) -> tuple:
    if op.num_outputs == 0:
        return ()
    return (result,) if op.num_outputs == 1 else tuple(result)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_shape_rule_matches_kernel(name, seed):
    if name not in CASES:
        pytest.fail(
            f"op '{name}' is registered but has no case in tests/trainer/op_cases.py; add a builder "
            "(inputs in the op's valid domain, its attributes) so that its shape rule is tested"
        )
    op = REGISTRY[name]
    case = CASES[name](np.random.default_rng(seed))
    specs = [Spec(array.shape, dtypes.of_array(array)) for array in case.inputs]
    inferred = op.infer(*specs, **case.attrs)
    result = execute(op, [tf.constant(array) for array in case.inputs], case.attrs)
    if op.num_outputs == 0:  # no outputs: the shape rule returns no specs (None or an empty tuple)
        assert result is None, f"op '{name}' is registered with no outputs but its kernel returned {result}"
        assert tuple(inferred or ()) == (), f"op '{name}' has no outputs, but its shape rule gave {inferred}"
        return
    inferred = (inferred,) if op.num_outputs == 1 else tuple(inferred)
    for index, (spec, tensor) in enumerate(zip(inferred, _outputs(op, result))):
        actual = (tuple(tensor.numpy().shape), tensor.dtype)
        assert (tuple(spec.shape), spec.dtype) == actual, (
            f"op '{name}' output {index}: the shape rule says {tuple(spec.shape)} {spec.dtype.name}, the kernel "
            f"made {actual[0]} {actual[1].name} (inputs {[a.shape for a in case.inputs]}, attrs {case.attrs})"
        )
