// The runtime stays small: under 20 KB gzipped once minified (esbuild, an npm devDependency).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const runtime = fileURLToPath(new URL("../../../web_export/js/emberflow-lite.js", import.meta.url));
const esbuild = fileURLToPath(new URL("../../../node_modules/.bin/esbuild", import.meta.url));

// Raw, minified and gzipped (level 9) sizes of the module in bytes.
export function sizes() {
  const raw = readFileSync(runtime);
  const minified = execFileSync(esbuild, [runtime, "--minify", "--format=esm"]);
  return { raw: raw.length, minified: minified.length, gzipped: gzipSync(minified, { level: 9 }).length };
}

test("emberflow-lite.js is under 20 KB gzipped", { skip: !existsSync(esbuild) && process.env.CI !== "true" && "esbuild is not installed: run npm ci" }, (t) => {
  const { raw, minified, gzipped } = sizes();
  t.diagnostic(`raw ${raw} B, minified ${minified} B, gzipped ${gzipped} B`);
  assert.ok(gzipped < 20 * 1024, `gzipped ${gzipped} bytes`);
});
