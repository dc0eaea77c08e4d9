// JavaScript without types, both ways: every entry point loads with `import` and with `require`,
// and the two give the same named exports.
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
  if (esm.length === 0) throw new Error(`${entry}: no export through import`);
  if (JSON.stringify(esm) !== JSON.stringify(cjs)) {
    throw new Error(`${entry}: import gives ${esm.join(",")}, require gives ${cjs.join(",")}`);
  }
  report[entry] = esm.length;
}
console.log(JSON.stringify(report));
