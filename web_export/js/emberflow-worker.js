// The Web Worker behind loadInWorker(): holds one model and answers {id, type: "load" | "run"} messages
// with {id, result} or {id, error: {name, message}}, so the page's thread never runs a kernel.
import { load } from "./emberflow-lite.js";

let model = null;

self.onmessage = async ({ data }) => {
  const { id, type } = data;
  try {
    if (type === "load") {
      model = await load(data.source, data.options);
      self.postMessage({ id, result: { inputs: model.inputs, outputs: model.outputs, byteLength: model.byteLength } });
    } else if (type === "run") {
      if (!model) throw new Error("run before load: the worker holds no model");
      const result = model.run(data.inputs);
      self.postMessage({ id, result }, Object.values(result).map((array) => array.buffer));
    } else {
      throw new Error(`unknown message type ${JSON.stringify(type)}`);
    }
  } catch (error) {
    self.postMessage({ id, error: { name: error.name, message: error.message } });
  }
};
