/**
 * The SQL of usage tracking, the same on PGlite and PostgreSQL. Every write is one statement, so it
 * is atomic without an interactive transaction and costs one round trip:
 * - a batch is an upsert that adds, guarded by its id in `flux_usage_batches` (a retry of a batch
 *   that was in fact committed finds its id and changes nothing);
 * - a rollup moves minute rows into hour rows with DELETE ... RETURNING feeding an upsert that
 *   adds, so a row is moved exactly once even when two instances roll up at the same time.
 */
import type { SqlDriver } from "../database.js";
import type { UsageBatch } from "./usage-recorder.js";

const EPOCH = "TIMESTAMPTZ '1970-01-01 00:00:00+00'";
const ADD_ON_CONFLICT = `ON CONFLICT ("key_id", "at", "method", "endpoint", "status_class", "outcome") DO UPDATE SET
    "count" = t."count" + EXCLUDED."count",
    "units" = t."units" + EXCLUDED."units",
    "latency_sum" = t."latency_sum" + EXCLUDED."latency_sum",
    "latency_max" = GREATEST(t."latency_max", EXCLUDED."latency_max")`;

/**
 * Applies one batch: adds its buckets and moves `last_used_at` of its keys forward from their
 * allowed calls (only when it gains at least a minute, so a busy key's row is written at most once
 * a minute; a refused call is not a use).
 * Returns false when the batch had already been applied.
 */
const WRITE_BATCH = `
WITH "batch" AS (
  INSERT INTO "flux_usage_batches" ("id") VALUES ($1) ON CONFLICT ("id") DO NOTHING RETURNING "id"
), "rows" AS (
  SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::float8[],
                       $8::bigint[], $9::float8[], $10::float8[], $11::float8[], $12::bigint[], $13::text[])
    AS r("key_id", "org_id", "method", "endpoint", "status_class", "minute", "count", "latency_sum",
         "latency_max", "last_at", "units", "outcome")
  WHERE EXISTS (SELECT 1 FROM "batch")
), "added" AS (
  INSERT INTO "flux_usage_minutes" AS t
    ("key_id", "at", "method", "endpoint", "status_class", "outcome", "org_id", "count", "units",
     "latency_sum", "latency_max")
  SELECT "key_id", to_timestamp("minute" / 1000), "method", "endpoint", "status_class", "outcome", "org_id",
         "count", "units", "latency_sum", "latency_max"
  FROM "rows"
  -- One lock order for every writer: two instances flushing the same buckets do not deadlock.
  ORDER BY "key_id", "minute", "method", "endpoint", "status_class", "outcome"
  ${ADD_ON_CONFLICT}
  RETURNING 1
), "used" AS (
  SELECT "key_id", to_timestamp(max("last_at") / 1000) AS "at" FROM "rows" WHERE "outcome" = 'allowed'
  GROUP BY "key_id"
), "touched" AS (
  UPDATE "flux_api_keys" AS k SET "last_used_at" = u."at"
  FROM "used" AS u
  WHERE k."id" = u."key_id" AND (k."last_used_at" IS NULL OR k."last_used_at" <= u."at" - INTERVAL '1 minute')
  RETURNING 1
)
SELECT (SELECT count(*) FROM "batch")::int AS "fresh", (SELECT count(*) FROM "added")::int AS "rows",
       (SELECT count(*) FROM "touched")::int AS "touched"`;

export async function writeBatch(driver: SqlDriver, batch: UsageBatch): Promise<{ fresh: boolean }> {
  const n = batch.buckets.length;
  const keyIds = new Array<string>(n);
  const orgIds = new Array<string>(n);
  const methods = new Array<string>(n);
  const endpoints = new Array<string>(n);
  const classes = new Array<number>(n);
  const minutes = new Array<number>(n);
  const counts = new Array<number>(n);
  const sums = new Array<number>(n);
  const maxes = new Array<number>(n);
  const lasts = new Array<number>(n);
  const units = new Array<number>(n);
  const outcomes = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const b = batch.buckets[i]!;
    keyIds[i] = b.keyId;
    orgIds[i] = b.orgId;
    methods[i] = b.method;
    endpoints[i] = b.endpoint;
    classes[i] = b.statusClass;
    minutes[i] = b.minute;
    counts[i] = b.count;
    sums[i] = b.latencySum;
    maxes[i] = b.latencyMax;
    lasts[i] = b.lastAt;
    units[i] = b.units;
    outcomes[i] = b.outcome;
  }
  const rows = await driver.withSession((session) =>
    session.query<{ fresh: number }>(WRITE_BATCH, [
      batch.id,
      keyIds,
      orgIds,
      methods,
      endpoints,
      classes,
      minutes,
      counts,
      sums,
      maxes,
      lasts,
      units,
      outcomes,
    ]),
  );
  return { fresh: Number(rows[0]?.fresh ?? 0) > 0 };
}

export type Granularity = "minute" | "hour" | "day";
export type GroupDimension = "key" | "endpoint" | "status" | "outcome";

export const GRANULARITY_MS: Record<Granularity, number> = {
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
};
const GRANULARITY_SQL: Record<Granularity, string> = {
  minute: "INTERVAL '1 minute'",
  hour: "INTERVAL '1 hour'",
  day: "INTERVAL '1 day'",
};
const GROUP_COLUMNS: Record<GroupDimension, string[]> = {
  key: ['"key_id"'],
  endpoint: ['"method"', '"endpoint"'],
  status: ['"status_class"'],
  outcome: ['"outcome"'],
};

export interface UsageFilter {
  orgId?: string | undefined;
  keyId?: string | undefined;
  method?: string | undefined;
  endpoint?: string | undefined;
  outcome?: string | undefined;
  /** ms since the epoch, inclusive. */
  from: number;
  /** ms since the epoch, exclusive. */
  to: number;
}

export interface AggregateRow {
  t?: number;
  key_id?: string;
  method?: string;
  endpoint?: string;
  status_class?: number;
  outcome?: string;
  calls: number;
  errors: number;
  latency_sum: number;
  latency_max: number | null;
}

/** Both tables (minute rows and rolled-up hour rows), filtered the same way. */
function usageRows(filter: UsageFilter, params: unknown[]): string {
  params.push(filter.from, filter.to);
  const where = [
    `"at" >= to_timestamp($${params.length - 1}::float8 / 1000)`,
    `"at" < to_timestamp($${params.length}::float8 / 1000)`,
  ];
  for (const [column, value] of [
    ['"org_id"', filter.orgId],
    ['"key_id"', filter.keyId],
    ['"method"', filter.method],
    ['"endpoint"', filter.endpoint],
    ['"outcome"', filter.outcome],
  ] as const) {
    if (value === undefined) continue;
    params.push(value);
    where.push(`${column} = $${params.length}`);
  }
  const columns = `"key_id", "at", "method", "endpoint", "status_class", "outcome", "count", "latency_sum", "latency_max"`;
  const condition = where.join(" AND ");
  return `SELECT ${columns} FROM "flux_usage_minutes" WHERE ${condition}
    UNION ALL SELECT ${columns} FROM "flux_usage_hours" WHERE ${condition}`;
}

const MEASURES = `sum("count")::float8 AS "calls",
  sum(CASE WHEN "status_class" >= 4 THEN "count" ELSE 0 END)::float8 AS "errors",
  sum("latency_sum")::float8 AS "latency_sum", max("latency_max")::float8 AS "latency_max"`;

/** Non-empty (time bucket, group) aggregates; the caller zero-fills. */
export async function aggregate(
  driver: SqlDriver,
  filter: UsageFilter,
  granularity: Granularity,
  groupBy: readonly GroupDimension[],
): Promise<AggregateRow[]> {
  const params: unknown[] = [];
  const source = usageRows(filter, params);
  const groups = groupBy.flatMap((dimension) => GROUP_COLUMNS[dimension]);
  const bin = `(extract(epoch FROM date_bin(${GRANULARITY_SQL[granularity]}, "at", ${EPOCH})) * 1000)::float8`;
  const sql = `SELECT ${bin} AS "t", ${groups.map((g) => `${g}, `).join("")}${MEASURES}
    FROM (${source}) AS u GROUP BY ${["1", ...groups].join(", ")}`;
  return driver.withSession((session) => session.query<AggregateRow>(sql, params));
}

/** The `limit` groups with the most calls. */
export async function topGroups(
  driver: SqlDriver,
  filter: UsageFilter,
  by: "key" | "endpoint",
  limit: number,
): Promise<AggregateRow[]> {
  const params: unknown[] = [];
  const source = usageRows(filter, params);
  const groups = GROUP_COLUMNS[by].join(", ");
  params.push(limit);
  const sql = `SELECT ${groups}, ${MEASURES} FROM (${source}) AS u
    GROUP BY ${groups} ORDER BY "calls" DESC, ${groups} LIMIT $${params.length}`;
  return driver.withSession((session) => session.query<AggregateRow>(sql, params));
}

/**
 * Moves minute rows older than `before` (an hour boundary) into hour rows, `chunk` rows per
 * statement. Returns how many minute rows were moved.
 */
export async function rollUp(driver: SqlDriver, before: number, chunk = 50_000): Promise<number> {
  const sql = `
WITH "moved" AS (
  DELETE FROM "flux_usage_minutes"
  WHERE ctid = ANY(ARRAY(SELECT ctid FROM "flux_usage_minutes" WHERE "at" < to_timestamp($1::float8 / 1000) LIMIT $2))
    AND "at" < to_timestamp($1::float8 / 1000)
  RETURNING *
), "added" AS (
  INSERT INTO "flux_usage_hours" AS t
    ("key_id", "at", "method", "endpoint", "status_class", "outcome", "org_id", "count", "units",
     "latency_sum", "latency_max")
  SELECT "key_id", date_bin(INTERVAL '1 hour', "at", ${EPOCH}) AS "hour", "method", "endpoint", "status_class",
         "outcome", min("org_id"), sum("count"), sum("units"), sum("latency_sum"), max("latency_max")
  FROM "moved"
  GROUP BY "key_id", "hour", "method", "endpoint", "status_class", "outcome"
  ORDER BY "key_id", "hour", "method", "endpoint", "status_class", "outcome"
  ${ADD_ON_CONFLICT}
  RETURNING 1
)
SELECT (SELECT count(*) FROM "moved")::int AS "moved", (SELECT count(*) FROM "added")::int AS "added"`;
  let total = 0;
  for (;;) {
    const rows = await driver.withSession((session) =>
      session.query<{ moved: number }>(sql, [before, chunk]),
    );
    const moved = Number(rows[0]?.moved ?? 0);
    total += moved;
    if (moved < chunk) return total;
  }
}

const MONTH_MS = 31 * 86_400_000;

/** Start (UTC, ms) of the month that holds `at`. */
export function monthOf(at: number): number {
  const date = new Date(at);
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
}

/**
 * Creates the month partitions of both usage tables that hold these instants, where missing
 * (migration 0014's function: one statement, safe from several instances and through a pooler).
 */
export async function ensurePartitions(driver: SqlDriver, instants: readonly number[]): Promise<number> {
  const rows = await driver.withSession((session) =>
    session.query<{ created: number }>(
      `SELECT "flux_usage_ensure_partitions"($1::timestamptz[]) AS "created"`,
      [instants.map((at) => new Date(at).toISOString())],
    ),
  );
  return Number(rows[0]?.created ?? 0);
}

/** The partitions the maintenance loop keeps ahead: this month and the next two. */
export function monthsAhead(now: number): number[] {
  return [now, now + MONTH_MS, now + 2 * MONTH_MS].map(monthOf);
}

/** Drops whole month partitions (of both tables) that end at or before `before`; returns how many. */
export async function dropPartitions(driver: SqlDriver, before: number): Promise<number> {
  const rows = await driver.withSession((session) =>
    session.query<{ dropped: number }>(
      `SELECT "flux_usage_drop_partitions"(to_timestamp($1::float8 / 1000)) AS "dropped"`,
      [before],
    ),
  );
  return Number(rows[0]?.dropped ?? 0);
}

/**
 * Deletes usage that ended before `before`: whole months by dropping their partitions, then the
 * buckets of the month the cut-off falls in, row by row. Returns the rows deleted one by one from
 * each table, and the partitions dropped.
 */
export async function deleteBefore(
  driver: SqlDriver,
  before: number,
): Promise<{ minutes: number; hours: number; partitions: number }> {
  const partitions = await dropPartitions(driver, before);
  return driver.withSession(async (session) => {
    const minutes = await session.query<{ n: number }>(
      `WITH d AS (DELETE FROM "flux_usage_minutes" WHERE "at" <= to_timestamp($1::float8 / 1000) - INTERVAL '1 minute' RETURNING 1)
       SELECT count(*)::int AS n FROM d`,
      [before],
    );
    const hours = await session.query<{ n: number }>(
      `WITH d AS (DELETE FROM "flux_usage_hours" WHERE "at" <= to_timestamp($1::float8 / 1000) - INTERVAL '1 hour' RETURNING 1)
       SELECT count(*)::int AS n FROM d`,
      [before],
    );
    return { minutes: Number(minutes[0]?.n ?? 0), hours: Number(hours[0]?.n ?? 0), partitions };
  });
}

/** Forgets applied batch ids older than `maxAgeMs` (database time): only a batch retried later than that could double count. */
export async function forgetBatches(driver: SqlDriver, maxAgeMs: number): Promise<void> {
  await driver.withSession((session) =>
    session.query(
      `DELETE FROM "flux_usage_batches" WHERE "applied_at" < now() - make_interval(secs => $1::float8 / 1000)`,
      [maxAgeMs],
    ),
  );
}
