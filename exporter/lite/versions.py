"""The oldest TFLite runtime that runs a lite file: the ``min_runtime_version`` metadata entry.

Each (operator, version) pair emberflow emits, with the runtime release that first ran it, from
TensorFlow's ``tensorflow/lite/tools/versioning/runtime_version.cc`` (the table its converter uses
to fill the same entry). Pairs missing there (SIGN) do not raise the minimum, as in that code.
"""

from __future__ import annotations

from exporter.lite.schema import BuiltinOperator as Op

MIN_RUNTIME_VERSIONS = {
    (Op.ADD, 1): "1.5.0",
    (Op.AVERAGE_POOL_2D, 1): "1.5.0",
    (Op.CONCATENATION, 1): "1.5.0",
    (Op.CONV_2D, 1): "1.5.0",
    (Op.DEPTHWISE_CONV_2D, 1): "1.5.0",
    (Op.DEPTHWISE_CONV_2D, 2): "1.12.0",
    (Op.DEQUANTIZE, 1): "1.13.1",
    (Op.FLOOR, 1): "1.9.0",
    (Op.FULLY_CONNECTED, 1): "1.5.0",
    (Op.FULLY_CONNECTED, 5): "2.0.0",
    (Op.LOGISTIC, 1): "1.14.0",
    (Op.MAX_POOL_2D, 1): "1.5.0",
    (Op.MUL, 1): "1.5.0",
    (Op.RELU, 1): "1.5.0",
    (Op.RELU6, 1): "1.5.0",
    (Op.RESHAPE, 1): "1.5.0",
    (Op.SOFTMAX, 1): "1.5.0",
    (Op.TANH, 1): "1.14.0",
    (Op.PAD, 1): "1.5.0",
    (Op.GATHER, 1): "1.6.0",
    (Op.TRANSPOSE, 1): "1.6.0",
    (Op.MEAN, 1): "1.6.0",
    (Op.SUB, 1): "1.6.0",
    (Op.DIV, 1): "1.6.0",
    (Op.SQUEEZE, 1): "1.6.0",
    (Op.STRIDED_SLICE, 1): "1.6.0",
    (Op.EXP, 1): "1.7.0",
    (Op.LOG_SOFTMAX, 1): "1.14.0",
    (Op.CAST, 1): "1.5.0",
    (Op.MAXIMUM, 1): "1.14.0",
    (Op.ARG_MAX, 1): "1.9.0",
    (Op.MINIMUM, 1): "1.14.0",
    (Op.LESS, 1): "1.14.0",
    (Op.NEG, 1): "1.9.0",
    (Op.PADV2, 1): "1.9.0",
    (Op.GREATER, 1): "1.14.0",
    (Op.GREATER_EQUAL, 1): "1.14.0",
    (Op.LESS_EQUAL, 1): "1.14.0",
    (Op.SIN, 1): "1.9.0",
    (Op.EXPAND_DIMS, 1): "1.10.0",
    (Op.EQUAL, 1): "1.14.0",
    (Op.NOT_EQUAL, 1): "1.14.0",
    (Op.LOG, 1): "1.14.0",
    (Op.SUM, 1): "1.10.0",
    (Op.SQRT, 1): "1.10.0",
    (Op.RSQRT, 1): "1.10.0",
    (Op.SHAPE, 1): "1.10.0",
    (Op.POW, 1): "1.10.0",
    (Op.ARG_MIN, 1): "1.9.0",
    (Op.REDUCE_PROD, 1): "1.11.0",
    (Op.REDUCE_MAX, 1): "1.11.0",
    (Op.LOGICAL_OR, 1): "1.11.0",
    (Op.ONE_HOT, 1): "1.11.0",
    (Op.LOGICAL_AND, 1): "1.11.0",
    (Op.LOGICAL_NOT, 1): "1.11.0",
    (Op.REDUCE_MIN, 1): "1.11.0",
    (Op.FLOOR_DIV, 1): "1.14.0",
    (Op.SQUARE, 1): "1.12.0",
    (Op.ZEROS_LIKE, 1): "1.12.0",
    (Op.FILL, 1): "1.13.0",
    (Op.FLOOR_MOD, 1): "1.13.0",
    (Op.LEAKY_RELU, 1): "1.13.1",
    (Op.ABS, 1): "1.13.0",
    (Op.CEIL, 1): "1.14.0",
    (Op.COS, 1): "1.14.0",
    (Op.QUANTIZE, 1): "1.14.0",
    (Op.ROUND, 1): "1.14.0",
    (Op.HARD_SWISH, 1): "1.15.0",
    (Op.SELECT_V2, 1): "2.2.0",
    (Op.BATCH_MATMUL, 1): "2.3.0",
    (Op.BROADCAST_TO, 2): "2.5.0",
    (Op.BROADCAST_ARGS, 1): "2.6.0",
    (Op.GELU, 1): "2.9.0",
}


def min_runtime_version(operator_codes) -> str:
    """The newest of the runtime versions the (code, version) pairs need ("1.5.0" for no operators)."""
    versions = [MIN_RUNTIME_VERSIONS.get((code, version)) for code, version in operator_codes]
    known = [tuple(int(part) for part in text.split(".")) for text in versions if text]
    return ".".join(map(str, max(known, default=(1, 5, 0))))
