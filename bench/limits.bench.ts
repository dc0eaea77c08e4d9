/**
 * Limits benchmark (issue 3): cached verify without limits, with the memory limiter (two windows),
 * and with the Redis limiter (two windows + a quota: one round trip). Not a test; numbers only.
 *
 *   npx tsx --conditions=source bench/limits.bench.ts
 *
 * REDIS_URL (default redis://127.0.0.1:6379) is used for the Redis part when reachable.
 */
import { performance } from "node:perf_hooks";
import { createFlux, type Flux } from "@flux-keys/core";
import { Redis } from "ioredis";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

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

{
  const flux = await createFlux({ database: { pglite: true }, redis: null });
  const plain = await keyWith(flux, { id: "plain", name: "plain" });
  const limited = await keyWith(flux, {
    id: "limited",
    name: "limited",
    rateLimits: [
      { name: "burst", limit: big, window: "1s" },
      { name: "sustained", limit: big, window: "1h" },
    ],
  });
  const runs = 5;
  let baseBest = Number.POSITIVE_INFINITY;
  let memBest = Number.POSITIVE_INFINITY;
  let basePerSecond = 0;
  let memPerSecond = 0;
  for (let run = 0; run < runs; run++) {
    const base = await sequential(flux, plain, 300_000);
    const memory = await sequential(flux, limited, 300_000);
    if (base.nsPerOp < baseBest) {
      baseBest = base.nsPerOp;
      basePerSecond = base.perSecond;
    }
    if (memory.nsPerOp < memBest) {
      memBest = memory.nsPerOp;
      memPerSecond = memory.perSecond;
    }
  }
  report(
    "verify, cached key, no limits",
    `${basePerSecond.toLocaleString("en")} /s (${baseBest.toFixed(0)} ns)`,
  );
  report(
    "verify, cached key, memory limiter (2 windows)",
    `${memPerSecond.toLocaleString("en")} /s (${memBest.toFixed(0)} ns)`,
  );
  report("memory limiter overhead per verify", `${((memBest - baseBest) / 1000).toFixed(2)} µs`);
  await flux.close();
}

const probe = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1_000 });
probe.on("error", () => {});
const redisUp = await probe
  .connect()
  .then(() => true)
  .catch(() => false);
probe.disconnect();

if (redisUp) {
  const keyPrefix = `bench-${process.pid}:`;
  const flux = await createFlux({ database: { pglite: true }, redis: { url: REDIS_URL, keyPrefix } });
  const limited = await keyWith(flux, {
    id: "redis",
    name: "redis",
    rateLimits: [
      { name: "burst", limit: big, window: "1s" },
      { name: "sustained", limit: big, window: "1h" },
    ],
    quota: { limit: big, period: "day" },
  });
  const redis = flux.internals.redis as Redis;
  const stream = (redis as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream;
  const write = stream.write;
  let writes = 0;
  stream.write = function (this: unknown, ...args: unknown[]) {
    writes++;
    return write.apply(this, args);
  };
  const sequentialRedis = await sequential(flux, limited, 5_000);
  const before = writes;
  await sequential(flux, limited, 1_000);
  const perVerify = (writes - before) / (1_000 + 1_000);
  stream.write = write;
  const parallel = await concurrent(flux, limited, 50_000, 64);
  report(
    "verify, Redis limiter (2 windows + quota), sequential",
    `${sequentialRedis.perSecond.toLocaleString("en")} /s (${(sequentialRedis.nsPerOp / 1000).toFixed(1)} µs)`,
  );
  report("Redis round trips (socket writes) per sequential verify", perVerify.toFixed(2));
  report("verify, Redis limiter, 64 in flight", `${parallel.toLocaleString("en")} /s`);
  const cleaner = new Redis(REDIS_URL);
  const keys = await cleaner.keys(`${keyPrefix}*`);
  if (keys.length > 0) await cleaner.del(...keys);
  cleaner.disconnect();
  await flux.close();
} else {
  console.log(`Redis not reachable at ${REDIS_URL}: skipped the Redis part.`);
}

console.log(`\n| Case | Result |\n|---|---|\n${rows.join("\n")}`);
