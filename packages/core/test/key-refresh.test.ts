/**
 * A key in use is read again before its cache entry expires (refresh-ahead), so no request of a
 * hot key waits for the database when the TTL runs out, and keys read together are not all read
 * again in the same instant. The TTL still bounds what the cache serves: a change made behind the
 * invalidation bus's back (plain SQL, no NOTIFY) is seen within `cache.ttl`, as before.
 * Run on embedded PGlite and on PostgreSQL; the outage case on a PostgreSQL of its own.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgAvailable, ThrowawayPostgres } from "../../../test/support/faults-services.js";
import { STORES } from "../../../test/support/services.js";
import { createFlux, createHttpAuth, type Flux, type HttpAuthResult } from "../src/index.js";

const TTL_MS = 1_000;
/** What a bound on staleness may overrun by here: one read, one 20 ms poll period, a busy machine. */
const SLACK_MS = 150;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
// No client address: the refusals these tests provoke must not count against one.
const request = (secret: string) => ({
  method: "GET",
  url: "/v1/events",
  headers: { authorization: `Bearer ${secret}` },
});

/** Calls authenticateNow() every `everyMs` for `forMs`; how many had to wait (returned a promise). */
async function drive(
  flux: Flux,
  secret: string,
  forMs: number,
  everyMs = 20,
  each?: (result: HttpAuthResult, at: number) => void,
) {
  const auth = createHttpAuth(flux);
  let waited = 0;
  let calls = 0;
  const end = performance.now() + forMs;
  while (performance.now() < end) {
    const now = performance.now();
    let result = auth.authenticateNow(request(secret));
    if (result instanceof Promise) {
      waited++;
      result = await result;
    }
    calls++;
    each?.(result, now);
    await sleep(everyMs);
  }
  return { waited, calls };
}

describe.each(STORES)("refresh-ahead of cached keys on $name", (store) => {
  let flux: Flux;
  let teardown: () => Promise<void>;

  beforeAll(async () => {
    if (!store.available) return;
    const target = await store.setup();
    teardown = target.teardown;
    flux = await createFlux(target.options({ cache: { ttl: `${TTL_MS}ms` } }));
    await flux.orgs.create({ id: "acme", name: "Acme" });
  });

  afterAll(async () => {
    await flux?.close();
    await teardown?.();
  });

  const issue = async (name: string) => {
    const { key, secret } = await flux.keys.create().forOrg("acme").named(name).issue();
    // The first request reads the key (and waits for it); every later one is served from memory.
    const first = await createHttpAuth(flux).authenticateNow(request(secret));
    expect(first.ok ? "ok" : first.error.code).toBe("ok");
    return { id: key.id, secret };
  };

  /** A change the invalidation bus never hears of: its NOTIFY triggers do not fire (replica role). */
  const behindTheBus = (sql: string, id: string) => {
    const prisma = flux.internals.database.prisma;
    return prisma.$transaction([
      prisma.$executeRawUnsafe("SET LOCAL session_replication_role = replica"),
      prisma.$executeRawUnsafe(sql, id),
    ]);
  };

  it.skipIf(!store.available)(
    "no request of a key in use waits for the database when its TTL ends",
    async () => {
      const { secret } = await issue("hot");
      const { waited, calls } = await drive(flux, secret, TTL_MS * 3.5);
      expect(calls).toBeGreaterThan(50);
      expect(waited).toBe(0);
    },
  );

  it.skipIf(!store.available)("a change behind the bus's back is still seen within the TTL", async () => {
    const { id, secret } = await issue("before");
    await sleep(TTL_MS / 2);
    await behindTheBus(`UPDATE "flux_api_keys" SET "name" = 'after' WHERE "id" = $1`, id);
    const changedAt = performance.now();
    let seenAt: number | null = null;
    const { waited } = await drive(flux, secret, TTL_MS * 1.6, 20, (result, at) => {
      if (seenAt === null && result.ok && result.context.name === "after") seenAt = at;
    });
    expect(seenAt).not.toBeNull();
    // Read at most one TTL before the change was made, the old record was served no longer than a TTL.
    expect((seenAt as unknown as number) - changedAt).toBeLessThanOrEqual(TTL_MS + SLACK_MS);
    expect(waited).toBe(0);
  });

  it.skipIf(!store.available).each([
    [
      "a key revoked behind the bus's back",
      `UPDATE "flux_api_keys" SET "revoked_at" = now() WHERE "id" = $1`,
      "key_revoked",
    ],
    ["a key whose row is gone", `DELETE FROM "flux_api_keys" WHERE "id" = $1`, "key_invalid"],
  ])("%s is refused within the TTL", async (what, statement, expected) => {
    const { id, secret } = await issue(what);
    await behindTheBus(statement, id);
    const changedAt = performance.now();
    let refusedAt: number | null = null;
    let code: string | null = null;
    await drive(flux, secret, TTL_MS * 1.6, 20, (result, at) => {
      if (refusedAt === null && !result.ok) {
        refusedAt = at;
        code = result.error.code;
      }
    });
    expect(code).toBe(expected);
    expect((refusedAt as unknown as number) - changedAt).toBeLessThanOrEqual(TTL_MS + SLACK_MS);
  });

  it.skipIf(!store.available)("keys read together are read again spread over time, not at once", async () => {
    const keys = await Promise.all(Array.from({ length: 40 }, (_, i) => issue(`batch-${i}`)));
    const auth = createHttpAuth(flux);
    // All 40 are in use; each turn sends one request per key, as round-robin traffic would.
    const waitedAt: number[] = [];
    const start = performance.now();
    while (performance.now() - start < TTL_MS * 2.5) {
      for (const { secret } of keys) {
        const result = auth.authenticateNow(request(secret));
        if (result instanceof Promise) {
          waitedAt.push(performance.now() - start);
          await result;
        }
      }
      await sleep(10);
    }
    expect(waitedAt).toEqual([]);
  });
});

describe.skipIf(!pgAvailable && !process.env.CI)("refresh-ahead while the database is down", () => {
  let server: ThrowawayPostgres;
  let flux: Flux;

  beforeAll(async () => {
    server = await ThrowawayPostgres.create();
    await server.start();
    flux = await createFlux({
      database: { url: server.url },
      redis: null,
      cache: { ttl: `${TTL_MS}ms` },
      invalidation: { whenDatabaseDown: "refuse" },
    });
    await flux.orgs.create({ id: "acme", name: "Acme" });
  }, 60_000);

  afterAll(async () => {
    await flux?.close().catch(() => {});
    await server?.destroy();
  });

  it("answers from memory or refuses, never later than the TTL, and a failed refresh breaks nothing", async () => {
    const { secret } = await flux.keys.create().forOrg("acme").issue();
    const auth = createHttpAuth(flux);
    expect((await auth.authenticateNow(request(secret))).ok).toBe(true);
    await server.stop("immediate");
    const stoppedAt = performance.now();
    const outcomes: Array<{ at: number; code: string }> = [];
    await drive(flux, secret, TTL_MS * 1.8, 20, (result, at) => {
      outcomes.push({ at: at - stoppedAt, code: result.ok ? "ok" : result.error.code });
    });
    const firstRefusal = outcomes.findIndex((outcome) => outcome.code !== "ok");
    expect(firstRefusal).toBeGreaterThanOrEqual(0);
    // Served from memory until the instance knew better (the bus's loss, or the TTL at the latest)…
    expect(outcomes[firstRefusal]?.at).toBeLessThanOrEqual(TTL_MS + SLACK_MS);
    // …then refused, the database being unreachable: never served again from a record it cannot check.
    expect(outcomes.slice(firstRefusal).map((outcome) => outcome.code)).toEqual(
      outcomes.slice(firstRefusal).map(() => "store_unavailable"),
    );
  }, 30_000);
});
