// The conformance cases tests/web/test_node_runtime.py writes: EMBERFLOW_JS_CASES names their folder.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const folder = process.env.EMBERFLOW_JS_CASES;
export const skip = folder ? false : "EMBERFLOW_JS_CASES is not set: run tests/web/test_node_runtime.py";

const ARRAYS = { float32: Float32Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array, int16: Int16Array, int32: Int32Array, int64: BigInt64Array };

export const cases = folder ? JSON.parse(readFileSync(join(folder, "manifest.json"), "utf8")).cases : [];

export function bytes(file) {
  return new Uint8Array(readFileSync(join(folder, file)));
}

// A manifest entry's array, as the typed array of its dtype.
export function array(entry) {
  const raw = bytes(entry.file);
  return new ARRAYS[entry.dtype](raw.buffer, raw.byteOffset, raw.byteLength / ARRAYS[entry.dtype].BYTES_PER_ELEMENT);
}
