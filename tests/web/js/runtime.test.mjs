// The JS runtime on every exported case equals the Python lite runtime (or the stated reference).
import assert from "node:assert/strict";
import { test } from "node:test";

import { load } from "../../../web_export/js/emberflow-lite.js";
import { array, bytes, cases, skip } from "./cases.mjs";

// float32 within 1e-5 relative (plus a small absolute slack for values near 0); integers identical.
function assertClose(got, expected, what) {
  assert.equal(got.constructor, expected.constructor, `${what}: typed array type`);
  assert.equal(got.length, expected.length, `${what}: length`);
  const integer = !(expected instanceof Float32Array);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i], g = got[i];
    if (integer ? g !== e : !(Math.abs(g - e) <= 1e-5 * Math.abs(e) + 2e-6)) {
      assert.fail(`${what}: element ${i} is ${g}, expected ${e}`);
    }
  }
}

for (const entry of cases) {
  test(`${entry.name} equals ${entry.reference}`, async () => {
    const model = await load(bytes(entry.file));
    const [input] = entry.inputs;
    const x = array(input);
    const outputs = model.run({ [input.name]: x });
    for (const expected of entry.outputs) {
      assertClose(outputs[expected.name], array(expected), `${entry.name} output '${expected.name}'`);
      assert.deepEqual(model.outputShapes[expected.name], expected.shape);
    }
    const again = model.run({ [input.name]: { data: x, shape: input.shape } }); // same plan, same answer
    for (const expected of entry.outputs) assertClose(again[expected.name], array(expected), `${entry.name} second run`);
    const plain = (await load(bytes(entry.file), { simd: false })).run({ [input.name]: x }); // float32 layers in JS
    for (const expected of entry.outputs) assertClose(plain[expected.name], array(expected), `${entry.name} without SIMD`);
  });
}

test("the model describes its inputs and outputs", { skip }, async () => {
  const entry = cases.find((c) => c.name.startsWith("mlp_none"));
  const model = await load(bytes(entry.file));
  assert.deepEqual(model.inputs.map((d) => [d.name, d.shape, d.dtype]), [[entry.inputs[0].name, [-1, 28, 28], "float32"]]);
  assert.deepEqual(model.outputs.map((d) => [d.name, d.shape, d.dtype]), [[entry.outputs[0].name, [-1, 10], "float32"]]);
  assert.equal(model.byteLength, bytes(entry.file).byteLength);
});

test("wrong inputs fail with expected versus got", { skip }, async () => {
  const entry = cases.find((c) => c.name.startsWith("mlp_none"));
  const model = await load(bytes(entry.file));
  const name = entry.inputs[0].name;
  assert.throws(() => model.run({ pixels: new Float32Array(784) }), /takes inputs \[".*"\], got \["pixels"\]/);
  assert.throws(() => model.run({ [name]: new Float32Array(700) }), /expects a multiple of 784 elements .*got 700/);
  assert.throws(() => model.run({ [name]: new Int8Array(784) }), /expects a Float32Array \(float32\), got Int8Array/);
  assert.throws(() => model.run({ [name]: { data: new Float32Array(784), shape: [1, 784] } }), /expects shape \[-1, 28, 28\], got \[1, 784\]/);
  const batch = model.run({ [name]: new Float32Array(784 * 5) })[entry.outputs[0].name];
  assert.equal(batch.length, 50);
});

test("load takes ArrayBuffers and rejects other sources", { skip }, async () => {
  const entry = cases[0];
  const data = bytes(entry.file);
  const model = await load(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  assert.equal(model.byteLength, data.byteLength);
  await assert.rejects(load(42), /load\(\) takes a URL, an ArrayBuffer or a Uint8Array, got Number/);
});

test("a file at an unaligned offset runs the same (constants are copied, not viewed)", { skip }, async () => {
  const entry = cases.find((c) => c.name.startsWith("cnn_int8_batch3"));
  const data = bytes(entry.file);
  const shifted = new Uint8Array(data.byteLength + 1);
  shifted.set(data, 1);
  const [input] = entry.inputs;
  const aligned = (await load(data)).run({ [input.name]: array(input) });
  const unaligned = (await load(shifted.subarray(1))).run({ [input.name]: array(input) });
  for (const expected of entry.outputs) assert.deepEqual(unaligned[expected.name], aligned[expected.name]);
});
