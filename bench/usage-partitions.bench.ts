/**
 * Issue 18 benchmark: usage partitioned by month (migration 0014) against the single table it
 * replaces (the schema as of 0013), on the same data in the local PostgreSQL:
 * - flush throughput: 10,000 new buckets, then 10,000 adding to existing rows;
 * - a 30-day query of one org, with 90 days of calls bulk-loaded (BENCH_PARTITION_BUCKETS minute
 *   buckets, default 4,000,000, about 25 calls each: about 100,000,000 calls) and table sizes;
 * - retention: removing the oldest month (January of Jan–Mar 2026): DELETE of its rows on the
 *   single table (`flux.usage.prune()` as of 0013), DROP of its partitions (the maintenance loop).
 *
 *   pnpm bench usage-partitions      (long: run only when named)
 */
import { cp, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createFlux, type Flux, type UsageQuery } from "@flux-keys/core";
import pg from "pg";
import { openDatabase } from "../packages/core/src/database.js";
import { MIGRATIONS_DIR, migrate } from "../packages/core/src/migrator.js";
import { type UsageBatch, UsageRecorder } from "../packages/core/src/usage/usage-recorder.js";
import { dropPartitions, writeBatch } from "../packages/core/src/usage/usage-store.js";
import { buildUsageKeys, timeQuery } from "./load-support.js";

const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const BUCKETS = Number(process.env.BENCH_PARTITION_BUCKETS ?? 4_000_000);
const KEYS = 5_000;
const PER_KEY = Math.ceil(BUCKETS / KEYS);
const START = "2026-01-01 00:00:00+00";
const BASE = Date.parse("2026-01-01T00:00:00Z");
const DAY = 86_400_000;
const NINETY_DAYS_MINUTES = 90 * 1_440;

type Layout = "single table (0013)" | "partitioned by month (0014)";

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** A fresh schema migrated as of `upTo` (inclusive), or fully. */
async function schemaAt(admin: pg.Client, name: string, upTo?: string): Promise<void> {
  await admin.query(`CREATE SCHEMA "${name}"`);
  const db = await openDatabase({ kind: "postgres", url: DATABASE_URL, schema: name, poolSize: 1 });
  const dir = await mkdtemp(join(tmpdir(), "flux-bench-migrations-"));
  try {
    if (upTo === undefined) {
      await migrate(db.driver);
    } else {
      for (const file of await readdir(MIGRATIONS_DIR)) {
        if (file.localeCompare(`${upTo}~`) < 0) await cp(join(MIGRATIONS_DIR, file), join(dir, file));
      }
      await migrate(db.driver, dir);
    }
  } finally {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function sizeOf(
  admin: pg.Client,
  schema: string,
): Promise<{ rows: number; size: string; parts: number }> {
  const t = `"${schema}"."flux_usage_minutes"`;
  const { rows } = await admin.query(
    `SELECT (SELECT count(*)::int FROM ${t}) AS n,
            pg_size_pretty(COALESCE((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('${t}')),
                                    pg_total_relation_size('${t}'))) AS size,
            (SELECT count(*)::int FROM pg_partition_tree('${t}') WHERE isleaf AND level > 0) AS parts`,
  );
  return { rows: rows[0].n, size: rows[0].size, parts: rows[0].parts };
}

/** 90 days of minute buckets in time order, loaded without keys and indexes, which are then built. */
async function load(admin: pg.Client, schema: string, layout: Layout): Promise<void> {
  const t = (name: string) => `"${schema}"."${name}"`;
  const started = performance.now();
  await admin.query(`SET search_path = "${schema}"`);
  if (layout === "partitioned by month (0014)") {
    await admin.query(
      `SELECT "flux_usage_ensure_partitions"(ARRAY(SELECT generate_series(TIMESTAMPTZ '${START}', TIMESTAMPTZ '${START}' + INTERVAL '90 days', INTERVAL '1 day')))`,
    );
  }
  await admin.query(`DROP INDEX ${t("flux_usage_minutes_org_id_at_idx")}, ${t("flux_usage_minutes_at_idx")}`);
  await admin.query(`ALTER TABLE ${t("flux_usage_minutes")} DROP CONSTRAINT "flux_usage_minutes_pkey"`);
  await admin.query(`SET maintenance_work_mem = '512MB'`);
  await admin.query(`
    INSERT INTO ${t("flux_usage_minutes")}
      ("key_id", "at", "method", "endpoint", "status_class", "outcome", "org_id", "count", "units", "latency_sum", "latency_max")
    SELECT 'key_' || k,
           TIMESTAMPTZ '${START}' + ((j::bigint * ${NINETY_DAYS_MINUTES} / ${PER_KEY}) * INTERVAL '1 minute'),
           (ARRAY['GET', 'POST', 'PUT', 'DELETE'])[1 + j % 4],
           '/v1/resource_' || (j % 20) || '/:id',
           CASE WHEN j % 10 = 0 THEN 4 ELSE 2 END,
           CASE WHEN j % 10 = 0 THEN 'rate_limited' ELSE 'allowed' END,
           CASE WHEN k < 50 THEN 'org_big' ELSE 'org_' || (k % 1000) END,
           1 + j % 50, 1 + j % 50, (1 + j % 50) * 12.5, 40
    FROM generate_series(0, ${PER_KEY - 1}) AS j, generate_series(0, ${KEYS - 1}) AS k`);
  const inserted = performance.now();
  await buildUsageKeys(admin, schema);
  await admin.query("RESET search_path");
  const { rows } = await admin.query(`SELECT sum("count")::bigint AS calls FROM ${t("flux_usage_minutes")}`);
  const size = await sizeOf(admin, schema);
  console.log(
    `[${layout}] loaded ${size.rows.toLocaleString("en")} buckets (${Number(rows[0].calls).toLocaleString("en")} calls, 90 days) in ${((inserted - started) / 1000).toFixed(0)} s + keys/indexes ${((performance.now() - inserted) / 1000).toFixed(0)} s: ${size.size}${size.parts > 0 ? ` in ${size.parts} partitions` : ""}`,
  );
}

/** The flush's own statement (writeBatch), 10,000 buckets a batch, on either layout. */
async function flushThroughput(flux: Flux, layout: Layout): Promise<void> {
  const driver = flux.internals.database.driver;
  const timed = async (at: number) => {
    const recorder = new UsageRecorder(20_000, () => at);
    for (let i = 0; i < 10_000; i++) {
      recorder.record({
        keyId: `key_f${i % 500}`,
        orgId: `org_f${i % 50}`,
        method: "GET",
        endpoint: `/v1/resource_${Math.floor(i / 500)}/:id`,
        status: 200,
        latencyMs: 3,
        at,
      });
    }
    recorder.seal(10_000);
    const start = performance.now();
    await writeBatch(driver, recorder.pending[0] as UsageBatch);
    return performance.now() - start;
  };
  const days = [40, 41, 42].map((d) => BASE + d * DAY);
  const fresh: number[] = [];
  for (const at of days) fresh.push(await timed(at));
  const adding: number[] = [];
  for (const at of days) adding.push(await timed(at));
  console.log(
    `[${layout}] flush 10,000 new buckets: ${median(fresh).toFixed(0)} ms; adding to 10,000 existing: ${median(adding).toFixed(0)} ms (medians of 3)`,
  );
}

async function queries(flux: Flux, layout: Layout): Promise<void> {
  const from = new Date(BASE + 45 * DAY);
  const to = new Date(BASE + 75 * DAY);
  const cases: Array<[string, UsageQuery]> = [
    ["org_7 (~5 keys), 30 days hourly", { orgId: "org_7", from, to, granularity: "hour" }],
    [
      "org_7, 30 days daily by outcome",
      { orgId: "org_7", from, to, granularity: "day", groupBy: ["outcome"] },
    ],
    ["org_big (1% of rows), 30 days hourly", { orgId: "org_big", from, to, granularity: "hour" }],
  ];
  for (const [name, query] of cases) {
    const { result, firstMs, medianMs } = await timeQuery(() => flux.usage.query(query));
    const calls = result.series.reduce((sum, s) => sum + s.totals.calls, 0);
    console.log(
      `[${layout}] query ${name}: first ${firstMs.toFixed(1)} ms, median ${medianMs.toFixed(1)} ms (${calls.toLocaleString("en")} calls)`,
    );
  }
}

async function retention(flux: Flux, admin: pg.Client, schema: string, layout: Layout): Promise<void> {
  const before = await sizeOf(admin, schema);
  const cut = new Date("2026-02-01T00:00:00Z");
  const start = performance.now();
  let how: string;
  if (layout === "single table (0013)") {
    // What retention did before 0014: delete the rows.
    const { rows } = await admin.query(
      `WITH d AS (DELETE FROM "${schema}"."flux_usage_minutes" WHERE "at" <= $1::timestamptz - INTERVAL '1 minute' RETURNING 1) SELECT count(*)::int AS n FROM d`,
      [cut],
    );
    how = `DELETE of ${Number(rows[0].n).toLocaleString("en")} rows`;
  } else {
    const dropped = await dropPartitions(flux.internals.database.driver, cut.getTime());
    how = `DROP of ${dropped} partitions (January, minutes and hours)`;
  }
  const ms = performance.now() - start;
  const after = await sizeOf(admin, schema);
  console.log(
    `[${layout}] retention of January: ${(ms / 1000).toFixed(2)} s (${how}); ${before.rows.toLocaleString("en")} -> ${after.rows.toLocaleString("en")} rows, ${before.size} -> ${after.size}`,
  );
}

const admin = new pg.Client({ connectionString: DATABASE_URL });
await admin.connect();
try {
  for (const [layout, upTo] of [
    ["single table (0013)", "0013"],
    ["partitioned by month (0014)", undefined],
  ] as Array<[Layout, string | undefined]>) {
    const schema = `flux_bench_parts_${layout.startsWith("single") ? "single" : "monthly"}_${Date.now()}`;
    await schemaAt(admin, schema, upTo);
    let flux: Flux | undefined;
    try {
      await load(admin, schema, layout);
      flux = await createFlux({
        database: { url: DATABASE_URL, schema, poolSize: 4 },
        redis: null,
        migrate: false,
        usage: { flushInterval: "1h", flushAt: 100_000 },
      });
      await flushThroughput(flux, layout);
      await queries(flux, layout);
      await retention(flux, admin, schema, layout);
    } finally {
      await flux?.close();
      await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
    }
  }
} finally {
  await admin.end();
}
