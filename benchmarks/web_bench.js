// One web benchmark measurement, in a fresh page: bench.html?system=emberflow|onnxruntime-web&model=mlp
// &shape=1,28,28&seconds=1. The result lands in `window.benchmark` (a Promise) for benchmarks/web.py.
//
// Cold start is everything from nothing to the first answer: importing the runtime while fetching the
// model, loading it (onnxruntime-web fetches and compiles its WebAssembly when it creates the first
// session, so in this phase) and one inference (ours plans the model at its first run). `marks` gives
// when each phase ended. Latency is the median per-inference time over batches of calls, each batch long
// enough (≥ 5 ms) that the browser's coarse timer (0.1 ms without cross-origin isolation) does not round
// it away.

const params = new URLSearchParams(location.search);
const system = params.get("system");
const modelName = params.get("model");
const shape = params.get("shape").split(",").map(Number);
const seconds = Number(params.get("seconds") ?? "1");
const BATCH_MS = 5;

// Each runtime's page fetches the model while it imports the runtime, as a page would.
const modelBytes = (file) => fetch(file).then(async (response) => new Uint8Array(await response.arrayBuffer()));

// When each phase of the cold start ended (ms since it began): the runtime imported, the model fetched
// (the two overlap), the model loaded; the first run is the rest.
const marks = {};
let started;
const mark = (phase) => (value) => { marks[phase] = performance.now() - started; return value; };

const loaders = {
  async emberflow() {
    const [{ load }, bytes] = await Promise.all([
      import("./emberflow-lite.js").then(mark("import")),
      modelBytes(`${modelName}.lite`).then(mark("fetch")),
    ]);
    const model = await load(bytes).then(mark("load"));
    const [input] = model.inputs;
    const [output] = model.outputs;
    return async (pixels) => model.run({ [input.name]: pixels })[output.name];
  },
  async "onnxruntime-web"() {
    const [ort, bytes] = await Promise.all([
      import("./ort.wasm.min.mjs").then(mark("import")),
      modelBytes(`${modelName}.onnx`).then(mark("fetch")),
    ]);
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.wasmPaths = new URL("./", location.href).href;
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] }).then(mark("load"));
    const [inputName] = session.inputNames;
    const [outputName] = session.outputNames;
    return async (pixels) => (await session.run({ [inputName]: new ort.Tensor("float32", pixels, shape) }))[outputName].data;
  },
};

async function timeCalls(run, pixels, calls) {
  const started = performance.now();
  for (let i = 0; i < calls; i++) await run(pixels);
  return performance.now() - started;
}

async function measure() {
  const pixels = Float32Array.from(await (await fetch("input.json")).json());
  started = performance.now();
  const run = await loaders[system]();
  const output = Array.from(await run(pixels));
  const coldStartMs = performance.now() - started;

  const perCallEstimate = (await timeCalls(run, pixels, 10)) / 10;
  const callsPerBatch = Math.max(1, Math.ceil(BATCH_MS / Math.max(perCallEstimate, 1e-3)));
  const perCall = [];
  const deadline = performance.now() + seconds * 1000;
  while (perCall.length < 5 || (performance.now() < deadline && perCall.length < 500)) {
    perCall.push((await timeCalls(run, pixels, callsPerBatch)) / callsPerBatch);
  }
  perCall.sort((a, b) => a - b);
  return { coldStartMs, marks, medianMs: perCall[perCall.length >> 1], calls: perCall.length * callsPerBatch, output };
}

window.benchmark = measure();
