// The page's preprocessing (web_export/page/preprocess.js) makes MNIST-style inputs from drawings of any
// size: the ink fitted into the 20×20 digit box with anti-aliasing, centred by its mass in 28×28.
import assert from "node:assert/strict";
import { test } from "node:test";

import { toModelInput } from "../../../web_export/page/preprocess.js";

const MNIST = { height: 28, width: 28 };

/** A transparent width × height pad with ink (alpha = 255 × value) wherever `inkAt(x, y)` is above 0. */
function pad(width, height, inkAt) {
  const data = new Uint8ClampedArray(4 * width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data[4 * (y * width + x) + 3] = Math.round(255 * inkAt(x, y));
  }
  return { width, height, data };
}

const at = (image, x, y) => image[y * 28 + x];

test("a small drawing is enlarged into a solid digit, not a dotted one", () => {
  // a filled 10×10 square becomes a filled 20×20 square, centred (rows and columns 4..23)
  const square = toModelInput(pad(40, 40, (x, y) => (x >= 10 && x < 20 && y >= 10 && y < 20 ? 1 : 0)), MNIST);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const inside = x >= 4 && x < 24 && y >= 4 && y < 24;
      assert.ok(Math.abs(at(square, x, y) - (inside ? 1 : 0)) < 1e-6, `(${x}, ${y}) is ${at(square, x, y)}`);
    }
  }
  // a one-pixel diagonal stroke stays a connected diagonal: every row of the digit box has ink around x = y
  const stroke = toModelInput(pad(30, 30, (x, y) => (x === y && x >= 5 && x < 15 ? 1 : 0)), MNIST);
  for (let y = 4; y < 24; y++) {
    const row = Array.from({ length: 28 }, (_, x) => at(stroke, x, y));
    const mass = row.reduce((sum, value) => sum + value, 0);
    const middle = row.reduce((sum, value, x) => sum + value * x, 0) / mass;
    assert.ok(Math.max(...row) > 0.5 && Math.abs(middle - y) < 1, `row ${y}: ${row.map((v) => v.toFixed(2)).join(" ")}`);
  }
});

test("a large drawing is shrunk by averaging the area under each cell", () => {
  // a 200×200 ring, symmetric about its box's centre, so the centred digit box spans rows and columns 4..23
  const inkAt = (x, y) => {
    const radius = Math.hypot(x - 99.5, y - 99.5);
    return radius <= 100 && radius >= 70 ? 1 : 0;
  };
  const image = pad(300, 260, (x, y) => (x >= 50 && x < 250 && y >= 30 && y < 230 ? inkAt(x - 50, y - 30) : 0));
  const digit = toModelInput(image, MNIST);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      let expected = 0;
      if (x >= 4 && x < 24 && y >= 4 && y < 24) {
        // the mean of the 10×10 source block that cell covers
        for (let dy = 0; dy < 10; dy++) for (let dx = 0; dx < 10; dx++) expected += inkAt(10 * (x - 4) + dx, 10 * (y - 4) + dy) / 100;
      }
      assert.ok(Math.abs(at(digit, x, y) - expected) < 1e-5, `(${x}, ${y}) is ${at(digit, x, y)}, expected ${expected}`);
    }
  }
  assert.ok(digit.some((value) => value > 0.05 && value < 0.95), "the ring's edges are anti-aliased into grey levels");
});

test("an enlarged drawing keeps its ink mass and aspect ratio", () => {
  // an 8 wide, 12 tall rectangle: scaled by 20 / 12 into a 13 × 20 block
  const digit = toModelInput(pad(50, 50, (x, y) => (x >= 20 && x < 28 && y >= 3 && y < 15 ? 1 : 0)), MNIST);
  const inked = [];
  digit.forEach((value, index) => value > 0.5 && inked.push([index % 28, Math.floor(index / 28)]));
  const columns = new Set(inked.map(([x]) => x)), rows = new Set(inked.map(([, y]) => y));
  assert.equal(rows.size, 20);
  assert.equal(columns.size, Math.round((8 * 20) / 12));
  assert.equal(inked.length, rows.size * columns.size, "the block is solid");
  const mass = digit.reduce((sum, value) => sum + value, 0);
  assert.ok(Math.abs(mass - 20 * 13) < 1e-3, `ink mass ${mass}`);
});

test("nothing drawn gives no input; scale and invert map ink onto the model's range", () => {
  assert.equal(toModelInput(pad(20, 20, () => 0), MNIST), null);
  const inverted = toModelInput(pad(40, 40, (x, y) => (x >= 10 && x < 20 && y >= 10 && y < 20 ? 1 : 0)), { ...MNIST, scale: [-1, 1], invert: true });
  assert.ok(Math.abs(at(inverted, 0, 0) - 1) < 1e-6 && Math.abs(at(inverted, 14, 14) + 1) < 1e-6);
});
