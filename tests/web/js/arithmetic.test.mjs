// The integer helpers equal TFLite's 64-bit reference arithmetic (computed here with BigInt).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  multiplyByQuantizedMultiplier, planArena, quantizeMultiplier, roundingDivideByPOT, saturatingRoundingDoublingHighMul,
} from "../../../web_export/js/emberflow-lite.js";

const INT32_MIN = -(2 ** 31), INT32_MAX = 2 ** 31 - 1;

function referenceHighMul(a, b) { // gemmlowp SaturatingRoundingDoublingHighMul
  if (a === INT32_MIN && b === INT32_MIN) return INT32_MAX;
  const ab = BigInt(a) * BigInt(b);
  const nudge = ab >= 0n ? 1n << 30n : 1n - (1n << 30n);
  return Number((ab + nudge) / (1n << 31n)); // BigInt division truncates toward zero, like C++
}

function referenceDivideByPOT(x, exponent) {
  const mask = (1n << BigInt(exponent)) - 1n, big = BigInt(x);
  const remainder = big & mask, threshold = (mask >> 1n) + (big < 0n ? 1n : 0n);
  return Number((big >> BigInt(exponent)) + (remainder > threshold ? 1n : 0n));
}

function* int32Samples(count) {
  yield* [0, 1, -1, 2, -2, INT32_MIN, INT32_MAX, INT32_MIN + 1, 2 ** 30, -(2 ** 30), 65535, -65536, 65536, 32768, -32769];
  let seed = 12345;
  for (let i = 0; i < count; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) | 0;
    const bits = [32, 24, 16, 8, 4][i % 5];
    yield bits === 32 ? seed : seed >> (32 - bits);
  }
}

test("saturatingRoundingDoublingHighMul is exact", () => {
  const samples = [...int32Samples(400)];
  for (const a of samples) for (const b of samples) assert.equal(saturatingRoundingDoublingHighMul(a, b), referenceHighMul(a, b), `${a} * ${b}`);
});

test("roundingDivideByPOT is exact", () => {
  for (const x of int32Samples(2000)) for (let e = 0; e <= 31; e++) assert.equal(roundingDivideByPOT(x, e), referenceDivideByPOT(x, e), `${x} >> ${e}`);
});

test("quantizeMultiplier gives q * 2^shift with q in [0.5, 1) as a 31-bit fraction", () => {
  for (const real of [1e-9, 0.000123, 0.0039215, 0.5, 0.75, 0.9999999999, 1, 1.5, 3.25, 1234.5]) {
    const [multiplier, shift] = quantizeMultiplier(real);
    assert.ok(multiplier >= 2 ** 30 && multiplier < 2 ** 31, `${real}: multiplier ${multiplier}`);
    assert.ok(Math.abs((multiplier / 2 ** 31) * 2 ** shift - real) <= real * 2 ** -30, `${real}: ${multiplier} * 2^${shift}`);
  }
  assert.deepEqual(quantizeMultiplier(0), [0, 0]);
  assert.deepEqual(quantizeMultiplier(1 - 2 ** -40), [2 ** 30, 1]); // rounds up to 2^31: halved, shift + 1
});

test("multiplyByQuantizedMultiplier matches the 64-bit reference", () => {
  for (const real of [0.00042, 0.013, 0.27, 0.99, 1.7]) {
    const [m, shift] = quantizeMultiplier(real);
    for (const x of int32Samples(300)) {
      if (shift > 0 && Math.abs(x) >= 2 ** (31 - shift)) continue; // the reference overflows there too
      const left = Math.max(shift, 0);
      const expected = referenceDivideByPOT(referenceHighMul(x * 2 ** left, m), Math.max(-shift, 0));
      assert.equal(multiplyByQuantizedMultiplier(x, m, shift), expected, `${x} * ${real}`);
    }
  }
});

test("planArena never overlaps buffers that are live together", () => {
  let seed = 7;
  const random = (n) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n; };
  for (let trial = 0; trial < 50; trial++) {
    const requests = Array.from({ length: 1 + random(12) }, () => { const first = random(8); return { size: 1 + random(500), first, last: first + random(4) }; });
    const [offsets, total] = planArena(requests);
    requests.forEach((a, i) => {
      assert.ok(offsets[i] % 64 === 0 && offsets[i] + a.size <= total);
      requests.forEach((b, j) => {
        const live = a.first <= b.last && b.first <= a.last, apart = offsets[i] + a.size <= offsets[j] || offsets[j] + b.size <= offsets[i];
        if (i !== j && live) assert.ok(apart, `requests ${i} and ${j} overlap`);
      });
    });
  }
});
