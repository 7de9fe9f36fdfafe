// The integer helpers equal TFLite's 64-bit reference arithmetic (computed here with BigInt).
import assert from "node:assert/strict";
import { test } from "node:test";

import { multiplyByQuantizedMultiplier, multiplyTwiceRounded, planArena, quantizeMultiplier } from "../../../web_export/js/emberflow-lite.js";

// common.h MultiplyByQuantizedMultiplier with TFLITE_SINGLE_ROUNDING, in 64-bit integers.
function referenceMultiply(x, multiplier, shift) {
  const bits = BigInt(31 - shift);
  return Number((BigInt(x) * BigInt(multiplier) + (1n << (bits - 1n))) >> bits); // >> floors, like C++ on int64
}

// gemmlowp's SaturatingRoundingDoublingHighMul then RoundingDivideByPOT, in 64-bit integers.
function referenceTwiceRounded(x, multiplier, shift) {
  const a = BigInt(Math.imul(x, 2 ** Math.max(shift, 0))), b = BigInt(multiplier), ab = a * b;
  const high = a === -(2n ** 31n) && b === a ? 2n ** 31n - 1n : (ab + (ab >= 0n ? 1n << 30n : 1n - (1n << 30n))) / (1n << 31n);
  const exponent = BigInt(Math.max(-shift, 0)), mask = (1n << exponent) - 1n;
  return Number((high >> exponent) + ((high & mask) > (mask >> 1n) + (high < 0n ? 1n : 0n) ? 1n : 0n));
}

function* int32Samples(count) {
  yield* [0, 1, -1, 2, -2, -(2 ** 31), 2 ** 31 - 1, -(2 ** 31) + 1, 2 ** 30, -(2 ** 30), 65535, -65536, 65536, 32768, -32769];
  let seed = 12345;
  for (let i = 0; i < count; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) | 0;
    const bits = [32, 24, 16, 8, 4][i % 5];
    yield bits === 32 ? seed : seed >> (32 - bits);
  }
}

test("quantizeMultiplier gives q * 2^shift with q in [0.5, 1) as a 31-bit fraction", () => {
  for (const real of [1e-9, 0.000123, 0.0039215, 0.5, 0.75, 0.9999999999, 1, 1.5, 3.25, 1234.5]) {
    const [multiplier, shift] = quantizeMultiplier(real);
    assert.ok(multiplier >= 2 ** 30 && multiplier < 2 ** 31, `${real}: multiplier ${multiplier}`);
    assert.ok(Math.abs((multiplier / 2 ** 31) * 2 ** shift - real) <= real * 2 ** -30, `${real}: ${multiplier} * 2^${shift}`);
  }
  assert.deepEqual(quantizeMultiplier(0), [0, 0]);
  assert.deepEqual(quantizeMultiplier(0.1), [1717986918, -3]);
  assert.deepEqual(quantizeMultiplier(1 - 2 ** -40), [2 ** 30, 1]); // rounds up to 2^31: halved, shift + 1
  assert.deepEqual(quantizeMultiplier(1e-12), [0, 0]); // shift below -31: flushed to zero
  assert.deepEqual(quantizeMultiplier(2 ** 40), [2 ** 31 - 1, 30]); // shift above 30: saturated
});

test("multiplyByQuantizedMultiplier rounds once, ties upward, exactly as in 64-bit integers", () => {
  const multipliers = [...int32Samples(40)].map((m) => (m === -(2 ** 31) ? 2 ** 31 - 1 : m)); // negative ones: SUB
  const samples = [...int32Samples(300)];
  for (let shift = -31; shift <= 30; shift++) {
    for (const m of multipliers) {
      for (const x of samples) { // + 0: -0 (from x < 0 times 0) is 0 in an Int8Array
        assert.equal(multiplyByQuantizedMultiplier(x, m, shift) + 0, referenceMultiply(x, m, shift), `${x} * ${m}, shift ${shift}`);
      }
    }
  }
  for (const [x, expected] of [[5, 3], [-5, -2], [7, 4], [-7, -3], [-9, -4]]) { // x / 2: ties go up
    assert.equal(multiplyByQuantizedMultiplier(x, 2 ** 30, 0), expected, `${x} / 2`);
  }
});

test("multiplyTwiceRounded is gemmlowp's arithmetic, exactly", () => {
  const samples = [...int32Samples(200)];
  for (let shift = -31; shift <= 30; shift += 3) {
    for (const m of [...int32Samples(20)].map(Math.abs)) {
      for (const x of samples) {
        if (shift > 0 && Math.abs(x) >= 2 ** (31 - shift)) continue; // the shifted x would overflow int32 in C++ too
        assert.equal(multiplyTwiceRounded(x, m, shift) + 0, referenceTwiceRounded(x, m, shift), `${x} * ${m}, shift ${shift}`);
      }
    }
  }
  assert.equal(multiplyTwiceRounded(-6, 2 ** 30, -1), -2); // -6 / 4 = -1.5: the shift rounds away from zero ...
  assert.equal(multiplyByQuantizedMultiplier(-6, 2 ** 30, -1), -1); // ... where one rounding goes up
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
