/**
 * Limits with Redis: one round trip per request however many windows apply, exact admission across
 * instances, and the fixed-window edge bound (also on the memory store).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DATABASE_URL,
  freshSchema,
  hasPostgres,
  hasRedis,
  REDIS_URL,
  uniqueName,
} from "../../../test/support/services.js";
import { createFlux, type Flux, type Quota, type RateLimitWindow } from "../src/index.js";

/** Counts writes to a client's socket: one write is one round trip of a pipeline. */
function countWrites(redis: Redis): { count(): number; restore(): void } {
  const stream = (redis as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream;
  const original = stream.write;
  let writes = 0;
  stream.write = function (this: unknown, ...args: unknown[]) {
    writes++;
    return original.apply(this, args);
  };
  return {
    count: () => writes,
    restore: () => {
      stream.write = original;
    },
  };
}

/** A key of a fresh org on a plan named `id` with these limits. */
async function keyOnPlan(
  flux: Flux,
  id: string,
  rateLimits: RateLimitWindow[],
  quota?: Quota,
): Promise<string> {
  await flux.plans.upsert({ id, name: id, rateLimits, ...(quota ? { quota } : {}) });
  await flux.orgs.create({ id: `${id}-org`, name: id, planId: id });
  return (await flux.keys.create().forOrg(`${id}-org`).issue()).secret;
}

describe.skipIf(!hasRedis)("limits on Redis", () => {
  let flux: Flux;
  let inspector: Redis;
  const prefix = `${uniqueName("limits")}:`;

  beforeAll(async () => {
    flux = await createFlux({ database: { pglite: true }, redis: { url: REDIS_URL, keyPrefix: prefix } });
    inspector = new Redis(REDIS_URL);
  });

  afterAll(async () => {
    const keys = await inspector.keys(`${prefix}*`);
    if (keys.length > 0) await inspector.del(...keys);
    inspector.disconnect();
    await flux?.close();
  });

  it("costs one round trip per request for three windows and a quota", async () => {
    const secret = await keyOnPlan(
      flux,
      "rt",
      [
        { name: "burst", limit: 10, window: "1s" },
        { name: "sustained", limit: 1000, window: "1h" },
        { name: "org", limit: 5000, window: "1d", per: "org" },
      ],
      { limit: 100, period: "day" },
    );
    // Warm: the key record is cached and the Lua script is loaded.
    await flux.keys.verify(secret);
    await flux.keys.verify(secret);
    const redis = flux.internals.redis as Redis;
    const writes = countWrites(redis);
    try {
      for (let i = 0; i < 5; i++) {
        const before = writes.count();
        const context = await flux.keys.verify(secret);
        expect(writes.count() - before).toBe(1);
        expect(context.rateLimit?.windows).toHaveLength(3);
        expect(context.rateLimit?.quota?.remaining).toBe(100 - 3 - i);
      }
    } finally {
      writes.restore();
    }
    // Four counters, all in Redis under the configured prefix.
    expect((await inspector.keys(`${prefix}rl:*`)).length).toBe(4);
  });

  it("shares store calls between concurrent requests of a hot key", async () => {
    const secret = await keyOnPlan(
      flux,
      "busy",
      [
        { name: "minute", limit: 100_000, window: "1m" },
        { name: "hour", limit: 1_000_000, window: "1h" },
      ],
      { limit: 10_000_000, period: "day" },
    );
    await flux.keys.verify(secret); // cached, script loaded
    const calls = async () => {
      const stats = (await inspector.info("commandstats")).split("cmdstat_evalsha:")[1] ?? "";
      return Number(/calls=(\d+)/.exec(stats)?.[1] ?? 0);
    };
    const before = await calls();
    const results = await Promise.all(Array.from({ length: 300 }, () => flux.keys.check(secret)));
    const used = (await calls()) - before;
    expect(results.every((r) => r.valid)).toBe(true);
    // Every request saw its own place in each window: 300 distinct values, nothing counted twice.
    const remaining = results.map((r) => (r.valid ? r.context.rateLimit?.windows[0]?.remaining : -1));
    expect(new Set(remaining).size).toBe(300);
    expect(Math.min(...(remaining as number[]))).toBe(100_000 - 1 - 300);
    const read = await flux.keys.check(secret, { cost: 0 });
    expect(read.valid && read.context.rateLimit?.quota?.remaining).toBe(10_000_000 - 1 - 300);
    // One call per counter per request would be 900 (3 counters × 300 requests).
    expect(used).toBeGreaterThan(0);
    expect(used).toBeLessThan(300);
  });

  it("answers shared calls exactly as if the requests had been counted one by one", async () => {
    const secret = await keyOnPlan(
      flux,
      "hot",
      [
        { name: "minute", limit: 150, window: "1m" },
        { name: "hour", limit: 1000, window: "1h" },
      ],
      { limit: 5000, period: "day" },
    );
    await flux.keys.verify(secret); // 149 left in the minute window
    const costs = Array.from({ length: 300 }, (_, i) => 1 + (i % 3)); // 1, 2, 3, 1, 2, 3…
    const results = await Promise.all(costs.map((cost) => flux.keys.check(secret, { cost })));

    // In arrival order, each admitted while what was admitted before it plus its own cost stays
    // within 149; a refused request consumes nothing, so a cheaper one after it may still fit.
    let sum = 0;
    const expected = costs.map((cost) => {
      if (sum + cost > 149) return false;
      sum += cost;
      return true;
    });
    expect(results.map((r) => r.valid)).toEqual(expected);
    const remaining = results.flatMap((r) => (r.valid ? [r.context.rateLimit?.windows[0]?.remaining] : []));
    for (let i = 1; i < remaining.length; i++) expect(remaining[i]).toBeLessThan(remaining[i - 1] as number);
    expect(Math.min(...(remaining as number[]))).toBeGreaterThanOrEqual(0);
    // Refused requests were given back to the hour window and the quota: only admitted units stay.
    const admittedUnits = costs.filter((_, i) => expected[i]).reduce((a, b) => a + b, 0);
    const read = await flux.keys.check(secret, { cost: 0 });
    expect(read.valid && read.context.rateLimit?.windows[1]?.remaining).toBe(1000 - 1 - admittedUnits);
    expect(read.valid && read.context.rateLimit?.quota?.remaining).toBe(5000 - 1 - admittedUnits);
  });

  it("loads the script again where Redis lost it (SCRIPT FLUSH), counting each request once", async () => {
    const secret = await keyOnPlan(flux, "flushed", [{ name: "minute", limit: 1000, window: "1m" }], {
      limit: 1000,
      period: "day",
    });
    await flux.keys.verify(secret); // cached, script loaded: 999 left
    const evals = async () => {
      const stats = await inspector.info("commandstats");
      const calls = (name: string) =>
        Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
      return { evalsha: calls("evalsha"), eval: calls("eval") };
    };
    await inspector.script("FLUSH");
    const before = await evals();
    const results = await Promise.all(Array.from({ length: 5 }, () => flux.keys.check(secret)));
    const after = await evals();
    expect(results.every((r) => r.valid)).toBe(true);
    // The first call answered NOSCRIPT (nothing ran) and was sent once more with the script's text.
    expect(after.eval - before.eval).toBeGreaterThanOrEqual(1);
    const read = await flux.keys.check(secret, { cost: 0 });
    expect(read.valid && read.context.rateLimit?.windows[0]?.remaining).toBe(1000 - 1 - 5);
    expect(read.valid && read.context.rateLimit?.quota?.remaining).toBe(1000 - 1 - 5);
    // Loaded again: the next request is an EVALSHA.
    const loaded = await evals();
    expect((await flux.keys.check(secret)).valid).toBe(true);
    const last = await evals();
    expect(last.evalsha - loaded.evalsha).toBe(1);
    expect(last.eval - loaded.eval).toBe(0);
  });

  it("keeps the key prefix of a client the app passes (ioredis keyPrefix)", async () => {
    const own = new Redis(REDIS_URL, { keyPrefix: `${prefix}app:` });
    const other = await createFlux({ database: { pglite: true }, redis: { client: own, keyPrefix: "fx:" } });
    try {
      const secret = await keyOnPlan(other, "prefixed", [{ name: "minute", limit: 10, window: "1m" }]);
      expect((await other.keys.verify(secret)).rateLimit?.windows[0]?.remaining).toBe(9);
      const stored = await inspector.keys(`${prefix}app:fx:rl:*`);
      expect(stored.length).toBe(1);
    } finally {
      await other.close();
      own.disconnect();
    }
  });

  it("counts on a client the app passes that never resends, with or without auto-pipelining", async () => {
    const name = uniqueName("own").replace(/[^a-z0-9_]/gi, "_");
    const own = new Redis(REDIS_URL, { connectionName: name, autoResendUnfulfilledCommands: false });
    const other = await createFlux({
      database: { pglite: true },
      redis: { client: own, keyPrefix: `${prefix}own:` },
    });
    try {
      const secret = await keyOnPlan(other, "own", [{ name: "minute", limit: 10, window: "1m" }]);
      expect((await other.keys.verify(secret)).rateLimit?.windows[0]?.remaining).toBe(9);
      // No duplicate connection (a duplicate would carry the same name).
      const clients = (await inspector.client("LIST")) as string;
      expect(clients.split("\n").filter((line) => line.includes(` name=${name} `))).toHaveLength(1);
    } finally {
      await other.close();
      own.disconnect();
    }
  });

  it("sends the calls of requests that arrive in one turn to Redis in one socket write", async () => {
    await flux.plans.upsert({
      id: "turn",
      name: "turn",
      rateLimits: [{ name: "m", limit: 100, window: "1m" }],
    });
    await flux.orgs.create({ id: "turn-org", name: "turn", planId: "turn" });
    const secrets: string[] = [];
    for (let i = 0; i < 20; i++) secrets.push((await flux.keys.create().forOrg("turn-org").issue()).secret);
    for (const secret of secrets) await flux.keys.verify(secret); // cached, script loaded
    // What reaches the socket's handle: each `_write` or `_writev` is one write to the kernel.
    const stream = (
      flux.internals.redis as unknown as { stream: Record<string, (...a: unknown[]) => unknown> }
    ).stream;
    const originals = { _write: stream._write, _writev: stream._writev };
    let handoffs = 0;
    for (const name of ["_write", "_writev"] as const) {
      const original = originals[name] as (...a: unknown[]) => unknown;
      stream[name] = function (this: unknown, ...args: unknown[]) {
        handoffs++;
        return original.apply(this, args);
      };
    }
    try {
      // Twenty keys (twenty separate calls), as twenty requests read in one turn's I/O.
      const results = await Promise.all(secrets.map((secret) => flux.keys.check(secret)));
      expect(results.every((r) => r.valid && r.context.rateLimit?.windows[0]?.remaining === 98)).toBe(true);
      expect(handoffs).toBe(1);
      // And one request alone is written at once, in the turn it arrived.
      handoffs = 0;
      expect((await flux.keys.check(secrets[0] as string)).valid).toBe(true);
      expect(handoffs).toBe(1);
    } finally {
      Object.assign(stream, originals);
    }
  });

  it("answers an exhausted window from the process without a round trip", async () => {
    const secret = await keyOnPlan(flux, "tiny", [{ name: "rpm", limit: 2, window: "1m" }]);
    await flux.keys.verify(secret);
    await flux.keys.verify(secret);
    expect((await flux.keys.check(secret)).valid).toBe(false);
    const writes = countWrites(flux.internals.redis as Redis);
    try {
      for (let i = 0; i < 20; i++) {
        const result = await flux.keys.check(secret);
        expect(result.valid ? "valid" : result.error.code).toBe("rate_limited");
      }
      expect(writes.count()).toBe(0);
    } finally {
      writes.restore();
    }
  });
});

describe.skipIf(!hasRedis || !hasPostgres)("limits across instances", () => {
  const instances: Flux[] = [];
  let drop: () => Promise<void>;
  const prefix = `${uniqueName("limits")}:`;

  beforeAll(async () => {
    const schema = await freshSchema();
    drop = schema.drop;
    for (let i = 0; i < 4; i++) {
      instances.push(
        await createFlux({
          database: { url: DATABASE_URL, schema: schema.schema, poolSize: 3 },
          redis: { url: REDIS_URL, keyPrefix: prefix },
        }),
      );
    }
  });

  afterAll(async () => {
    const inspector = new Redis(REDIS_URL);
    const keys = await inspector.keys(`${prefix}*`);
    if (keys.length > 0) await inspector.del(...keys);
    inspector.disconnect();
    for (const flux of instances) await flux.close();
    await drop?.();
  });

  it("admits exactly the limit when four instances race 500 requests", async () => {
    const [first] = instances as [Flux];
    await first.plans.upsert({
      id: "hundred",
      name: "hundred",
      rateLimits: [{ name: "w", limit: 100, window: "1h" }],
    });
    await first.orgs.create({ id: "race", name: "race", planId: "hundred" });
    const { secret } = await first.keys.create().forOrg("race").issue();
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) => (instances[i % 4] as Flux).keys.check(secret)),
    );
    expect(results.filter((r) => r.valid)).toHaveLength(100);
    const codes = new Set(results.filter((r) => !r.valid).map((r) => (r.valid ? "" : r.error.code)));
    expect([...codes]).toEqual(["rate_limited"]);
    // Each instance answers from the same counter.
    for (const flux of instances) {
      const read = await flux.keys.check(secret, { cost: 0 });
      expect(read.valid && read.context.rateLimit?.windows[0]?.remaining).toBe(0);
    }
  });
});

/**
 * The fixed-window edge bound: windows start at the first request and last W seconds, so any span
 * of W seconds overlaps at most two windows and passes at most 2L (L late in one window, L early in
 * the next). The test builds that worst case on purpose and checks the bound over every span.
 */
/** The most requests admitted within any one second, hammering across a window edge. */
async function mostAdmittedInOneSecond(flux: Flux, secret: string, limit: number): Promise<number> {
  const admittedAt: number[] = [];
  const attempt = async () => {
    const result = await flux.keys.check(secret);
    if (result.valid) admittedAt.push(Date.now());
    return result;
  };
  // Warm up first (the key read, the store's connection and script), consuming nothing, so that
  // the window's first request is not also the process's first round trip.
  expect((await flux.keys.check(secret, { cost: 0 })).valid).toBe(true);
  // The window opens while the first request is decided: at the earliest when it was sent, so
  // "late in the window" is counted from then (a slow first answer cannot push it past the end).
  const windowStart = Date.now();
  const opened = await attempt();
  expect(opened.valid).toBe(true);
  // Late in the first window: use up the rest of it.
  await sleep(Math.max(0, windowStart + 850 - Date.now()));
  for (let i = 1; i < limit; i++) expect((await attempt()).valid).toBe(true);
  expect((await attempt()).valid).toBe(false);
  // Hammer through the boundary and on for a while.
  const until = windowStart + 2_300;
  while (Date.now() < until) {
    await attempt();
    await sleep(2);
  }
  let worst = 0;
  for (let i = 0; i < admittedAt.length; i++) {
    let count = 0;
    for (
      let j = i;
      j < admittedAt.length && (admittedAt[j] as number) - (admittedAt[i] as number) < 1_000;
      j++
    ) {
      count++;
    }
    worst = Math.max(worst, count);
  }
  return worst;
}

describe("the fixed-window edge bound", () => {
  it("holds on the memory store", async () => {
    const flux = await createFlux({ database: { pglite: true }, redis: null });
    try {
      await flux.plans.upsert({
        id: "edge",
        name: "edge",
        rateLimits: [{ name: "s", limit: 5, window: "1s" }],
      });
      await flux.orgs.create({ id: "edge", name: "edge", planId: "edge" });
      const { secret } = await flux.keys.create().forOrg("edge").issue();
      const worst = await mostAdmittedInOneSecond(flux, secret, 5);
      // The edge is real (more than L passed within one second)...
      expect(worst).toBeGreaterThan(5);
      // ...and bounded: never more than 2L in any one-second span.
      expect(worst).toBeLessThanOrEqual(10);
    } finally {
      await flux.close();
    }
  });

  it.skipIf(!hasRedis)("holds on Redis", async () => {
    const prefix = `${uniqueName("edge")}:`;
    const flux = await createFlux({
      database: { pglite: true },
      redis: { url: REDIS_URL, keyPrefix: prefix },
    });
    try {
      await flux.plans.upsert({
        id: "edge",
        name: "edge",
        rateLimits: [{ name: "s", limit: 5, window: "1s" }],
      });
      await flux.orgs.create({ id: "edge", name: "edge", planId: "edge" });
      const { secret } = await flux.keys.create().forOrg("edge").issue();
      const worst = await mostAdmittedInOneSecond(flux, secret, 5);
      // The edge is real (more than L passed within one second)...
      expect(worst).toBeGreaterThan(5);
      // ...and bounded: never more than 2L in any one-second span.
      expect(worst).toBeLessThanOrEqual(10);
    } finally {
      await flux.close();
    }
  });
});
