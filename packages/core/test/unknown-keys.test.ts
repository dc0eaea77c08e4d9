/**
 * A flood of well-formed keys nobody issued: kept apart from the known keys in the cache (so it
 * evicts none), refused by the digest filter without a database query, and a key issued on one
 * instance is let in at once on another through the invalidation bus.
 */
import { createFlux, type Flux } from "@flux-keys/core";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DATABASE_URL,
  freshSchema,
  hasPostgres,
  hasRedis,
  REDIS_URL,
  uniqueName,
} from "../../../test/support/services.js";
import { DigestFilter } from "../src/keys/digest-filter.js";
import { generateKey } from "../src/keys/format.js";

const stranger = () => generateKey("flux", "live").secret;

/** Counts the key lookups (`… WHERE k."digest" = $1`) sent through the real pg driver. */
function countKeyLookups(): { readonly count: number; stop(): void } {
  const original = pg.Client.prototype.query;
  const counter = { count: 0 };
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const first = args[0] as string | { text?: string } | undefined;
    const text = typeof first === "string" ? first : (first?.text ?? "");
    if (text.includes('WHERE k."digest"')) counter.count++;
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  return {
    get count() {
      return counter.count;
    },
    stop() {
      pg.Client.prototype.query = original;
    },
  };
}

describe("DigestFilter", () => {
  it("never forgets what was added, and is wrong about the rest at about its rate", () => {
    const filter = new DigestFilter(20_000, 0.001);
    const digests = Array.from({ length: 20_000 }, () => crypto.randomUUID().replaceAll("-", ""));
    for (const digest of digests) filter.add(digest);
    expect(digests.every((digest) => filter.has(digest))).toBe(true);
    let wrong = 0;
    for (let i = 0; i < 100_000; i++) if (filter.has(crypto.randomUUID().replaceAll("-", ""))) wrong++;
    expect(wrong / 100_000).toBeLessThan(0.003);
    // 14.4 bits per key at 0.1 %.
    expect(filter.bytes).toBeLessThan(20_000 * 2);
  });
});

describe("unknown keys on PGlite", () => {
  let flux: Flux;
  beforeAll(async () => {
    flux = await createFlux({
      database: { pglite: true },
      redis: null,
      cache: { max: 50, negativeMax: 100 },
    });
    await flux.orgs.create({ id: "acme", name: "Acme" });
  });
  afterAll(() => flux?.close());

  it("a flood of unknown keys evicts no known key, and its own cache stays within negativeMax", async () => {
    const secrets: string[] = [];
    for (let i = 0; i < 50; i++) secrets.push((await flux.keys.create().forOrg("acme").issue()).secret);
    for (const secret of secrets) expect((await flux.keys.check(secret)).valid).toBe(true);
    for (let i = 0; i < 5_000; i++) {
      const result = await flux.keys.check(stranger());
      expect(result.valid ? "valid" : result.error.code).toBe("key_invalid");
    }
    for (const secret of secrets) expect(flux.internals.cache.get(flux.keys.digest(secret))).toBeTruthy();
    expect(flux.internals.cache.size).toBe(50);
    expect(flux.internals.unknownKeys.remembered).toBeLessThanOrEqual(100);
    expect(flux.internals.unknownKeys.stats.refusedByFilter).toBeGreaterThan(4_900);
  });

  it("refuses bad cache options", async () => {
    for (const cache of [
      { negativeMax: 0 },
      { filter: "yes" },
      { unknownLookupsPerSecond: -1 },
      { nope: 1 },
    ]) {
      await expect(createFlux({ database: { pglite: true }, cache: cache as never })).rejects.toMatchObject({
        code: expect.stringMatching(/^(invalid_option|unknown_option)$/),
      });
    }
  });
});

describe.skipIf(!hasPostgres)("unknown keys on PostgreSQL", () => {
  let drop: () => Promise<void>;
  let schema: string;
  const opened: Flux[] = [];
  const open = async (extra: Parameters<typeof createFlux>[0] = {}) => {
    const flux = await createFlux({
      database: { url: DATABASE_URL, schema, poolSize: 2 },
      redis: null,
      ...extra,
    });
    opened.push(flux);
    return flux;
  };

  beforeAll(async () => {
    ({ schema, drop } = await freshSchema());
  });
  afterAll(async () => {
    for (const flux of opened) await flux.close();
    await drop?.();
  });

  it("the digest filter refuses unknown keys without a database query", async () => {
    const issuer = await open();
    await issuer.orgs.create({ id: "acme", name: "Acme" });
    const secrets: string[] = [];
    for (let i = 0; i < 20; i++) secrets.push((await issuer.keys.create().forOrg("acme").issue()).secret);
    // A fresh instance: nothing cached, the filter read from the table at start.
    const flux = await open();
    const filterOnly = await open({ cache: { unknownLookupsPerSecond: 0 } });
    const lookups = countKeyLookups();
    try {
      expect((await flux.keys.check(secrets[0])).valid).toBe(true);
      expect(lookups.count).toBe(1);
      const started = performance.now();
      for (let i = 0; i < 2_000; i++) {
        const result = await flux.keys.check(stranger());
        expect(result.valid ? "valid" : result.error.code).toBe("key_invalid");
      }
      const seconds = (performance.now() - started) / 1000;
      // At most the lookup budget (a burst of 20, then 20 a second) and the filter's false
      // positives (0.1 %): about 1 % of 2,000 on a quick machine, never one query per key.
      expect(lookups.count - 1).toBeLessThanOrEqual(20 + Math.ceil(20 * seconds) + 8);
      const before = lookups.count;
      for (let i = 0; i < 2_000; i++) await filterOnly.keys.check(stranger());
      // With no budget, only the filter's false positives are read: a handful of 2,000.
      expect(lookups.count - before).toBeLessThanOrEqual(8);
      // Every issued key passes the filter.
      for (const secret of secrets) expect((await filterOnly.keys.check(secret)).valid).toBe(true);
    } finally {
      lookups.stop();
    }
  });

  it.skipIf(!hasRedis)(
    "a key issued on instance A is accepted at once on instance B: its filter hears it on the bus",
    async () => {
      const redis = { url: REDIS_URL, keyPrefix: `${uniqueName("filter")}:` };
      const a = await open({ redis });
      // No lookup budget on B: only its digest filter can let a key it has not seen in.
      const b = await open({ redis, cache: { unknownLookupsPerSecond: 0, negativeTtl: "10m" } });
      await a.orgs.create({ id: "globex", name: "Globex" });
      const lookups = countKeyLookups();
      try {
        for (let i = 0; i < 200; i++) expect((await b.keys.check(stranger())).valid).toBe(false);
        // B refuses what its filter has not seen without asking the database...
        expect(lookups.count).toBeLessThanOrEqual(3);
      } finally {
        lookups.stop();
      }
      // ...and still lets in, at once, a key A issues after B started.
      const { secret } = await a.keys.create().forOrg("globex").issue();
      const deadline = Date.now() + 1_000;
      let result = await b.keys.check(secret);
      while (!result.valid && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        result = await b.keys.check(secret);
      }
      expect(result.valid).toBe(true);
      // Rotation's successor too.
      const rotated = await a.keys.rotate((await a.keys.create().forOrg("globex").issue()).key.id, {
        gracePeriod: "1h",
      });
      const until = Date.now() + 1_000;
      let successor = await b.keys.check(rotated.secret);
      while (!successor.valid && Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        successor = await b.keys.check(rotated.secret);
      }
      expect(successor.valid).toBe(true);
    },
  );
});
