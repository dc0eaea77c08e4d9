/**
 * What Flux Keys adds to one HTTP request, without the framework (issue 5): the adapters' calls to
 * core for a verified request — `authenticate()` (credential, cached key, scopes, memory limiter,
 * response headers) and `record()` after the response (usage, scope observations) — timed in a
 * loop on one core. The HTTP benchmark (`pnpm bench http`) measures the same work end to end, but
 * on this shared machine its ratios move by ±20% between runs; this figure moves by a few percent,
 * so it is the one to compare changes with.
 *
 *   pnpm bench hot-path [--iterations=300000] [--runs=7] [--concurrency=50] [--otel] [--prometheus]
 *
 * `--otel` registers the OpenTelemetry SDK first (a tracer provider whose batch processor drops
 * the spans, a meter provider with a reader): the cost of a `flux.verify` span and the metrics of
 * each request. Without it no SDK is installed, as in an app that uses none. `--prometheus` adds
 * the prom-client registry (`createPrometheusRegistry`), with or without the SDK.
 *
 * Requests come `--concurrency` at a time, as from that many connections: with the memory limiter,
 * `authenticate()` answers in the check phase of the loop turn, so requests started together
 * continue together (one at a time, each would wait a turn of its own).
 *
 * Reported: the best and the median of the runs, in ns per request, for the whole path and for its
 * parts (each part timed alone with the same inputs).
 */
import { performance } from "node:perf_hooks";
import {
  createFlux,
  createHttpAuth,
  createPrometheusRegistry,
  type HttpRequestLike,
  type RouteRequirements,
} from "@flux-keys/core";
import { registerOtelSdk } from "./otel-sdk.js";

function flag(name: string, fallback: number): number {
  const found = process.argv.find((arg) => arg.startsWith(`--${name}=`));
  return found === undefined ? fallback : Number(found.slice(name.length + 3));
}
const ITERATIONS = flag("iterations", 300_000);
const RUNS = flag("runs", 7);
const CONCURRENCY = flag("concurrency", 50);
const OTEL = process.argv.includes("--otel");
const PROMETHEUS = process.argv.includes("--prometheus");

if (OTEL) registerOtelSdk();

const flux = await createFlux({ database: { pglite: true }, redis: null });
await flux.plans.upsert({
  id: "bench",
  name: "Bench",
  rateLimits: [{ name: "sustained", limit: 1_000_000_000, window: "1m" }],
});
await flux.orgs.create({ id: "org_bench", name: "Bench org", planId: "bench" });
const { secret } = await flux.keys.create().forOrg("org_bench").withScopes(["read:events"]).issue();
const auth = createHttpAuth(flux);
if (PROMETHEUS) createPrometheusRegistry(flux);

const request: HttpRequestLike = {
  method: "GET",
  url: "/v1/events",
  headers: {
    host: "127.0.0.1:3000",
    authorization: `Bearer ${secret}`,
    "user-agent": "bench/1.0",
    accept: "*/*",
  },
  remoteAddress: "127.0.0.1",
};
const route: RouteRequirements = Object.freeze({ scopes: ["read:events"], cost: 1 });

/** `n` requests, `CONCURRENCY` in flight at a time. */
async function concurrently(n: number, one: () => Promise<void>): Promise<void> {
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < n; i += CONCURRENCY) {
    inFlight.length = 0;
    for (let j = 0; j < CONCURRENCY && i + j < n; j++) inFlight.push(one());
    await Promise.all(inFlight);
  }
}

async function authenticateOne(): Promise<void> {
  const result = await auth.authenticate(request, route);
  if (!result.ok) throw new Error(`denied: ${result.error.code}`);
}

async function wholeOne(): Promise<void> {
  const startedAt = performance.now();
  const result = await auth.authenticate(request, route);
  if (!result.ok) throw new Error(`denied: ${result.error.code}`);
  auth.record(result.context, {
    method: "GET",
    endpoint: "/v1/events",
    status: 200,
    startedAt,
    scopes: route.scopes,
    request,
  });
}

const authenticateOnly = (n: number) => concurrently(n, authenticateOne);
const whole = (n: number) => concurrently(n, wholeOne);

async function verifyOnly(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await flux.keys.verify(secret, { scopes: ["read:events"] });
}

async function measure(name: string, body: (n: number) => Promise<void>): Promise<string> {
  await body(Math.min(ITERATIONS, 100_000)); // JIT warm-up
  const perRequest: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const start = performance.now();
    await body(ITERATIONS);
    perRequest.push(((performance.now() - start) * 1e6) / ITERATIONS);
    // Usage buffers are flushed between runs, not inside one (as the 5 s timer would).
    await flux.usage.flush();
  }
  perRequest.sort((a, b) => a - b);
  const median = perRequest[Math.floor(perRequest.length / 2)]!;
  return `| ${name} | ${Math.round(perRequest[0]!).toLocaleString("en-US")} ns | ${Math.round(median).toLocaleString("en-US")} ns |`;
}

async function telemetryCheck(n: number): Promise<void> {
  const telemetry = flux.internals.telemetry;
  let on = 0;
  for (let i = 0; i < n; i++) if (telemetry.enabled) on++;
  if (on !== (OTEL || PROMETHEUS ? n : 0)) throw new Error("telemetry.enabled is not what was set up");
}

console.log(
  `Flux Keys per-request work, ${RUNS} runs × ${ITERATIONS.toLocaleString("en-US")} requests, one process, ${OTEL ? "OpenTelemetry SDK installed" : "no OpenTelemetry SDK"}${PROMETHEUS ? ", Prometheus registry" : ""}`,
);
console.log("");
console.log("| path | best | median |");
console.log("|---|---:|---:|");
console.log(await measure("authenticate() + record() (what an adapter calls per request)", whole));
console.log(await measure("authenticate() alone", authenticateOnly));
console.log(await measure("flux.keys.verify() with a scope (no HTTP parts)", verifyOnly));
console.log(await measure("telemetry.enabled (what every check asks first)", telemetryCheck));
await flux.close();
