/**
 * What Flux Keys adds to one HTTP request, without the framework (issues 5 and 16): the adapters'
 * calls to core for a verified request — `authenticateNow()` (credential, cached key, scopes, memory
 * limiter, response headers) and `record()` after the response (usage, scope observations) — over
 * `--keys` distinct keys sent round-robin, one request at a time and `--concurrency` at a time. The
 * HTTP benchmark (`pnpm bench http`) measures the same work end to end, but on this shared machine
 * its ratios move by ±20% between runs; these figures move by a few percent.
 *
 *   pnpm bench hot-path [--iterations=200000] [--runs=5] [--keys=100] [--concurrency=1,50] [--redis]
 *                       [--otel] [--prometheus] [--parts=false] [--cold=4] [--allocation=true]
 *
 * `--otel` registers the OpenTelemetry SDK first (a tracer provider whose batch processor drops
 * the spans, a meter provider with a reader): the cost of a `flux.verify` span and the metrics of
 * each request. Without it no SDK is installed, as in an app that uses none. `--prometheus` adds
 * the prom-client registry (`createPrometheusRegistry`), with or without the SDK.
 *
 * Reported: the best and the median of the runs, in ns of this process's CPU time (user + system,
 * `process.cpuUsage()`) per request — not wall time, which on a shared machine counts the other
 * processes' turns too — for the whole path, and where
 * it goes: each part timed alone over the same keys (SHA-256 of the key, credential parsing, the
 * key cache, the limiter decision, response headers, usage, observations). The parts are measured
 * in isolation, so they need not add up to the whole (the whole also pays promises and calls).
 * `--redis` puts the limiter on Redis (REDIS_URL, default 127.0.0.1:6379): the whole path then
 * includes one round trip per request.
 *
 * In a loop, Flux Keys' code and data stay in the CPU's caches; inside a server the kernel's and
 * the framework's work between two requests evicts them, and the same calls cost several times
 * more (bench/RESULTS.md, issue 16). `--cold=<MiB>` (default 4; 0 skips it) times the whole path
 * and each part with the caches evicted before every call: a sweep over `<MiB>` of memory (one
 * write per 64-byte line), then the call alone, wall ns from `process.hrtime`, minus the same for
 * an empty call; the median of 3 repetitions. The figure grows with the sweep (`--cold=16` evicts
 * the last-level cache too), so compare runs of the same size. Run it pinned to an otherwise idle core
 * (`taskset -c 0`), where wall time is this process's CPU time.
 *
 * `--allocation` (default on) reports the bytes of heap each request allocates: the heap used
 * after `n` calls minus before, divided by `n`, over windows in which V8 ran no collection at all
 * (`v8.GCProfiler`; a window with one is discarded and the next tried), the median of the kept ones.
 */
import { createHash, hash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { GCProfiler, getHeapStatistics } from "node:v8";
import {
  createFlux,
  createHttpAuth,
  createPrometheusRegistry,
  type HttpRequestLike,
  type KeyContext,
  type RouteRequirements,
} from "@flux-keys/core";
import { extractCredential } from "../packages/core/src/http/credentials.js";
import { rateLimitHeaders } from "../packages/core/src/limits/headers.js";
import { registerOtelSdk } from "./otel-sdk.js";

function flag(name: string, fallback: string): string {
  const found = process.argv.find((arg) => arg === `--${name}` || arg.startsWith(`--${name}=`));
  if (found === undefined) return fallback;
  return found.includes("=") ? found.slice(name.length + 3) : "true";
}
const ITERATIONS = Number(flag("iterations", "200000"));
const RUNS = Number(flag("runs", "5"));
const KEYS = Number(flag("keys", "100"));
const CONCURRENCY = flag("concurrency", "1,50").split(",").map(Number);
const REDIS = flag("redis", "false") === "true";
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const OTEL = process.argv.includes("--otel");
const PROMETHEUS = process.argv.includes("--prometheus");
const PARTS = flag("parts", "true") !== "false";
const COLD_MIB = Number(flag("cold", "4"));
const ALLOCATION = flag("allocation", "true") !== "false";

if (OTEL) registerOtelSdk();

const flux = await createFlux({
  database: { pglite: true },
  redis: REDIS ? { url: REDIS_URL, keyPrefix: `bench_hot_${process.pid}:` } : null,
});
await flux.plans.upsert({
  id: "bench",
  name: "Bench",
  rateLimits: [{ name: "sustained", limit: 1_000_000_000, window: "1m" }],
});
await flux.plans.upsert({ id: "unlimited", name: "Unlimited" });
await flux.orgs.create({ id: "org_bench", name: "Bench org", planId: "bench" });
await flux.orgs.create({ id: "org_free", name: "No limits org", planId: "unlimited" });
const secrets: string[] = [];
const unlimited: string[] = [];
for (let i = 0; i < KEYS; i++) {
  secrets.push((await flux.keys.create().forOrg("org_bench").withScopes(["read:events"]).issue()).secret);
  unlimited.push((await flux.keys.create().forOrg("org_free").withScopes(["read:events"]).issue()).secret);
}
const auth = createHttpAuth(flux);
if (PROMETHEUS) createPrometheusRegistry(flux);

const requestOf = (secret: string): HttpRequestLike => ({
  method: "GET",
  url: "/v1/events",
  headers: {
    host: "127.0.0.1:3000",
    authorization: `Bearer ${secret}`,
    "user-agent": "bench/1.0",
    accept: "*/*",
  },
  rawHeaders: [
    "Host",
    "127.0.0.1:3000",
    "Authorization",
    `Bearer ${secret}`,
    "User-Agent",
    "bench/1.0",
    "Accept",
    "*/*",
  ],
  remoteAddress: "127.0.0.1",
});
const requests = secrets.map(requestOf);
const route: RouteRequirements = Object.freeze({ scopes: ["read:events"], cost: 1 });
const credentialOptions = {
  authorizationHeader: "authorization",
  apiKeyHeader: "x-api-key" as const,
  queryParameter: false as const,
  keyPrefix: "flux",
};

// Every part sees the keys round-robin, as the whole does.
let next = 0;
const nextIndex = () => {
  next = next + 1 === KEYS ? 0 : next + 1;
  return next;
};

/** What the adapters call after the response of a verified request. */
function recordCall(context: KeyContext, request: HttpRequestLike, startedAt: number): void {
  auth.record(context, {
    method: "GET",
    endpoint: "/v1/events",
    status: 200,
    startedAt,
    scopes: route.scopes,
    request,
  });
}

async function whole(): Promise<void> {
  const request = requests[nextIndex()]!;
  const startedAt = performance.now();
  // What the adapters call: the result itself when it is known in this turn, else a promise.
  const now = auth.authenticateNow(request, route);
  const result = now instanceof Promise ? await now : now;
  if (!result.ok) throw new Error(`denied: ${result.error.code}`);
  recordCall(result.context, request, startedAt);
}

async function authenticateOnly(): Promise<void> {
  const now = auth.authenticateNow(requests[nextIndex()]!, route);
  const result = now instanceof Promise ? await now : now;
  if (!result.ok) throw new Error(`denied: ${result.error.code}`);
}

async function verifyLimited(): Promise<void> {
  await flux.keys.verify(secrets[nextIndex()]!, { scopes: route.scopes });
}

async function verifyUnlimited(): Promise<void> {
  await flux.keys.verify(unlimited[nextIndex()]!, { scopes: route.scopes });
}

const contexts = await Promise.all(secrets.map((secret) => flux.keys.verify(secret)));
const digests = secrets.map((secret) => createHash("sha256").update(secret).digest("hex"));
const { cache } = flux.internals;

let sink = 0;
const parts: Array<[string, () => void | Promise<void>]> = [
  [
    "SHA-256 of the key (node:crypto)",
    () => {
      sink += hash("sha256", secrets[nextIndex()]!, "hex").length;
    },
  ],
  [
    "credential from the headers (raw headers scanned)",
    () => {
      const request = requests[nextIndex()]!;
      const found = extractCredential(request.headers, request.url, credentialOptions, request.rawHeaders);
      sink += found.ok ? 1 : 0;
    },
  ],
  [
    "key cache lookup",
    () => {
      sink += cache.get(digests[nextIndex()]!) === undefined ? 0 : 1;
    },
  ],
  ["verify, key without limits (SHA-256 + cache + scopes)", verifyUnlimited],
  ["verify, key with a limit (the above + the limiter's decision)", verifyLimited],
  [
    "RateLimit / RateLimit-Policy headers",
    () => {
      sink += Object.keys(rateLimitHeaders(contexts[nextIndex()]!.rateLimit)).length;
    },
  ],
  [
    "usage.record()",
    () => {
      const context = contexts[nextIndex()]!;
      flux.usage.record({
        keyId: context.keyId,
        orgId: context.orgId,
        method: "GET",
        endpoint: "/v1/events",
        status: 200,
        latencyMs: 0.1,
        units: 1,
      });
    },
  ],
  [
    "keys.observe() (scope observations)",
    () => {
      flux.keys.observe(contexts[nextIndex()]!, { scopes: route.scopes });
    },
  ],
];

/** `n` calls, `concurrency` in flight at a time (1: each awaited before the next starts). */
async function drive(n: number, concurrency: number, one: () => void | Promise<void>): Promise<void> {
  if (concurrency === 1) {
    for (let i = 0; i < n; i++) await one();
    return;
  }
  const inFlight: Array<void | Promise<void>> = [];
  for (let i = 0; i < n; i += concurrency) {
    inFlight.length = 0;
    for (let j = 0; j < concurrency && i + j < n; j++) inFlight.push(one());
    await Promise.all(inFlight);
  }
}

async function measure(name: string, concurrency: number, one: () => void | Promise<void>): Promise<string> {
  await drive(Math.min(ITERATIONS, 50_000), concurrency, one); // JIT warm-up
  const perRequest: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const start = process.cpuUsage();
    await drive(ITERATIONS, concurrency, one);
    const used = process.cpuUsage(start);
    perRequest.push(((used.user + used.system) * 1e3) / ITERATIONS);
    // Usage buffers are flushed between runs, not inside one (as the 5 s timer would).
    await flux.usage.flush();
  }
  perRequest.sort((a, b) => a - b);
  const median = perRequest[Math.floor(perRequest.length / 2)]!;
  const ns = (value: number) => `${Math.round(value).toLocaleString("en-US")} ns`;
  return `| ${name} | ${concurrency} | ${ns(perRequest[0]!)} | ${ns(median)} |`;
}

console.log(
  `Flux Keys per-request work, ${RUNS} runs × ${ITERATIONS.toLocaleString("en-US")} requests over ${KEYS} keys, ` +
    `limiter ${REDIS ? "on Redis" : "in memory"}, one process, ` +
    `${OTEL ? "OpenTelemetry SDK installed" : "no OpenTelemetry SDK"}${PROMETHEUS ? ", Prometheus registry" : ""}`,
);
console.log("");
console.log("| path | concurrency | best (CPU ns/req) | median (CPU ns/req) |");
console.log("|---|---:|---:|---:|");
for (const concurrency of CONCURRENCY) {
  console.log(
    await measure("**authenticateNow() + record()** (what an adapter calls per request)", concurrency, whole),
  );
  console.log(await measure("authenticateNow() alone", concurrency, authenticateOnly));
}
if (PARTS) for (const [name, one] of parts) console.log(await measure(name, 1, one));

// --- the same calls with the caches evicted before each one (--cold) ---------------------------

/** What the adapters call for a verified request, when it is known in this turn (a cached key). */
function wholeNow(): void {
  const request = requests[nextIndex()]!;
  const startedAt = performance.now();
  const result = auth.authenticateNow(request, route);
  if (result instanceof Promise || !result.ok) throw new Error("expected a cached, verified key");
  recordCall(result.context, request, startedAt);
}
const syncCalls: Array<[string, () => void]> = [
  ["**authenticateNow() + record()**", wholeNow],
  [
    "authenticateNow() alone",
    () => {
      const result = auth.authenticateNow(requests[nextIndex()]!, route);
      if (result instanceof Promise || !result.ok) throw new Error("expected a cached, verified key");
    },
  ],
  [
    "checkNow(), key with a limit (SHA-256, cache, scopes, limiter, context)",
    () => {
      const result = flux.keys.checkNow(secrets[nextIndex()]!, { scopes: route.scopes });
      if (result instanceof Promise || !result.valid) throw new Error("expected a cached, verified key");
    },
  ],
  [
    "checkNow(), key without limits",
    () => {
      const result = flux.keys.checkNow(unlimited[nextIndex()]!, { scopes: route.scopes });
      if (result instanceof Promise || !result.valid) throw new Error("expected a cached, verified key");
    },
  ],
  [
    "record() (usage and scope observations)",
    () => {
      const index = nextIndex();
      recordCall(contexts[index]!, requests[index]!, 0);
    },
  ],
  ...(parts.filter(([name]) => !name.startsWith("verify")) as Array<[string, () => void]>),
];

const sweepLines = new Uint8Array(Math.max(COLD_MIB, 0) * 1024 * 1024);
/** Writes one byte per 64-byte line of `sweepLines`: what was cached before is evicted. */
function evictCaches(): void {
  for (let i = 0; i < sweepLines.length; i += 64) sweepLines[i] = (sweepLines[i]! + 1) & 0xff;
}
const empty = () => {
  sink += nextIndex();
};
/** Mean wall ns of `one()` over `n` calls, each after an eviction. */
function timedCold(one: () => void, n: number): number {
  let total = 0n;
  for (let i = 0; i < n; i++) {
    evictCaches();
    const started = process.hrtime.bigint();
    one();
    total += process.hrtime.bigint() - started;
  }
  return Number(total) / n;
}
/** Mean wall ns of `one()` over `n` calls back to back (no eviction). */
function timedWarm(one: () => void, n: number): number {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) one();
  return Number(process.hrtime.bigint() - started) / n;
}
// Every key cached before the synchronous calls (with --parts=false nothing read the unlimited ones).
await Promise.all([...secrets, ...unlimited].map((secret) => flux.keys.verify(secret)));
if (COLD_MIB > 0) {
  // Each call pays a sweep: fewer calls for a larger one (3,000 at 4 MiB, 750 at 16).
  const n = Number(flag("cold-iterations", String(Math.max(500, Math.round(12_000 / COLD_MIB)))));
  console.log("");
  console.log(
    `Caches evicted before every call (a ${COLD_MIB} MiB sweep), ${n.toLocaleString("en-US")} calls × 3, one at a time; ` +
      "wall ns per call minus an empty call's, and the same call warm (no sweep):",
  );
  console.log("");
  console.log("| path | cold (ns/call, median of 3) | warm (ns/call) | cold / warm |");
  console.log("|---|---:|---:|---:|");
  for (const [name, one] of syncCalls) {
    for (let i = 0; i < 20_000; i++) one(); // JIT warm-up
    const cold: number[] = [];
    for (let repetition = 0; repetition < 3; repetition++) {
      cold.push(timedCold(one, n) - timedCold(empty, n));
    }
    cold.sort((a, b) => a - b);
    const warm = timedWarm(one, 20_000) - timedWarm(empty, 20_000);
    const median = cold[1]!;
    console.log(
      `| ${name} | ${Math.round(median).toLocaleString("en-US")} | ${Math.round(warm).toLocaleString("en-US")} | ${(median / warm).toFixed(1)}× |`,
    );
  }
}

// --- heap allocated per request (--allocation) -------------------------------------------------

/** Bytes of heap per call of `one()`, over windows of `n` calls that saw no garbage collection. */
function allocatedPerCall(one: () => void, n = 500): number {
  const kept: number[] = [];
  for (let attempt = 0; attempt < 40 && kept.length < 5; attempt++) {
    const profiler = new GCProfiler();
    profiler.start();
    const before = getHeapStatistics().used_heap_size;
    for (let i = 0; i < n; i++) one();
    const after = getHeapStatistics().used_heap_size;
    const collections = profiler.stop().statistics.length;
    if (collections === 0) kept.push((after - before) / n);
  }
  if (kept.length === 0) throw new Error("every window saw a garbage collection");
  kept.sort((a, b) => a - b);
  return kept[Math.floor(kept.length / 2)]!;
}
if (ALLOCATION) {
  console.log("");
  console.log("Heap allocated per request (500 calls per window, windows without any GC, median of 5):");
  console.log("");
  console.log("| path | bytes/request |");
  console.log("|---|---:|");
  // The whole path and its four larger pieces; the small parts allocate little of their own.
  for (const [name, one] of syncCalls.slice(0, 5)) {
    console.log(`| ${name} | ${Math.round(allocatedPerCall(one)).toLocaleString("en-US")} |`);
  }
}
if (sink < 0) console.log(sink);
await flux.close();
