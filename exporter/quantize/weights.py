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
# BATCH_MATMUL 4 and GATHER 2 are their int8-weight forms (per-tensor).
HYBRID_VERSIONS = {Op.FULLY_CONNECTED: 12, Op.CONV_2D: 5, Op.DEPTHWISE_CONV_2D: 6, Op.BATCH_MATMUL: 4, Op.GATHER: 2}
WEIGHT_POSITION = {Op.FULLY_CONNECTED: 1, Op.CONV_2D: 1, Op.DEPTHWISE_CONV_2D: 1, Op.BATCH_MATMUL: 1, Op.GATHER: 0}
INT8_DEQUANTIZE_VERSION = 2
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
    """Constant weights of at least ``min_elements`` become symmetric int8, as TensorFlow's converter writes
    them (checked against TF 2.21); activations and biases stay float:

    - FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D: per-channel weights; LiteRT's hybrid kernels quantize
      each input at run time (asymmetrically for FULLY_CONNECTED, ``asymmetric_quantize_inputs``).
    - BATCH_MATMUL with a constant right operand: per-tensor weights, hybrid, asymmetric inputs.
    - GATHER from a constant table (an embedding): a per-tensor int8 table, the gathered rows int8 at the
      table's scale, then a DEQUANTIZE to the float tensor the graph had.
    """
    replaced: dict[tuple[int, int | None], int] = {}  # (float constant, channel axis) -> its int8 copy

    def int8_copy(index: int, axis: int | None) -> int:
        if (index, axis) not in replaced:
            tensor = model.tensors[index]
            name, tensor.name = tensor.name, f"{tensor.name}_float"  # the float copy is dropped when unused
            q, scales = quantize_symmetric(editing.constant(model, index), axis)
            quantization = Quantization(scales.tolist(), [0] * len(scales), axis or 0)
            replaced[index, axis] = editing.add_tensor(model, name, tensor.shape, TensorType.INT8, q, quantization)
        return replaced[index, axis]

    for operator in list(model.operators):
        code = editing.code_of(model, operator)
        position = WEIGHT_POSITION.get(code)
        if position is None or len(operator.inputs) <= position:
            continue
        weights = operator.inputs[position]
        if not editing.is_constant(model, weights) or model.tensors[weights].type != TensorType.FLOAT32:
            continue
        if editing.constant(model, weights).size < min_elements:
            continue
        operator.inputs[position] = int8_copy(weights, WEIGHTED.get(code))
        editing.set_code(model, operator, code, HYBRID_VERSIONS[code])
        if code in (Op.FULLY_CONNECTED, Op.BATCH_MATMUL):
            operator.options["asymmetric_quantize_inputs"] = True
        if code == Op.GATHER:
            _dequantized_output(model, operator)


def _dequantized_output(model: LiteModel, operator) -> None:
    """``operator`` writes int8 rows at its table's parameters; a DEQUANTIZE after it writes the float tensor."""
    output = operator.outputs[0]
    tensor, table = model.tensors[output], model.tensors[operator.inputs[0]]
    rows = editing.add_tensor(model, f"{tensor.name}_int8", tensor.shape, TensorType.INT8,
                              quantization=table.quantization)  # fmt: skip
    operator.outputs[0] = rows
    position = next(number for number, candidate in enumerate(model.operators) if candidate is operator)
    dequantize = editing.make_operator(model, Op.DEQUANTIZE, [rows], [output], INT8_DEQUANTIZE_VERSION)
    model.operators.insert(position + 1, dequantize)
