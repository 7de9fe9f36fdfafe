"""Full-integer quantization of a lowered lite graph: int8 activations, per-channel int8 weights, int32 biases.

Activation parameters come from calibrated ranges (``calibrate.ranges``). Tensors an operator needs to
share one scale and zero point (RESHAPE, pooling, TRANSPOSE, PAD, CONCATENATION: their int8 kernels do
not rescale) are grouped and given the union of their ranges; SOFTMAX / LOGISTIC / TANH outputs take the
spec's fixed parameters. A float input gets a QUANTIZE, a float output a DEQUANTIZE, unless int8
input/output types are asked for.

An operator with no int8 form here stays in float32 between a DEQUANTIZE and a QUANTIZE, as TensorFlow's
converter leaves it by default (TF 2.21 writes DEQUANTIZE v2, the float op, QUANTIZE v1: the same layout).
``strict`` refuses it instead: the promise TensorFlow documents for ``target_spec.supported_ops =
[tf.lite.OpsSet.TFLITE_BUILTINS_INT8]``, which its 2.21 converter did not keep (it left a SIN in float32).

The layout of the result is what TensorFlow's converter writes for the same model (checked by hand against
TF 2.21: operator versions, per-channel axes, bias scales).
"""

from __future__ import annotations

from exporter.errors import ExportError
from exporter.lite.builder import LiteModel, Quantization
from exporter.lite.schema import BuiltinOperator as Op
from exporter.lite.schema import TensorType
from exporter.quantize import editing
from exporter.quantize.params import asymmetric_params, quantize_affine, quantize_bias, quantize_symmetric

# Operators with int8 kernels, and the version their int8 form has (op_version.cc).
INT8_VERSIONS = {
    Op.FULLY_CONNECTED: 4,
    Op.CONV_2D: 3,
    Op.DEPTHWISE_CONV_2D: 3,
    Op.ADD: 2,
    Op.SUB: 2,
    Op.MUL: 2,
    Op.SOFTMAX: 2,
    Op.LOGISTIC: 2,
    Op.TANH: 2,
    Op.MAX_POOL_2D: 2,
    Op.AVERAGE_POOL_2D: 2,
    Op.RESHAPE: 1,
    Op.TRANSPOSE: 2,
    Op.PAD: 2,
    Op.CONCATENATION: 2,
    Op.MEAN: 2,
    Op.RELU: 2,
    Op.RELU6: 2,
    Op.LEAKY_RELU: 1,  # its int8 kernel came with version 1; 2 is int16
}
QUANTIZE_VERSION = 1  # float32 -> int8, per tensor
DEQUANTIZE_VERSION = 2  # int8 -> float32, per tensor
# The channel axis of the weights (input 1) in TFLite's layouts: [out, ...] and DEPTHWISE's [1, h, w, out].
WEIGHTED = {Op.FULLY_CONNECTED: 0, Op.CONV_2D: 0, Op.DEPTHWISE_CONV_2D: 3}
FIXED_OUTPUTS = {Op.SOFTMAX: (1 / 256, -128), Op.LOGISTIC: (1 / 256, -128), Op.TANH: (1 / 128, 0)}
SHARED_PARAMS = {Op.RESHAPE, Op.MAX_POOL_2D, Op.AVERAGE_POOL_2D, Op.TRANSPOSE, Op.PAD, Op.CONCATENATION}
TYPE_AGNOSTIC = {Op.SHAPE}  # reads its input's shape only, whatever the type
_FC_KEEP_NUM_DIMS_VERSION, _FC_NO_BIAS_VERSION = 5, 6


def full_integer(model: LiteModel, ranges: dict, input_type: str = "float32", output_type: str = "float32",
                 per_channel_dense: bool = True, strict: bool = False) -> list[str]:  # fmt: skip
    """Rewrites ``model`` (a float lite model) in place as a full-integer one; ``ranges`` maps each float
    activation tensor to its calibrated (min, max). Returns the operators left in float32, as
    "CODE 'output name'" (none when ``strict``: an operator without an int8 form then raises)."""
    reasons = [(op, _float_reason(model, op)) for op in model.operators if _touches_floats(model, op)]
    int8_operators = [operator for operator, reason in reasons if reason is None]
    left_float = [operator for operator, reason in reasons if reason is not None]
    if strict and left_float:
        operator, reason = next(entry for entry in reasons if entry[1] is not None)
        raise ExportError(
            f"int8 quantization: operator {editing.code_of(model, operator).name} (output "
            f"'{model.tensors[operator.outputs[0]].name}') {reason}; leave strict_int8 off "
            "to keep it in float32 between DEQUANTIZE and QUANTIZE, export with quantize='dynamic' or 'float16', "
            "or leave this op out of the model"
        )
    params = _activation_params(model, ranges)
    float_outputs = _float_islands(model, left_float, params, input_type, output_type)
    constants: dict[int, int] = {}  # float constant -> its int8 copy (per tensor, for element-wise operands)
    for operator in int8_operators:
        code = editing.code_of(model, operator)
        if code in WEIGHTED:
            _quantize_weights(model, operator, code, params, per_channel_dense)
        for position, index in enumerate(operator.inputs):
            if index >= 0 and index not in params and model.tensors[index].type == TensorType.FLOAT32:
                operator.inputs[position] = _int8_constant(model, operator, code, index, params, constants)
        editing.set_code(model, operator, code, _version(code, operator))
    for index, (scale, zero_point) in params.items():
        if index not in float_outputs:
            tensor = model.tensors[index]
            tensor.type, tensor.quantization = TensorType.INT8, Quantization([scale], [zero_point])
    _float_boundaries(model, input_type, output_type, left_float)
    return [f"{editing.code_of(model, op).name} '{model.tensors[op.outputs[0]].name}'" for op in left_float]


def _float_reason(model: LiteModel, operator) -> str | None:
    """Why ``operator`` (which reads or writes floats) must stay in float32, or None when it has an int8 form here."""
    code = editing.code_of(model, operator)
    if code not in INT8_VERSIONS:
        return "has no int8 form here"
    weights = operator.inputs[1] if code in WEIGHTED and len(operator.inputs) > 1 else None
    if weights is not None and not (editing.is_constant(model, weights) and _is_float(model, weights)):
        return "has no constant float weights to quantize"
    return None


def _is_float(model: LiteModel, index: int) -> bool:
    return index >= 0 and model.tensors[index].type == TensorType.FLOAT32


def _float_islands(model: LiteModel, left_float: list, params: dict, input_type: str, output_type: str) -> set[int]:
    """Wires the operators left in float32 into the int8 graph, as TensorFlow's converter does: a DEQUANTIZE
    before each int8 activation they read, a QUANTIZE after each output that an int8 operator reads or that
    is an int8 model output (``params`` gains the int8 copies). Returns the activations that stay float32.

    A float model input read by a float operator is read as it is (no QUANTIZE / DEQUANTIZE round trip)."""
    float_outputs = {index for operator in left_float for index in operator.outputs if index in params}
    kept = {id(operator) for operator in left_float}
    dequantized: dict[int, int] = {}  # int8 activation -> its float32 copy
    for operator in left_float:
        for position, index in enumerate(operator.inputs):
            if index not in params or index in float_outputs:
                continue
            if index in model.inputs and input_type != "int8":
                continue
            if index not in dequantized:
                tensor = model.tensors[index]
                dequantized[index] = editing.add_tensor(model, f"{tensor.name}_dequantized", tensor.shape,
                                                        TensorType.FLOAT32)  # fmt: skip
                dequantize = editing.make_operator(model, Op.DEQUANTIZE, [index], [dequantized[index]],
                                                   DEQUANTIZE_VERSION)  # fmt: skip
                model.operators.insert(_position(model, operator), dequantize)
            operator.inputs[position] = dequantized[index]
    for operator in left_float:
        for index in operator.outputs:
            if index not in float_outputs:
                continue
            if index in model.outputs and output_type == "int8":  # the signature's tensor stays, as int8
                float_copy = editing.add_tensor(model, f"{model.tensors[index].name}_float",
                                                model.tensors[index].shape, TensorType.FLOAT32)  # fmt: skip
                _replace(model, index, float_copy, [op for op in model.operators if id(op) in kept])
                float_outputs.discard(index)
                source, target = float_copy, index
            else:
                readers = [op for op in model.operators if id(op) not in kept and index in op.inputs]
                if not readers:
                    continue
                tensor, (scale, zero_point) = model.tensors[index], params[index]
                target = editing.add_tensor(model, f"{tensor.name}_int8", tensor.shape, TensorType.INT8,
                                            quantization=Quantization([scale], [zero_point]))  # fmt: skip
                params[target] = params[index]  # what its readers' biases and multipliers are computed from
                _replace(model, index, target, readers)
                source = index
            quantize = editing.make_operator(model, Op.QUANTIZE, [source], [target], QUANTIZE_VERSION)
            model.operators.insert(_position(model, operator) + 1, quantize)
    return float_outputs


def _replace(model: LiteModel, old: int, new: int, operators) -> None:
    """``operators`` read and write tensor ``new`` where they had ``old``."""
    for operator in operators:
        operator.inputs = [new if i == old else i for i in operator.inputs]
        operator.outputs = [new if i == old else i for i in operator.outputs]


def _position(model: LiteModel, operator) -> int:
    return next(number for number, candidate in enumerate(model.operators) if candidate is operator)


def _touches_floats(model: LiteModel, operator) -> bool:
    """Whether ``operator`` reads or writes float activations (SHAPE, which reads only a shape, and shape
    arithmetic on int32 tensors are left alone)."""
    if editing.code_of(model, operator) in TYPE_AGNOSTIC:
        return False
    activations = [i for i in (*operator.inputs, *operator.outputs) if not editing.is_constant(model, i)]
    return any(_is_float(model, index) for index in activations)


def _version(code, operator) -> int:
    if code == Op.FULLY_CONNECTED:
        if len(operator.inputs) < 3:  # an absent bias written as -1 keeps version 4, as TensorFlow's files do
            return _FC_NO_BIAS_VERSION
        if operator.options.get("keep_num_dims"):
            return _FC_KEEP_NUM_DIMS_VERSION
    return INT8_VERSIONS[code]


def _activation_params(model: LiteModel, ranges: dict) -> dict[int, tuple[float, int]]:
    """(scale, zero point) of every float activation; tensors that must agree are grouped (union-find)."""
    activations = {i for i, t in enumerate(model.tensors) if t.buffer == 0 and t.type == TensorType.FLOAT32}
    parent = {i: i for i in activations}

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    fixed: dict[int, tuple[float, int]] = {}
    for operator in model.operators:
        code = editing.code_of(model, operator)
        if code in FIXED_OUTPUTS:
            fixed[operator.outputs[0]] = FIXED_OUTPUTS[code]
        if code in SHARED_PARAMS:
            for index in operator.inputs:
                if index in activations and operator.outputs[0] in activations:
                    parent[root(index)] = root(operator.outputs[0])
    groups: dict[int, list[int]] = {}
    for index in activations:
        groups.setdefault(root(index), []).append(index)
    params = {}
    for members in groups.values():
        chosen = _group_params(model, members, fixed, ranges)
        for index in members:
            params[index] = chosen
    return params


def _group_params(model: LiteModel, members: list[int], fixed: dict, ranges: dict) -> tuple[float, int]:
    """A fixed output's parameters win (a RESHAPE after a SOFTMAX keeps 1/256); else the union of ranges."""
    pinned = [fixed[i] for i in members if i in fixed]
    if pinned:
        return pinned[0]
    seen = [ranges[i] for i in members if i in ranges]
    if not seen:
        names = ", ".join(model.tensors[i].name for i in members)
        raise ExportError(f"int8 quantization: no calibrated range for tensor(s) {names}")
    return asymmetric_params(min(r[0] for r in seen), max(r[1] for r in seen))


def _quantize_weights(model: LiteModel, operator, code, params, per_channel_dense: bool) -> None:
    """Int8 symmetric weights (per output channel) and int32 biases at input scale x weight scale."""
    weights, name = operator.inputs[1], model.tensors[operator.outputs[0]].name
    if not editing.is_constant(model, weights) or model.tensors[weights].type != TensorType.FLOAT32:
        raise ExportError(f"int8 quantization: {code.name} '{name}' needs constant float weights")
    if operator.inputs[0] not in params:
        raise ExportError(f"int8 quantization: {code.name} '{name}' reads a constant input; fold it before exporting")
    axis = WEIGHTED[code] if (code != Op.FULLY_CONNECTED or per_channel_dense) else None
    tensor = model.tensors[weights]
    q, scales = quantize_symmetric(editing.constant(model, weights), axis)
    quantization = Quantization(scales.tolist(), [0] * len(scales), axis or 0)
    operator.inputs[1] = editing.add_tensor(
        model, f"{tensor.name}_int8", tensor.shape, TensorType.INT8, q, quantization
    )
    if len(operator.inputs) < 3 or operator.inputs[2] < 0:
        return
    bias = operator.inputs[2]
    if not editing.is_constant(model, bias):
        raise ExportError(f"int8 quantization: {code.name} '{name}' needs a constant bias")
    bias_scales = (params[operator.inputs[0]][0] * scales.astype("float64")).astype("float32")
    values = editing.constant(model, bias)
    operator.inputs[2] = editing.add_tensor(
        model, f"{model.tensors[bias].name}_int32", values.shape, TensorType.INT32,
        quantize_bias(values, bias_scales), Quantization(bias_scales.tolist(), [0] * bias_scales.size, 0),
    )  # fmt: skip


def _int8_constant(model: LiteModel, operator, code, index: int, params, constants: dict) -> int:
    """The int8 copy of a float constant operand (an ADD's or MUL's other input): per tensor, at its own
    range, or at the output's parameters where the operator keeps them (CONCATENATION of a constant)."""
    if not editing.is_constant(model, index):
        raise ExportError(f"int8 quantization: tensor '{model.tensors[index].name}' was never seen in calibration")
    if index not in constants:
        values = editing.constant(model, index)
        if code in SHARED_PARAMS:
            scale, zero_point = params[operator.outputs[0]]
        else:
            scale, zero_point = asymmetric_params(values.min(initial=0.0), values.max(initial=0.0))
        tensor = model.tensors[index]
        constants[index] = editing.add_tensor(
            model, f"{tensor.name}_int8", tensor.shape, TensorType.INT8,
            quantize_affine(values, scale, zero_point), Quantization([scale], [zero_point]),
        )  # fmt: skip
    return constants[index]


def _float_boundaries(model: LiteModel, input_type: str, output_type: str, left_float: list) -> None:
    """A QUANTIZE after each float input and a DEQUANTIZE before each float output; with int8 I/O types the
    model's own input/output tensors stay int8 (their scale and zero point tell the caller how to convert).
    Operators left in float32 read a float input as it is, and write a float output themselves.

    The float tensors keep their indices and user-facing names, so the signature is unchanged."""
    kept = {id(operator) for operator in left_float}
    for index in model.inputs if input_type != "int8" else ():
        tensor = model.tensors[index]
        readers = [operator for operator in model.operators if id(operator) not in kept and index in operator.inputs]
        quantization, tensor.type, tensor.quantization = tensor.quantization, TensorType.FLOAT32, None
        if not readers:
            continue
        inner = editing.add_tensor(model, f"{tensor.name}_int8", tensor.shape, TensorType.INT8,
                                   quantization=quantization)  # fmt: skip
        _replace(model, index, inner, readers)
        model.operators.insert(0, editing.make_operator(model, Op.QUANTIZE, [index], [inner], QUANTIZE_VERSION))
    for index in model.outputs if output_type != "int8" else ():
        tensor = model.tensors[index]
        if tensor.type == TensorType.FLOAT32:  # written by an operator left in float32
            continue
        inner = editing.add_tensor(model, f"{tensor.name}_int8", tensor.shape, TensorType.INT8,
                                   quantization=tensor.quantization)  # fmt: skip
        _replace(model, index, inner, model.operators)
        tensor.type, tensor.quantization = TensorType.FLOAT32, None
        model.operators.append(editing.make_operator(model, Op.DEQUANTIZE, [inner], [index], DEQUANTIZE_VERSION))
