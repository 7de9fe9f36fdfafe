// emberflow-lite: runs lite (TFLite-schema) files in browsers and Node, with no dependencies.
//
//   import { load } from "./emberflow-lite.js";
//   const model = await load("model.lite");        // a URL (fetched), an ArrayBuffer or a Uint8Array
//   model.inputs;   // [{ name, shape: [-1, 28, 28], dtype: "float32", quantization: { scale, zeroPoint } }]
//   const { probabilities } = model.run({ image: new Float32Array(784) });   // synchronous
//
// `run` takes one typed array per input name (Float32Array for float32, Int8Array for int8, ...), the
// batch read from its length where the batch dim is dynamic, or `{ data, shape }`; it returns a copy of
// each output by name (`model.outputShapes` holds their shapes). Wrong names, sizes or types throw an
// Error saying what was expected. `loadInWorker(url)` runs the model in a Web Worker
// (emberflow-worker.js) and its `run` returns a Promise, so a page never freezes.
//
// The twin of the Python `lite_runtime`: the file is validated as a whole when it is read (every
// offset, index, length and buffer size; problems throw LiteFormatError naming the field), each
// operator is prepared once per input shape (shapes, parameters, scratch; operators whose inputs are
// all known are folded), every intermediate tensor gets a view into one arena planned by lifetime
// (inside the WebAssembly memory where there is one, so that its kernels work in place), and `run` only
// copies the inputs in and calls each kernel. Integer kernels requantize as LiteRT's default interpreter
// does (QuantizeMultiplier, MultiplyByQuantizedMultiplier rounded once), exactly, without BigInt.
// FULLY_CONNECTED and CONV_2D skip zero inputs; their float32 products, and float32 MAX_POOL_2D, run in
// small WebAssembly SIMD functions where the engine has them (`load(source, { simd: false })` keeps
// them in plain JS).

export class LiteFormatError extends Error {
  constructor(message) {
    super(message);
    this.name = "LiteFormatError";
  }
}

const fail = (message) => new LiteFormatError(message);
const MAX_ELEMENTS = 2 ** 31 - 1;
const DEFAULT_MEMORY_LIMIT = 2 ** 30;

// ---------------------------------------------------------------------------------------------------
// Tensor types: TFLite TensorType code -> [name, typed array]. FLOAT16 is held as raw bits.
const TYPES = {
  0: ["float32", Float32Array], 1: ["float16", Uint16Array], 2: ["int32", Int32Array], 3: ["uint8", Uint8Array],
  4: ["int64", BigInt64Array], 6: ["bool", Uint8Array], 7: ["int16", Int16Array], 9: ["int8", Int8Array],
  10: ["float64", Float64Array], 15: ["uint32", Uint32Array], 16: ["uint16", Uint16Array],
};
const ARRAY_OF = Object.fromEntries(Object.values(TYPES));
const TYPE_NAMES = ["FLOAT32", "FLOAT16", "INT32", "UINT8", "INT64", "STRING", "BOOL", "INT16", "COMPLEX64", "INT8",
  "FLOAT64", "COMPLEX128", "UINT64", "RESOURCE", "VARIANT", "UINT32", "UINT16", "INT4", "BFLOAT16"];

const product = (shape) => shape.reduce((a, b) => a * b, 1);
const show = (shape) => `[${Array.from(shape).join(", ")}]`;

// ---------------------------------------------------------------------------------------------------
// Flatbuffer reading: every position is checked against the file before it is read.

class Bytes {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.size = bytes.byteLength;
  }

  need(position, length, what) {
    if (!(position >= 0 && length >= 0 && position + length <= this.size)) {
      throw fail(`lite file: ${what} spans bytes ${position}..${position + length}, outside the file (${this.size} bytes)`);
    }
  }

  read(position, kind, what) {
    this.need(position, WIDTH[kind], what);
    const v = this.view;
    switch (kind) {
      case "i8": return v.getInt8(position);
      case "u8": return v.getUint8(position);
      case "bool": return v.getUint8(position) !== 0;
      case "u16": return v.getUint16(position, true);
      case "i32": return v.getInt32(position, true);
      case "u32": return v.getUint32(position, true);
      case "f32": return v.getFloat32(position, true);
      case "u64": return v.getUint32(position, true) + v.getUint32(position + 4, true) * 2 ** 32;
      case "i64": return v.getUint32(position, true) + v.getInt32(position + 4, true) * 2 ** 32;
    }
  }
}

const WIDTH = { i8: 1, u8: 1, bool: 1, u16: 2, i32: 4, u32: 4, f32: 4, u64: 8, i64: 8 };

class Table {
  constructor(data, position, what) {
    this.data = data;
    this.position = position;
    this.what = what;
    const vtable = position - data.read(position, "i32", `${what} vtable offset`);
    this.vtableSize = data.read(vtable, "u16", `${what} vtable size`);
    this.objectSize = data.read(vtable + 2, "u16", `${what} object size`);
    if (this.vtableSize < 4 || this.vtableSize % 2) {
      throw fail(`lite file: ${what} vtable size ${this.vtableSize} is not an even number >= 4`);
    }
    data.need(vtable, this.vtableSize, `${what} vtable`);
    data.need(position, Math.max(this.objectSize, 4), `${what} object`);
    this.vtable = vtable;
  }

  field(slot, width, name) {
    const entry = 4 + 2 * slot;
    if (entry + 2 > this.vtableSize) return 0;
    const offset = this.data.read(this.vtable + entry, "u16", `${this.what}.${name} field offset`);
    if (offset && offset + width > this.objectSize) {
      throw fail(`lite file: ${this.what}.${name} at byte ${offset} lies outside its table`);
    }
    return offset;
  }

  scalar(slot, kind, fallback, name) {
    const offset = this.field(slot, WIDTH[kind], name);
    return offset ? this.data.read(this.position + offset, kind, `${this.what}.${name}`) : fallback;
  }

  target(slot, name) {
    const offset = this.field(slot, 4, name);
    if (!offset) return -1;
    const at = this.position + offset;
    return at + this.data.read(at, "u32", `${this.what}.${name} offset`);
  }

  table(slot, name) {
    const at = this.target(slot, name);
    return at < 0 ? null : new Table(this.data, at, `${this.what}.${name}`);
  }

  // [start, length] of a vector of `itemSize`-byte items, or null when absent.
  vector(slot, itemSize, name) {
    const at = this.target(slot, name);
    if (at < 0) return null;
    const length = this.data.read(at, "u32", `${this.what}.${name} length`);
    this.data.need(at + 4, length * itemSize, `${this.what}.${name} (${length} items)`);
    return [at + 4, length];
  }

  numbers(slot, kind, name) {
    const vector = this.vector(slot, WIDTH[kind], name);
    if (!vector) return [];
    const [start, length] = vector;
    return Array.from({ length }, (_, i) => this.data.read(start + i * WIDTH[kind], kind, name));
  }

  tables(slot, name) {
    const vector = this.vector(slot, 4, name);
    if (!vector) return [];
    const [start, length] = vector;
    return Array.from({ length }, (_, i) => {
      const at = start + 4 * i;
      return new Table(this.data, at + this.data.read(at, "u32", `${name}[${i}]`), `${name}[${i}]`);
    });
  }

  string(slot, name) {
    const vector = this.vector(slot, 1, name);
    if (!vector) return null;
    return new TextDecoder().decode(this.data.bytes.subarray(vector[0], vector[0] + vector[1]));
  }
}

// ---------------------------------------------------------------------------------------------------
// The schema subset (tensorflow/compiler/mlir/lite/schema/schema.fbs, version 3): field slots are
// declaration indices; options are [union index, [name, kind, default]...] in slot order.

const OP_NAMES = {
  0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE",
  8: "FLOOR", 9: "FULLY_CONNECTED", 14: "LOGISTIC", 17: "MAX_POOL_2D", 18: "MUL", 19: "RELU", 21: "RELU6",
  22: "RESHAPE", 25: "SOFTMAX", 28: "TANH", 34: "PAD", 36: "GATHER", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB",
  42: "DIV", 43: "SQUEEZE", 45: "STRIDED_SLICE", 47: "EXP", 50: "LOG_SOFTMAX", 53: "CAST", 55: "MAXIMUM",
  57: "MINIMUM", 59: "NEG", 60: "PADV2", 66: "SIN", 70: "EXPAND_DIMS", 73: "LOG", 74: "SUM", 75: "SQRT",
  76: "RSQRT", 77: "SHAPE", 78: "POW", 81: "REDUCE_PROD", 82: "REDUCE_MAX", 83: "PACK", 89: "REDUCE_MIN",
  92: "SQUARE", 98: "LEAKY_RELU", 101: "ABS", 104: "CEIL", 108: "COS", 114: "QUANTIZE", 117: "HARD_SWISH",
  126: "BATCH_MATMUL", 150: "GELU", 158: "SIGN", 56: "ARG_MAX", 58: "LESS", 61: "GREATER", 62: "GREATER_EQUAL",
  63: "LESS_EQUAL", 71: "EQUAL", 72: "NOT_EQUAL", 79: "ARG_MIN", 84: "LOGICAL_OR", 85: "ONE_HOT", 86: "LOGICAL_AND",
  87: "LOGICAL_NOT", 90: "FLOOR_DIV", 93: "ZEROS_LIKE", 94: "FILL", 95: "FLOOR_MOD", 116: "ROUND", 123: "SELECT_V2",
  130: "BROADCAST_TO", 145: "BROADCAST_ARGS",
};

const ACTIVATION = ["activation", "i8", 0];
const POOL = [5, [["padding", "i8", 0], ["strideW", "i32", 0], ["strideH", "i32", 0], ["filterW", "i32", 0],
  ["filterH", "i32", 0], ACTIVATION]];
const REDUCER = [27, [["keepDims", "bool", false]]];
const OPTIONS = {
  0: [11, [ACTIVATION]], 41: [28, [ACTIVATION]], 18: [21, [ACTIVATION]], 42: [29, [ACTIVATION]],
  1: POOL, 17: POOL,
  2: [10, [["axis", "i32", 0], ACTIVATION]],
  3: [1, [["padding", "i8", 0], ["strideW", "i32", 0], ["strideH", "i32", 0], ACTIVATION,
    ["dilationW", "i32", 1], ["dilationH", "i32", 1]]],
  4: [2, [["padding", "i8", 0], ["strideW", "i32", 0], ["strideH", "i32", 0], ["depthMultiplier", "i32", 0],
    ACTIVATION, ["dilationW", "i32", 1], ["dilationH", "i32", 1]]],
  9: [8, [ACTIVATION, ["weightsFormat", "i8", 0], ["keepNumDims", "bool", false],
    ["asymmetricQuantizeInputs", "bool", false]]],
  25: [9, [["beta", "f32", 0]]],
  22: [17, [["newShape", "i32[]", null]]],
  36: [23, [["axis", "i32", 0], ["batchDims", "i32", 0]]],
  40: REDUCER, 74: REDUCER, 81: REDUCER, 82: REDUCER, 89: REDUCER,
  43: [30, [["squeezeDims", "i32[]", null]]],
  45: [32, [["beginMask", "i32", 0], ["endMask", "i32", 0], ["ellipsisMask", "i32", 0], ["newAxisMask", "i32", 0],
    ["shrinkAxisMask", "i32", 0], ["offset", "bool", false]]],
  53: [37, [["inType", "i8", 0], ["outType", "i8", 0]]],
  77: [55, [["outType", "i8", 0]]],
  83: [59, [["valuesCount", "i32", 0], ["axis", "i32", 0]]],
  98: [75, [["alpha", "f32", 0]]],
  126: [101, [["adjX", "bool", false], ["adjY", "bool", false], ["asymmetricQuantizeInputs", "bool", false]]],
  150: [116, [["approximate", "bool", false]]],
  56: [40, [["outputType", "i8", 0]]], 79: [57, [["outputType", "i8", 0]]], 85: [61, [["axis", "i32", 0]]],
};

// Reads and validates a lite file (subgraph 0) into plain records; throws LiteFormatError naming any bad field.
export function readModel(bytes) {
  const data = new Bytes(bytes);
  const identifier = String.fromCharCode(...bytes.subarray(4, 8));
  if (data.size < 8 || identifier !== "TFL3") {
    throw fail(`lite file: bytes 4..8 are ${JSON.stringify(identifier)}, not the identifier "TFL3"`);
  }
  const root = data.read(0, "u32", "root table offset");
  if (!(root >= 8 && root < data.size)) throw fail(`lite file: root table offset ${root} lies outside the file (${data.size} bytes)`);
  const model = new Table(data, root, "Model");
  const version = model.scalar(0, "u32", 0, "version");
  if (version !== 3) throw fail(`lite file: Model.version is ${version}, expected 3`);
  const buffers = model.tables(4, "buffers").map((table, i) => bufferRange(data, table, i));
  const codes = model.tables(1, "operator_codes").map((table) =>
    Math.max(table.scalar(0, "i8", 0, "deprecated_builtin_code"), table.scalar(3, "i32", 0, "builtin_code")));
  const subgraph = model.tables(2, "subgraphs")[0];
  if (!subgraph) throw fail("lite file: the model has no subgraphs");
  const tensors = subgraph.tables(0, "tensors").map((table, i) => readTensor(table, i, buffers, bytes));
  const count = tensors.length;
  const inputs = indices(subgraph.numbers(1, "i32", "inputs"), count, "subgraph input");
  const outputs = indices(subgraph.numbers(2, "i32", "outputs"), count, "subgraph output");
  const operators = subgraph.tables(3, "operators").map((table, i) => readOperator(table, i, codes, count));
  checkDataflow(tensors, operators, inputs, outputs);
  const signatures = {};
  model.tables(7, "signature_defs").forEach((table, i) => {
    const key = table.string(2, "signature_key") || `signature_${i}`;
    if (table.scalar(4, "u32", 0, "subgraph_index") !== 0) return;
    const map = (slot, part) => Object.fromEntries(table.tables(slot, part).map((entry) => {
      const index = entry.scalar(1, "u32", 0, "tensor_index");
      if (index >= count) throw fail(`lite file: signature '${key}' ${part} tensor index ${index} out of range (subgraph has ${count} tensors)`);
      return [entry.string(0, "name") || `tensor_${index}`, index];
    }));
    signatures[key] = { inputs: map(0, "inputs"), outputs: map(1, "outputs") };
  });
  return { tensors, operators, inputs, outputs, signatures, bufferCount: buffers.length };
}

function bufferRange(data, table, index) {
  const offset = table.scalar(1, "u64", 0, "offset");
  if (offset > 1) { // files over 2 GB keep their data after the flatbuffer, addressed from the file start
    const size = table.scalar(2, "u64", 0, "size");
    data.need(offset, size, `buffer ${index} data`);
    return [offset, size];
  }
  return table.vector(0, 1, `buffers[${index}].data`) || [0, 0];
}

function readTensor(table, index, buffers, bytes) {
  const what = `lite file: tensor ${index}`;
  const code = table.scalar(1, "i8", 0, "type");
  if (!TYPES[code]) {
    throw fail(`${what}: tensor type ${TYPE_NAMES[code] || code} is not supported (supported: ${Object.keys(TYPES).map((t) => TYPE_NAMES[t]).join(", ")})`);
  }
  const [dtype, ArrayType] = TYPES[code];
  const shape = table.numbers(0, "i32", "shape");
  if (shape.some((d) => d < 0)) throw fail(`${what}: shape ${show(shape)} has a negative dimension`);
  if (product(shape) > MAX_ELEMENTS) throw fail(`${what}: shape ${show(shape)} has more than ${MAX_ELEMENTS} elements`);
  const signature = table.numbers(7, "i32", "shape_signature");
  if (signature.length && (signature.length !== shape.length || signature.some((s, i) => s < -1 || (s >= 0 && s !== shape[i])))) {
    throw fail(`${what}: shape_signature ${show(signature)} does not fit shape ${show(shape)}`);
  }
  const bufferIndex = table.scalar(2, "u32", 0, "buffer");
  if (bufferIndex >= buffers.length) {
    throw fail(`${what}: buffer index ${bufferIndex} out of range (model has ${buffers.length} buffers)`);
  }
  const [start, size] = buffers[bufferIndex];
  let value = null;
  if (size) {
    const expected = product(shape) * ArrayType.BYTES_PER_ELEMENT;
    if (size !== expected) {
      throw fail(`${what}: buffer ${bufferIndex} holds ${size} bytes, expected ${expected} for shape ${show(shape)} ${dtype}`);
    }
    const at = bytes.byteOffset + start;
    value = at % ArrayType.BYTES_PER_ELEMENT === 0 // a view of the file where aligned, else a copy
      ? new ArrayType(bytes.buffer, at, product(shape))
      : new ArrayType(bytes.slice(start, start + size).buffer);
  }
  let scales = [], zeroPoints = [], quantizedDimension = 0;
  const quantization = table.table(4, "quantization");
  if (quantization) {
    scales = quantization.numbers(2, "f32", "scale");
    zeroPoints = quantization.numbers(3, "i64", "zero_point");
    quantizedDimension = quantization.scalar(6, "i32", 0, "quantized_dimension");
    if (scales.length > 1 && !(quantizedDimension >= 0 && shape[quantizedDimension] === scales.length)) {
      throw fail(`${what}: ${scales.length} scales do not fit quantized_dimension ${quantizedDimension} of ${show(shape)}`);
    }
    if (![0, 1, scales.length].includes(zeroPoints.length)) throw fail(`${what}: ${zeroPoints.length} zero points for ${scales.length} scales`);
    if (zeroPoints.some((z) => Math.abs(z) > 2 ** 31)) throw fail(`${what}: zero point out of the int32 range`);
  }
  const name = table.string(3, "name") || `tensor_${index}`;
  return { index, name, dtype, shape, signature: signature.length ? signature : shape, value, scales, zeroPoints, quantizedDimension };
}

function indices(values, count, what, optional = false) {
  for (const v of values) {
    if (!((v >= 0 && v < count) || (optional && v === -1))) throw fail(`lite file: ${what} tensor index ${v} out of range (subgraph has ${count} tensors)`);
  }
  return values;
}

function readOperator(table, index, codes, count) {
  const opcodeIndex = table.scalar(0, "u32", 0, "opcode_index");
  if (opcodeIndex >= codes.length) {
    throw fail(`lite file: operator ${index}: opcode index ${opcodeIndex} out of range (model has ${codes.length} operator codes)`);
  }
  const code = codes[opcodeIndex];
  const name = OP_NAMES[code] || `BUILTIN_${code}`;
  const inputs = indices(table.numbers(1, "i32", "inputs"), count, `operator ${index} (${name}) input`, true);
  const outputs = indices(table.numbers(2, "i32", "outputs"), count, `operator ${index} (${name}) output`);
  const options = {};
  if (OPTIONS[code]) {
    const [union, fields] = OPTIONS[code];
    const written = table.scalar(3, "u8", 0, "builtin_options_type");
    if (written !== 0 && written !== union) {
      throw fail(`lite file: operator ${index} (${name}): builtin_options_type ${written}, expected ${union}`);
    }
    const optionsTable = written ? table.table(4, "builtin_options") : null;
    fields.forEach(([field, kind, fallback], slot) => {
      if (!optionsTable) options[field] = fallback;
      else if (kind === "i32[]") options[field] = optionsTable.field(slot, 4, field) ? optionsTable.numbers(slot, "i32", field) : null;
      else options[field] = optionsTable.scalar(slot, kind, fallback, field);
    });
  }
  return { index, code, name, inputs, outputs, options };
}

function checkDataflow(tensors, operators, inputs, outputs) {
  const available = new Set([...tensors.filter((t) => t.value).map((t) => t.index), ...inputs]);
  for (const op of operators) {
    for (const t of op.inputs) {
      if (t !== -1 && !available.has(t)) throw fail(`lite file: operator ${op.index} (${op.name}) reads tensor ${t} before any operator writes it`);
    }
    for (const t of op.outputs) {
      if (available.has(t)) {
        throw fail(`lite file: operator ${op.index} (${op.name}) writes tensor ${t}, which is already an input, a constant or another operator's output`);
      }
      available.add(t);
    }
  }
  for (const t of outputs) if (!available.has(t)) throw fail(`lite file: subgraph output tensor ${t} is never computed`);
}

// ---------------------------------------------------------------------------------------------------
// Integer requantization as LiteRT's default CPU path computes it (common.h with TFLITE_SINGLE_ROUNDING,
// XNNPACK's "rndnu"), exact; the twin of lite_runtime/kernels/fixed_point.py.

// QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31); shifts below -31
// flush to zero and above 30 saturate, as TFLite does.
export function quantizeMultiplier(real) {
  if (real === 0) return [0, 0];
  if (!(real > 0 && real < Infinity)) throw fail(`quantization: the rescale factor ${real} is not a positive finite number (a scale is 0 or invalid)`);
  let shift = Math.floor(Math.log2(real)) + 1;
  let q = real / 2 ** shift;
  if (q >= 1) { q /= 2; shift++; }
  if (q < 0.5) { q *= 2; shift--; }
  let fixed = Math.round(q * 2 ** 31);
  if (fixed === 2 ** 31) { fixed /= 2; shift++; }
  if (shift < -31) return [0, 0];
  if (shift > 30) return [2 ** 31 - 1, 30];
  return [fixed, shift];
}

// MultiplyByQuantizedMultiplier, rounded once: (x * multiplier + 2^(s - 1)) >> s with s = 31 - shift,
// to nearest with ties upward, for integer x and |multiplier| < 2^31. A product below 2^53 is exact in
// a double (nearly always), and so is its scaling by 2^-s; a larger one takes `multiplyLarge`.
export function multiplyByQuantizedMultiplier(x, multiplier, shift) {
  const product = x * multiplier;
  if (product > -9007199254740992 && product < 9007199254740992) {
    const scaled = product * TWO_TO_MINUS[31 - shift], low = Math.floor(scaled);
    return scaled - low >= 0.5 ? low + 1 : low;
  }
  return multiplyLarge(x, multiplier, 31 - shift);
}

const TWO_TO_MINUS = Float64Array.from({ length: 64 }, (_, k) => 2 ** -k);

// x * multiplier split at bit 16 of the multiplier, high * 2^16 + rest with 0 <= rest < 2^16 and
// |high| < 2^47, so that every step is exact.
function multiplyLarge(x, multiplier, bits) {
  const low = x * (multiplier & 0xffff), lowQuotient = Math.floor(low / 65536);
  const high = x * (multiplier >> 16) + lowQuotient, rest = low - lowQuotient * 65536;
  if (bits < 16) return high * 2 ** (16 - bits) + Math.floor((rest + 2 ** (bits - 1)) / 2 ** bits);
  const carry = bits === 16 ? (rest >= 32768 ? 1 : 0) : 2 ** (bits - 17); // floor((rest + 2^(bits-1)) / 2^16)
  return Math.floor((high + carry) / 2 ** (bits - 16));
}

// gemmlowp's MultiplyByQuantizedMultiplier, rounded twice (a rounding doubling high multiply, then a
// rounding shift): TFLite's own kernels as LiteRT builds them, where XNNPACK does not take the operator
// (lite_runtime's multiply_by_quantized_multiplier_twice_rounded).
export function multiplyTwiceRounded(x, multiplier, shift) {
  const left = shift > 0 ? shift : 0;
  return roundingDivideByPOT(roundingHighMultiply(Math.imul(x, 2 ** left), multiplier), left ? 0 : -shift);
}

// SaturatingRoundingDoublingHighMul: the high 32 bits of 2ab, to nearest, ties away from zero. Products
// of 2^53 and over are split into 16-bit halves so that every step stays exact.
function roundingHighMultiply(a, b) {
  const product = a * b;
  if (product > -9007199254740992 && product < 9007199254740992) {
    return ((product + (product >= 0 ? 0x40000000 : 1 - 0x40000000)) / 2147483648) | 0; // truncates, like C++
  }
  if (a === -2147483648 && b === -2147483648) return 2147483647;
  const high = (a >> 16) * b, highQuotient = Math.floor(high / 32768);
  const nudge = (a < 0) === (b < 0) ? 0x40000000 : 1 - 0x40000000;
  const rest = (high - highQuotient * 32768) * 65536 + (a & 0xffff) * b + nudge, restQuotient = Math.floor(rest / 2147483648);
  const quotient = highQuotient + restQuotient; // floor((ab + nudge) / 2^31)
  return quotient < 0 && rest !== restQuotient * 2147483648 ? quotient + 1 : quotient; // C++ truncates
}

// RoundingDivideByPOT: x / 2^exponent to nearest, ties away from zero.
function roundingDivideByPOT(x, exponent) {
  if (exponent > 31) return exponent === 32 && x === -2147483648 ? -1 : 0; // |x| / 2^32 <= 1/2
  const mask = exponent === 0 ? 0 : 0xffffffff >>> (32 - exponent);
  return (x >> exponent) + ((x & mask) >>> 0 > (mask >>> 1) + (x < 0 ? 1 : 0) ? 1 : 0);
}

// std::round: halves away from zero; lrintf: halves to even.
const roundAway = (v) => (v < 0 ? -Math.round(-v) : Math.round(v));
const roundHalfEven = (v) => { const r = Math.round(v); return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r; };
const f32 = Math.fround;

// ---------------------------------------------------------------------------------------------------
// Kernels. `prepare(node)` checks and computes everything once and returns
// { outputs: [[shape, dtype], ...], run(inputs, outputs) } where `run` only does arithmetic on flat
// typed arrays. Shapes are plain arrays; `node.input(i)` is { shape, dtype, value, scales, zeroPoints }.

class Node {
  constructor(op, inputs, outputTensors, scratch, heap) {
    this.op = op;
    this.inputs = inputs;
    this.outputTensors = outputTensors;
    this.options = op.options;
    this.scratch = scratch;
    this.heap = heap; // WebAssembly memory for the SIMD inner product, or null
  }

  fail(message) {
    return fail(`operator ${this.op.index} (${this.op.name}): ${message}`);
  }

  check(condition, message) {
    if (!condition) throw this.fail(message);
  }

  arity(low, high = low, outputs = 1) {
    this.check(this.inputs.length >= low && this.inputs.length <= high, `takes ${low}..${high} inputs, got ${this.inputs.length}`);
    this.check(this.inputs.slice(0, low).every(Boolean), `its first ${low} inputs are required`);
    this.check(this.outputTensors.length === outputs, `has ${this.outputTensors.length} outputs, expected ${outputs}`);
  }

  input(i) {
    return this.inputs[i] || null;
  }

  typed(i, ...dtypes) {
    const t = this.inputs[i];
    this.check(dtypes.includes(t.dtype), `input ${i} is ${t.dtype}, expected ${dtypes.join(" or ")}`);
    return t;
  }

  constant(i, what) {
    const t = this.input(i);
    this.check(t && t.value, `${what} (input ${i}) must be a constant`);
    return Array.from(t.value, Number);
  }

  output(k = 0) {
    return this.outputTensors[k];
  }

  axis(axis, rank) {
    this.check(axis >= -rank && axis < rank, `axis ${axis} out of range for rank ${rank}`);
    return axis < 0 ? axis + rank : axis;
  }
}

// Quantization of a tensor: scale and zero point (the first, for per-tensor use).
const scaleOf = (t) => (t.scales.length ? t.scales[0] : 0);
const zeroOf = (t) => (t.zeroPoints.length ? t.zeroPoints[0] : 0);

function floatRange(node, code) {
  const ranges = { 0: [-Infinity, Infinity], 1: [0, Infinity], 2: [-1, 1], 3: [0, 6], 4: [-Infinity, Infinity] };
  node.check(code in ranges, `fused activation ${code} is not supported`);
  return ranges[code];
}

// Applies a fused TANH after the kernel (the other fused activations are clamps inside it).
const withTanh = (code, run) => (code !== 4 ? run : (ins, outs) => {
  run(ins, outs);
  const y = outs[0];
  for (let i = 0; i < y.length; i++) y[i] = Math.tanh(y[i]);
});

// CalculateActivationRangeQuantized for an int8 output.
function quantizedRange(node, code, output) {
  const scale = scaleOf(output), zero = zeroOf(output);
  const quantize = (f) => zero + roundAway(f32(f / scale));
  switch (code) {
    case 0: return [-128, 127];
    case 1: return [Math.max(-128, quantize(0)), 127];
    case 2: return [Math.max(-128, quantize(-1)), Math.min(127, quantize(1))];
    case 3: return [Math.max(-128, quantize(0)), Math.min(127, quantize(6))];
  }
  throw node.fail(`fused activation ${code} is not supported for int8`);
}

// Per-output-channel multipliers for int8 FC / CONV / DEPTHWISE: input_scale * filter_scale / output_scale,
// in doubles, except that one filter scale is multiplied by the input's in float32 first
// (GetQuantizedConvolutionMultipler), as lite_runtime's output_requantization does.
function channelMultipliers(node, x, filters, output, channels) {
  node.check(x.scales.length === 1 && output.scales.length === 1, "int8 input and output need one scale each");
  node.check(filters.scales.length === 1 || filters.scales.length === channels,
    `filters have ${filters.scales.length} scales for ${channels} output channels`);
  const multipliers = node.scratch(Int32Array, channels), shifts = node.scratch(Int32Array, channels);
  const perTensor = filters.scales.length === 1;
  for (let c = 0; c < channels; c++) {
    const product = perTensor ? f32(x.scales[0] * filters.scales[0]) : x.scales[0] * filters.scales[c];
    [multipliers[c], shifts[c]] = quantizeMultiplier(product / output.scales[0]);
  }
  return [multipliers, shifts];
}

function biasOf(node, i, channels, dtype) {
  const bias = node.input(i);
  if (bias) node.check(bias.dtype === dtype && product(bias.shape) === channels, `bias ${show(bias.shape)} ${bias.dtype}, expected [${channels}] ${dtype}`);
  return Boolean(bias);
}

// Dynamic range ("hybrid"): the float input quantized per batch row (or image) at run time, as
// tensor_utils' AsymmetricQuantizeFloats (zero point in [-128, 127]) or SymmetricQuantizeFloats (in
// [-127, 127]); writes q - zero point into `target` and [scaling factor, zero point] into `result`.
function quantizeRow(x, start, length, target, result, asymmetric) {
  let low = 0, high = 0;
  for (let i = start; i < start + length; i++) { const v = x[i]; if (v < low) low = v; if (v > high) high = v; }
  if (low === high) { target.fill(0, 0, length); result[0] = 1; result[1] = 0; return; }
  let offset = 0, factor, inverse, qmin = -127;
  if (asymmetric) {
    const scale = (high - low) / 255;
    const fromMin = -128 - low / scale, fromMax = 127 - high / scale;
    const zero = 128 + Math.abs(low / scale) < 127 + Math.abs(high / scale) ? fromMin : fromMax;
    offset = zero <= -128 ? -128 : zero >= 127 ? 127 : roundAway(zero);
    factor = f32(scale);
    inverse = f32(1 / factor);
    qmin = -128;
  } else {
    const extent = Math.max(-low, high);
    factor = f32(extent / 127);
    inverse = f32(127 / extent);
  }
  for (let i = 0; i < length; i++) {
    const q = roundAway(f32(offset + f32(x[start + i] * inverse)));
    target[i] = (q < qmin ? qmin : q > 127 ? 127 : q) - offset;
  }
  result[0] = factor;
  result[1] = offset;
}

function hybridScales(node, filters, channels) {
  node.check(filters.scales.length === 1 || filters.scales.length === channels, `filters have ${filters.scales.length} scales for ${channels} channels`);
  const scales = node.scratch(Float32Array, channels);
  for (let c = 0; c < channels; c++) scales[c] = filters.scales[filters.scales.length === 1 ? 0 : c];
  return scales;
}

// FULLY_CONNECTED and CONV_2D end in one inner product, sum over k of value[k] * W[u][k] for each unit u
// of `rows` rows at a time (an image's output pixels). The weights are transposed once to [depth, units].
// `list(X, start)` lists each input pixel's nonzero values (`channels` per pixel; a fully connected row
// is one pixel) once per run, as pairs (value, offset of its weight row) with each pixel's first pair
// in `starts`, so that blank pixels and ReLU zeros cost nothing. `taps` (built once) gives each row's
// [input pixel, first weight row] pairs, the same count per row; a tap outside the image reads an
// empty pixel (index `pixels`). `sum(rows, Y, at)` then gives [sums, at, perRow]: row r's sums are
// sums[at + r * perRow + u]; or null, having written finished outputs into Y from `at` already. float32
// layers sum in WebAssembly SIMD where there is one (`simdProduct`); the others (and int8 products,
// exact in doubles) in `dotRows`.
function innerProduct(node, weights, units, depth, rows, float, pixels, channels, taps) {
  const bias = node.input(2);
  if (float && node.heap && (!bias || bias.value)) return simdProduct(node, weights, units, depth, rows, bias && bias.value, pixels, channels, taps);
  const transposed = node.scratch(Float32Array, units * depth); // int8 weights are exact in float32
  const ints = node.scratch(Int32Array, 2 * pixels * channels), floats = new Float32Array(ints.buffer), starts = node.scratch(Int32Array, pixels + 2);
  const tapList = taps.map((n, i) => (i % 2 ? n * units : n)), perRow = taps.length / rows;
  const sums = node.scratch(Float64Array, rows * units), result = [sums, 0, units];
  const transpose = (W) => {
    for (let u = 0; u < units; u++) for (let k = 0; k < depth; k++) transposed[k * units + u] = W[u * depth + k];
  };
  if (weights.value) transpose(weights.value);
  return {
    list: (X, start) => listPixels(X, start, pixels, channels, units, floats, ints, 0, starts, 0),
    weightsFrom: weights.value ? () => {} : transpose, // weights computed at run time (rare) are transposed each run
    sum: (count) => {
      for (let r = 0; r < count; r++) dotRows(sums, r * units, units, tapList, r * perRow, (r + 1) * perRow, starts, floats, ints, transposed);
      return result;
    },
  };
}

// The float32 inner product in WebAssembly: the weights [depth, units padded to 32], the bias, the taps
// and the lists live in the model's heap (as byte addresses); `dot` sums 32 units at a time in eight
// f32x4 registers, starting from the bias, and clamps them to the fused activation's range: its sums
// are the layer's outputs (`finished`), written straight into an output in the heap whose units fill
// whole blocks.
function simdProduct(node, weights, units, depth, rows, bias, pixels, channels, taps) {
  const heap = node.heap, blocks = Math.ceil(units / 32), stride = blocks * 32 * 4, [low, high] = floatRange(node, node.options.activation);
  const weightsAt = heap.reserve(depth * stride), listAt = heap.reserve(8 * pixels * channels), startsAt = heap.reserve(4 * pixels + 8);
  const tapsAt = heap.reserve(4 * taps.length), tapBytes = 4 * taps.length / rows, sumsAt = heap.reserve(rows * stride), biasAt = heap.reserve(stride);
  if (bias) heap.f32.set(bias, biasAt / 4);
  const tapWords = new Int32Array(heap.memory.buffer, tapsAt, taps.length);
  for (let i = 0; i < taps.length; i += 2) {
    tapWords[i] = startsAt + 4 * taps[i];
    tapWords[i + 1] = taps[i + 1] * stride;
  }
  // transposed in WebAssembly (a JS loop over every weight is slow until the engine has optimized it):
  // constant weights once, through spare memory; weights computed at run time each run, through their own
  const sourceAt = weights.value ? -1 : heap.reserve(4 * units * depth);
  const transpose = (W) => {
    const at = sourceAt < 0 ? heap.spare(4 * W.length) : sourceAt;
    heap.f32.set(W, at / 4);
    heap.transpose(at, weightsAt, units, depth, stride);
    if (sourceAt < 0) heap.f32.fill(0, at / 4, at / 4 + W.length);
  };
  if (weights.value) transpose(weights.value);
  let buffer = null, floats, ints, result;
  const views = () => { // made again if the heap grew after this layer was prepared
    if (heap.memory.buffer !== buffer) {
      buffer = heap.memory.buffer;
      [floats, ints] = [new Float32Array(buffer), new Int32Array(buffer)];
      result = [floats, sumsAt / 4, stride / 4];
    }
  };
  return {
    finished: true,
    list: (X, start) => { views(); listPixels(X, start, pixels, channels, stride, floats, ints, listAt / 4, ints, startsAt / 4, 4); },
    weightsFrom: weights.value ? () => {} : transpose,
    sum: (count, Y, at) => {
      views();
      const direct = Y.buffer === buffer && stride === 4 * units;
      heap.dot(count, tapsAt, tapBytes, weightsAt, blocks, direct ? Y.byteOffset + 4 * at : sumsAt, biasAt, low, high);
      return direct ? null : result;
    },
  };
}

// The `finish` of a layer whose sums are its outputs already.
const copyRow = (units) => (sums, from, _bias, Y, at) => { for (let u = 0; u < units; u++) Y[at + u] = sums[from + u]; };

// Lists the nonzero values of `pixels` pixels of `channels` values, X[start..], as pairs from word `at` of
// `floats` (the value) and `ints` (its weight row times `stride`), two views of one buffer; pixel p's first
// pair goes in starts[first + p], pixel `pixels` (the empty one) and the end after them; `scale` 4 gives
// byte addresses.
function listPixels(X, start, pixels, channels, stride, floats, ints, at, starts, first, scale = 1) {
  for (let p = 0; p < pixels; p++) {
    starts[first + p] = at * scale;
    for (let c = 0; c < channels; c++) { // without a branch: zeros are overwritten by the next value
      const v = X[start++];
      floats[at] = v;
      ints[at + 1] = c * stride;
      at += v !== 0 ? 2 : 0;
    }
  }
  starts[first + pixels] = starts[first + pixels + 1] = at * scale;
}

// sums[at + u] for u < units from the listed values of taps first..last (pairs [pixel, weight offset]).
function dotRows(sums, at, units, taps, first, last, starts, floats, ints, W) {
  let u = 0;
  for (; u + 8 <= units; u += 8) {
    let a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    for (let t = first; t < last; t += 2) {
      for (let i = starts[taps[t]], end = starts[taps[t] + 1], o = taps[t + 1] + u; i < end; i += 2) {
        const v = floats[i], w = ints[i + 1] + o;
        a0 += v * W[w]; a1 += v * W[w + 1]; a2 += v * W[w + 2]; a3 += v * W[w + 3];
        a4 += v * W[w + 4]; a5 += v * W[w + 5]; a6 += v * W[w + 6]; a7 += v * W[w + 7];
      }
    }
    sums[at + u] = a0; sums[at + u + 1] = a1; sums[at + u + 2] = a2; sums[at + u + 3] = a3;
    sums[at + u + 4] = a4; sums[at + u + 5] = a5; sums[at + u + 6] = a6; sums[at + u + 7] = a7;
  }
  for (; u < units; u++) {
    let a = 0;
    for (let t = first; t < last; t += 2) {
      for (let i = starts[taps[t]], end = starts[taps[t] + 1], o = taps[t + 1] + u; i < end; i += 2) a += floats[i] * W[ints[i + 1] + o];
    }
    sums[at + u] = a;
  }
}

// How a layer with weights finishes: `finish(sums, from, B, Y, at)` turns the sums at sums[from..] into
// outputs Y[at..]; `source(X, start, length)` gives the array holding the values to sum: the input X
// itself (read from `start`), or scratch holding their quantized form (read from 0). float32: plain;
// hybrid: the float input quantized per batch row (or image) at run time, int8 weights with float
// scales; int8: (x - zero point) times int8 weights, requantized.
function weightedLayer(node, x, weights, channels, perBatch) {
  const mode = x.dtype === "int8" ? "int8" : node.typed(1, "float32", "int8").dtype === "int8" ? "hybrid" : "float32";
  if (mode === "int8") node.typed(1, "int8");
  else node.typed(0, "float32");
  const hasBias = biasOf(node, 2, channels, mode === "int8" ? "int32" : "float32");
  const code = node.options.activation, output = node.output();
  const [low, high] = mode === "int8" ? quantizedRange(node, code, output) : floatRange(node, code);
  const clamp = (v) => (v < low ? low : v > high ? high : v);
  if (mode === "float32") {
    return { mode, source: (X) => X,
      finish: (acc, from, B, Y, at) => { for (let c = 0; c < channels; c++) Y[at + c] = clamp(acc[from + c] + (hasBias ? B[c] : 0)); } };
  }
  const quantized = node.scratch(Int32Array, perBatch);
  if (mode === "int8") {
    const [multipliers, shifts] = channelMultipliers(node, x, weights, output, channels);
    const inputZero = zeroOf(x), outputZero = zeroOf(output);
    return {
      mode,
      source: (X, start, length) => { for (let i = 0; i < length; i++) quantized[i] = X[start + i] - inputZero; return quantized; },
      finish: (acc, from, B, Y, at) => {
        for (let c = 0; c < channels; c++) Y[at + c] = clamp(multiplyByQuantizedMultiplier((acc[from + c] + (hasBias ? B[c] : 0)) | 0, multipliers[c], shifts[c]) + outputZero);
      },
    };
  }
  const scales = hybridScales(node, weights, channels), row = new Float64Array(2);
  // FULLY_CONNECTED quantizes its input asymmetrically when its options say so; convolutions when
  // their filters are per channel (conv.cc / depthwise_conv.cc EvalHybridPerChannel)
  const asymmetric = node.op.code === 9 ? node.options.asymmetricQuantizeInputs : weights.scales.length > 1;
  // HybridConvPerChannel scales float(acc) by the channel scale, then the factor; FULLY_CONNECTED
  // (MatrixBatchVectorMultiplyAccumulate) and DepthwiseConvHybridPerChannel by their product
  const scaled = node.op.code === 3 ? (v, c) => f32(f32(v * scales[c]) * row[0]) : (v, c) => f32(v * f32(row[0] * scales[c]));
  return {
    mode,
    source: (X, start, length) => { quantizeRow(X, start, length, quantized, row, asymmetric); return quantized; },
    finish: (acc, from, B, Y, at) => {
      for (let c = 0; c < channels; c++) {
        const v = scaled(f32(acc[from + c]), c);
        Y[at + c] = clamp(hasBias ? f32(v + B[c]) : v);
      }
    },
  };
}

function fullyConnected(node) {
  node.arity(2, 3);
  const x = node.input(0), weights = node.input(1), o = node.options;
  node.check(o.weightsFormat === 0, "only the DEFAULT weights format is supported");
  node.check(weights.shape.length === 2, `weights must be [out, in], got ${show(weights.shape)}`);
  const [units, depth] = weights.shape, size = product(x.shape);
  node.check(depth > 0 && x.shape.length && size % depth === 0, `input ${show(x.shape)} does not divide into rows of ${depth}`);
  const rows = size / depth;
  let shape = [rows, units];
  if (o.keepNumDims) {
    node.check(x.shape[x.shape.length - 1] === depth, `input last dim ${x.shape[x.shape.length - 1]}, expected ${depth}`);
    shape = [...x.shape.slice(0, -1), units];
  }
  const layer = weightedLayer(node, x, weights, units, depth), { source } = layer;
  // a row at a time (hybrid rows have their own scale), as one pixel of `depth` channels
  const dot = innerProduct(node, weights, units, depth, 1, layer.mode === "float32", 1, depth, new Int32Array(2));
  const finish = dot.finished ? copyRow(units) : layer.finish;
  const run = (ins, outs) => {
    dot.weightsFrom(ins[1]);
    for (let r = 0; r < rows; r++) {
      const X = source(ins[0], r * depth, depth);
      dot.list(X, X === ins[0] ? r * depth : 0);
      const result = dot.sum(1, outs[0], r * units);
      if (result) finish(result[0], result[1], ins[2], outs[0], r * units);
    }
  };
  return { outputs: [[shape, layer.mode === "int8" ? "int8" : "float32"]], run: withTanh(o.activation, run) };
}

// BATCH_MATMUL, float32; or hybrid (dynamic range) with a constant per-tensor int8 right operand: each
// row of the left operand (adj_x applied) quantized at run time as FULLY_CONNECTED does, the integer
// products scaled back by row factor * filter scale (batch_matmul.cc EvalHybrid).
function batchMatmul(node) {
  node.arity(2);
  const a = node.typed(0, "float32"), b = node.typed(1, "float32", "int8"), hybrid = b.dtype === "int8";
  node.check(a.shape.length >= 2 && b.shape.length >= 2, `operands ${show(a.shape)}, ${show(b.shape)} need rank >= 2`);
  node.check(!hybrid || (b.value && b.scales.length === 1), "an int8 right operand must be a constant with one scale");
  const { adjX, adjY, asymmetricQuantizeInputs } = node.options;
  const [ra, ca] = a.shape.slice(-2), [rb, cb] = b.shape.slice(-2);
  const [rows, inner] = adjX ? [ca, ra] : [ra, ca], [innerB, cols] = adjY ? [cb, rb] : [rb, cb];
  node.check(inner === innerB, `inner dims differ: ${show(a.shape)} x ${show(b.shape)}`);
  const batch = broadcastShape(node, a.shape.slice(0, -2), b.shape.slice(0, -2));
  const aIndex = broadcastIndex(node, a.shape.slice(0, -2), batch), bIndex = broadcastIndex(node, b.shape.slice(0, -2), batch);
  const [aRow, aCol] = adjX ? [1, ca] : [ca, 1], [bRow, bCol] = adjY ? [1, cb] : [cb, 1];
  const row = node.scratch(Float32Array, inner), quantized = node.scratch(Int32Array, inner), factor = new Float64Array(2);
  const filterScale = hybrid ? scaleOf(b) : 1;
  const run = (ins, outs) => {
    const A = ins[0], B = ins[1], Y = outs[0];
    for (let n = 0; n < aIndex.length; n++) {
      const ao = aIndex[n] * ra * ca, bo = bIndex[n] * rb * cb, yo = n * rows * cols;
      for (let i = 0; i < rows; i++) {
        for (let k = 0; k < inner; k++) row[k] = A[ao + i * aRow + k * aCol];
        let values = row, scale = 1;
        if (hybrid) {
          quantizeRow(row, 0, inner, quantized, factor, asymmetricQuantizeInputs);
          values = quantized;
          scale = f32(factor[0] * filterScale);
        }
        for (let j = 0; j < cols; j++) {
          let s = 0;
          for (let k = 0; k < inner; k++) s += values[k] * B[bo + k * bRow + j * bCol];
          Y[yo + i * cols + j] = hybrid ? f32(s) * scale : s;
        }
      }
    }
  };
  return { outputs: [[[...batch, rows, cols], "float32"]], run };
}

// Output size and padding before of one spatial dimension, as TFLite computes them.
function windowOf(node, size, kernel, stride, dilation, padding) {
  node.check(stride >= 1 && dilation >= 1 && kernel >= 1, `stride ${stride}, dilation ${dilation}, kernel ${kernel} must be >= 1`);
  const effective = (kernel - 1) * dilation + 1;
  if (padding === 0) {
    const out = Math.ceil(size / stride);
    return [out, Math.floor(Math.max((out - 1) * stride + effective - size, 0) / 2)];
  }
  node.check(padding === 1, `padding ${padding} is neither SAME (0) nor VALID (1)`);
  const out = Math.ceil((size - effective + 1) / stride);
  node.check(out >= 1, `window ${effective} does not fit input size ${size} with VALID padding`);
  return [out, 0];
}

// The geometry every windowed kernel shares: sizes, strides, dilations and the padding before.
function geometry(node, x, kernelH, kernelW, dilationH = 1, dilationW = 1) {
  node.check(x.shape.length === 4, `input must be NHWC, got ${show(x.shape)}`);
  const [batch, height, width, channels] = x.shape, o = node.options;
  const [outH, top] = windowOf(node, height, kernelH, o.strideH, dilationH, o.padding);
  const [outW, left] = windowOf(node, width, kernelW, o.strideW, dilationW, o.padding);
  return { batch, height, width, channels, outH, outW, top, left, kernelH, kernelW, dilationH, dilationW, strideH: o.strideH, strideW: o.strideW };
}

// CONV_2D: each image's nonzero values are listed once, pixel by pixel; an output pixel's taps name the
// input pixel under each [ky, kx] (the empty pixel outside the image) and that tap's rows of the filters,
// transposed to [kh * kw * cin, out].
function conv2d(node) {
  node.arity(2, 3);
  const x = node.input(0), filters = node.input(1), o = node.options;
  node.check(filters.shape.length === 4, `filters must be [out, kh, kw, in], got ${show(filters.shape)}`);
  const [channelsOut, kernelH, kernelW, channelsIn] = filters.shape;
  node.check(x.shape.length === 4 && x.shape[3] === channelsIn && channelsIn > 0, `input ${show(x.shape)} does not have ${channelsIn} channels`);
  const g = geometry(node, x, kernelH, kernelW, o.dilationH, o.dilationW);
  const depth = kernelH * kernelW * channelsIn, inputPixels = g.height * g.width, imageSize = inputPixels * channelsIn;
  // hybrid convolutions quantize each batch image as a whole; float and int8 ones one pixel at a time
  const layer = weightedLayer(node, x, filters, channelsOut, imageSize), { source } = layer;
  const pixels = g.outH * g.outW, taps = node.scratch(Int32Array, 2 * pixels * kernelH * kernelW);
  const { height, width, outW, strideH, strideW, top, left, dilationH, dilationW } = g; // locals: this runs once, interpreted, where a property read costs
  for (let oy = 0, t = 0; oy < g.outH; oy++) {
    for (let ox = 0; ox < outW; ox++) {
      for (let ky = 0; ky < kernelH; ky++) {
        const iy = oy * strideH - top + ky * dilationH;
        for (let kx = 0; kx < kernelW; kx++, t += 2) {
          const ix = ox * strideW - left + kx * dilationW;
          taps[t] = iy < 0 || iy >= height || ix < 0 || ix >= width ? inputPixels : iy * width + ix;
          taps[t + 1] = (ky * kernelW + kx) * channelsIn;
        }
      }
    }
  }
  const dot = innerProduct(node, filters, channelsOut, depth, pixels, layer.mode === "float32", inputPixels, channelsIn, taps);
  const finish = dot.finished ? copyRow(channelsOut) : layer.finish;
  const run = (ins, outs) => {
    dot.weightsFrom(ins[1]);
    for (let b = 0; b < g.batch; b++) {
      const image = source(ins[0], b * imageSize, imageSize);
      dot.list(image, image === ins[0] ? b * imageSize : 0);
      const image0 = b * pixels * channelsOut, result = dot.sum(pixels, outs[0], image0);
      if (result) for (let pixel = 0; pixel < pixels; pixel++) finish(result[0], result[1] + pixel * result[2], ins[2], outs[0], image0 + pixel * channelsOut);
    }
  };
  return { outputs: [[[g.batch, g.outH, g.outW, channelsOut], layer.mode === "int8" ? "int8" : "float32"]], run: withTanh(o.activation, run) };
}

// DEPTHWISE_CONV_2D: filters [1, kh, kw, cin * multiplier]; output channel c reads input channel c / multiplier.
function depthwiseConv2d(node) {
  node.arity(2, 3);
  const x = node.input(0), filters = node.input(1), o = node.options;
  node.check(filters.shape.length === 4 && filters.shape[0] === 1, `filters must be [1, kh, kw, out], got ${show(filters.shape)}`);
  const [, kernelH, kernelW, channelsOut] = filters.shape;
  node.check(x.shape.length === 4 && x.shape[3] > 0 && channelsOut % x.shape[3] === 0,
    `input ${show(x.shape)} channels do not divide the ${channelsOut} output channels`);
  const channelsIn = x.shape[3], multiplier = channelsOut / channelsIn;
  node.check([0, multiplier].includes(o.depthMultiplier), `depth_multiplier ${o.depthMultiplier}, filters imply ${multiplier}`);
  const g = geometry(node, x, kernelH, kernelW, o.dilationH, o.dilationW);
  const imageSize = g.height * g.width * channelsIn;
  const layer = weightedLayer(node, x, filters, channelsOut, imageSize), { source, finish } = layer;
  const acc = node.scratch(Float64Array, channelsOut);
  const inputChannel = node.scratch(Int32Array, channelsOut).map((_, c) => Math.floor(c / multiplier));
  const run = (ins, outs) => {
    const W = ins[1];
    let at = 0;
    for (let b = 0; b < g.batch; b++) {
      const image = source(ins[0], b * imageSize, imageSize), base = image === ins[0] ? b * imageSize : 0;
      for (let oy = 0; oy < g.outH; oy++) {
        for (let ox = 0; ox < g.outW; ox++, at += channelsOut) {
          acc.fill(0);
          for (let ky = 0; ky < kernelH; ky++) {
            const iy = oy * g.strideH - g.top + ky * g.dilationH;
            if (iy < 0 || iy >= g.height) continue;
            for (let kx = 0; kx < kernelW; kx++) {
              const ix = ox * g.strideW - g.left + kx * g.dilationW;
              if (ix < 0 || ix >= g.width) continue;
              const from = base + (iy * g.width + ix) * channelsIn, w = (ky * kernelW + kx) * channelsOut;
              for (let c = 0; c < channelsOut; c++) acc[c] += image[from + inputChannel[c]] * W[w + c];
            }
          }
          finish(acc, 0, ins[2], outs[0], at);
        }
      }
    }
  };
  return { outputs: [[[g.batch, g.outH, g.outW, channelsOut], layer.mode === "int8" ? "int8" : "float32"]], run: withTanh(o.activation, run) };
}

// MAX_POOL_2D / AVERAGE_POOL_2D, float32 or int8 (same scale in and out); the average divides by
// the count of in-bounds pixels, rounded half away from zero for int8.
function pool(isMax) {
  return (node) => {
    node.arity(1);
    const x = node.typed(0, "float32", "int8"), o = node.options;
    node.check(o.filterH * o.filterW > 0 && o.filterH * o.filterW <= 4096, `pool window ${o.filterH}x${o.filterW} is empty or over 4096 pixels`);
    const g = geometry(node, x, o.filterH, o.filterW);
    const int8 = x.dtype === "int8";
    const [low, high] = int8 ? quantizedRange(node, o.activation, node.output()) : floatRange(node, o.activation);
    const { batch, height, width, channels, outH, outW, strideH, strideW, top, left } = g, window = o.filterH * o.filterW;
    if (isMax && !int8 && !x.value && node.heap && channels % 4 === 0 && window <= 64) { // f32x4 over each window, in WebAssembly
      const heap = node.heap, entries = batch * outH * outW * window, tableAt = heap.reserve(4 * entries), table = new Int32Array(heap.memory.buffer, tableAt, entries);
      for (let b = 0, t = 0; b < batch; b++) {
        for (let oy = 0; oy < outH; oy++) {
          for (let ox = 0; ox < outW; ox++, t += window) {
            const y0 = Math.max(0, oy * strideH - top), x0 = Math.max(0, ox * strideW - left);
            for (let ky = 0; ky < o.filterH; ky++) {
              for (let kx = 0; kx < o.filterW; kx++) { // a pixel outside the image repeats the window's first
                const iy = oy * strideH - top + ky, ix = ox * strideW - left + kx, inside = iy >= 0 && iy < height && ix >= 0 && ix < width;
                table[t + ky * o.filterW + kx] = 4 * channels * ((b * height + (inside ? iy : y0)) * width + (inside ? ix : x0));
              }
            }
          }
        }
      }
      const run = (ins, outs) => heap.max(tableAt, tableAt + 4 * entries, 4 * window, ins[0].byteOffset, outs[0].byteOffset, 4 * channels, low, high);
      return { outputs: [[[g.batch, g.outH, g.outW, channels], x.dtype]], run: withTanh(o.activation, run) };
    }
    const sums = node.scratch(Float64Array, channels);
    const average = int8 // the reference integer kernel rounds half away from zero
      ? (sum, count) => (sum > 0 ? Math.trunc((sum + (count >> 1)) / count) : Math.trunc((sum - (count >> 1)) / count))
      : (sum, count) => f32(sum) / count;
    const run = (ins, outs) => {
      const X = ins[0], Y = outs[0];
      let at = 0;
      for (let b = 0; b < batch; b++) {
        for (let oy = 0; oy < outH; oy++) {
          const y0 = Math.max(0, oy * strideH - top), y1 = Math.min(height, oy * strideH - top + o.filterH);
          for (let ox = 0; ox < outW; ox++, at += channels) {
            const x0 = Math.max(0, ox * strideW - left), x1 = Math.min(width, ox * strideW - left + o.filterW);
            const first = ((b * height + y0) * width + x0) * channels; // (a window holds at least one pixel)
            if (isMax) for (let c = 0; c < channels; c++) Y[at + c] = X[first + c]; // the maximum is exact in Y
            else sums.fill(0);
            for (let iy = y0; iy < y1; iy++) {
              for (let ix = x0; ix < x1; ix++) {
                const from = ((b * height + iy) * width + ix) * channels;
                if (isMax) for (let c = 0; c < channels; c++) Y[at + c] = Math.max(Y[at + c], X[from + c]);
                else for (let c = 0; c < channels; c++) sums[c] += X[from + c];
              }
            }
            const count = (y1 - y0) * (x1 - x0);
            for (let c = 0; c < channels; c++) {
              const v = isMax ? Y[at + c] : average(sums[c], count);
              Y[at + c] = v < low ? low : v > high ? high : v;
            }
          }
        }
      }
    };
    return { outputs: [[[g.batch, g.outH, g.outW, channels], x.dtype]], run: int8 ? run : withTanh(o.activation, run) };
  };
}

// ---------------------------------------------------------------------------------------------------
// Elementwise operators with NumPy broadcasting.

function broadcastShape(node, a, b) {
  const rank = Math.max(a.length, b.length), shape = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1, db = b[b.length - rank + i] ?? 1;
    node.check(da === db || da === 1 || db === 1, `shapes ${show(a)} and ${show(b)} do not broadcast`);
    shape.push(da === 1 ? db : da);
  }
  return shape;
}

// For each element of `target`, the index of the element of `shape` that broadcasts to it.
function broadcastIndex(node, shape, target) {
  const index = node.scratch(Int32Array, product(target)), rank = target.length;
  const padded = [...Array(rank - shape.length).fill(1), ...shape];
  const strides = new Array(rank);
  for (let i = rank - 1, s = 1; i >= 0; i--) { strides[i] = padded[i] === 1 ? 0 : s; s *= padded[i]; }
  const position = new Array(rank).fill(0);
  for (let n = 0, at = 0; n < index.length; n++) {
    index[n] = at;
    for (let i = rank - 1; i >= 0; i--) {
      position[i]++;
      at += strides[i];
      if (position[i] < target[i]) break;
      at -= strides[i] * position[i];
      position[i] = 0;
    }
  }
  return index;
}

// An elementwise operator over broadcast inputs: `compute(a, b, c)` gives one output element, clamped.
function broadcasting(node, tensors, dtype, compute, low = -Infinity, high = Infinity) {
  const shape = tensors.reduce((s, t) => broadcastShape(node, s, t.shape), []), size = product(shape);
  const [ma, mb, mc] = tensors.map((t) => (product(t.shape) === size ? null : broadcastIndex(node, t.shape, shape)));
  const run = (ins, outs) => {
    const [A, B, C] = ins, Y = outs[0];
    for (let i = 0; i < Y.length; i++) {
      const v = compute(A[ma ? ma[i] : i], B && B[mb ? mb[i] : i], C && C[mc ? mc[i] : i]);
      Y[i] = v < low ? low : v > high ? high : v;
    }
  };
  return { outputs: [[shape, dtype]], run };
}

// Arithmetic on float32 or int32 (ADD, SUB, MUL, DIV with a fused activation; MAXIMUM, MINIMUM, POW, ...).
function binary(compute, fused = true) {
  return (node) => {
    node.arity(2);
    const a = node.input(0), b = node.input(1);
    if (a.dtype === "int8" && binaryInt8[node.op.code]) return binaryInt8[node.op.code](node, a, b);
    node.check(a.dtype === b.dtype && ["float32", "int32"].includes(a.dtype), `operand types ${a.dtype}, ${b.dtype} (expected equal float32 or int32)`);
    const code = fused ? node.options.activation : 0;
    node.check(code === 0 || a.dtype === "float32", "a fused activation needs float32 operands");
    const integer = a.dtype === "int32";
    const prepared = broadcasting(node, [a, b], a.dtype, (x, y) => compute(x, y, integer), ...floatRange(node, code));
    return { ...prepared, run: withTanh(code, prepared.run) };
  };
}

// Comparisons (bool output) and logical operators (bool operands).
function comparison(compute, operands = ["float32", "int32", "int64", "int8", "bool"]) {
  return (node) => {
    node.arity(2);
    const a = node.input(0), b = node.input(1);
    node.check(a.dtype === b.dtype && operands.includes(a.dtype), `operand types ${a.dtype}, ${b.dtype} (expected equal ${operands.join(" or ")})`);
    node.check(a.dtype !== "int8" || (scaleOf(a) === scaleOf(b) && zeroOf(a) === zeroOf(b)), "int8 operands must share scale and zero point");
    return broadcasting(node, [a, b], "bool", (x, y) => (compute(x, y) ? 1 : 0));
  };
}

function selectV2(node) {
  node.arity(3);
  const [condition, a, b] = node.inputs;
  node.typed(0, "bool");
  node.check(a.dtype === b.dtype, `operand types ${a.dtype}, ${b.dtype} differ`);
  return broadcasting(node, [condition, a, b], a.dtype, (c, x, y) => (c ? x : y));
}

// TFLite's FloorMod: the truncated remainder moved to the divisor's sign.
function floorMod(a, b, integer) {
  const r = integer ? a % b | 0 : a % b;
  return r !== 0 && b < 0 !== r < 0 ? r + b : r;
}

// int8 ADD / SUB (add.cc, sub.cc): both operands shifted left by 20 bits and rescaled to twice the larger
// input scale, summed, and the sum rescaled to the output; SUB negates the second multiplier.
function addInt8(sign) {
  return (node, a, b) => addOrMulInt8(node, a, b, (qa, qb, p) => {
    const sa = multiplyByQuantizedMultiplier(qa * (1 << 20), p[0], p[1]);
    const sb = multiplyByQuantizedMultiplier(qb * (1 << 20), p[2], p[3]);
    return multiplyByQuantizedMultiplier(sa + sb, p[4], p[5]);
  }, (sa, sb, so) => {
    const twiceMax = f32(2 * Math.max(sa, sb)), [mb, shiftB] = quantizeMultiplier(sb / twiceMax);
    return [...quantizeMultiplier(sa / twiceMax), sign * mb, shiftB, ...quantizeMultiplier(twiceMax / f32(2 ** 20 * so))];
  });
}

function addOrMulInt8(node, a, b, combine, multipliers) {
  node.check(b.dtype === "int8", `operand types ${a.dtype}, ${b.dtype} (expected both int8)`);
  const output = node.output(), shape = broadcastShape(node, a.shape, b.shape);
  const p = multipliers(scaleOf(a), scaleOf(b), scaleOf(output));
  const [low, high] = quantizedRange(node, node.options.activation, output);
  const za = zeroOf(a), zb = zeroOf(b), zo = zeroOf(output);
  const ai = broadcastIndex(node, a.shape, shape), bi = broadcastIndex(node, b.shape, shape);
  const run = (ins, outs) => {
    const A = ins[0], B = ins[1], Y = outs[0];
    for (let i = 0; i < Y.length; i++) {
      const v = combine(A[ai[i]] - za, B[bi[i]] - zb, p) + zo;
      Y[i] = v < low ? low : v > high ? high : v;
    }
  };
  return { outputs: [[shape, "int8"]], run };
}

const binaryInt8 = {
  0: addInt8(1),
  41: addInt8(-1),
  18: (node, a, b) => addOrMulInt8(node, a, b, (qa, qb, p) => multiplyByQuantizedMultiplier(qa * qb, p[0], p[1]),
    (sa, sb, so) => quantizeMultiplier(f32(sa * sb) / so)),
};

// One-input float32 operators; `int8(node, x)` prepares the int8 kernel where there is one.
function unary(compute, int8 = null) {
  return (node) => {
    node.arity(1);
    const x = node.typed(0, "float32", ...(int8 ? ["int8"] : []));
    const f = compute(node.options);
    if (x.dtype === "int8") return { outputs: [[x.shape, "int8"]], run: int8(node, x) };
    return {
      outputs: [[x.shape, "float32"]],
      run: (ins, outs) => { const X = ins[0], Y = outs[0]; for (let i = 0; i < Y.length; i++) Y[i] = f(X[i]); },
    };
  };
}

// PopulateLookupTable: each of the 256 int8 inputs mapped through `transform` in float32.
const lookupTable = (transform) => (node, x) => {
  const output = node.output(), table = new Int8Array(256);
  const inScale = scaleOf(x), inZero = zeroOf(x), outZero = zeroOf(output), inverse = f32(1 / scaleOf(output));
  for (let q = -128; q < 128; q++) {
    const value = transform(f32(inScale * (q - inZero)));
    const r = roundAway(f32(f32(value) * inverse)) + outZero;
    table[q + 128] = r < -128 ? -128 : r > 127 ? 127 : r;
  }
  return (ins, outs) => { const X = ins[0], Y = outs[0]; for (let i = 0; i < Y.length; i++) Y[i] = table[X[i] + 128]; };
};

// int8 -> int8 with another scale: (x - zero point) times `real`, + the output zero point, clamped to [low, high].
function rescale(node, x, real, low = -128, high = 127) {
  const inZero = zeroOf(x), outZero = zeroOf(node.output()), [multiplier, shift] = quantizeMultiplier(real);
  return (ins, outs) => {
    const X = ins[0], Y = outs[0];
    for (let i = 0; i < Y.length; i++) {
      const v = multiplyByQuantizedMultiplier(X[i] - inZero, multiplier, shift) + outZero;
      Y[i] = v < low ? low : v > high ? high : v;
    }
  };
}

// QuantizedReluX: rescale to the output's scale (a float32 quotient, as ReluPrepare computes it), then
// clamp to the activation's quantized range.
const quantizedRelu = (code) => (node, x) => rescale(node, x, f32(scaleOf(x) / scaleOf(node.output())), ...quantizedRange(node, code, node.output()));

// int8 LEAKY_RELU as LiteRT's default interpreter runs it (lite_runtime's prepare_leaky_relu): where
// XNNPACK takes it (scale ratios within its limits), (x - zero point) times the ratio, or alpha times it
// below zero, as 8-bit fixed point (lrintf(256 * ratio)), plus the output zero point, rounded half up;
// elsewhere TFLite's QuantizeLeakyRelu, with 31-bit multipliers rounded twice. Both as a table.
const quantizedLeakyRelu = (node, x) => {
  const inZero = zeroOf(x), outZero = zeroOf(node.output()), alpha = f32(node.options.alpha);
  const positive = f32(scaleOf(x) / scaleOf(node.output())), negative = f32(positive * alpha);
  const xnnpack = positive >= 2 ** -8 && positive <= 2 ** 7 && negative >= -127.99609375 && negative <= 2 ** 7 && Math.abs(negative) >= 2 ** -8;
  const identity = quantizeMultiplier(positive), scaled = quantizeMultiplier(f32(f32(scaleOf(x) * alpha) / scaleOf(node.output())));
  const table = new Int8Array(256);
  for (let q = -128; q < 128; q++) {
    const centered = q - inZero;
    const v = outZero + (xnnpack ? (centered * roundHalfEven(256 * (centered > 0 ? positive : negative)) + 128) >> 8
      : multiplyTwiceRounded(centered, ...(centered >= 0 ? identity : scaled)));
    table[q + 128] = v < -128 ? -128 : v > 127 ? 127 : v;
  }
  return (ins, outs) => { const X = ins[0], Y = outs[0]; for (let i = 0; i < Y.length; i++) Y[i] = table[X[i] + 128]; };
};

function erf(x) { // Abramowitz & Stegun 7.1.26, as lite_runtime
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x < 0 ? -y : y;
}

const UNARY = {
  19: unary(() => (v) => (v > 0 ? v : 0), quantizedRelu(1)),
  21: unary(() => (v) => (v < 0 ? 0 : v > 6 ? 6 : v), quantizedRelu(3)),
  98: unary((o) => (v) => (o.alpha <= 1 ? Math.max(v, v * f32(o.alpha)) : Math.min(v, v * f32(o.alpha))), quantizedLeakyRelu),
  14: unary(() => (v) => 1 / (1 + Math.exp(-v)), lookupTable((v) => f32(1 / f32(1 + f32(Math.exp(-v)))))),
  28: unary(() => Math.tanh, lookupTable(Math.tanh)),
  47: unary(() => Math.exp),
  73: unary(() => Math.log),
  75: unary(() => Math.sqrt),
  76: unary(() => (v) => 1 / Math.sqrt(v)),
  92: unary(() => (v) => v * v),
  101: unary(() => Math.abs),
  59: unary(() => (v) => -v),
  8: unary(() => Math.floor),
  104: unary(() => Math.ceil),
  66: unary(() => Math.sin),
  108: unary(() => Math.cos),
  158: unary(() => Math.sign),
  116: unary(() => roundHalfEven),
  150: unary((o) => (o.approximate
    ? (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)))
    : (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)))),
  117: unary(() => (v) => (v * Math.min(Math.max(v + 3, 0), 6)) / 6),
};

// QUANTIZE float32 -> int8 (AffineQuantize) and DEQUANTIZE int8 / uint8 / int16 / float16 -> float32.
function quantize(node) {
  node.arity(1);
  const x = node.typed(0, "float32", "int8"), output = node.output();
  node.check(output.dtype === "int8" && output.scales.length === 1, "QUANTIZE writes per-tensor int8");
  if (x.dtype === "int8") return { outputs: [[x.shape, "int8"]], run: rescale(node, x, scaleOf(x) / scaleOf(output)) }; // requantize
  const scale = scaleOf(output), zero = zeroOf(output);
  const run = (ins, outs) => {
    const X = ins[0], Y = outs[0];
    for (let i = 0; i < Y.length; i++) { const q = roundAway(f32(X[i] / scale)) + zero; Y[i] = q < -128 ? -128 : q > 127 ? 127 : q; }
  };
  return { outputs: [[x.shape, "int8"]], run };
}

function float16ToFloat32(bits) {
  const exponent = (bits >> 10) & 0x1f, fraction = bits & 0x3ff, sign = bits & 0x8000 ? -1 : 1;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

function dequantize(node) {
  node.arity(1);
  const x = node.typed(0, "float16", "int8", "uint8", "int16");
  if (x.dtype === "float16") {
    return { outputs: [[x.shape, "float32"]], run: (ins, outs) => { for (let i = 0; i < outs[0].length; i++) outs[0][i] = float16ToFloat32(ins[0][i]); } };
  }
  node.check(x.scales.length > 0, "the quantized input has no scale");
  const inner = x.scales.length > 1 ? product(x.shape.slice(x.quantizedDimension + 1)) : 1, channels = x.scales.length;
  const run = (ins, outs) => {
    const X = ins[0], Y = outs[0];
    for (let i = 0; i < Y.length; i++) {
      const c = channels > 1 ? Math.floor(i / inner) % channels : 0;
      Y[i] = x.scales[c] * (X[i] - (x.zeroPoints[c] ?? x.zeroPoints[0] ?? 0));
    }
  };
  return { outputs: [[x.shape, "float32"]], run };
}

function cast(node) {
  node.arity(1);
  const x = node.input(0), to = node.output().dtype;
  node.check(x.dtype !== "float16", `CAST from ${x.dtype} to ${to} is not supported`);
  const convert = to === "bool" ? (v) => (v ? 1 : 0) : ["float32", "float64"].includes(to) ? Number
    : to === "int64" ? (v) => BigInt(Math.trunc(Number(v))) : (v) => Math.trunc(Number(v));
  return {
    outputs: [[x.shape, to]],
    run: (ins, outs) => { const X = ins[0], Y = outs[0]; for (let i = 0; i < Y.length; i++) Y[i] = convert(X[i]); },
  };
}

// ---------------------------------------------------------------------------------------------------
// Reductions and softmax.

function reducer(initial, combine, finish = (v) => v) {
  return (node) => {
    node.arity(2);
    const x = node.input(0), rank = x.shape.length;
    const int8Mean = x.dtype === "int8" && node.op.code === 40;
    if (!int8Mean) node.typed(0, "float32", "int32");
    const axes = new Set(node.constant(1, "axes").map((a) => node.axis(a, rank)));
    const keep = node.options.keepDims;
    const shape = x.shape.flatMap((d, i) => (axes.has(i) ? (keep ? [1] : []) : [d]));
    const reducedShape = x.shape.map((d, i) => (axes.has(i) ? 1 : d));
    const count = product(x.shape.filter((_, i) => axes.has(i)));
    node.check(count > 0 || ((initial === 0 || initial === 1) && !int8Mean), "reducing an empty axis");
    node.check(!int8Mean || count < 2 ** 21, `int8 MEAN over ${count} elements (at most 2^21)`);
    const index = broadcastIndex(node, reducedShape, x.shape); // input element -> output element
    const accumulator = node.scratch(Float64Array, product(reducedShape));
    let store = (Y, i, v) => { Y[i] = v; };
    if (int8Mean) { // QuantizedMeanOrSum: sum of (x - zp) times x_scale / y_scale with 1/count folded in
      const output = node.output(), zeroSum = zeroOf(x) * count, outZero = zeroOf(output);
      let [multiplier, shift] = quantizeMultiplier(scaleOf(x) / scaleOf(output));
      const extra = Math.min(Math.floor(Math.log2(count)), 32, 31 + shift); // headroom for the 1/count factor
      multiplier = Math.floor((multiplier * 2 ** extra) / count); // < 2^31: exact for counts below 2^21
      shift -= extra;
      store = (Y, i, sum) => {
        const q = multiplyByQuantizedMultiplier(sum - zeroSum, multiplier, shift) + outZero;
        Y[i] = q < -128 ? -128 : q > 127 ? 127 : q;
      };
    }
    const run = (ins, outs) => {
      const X = ins[0], Y = outs[0];
      accumulator.fill(initial);
      for (let i = 0; i < X.length; i++) accumulator[index[i]] = combine(accumulator[index[i]], X[i]);
      for (let i = 0; i < Y.length; i++) store(Y, i, int8Mean ? accumulator[i] : finish(accumulator[i], count));
    };
    return { outputs: [[shape, x.dtype]], run };
  };
}

const REDUCERS = {
  40: reducer(0, (a, v) => a + v, (s, n) => s / n),
  74: reducer(0, (a, v) => a + v),
  81: reducer(1, (a, v) => a * v),
  82: reducer(-Infinity, (a, v) => (v > a ? v : a)),
  89: reducer(Infinity, (a, v) => (v < a ? v : a)),
};

// SOFTMAX / LOG_SOFTMAX over the last axis (float32), and int8 SOFTMAX.
function softmax(log) {
  return (node) => {
    node.arity(1);
    const x = node.typed(0, "float32", ...(log ? [] : ["int8"]));
    const last = x.shape[x.shape.length - 1];
    node.check(x.shape.length >= 1 && last > 0, `input ${show(x.shape)} has no last axis to normalize`);
    const beta = log ? 1 : node.options.beta, rows = product(x.shape) / last;
    if (x.dtype === "int8") return { outputs: [[x.shape, "int8"]], run: softmaxInt8(node, x, beta, rows, last) };
    const exps = node.scratch(Float64Array, last);
    const run = (ins, outs) => {
      const X = ins[0], Y = outs[0];
      for (let o = 0; o < rows * last; o += last) {
        let max = -Infinity, sum = 0;
        for (let k = 0; k < last; k++) max = Math.max(max, X[o + k]);
        for (let k = 0; k < last; k++) sum += exps[k] = Math.exp((X[o + k] - max) * beta);
        const logSum = Math.log(sum);
        for (let k = 0; k < last; k++) Y[o + k] = log ? X[o + k] - max - logSum : exps[k] / sum;
      }
    };
    return { outputs: [[x.shape, "float32"]], run };
  };
}

// optimized_ops::Softmax on int8, as lite_runtime: a float32 table of exp(-scale * beta * d) for each
// difference d from the row maximum, summed in order in float32, each entry rounded to the output scale.
function softmaxInt8(node, x, beta, rows, last) {
  const output = node.output(), outputScale = f32(scaleOf(output)), outputZero = zeroOf(output);
  const step = f32(-scaleOf(x) * f32(beta));
  const table = Float32Array.from({ length: 256 }, (_, d) => Math.exp(f32(step * d)));
  return (ins, outs) => {
    const X = ins[0], Y = outs[0];
    for (let o = 0; o < rows * last; o += last) {
      let max = -128, total = 0;
      for (let k = 0; k < last; k++) if (X[o + k] > max) max = X[o + k];
      for (let k = 0; k < last; k++) total = f32(total + table[max - X[o + k]]);
      const inverse = f32(1 / f32(total * outputScale));
      for (let k = 0; k < last; k++) {
        const q = roundAway(f32(table[max - X[o + k]] * inverse)) + outputZero;
        Y[o + k] = q < -128 ? -128 : q > 127 ? 127 : q;
      }
    }
  };
}

// ---------------------------------------------------------------------------------------------------
// Operators that move data: any dtype.

const copy = (ins, outs) => outs[0].set(ins[0]);

function reshape(node) {
  node.arity(1, 2);
  const x = node.input(0), size = product(x.shape);
  let target;
  if (node.input(1)) target = node.constant(1, "new shape");
  else {
    node.check(node.options.newShape, "has neither a shape input nor new_shape options");
    target = [...node.options.newShape];
  }
  node.check(target.filter((d) => d === -1).length <= 1 && target.every((d) => d >= -1), `new shape ${show(target)} is invalid`);
  if (target.includes(-1)) {
    const known = product(target.filter((d) => d !== -1));
    node.check(known > 0 && size % known === 0, `cannot reshape ${show(x.shape)} to ${show(target)}`);
    target[target.indexOf(-1)] = size / known;
  }
  node.check(product(target) === size, `cannot reshape ${show(x.shape)} (${size} elements) to ${show(target)}`);
  return { outputs: [[target, x.dtype]], run: copy };
}

function squeeze(node) {
  node.arity(1);
  const x = node.input(0), dims = node.options.squeezeDims;
  const axes = dims && dims.length ? new Set(dims.map((d) => node.axis(d, x.shape.length))) : new Set(x.shape.flatMap((d, i) => (d === 1 ? [i] : [])));
  for (const a of axes) node.check(x.shape[a] === 1, `cannot squeeze dims ${show(dims)} of ${show(x.shape)}`);
  return { outputs: [[x.shape.filter((_, i) => !axes.has(i)), x.dtype]], run: copy };
}

function expandDims(node) {
  node.arity(2);
  const x = node.input(0), axis = node.constant(1, "axis");
  node.check(axis.length === 1, "axis must be one integer");
  const at = node.axis(axis[0], x.shape.length + 1);
  return { outputs: [[[...x.shape.slice(0, at), 1, ...x.shape.slice(at)], x.dtype]], run: copy };
}

function shapeOf(node) {
  node.arity(1);
  const shape = node.input(0).shape, int64 = node.options.outType === 4;
  return {
    outputs: [[[shape.length], int64 ? "int64" : "int32"]],
    run: (_ins, outs) => shape.forEach((d, i) => { outs[0][i] = int64 ? BigInt(d) : d; }),
    shapesOnly: true,
  };
}

// Stacking and concatenating both copy contiguous blocks: `outer` rows of each input's `block`.
function joiner(shapes, axis) {
  const outer = product(shapes[0].slice(0, axis)), blocks = shapes.map((s) => product(s.slice(axis)));
  const total = blocks.reduce((a, b) => a + b, 0);
  return (ins, outs) => {
    const Y = outs[0];
    for (let r = 0; r < outer; r++) {
      let at = r * total;
      for (let k = 0; k < ins.length; k++) { Y.set(ins[k].subarray(r * blocks[k], (r + 1) * blocks[k]), at); at += blocks[k]; }
    }
  };
}

function pack(node) {
  node.check(node.inputs.length >= 1 && node.inputs.every(Boolean), "needs at least one input");
  node.arity(node.inputs.length);
  const first = node.input(0), n = node.inputs.length;
  node.check([0, n].includes(node.options.valuesCount), `values_count ${node.options.valuesCount}, got ${n} inputs`);
  node.check(node.inputs.every((t) => show(t.shape) === show(first.shape) && t.dtype === first.dtype), "inputs differ in shape or type");
  const axis = node.axis(node.options.axis, first.shape.length + 1);
  const shapes = node.inputs.map((t) => [...t.shape.slice(0, axis), 1, ...t.shape.slice(axis)]);
  return { outputs: [[[...first.shape.slice(0, axis), n, ...first.shape.slice(axis)], first.dtype]], run: joiner(shapes, axis) };
}

function concatenation(node) {
  node.check(node.inputs.length >= 1 && node.inputs.every(Boolean), "needs at least one input");
  node.arity(node.inputs.length);
  const first = node.input(0), rank = first.shape.length;
  node.check(rank >= 1, "inputs must have rank >= 1");
  const axis = node.axis(node.options.axis, rank);
  for (const t of node.inputs) {
    const same = t.shape.length === rank && t.shape.every((d, i) => i === axis || d === first.shape[i]);
    node.check(same && t.dtype === first.dtype, `input ${show(t.shape)} ${t.dtype} does not concatenate with ${show(first.shape)} ${first.dtype} on axis ${axis}`);
  }
  if (first.dtype === "int8") {
    const output = node.output();
    node.check(node.inputs.every((t) => scaleOf(t) === scaleOf(output) && zeroOf(t) === zeroOf(output)), "int8 inputs must share the output's scale and zero point");
  }
  const shape = [...first.shape];
  shape[axis] = node.inputs.reduce((s, t) => s + t.shape[axis], 0);
  const [low, high] = floatRange(node, node.options.activation);
  const join = joiner(node.inputs.map((t) => t.shape), axis);
  const run = low === -Infinity && high === Infinity ? join : (ins, outs) => {
    join(ins, outs);
    const Y = outs[0];
    for (let i = 0; i < Y.length; i++) Y[i] = Y[i] < low ? low : Y[i] > high ? high : Y[i];
  };
  return { outputs: [[shape, first.dtype]], run: withTanh(node.options.activation, run) };
}

// Gathers through a precomputed index map (output element -> input element).
const gatherBy = (map) => (ins, outs) => { const X = ins[0], Y = outs[0]; for (let i = 0; i < Y.length; i++) Y[i] = X[map[i]]; };

function stridesOf(shape) {
  const strides = new Array(shape.length);
  for (let i = shape.length - 1, s = 1; i >= 0; i--) { strides[i] = s; s *= shape[i]; }
  return strides;
}

// The index map of an output of `shape` whose element at position p reads input offset sum(start_i + p_i * step_i).
function affineMap(node, shape, start, steps) {
  const map = node.scratch(Int32Array, product(shape)), rank = shape.length, position = new Array(rank).fill(0);
  let at = start;
  for (let n = 0; n < map.length; n++) {
    map[n] = at;
    for (let i = rank - 1; i >= 0; i--) {
      position[i]++;
      at += steps[i];
      if (position[i] < shape[i]) break;
      at -= steps[i] * position[i];
      position[i] = 0;
    }
  }
  return map;
}

function transpose(node) {
  node.arity(2);
  const x = node.input(0), perm = node.constant(1, "permutation"), rank = x.shape.length;
  node.check(perm.length === rank && [...perm].sort((a, b) => a - b).every((p, i) => p === i), `permutation ${show(perm)} does not fit rank ${rank}`);
  const strides = stridesOf(x.shape), shape = perm.map((p) => x.shape[p]);
  return { outputs: [[shape, x.dtype]], run: gatherBy(affineMap(node, shape, 0, perm.map((p) => strides[p]))) };
}

function pad(node) {
  node.arity(2, 3);
  const x = node.input(0), rank = x.shape.length, paddings = node.constant(1, "paddings");
  node.check(paddings.length === 2 * rank && show(node.input(1).shape) === show([rank, 2]), `paddings ${show(node.input(1).shape)}, expected [${rank}, 2]`);
  node.check(paddings.every((p) => p >= 0 && p < 2 ** 24), "paddings must be non-negative and small");
  let value = x.dtype === "int8" ? zeroOf(x) : 0;
  if (node.input(2)) {
    const constant = node.constant(2, "pad value");
    node.check(constant.length === 1, "pad value must be a scalar");
    value = constant[0];
  }
  const shape = x.shape.map((d, i) => d + paddings[2 * i] + paddings[2 * i + 1]);
  const outStrides = stridesOf(shape);
  const interior = affineMap(node, x.shape, x.shape.reduce((s, _d, i) => s + paddings[2 * i] * outStrides[i], 0), outStrides);
  const fillValue = x.dtype === "int64" ? BigInt(value) : value;
  const run = (ins, outs) => {
    const X = ins[0], Y = outs[0];
    Y.fill(fillValue);
    for (let i = 0; i < X.length; i++) Y[interior[i]] = X[i];
  };
  return { outputs: [[shape, x.dtype]], run };
}

function stridedSlice(node) {
  node.arity(3, 4);
  const x = node.input(0), rank = x.shape.length, o = node.options;
  const begin = node.constant(1, "begin"), end = node.constant(2, "end");
  const steps = node.input(3) ? node.constant(3, "strides") : begin.map(() => 1);
  node.check(begin.length === end.length && end.length === steps.length && steps.length <= rank,
    `begin/end/strides lengths ${begin.length}/${end.length}/${steps.length} for rank ${rank}`);
  node.check(o.ellipsisMask === 0 && o.newAxisMask === 0, "ellipsis and new-axis masks are not supported");
  node.check(steps.every((s) => s !== 0), `strides ${show(steps)} contain 0`);
  const strides = stridesOf(x.shape), sliced = [], kept = [], inputSteps = [];
  let start = 0;
  x.shape.forEach((dim, i) => {
    if (i >= begin.length) { sliced.push(dim); kept.push(dim); inputSteps.push(strides[i]); return; }
    if ((o.shrinkAxisMask >> i) & 1) {
      const index = begin[i] < 0 ? begin[i] + dim : begin[i];
      node.check(index >= 0 && index < dim, `index ${begin[i]} out of range for dim ${i} of size ${dim}`);
      start += index * strides[i];
      return;
    }
    // Python slice semantics (slice.indices) for the masked and clamped bounds
    const step = steps[i], clampTo = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
    const bound = (v, isEnd) => {
      if (v === null) return step > 0 ? (isEnd ? dim : 0) : (isEnd ? -1 : dim - 1);
      if (v < 0) v += dim;
      return step > 0 ? clampTo(v, 0, dim) : clampTo(v, -1, dim - 1);
    };
    const first = bound((o.beginMask >> i) & 1 ? null : begin[i], false);
    const last = bound((o.endMask >> i) & 1 ? null : o.offset ? begin[i] + end[i] : end[i], true);
    const length = Math.max(0, Math.ceil((last - first) / step));
    sliced.push(length);
    kept.push(length);
    inputSteps.push(step * strides[i]);
    start += (length ? first : 0) * strides[i];
  });
  return { outputs: [[sliced, x.dtype]], run: gatherBy(affineMap(node, kept, start, inputSteps)) };
}

function gather(node) {
  node.arity(2);
  const params = node.input(0), indexTensor = node.typed(1, "int32", "int64");
  node.check(node.options.batchDims === 0, "batch_dims other than 0 is not supported");
  const axis = node.axis(node.options.axis, params.shape.length), dim = params.shape[axis];
  const outer = product(params.shape.slice(0, axis)), inner = product(params.shape.slice(axis + 1));
  const count = product(indexTensor.shape);
  const run = (ins, outs) => {
    const X = ins[0], I = ins[1], Y = outs[0];
    for (let n = 0; n < count; n++) {
      const k = Number(I[n]);
      if (!(k >= 0 && k < dim)) throw node.fail(`index ${k} out of range [0, ${dim})`);
    }
    for (let o = 0, at = 0; o < outer; o++) {
      for (let n = 0; n < count; n++, at += inner) Y.set(X.subarray((o * dim + Number(I[n])) * inner, (o * dim + Number(I[n]) + 1) * inner), at);
    }
  };
  return { outputs: [[[...params.shape.slice(0, axis), ...indexTensor.shape, ...params.shape.slice(axis + 1)], params.dtype]], run };
}

function logicalNot(node) {
  node.arity(1);
  const x = node.typed(0, "bool");
  return { outputs: [[x.shape, "bool"]], run: (ins, outs) => { for (let i = 0; i < outs[0].length; i++) outs[0][i] = ins[0][i] ? 0 : 1; } };
}

// ARG_MAX / ARG_MIN over one constant axis: the first index of the extreme value.
function argReduce(isMax) {
  return (node) => {
    node.arity(2);
    const x = node.typed(0, "float32", "int32", "int8", "uint8"), axes = node.constant(1, "axis");
    node.check(axes.length === 1, "axis must be one integer");
    const axis = node.axis(axes[0], x.shape.length), dim = x.shape[axis], to = node.output().dtype;
    node.check(dim > 0 && ["int32", "int64"].includes(to), `cannot reduce axis ${axis} of ${show(x.shape)} to ${to}`);
    const outer = product(x.shape.slice(0, axis)), inner = product(x.shape.slice(axis + 1));
    const run = (ins, outs) => {
      const X = ins[0], Y = outs[0];
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          let best = 0, value = X[o * dim * inner + i];
          for (let k = 1; k < dim; k++) {
            const v = X[(o * dim + k) * inner + i];
            if (isMax ? v > value : v < value) { value = v; best = k; }
          }
          Y[o * inner + i] = to === "int64" ? BigInt(best) : best;
        }
      }
    };
    return { outputs: [[x.shape.filter((_, i) => i !== axis), to]], run };
  };
}

function oneHot(node) {
  node.arity(4);
  const indexTensor = node.typed(0, "int32", "int64"), [depth] = node.constant(1, "depth");
  const on = node.input(2), off = node.input(3);
  node.check(on.dtype === off.dtype && product(on.shape) === 1 && product(off.shape) === 1, "on and off values must be scalars of one type");
  node.check(Number.isInteger(depth) && depth >= 0 && depth < 2 ** 24, `depth ${depth} is invalid`);
  const rank = indexTensor.shape.length, axis = node.options.axis === -1 ? rank : node.axis(node.options.axis, rank + 1);
  const outer = product(indexTensor.shape.slice(0, axis)), inner = product(indexTensor.shape.slice(axis));
  const run = (ins, outs) => {
    const I = ins[0], Y = outs[0], onValue = ins[2][0], offValue = ins[3][0];
    for (let o = 0, at = 0; o < outer; o++) {
      for (let d = 0; d < depth; d++) for (let i = 0; i < inner; i++, at++) Y[at] = Number(I[o * inner + i]) === d ? onValue : offValue;
    }
  };
  return { outputs: [[[...indexTensor.shape.slice(0, axis), depth, ...indexTensor.shape.slice(axis)], on.dtype]], run };
}

// A shape given by a constant tensor (computed from shapes at prepare), checked.
function shapeInput(node, i) {
  const shape = node.constant(i, "shape");
  node.check(shape.every((d) => Number.isInteger(d) && d >= 0) && product(shape) <= MAX_ELEMENTS, `shape ${show(shape)} is invalid`);
  return shape;
}

function fill(node) {
  node.arity(2);
  const shape = shapeInput(node, 0), value = node.input(1);
  node.check(product(value.shape) === 1, "the fill value must be a scalar");
  return { outputs: [[shape, value.dtype]], run: (ins, outs) => outs[0].fill(ins[1][0]) };
}

function zerosLike(node) {
  node.arity(1);
  const x = node.input(0);
  return { outputs: [[x.shape, x.dtype]], run: (_ins, outs) => outs[0].fill(x.dtype === "int64" ? 0n : 0) };
}

function broadcastTo(node) {
  node.arity(2);
  const x = node.input(0), target = shapeInput(node, 1), shape = broadcastShape(node, x.shape, target);
  node.check(show(shape) === show(target), `cannot broadcast ${show(x.shape)} to ${show(target)}`);
  return { outputs: [[target, x.dtype]], run: gatherBy(broadcastIndex(node, x.shape, target)) };
}

function broadcastArgs(node) {
  node.arity(2);
  const shape = broadcastShape(node, shapeInput(node, 0), shapeInput(node, 1)), dtype = node.input(0).dtype;
  return { outputs: [[[shape.length], dtype]], run: (_ins, outs) => shape.forEach((d, i) => { outs[0][i] = dtype === "int64" ? BigInt(d) : d; }) };
}

const KERNELS = {
  9: fullyConnected, 126: batchMatmul, 3: conv2d, 4: depthwiseConv2d, 17: pool(true), 1: pool(false),
  0: binary((a, b) => a + b), 41: binary((a, b) => a - b), 18: binary((a, b) => a * b),
  42: binary((a, b, integer) => (integer ? Math.floor(a / b) : a / b)),
  90: binary((a, b) => Math.floor(f32(a / b)), false), 95: binary(floorMod, false),
  58: comparison((a, b) => a < b), 63: comparison((a, b) => a <= b), 61: comparison((a, b) => a > b),
  62: comparison((a, b) => a >= b), 71: comparison((a, b) => a === b), 72: comparison((a, b) => a !== b),
  84: comparison((a, b) => a || b, ["bool"]), 86: comparison((a, b) => a && b, ["bool"]), 123: selectV2,
  87: logicalNot, 56: argReduce(true), 79: argReduce(false), 85: oneHot, 94: fill, 93: zerosLike,
  130: broadcastTo, 145: broadcastArgs,
  55: binary((a, b) => Math.max(a, b), false), 57: binary((a, b) => Math.min(a, b), false), 78: binary((a, b) => a ** b, false),
  ...UNARY, ...REDUCERS, 25: softmax(false), 50: softmax(true),
  114: quantize, 6: dequantize, 53: cast,
  22: reshape, 43: squeeze, 70: expandDims, 77: shapeOf, 83: pack, 2: concatenation, 39: transpose,
  34: pad, 60: pad, 45: stridedSlice, 36: gather,
};

// ---------------------------------------------------------------------------------------------------
// WebAssembly SIMD for the float32 inner product: one function, written out below instruction by
// instruction (then max pooling, and the transposition of weights into the layout it reads). In the
// text format it is
//   (func (export "dot") (param $rows $taps $tapBytes $weights $blocks $out $bias i32) (param $low $high f32)
//     for each of $rows rows, whose taps ($tapBytes bytes) follow the previous row's: for each of $blocks
//     blocks of 32 units: a0..a7 = the bias (f32x4 at $bias + 128 block + 16 j); for each tap (i32 s, i32 o)
//     at $taps, for each listed pair (f32 v, i32 k) from (i32 at s) to (i32 at s + 4): a_j += splat(v) *
//     (v128 at $weights + 128 block + o + k + 16 j); a0..a7 clamped to [$low, $high] are stored at $out,
//     which moves on by 128 bytes)
// and it reads the memory "m"."m".

const leb = (n) => (n < 128 ? [n] : [(n & 127) | 128, ...leb(n >> 7)]); // (the i32 constants here are small and positive)

function dotModule() {
  // instructions are nested arrays of bytes, flattened once (spreading every one costs milliseconds at load)
  const get = (i) => [0x20, i], set = (i) => [0x21, i], constant = (n) => [0x41, leb(n)], simd = (op, ...memarg) => [0xfd, leb(op), memarg];
  const load = (offset = 0) => [0x28, 2, offset]; // i32.load
  const [rows, taps, tapBytes, weights, blocks, out, bias, low, high] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [i, end, o, t, tapsEnd, block, blockWeights, blockBias, w, v, lows, highs] = [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20];
  const sums = [21, 22, 23, 24, 25, 26, 27, 28];
  const add = 0x6a, loop = [0x02, 0x40, 0x03, 0x40], exitIf = [0x0d, 1], repeat = [0x0c, 0, 0x0b, 0x0b]; // block+loop ... br 0, end, end
  const step = (local, n) => [get(local), constant(n), add, set(local)];
  const body = [
    2, 9, 0x7f, 11, 0x7b, // locals: i, end, o, t, tapsEnd, block, blockWeights, blockBias, w (i32); v, lows, highs, a0..a7 (v128)
    get(low), simd(19), set(lows), get(high), simd(19), set(highs),
    loop, get(rows), 0x45, exitIf, // for each row:
    get(taps), get(tapBytes), add, set(tapsEnd),
    get(blocks), set(block), get(weights), set(blockWeights), get(bias), set(blockBias),
    loop, get(block), 0x45, exitIf, // for each block of 32 units:
    sums.map((a, j) => [get(blockBias), simd(0, 4, leb(16 * j)), set(a)]), // a_j = bias
    get(taps), set(t),
    loop, get(t), get(tapsEnd), 0x4f, exitIf, // for each tap:
    get(t), load(), set(w), get(w), load(), set(i), get(w), load(4), set(end), // i, end = the pixel's pairs
    get(blockWeights), get(t), load(4), add, set(o), // o = blockWeights + the tap's weight offset
    loop, get(i), get(end), 0x4f, exitIf, // for each listed pair:
    get(i), 0x2a, 2, 0, simd(19), set(v), // v = f32x4.splat(value)
    get(o), get(i), load(4), add, set(w), // w = o + weight row offset
    sums.map((a, j) => [get(a), get(v), get(w), simd(0, 4, leb(16 * j)), simd(230), simd(228), set(a)]),
    step(i, 8), repeat,
    step(t, 8), repeat,
    sums.map((a, j) => [get(out), get(a), get(lows), simd(233), get(highs), simd(232), simd(11, 4, leb(16 * j))]), // store min(max(a, low), high)
    step(out, 128), step(blockWeights, 128), step(blockBias, 128), get(block), constant(1), 0x6b, set(block), repeat,
    get(tapsEnd), set(taps), get(rows), constant(1), 0x6b, set(rows), repeat, 0x0b,
  ].flat(9);
  // (func (export "max") (param $table $tableEnd $windowBytes $x $y $channelBytes i32) (param $low $high f32)
  //   for each output pixel's window (i32 offsets from $x, $windowBytes of them) from $table: for each 4
  //   channels, the f32x4 maximum over the window clamped to [$low, $high] is stored at $y, which moves on)
  const [table, tableEnd, windowBytes, x, y, channelBytes, , , k, windowEnd, c, maximum] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const windowAt = (at) => [get(x), get(at), load(), add, get(c), add, simd(0, 4, 0)]; // v128 at x + i32 at `at` + c
  const pool = [
    2, 3, 0x7f, 3, 0x7b, // locals: k, windowEnd, c (i32); maximum, lows, highs (v128)
    get(6), simd(19), set(12), get(7), simd(19), set(13),
    loop, get(table), get(tableEnd), 0x4f, exitIf, // for each output pixel:
    get(table), get(windowBytes), add, set(windowEnd), constant(0), set(c),
    loop, get(c), get(channelBytes), 0x4f, exitIf, // for each 4 channels:
    windowAt(table), set(maximum), get(table), constant(4), add, set(k),
    loop, get(k), get(windowEnd), 0x4f, exitIf, get(maximum), windowAt(k), simd(233), set(maximum), step(k, 4), repeat,
    get(y), get(maximum), get(12), simd(233), get(13), simd(232), simd(11, 4, 0), step(y, 16), step(c, 16), repeat,
    get(windowEnd), set(table), repeat, 0x0b,
  ].flat(9);
  // (func (export "transpose") (param $from $to $units $depth $rowBytes i32)
  //   the f32 matrix [$units, $depth] at $from, transposed into rows of $rowBytes bytes at $to)
  const [from, to, units, depth, rowBytes, left, at] = [0, 1, 2, 3, 4, 5, 6], count = (local) => [get(local), constant(1), 0x6b, set(local)];
  const transpose = [
    1, 2, 0x7f, // locals: left, at (i32)
    loop, get(units), 0x45, exitIf, get(depth), set(left), get(to), set(at), // for each unit:
    loop, get(left), 0x45, exitIf, get(at), get(from), 0x2a, 2, 0, 0x38, 2, 0, // for each of its weights: f32 at `at` = f32 at $from
    step(from, 4), get(at), get(rowBytes), add, set(at), count(left), repeat,
    step(to, 4), count(units), repeat, 0x0b,
  ].flat(9);
  const section = (id, ...content) => [id, leb(content.flat(9).length), content];
  const name = (text) => [text.length, Array.from(text, (c) => c.charCodeAt(0))];
  return new Uint8Array([
    0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    section(1, 3, 0x60, 9, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7d, 0x7d, 0, // types: (i32 x 7, f32 x 2) -> ()
      0x60, 8, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7d, 0x7d, 0, // (i32 x 6, f32 x 2) -> ()
      0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0), // and (i32 x 5) -> ()
    section(2, 1, 1, 0x6d, 1, 0x6d, 2, 0, 0), // import memory "m"."m"
    section(3, 3, 0, 1, 2), // functions 0, 1 and 2 have types 0, 1 and 2
    section(7, 3, name("dot"), 0, 0, name("max"), 0, 1, name("transpose"), 0, 2),
    section(10, 3, leb(body.length), body, leb(pool.length), pool, leb(transpose.length), transpose),
  ].flat(9));
}

// The compiled module, or null where WebAssembly SIMD is missing (then float32 layers run in `dotRows`
// and max pools in JS).
let dotCompiled;
function dotKernel() {
  if (dotCompiled === undefined) {
    try { // (compiling validates the module: no second pass through WebAssembly.validate)
      dotCompiled = typeof WebAssembly === "object" ? new WebAssembly.Module(dotModule()) : null;
    } catch (error) {
      if (!(error instanceof WebAssembly.CompileError)) throw error;
      dotCompiled = null;
    }
  }
  return dotCompiled;
}

// The WebAssembly memory of one plan and its functions `dot`, `max` and `transpose`: `reserve(bytes)`
// gives a 16-byte aligned offset, growing it while operators are prepared and for the arena (never during
// a run); `f32` views all of it.
class Heap {
  constructor(module, account) {
    this.memory = new WebAssembly.Memory({ initial: 16 });
    ({ dot: this.dot, max: this.max, transpose: this.transpose } = new WebAssembly.Instance(module, { m: { m: this.memory } }).exports);
    this.used = 0;
    this.account = account;
    this.f32 = new Float32Array(this.memory.buffer);
  }

  reserve(bytes) {
    const at = this.used;
    this.used = Math.ceil((at + bytes) / 16) * 16;
    this.account(this.used - at);
    this.spare(0);
    return at;
  }

  // The offset past the reserved part, with `bytes` of memory there: room for a moment, which the next
  // `reserve` takes again (so whoever uses it leaves it zero, as fresh memory is).
  spare(bytes) {
    const missing = Math.ceil((this.used + bytes) / 65536) - this.memory.buffer.byteLength / 65536;
    if (missing > 0) {
      this.memory.grow(missing);
      this.f32 = new Float32Array(this.memory.buffer);
    }
    return this.used;
  }
}

// ---------------------------------------------------------------------------------------------------
// Planning: prepare every operator for the given input shapes, fold what is known, lay out the arena.

const ALIGNMENT = 64;
const align = (n) => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

// Greedy by size (TFLite Micro's GreedyMemoryPlanner): largest first, each at the lowest offset that
// overlaps no placed buffer whose lifetime [first, last] intersects its own.
export function planArena(requests) {
  const offsets = new Array(requests.length).fill(0), placed = [];
  const order = requests.map((_, i) => i).sort((i, j) => requests[j].size - requests[i].size || requests[i].first - requests[j].first || i - j);
  for (const i of order) {
    const r = requests[i];
    const overlapping = placed.filter((j) => requests[j].first <= r.last && r.first <= requests[j].last)
      .map((j) => [offsets[j], offsets[j] + requests[j].size]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let offset = 0;
    for (const [start, end] of overlapping) {
      if (offset + r.size <= start) break;
      offset = Math.max(offset, align(end));
    }
    offsets[i] = offset;
    placed.push(i);
  }
  return [offsets, align(Math.max(0, ...requests.map((r, i) => offsets[i] + r.size)))];
}

function plan(spec, inputShapes, memoryLimit, simd) {
  let used = 0;
  const reserve = (bytes) => {
    used += bytes;
    if (used > memoryLimit) throw fail(`the model needs over ${used} bytes, more than the limit of ${memoryLimit}`);
  };
  const allocate = (ArrayType, length) => { reserve(length * ArrayType.BYTES_PER_ELEMENT); return new ArrayType(length); };
  const heap = simd && dotKernel() ? new Heap(dotKernel(), reserve) : null;
  const infos = spec.tensors.map((t) => (t.value ? { ...t } : null));
  spec.inputs.forEach((index, k) => { infos[index] = { ...spec.tensors[index], shape: inputShapes[k], value: null }; });
  const pending = [], producedAt = new Map();
  for (const op of spec.operators) {
    const kernel = KERNELS[op.code];
    const ins = op.inputs.map((i) => (i < 0 ? null : infos[i]));
    const node = new Node(op, ins, op.outputs.map((i) => spec.tensors[i]), allocate, heap);
    try {
      const prepared = kernel(node);
      prepared.outputs.forEach(([shape, dtype], k) => {
        const tensor = spec.tensors[op.outputs[k]];
        node.check(dtype === tensor.dtype, `output ${k} (tensor ${tensor.index}) is ${tensor.dtype} in the file, the kernel computes ${dtype}`);
        node.check(product(shape) <= MAX_ELEMENTS, `output shape ${show(shape)} is too large`);
        infos[tensor.index] = { ...tensor, shape, value: null };
      });
      if (prepared.shapesOnly || ins.every((t) => !t || t.value)) { // fold: compute now, once
        const outs = op.outputs.map((i) => allocate(ARRAY_OF[infos[i].dtype], product(infos[i].shape)));
        prepared.run(ins.map((t) => t && t.value), outs);
        op.outputs.forEach((i, k) => { infos[i].value = outs[k]; });
      } else {
        pending.push([op, prepared.run]);
        for (const i of op.outputs) producedAt.set(i, pending.length - 1);
      }
    } catch (error) { // a file whose numbers break a kernel's assumptions is a bad file, and said so
      if (error instanceof LiteFormatError) throw error;
      throw node.fail(`cannot prepare: ${error.message}`);
    }
  }
  const last = pending.length;
  const lifetimes = new Map(spec.inputs.map((i) => [i, [-1, last]]));
  for (const [i, step] of producedAt) lifetimes.set(i, [step, step]);
  pending.forEach(([op], step) => { for (const i of op.inputs) if (lifetimes.has(i)) lifetimes.get(i)[1] = Math.max(lifetimes.get(i)[1], step); });
  for (const i of spec.outputs) if (lifetimes.has(i)) lifetimes.get(i)[1] = last;
  const order = [...lifetimes.keys()].sort((a, b) => a - b);
  const requests = order.map((i) => ({ size: product(infos[i].shape) * ARRAY_OF[infos[i].dtype].BYTES_PER_ELEMENT, first: lifetimes.get(i)[0], last: lifetimes.get(i)[1] }));
  const [offsets, total] = planArena(requests);
  // with a heap the arena is its last part (it never grows after), so WebAssembly kernels read and write tensors in place
  const base = heap ? heap.reserve(total) : (reserve(total), 0), arena = heap ? heap.memory.buffer : new ArrayBuffer(total);
  const arrays = infos.map((t) => t && t.value);
  order.forEach((i, k) => { arrays[i] = new ARRAY_OF[infos[i].dtype](arena, base + offsets[k], product(infos[i].shape)); });
  const steps = pending.map(([op, run]) => [op, run, op.inputs.map((i) => (i < 0 ? null : arrays[i])), op.outputs.map((i) => arrays[i])]);
  return { infos, arrays, steps, arenaBytes: total };
}

// ---------------------------------------------------------------------------------------------------
// The public model.

const describe = (tensor, name) => ({
  name,
  shape: [...tensor.signature],
  dtype: tensor.dtype,
  quantization: { scale: tensor.scales[0] ?? 0, zeroPoint: tensor.zeroPoints[0] ?? 0 },
});

export class LiteModel {
  constructor(bytes, options = {}) {
    this.byteLength = bytes.byteLength;
    this.spec = readModel(bytes);
    for (const op of this.spec.operators) {
      if (!KERNELS[op.code]) throw fail(`lite file: operator ${op.index} (${op.name}) is not supported by emberflow-lite.js`);
    }
    this.memoryLimit = options.memoryLimit ?? DEFAULT_MEMORY_LIMIT;
    this.simd = options.simd ?? true;
    const signature = this.spec.signatures.serving_default;
    const names = (indices, map) => {
      const byIndex = new Map(Object.entries(map || {}).map(([name, i]) => [i, name]));
      return indices.map((i) => byIndex.get(i) ?? this.spec.tensors[i].name);
    };
    this.inputNames = names(this.spec.inputs, signature && signature.inputs);
    this.outputNames = names(this.spec.outputs, signature && signature.outputs);
    this.inputs = this.spec.inputs.map((i, k) => describe(this.spec.tensors[i], this.inputNames[k]));
    this.outputs = this.spec.outputs.map((i, k) => describe(this.spec.tensors[i], this.outputNames[k]));
    this.plan = null;
    this.planKey = "";
    this.outputShapes = {};
  }

  // The concrete shape of an input: from {data, shape}, or the one dynamic dim inferred from the length.
  inputShape(description, value) {
    const { name, shape: signature, dtype } = description;
    const data = value && value.data !== undefined && !ArrayBuffer.isView(value) ? value.data : value;
    if (!ArrayBuffer.isView(data) || data.constructor !== ARRAY_OF[dtype]) {
      const got = data && data.constructor ? data.constructor.name : typeof data;
      throw new TypeError(`input '${name}' expects a ${ARRAY_OF[dtype].name} (${dtype}), got ${got}`);
    }
    let shape;
    if (data !== value) {
      shape = Array.from(value.shape);
      const fits = shape.length === signature.length && shape.every((d, i) => Number.isInteger(d) && d >= 0 && (signature[i] === -1 || signature[i] === d));
      if (!fits) throw new RangeError(`input '${name}' expects shape ${show(signature)}, got ${show(shape)}`);
    } else {
      const dynamic = signature.filter((d) => d === -1).length, fixed = product(signature.filter((d) => d !== -1));
      if (dynamic > 1) throw new RangeError(`input '${name}' has shape ${show(signature)} with several dynamic dims: pass {data, shape}`);
      const count = fixed ? data.length / fixed : 0;
      if (!Number.isInteger(count) || (dynamic === 0 && data.length !== fixed) || (dynamic && fixed === 0)) {
        throw new RangeError(`input '${name}' expects ${dynamic ? `a multiple of ${fixed}` : fixed} elements (shape ${show(signature)}), got ${data.length}`);
      }
      shape = signature.map((d) => (d === -1 ? count : d));
    }
    if (product(shape) !== data.length) throw new RangeError(`input '${name}' has ${data.length} elements, shape ${show(shape)} needs ${product(shape)}`);
    return [data, shape];
  }

  // Runs the model; `inputs` maps input names to typed arrays (or {data, shape}); returns name -> typed array copy.
  run(inputs) {
    const unknown = Object.keys(inputs).filter((name) => !this.inputNames.includes(name));
    const missing = this.inputNames.filter((name) => !(name in inputs));
    if (unknown.length || missing.length) {
      throw new Error(`the model takes inputs ${JSON.stringify(this.inputNames)}, got ${JSON.stringify(Object.keys(inputs))}`);
    }
    const fed = this.inputs.map((d) => this.inputShape(d, inputs[d.name]));
    const key = fed.map(([, shape]) => shape.join("x")).join(",");
    if (key !== this.planKey) {
      this.plan = plan(this.spec, fed.map(([, shape]) => shape), this.memoryLimit, this.simd);
      this.planKey = key;
      this.arenaBytes = this.plan.arenaBytes;
    }
    const { arrays, steps, infos } = this.plan;
    this.spec.inputs.forEach((index, k) => arrays[index].set(fed[k][0]));
    for (const [op, run, ins, outs] of steps) {
      try {
        run(ins, outs);
      } catch (error) {
        if (error instanceof LiteFormatError) throw error;
        throw fail(`operator ${op.index} (${op.name}) failed: ${error.message}`);
      }
    }
    const result = {};
    this.spec.outputs.forEach((index, k) => {
      result[this.outputNames[k]] = arrays[index].slice();
      this.outputShapes[this.outputNames[k]] = infos[index].shape;
    });
    return result;
  }
}

async function bytesOf(source) {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  if (typeof source === "string" || source instanceof URL) {
    const response = await fetch(source);
    if (!response.ok) throw new Error(`cannot fetch ${source}: HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  }
  throw new TypeError(`load() takes a URL, an ArrayBuffer or a Uint8Array, got ${source && source.constructor ? source.constructor.name : typeof source}`);
}

// Loads a lite file: a URL (fetched), an ArrayBuffer or a Uint8Array. options.memoryLimit bounds the
// arena; options.simd = false runs float32 products in JS even where WebAssembly SIMD is available.
export async function load(source, options = {}) {
  return new LiteModel(await bytesOf(source), options);
}

// Loads the model in a Web Worker (emberflow-worker.js beside this module) so a page never freezes;
// `run` returns a Promise. Where there are no Web Workers (Node), the model runs in this thread.
export async function loadInWorker(source, options = {}) {
  if (typeof Worker === "undefined") {
    const model = await load(source, options);
    return { inputs: model.inputs, outputs: model.outputs, byteLength: model.byteLength,
      run: async (inputs) => model.run(inputs), terminate() {} };
  }
  const worker = new Worker(new URL("./emberflow-worker.js", import.meta.url), { type: "module" });
  const waiting = new Map();
  let next = 0;
  worker.onmessage = ({ data }) => {
    const { id, result, error } = data;
    const [resolve, reject] = waiting.get(id);
    waiting.delete(id);
    if (error) reject(Object.assign(new Error(error.message), { name: error.name }));
    else resolve(result);
  };
  const call = (message, transfer = []) => new Promise((resolve, reject) => {
    waiting.set(next, [resolve, reject]);
    worker.postMessage({ id: next++, ...message }, transfer);
  });
  const bytes = typeof source === "string" || source instanceof URL ? new URL(source, globalThis.location && location.href).href : (await bytesOf(source)).slice();
  let info;
  try {
    info = await call({ type: "load", source: bytes, options });
  } catch (error) {
    worker.terminate();
    throw error;
  }
  return { ...info, run: (inputs) => call({ type: "run", inputs }), terminate: () => worker.terminate() };
}
