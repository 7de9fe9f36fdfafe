// Per-inference time of the JS runtime in Node on the conformance cases (a development check, not a
// benchmark: benchmarks/ compares runtimes side by side). Wall and CPU time; CPU time is steadier on a
// shared machine.
//
//   EMBERFLOW_JS_CASES=<folder written by tests/web/test_node_runtime.py:write_cases> node tests/web/js/timing.mjs
import { load } from "../../../web_export/js/emberflow-lite.js";
import { array, bytes, cases } from "./cases.mjs";

const images = array(cases.find((c) => c.name === "mlp_none_batch3").inputs[0]); // real MNIST digits
for (const name of ["mlp_none", "mlp_dynamic", "mlp_int8", "cnn_none", "cnn_dynamic", "cnn_int8"]) {
  const model = await load(bytes(`${name}_batch1.lite`));
  for (const batch of [1, 32]) {
    const x = new Float32Array(784 * batch).map((_, i) => images[i % images.length]);
    const run = () => model.run({ [model.inputs[0].name]: x });
    for (let i = 0; i < 30; i++) run();
    const count = batch === 1 ? 300 : 20, cpu = process.cpuUsage(), start = performance.now();
    for (let i = 0; i < count; i++) run();
    const wall = (performance.now() - start) / count, used = process.cpuUsage(cpu);
    const cpuMs = (used.user + used.system) / 1000 / count;
    console.log(`${name.padEnd(12)} batch ${String(batch).padStart(2)}: ${wall.toFixed(3)} ms wall, ${cpuMs.toFixed(3)} ms CPU per run, ${(cpuMs / batch).toFixed(3)} ms CPU per image`);
  }
}
