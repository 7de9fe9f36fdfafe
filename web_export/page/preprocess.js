// Turns a drawing into a model input the way MNIST digits were made: the ink's bounding box is scaled
// (keeping its aspect ratio) into a 20×20 box of a 28×28 image with anti-aliasing (area-averaged when
// shrinking, bilinear when enlarging), then shifted so that its centre of mass sits at the image
// centre. Ink is read from the canvas's alpha channel, so the page may paint strokes in any colour; the
// result is white ink (1) on black (0) unless the manifest asks for `invert`.

const INK_THRESHOLD = 0.05;
const MNIST_DIGIT_BOX = 20 / 28; // the share of the image the digit's longer side fills

/**
 * The model input for a drawing, or null when nothing is drawn.
 * @param {ImageData} image - the drawing pad's pixels (strokes opaque, background transparent)
 * @param {{height: number, width: number, scale?: number[], invert?: boolean}} spec - manifest.preprocessing
 * @returns {Float32Array | null} height × width values, row by row
 */
export function toModelInput(image, spec) {
  const ink = inkOf(image);
  const box = boundingBox(ink, image.width, image.height);
  if (box === null) return null;
  const digit = fitIntoBox(ink, image.width, box, Math.round(Math.min(spec.height, spec.width) * MNIST_DIGIT_BOX));
  const centred = centreByMass(digit, spec.width, spec.height);
  const [low, high] = spec.scale ?? [0, 1];
  return centred.map((value) => low + (spec.invert ? 1 - value : value) * (high - low));
}

function inkOf(image) {
  const ink = new Float32Array(image.width * image.height);
  for (let i = 0; i < ink.length; i++) ink[i] = image.data[4 * i + 3] / 255;
  return ink;
}

function boundingBox(ink, width, height) {
  let left = width, top = height, right = -1, bottom = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (ink[y * width + x] > INK_THRESHOLD) {
        if (x < left) left = x;
        if (x > right) right = x;
        if (y < top) top = y;
        if (y > bottom) bottom = y;
      }
    }
  }
  return right < 0 ? null : { left, top, width: right - left + 1, height: bottom - top + 1 };
}

/**
 * Resamples the box's pixels into an image whose longer side is `size`: {values, width, height}. Like
 * MNIST's anti-aliased size normalization, each output cell is a weighted average of the ink under it:
 * the area it covers when shrinking, bilinear interpolation when enlarging (so a small drawing stays solid).
 */
function fitIntoBox(ink, inkWidth, box, size) {
  const scale = size / Math.max(box.width, box.height);
  const width = Math.max(1, Math.round(box.width * scale));
  const height = Math.max(1, Math.round(box.height * scale));
  const columns = resamplingWeights(box.width, width);
  const rows = resamplingWeights(box.height, height);
  const values = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let sum = 0;
      for (const [sourceY, weightY] of rows[y]) {
        const rowStart = (box.top + sourceY) * inkWidth + box.left;
        for (const [sourceX, weightX] of columns[x]) sum += weightY * weightX * ink[rowStart + sourceX];
      }
      values[y * width + x] = sum;
    }
  }
  return { values, width, height };
}

/**
 * For each of `targetSize` cells along one axis, the source pixels it reads and their weights (summing
 * to 1). Cell i spans source coordinates [i, i + 1) / factor; source pixel k spans [k, k + 1).
 */
function resamplingWeights(sourceSize, targetSize) {
  const factor = targetSize / sourceSize;
  const weights = [];
  for (let i = 0; i < targetSize; i++) {
    if (factor <= 1) {
      // shrinking: every source pixel counts by how much of it the cell covers (area average)
      const start = i / factor, end = (i + 1) / factor;
      const cell = [];
      for (let k = Math.floor(start); k < Math.min(sourceSize, Math.ceil(end)); k++) {
        const overlap = Math.min(end, k + 1) - Math.max(start, k);
        if (overlap > 0) cell.push([k, overlap * factor]);
      }
      weights.push(cell);
    } else {
      // enlarging: interpolate between the two source pixel centres around the cell's centre
      const centre = Math.min(sourceSize - 1, Math.max(0, (i + 0.5) / factor - 0.5));
      const below = Math.floor(centre), fraction = centre - below;
      weights.push(fraction > 0 ? [[below, 1 - fraction], [below + 1, fraction]] : [[below, 1]]);
    }
  }
  return weights;
}

/** Places `digit` on a width × height canvas with its centre of mass at the centre (clipping overflow). */
function centreByMass(digit, width, height) {
  let mass = 0, sumX = 0, sumY = 0;
  for (let y = 0; y < digit.height; y++) {
    for (let x = 0; x < digit.width; x++) {
      const value = digit.values[y * digit.width + x];
      mass += value;
      sumX += value * (x + 0.5);
      sumY += value * (y + 0.5);
    }
  }
  const offsetX = Math.round(width / 2 - sumX / mass);
  const offsetY = Math.round(height / 2 - sumY / mass);
  const out = new Float32Array(width * height);
  for (let y = 0; y < digit.height; y++) {
    for (let x = 0; x < digit.width; x++) {
      const targetX = x + offsetX, targetY = y + offsetY;
      if (targetX >= 0 && targetX < width && targetY >= 0 && targetY < height) {
        out[targetY * width + targetX] = Math.min(1, digit.values[y * digit.width + x]);
      }
    }
  }
  return out;
}

// A softmax output read back from int8 (steps of 1/256) can miss a total of 1 by a few percent.
const DISTRIBUTION_SLACK = 0.05;

/**
 * The output as probabilities that sum to 1: a softmax output rescaled to undo its rounding, or the
 * softmax of anything else (logits).
 */
export function toProbabilities(output) {
  const values = Array.from(output);
  const sum = values.reduce((total, value) => total + value, 0);
  if (values.every((value) => value >= 0 && value <= 1) && Math.abs(sum - 1) < DISTRIBUTION_SLACK) {
    return values.map((value) => value / sum);
  }
  const largest = Math.max(...values);
  const exponentials = values.map((value) => Math.exp(value - largest));
  const total = exponentials.reduce((a, b) => a + b, 0);
  return exponentials.map((value) => value / total);
}
