"""emberflow's on-device interpreter for lite (TFLite-schema) files: NumPy and flatbuffers only.

    from lite_runtime import Interpreter
    interpreter = Interpreter(model_path="mnist.lite")
    outputs = interpreter.run({"input": x})

``reader`` validates and reads the file, ``kernels`` holds one prepare/eval pair per operator,
``planner`` lays intermediates out in one arena, and ``interpreter`` ties them together with
TFLite's Python API. It imports nothing from trainer or exporter.
"""

from lite_runtime.errors import LiteFormatError, LiteStateError
from lite_runtime.interpreter import Interpreter, SignatureRunner

__all__ = ["Interpreter", "LiteFormatError", "LiteStateError", "SignatureRunner"]
