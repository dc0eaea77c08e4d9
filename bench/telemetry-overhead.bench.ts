/**
 * What tracing and metrics add to one verification (issue 17), measured as a difference in one
 * process: `flux.keys.check()` (telemetry wrapper included) against the same check without the
 * wrapper, alternated round after round so that the machine's load falls on both alike.
 *
 *   pnpm bench telemetry-overhead [--iterations=200000] [--rounds=11] [--otel]
 *
 * `--otel` registers the OpenTelemetry SDK first (as `pnpm bench hot-path --otel`): the difference
 * is then a `flux.verify` span and the request's metrics. Reported: the median difference in ns.
 */
import { performance } from "node:perf_hooks";
import { createFlux, type VerifyOptions } from "@flux-keys/core";
import { registerOtelSdk } from "./otel-sdk.js";

function flag(name: string, fallback: number): number {
  const found = process.argv.find((arg) => arg.startsWith(`--${name}=`));
  return found === undefined ? fallback : Number(found.slice(name.length + 3));
}
const ITERATIONS = flag("iterations", 200_000);
const ROUNDS = flag("rounds", 11);
const OTEL = process.argv.includes("--otel");

if (OTEL) registerOtelSdk();

const flux = await createFlux({ database: { pglite: true }, redis: null });
await flux.plans.upsert({
  id: "bench",
  name: "Bench",
  rateLimits: [{ name: "sustained", limit: 1_000_000_000, window: "1m" }],
});
await flux.orgs.create({ id: "org_bench", name: "Bench org", planId: "bench" });
const { secret } = await flux.keys.create().forOrg("org_bench").withScopes(["read:events"]).issue();
const options: VerifyOptions = Object.freeze({ scopes: ["read:events"], cost: 1 });
// The check without its telemetry wrapper (a private method: this benchmark's only reason to reach it).
const bare = flux.keys as unknown as {
  checkKey(secret: string, options: VerifyOptions, probe: null): Promise<{ valid: boolean }>;
};

async function wrapped(n: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < n; i++) if (!(await flux.keys.check(secret, options)).valid) throw new Error("denied");
  return ((performance.now() - start) * 1e6) / n;
}

async function unwrapped(n: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < n; i++)
    if (!(await bare.checkKey(secret, options, null)).valid) throw new Error("denied");
  return ((performance.now() - start) * 1e6) / n;
}

await wrapped(50_000);
await unwrapped(50_000);
const withTelemetry: number[] = [];
const without: number[] = [];
const differences: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  // Alternate which goes first, so that neither always runs on a warmer (or busier) machine.
  const a = round % 2 === 0 ? await wrapped(ITERATIONS) : 0;
  const b = await unwrapped(ITERATIONS);
  const c = round % 2 === 0 ? a : await wrapped(ITERATIONS);
  withTelemetry.push(c);
  without.push(b);
  differences.push(c - b);
  await flux.usage.flush();
}
const median = (values: number[]) =>
  [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)] as number;
const ns = (value: number) => `${Math.round(value).toLocaleString("en-US")} ns`;
console.log(
  `flux.keys.check() with and without its telemetry wrapper, ${ROUNDS} rounds × ${ITERATIONS.toLocaleString("en-US")}, ${OTEL ? "OpenTelemetry SDK installed" : "no OpenTelemetry SDK"}`,
);
console.log("");
console.log("| | median per check |");
console.log("|---|---:|");
console.log(`| check() | ${ns(median(withTelemetry))} |`);
console.log(`| the same check without the wrapper | ${ns(median(without))} |`);
console.log(`| difference (median of the rounds' differences) | ${ns(median(differences))} |`);
await flux.close();
