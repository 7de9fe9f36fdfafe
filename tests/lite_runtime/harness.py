"""What the robustness and memory tests do to an interpreter, written once."""

from __future__ import annotations

import tracemalloc

import numpy as np

import lite_runtime


def load_plan_and_run(data: bytes, memory_limit_bytes: int, batches=(None,)) -> None:
    """Every public step a user takes on ``data``: load, signatures, then for each batch size (None: the
    file's own) resize, allocate, set every input to ones, invoke and read every output. Raises whatever
    the runtime raises; a test that accepts a rejection suppresses ``LiteFormatError`` itself."""
    interpreter = lite_runtime.Interpreter(model_content=data, memory_limit_bytes=memory_limit_bytes)
    interpreter.get_signature_list()
    for batch in batches:
        if batch is not None:
            for detail in interpreter.get_input_details():
                if len(detail["shape"]):
                    interpreter.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], np.ones(detail["shape"], detail["dtype"]))
        interpreter.invoke()
        for detail in interpreter.get_output_details():
            interpreter.get_tensor(detail["index"])


def invoke_allocations(interpreter: lite_runtime.Interpreter, invokes: int = 10) -> tuple[int, int]:
    """(bytes still held, peak bytes) that ``invokes`` more invokes add, after two warm-up invokes (whatever
    is created once, on first use, is not what this measures). tracemalloc sees NumPy's buffers."""
    interpreter.invoke()
    tracemalloc.start()
    try:
        interpreter.invoke()
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(invokes):
            interpreter.invoke()
        after, peak = tracemalloc.get_traced_memory()
        return after - before, peak - before
    finally:
        tracemalloc.stop()
