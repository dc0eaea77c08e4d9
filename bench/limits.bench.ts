/**
 * Limits benchmark (issues 3 and 18): cached verify without limits, and with two windows of each
 * algorithm (`fixed`, `sliding`, `gcra`) on the memory store, on Redis (two windows + a quota: one
 * script, one round trip) and, with `--cluster`, on a throwaway Redis Cluster of 3 masters and 3
 * replicas started from redis-server. Not a test; numbers only.
 *
 *   npx tsx --conditions=source bench/limits.bench.ts [--cluster | --only-cluster] [--algorithms=fixed,sliding]
 *
 * REDIS_URL (default redis://127.0.0.1:6379) is used for the Redis part when reachable.
 */
import { performance } from "node:perf_hooks";
import { createFlux, type Flux, type FluxOptions, type RateLimitWindow } from "@flux-keys/core";
import { Redis } from "ioredis";
import { ThrowawayRedisCluster } from "../test/support/redis-cluster.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
type Algorithm = "fixed" | "sliding" | "gcra";
/** `--algorithms=fixed` measures one alone (one counter class: no polymorphic call sites). */
const ALGORITHMS = (
  process.argv.find((arg) => arg.startsWith("--algorithms="))?.slice(13) ?? "fixed,sliding,gcra"
).split(",") as Algorithm[];

async function keyWith(flux: Flux, plan: Parameters<Flux["plans"]["upsert"]>[0]): Promise<string> {
  await flux.plans.upsert(plan);
  await flux.orgs.create({ id: `org-${plan.id}`, name: plan.id, planId: plan.id });
  const { secret } = await flux.keys.create().forOrg(`org-${plan.id}`).issue();
  await flux.keys.verify(secret);
  return secret;
}

/** Sequential verifies (each awaited): ns per verify, and verifications per second. */
async function sequential(flux: Flux, secret: string, iterations: number) {
  for (let i = 0; i < Math.min(iterations, 20_000); i++) await flux.keys.verify(secret);
  const start = performance.now();
  for (let i = 0; i < iterations; i++) await flux.keys.verify(secret);
  const ms = performance.now() - start;
  return { nsPerOp: (ms * 1e6) / iterations, perSecond: Math.round((iterations / ms) * 1000) };
}

/** `inFlight` verifies at a time: throughput when the store's latency overlaps. */
async function concurrent(flux: Flux, secret: string, total: number, inFlight: number) {
  const start = performance.now();
  let issued = 0;
  const worker = async () => {
    while (issued < total) {
      issued++;
      await flux.keys.verify(secret);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const ms = performance.now() - start;
  return Math.round((total / ms) * 1000);
}

const big = 1_000_000_000;
const rows: string[] = [];
const report = (name: string, value: string) => {
  rows.push(`| ${name} | ${value} |`);
  console.log(`${name}: ${value}`);
};

function windows(algorithm: Algorithm): RateLimitWindow[] {
  return [
    { name: "burst", limit: big, window: "1s", algorithm },
    { name: "sustained", limit: big, window: "1h", algorithm },
  ];
}

/** Best of `runs` sequential runs, interleaved so that each case sees the same machine load. */
async function best(flux: Flux, secrets: Record<string, string>, iterations: number, runs: number) {
  const bestNs: Record<string, { nsPerOp: number; perSecond: number }> = {};
  for (let run = 0; run < runs; run++) {
    for (const [name, secret] of Object.entries(secrets)) {
      const result = await sequential(flux, secret, iterations);
      if (bestNs[name] === undefined || result.nsPerOp < (bestNs[name] as { nsPerOp: number }).nsPerOp) {
        bestNs[name] = result;
      }
    }
  }
  return bestNs;
}

const format = (r: { nsPerOp: number; perSecond: number }, unit: "ns" | "µs") =>
  `${r.perSecond.toLocaleString("en")} /s (${unit === "ns" ? `${r.nsPerOp.toFixed(0)} ns` : `${(r.nsPerOp / 1000).toFixed(1)} µs`})`;

const onlyCluster = process.argv.includes("--only-cluster");

if (!onlyCluster) {
  const flux = await createFlux({ database: { pglite: true }, redis: null });
  const secrets: Record<string, string> = { plain: await keyWith(flux, { id: "plain", name: "plain" }) };
  for (const algorithm of ALGORITHMS) {
    secrets[algorithm] = await keyWith(flux, {
      id: algorithm,
      name: algorithm,
      rateLimits: windows(algorithm),
    });
  }
  const results = await best(flux, secrets, 300_000, 5);
  const base = results.plain as { nsPerOp: number; perSecond: number };
  report("verify, cached key, no limits", format(base, "ns"));
  for (const algorithm of ALGORITHMS) {
    const result = results[algorithm] as { nsPerOp: number; perSecond: number };
    report(`verify, cached key, memory, 2 ${algorithm} windows`, format(result, "ns"));
    report(
      `memory ${algorithm} overhead per verify`,
      `${((result.nsPerOp - base.nsPerOp) / 1000).toFixed(2)} µs`,
    );
  }
  await flux.close();
}

/** The shared store: per algorithm, sequential latency, round trips, and 64 in flight. */
async function sharedStore(label: string, id: string, redis: FluxOptions["redis"], countWrites: boolean) {
  const flux = await createFlux({ database: { pglite: true }, redis });
  const secrets: Record<string, string> = {};
  for (const algorithm of ALGORITHMS) {
    secrets[algorithm] = await keyWith(flux, {
      id: `${id}-${algorithm}`,
      name: algorithm,
      rateLimits: windows(algorithm),
      quota: { limit: big, period: "day" },
    });
  }
  const results = await best(flux, secrets, 5_000, 3);
  for (const algorithm of ALGORITHMS) {
    report(
      `verify, ${label}, 2 ${algorithm} windows + quota, sequential`,
      format(results[algorithm] as { nsPerOp: number; perSecond: number }, "µs"),
    );
  }
  if (countWrites) {
    const client = flux.internals.redis as Redis;
    const stream = (client as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream;
    const write = stream.write;
    let writes = 0;
    stream.write = function (this: unknown, ...args: unknown[]) {
      writes++;
      return write.apply(this, args);
    };
    await sequential(flux, secrets.sliding as string, 1_000);
    stream.write = write;
    report(`${label} round trips (socket writes) per sequential verify`, (writes / 2_000).toFixed(2));
  }
  for (const algorithm of ALGORITHMS) {
    const parallel = await concurrent(flux, secrets[algorithm] as string, 50_000, 64);
    report(`verify, ${label}, ${algorithm}, 64 in flight`, `${parallel.toLocaleString("en")} /s`);
  }
  await flux.close();
}

const probe = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1_000 });
probe.on("error", () => {});
const redisUp = await probe
  .connect()
  .then(() => true)
  .catch(() => false);
probe.disconnect();

if (onlyCluster) {
  // the memory and single-Redis parts are skipped
} else if (redisUp) {
  const keyPrefix = `bench-${process.pid}:`;
  await sharedStore("Redis", "redis", { url: REDIS_URL, keyPrefix }, true);
  const cleaner = new Redis(REDIS_URL);
  const keys = await cleaner.keys(`${keyPrefix}*`);
  if (keys.length > 0) await cleaner.del(...keys);
  cleaner.disconnect();
} else {
  console.log(`Redis not reachable at ${REDIS_URL}: skipped the Redis part.`);
}

if (onlyCluster || process.argv.includes("--cluster")) {
  const cluster = await ThrowawayRedisCluster.start();
  try {
    await sharedStore("Redis Cluster (3+3)", "cluster", { cluster: cluster.startupNodes }, false);
  } finally {
    await cluster.destroy();
  }
}

console.log(`\n| Case | Result |\n|---|---|\n${rows.join("\n")}`);
