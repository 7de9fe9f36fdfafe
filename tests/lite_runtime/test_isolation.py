"""lite_runtime imports alone (numpy + flatbuffers), and its copy of the schema agrees with the writer's."""

from __future__ import annotations

import subprocess
import sys

from exporter.lite import schema as writer_schema
from lite_runtime import schema


def test_import_pulls_in_no_trainer_or_exporter_module():
    code = ("import sys, lite_runtime; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('trainer', 'exporter', 'web_export')); "
            "print(bad); sys.exit(1 if bad else 0)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_leaves_kernels_and_flatbuffers_for_later():
    # the kernel table loads with the first model (most of the import time); the reader parses the file with
    # struct and NumPy, so flatbuffers is never imported
    code = ("import sys, numpy; before = set(sys.modules); import lite_runtime; "
            "added = sorted(m for m in set(sys.modules) - before if not m.startswith('lite_runtime')); "
            "late = sorted(m for m in sys.modules if m.startswith(('lite_runtime.kernels', 'flatbuffers'))); "
            "print(added, late); sys.exit(1 if late or len(added) > 3 else 0)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_schema_constants_match_the_writer():
    for member in schema.BuiltinOperator:
        if member.name in writer_schema.BuiltinOperator.__members__:
            assert writer_schema.BuiltinOperator[member.name] == member.value
    for member in schema.TensorType:
        assert writer_schema.TensorType[member.name] == member.value
    for table, slots in (("Model", schema.MODEL), ("OperatorCode", schema.OPERATOR_CODE), ("SubGraph", schema.SUBGRAPH),
                         ("Tensor", schema.TENSOR), ("QuantizationParameters", schema.QUANTIZATION),
                         ("Operator", schema.OPERATOR), ("Buffer", schema.BUFFER), ("SignatureDef", schema.SIGNATURE_DEF),
                         ("TensorMap", schema.TENSOR_MAP)):  # fmt: skip
        for field, slot in slots.items():
            assert writer_schema.slot(table, field) == slot, (table, field)
    for code, (name, union_index, fields) in schema.OPTIONS.items():
        assert writer_schema.BUILTIN_OPTIONS.get(name, union_index) == union_index, name
        for slot, (field, _kind, default) in enumerate(fields):
            if name in writer_schema.TABLES and field in {f for f, _k, _d in writer_schema.TABLES[name]}:
                assert writer_schema.slot(name, field) == slot, (name, field)
