// JavaScript without types, both ways: every entry point loads with `import` and with `require`,
// and the two give the same named exports.
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const entries = [
  "@flux-keys/cli",
  "@flux-keys/core",
  "@flux-keys/express",
  "@flux-keys/fastify",
  "@flux-keys/nestjs",
  "@flux-keys/openfeature",
  "@flux-keys/stripe",
  "@flux-keys/stripe/testing",
];
const report = {};
for (const entry of entries) {
  const esm = Object.keys(await import(entry))
    .filter((name) => name !== "default")
    .sort();
  const cjs = Object.keys(require(entry))
    .filter((name) => name !== "default" && name !== "__esModule")
    .sort();
  assert.ok(esm.length > 0, `${entry}: no export through import`);
  assert.deepEqual(cjs, esm, `${entry}: require and import give different exports`);
  report[entry] = esm.length;
}
// The Fastify plugin is also the default export, from both sides.
const fastifyEsm = await import("@flux-keys/fastify");
const fastifyCjs = require("@flux-keys/fastify");
assert.equal(fastifyEsm.default, fastifyEsm.fluxKeys);
assert.equal(fastifyCjs.default, fastifyCjs.fluxKeys);
console.log(JSON.stringify(report));
