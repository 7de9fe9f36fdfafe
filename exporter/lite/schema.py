"""The subset of the TFLite flatbuffer schema that emberflow writes: enum values, option unions, field slots.

Source: ``tensorflow/compiler/mlir/lite/schema/schema.fbs`` in tensorflow/tensorflow (schema version 3).
Every number here was checked against that file, and ``tests/exporter/test_lite.py`` checks them again
against the Python module LiteRT generates from it (``ai_edge_litert.schema_py_generated``): the enum
values, the union indices, and each field's slot, scalar type and default.

A table field's slot is its declaration index in the schema (a union field takes two slots: its
``_type`` byte, then the value), so ``TABLES`` lists the fields in declaration order and the slot is
the position in that list.
"""

from __future__ import annotations

from enum import IntEnum

SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"
BUFFER_ALIGNMENT = 16  # Buffer.data is declared with (force_align: 16)


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


class Padding(IntEnum):
    """``enum Padding : byte { SAME, VALID }``."""

    SAME = 0
    VALID = 1


class ActivationFunctionType(IntEnum):
    """``enum ActivationFunctionType : byte``: what an op may apply to its own output."""

    NONE = 0
    RELU = 1
    RELU_N1_TO_1 = 2
    RELU6 = 3
    TANH = 4
    SIGN_BIT = 5


class BuiltinOperator(IntEnum):
    """``enum BuiltinOperator : int32``, the operators emberflow emits."""

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
    ARG_MAX = 56
    MINIMUM = 57
    LESS = 58
    NEG = 59
    PADV2 = 60
    GREATER = 61
    GREATER_EQUAL = 62
    LESS_EQUAL = 63
    SIN = 66
    EXPAND_DIMS = 70
    EQUAL = 71
    NOT_EQUAL = 72
    LOG = 73
    SUM = 74
    SQRT = 75
    RSQRT = 76
    SHAPE = 77
    PACK = 83  # written by TensorFlow around a dynamic-batch Flatten; inspect names it
    POW = 78
    ARG_MIN = 79
    REDUCE_PROD = 81
    REDUCE_MAX = 82
    LOGICAL_OR = 84
    ONE_HOT = 85
    LOGICAL_AND = 86
    LOGICAL_NOT = 87
    REDUCE_MIN = 89
    FLOOR_DIV = 90
    SQUARE = 92
    ZEROS_LIKE = 93
    FILL = 94
    FLOOR_MOD = 95
    LEAKY_RELU = 98
    ABS = 101
    CEIL = 104
    COS = 108
    QUANTIZE = 114
    ROUND = 116
    HARD_SWISH = 117
    SELECT_V2 = 123
    BATCH_MATMUL = 126
    PLACEHOLDER_FOR_GREATER_OP_CODES = 127
    BROADCAST_TO = 130
    BROADCAST_ARGS = 145
    GELU = 150
    SIGN = 158


# ``union BuiltinOptions``: the index of each member (NONE is 0, the first member 1).
BUILTIN_OPTIONS = {
    "Conv2DOptions": 1,
    "DepthwiseConv2DOptions": 2,
    "Pool2DOptions": 5,
    "FullyConnectedOptions": 8,
    "SoftmaxOptions": 9,
    "ConcatenationOptions": 10,
    "AddOptions": 11,
    "ReshapeOptions": 17,
    "MulOptions": 21,
    "PadOptions": 22,
    "GatherOptions": 23,
    "TransposeOptions": 26,
    "ReducerOptions": 27,
    "SubOptions": 28,
    "DivOptions": 29,
    "SqueezeOptions": 30,
    "StridedSliceOptions": 32,
    "ExpOptions": 33,
    "LogSoftmaxOptions": 36,
    "CastOptions": 37,
    "DequantizeOptions": 38,
    "MaximumMinimumOptions": 39,
    "ArgMaxOptions": 40,
    "LessOptions": 41,
    "NegOptions": 42,
    "PadV2Options": 43,
    "GreaterOptions": 44,
    "GreaterEqualOptions": 45,
    "LessEqualOptions": 46,
    "ExpandDimsOptions": 52,
    "EqualOptions": 53,
    "NotEqualOptions": 54,
    "ShapeOptions": 55,
    "PowOptions": 56,
    "ArgMinOptions": 57,
    "LogicalOrOptions": 60,
    "OneHotOptions": 61,
    "LogicalAndOptions": 62,
    "LogicalNotOptions": 63,
    "FloorDivOptions": 65,
    "SquareOptions": 66,
    "ZerosLikeOptions": 67,
    "FillOptions": 68,
    "FloorModOptions": 72,
    "LeakyReluOptions": 75,
    "AbsOptions": 78,
    "CosOptions": 84,
    "QuantizeOptions": 89,
    "HardSwishOptions": 91,
    "SelectV2Options": 98,
    "BatchMatMulOptions": 101,
    "BroadcastToOptions": 104,
    "GeluOptions": 116,
    "SignOptions": 123,
}

_OP = BuiltinOperator

# The options table each operator takes (operators without one take none). The verifier checks every
# operator's builtin_options_type against this, so a lowering cannot attach the wrong table.
OPERATOR_OPTIONS = {
    _OP.ADD: "AddOptions",
    _OP.AVERAGE_POOL_2D: "Pool2DOptions",
    _OP.CONCATENATION: "ConcatenationOptions",
    _OP.CONV_2D: "Conv2DOptions",
    _OP.DEPTHWISE_CONV_2D: "DepthwiseConv2DOptions",
    _OP.DEQUANTIZE: "DequantizeOptions",
    _OP.FULLY_CONNECTED: "FullyConnectedOptions",
    _OP.MAX_POOL_2D: "Pool2DOptions",
    _OP.MUL: "MulOptions",
    _OP.RESHAPE: "ReshapeOptions",
    _OP.SOFTMAX: "SoftmaxOptions",
    _OP.PAD: "PadOptions",
    _OP.GATHER: "GatherOptions",
    _OP.TRANSPOSE: "TransposeOptions",
    _OP.MEAN: "ReducerOptions",
    _OP.SUB: "SubOptions",
    _OP.DIV: "DivOptions",
    _OP.SQUEEZE: "SqueezeOptions",
    _OP.STRIDED_SLICE: "StridedSliceOptions",
    _OP.EXP: "ExpOptions",
    _OP.LOG_SOFTMAX: "LogSoftmaxOptions",
    _OP.CAST: "CastOptions",
    _OP.MAXIMUM: "MaximumMinimumOptions",
    _OP.ARG_MAX: "ArgMaxOptions",
    _OP.MINIMUM: "MaximumMinimumOptions",
    _OP.LESS: "LessOptions",
    _OP.NEG: "NegOptions",
    _OP.PADV2: "PadV2Options",
    _OP.GREATER: "GreaterOptions",
    _OP.GREATER_EQUAL: "GreaterEqualOptions",
    _OP.LESS_EQUAL: "LessEqualOptions",
    _OP.EXPAND_DIMS: "ExpandDimsOptions",
    _OP.EQUAL: "EqualOptions",
    _OP.NOT_EQUAL: "NotEqualOptions",
    _OP.SUM: "ReducerOptions",
    _OP.SHAPE: "ShapeOptions",
    _OP.POW: "PowOptions",
    _OP.ARG_MIN: "ArgMinOptions",
    _OP.REDUCE_PROD: "ReducerOptions",
    _OP.REDUCE_MAX: "ReducerOptions",
    _OP.LOGICAL_OR: "LogicalOrOptions",
    _OP.ONE_HOT: "OneHotOptions",
    _OP.LOGICAL_AND: "LogicalAndOptions",
    _OP.LOGICAL_NOT: "LogicalNotOptions",
    _OP.REDUCE_MIN: "ReducerOptions",
    _OP.FLOOR_DIV: "FloorDivOptions",
    _OP.SQUARE: "SquareOptions",
    _OP.ZEROS_LIKE: "ZerosLikeOptions",
    _OP.FILL: "FillOptions",
    _OP.FLOOR_MOD: "FloorModOptions",
    _OP.LEAKY_RELU: "LeakyReluOptions",
    _OP.ABS: "AbsOptions",
    _OP.COS: "CosOptions",
    _OP.QUANTIZE: "QuantizeOptions",
    _OP.HARD_SWISH: "HardSwishOptions",
    _OP.SELECT_V2: "SelectV2Options",
    _OP.BATCH_MATMUL: "BatchMatMulOptions",
    _OP.BROADCAST_TO: "BroadcastToOptions",
    _OP.GELU: "GeluOptions",
    _OP.SIGN: "SignOptions",
}

# Table layouts: (field, kind, default) in declaration order, so a field's slot is its index. ``kind``
# names the flatbuffers Builder method (``Prepend<Kind>Slot``); "offset" is a string, vector, table or
# union value; "deprecated" keeps the slot of a field the schema retired.
_OFFSET = ("offset", 0)
TABLES = {
    "Model": (
        ("version", "uint32", 0),
        ("operator_codes", *_OFFSET),
        ("subgraphs", *_OFFSET),
        ("description", *_OFFSET),
        ("buffers", *_OFFSET),
        ("metadata_buffer", *_OFFSET),
        ("metadata", *_OFFSET),
        ("signature_defs", *_OFFSET),
    ),
    "OperatorCode": (
        ("deprecated_builtin_code", "int8", 0),
        ("custom_code", *_OFFSET),
        ("version", "int32", 1),
        ("builtin_code", "int32", 0),
    ),
    "SubGraph": (
        ("tensors", *_OFFSET),
        ("inputs", *_OFFSET),
        ("outputs", *_OFFSET),
        ("operators", *_OFFSET),
        ("name", *_OFFSET),
    ),
    "Tensor": (
        ("shape", *_OFFSET),
        ("type", "int8", 0),
        ("buffer", "uint32", 0),
        ("name", *_OFFSET),
        ("quantization", *_OFFSET),
        ("is_variable", "bool", False),
        ("sparsity", *_OFFSET),
        ("shape_signature", *_OFFSET),
        ("has_rank", "bool", False),
    ),
    "QuantizationParameters": (
        ("min", *_OFFSET),
        ("max", *_OFFSET),
        ("scale", *_OFFSET),
        ("zero_point", *_OFFSET),
        ("details_type", "uint8", 0),
        ("details", *_OFFSET),
        ("quantized_dimension", "int32", 0),
    ),
    "Operator": (
        ("opcode_index", "uint32", 0),
        ("inputs", *_OFFSET),
        ("outputs", *_OFFSET),
        ("builtin_options_type", "uint8", 0),
        ("builtin_options", *_OFFSET),
    ),
    "Buffer": (("data", *_OFFSET), ("offset", "uint64", 0), ("size", "uint64", 0)),
    "Metadata": (("name", *_OFFSET), ("buffer", "uint32", 0)),
    "TensorMap": (("name", *_OFFSET), ("tensor_index", "uint32", 0)),
    "SignatureDef": (
        ("inputs", *_OFFSET),
        ("outputs", *_OFFSET),
        ("signature_key", *_OFFSET),
        ("deprecated_tag", "deprecated", 0),
        ("subgraph_index", "uint32", 0),
    ),
    # -- builtin options --------------------------------------------------------------------------------
    "Conv2DOptions": (
        ("padding", "int8", 0),
        ("stride_w", "int32", 0),
        ("stride_h", "int32", 0),
        ("fused_activation_function", "int8", 0),
        ("dilation_w_factor", "int32", 1),
        ("dilation_h_factor", "int32", 1),
    ),
    "DepthwiseConv2DOptions": (
        ("padding", "int8", 0),
        ("stride_w", "int32", 0),
        ("stride_h", "int32", 0),
        ("depth_multiplier", "int32", 0),
        ("fused_activation_function", "int8", 0),
        ("dilation_w_factor", "int32", 1),
        ("dilation_h_factor", "int32", 1),
    ),
    "Pool2DOptions": (
        ("padding", "int8", 0),
        ("stride_w", "int32", 0),
        ("stride_h", "int32", 0),
        ("filter_width", "int32", 0),
        ("filter_height", "int32", 0),
        ("fused_activation_function", "int8", 0),
    ),
    "FullyConnectedOptions": (
        ("fused_activation_function", "int8", 0),
        ("weights_format", "int8", 0),
        ("keep_num_dims", "bool", False),
        ("asymmetric_quantize_inputs", "bool", False),
    ),
    "SoftmaxOptions": (("beta", "float32", 0.0),),
    "ConcatenationOptions": (("axis", "int32", 0), ("fused_activation_function", "int8", 0)),
    "AddOptions": (("fused_activation_function", "int8", 0), ("pot_scale_int16", "bool", True)),
    "SubOptions": (("fused_activation_function", "int8", 0), ("pot_scale_int16", "bool", True)),
    "MulOptions": (("fused_activation_function", "int8", 0),),
    "DivOptions": (("fused_activation_function", "int8", 0),),
    "ReshapeOptions": (("new_shape", *_OFFSET),),
    "GatherOptions": (("axis", "int32", 0), ("batch_dims", "int32", 0)),
    "ReducerOptions": (("keep_dims", "bool", False),),
    "SqueezeOptions": (("squeeze_dims", *_OFFSET),),
    "StridedSliceOptions": (
        ("begin_mask", "int32", 0),
        ("end_mask", "int32", 0),
        ("ellipsis_mask", "int32", 0),
        ("new_axis_mask", "int32", 0),
        ("shrink_axis_mask", "int32", 0),
        ("offset", "bool", False),
    ),
    "CastOptions": (("in_data_type", "int8", 0), ("out_data_type", "int8", 0)),
    "ArgMaxOptions": (("output_type", "int8", 0),),
    "ArgMinOptions": (("output_type", "int8", 0),),
    "ShapeOptions": (("out_type", "int8", 0),),
    "OneHotOptions": (("axis", "int32", 0),),
    "LeakyReluOptions": (("alpha", "float32", 0.0),),
    "BatchMatMulOptions": (
        ("adj_x", "bool", False),
        ("adj_y", "bool", False),
        ("asymmetric_quantize_inputs", "bool", False),
    ),
    "GeluOptions": (("approximate", "bool", False),),
}

# The options tables with no fields (written as empty tables, as TensorFlow's converter writes them).
for _name in BUILTIN_OPTIONS:
    TABLES.setdefault(_name, ())


def slot(table: str, field: str) -> int:
    """The vtable slot of ``field`` in ``table``."""
    for index, (name, _kind, _default) in enumerate(TABLES[table]):
        if name == field:
            return index
    raise KeyError(f"the lite schema subset has no field '{field}' in table '{table}'")
