// loadInWorker() and emberflow-worker.js, with Node worker threads dressed as Web Workers.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker as ThreadWorker } from "node:worker_threads";

import { loadInWorker } from "../../../web_export/js/emberflow-lite.js";
import { array, bytes, cases, skip } from "./cases.mjs";

// A Web Worker over a worker thread: the thread gets `self`, `postMessage` and `onmessage` as in a browser.
class WebWorker {
  constructor(url, options) {
    assert.equal(options.type, "module");
    const bootstrap = `import { parentPort } from "node:worker_threads";
      globalThis.self = globalThis;
      globalThis.postMessage = (data, transfer) => parentPort.postMessage(data, transfer);
      await import(${JSON.stringify(String(url))});
      parentPort.on("message", (data) => self.onmessage({ data })); // queued until now, as in a browser`;
    this.thread = new ThreadWorker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`));
    this.thread.on("message", (data) => this.onmessage({ data }));
  }

  postMessage(data, transfer) {
    this.thread.postMessage(data, transfer);
  }

  terminate() {
    return this.thread.terminate();
  }
}

test("loadInWorker runs the model in a worker and answers with Promises", { skip }, async () => {
  globalThis.Worker = WebWorker;
  try {
    const entry = cases.find((c) => c.name.startsWith("cnn_int8_batch3"));
    const model = await loadInWorker(bytes(entry.file));
    const [input] = entry.inputs;
    assert.deepEqual(model.inputs.map((d) => d.name), [input.name]);
    assert.equal(model.byteLength, bytes(entry.file).byteLength);
    const pending = model.run({ [input.name]: array(input) });
    assert.ok(pending instanceof Promise);
    const outputs = await pending;
    for (const expected of entry.outputs) assert.deepEqual(Array.from(outputs[expected.name]), Array.from(array(expected)));
    await assert.rejects(model.run({ nope: new Float32Array(784) }), /the model takes inputs/);
    await model.terminate();
  } finally {
    delete globalThis.Worker;
  }
});

test("loadInWorker runs in this thread where there are no Web Workers", { skip }, async () => {
  const entry = cases.find((c) => c.name.startsWith("mlp_none_batch1"));
  const model = await loadInWorker(bytes(entry.file));
  const outputs = await model.run({ [entry.inputs[0].name]: array(entry.inputs[0]) });
  const expected = array(entry.outputs[0]);
  outputs[entry.outputs[0].name].forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= 1e-5 * Math.abs(expected[i]) + 2e-6));
});

test("a bad file rejects loadInWorker with the worker's LiteFormatError message", { skip }, async () => {
  globalThis.Worker = WebWorker;
  try {
    await assert.rejects(loadInWorker(new Uint8Array(64)), (error) => error.name === "LiteFormatError" && /not the identifier "TFL3"/.test(error.message));
  } finally {
    delete globalThis.Worker;
  }
});
