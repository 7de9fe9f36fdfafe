// Truncated and corrupted files only ever throw LiteFormatError (naming the field), or load and run.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LiteFormatError, load } from "../../../web_export/js/emberflow-lite.js";
import { bytes, cases, skip } from "./cases.mjs";

const valid = () => bytes(cases.find((c) => c.name.startsWith("cnn_none_batch1")).file);

async function loadAndRun(data) {
  try {
    const model = await load(data, { memoryLimit: 64 << 20 });
    const shapes = model.inputs.map((d) => d.shape.map((s) => (s < 0 ? 1 : s)));
    const sizes = shapes.map((shape) => shape.reduce((a, b) => a * b, 1));
    if (model.inputs.some((d) => d.dtype !== "float32") || sizes.some((n) => n > 1 << 20)) return "loaded";
    model.run(Object.fromEntries(model.inputs.map((d, k) => [d.name, { data: new Float32Array(sizes[k]), shape: shapes[k] }])));
    return "ran";
  } catch (error) {
    if (!(error instanceof LiteFormatError)) throw error;
    return error.message;
  }
}

test("errors name the bad field", { skip }, async () => {
  const data = valid();
  const renamed = data.slice();
  renamed.set([88, 88, 88, 88], 4);
  await assert.rejects(load(renamed), /lite file: bytes 4..8 are "XXXX", not the identifier "TFL3"/);
  await assert.rejects(load(data.subarray(0, 6)), LiteFormatError);
  const rooted = data.slice();
  new DataView(rooted.buffer).setUint32(0, data.byteLength + 100, true);
  await assert.rejects(load(rooted), /root table offset \d+ lies outside the file/);
});

test("every truncation is rejected with LiteFormatError", { skip }, async () => {
  const data = valid();
  const step = Math.max(1, Math.floor(data.byteLength / 300));
  let rejected = 0, tried = 0;
  for (let length = 0; length < data.byteLength; length += length < 64 ? 1 : step) {
    tried++;
    if (!["ran", "loaded"].includes(await loadAndRun(data.slice(0, length)))) rejected++;
  }
  assert.ok(rejected >= tried - 8, `${tried - rejected} truncated files loaded`);
});

for (const name of ["cnn_none_batch1", "cnn_int8_batch1", "functional_none_batch1", "selections", "arithmetic"]) {
  test(`random byte flips in ${name} throw only LiteFormatError`, { skip }, async () => {
    const data = bytes(cases.find((c) => c.name === name).file);
    let seed = 99;
    const random = (n) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n; };
    const outcomes = new Set();
    for (let trial = 0; trial < 200; trial++) {
      const corrupted = data.slice();
      for (let k = 1 + random(8); k > 0; k--) corrupted[random(corrupted.length)] = random(256);
      outcomes.add((await loadAndRun(corrupted)).replace(/\d+/g, "N"));
    }
    assert.ok(outcomes.size > 3, [...outcomes].join("\n"));
  });
}
