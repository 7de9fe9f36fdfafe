// The demo page: a drawing pad whose strokes are turned into the model's input (preprocess.js) and
// classified in a Web Worker while you draw, so the pad never waits for the model.
// Tests and curious readers can drive it through `window.emberflow` (see the end of this file).

import { loadInWorker } from "./emberflow-lite.js";
import { toModelInput, toProbabilities } from "./preprocess.js";

const STROKE_WIDTH = 0.08; // of the pad's side: MNIST strokes are about this thick for a full-height digit
const LOAD_TIMEOUT_MS = 30_000;

const pad = document.getElementById("pad");
const preview = document.getElementById("preview");
const statusLine = document.getElementById("status");
const byId = (id) => document.getElementById(id);

/** Each stroke is a list of [x, y] points in 0..1 pad coordinates, so any pad size can redraw it. */
const strokes = [];
let session = null; // {manifest, model, inputName, outputName} once the model answers
let shown = null; // the result on screen, without its pixels
let changed = false; // the pad changed since its last classification started
let classifying = null; // the running classification loop's promise, or null

const ready = start();
ready.catch(() => {}); // the status line already says what went wrong
window.emberflow = {
  ready,
  /** Classifies a height × width image (values as the model takes them); renders and returns the result. */
  async predictPixels(pixels) {
    await ready;
    return render(await predict(Float32Array.from(pixels)));
  },
  /** The result shown once the classifications the latest strokes started have finished (null: blank pad). */
  async settled() {
    await ready;
    while (classifying !== null) await classifying;
    return shown;
  },
};

async function start() {
  setupPad();
  try {
    const manifest = await fetchJson("manifest.json");
    describeModel(manifest);
    const model = await loadInWorker(new URL(manifest.model.file, location.href).href);
    session = { manifest, model, inputName: manifest.inputs[0].name, outputName: manifest.outputs[0].name };
    const { height, width } = inputSize(manifest);
    await withTimeout(predict(new Float32Array(height * width)), LOAD_TIMEOUT_MS, "the model did not answer");
    statusLine.textContent = "Ready: draw a digit.";
    statusLine.className = "status ready";
    if (changed) classifyLatest(); // strokes drawn while the model loaded
    return manifest;
  } catch (error) {
    session = null;
    statusLine.textContent = `The model could not be loaded: ${error.message ?? error}`;
    statusLine.className = "status error";
    statusLine.setAttribute("role", "alert");
    throw error;
  }
}

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status} ${response.statusText}`);
  return response.json();
}

function withTimeout(promise, milliseconds, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${milliseconds / 1000} s`)), milliseconds);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function inputSize(manifest) {
  const spec = manifest.preprocessing;
  if (spec?.kind !== "image") throw new Error("this page draws images, but the manifest has no image preprocessing");
  return spec;
}

function describeModel(manifest) {
  const kib = manifest.model.bytes / 1024;
  byId("model-size").textContent = kib < 1024 ? `${kib.toFixed(1)} KiB` : `${(kib / 1024).toFixed(2)} MiB`;
  const quantized = manifest.model.quantize === "none" ? "float32" : manifest.model.quantize;
  byId("model-format").textContent = `${manifest.model.format} (${quantized})`;
  const chart = byId("chart");
  chart.replaceChildren(
    ...manifest.labels.map((label) => {
      const column = document.createElement("div");
      column.className = "bar";
      column.innerHTML = `<div class="bar-track"><div class="bar-fill"></div></div><span class="bar-label"></span>`;
      column.querySelector(".bar-label").textContent = label;
      return column;
    }),
  );
  const { height, width } = inputSize(manifest);
  preview.width = width;
  preview.height = height;
}

async function predict(pixels) {
  if (session === null) throw new Error("the model is not loaded");
  const started = performance.now();
  const outputs = await session.model.run({ [session.inputName]: pixels });
  const ms = performance.now() - started;
  const probabilities = toProbabilities(outputs[session.outputName]);
  const index = probabilities.indexOf(Math.max(...probabilities));
  return { probabilities, index, label: session.manifest.labels[index], ms, pixels };
}

function render(result) {
  byId("label").textContent = result.label;
  byId("confidence").textContent = `${(100 * result.probabilities[result.index]).toFixed(1)}% sure`;
  byId("ms").textContent = `${result.ms.toFixed(2)} ms`;
  byId("chart").querySelectorAll(".bar").forEach((bar, index) => {
    bar.classList.toggle("best", index === result.index);
    bar.querySelector(".bar-fill").style.height = `${(100 * result.probabilities[index]).toFixed(1)}%`;
    bar.title = `${result.probabilities[index].toFixed(4)}`;
  });
  drawPreview(result.pixels);
  const { pixels, ...withoutPixels } = result;
  shown = withoutPixels;
  return shown;
}

function renderEmpty() {
  shown = null;
  byId("label").textContent = "–";
  byId("confidence").textContent = "";
  byId("chart").querySelectorAll(".bar-fill").forEach((fill) => (fill.style.height = "0"));
  preview.getContext("2d").clearRect(0, 0, preview.width, preview.height);
}

function drawPreview(pixels) {
  const [low, high] = session.manifest.preprocessing.scale ?? [0, 1];
  const image = preview.getContext("2d").createImageData(preview.width, preview.height);
  pixels.forEach((value, i) => {
    const shade = Math.round((255 * (value - low)) / (high - low));
    image.data.set([shade, shade, shade, 255], 4 * i);
  });
  preview.getContext("2d").putImageData(image, 0, 0);
}

// ---- classifying while drawing: at most one request in flight; the latest drawing always wins ----

function drawingChanged() {
  changed = true;
  if (classifying === null && session !== null) classifyLatest();
}

function classifyLatest() {
  classifying = classifyUntilCurrent().finally(() => (classifying = null));
}

async function classifyUntilCurrent() {
  try {
    while (changed) {
      changed = false;
      const context = pad.getContext("2d", { willReadFrequently: true });
      const pixels = toModelInput(context.getImageData(0, 0, pad.width, pad.height), session.manifest.preprocessing);
      if (pixels === null) renderEmpty();
      else render(await predict(pixels));
    }
  } catch (error) {
    statusLine.textContent = `Inference failed: ${error.message ?? error}`;
    statusLine.className = "status error";
  }
}

// ---- the drawing pad: pointer events serve mouse, pen and touch alike ----

function setupPad() {
  const context = pad.getContext("2d", { willReadFrequently: true });
  const resize = () => {
    const side = Math.round(pad.clientWidth * (window.devicePixelRatio || 1));
    if (side > 0 && side !== pad.width) {
      pad.width = pad.height = side;
      redraw(context);
    }
  };
  new ResizeObserver(resize).observe(pad);
  resize();

  const point = (event) => {
    const box = pad.getBoundingClientRect();
    return [(event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height];
  };
  pad.addEventListener("pointerdown", (event) => {
    pad.setPointerCapture(event.pointerId);
    strokes.push([point(event)]);
    drawSegment(context, strokes.at(-1), 0);
    drawingChanged();
  });
  pad.addEventListener("pointermove", (event) => {
    if (!pad.hasPointerCapture(event.pointerId)) return;
    const stroke = strokes.at(-1);
    const from = stroke.length - 1;
    for (const sample of event.getCoalescedEvents?.() ?? [event]) stroke.push(point(sample));
    drawSegment(context, stroke, from);
    drawingChanged();
  });
  byId("clear").addEventListener("click", () => {
    strokes.length = 0;
    redraw(context);
    drawingChanged();
  });
}

function redraw(context) {
  context.clearRect(0, 0, pad.width, pad.height);
  for (const stroke of strokes) drawSegment(context, stroke, 0);
}

/** Draws `stroke` from point `from` on; strokes are opaque, the background transparent (the ink is alpha). */
function drawSegment(context, stroke, from) {
  const side = pad.width;
  context.strokeStyle = "#f5f5f5";
  context.lineWidth = STROKE_WIDTH * side;
  context.lineCap = context.lineJoin = "round";
  context.beginPath();
  const [startX, startY] = stroke[from];
  context.moveTo(startX * side, startY * side);
  if (stroke.length - from === 1) context.lineTo(startX * side + 0.01, startY * side); // a dot
  for (const [x, y] of stroke.slice(from + 1)) context.lineTo(x * side, y * side);
  context.stroke();
}
