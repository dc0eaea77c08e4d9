/**
 * Usage tracking on embedded PGlite and on PostgreSQL: every recorded call (served or refused) is
 * counted exactly once in every query dimension, outcome included, across flushes, retries, rollup
 * and pruning.
 */
import { cp, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STORES } from "../../../test/support/services.js";
import {
  type Call,
  ENDPOINTS,
  expectedSeries,
  generateCalls,
  mismatches,
  sumCalls,
} from "../../../test/support/usage-calls.js";
import { openDatabase } from "../src/database.js";
import {
  createFlux,
  type Flux,
  FluxError,
  type Granularity,
  type GroupDimension,
  migrate,
  USAGE_OUTCOMES,
} from "../src/index.js";
import { MIGRATIONS_DIR } from "../src/migrator.js";
import { UsageRecorder } from "../src/usage/usage-recorder.js";
import { dropPartitions, writeBatch } from "../src/usage/usage-store.js";

const START = Date.parse("2026-03-09T21:30:00Z"); // the calls cross midnight UTC: two days
const MINUTES = 180;
const END = START + MINUTES * 60_000;
const NOW = END + 60_000;

async function expectCode(promise: Promise<unknown>, code: string) {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FluxError);
  expect((error as FluxError).code).toBe(code);
}

describe.each(STORES)("usage on $name", (store) => {
  let flux: Flux;
  let teardown: () => Promise<void>;
  let calls: Call[];
  let keys: Array<{ keyId: string; orgId: string }>;
  let realKeyId: string;

  beforeAll(async () => {
    if (!store.available) return;
    const target = await store.setup();
    teardown = target.teardown;
    flux = await createFlux(
      target.options({ clock: () => NOW, usage: { flushInterval: "1h", batchSize: 500 } }),
    );
    await flux.orgs.create({ id: "acme", name: "Acme" });
    const { key } = await flux.keys.create().forOrg("acme").issue();
    realKeyId = key.id;
    keys = [
      { keyId: realKeyId, orgId: "acme" },
      { keyId: "key_a2", orgId: "acme" },
      { keyId: "key_a3", orgId: "acme" },
      { keyId: "key_g1", orgId: "globex" },
      { keyId: "key_g2", orgId: "globex" },
      { keyId: "key_i1", orgId: "initech" },
    ];
    calls = generateCalls(10_000, { seed: 42, start: START, minutes: MINUTES, keys });
    // Three flushes, so buckets that straddle them are added to, not overwritten.
    for (const [index, call] of calls.entries()) {
      expect(flux.usage.record(call)).toBe(true);
      if (index === 3_333 || index === 6_666) await flux.usage.flush();
    }
    await flux.usage.flush();
  });

  afterAll(async () => {
    await flux?.close();
    await teardown?.();
  });

  it.skipIf(!store.available)("flushes every call and keeps nothing behind", () => {
    expect(flux.usage.stats()).toMatchObject({
      buffered: 0,
      bufferedCalls: 0,
      flushed: 10_000,
      dropped: 0,
      rejected: 0,
      failedFlushes: 0,
      lastError: null,
    });
  });

  const grid: Array<{ granularity: Granularity; groupBy: GroupDimension[] }> = [];
  for (const granularity of ["minute", "hour", "day"] as const) {
    for (const groupBy of [
      [],
      ["key"],
      ["endpoint"],
      ["status"],
      ["outcome"],
      ["key", "endpoint", "status"],
      ["key", "endpoint", "status", "outcome"],
    ] as GroupDimension[][]) {
      grid.push({ granularity, groupBy });
    }
  }

  it.skipIf(!store.available).each(grid)(
    "answers $granularity series grouped by $groupBy exactly",
    async ({ granularity, groupBy }) => {
      const query = { from: new Date(START), to: new Date(END), granularity, groupBy };
      const result = await flux.usage.query(query);
      expect(mismatches(result, expectedSeries(calls, { ...query, from: START, to: END }))).toEqual([]);
      expect(sumCalls(result)).toBe(10_000);
    },
  );

  it.skipIf(!store.available)("answers one series per outcome, with exact totals", async () => {
    const result = await flux.usage.query({
      from: new Date(START),
      to: new Date(END),
      granularity: "day",
      groupBy: ["outcome"],
    });
    const want = new Map<string, number>();
    for (const call of calls) want.set(call.outcome, (want.get(call.outcome) ?? 0) + 1);
    // Every outcome occurs in the generated calls, refusals spread over all of them.
    expect(want.size).toBe(USAGE_OUTCOMES.length - 1);
    expect(Object.fromEntries(result.series.map((s) => [s.group.outcome, s.totals.calls]))).toEqual(
      Object.fromEntries(want),
    );
    // Without groupBy the totals count every call, refused ones included.
    const all = await flux.usage.query({ from: new Date(START), to: new Date(END), granularity: "day" });
    expect(all.series[0]?.totals.calls).toBe(calls.length);
    const served = await flux.usage.query({
      outcome: "allowed",
      from: new Date(START),
      to: new Date(END),
      granularity: "day",
    });
    expect(served.series[0]?.totals.calls).toBe(want.get("allowed"));
    expect(served.series[0]?.totals.calls).toBeLessThan(calls.length);
  });

  it.skipIf(!store.available)("filters by org, key, method, endpoint and outcome exactly", async () => {
    const filters = [
      { orgId: "acme" },
      { orgId: "globex" },
      { orgId: "nobody" },
      { keyId: "key_g2" },
      { orgId: "acme", keyId: "key_a3" },
      { method: "POST" },
      { endpoint: "/v1/events/:id" },
      { orgId: "acme", method: "GET", endpoint: "/v1/events/:id" },
      { outcome: "allowed" as const },
      { orgId: "globex", outcome: "rate_limited" as const },
    ];
    for (const filter of filters) {
      for (const granularity of ["minute", "hour"] as const) {
        // A window that cuts into the data on both sides.
        const from = START + 17 * 60_000;
        const to = START + 121 * 60_000;
        const result = await flux.usage.query({
          ...filter,
          from: new Date(from),
          to: new Date(to),
          granularity,
          groupBy: ["status"],
        });
        const expected = expectedSeries(calls, { ...filter, from, to, granularity, groupBy: ["status"] });
        expect(mismatches(result, expected), JSON.stringify(filter)).toEqual([]);
      }
    }
  });

  it.skipIf(!store.available)("zero-fills every bucket of the range", async () => {
    const from = new Date(START - 3_600_000);
    const to = new Date(END + 3_600_000);
    const result = await flux.usage.query({ keyId: "key_i1", from, to, granularity: "minute" });
    expect(result.series).toHaveLength(1);
    const points = result.series[0]?.points ?? [];
    expect(points).toHaveLength(MINUTES + 120);
    expect(points[0]).toEqual({ at: from, calls: 0, errors: 0, latencyAvgMs: null, latencyMaxMs: null });
    expect(points.every((p, i) => p.at.getTime() === from.getTime() + i * 60_000)).toBe(true);
    const empty = await flux.usage.query({ orgId: "nobody", from, to, granularity: "hour" });
    expect(empty.series).toHaveLength(1);
    expect(empty.series[0]?.points.every((p) => p.calls === 0)).toBe(true);
    // Unaligned bounds are widened to whole buckets.
    const widened = await flux.usage.query({
      from: new Date(START + 1_000),
      to: new Date(START + 61_000),
      granularity: "minute",
    });
    expect(widened.from.getTime()).toBe(START);
    expect(widened.to.getTime()).toBe(START + 120_000);
  });

  it.skipIf(!store.available)("ranks the top keys and endpoints of an org", async () => {
    const acme = calls.filter((c) => c.orgId === "acme");
    const byKey = new Map<string, number>();
    const byEndpoint = new Map<string, number>();
    for (const c of acme) {
      byKey.set(c.keyId, (byKey.get(c.keyId) ?? 0) + 1);
      byEndpoint.set(`${c.method} ${c.endpoint}`, (byEndpoint.get(`${c.method} ${c.endpoint}`) ?? 0) + 1);
    }
    const top = await flux.usage.top({
      orgId: "acme",
      by: "key",
      from: new Date(START),
      to: new Date(END),
      limit: 10,
    });
    expect(top.map((t) => [t.keyId, t.calls])).toEqual([...byKey].sort((a, b) => b[1] - a[1]));
    const topEndpoints = await flux.usage.top({
      orgId: "acme",
      by: "endpoint",
      from: new Date(START),
      to: new Date(END),
      limit: 2,
    });
    const want = [...byEndpoint].sort((a, b) => b[1] - a[1]).slice(0, 2);
    expect(topEndpoints.map((t) => [`${t.method} ${t.endpoint}`, t.calls])).toEqual(want);
    expect(topEndpoints[0]?.errors).toBe(
      acme.filter((c) => `${c.method} ${c.endpoint}` === want[0]?.[0] && c.status >= 400).length,
    );
  });

  it.skipIf(!store.available)("moves lastUsedAt of the key forward from the flush", async () => {
    // From served calls only: a refused call is not a use of the key.
    const last = Math.max(
      ...calls.filter((c) => c.keyId === realKeyId && c.outcome === "allowed").map((c) => c.at),
    );
    const key = await flux.keys.get(realKeyId);
    // Written at most once a minute: never ahead of the last call, at most a minute behind it.
    expect(key.lastUsedAt).not.toBeNull();
    expect(key.lastUsedAt!.getTime()).toBeLessThanOrEqual(last);
    expect(key.lastUsedAt!.getTime()).toBeGreaterThan(last - 60_000);
  });

  it.skipIf(!store.available)("refuses malformed calls without throwing, and counts them", () => {
    const before = flux.usage.stats().rejected;
    const good = { keyId: "k", orgId: "o", method: "GET", endpoint: "/x", status: 200, latencyMs: 1 };
    const bad: unknown[] = [
      null,
      "GET /x",
      { ...good, keyId: "" },
      { ...good, orgId: 7 },
      { ...good, endpoint: "/x?id=1" },
      { ...good, endpoint: "/x\0" },
      { ...good, endpoint: `/${"a".repeat(300)}` },
      { ...good, method: "" },
      { ...good, status: 99 },
      { ...good, status: 200.5 },
      { ...good, latencyMs: -1 },
      { ...good, latencyMs: Number.NaN },
      { ...good, latencyMs: Number.POSITIVE_INFINITY },
      { ...good, at: new Date(Number.NaN) },
      { ...good, at: "yesterday" },
      { ...good, outcome: "denied" },
      { ...good, outcome: 1 },
    ];
    for (const input of bad) expect(flux.usage.record(input as never)).toBe(false);
    expect(flux.usage.stats().rejected - before).toBe(bad.length);
    expect(flux.usage.stats().buffered).toBe(0);
  });

  it.skipIf(!store.available)("refuses invalid queries with invalid_request", async () => {
    const from = new Date(START);
    const to = new Date(END);
    await expectCode(flux.usage.query({ from: to, to: from, granularity: "hour" }), "invalid_request");
    await expectCode(flux.usage.query({ from, to, granularity: "week" as never }), "invalid_request");
    await expectCode(
      flux.usage.query({ from, to, granularity: "hour", groupBy: ["org" as never] }),
      "invalid_request",
    );
    await expectCode(
      flux.usage.query({ from, to, granularity: "hour", extra: 1 } as never),
      "invalid_request",
    );
    await expectCode(
      flux.usage.query({ from, to, granularity: "hour", outcome: "denied" as never }),
      "invalid_request",
    );
    await expectCode(
      flux.usage.query({ from: new Date(0), to, granularity: "minute" }), // far more than 50,000 minutes
      "invalid_request",
    );
    await expectCode(flux.usage.top({ orgId: "acme", by: "key", from, to, limit: 0 }), "invalid_request");
    await expectCode(flux.usage.prune({ olderThan: "soon" as never }), "invalid_request");
  });

  it.skipIf(!store.available)("does not count a batch twice when it is retried", async () => {
    const recorder = new UsageRecorder(100, () => NOW);
    const at = START + 5 * 60_000;
    for (let i = 0; i < 7; i++) {
      recorder.record({
        keyId: "key_retry",
        orgId: "initech",
        method: "get",
        endpoint: "/r",
        status: 200,
        latencyMs: i,
        at,
      });
    }
    recorder.seal(10);
    const batch = recorder.pending[0]!;
    const driver = flux.internals.database.driver;
    expect(await writeBatch(driver, batch)).toEqual({ fresh: true });
    // As after a commit whose reply was lost: the same batch again, then both at once.
    expect(await writeBatch(driver, batch)).toEqual({ fresh: false });
    await Promise.all([writeBatch(driver, batch), writeBatch(driver, batch)]);
    const result = await flux.usage.query({
      keyId: "key_retry",
      from: new Date(START),
      to: new Date(END),
      granularity: "day",
    });
    expect(result.series[0]?.totals).toEqual({ calls: 7, errors: 0, latencyAvgMs: 3, latencyMaxMs: 6 });
  });

  it.skipIf(!store.available)("rolls minute buckets up into hours without changing any total", async () => {
    const cut = START + 90 * 60_000; // 23:00: everything before moves into hour rows
    const { rolledUp } = await flux.usage.rollup({ olderThan: new Date(cut) });
    expect(rolledUp).toBeGreaterThan(0);
    expect((await flux.usage.rollup({ olderThan: new Date(cut) })).rolledUp).toBe(0);
    const calls2 = calls.concat(retryCalls());
    for (const granularity of ["hour", "day"] as const) {
      for (const groupBy of [[], ["key", "endpoint", "status", "outcome"]] as GroupDimension[][]) {
        const query = { from: new Date(START), to: new Date(END), granularity, groupBy };
        const result = await flux.usage.query(query);
        expect(mismatches(result, expectedSeries(calls2, { ...query, from: START, to: END }))).toEqual([]);
      }
    }
    // Minute resolution is gone before the cut (an hour's calls sit on its first minute), kept after.
    const minutes = await flux.usage.query({
      from: new Date(START),
      to: new Date(END),
      granularity: "minute",
    });
    expect(sumCalls(minutes)).toBe(calls2.filter((c) => c.at >= START + 30 * 60_000).length);
    const after = await flux.usage.query({ from: new Date(cut), to: new Date(END), granularity: "minute" });
    expect(mismatches(after, expectedSeries(calls2, { from: cut, to: END, granularity: "minute" }))).toEqual(
      [],
    );
    // Buckets recorded later for a rolled-up hour still count (late flush after an outage).
    flux.usage.record({ ...calls[0]!, at: START + 60_000 });
    await flux.usage.flush();
    await flux.usage.rollup({ olderThan: new Date(cut) });
    const total = await flux.usage.query({
      from: new Date(START - 3_600_000),
      to: new Date(END),
      granularity: "day",
    });
    expect(sumCalls(total)).toBe(calls2.length + 1);
  });

  it.skipIf(!store.available)("prunes whole buckets older than the cut-off", async () => {
    const cut = START + 150 * 60_000;
    const { deleted } = await flux.usage.prune({ olderThan: new Date(cut) });
    expect(deleted).toBeGreaterThan(0);
    const left = await flux.usage.query({
      from: new Date(START - 86_400_000),
      to: new Date(END),
      granularity: "day",
    });
    expect(sumCalls(left)).toBe(calls.filter((c) => c.at >= cut).length);
    // A duration is an age relative to the clock.
    await flux.usage.prune({ olderThan: "1m" });
    const none = await flux.usage.query({
      from: new Date(START - 86_400_000),
      to: new Date(END),
      granularity: "day",
    });
    expect(sumCalls(none)).toBe(0);
  });

  function retryCalls(): Call[] {
    return Array.from({ length: 7 }, (_, i) => ({
      keyId: "key_retry",
      orgId: "initech",
      method: "GET",
      endpoint: "/r",
      status: 200,
      latencyMs: i,
      outcome: "allowed" as const,
      at: START + 5 * 60_000,
    }));
  }
});

describe("usage buffer", () => {
  const call = {
    keyId: "k1",
    orgId: "o1",
    method: "GET",
    endpoint: ENDPOINTS[0][1],
    status: 200,
    latencyMs: 2,
  };

  it("stops creating buckets at its bound, counts what it drops, and keeps filling existing ones", () => {
    const recorder = new UsageRecorder(3, () => START);
    for (let minute = 0; minute < 5; minute++) recorder.record({ ...call, at: START + minute * 60_000 });
    expect(recorder.bufferedBuckets).toBe(3);
    expect(recorder.dropped).toBe(2);
    expect(recorder.record({ ...call, at: START })).toBe(true);
    expect(recorder.bufferedCalls).toBe(4);
    // Sealed batches still count against the bound until the database took them.
    recorder.seal(2);
    expect(recorder.pending.map((b) => b.buckets.length)).toEqual([2, 1]);
    expect(recorder.record({ ...call, at: START + 9 * 60_000 })).toBe(false);
    recorder.settle(recorder.pending[0]!);
    expect(recorder.record({ ...call, at: START + 9 * 60_000 })).toBe(true);
    expect(recorder.bufferedBuckets).toBe(2);
  });

  it("keeps one bucket per key, minute, method, endpoint and status class", () => {
    const recorder = new UsageRecorder(100, () => START + 30_000);
    recorder.record(call);
    recorder.record({ ...call, method: "get", status: 204, latencyMs: 7, at: START + 59_999 });
    recorder.record({ ...call, status: 404 });
    recorder.record({ ...call, at: START + 60_000 });
    recorder.record({ ...call, keyId: "k2" });
    recorder.seal(100);
    const buckets = recorder.pending[0]!.buckets;
    expect(buckets).toHaveLength(4);
    expect(buckets[0]).toMatchObject({
      method: "GET",
      statusClass: 2,
      minute: START,
      count: 2,
      latencySum: 9,
      latencyMax: 7,
    });
    expect(buckets[0]?.lastAt).toBe(START + 59_999);
  });
});

describe.skipIf(!STORES[0]?.available)("usage lifecycle", () => {
  it("flushes on close() and drops (and counts) what is recorded afterwards", async () => {
    const dir = await mkdtemp(join(tmpdir(), "flux-usage-"));
    try {
      const options = { database: { pglite: dir }, redis: null, usage: { flushInterval: "1h" as const } };
      const flux = await createFlux(options);
      const call = {
        keyId: "k",
        orgId: "o",
        method: "GET",
        endpoint: "/x",
        status: 200,
        latencyMs: 1,
        at: START,
      };
      for (let i = 0; i < 5; i++) flux.usage.record(call);
      expect(flux.usage.stats()).toMatchObject({ bufferedCalls: 5, flushed: 0 });
      await flux.close();
      expect(flux.usage.record(call)).toBe(false);
      expect(flux.usage.stats()).toMatchObject({ flushed: 5, dropped: 1, buffered: 0 });
      const reopened = await createFlux(options);
      const result = await reopened.usage.query({
        from: new Date(START),
        to: new Date(END),
        granularity: "day",
      });
      await reopened.close();
      expect(sumCalls(result)).toBe(5);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("flushes early once flushAt buckets are buffered", async () => {
    const flux = await createFlux({
      database: { pglite: true },
      redis: null,
      usage: { flushInterval: "1h", flushAt: 10 },
    });
    try {
      for (let i = 0; i < 10; i++) {
        flux.usage.record({
          keyId: `k${i}`,
          orgId: "o",
          method: "GET",
          endpoint: "/x",
          status: 200,
          latencyMs: 1,
        });
      }
      // No timer fired (1h): the size bound scheduled a flush; wait for it through the flush queue.
      await new Promise((resolve) => setImmediate(resolve));
      await flux.usage.flush();
      expect(flux.usage.stats()).toMatchObject({ flushed: 10, buffered: 0 });
      expect(flux.usage.stats().flushes).toBe(2);
    } finally {
      await flux.close();
    }
  });

  it("reports unknown and invalid usage options", async () => {
    await expect(createFlux({ usage: { flushEvery: 1 } as never })).rejects.toMatchObject({
      code: "unknown_option",
    });
    await expect(createFlux({ usage: { maxBufferedBuckets: 0 } })).rejects.toMatchObject({
      code: "invalid_option",
    });
    await expect(createFlux({ usage: { rollupAfter: "1m" } })).rejects.toMatchObject({
      code: "invalid_option",
    });
  });
});

describe.each(STORES)("usage migrations of existing data on $name", (store) => {
  it.skipIf(!store.available)(
    "turns every existing usage row into an 'allowed' one in its month's partition",
    async () => {
      const target = await store.setup();
      const dir = await mkdtemp(join(tmpdir(), "flux-migrations-"));
      const database = target.options().database as { url?: string; schema?: string };
      const db = await openDatabase(
        database.url === undefined
          ? { kind: "pglite", dataDir: undefined }
          : { kind: "postgres", url: database.url, schema: database.schema, poolSize: 2 },
      );
      try {
        // The database as it was before outcomes: every migration up to 0011.
        for (const file of await readdir(MIGRATIONS_DIR)) {
          if (file.localeCompare("0012") < 0) await cp(join(MIGRATIONS_DIR, file), join(dir, file));
        }
        await migrate(db.driver, dir);
        const columns = `("key_id", "at", "method", "endpoint", "status_class", "org_id", "count", "units", "latency_sum", "latency_max")`;
        await db.driver.withSession(async (session) => {
          for (const table of ["flux_usage_minutes", "flux_usage_hours"]) {
            await session.query(
              `INSERT INTO "${table}" ${columns} VALUES
               ('k1', '2026-03-09T10:00:00Z', 'GET', '/v1/events', 2, 'acme', 7, 7, 70, 20),
               ('k1', '2026-03-09T10:00:00Z', 'GET', '/v1/events', 4, 'acme', 2, 2, 4, 3)`,
            );
          }
        });
        const report = await migrate(db.driver);
        expect(report.applied).toContain("0013_usage_outcomes");
        const rows = await db.driver.withSession((session) =>
          session.query<{ outcome: string; calls: number }>(
            `SELECT "outcome", sum("count")::int AS "calls" FROM (
             SELECT "outcome", "count" FROM "flux_usage_minutes" UNION ALL SELECT "outcome", "count" FROM "flux_usage_hours"
           ) AS u GROUP BY "outcome"`,
          ),
        );
        expect(rows).toEqual([{ outcome: "allowed", calls: 18 }]);
        // And 0014 moved them into their month's partition.
        expect(report.applied).toContain("0014_usage_partitions");
        const placed = await db.driver.withSession((session) =>
          session.query<{ part: string }>(
            `SELECT DISTINCT tableoid::regclass::text AS "part" FROM "flux_usage_minutes"`,
          ),
        );
        expect(placed.map((p) => p.part.replace(/^.*\./, "").replaceAll('"', ""))).toEqual([
          "flux_usage_minutes_p202603",
        ]);
        // The outcome is part of the bucket now: a refused call of the same minute is its own row.
        await db.driver.withSession((session) =>
          session.query(
            `INSERT INTO "flux_usage_minutes" ("key_id", "at", "method", "endpoint", "status_class", "outcome", "org_id", "count", "units", "latency_sum", "latency_max")
           VALUES ('k1', '2026-03-09T10:00:00Z', 'GET', '/v1/events', 4, 'rate_limited', 'acme', 1, 0, 1, 1)`,
          ),
        );
      } finally {
        await db.close();
        await target.teardown();
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});

describe.each(STORES)("usage partitioned by month on $name", (store) => {
  const MAR_15 = Date.parse("2026-03-15T12:00:00Z");
  const months = [
    Date.parse("2025-11-20T10:00:00Z"),
    Date.parse("2025-12-31T23:59:30Z"),
    Date.parse("2026-01-01T00:00:10Z"),
    Date.parse("2026-02-10T08:00:00Z"),
    Date.parse("2026-03-15T11:00:00Z"),
  ];
  const call = (at: number) => ({
    keyId: "key_p",
    orgId: "parts",
    method: "GET",
    endpoint: "/v1/events",
    status: 200,
    latencyMs: 1,
    at,
  });
  const partitionsOf = (flux: Flux) =>
    flux.internals.database.driver.withSession(async (session) =>
      (
        await session.query<{ name: string; rows: number }>(
          `SELECT c.relname AS "name" FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent
           WHERE p.relname = 'flux_usage_minutes' AND p.relnamespace = to_regnamespace(quote_ident(current_schema()))
           ORDER BY 1`,
        )
      ).map((row) => row.name),
    );
  const total = async (flux: Flux) =>
    sumCalls(
      await flux.usage.query({
        orgId: "parts",
        from: new Date("2025-11-01T00:00:00Z"),
        to: new Date("2026-04-01T00:00:00Z"),
        granularity: "day",
      }),
    );

  it.skipIf(!store.available)(
    "writes each month into its own partition, created on demand; retention drops whole months",
    async () => {
      const target = await store.setup();
      const flux = await createFlux(
        target.options({ clock: () => MAR_15, usage: { flushInterval: "1h", retention: "60d" } }),
      );
      try {
        for (const [i, at] of months.entries()) for (let n = 0; n <= i; n++) flux.usage.record(call(at));
        await flux.usage.flush();
        expect(await total(flux)).toBe(15);
        // The migration made the months around its run; the flush made the older ones it needed.
        expect(await partitionsOf(flux)).toEqual(
          expect.arrayContaining([
            "flux_usage_minutes_p202511",
            "flux_usage_minutes_p202512",
            "flux_usage_minutes_p202601",
            "flux_usage_minutes_p202602",
            "flux_usage_minutes_p202603",
          ]),
        );
        // Each row is in its month's partition (the last second of December is December's).
        const placed = await flux.internals.database.driver.withSession((session) =>
          session.query<{ part: string; calls: number }>(
            `SELECT tableoid::regclass::text AS "part", sum("count")::int AS "calls" FROM "flux_usage_minutes"
             WHERE "org_id" = 'parts' GROUP BY 1 ORDER BY 1`,
          ),
        );
        expect(placed.map((p) => [p.part.replace(/^.*\./, "").replaceAll('"', ""), p.calls])).toEqual([
          ["flux_usage_minutes_p202511", 1],
          ["flux_usage_minutes_p202512", 2],
          ["flux_usage_minutes_p202601", 3],
          ["flux_usage_minutes_p202602", 4],
          ["flux_usage_minutes_p202603", 5],
        ]);

        // Retention 60 days on March 15: November and December end before the cut-off and are
        // dropped whole; January (partly older than 60 days) is kept whole until it ends.
        await flux.usage.maintain();
        expect(await total(flux)).toBe(12);
        const left = await partitionsOf(flux);
        expect(left).not.toContain("flux_usage_minutes_p202511");
        expect(left).not.toContain("flux_usage_minutes_p202512");
        expect(left).toContain("flux_usage_minutes_p202601");
        // The maintenance loop keeps the next months ready.
        expect(left).toEqual(
          expect.arrayContaining(["flux_usage_minutes_p202604", "flux_usage_minutes_p202605"]),
        );

        // A late call into a dropped month: the flush creates the partition again, nothing lost.
        flux.usage.record(call(months[1] as number));
        await flux.usage.flush();
        expect(flux.usage.stats()).toMatchObject({ dropped: 0, failedFlushes: 0 });
        expect(await total(flux)).toBe(13);
      } finally {
        await flux.close();
        await target.teardown();
      }
    },
  );

  it.skipIf(!store.available)(
    "recreates a month another instance dropped under it, and writes the batch once",
    async () => {
      const target = await store.setup();
      const flux = await createFlux(target.options({ clock: () => MAR_15, usage: { flushInterval: "1h" } }));
      try {
        flux.usage.record(call(months[0] as number));
        await flux.usage.flush(); // this instance now believes November 2025 exists
        expect(await dropPartitions(flux.internals.database.driver, Date.parse("2025-12-01T00:00:00Z"))).toBe(
          2,
        );
        for (let i = 0; i < 3; i++) flux.usage.record(call(months[0] as number));
        await flux.usage.flush();
        expect(flux.usage.stats()).toMatchObject({ flushed: 4, dropped: 0, failedFlushes: 0 });
        expect(await total(flux)).toBe(3);
      } finally {
        await flux.close();
        await target.teardown();
      }
    },
  );
});
