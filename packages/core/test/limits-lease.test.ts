/**
 * Leasing (`limits.lease`, opt-in, on Redis): a busy key costs one store call per `units`
 * requests, never more than a window's limit is admitted across instances, a lease is not spent
 * past the window (or the sliding period, or the quota period) that granted it, and what leasing
 * gives up is bounded: at most `units - 1` of a window left unused per instance.
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
import { createFlux, type Flux, FluxConfigError, type RateLimitWindow } from "../src/index.js";

describe("limits.lease option", () => {
  it("is off by default, and refuses a lease it cannot use", async () => {
    const flux = await createFlux({ database: { pglite: true }, redis: null });
    try {
      expect(flux.internals.options.limits.lease).toBe(false);
    } finally {
      await flux.close();
    }
    for (const lease of [{ units: 1 }, { units: 2.5 }, { unit: 5 }, true, "100"]) {
      await expect(
        createFlux({ database: { pglite: true }, redis: null, limits: { lease: lease as never } }),
      ).rejects.toBeInstanceOf(FluxConfigError);
    }
  });
});

describe.skipIf(!hasRedis || !hasPostgres)("limits.lease on Redis, instances on one PostgreSQL", () => {
  const prefix = `${uniqueName("lease")}:`;
  let inspector: Redis;
  let a: Flux;
  let b: Flux;
  let exact: Flux;
  let plans = 0;

  let schema: string;
  let drop: () => Promise<void>;
  let clockNow = 0;
  /** Instances on one database and one Redis; `clocked` ones run on the test's clock. */
  const open = (units: number | null, clocked = false) =>
    createFlux({
      database: { url: DATABASE_URL, schema, poolSize: 2 },
      redis: { url: REDIS_URL, keyPrefix: prefix },
      limits: units === null ? {} : { lease: { units } },
      ...(clocked ? { clock: () => clockNow } : {}),
    });

  /** A key of a fresh org on a fresh plan with these limits. */
  async function keyOn(rateLimits: RateLimitWindow[], quota?: { limit: number; period: "day" }) {
    const id = `p${plans++}`;
    await a.plans.upsert({ id, name: id, rateLimits, ...(quota ? { quota } : {}) });
    await a.orgs.create({ id: `${id}-org`, name: id, planId: id });
    return (await a.keys.create().forOrg(`${id}-org`).issue()).secret;
  }

  const evalshaCalls = async () => {
    const stats = (await inspector.info("commandstats")).split("cmdstat_evalsha:")[1] ?? "";
    return Number(/calls=(\d+)/.exec(stats)?.[1] ?? 0);
  };

  beforeAll(async () => {
    ({ schema, drop } = await freshSchema());
    inspector = new Redis(REDIS_URL);
    a = await open(10);
    b = await open(10);
    exact = await open(null);
  });

  afterAll(async () => {
    const keys = await inspector.keys(`${prefix}*`);
    if (keys.length > 0) await inspector.del(...keys);
    inspector.disconnect();
    await Promise.all([a?.close(), b?.close(), exact?.close()]);
    await drop?.();
  });

  it("costs one store call per lease, not per request", async () => {
    const secret = await keyOn([{ name: "minute", limit: 10_000, window: "1m" }]);
    await a.keys.verify(secret); // cached, script loaded, first lease taken
    const before = await evalshaCalls();
    for (let i = 0; i < 99; i++) await a.keys.verify(secret);
    // 1 + 99 requests: ten leases of ten units, the first one before the count.
    expect((await evalshaCalls()) - before).toBe(9);
    const context = await a.keys.verify(secret);
    // The headers count what this instance holds: 10,000 - 110 leased + 9 held.
    expect(context.rateLimit?.windows[0]?.remaining).toBe(10_000 - 110 + 9);
  });

  it("never admits more than the limit across instances, and leaves at most units - 1 per instance unused", async () => {
    for (const algorithm of ["fixed", "sliding"] as const) {
      const secret = await keyOn([{ name: "minute", limit: 100, window: "1m", algorithm }]);
      const results = await Promise.all(
        Array.from({ length: 300 }, (_, i) => (i % 2 === 0 ? a : b).keys.check(secret)),
      );
      const admitted = results.filter((result) => result.valid).length;
      expect(admitted, algorithm).toBeLessThanOrEqual(100);
      expect(admitted, algorithm).toBeGreaterThanOrEqual(100 - 2 * 9);
      // Refused requests consumed nothing: exact decisions see what the leases left.
      const left = await exact.keys.check(secret);
      expect(left.valid, algorithm).toBe(admitted < 100);
    }
  });

  it("decides exactly once a lease no longer fits, so one instance loses nothing", async () => {
    const secret = await keyOn([{ name: "minute", limit: 25, window: "1m" }]);
    const results: boolean[] = [];
    for (let i = 0; i < 40; i++) results.push((await a.keys.check(secret)).valid);
    // Two leases of ten, then five exact decisions, then refusals.
    expect(results.filter(Boolean)).toHaveLength(25);
    expect(results.slice(0, 25).every(Boolean)).toBe(true);
  });

  it("does not spend a lease after the fixed window that granted it has reset", async () => {
    const secret = await keyOn([{ name: "second", limit: 20, window: "1s" }]);
    expect((await a.keys.check(secret)).valid).toBe(true); // a holds 9 of its lease
    expect((await b.keys.check(secret)).valid).toBe(true); // b holds 9
    await sleep(1_150); // the window resets; what a and b hold must not be spent in the next
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? a : b).keys.check(secret)),
    );
    expect(results.filter((result) => result.valid).length).toBeLessThanOrEqual(20);
  });

  it("does not spend a lease after the sliding period that granted it", async () => {
    clockNow = Date.UTC(2026, 0, 1, 0, 0, 0, 100);
    const [x, y] = await Promise.all([open(10, true), open(10, true)]);
    try {
      const secret = await keyOn([{ name: "second", limit: 20, window: "1s", algorithm: "sliding" }]);
      expect((await x.keys.check(secret)).valid).toBe(true); // x holds 9
      expect((await y.keys.check(secret)).valid).toBe(true); // y holds 9
      const race = async () => {
        const results = await Promise.all(
          Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? x : y).keys.check(secret)),
        );
        return results.filter((result) => result.valid).length;
      };
      // The next period, 10% in: the previous one's 20 leased units weigh 18, so 2 may pass. What
      // x and y still hold was leased in the previous period and must not be spent now.
      clockNow += 1_000;
      expect(await race()).toBe(2);
      // Two periods later the window is empty: 20 may pass, and no more.
      clockNow += 2_000;
      expect(await race()).toBe(20);
    } finally {
      await Promise.all([x.close(), y.close()]);
    }
  });

  it("does not lease a key with a GCRA window, nor a request that costs more than a lease", async () => {
    const gcra = await keyOn([{ name: "rate", limit: 1_000, window: "1m", algorithm: "gcra" }]);
    await a.keys.verify(gcra);
    let before = await evalshaCalls();
    for (let i = 0; i < 20; i++) await a.keys.verify(gcra);
    expect((await evalshaCalls()) - before).toBe(20);

    const secret = await keyOn([{ name: "minute", limit: 1_000, window: "1m" }]);
    await a.keys.verify(secret);
    before = await evalshaCalls();
    for (let i = 0; i < 5; i++) await a.keys.verify(secret, { cost: 11 });
    expect((await evalshaCalls()) - before).toBe(5);
  });

  it("leases the quota with the windows, and never past its limit", async () => {
    const secret = await keyOn([{ name: "minute", limit: 1_000, window: "1m" }], {
      limit: 55,
      period: "day",
    });
    const results = await Promise.all(
      Array.from({ length: 120 }, (_, i) => (i % 2 === 0 ? a : b).keys.check(secret)),
    );
    const admitted = results.filter((result) => result.valid).length;
    expect(admitted).toBeLessThanOrEqual(55);
    expect(admitted).toBeGreaterThanOrEqual(55 - 2 * 9);
    const refused = results.find((result) => !result.valid);
    expect(refused?.valid === false && refused.error.code).toBe("quota_exceeded");
  });
});
