/**
 * Fault: PostgreSQL stopped (pg_ctl stop -m fast) and started again under load, through the real
 * Express example app served from this process, on a throwaway cluster on a private port.
 *
 * What it proves:
 * - a key verified before the outage keeps working from the in-process cache for `cache.ttl` (every
 *   request answered before the entry can have expired is a 200), and is refused with 503
 *   `store_unavailable` once the entry has expired and the database is still down;
 * - a key never seen before the outage gets 503 `store_unavailable` (problem+json, never driver text);
 * - no request hangs (hang bound 3 s) and none is a 500 or an unhandled rejection;
 * - usage is buffered in memory within `usage.maxBufferedBuckets` (nothing dropped) while flushes
 *   fail, and flushed by the timer after recovery, with no restart: the totals in the database equal
 *   the verified responses the client received, per key, exactly.
 * - a flush whose connection dies after PostgreSQL committed it (a TCP proxy swallows the answer and
 *   cuts the connection) is kept, retried with the same batch id on a new connection, recognised and
 *   not applied again: the totals are exact, not doubled.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createFlux, type Flux } from "@flux-keys/core";
import { createApp } from "@flux-keys/example-express";
import pgLib from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Answer,
  ask,
  CuttingProxy,
  load,
  pgAvailable,
  ThrowawayPostgres,
  until,
} from "./support/faults-services.js";

const TTL_MS = 4_000;
const MAX_BUCKETS = 1_000;
const HANG_BOUND_MS = 3_000;

describe.skipIf(!pgAvailable)("fault: PostgreSQL stopped and restarted under load", () => {
  let pg: ThrowawayPostgres;
  let flux: Flux;
  let server: Server;
  let base: string;
  const keys: Record<"cached" | "uncached", { id: string; secret: string }> = {} as never;
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);

  beforeAll(async () => {
    process.on("unhandledRejection", onRejection);
    pg = await ThrowawayPostgres.create();
    await pg.start();
    flux = await createFlux({
      database: { url: pg.url, poolSize: 2 },
      redis: null,
      cache: { ttl: TTL_MS },
      usage: { flushInterval: "200ms", maxBufferedBuckets: MAX_BUCKETS },
    });
    await flux.plans.upsert({ id: "faults", name: "Faults", scopes: ["read:events"] });
    const org = await flux.orgs.create({ name: "pg-faults", planId: "faults" });
    for (const name of ["cached", "uncached"] as const) {
      const { key, secret } = await flux.keys
        .create()
        .forOrg(org.id)
        .named(name)
        .withScopes(["read:events"])
        .issue();
      keys[name] = { id: key.id, secret };
    }
    server = await new Promise<Server>((resolve) => {
      const s = createApp(flux).listen(0, "127.0.0.1", () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    if (server) {
      await new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
    }
    if (pg?.running) await flux?.close().catch(() => {});
    await pg?.destroy();
    process.off("unhandledRejection", onRejection);
  });

  // Two routes, so usage has several buckets: a list (200) and a missing event (404, still verified).
  const send = (name: "cached" | "uncached") => (i: number) =>
    ask(
      `${base}/v1/events${i % 3 === 0 ? "/evt_missing" : ""}`,
      { headers: { Authorization: `Bearer ${keys[name].secret}` } },
      HANG_BOUND_MS,
    );

  it("serves cached keys for their TTL, refuses the rest with 503, and loses no usage", async () => {
    const started = Date.now();
    const first = await send("cached")(1);
    expect(first.status).toBe(200);
    // The record was read from the database between these two instants; it expires TTL later.
    const expiresNotBefore = first.sentAt + TTL_MS;
    const expiresBy = first.doneAt + TTL_MS;

    const cachedLoad = load(send("cached"), { workers: 2, maxRequests: 2_000, pauseMs: 30 });
    await until(() => cachedLoad.answers.length >= 5, 5_000, "healthy answers");
    await pg.stop("fast");
    const down = Date.now();
    const uncachedLoad = load(send("uncached"), { workers: 1, maxRequests: 1_000, pauseMs: 30 });

    // Down until the cached entry has expired and been refused a few times.
    await until(
      () => cachedLoad.answers.filter((a) => a.sentAt > expiresBy).length >= 5,
      TTL_MS + 10_000,
      "cached key past its TTL",
    );
    const outageStats = flux.usage.stats();
    const restarting = Date.now();
    await pg.start();
    const up = Date.now();
    await until(
      () =>
        cachedLoad.answers.some((a) => a.sentAt > up && a.status !== 503) &&
        uncachedLoad.answers.some((a) => a.sentAt > up && a.status !== 503),
      10_000,
      "both keys served after recovery",
    );
    const [cached, uncached] = (await Promise.all([cachedLoad.stop(), uncachedLoad.stop()])) as [
      Answer[],
      Answer[],
    ];
    const all = [first, ...cached, ...uncached];

    // No hang, no network error, no 500: only the app's answers and store_unavailable.
    expect(all.filter((a) => ![200, 404, 503].includes(a.status))).toEqual([]);
    for (const a of all.filter((x) => x.status === 503)) {
      expect(a).toMatchObject({ code: "store_unavailable" });
    }

    // Cached key: served from memory while its entry lived, refused after, while still down.
    const cachedDuringOutage = cached.filter((a) => a.sentAt >= down && a.doneAt < restarting);
    const servedFromCache = cachedDuringOutage.filter((a) => a.doneAt < expiresNotBefore);
    expect(servedFromCache.length).toBeGreaterThan(0);
    expect(servedFromCache.every((a) => a.status !== 503)).toBe(true);
    const afterExpiry = cachedDuringOutage.filter((a) => a.sentAt > expiresBy);
    expect(afterExpiry.length).toBeGreaterThan(0);
    expect(afterExpiry.every((a) => a.status === 503)).toBe(true);

    // Uncached key: refused while down.
    const uncachedDuringOutage = uncached.filter((a) => a.doneAt < restarting);
    expect(uncachedDuringOutage.length).toBeGreaterThan(0);
    expect(uncachedDuringOutage.every((a) => a.status === 503)).toBe(true);

    // Usage was buffered within its bound while the flushes failed.
    expect(outageStats.failedFlushes).toBeGreaterThan(0);
    expect(outageStats.bufferedCalls).toBeGreaterThan(0);
    expect(outageStats.buffered).toBeLessThanOrEqual(MAX_BUCKETS);
    expect(outageStats.dropped).toBe(0);

    // The timer flushes everything after recovery; totals equal what the client received.
    await until(() => flux.usage.stats().buffered === 0, 10_000, "usage flushed after recovery");
    expect(flux.usage.stats()).toMatchObject({ dropped: 0, lastError: null });
    for (const [name, answers] of [
      ["cached", [first, ...cached]],
      ["uncached", uncached],
    ] as const) {
      const verified = answers.filter((a) => a.status === 200 || a.status === 404);
      const result = await flux.usage.query({
        keyId: keys[name].id,
        from: new Date(started - 120_000),
        to: new Date(Date.now() + 120_000),
        granularity: "hour",
        groupBy: ["status"],
      });
      const byStatus = Object.fromEntries(
        result.series.map((s) => [String(s.group.status), s.totals.calls]),
      ) as Record<string, number>;
      const expected: Record<string, number> = {};
      const ok = verified.filter((a) => a.status === 200).length;
      const missing = verified.length - ok;
      if (ok > 0) expected["2xx"] = ok;
      if (missing > 0) expected["4xx"] = missing;
      expect({ name, ...byStatus }).toEqual({ name, ...expected });
    }
    expect(rejections).toEqual([]);
    console.info(
      `[faults-postgres] ${Date.now() - started} ms; cached=${cached.length + 1} uncached=${uncached.length} answers, max ${Math.max(...all.map((a) => a.ms))} ms; buffered during outage: ${outageStats.bufferedCalls} calls in ${outageStats.buffered} buckets`,
    );
  }, 50_000);
  it("a flush committed but never acknowledged is retried and not counted twice", async () => {
    const started = Date.now();
    const proxy = await CuttingProxy.start(pg.port);
    const proxied = await createFlux({
      database: { url: `postgresql://postgres@127.0.0.1:${proxy.port}/postgres`, poolSize: 1 },
      redis: null,
      migrate: false,
      usage: { flushInterval: "1h" },
    });
    try {
      const at = Date.now();
      const record = (n: number, keyId: string) => {
        for (let i = 0; i < n; i++) {
          proxied.usage.record({
            keyId,
            orgId: "org_cut",
            method: "GET",
            endpoint: "/v1/cut",
            status: 200,
            latencyMs: 1,
            at,
          });
        }
      };
      record(40, "key_cut_a");
      record(2, "key_cut_b");
      proxy.arm("flux_usage_batches");
      const failure = await proxied.usage.flush().then(
        () => null,
        (error: unknown) => error,
      );
      expect(proxy.cuts).toBe(1);
      expect(failure).toMatchObject({ code: "store_unavailable" });
      expect(proxied.usage.stats()).toMatchObject({ bufferedCalls: 42, failedFlushes: 1 });
      // The batch is in the database already (checked directly); the retry carries the same id.
      const direct = new pgLib.Client({ connectionString: pg.url });
      await direct.connect();
      const { rows } = await direct.query(
        `SELECT coalesce(sum("count"), 0)::int AS n FROM "flux_usage_minutes" WHERE "org_id" = 'org_cut'`,
      );
      await direct.end();
      expect(rows[0]).toEqual({ n: 42 });
      record(3, "key_cut_a");
      await proxied.usage.flush();
      expect(proxied.usage.stats()).toMatchObject({ buffered: 0, dropped: 0, lastError: null });
      const result = await proxied.usage.query({
        orgId: "org_cut",
        from: new Date(at - 120_000),
        to: new Date(at + 120_000),
        granularity: "hour",
        groupBy: ["key"],
      });
      const totals = Object.fromEntries(result.series.map((s) => [s.group.keyId, s.totals.calls]));
      expect(totals).toEqual({ key_cut_a: 43, key_cut_b: 2 });
    } finally {
      await proxied.close();
      await proxy.close();
    }
    console.info(`[faults-postgres] lost acknowledgement: ${Date.now() - started} ms`);
  });
});
