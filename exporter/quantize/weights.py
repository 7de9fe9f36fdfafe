"""Weight-only passes: float16 weights, and dynamic-range (hybrid) int8 weights with float activations."""

from __future__ import annotations

import numpy as np

from exporter.lite.builder import LiteModel, Quantization
from exporter.lite.schema import BuiltinOperator as Op
from exporter.lite.schema import TensorType
from exporter.quantize import editing
from exporter.quantize.int8 import WEIGHTED
from exporter.quantize.params import quantize_symmetric

FLOAT16_DEQUANTIZE_VERSION = 3  # DEQUANTIZE of a FLOAT16 input (op_version.cc)
# The version of each operator's per-channel hybrid form (float input, int8 weights), op_version.cc.
HYBRID_VERSIONS = {Op.FULLY_CONNECTED: 12, Op.CONV_2D: 5, Op.DEPTHWISE_CONV_2D: 6}
MIN_ELEMENTS = 1024  # TensorFlow's converter leaves smaller weights in float for dynamic range


def float16(model: LiteModel) -> None:
    """Every float32 constant an operator reads becomes a FLOAT16 constant and a DEQUANTIZE to float32
    at the start of the graph, as TensorFlow's converter writes it; readers keep their tensor indices."""
    readers = editing.consumers(model)
    dequantizes = []
    for index in sorted(readers):
        tensor = model.tensors[index]
        if tensor.buffer == 0 or tensor.type != TensorType.FLOAT32:
            continue
        half = editing.constant(model, index).astype(np.float16)
        source = editing.add_tensor(model, f"{tensor.name}_fp16", tensor.shape, TensorType.FLOAT16, half)
        tensor.buffer = 0  # now the DEQUANTIZE output
        dequantizes.append(editing.make_operator(model, Op.DEQUANTIZE, [source], [index], FLOAT16_DEQUANTIZE_VERSION))
    model.operators[:0] = dequantizes


def dynamic_range(model: LiteModel, min_elements: int = MIN_ELEMENTS) -> None:
    """FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D weights become per-channel symmetric int8; activations
    and biases stay float, and LiteRT's hybrid kernels quantize each input at run time (asymmetrically,
    ``asymmetric_quantize_inputs`` as TensorFlow sets it for FULLY_CONNECTED)."""
    replaced: dict[int, int] = {}
    for operator in model.operators:
        code = editing.code_of(model, operator)
        if code not in HYBRID_VERSIONS or len(operator.inputs) < 2:
            continue
        weights = operator.inputs[1]
        if weights < 0 or not editing.is_constant(model, weights) or model.tensors[weights].type != TensorType.FLOAT32:
            continue
        if editing.constant(model, weights).size < min_elements:
            continue
        axis, version = WEIGHTED[code], HYBRID_VERSIONS[code]
        if weights not in replaced:
            tensor = model.tensors[weights]
            name, tensor.name = tensor.name, f"{tensor.name}_float"  # the float copy is dropped when unused
            q, scales = quantize_symmetric(editing.constant(model, weights), axis)
            quantization = Quantization(scales.tolist(), [0] * len(scales), axis)
            replaced[weights] = editing.add_tensor(model, name, tensor.shape, TensorType.INT8, q, quantization)
        operator.inputs[1] = replaced[weights]
        editing.set_code(model, operator, code, version)
        if code == Op.FULLY_CONNECTED:
            operator.options["asymmetric_quantize_inputs"] = True
