"""Every file TensorFlow's converter wrote for us (tests/fixtures/tf_*.tflite: float32, dynamic range, full
int8, int8 input/output and float16) runs in lite_runtime as in LiteRT.

The judge is LiteRT's default interpreter: our int8 outputs equal its outputs bit for bit, float outputs
agree within 1e-5. Its reference kernels (``BUILTIN_REF``) requantize with a second rounding in most
operators, so ours may be one int8 step from theirs (two, after a MEAN feeds a FULLY_CONNECTED). Each
file is checked against the outputs stored beside it (``make_tflite_fixtures.py``) and against the LiteRT
installed here, on fresh inputs.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import lite_runtime
from lite_runtime.schema import BuiltinOperator as Op
from tests.lite_runtime.harness import invoke_allocations
from tests.lite_runtime.test_quantized_kernels import DEFAULT, REFERENCE, _litert

pytest.importorskip("ai_edge_litert.interpreter")
FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures"
FILES = sorted(path.stem for path in FIXTURES.glob("tf_*_*.tflite") if path.stem != "tf_small_mlp")


def _load(name: str):
    data = (FIXTURES / f"{name}.tflite").read_bytes()
    return data, np.load(FIXTURES / f"{name}.npz")


def _output_step(interpreter: lite_runtime.Interpreter) -> float | None:
    """One int8 step of the output: 1 for an int8 output, the scale DEQUANTIZE reads for a float output of
    an int8 model, None for a float model."""
    model = interpreter._model
    output = model.tensors[model.outputs[0]]
    if output.dtype == np.int8:
        return 1.0
    last = model.operators[-1]
    source = model.tensors[last.inputs[0]]
    return float(source.scales[0]) if source.dtype == np.int8 else None


def _steps_from_reference(interpreter: lite_runtime.Interpreter) -> int:
    """How many int8 steps the reference kernels may be from us at the output: one, or two after a MEAN
    (its sums often land on exact halves, which the two roundings resolve differently, and the next
    FULLY_CONNECTED can grow that step to two); none for a file without int8 tensors."""
    model = interpreter._model
    if not any(tensor.dtype == np.int8 for tensor in model.tensors):
        return 0
    return 2 if any(operator.code == Op.MEAN for operator in model.operators) else 1


def _assert_agree(ours: np.ndarray, theirs: np.ndarray, step: float | None, steps: int) -> None:
    """Float outputs within 1e-5 (1e-4 when ``steps``: the reference hybrid kernels resolve an exact half
    of the run-time input quantization the other way); quantized ones within ``steps`` int8 steps."""
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    if step is None:
        tolerance = 1e-4 if steps else 1e-5
        np.testing.assert_allclose(ours, theirs, rtol=tolerance, atol=tolerance)
    elif steps == 0:
        np.testing.assert_array_equal(ours, theirs)
    else:
        assert np.abs(ours.astype(np.float64) - theirs).max() <= steps * step * 1.0001


def test_the_fixtures_cover_every_flavour_and_stay_small():
    assert {name.rsplit("_", 1)[-1] for name in FILES} >= {"float32", "dynamic", "int8", "io", "float16"}
    assert sum(path.stat().st_size for path in FIXTURES.glob("tf_*")) < 400_000


@pytest.mark.parametrize("name", FILES)
def test_matches_the_stored_litert_outputs(name):
    data, stored = _load(name)
    interpreter = lite_runtime.Interpreter(model_content=data)
    (ours,) = interpreter.run([stored["inputs"]])
    step = _output_step(interpreter)
    _assert_agree(ours, stored["outputs"], step, steps=0)
    _assert_agree(ours, stored["reference_outputs"], step, steps=_steps_from_reference(interpreter))


@pytest.mark.parametrize("name", FILES)
def test_matches_live_litert_on_fresh_inputs(name, rng):
    data, stored = _load(name)
    interpreter = lite_runtime.Interpreter(model_content=data)
    detail = interpreter.get_input_details()[0]
    x = rng.random((64, *stored["inputs"].shape[1:]), dtype=np.float32) * 1.2 - 0.1
    if detail["dtype"] == np.int8:
        scale, zero_point = detail["quantization"]
        x = np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)
    (ours,) = interpreter.run([x])
    step = _output_step(interpreter)
    for resolver, steps in ((DEFAULT, 0), (REFERENCE, _steps_from_reference(interpreter))):
        theirs = _litert(data, x, resolver)
        _assert_agree(ours, theirs.get_tensor(theirs.get_output_details()[0]["index"]), step, steps)


@pytest.mark.parametrize("name", FILES)
def test_input_and_output_details_match_litert(name):
    data, stored = _load(name)
    ours = lite_runtime.Interpreter(model_content=data)
    theirs = _litert(data, stored["inputs"], DEFAULT)
    ours.run([stored["inputs"]])
    for mine, reference in zip(ours.get_input_details() + ours.get_output_details(),
                               theirs.get_input_details() + theirs.get_output_details()):  # fmt: skip
        for key in ("name", "index", "dtype", "quantization"):
            assert mine[key] == reference[key], key
        for key in ("shape", "shape_signature"):
            np.testing.assert_array_equal(mine[key], reference[key])
        for key in ("scales", "zero_points", "quantized_dimension"):
            np.testing.assert_array_equal(mine["quantization_parameters"][key], reference["quantization_parameters"][key])


def test_int8_invoke_does_not_grow_memory():
    data, stored = _load("tf_cnn_int8")
    interpreter = lite_runtime.Interpreter(model_content=data)
    interpreter.run([stored["inputs"]])
    held, _peak = invoke_allocations(interpreter, invokes=50)
    assert held < 4096
