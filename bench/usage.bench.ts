/**
 * Issue 4 benchmark: what usage tracking costs.
 * - record(): ns per call, amortised (existing buckets, and one new bucket per call);
 * - flush throughput: 10,000 buckets into the local PostgreSQL (new rows, then adding to them);
 * - the 30-day query of one org with 10,000,000 minute buckets in the table, bulk-loaded with
 *   generate_series in a dedicated schema (dropped afterwards).
 *
 *   pnpm bench usage        (or: npx tsx --conditions=source bench/usage.bench.ts)
 *
 * BENCH_DATABASE_URL points at another PostgreSQL (default: the local one); BENCH_USAGE_ROWS
 * changes the table size (default 10,000,000).
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { createFlux, type Flux, type UsageQuery } from "@flux-keys/core";
import pg from "pg";
import { loadUsageMinutes, timeQuery } from "./load-support.js";

const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const ROWS = Number(process.env.BENCH_USAGE_ROWS ?? 10_000_000);
const KEYS = 5_000;
const PER_KEY = Math.ceil(ROWS / KEYS);
const BASE = Date.parse("2026-01-01T00:00:00Z");
const DAY = 86_400_000;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function recordCost(): Promise<void> {
  const flux = await createFlux({
    database: { pglite: true },
    redis: null,
    usage: { flushInterval: "1h", maxBufferedBuckets: 2_000_000, flushAt: 2_000_000 },
  });
  const keys = Array.from({ length: 100 }, (_, i) => ({ keyId: `key_${i}`, orgId: `org_${i % 10}` }));
  const endpoints = Array.from({ length: 20 }, (_, i) => `/v1/resource_${i}/:id`);
  const statuses = [200, 200, 200, 201, 404, 500];
  // Calls as an adapter makes them: new objects, the clock read inside record().
  const hot = (n: number) => {
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      const key = keys[i % 100]!;
      flux.usage.record({
        keyId: key.keyId,
        orgId: key.orgId,
        method: "GET",
        endpoint: endpoints[i % 20]!,
        status: statuses[i % 6]!,
        latencyMs: (i % 50) + 0.5,
      });
    }
    return ((performance.now() - start) * 1e6) / n;
  };
  hot(500_000); // warm up the JIT
  const hotNs = Math.min(hot(2_000_000), hot(2_000_000), hot(2_000_000));
  await flux.usage.flush();
  // Worst case: every call opens a bucket of its own (a distinct minute each).
  const fresh = (n: number, offset: number) => {
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      flux.usage.record({
        keyId: "key_0",
        orgId: "org_0",
        method: "GET",
        endpoint: "/v1/x",
        status: 200,
        latencyMs: 1,
        at: BASE + (offset + i) * 60_000,
      });
    }
    return ((performance.now() - start) * 1e6) / n;
  };
  const freshNs = fresh(500_000, 0);
  console.log(
    `record(), existing buckets (100 keys x 20 endpoints x 3 classes): ${hotNs.toFixed(0)} ns/call`,
  );
  console.log(
    `record(), a new bucket per call (500,000 buckets):               ${freshNs.toFixed(0)} ns/call`,
  );
  const stats = flux.usage.stats();
  console.log(
    `  buffered ${stats.buffered} buckets / ${stats.bufferedCalls} calls, dropped ${stats.dropped}`,
  );
  await flux.close();
}

async function flushThroughput(admin: pg.Client): Promise<void> {
  const schema = `flux_bench_usage_flush_${randomBytes(4).toString("hex")}`;
  await admin.query(`CREATE SCHEMA "${schema}"`);
  const flux = await createFlux({
    database: { url: DATABASE_URL, schema, poolSize: 4 },
    redis: null,
    usage: { flushInterval: "1h", flushAt: 100_000 },
  });
  try {
    const fill = () => {
      for (let i = 0; i < 10_000; i++) {
        flux.usage.record({
          keyId: `key_${i % 500}`,
          orgId: `org_${i % 50}`,
          method: "GET",
          endpoint: `/v1/resource_${Math.floor(i / 500)}/:id`,
          status: 200,
          latencyMs: 3,
          at: BASE,
        });
      }
    };
    const timed = async () => {
      fill();
      const start = performance.now();
      const report = await flux.usage.flush();
      return { ms: performance.now() - start, buckets: report.buckets };
    };
    const inserted = await timed();
    const updates = [await timed(), await timed(), await timed()];
    console.log(
      `flush 10,000 new buckets into PostgreSQL: ${inserted.ms.toFixed(0)} ms (${inserted.buckets} buckets, 2 statements)`,
    );
    console.log(
      `flush 10,000 buckets adding to existing rows: ${median(updates.map((u) => u.ms)).toFixed(0)} ms (median of 3)`,
    );
  } finally {
    await flux.close();
    await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
  }
}

async function bigTableQuery(admin: pg.Client): Promise<void> {
  const schema = `flux_bench_usage_${randomBytes(4).toString("hex")}`;
  await admin.query(`CREATE SCHEMA "${schema}"`);
  let flux: Flux | undefined;
  try {
    flux = await createFlux({ database: { url: DATABASE_URL, schema, poolSize: 4 }, redis: null });
    // 60 days of minutes; 5,000 keys; 50 keys belong to one big org (1% of the rows), the others
    // to 1,000 orgs of about 5 keys.
    const loaded = await loadUsageMinutes(admin, schema, {
      keyPrefix: "key_",
      keys: KEYS,
      perKey: PER_KEY,
      start: "2026-01-01 00:00:00+00",
      orgOf: "CASE WHEN k < 50 THEN 'org_big' ELSE 'org_' || (k % 1000) END",
      maintenanceWorkMem: "512MB",
    });
    console.log(
      `loaded ${loaded.rows.toLocaleString("en")} minute buckets (${loaded.size} with indexes): insert ${(loaded.insertMs / 1000).toFixed(0)} s, keys + indexes + analyze ${(loaded.indexMs / 1000).toFixed(0)} s`,
    );

    const from = new Date(BASE + 15 * DAY);
    const to = new Date(BASE + 45 * DAY);
    const cases: Array<[string, UsageQuery]> = [
      ["org_7 (4,000 buckets in range), daily", { orgId: "org_7", from, to, granularity: "day" }],
      ["org_7, hourly (720 points)", { orgId: "org_7", from, to, granularity: "hour" }],
      [
        "org_7, daily by endpoint + status",
        { orgId: "org_7", from, to, granularity: "day", groupBy: ["endpoint", "status"] },
      ],
      ["org_big (50,000 buckets in range), daily", { orgId: "org_big", from, to, granularity: "day" }],
      [
        "org_big, hourly by key (50 series)",
        { orgId: "org_big", from, to, granularity: "hour", groupBy: ["key"] },
      ],
    ];
    for (const [name, query] of cases) {
      const { result, firstMs, medianMs } = await timeQuery(() => (flux as Flux).usage.query(query));
      const calls = result.series.reduce((sum, s) => sum + s.totals.calls, 0);
      console.log(
        `query ${name}: first ${firstMs.toFixed(1)} ms, median ${medianMs.toFixed(1)} ms (${result.series.length} series, ${calls.toLocaleString("en")} calls)`,
      );
    }
    const top = performance.now();
    await flux.usage.top({ orgId: "org_big", by: "endpoint", from, to, limit: 10 });
    console.log(`top 10 endpoints of org_big over 30 days: ${(performance.now() - top).toFixed(1)} ms`);

    const plan = await admin.query(
      `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT sum("count") FROM "${schema}"."flux_usage_minutes"
       WHERE "org_id" = 'org_7' AND "at" >= $1 AND "at" < $2`,
      [from, to],
    );
    console.log("plan of the org_7 range scan:");
    for (const row of plan.rows) console.log(`  ${row["QUERY PLAN"]}`);
  } finally {
    await flux?.close();
    await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
  }
}

const admin = new pg.Client({ connectionString: DATABASE_URL });
await recordCost();
try {
  await admin.connect();
} catch {
  console.log("PostgreSQL unreachable: skipped the flush and query benchmarks");
  process.exit(0);
}
try {
  await flushThroughput(admin);
  await bigTableQuery(admin);
} finally {
  await admin.end();
}
