"""The few TFLite schema constants the lite runtime reads: field slots, operator codes, options, types.

This is the one allowed duplication of ``exporter/lite/schema.py`` (the writer's copy, checked against
LiteRT's generated schema): the runtime must install and import with numpy and flatbuffers alone, so it
cannot import the exporter. The numbers are the same facts, from
``tensorflow/compiler/mlir/lite/schema/schema.fbs`` (schema version 3); ``tests/lite_runtime`` checks
them against the exporter's copy so the two cannot drift.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

# Field slots (declaration index) of the tables the reader walks.
MODEL = {"version": 0, "operator_codes": 1, "subgraphs": 2, "description": 3, "buffers": 4, "signature_defs": 7}
OPERATOR_CODE = {"deprecated_builtin_code": 0, "custom_code": 1, "version": 2, "builtin_code": 3}
SUBGRAPH = {"tensors": 0, "inputs": 1, "outputs": 2, "operators": 3, "name": 4}
TENSOR = {"shape": 0, "type": 1, "buffer": 2, "name": 3, "quantization": 4, "is_variable": 5, "sparsity": 6,
          "shape_signature": 7}  # fmt: skip
QUANTIZATION = {"min": 0, "max": 1, "scale": 2, "zero_point": 3, "quantized_dimension": 6}
OPERATOR = {"opcode_index": 0, "inputs": 1, "outputs": 2, "builtin_options_type": 3, "builtin_options": 4}
BUFFER = {"data": 0, "offset": 1, "size": 2}
SIGNATURE_DEF = {"inputs": 0, "outputs": 1, "signature_key": 2, "subgraph_index": 4}
TENSOR_MAP = {"name": 0, "tensor_index": 1}


class TensorType(IntEnum):
    """``enum TensorType : byte``."""

    FLOAT32 = 0
    FLOAT16 = 1
    INT32 = 2
    UINT8 = 3
    INT64 = 4
    STRING = 5
    BOOL = 6
    INT16 = 7
    COMPLEX64 = 8
    INT8 = 9
    FLOAT64 = 10
    COMPLEX128 = 11
    UINT64 = 12
    RESOURCE = 13
    VARIANT = 14
    UINT32 = 15
    UINT16 = 16
    INT4 = 17
    BFLOAT16 = 18


# The tensor types the runtime holds as NumPy arrays (strings, resources, int4 and bfloat16 it rejects).
NUMPY_TYPES = {
    TensorType.FLOAT32: np.float32, TensorType.FLOAT16: np.float16, TensorType.INT32: np.int32,
    TensorType.UINT8: np.uint8, TensorType.INT64: np.int64, TensorType.BOOL: np.bool_,
    TensorType.INT16: np.int16, TensorType.INT8: np.int8, TensorType.FLOAT64: np.float64,
    TensorType.UINT64: np.uint64, TensorType.UINT32: np.uint32, TensorType.UINT16: np.uint16,
}  # fmt: skip
TYPE_OF_DTYPE = {np.dtype(dtype): code for code, dtype in NUMPY_TYPES.items()}


class BuiltinOperator(IntEnum):
    """``enum BuiltinOperator : int32``, the operators the runtime has kernels for (and CUSTOM)."""

    ADD = 0
    AVERAGE_POOL_2D = 1
    CONCATENATION = 2
    CONV_2D = 3
    DEPTHWISE_CONV_2D = 4
    DEQUANTIZE = 6
    FLOOR = 8
    FULLY_CONNECTED = 9
    LOGISTIC = 14
    MAX_POOL_2D = 17
    MUL = 18
    RELU = 19
    RELU6 = 21
    RESHAPE = 22
    SOFTMAX = 25
    TANH = 28
    CUSTOM = 32
    PAD = 34
    GATHER = 36
    TRANSPOSE = 39
    MEAN = 40
    SUB = 41
    DIV = 42
    SQUEEZE = 43
    STRIDED_SLICE = 45
    EXP = 47
    LOG_SOFTMAX = 50
    CAST = 53
    MAXIMUM = 55
    MINIMUM = 57
    NEG = 59
    PADV2 = 60
    SIN = 66
    EXPAND_DIMS = 70
    LOG = 73
    SUM = 74
    SQRT = 75
    RSQRT = 76
    SHAPE = 77
    POW = 78
    REDUCE_PROD = 81
    REDUCE_MAX = 82
    PACK = 83
    REDUCE_MIN = 89
    SQUARE = 92
    LEAKY_RELU = 98
    ABS = 101
    CEIL = 104
    COS = 108
    QUANTIZE = 114
    HARD_SWISH = 117
    BATCH_MATMUL = 126
    GELU = 150
    SIGN = 158


class Padding(IntEnum):
    """``enum Padding : byte``."""

    SAME = 0
    VALID = 1


class Activation(IntEnum):
    """``enum ActivationFunctionType : byte``."""

    NONE = 0
    RELU = 1
    RELU_N1_TO_1 = 2
    RELU6 = 3
    TANH = 4
    SIGN_BIT = 5


_OP = BuiltinOperator
_ACT = ("fused_activation_function", "int8", 0)
_POOL = ("Pool2DOptions", 5, (("padding", "int8", 0), ("stride_w", "int32", 0), ("stride_h", "int32", 0),
                              ("filter_width", "int32", 0), ("filter_height", "int32", 0), _ACT))  # fmt: skip
_REDUCER = ("ReducerOptions", 27, (("keep_dims", "bool", False),))

# Each operator's options table: (name, index in ``union BuiltinOptions``, fields in slot order as
# (name, scalar kind or "int32[]" for a vector, default)). Operators not listed take no options.
OPTIONS = {
    _OP.ADD: ("AddOptions", 11, (_ACT,)),
    _OP.SUB: ("SubOptions", 28, (_ACT,)),
    _OP.MUL: ("MulOptions", 21, (_ACT,)),
    _OP.DIV: ("DivOptions", 29, (_ACT,)),
    _OP.AVERAGE_POOL_2D: _POOL,
    _OP.MAX_POOL_2D: _POOL,
    _OP.CONCATENATION: ("ConcatenationOptions", 10, (("axis", "int32", 0), _ACT)),
    _OP.CONV_2D: ("Conv2DOptions", 1, (("padding", "int8", 0), ("stride_w", "int32", 0), ("stride_h", "int32", 0),
                                      _ACT, ("dilation_w_factor", "int32", 1), ("dilation_h_factor", "int32", 1))),
    _OP.DEPTHWISE_CONV_2D: ("DepthwiseConv2DOptions", 2, (
        ("padding", "int8", 0), ("stride_w", "int32", 0), ("stride_h", "int32", 0), ("depth_multiplier", "int32", 0),
        _ACT, ("dilation_w_factor", "int32", 1), ("dilation_h_factor", "int32", 1))),
    _OP.FULLY_CONNECTED: ("FullyConnectedOptions", 8, (_ACT, ("weights_format", "int8", 0),
                                                       ("keep_num_dims", "bool", False),
                                                       ("asymmetric_quantize_inputs", "bool", False))),
    _OP.SOFTMAX: ("SoftmaxOptions", 9, (("beta", "float32", 0.0),)),
    _OP.RESHAPE: ("ReshapeOptions", 17, (("new_shape", "int32[]", None),)),
    _OP.PAD: ("PadOptions", 22, ()),
    _OP.PADV2: ("PadV2Options", 43, ()),
    _OP.GATHER: ("GatherOptions", 23, (("axis", "int32", 0), ("batch_dims", "int32", 0))),
    _OP.TRANSPOSE: ("TransposeOptions", 26, ()),
    _OP.MEAN: _REDUCER,
    _OP.SUM: _REDUCER,
    _OP.REDUCE_PROD: _REDUCER,
    _OP.REDUCE_MAX: _REDUCER,
    _OP.REDUCE_MIN: _REDUCER,
    _OP.SQUEEZE: ("SqueezeOptions", 30, (("squeeze_dims", "int32[]", None),)),
    _OP.STRIDED_SLICE: ("StridedSliceOptions", 32, (
        ("begin_mask", "int32", 0), ("end_mask", "int32", 0), ("ellipsis_mask", "int32", 0),
        ("new_axis_mask", "int32", 0), ("shrink_axis_mask", "int32", 0), ("offset", "bool", False))),
    _OP.EXP: ("ExpOptions", 33, ()),
    _OP.LOG_SOFTMAX: ("LogSoftmaxOptions", 36, ()),
    _OP.CAST: ("CastOptions", 37, (("in_data_type", "int8", 0), ("out_data_type", "int8", 0))),
    _OP.DEQUANTIZE: ("DequantizeOptions", 38, ()),
    _OP.MAXIMUM: ("MaximumMinimumOptions", 39, ()),
    _OP.MINIMUM: ("MaximumMinimumOptions", 39, ()),
    _OP.NEG: ("NegOptions", 42, ()),
    _OP.EXPAND_DIMS: ("ExpandDimsOptions", 52, ()),
    _OP.SHAPE: ("ShapeOptions", 55, (("out_type", "int8", 0),)),
    _OP.POW: ("PowOptions", 56, ()),
    _OP.PACK: ("PackOptions", 59, (("values_count", "int32", 0), ("axis", "int32", 0))),
    _OP.SQUARE: ("SquareOptions", 66, ()),
    _OP.LEAKY_RELU: ("LeakyReluOptions", 75, (("alpha", "float32", 0.0),)),
    _OP.ABS: ("AbsOptions", 78, ()),
    _OP.COS: ("CosOptions", 84, ()),
    _OP.HARD_SWISH: ("HardSwishOptions", 91, ()),
    _OP.BATCH_MATMUL: ("BatchMatMulOptions", 101, (("adj_x", "bool", False), ("adj_y", "bool", False),
                                                   ("asymmetric_quantize_inputs", "bool", False))),
    _OP.QUANTIZE: ("QuantizeOptions", 89, ()),
    _OP.GELU: ("GeluOptions", 116, (("approximate", "bool", False),)),
    _OP.SIGN: ("SignOptions", 123, ()),
}  # fmt: skip


def operator_name(code: int) -> str:
    """The schema name of a builtin operator code (``BUILTIN_<code>`` for codes this runtime does not know)."""
    try:
        return BuiltinOperator(code).name
    except ValueError:
        return f"BUILTIN_{code}"
