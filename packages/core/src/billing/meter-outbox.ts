/**
 * Usage to billing meters, exactly once per bucket. The sender works in two steps:
 * 1. `plan()` writes, in one statement, a row per (org, usage minute) whose recorded calls exceed
 *    what was already planned for it: the value is the difference, the identifier is derived from
 *    (meter, org, minute, sequence), so the same bucket always gets the same identifier;
 * 2. the sender sends the unsent rows with that identifier (the provider deduplicates on it) and
 *    `markSent()` records the acknowledgement.
 * A sender that dies between the two resends the same rows with the same identifiers: nothing is
 * lost and nothing is counted twice. Two senders planning at once collide on the primary key and
 * one of them plans nothing. Usage that reaches the database after its minute was sent (an
 * instance that buffered through an outage) is sent as the next sequence of that minute.
 *
 * Hand-written on purpose: an outbox library would need its own queue tables or broker; this one is
 * two SQL statements over the usage tables we already have, and their identifiers are the point.
 */
import { guard, type SqlDriver } from "../database.js";

export interface MeterOutboxOptions {
  /**
   * Which served calls count, by status class (1 for 1xx … 5xx): calls that Flux Keys refused
   * (outcome other than `allowed`) never count, whatever their status. The default counts calls
   * answered below 400. @default [1, 2, 3]
   */
  statusClasses?: number[];
  /** Only calls to these endpoints (`"GET /v1/events/:id"`, the route template) count. @default all */
  endpoints?: string[];
  /**
   * What a counted call adds: `'calls'` (one each) or `'units'` (its route's cost, as recorded
   * in usage). @default 'calls'
   */
  value?: "calls" | "units";
  /**
   * A minute is sent once it ended this long ago (usage reaches the database at each instance's
   * flush). @default 120000 (2 minutes)
   */
  settleMs?: number;
  /**
   * How far back unsent usage is looked for. Stripe takes events up to 35 days old; usage rolled up
   * into hours (`usage.rollupAfter`, 7 days by default) is no longer seen. @default 2592000000 (30 days)
   */
  lookbackMs?: number;
  /**
   * Once a meter has sends, a round only reads usage from this long before its newest planned
   * minute (not the whole lookback): usage arriving later than that for an older minute is not
   * sent. @default 86400000 (1 day)
   */
  lateMs?: number;
}

export interface MeterSendRow {
  identifier: string;
  orgId: string;
  customerId: string;
  /** Start of the usage minute. */
  at: Date;
  value: number;
}

const PLAN = `
WITH "since" AS (
  SELECT GREATEST(
    to_timestamp($2::float8 / 1000),
    COALESCE((SELECT max(s."at") FROM "flux_meter_sends" AS s WHERE s."meter" = $1), '-infinity')
      - make_interval(secs => $7::float8 / 1000)
  ) AS "at"
), "usage" AS (
  SELECT u."org_id", u."at", sum(CASE WHEN $8::boolean THEN u."units" ELSE u."count" END)::bigint AS "total"
  FROM "flux_usage_minutes" AS u
  WHERE u."at" >= (SELECT "at" FROM "since") AND u."at" < to_timestamp($3::float8 / 1000)
    -- Only served calls: a refused one (rate limited, out of scope, revoked…) is never billed.
    AND u."outcome" = 'allowed'
    AND u."status_class" = ANY($4::int[])
    AND ($5::text[] IS NULL OR (u."method" || ' ' || u."endpoint") = ANY($5::text[]))
  GROUP BY u."org_id", u."at"
), "planned" AS (
  SELECT s."org_id", s."at", sum(s."value")::bigint AS "value", max(s."seq") AS "seq"
  FROM "flux_meter_sends" AS s
  WHERE s."meter" = $1 AND s."at" >= (SELECT "at" FROM "since")
  GROUP BY s."org_id", s."at"
), "due" AS (
  SELECT u."org_id", u."at", u."total" - COALESCE(p."value", 0) AS "value",
         COALESCE(p."seq" + 1, 0) AS "seq", o."stripe_customer_id" AS "customer_id"
  FROM "usage" AS u
  JOIN "flux_orgs" AS o ON o."id" = u."org_id" AND o."stripe_customer_id" IS NOT NULL
  LEFT JOIN "planned" AS p ON p."org_id" = u."org_id" AND p."at" = u."at"
  WHERE u."total" > COALESCE(p."value", 0)
  LIMIT $6
), "inserted" AS (
  INSERT INTO "flux_meter_sends" ("meter", "org_id", "at", "seq", "value", "identifier", "customer_id")
  SELECT $1, d."org_id", d."at", d."seq", d."value",
         'flux_' || md5($1 || '|' || d."org_id" || '|' || (extract(epoch FROM d."at") * 1000)::bigint::text
                    || '|' || d."seq"::text),
         d."customer_id"
  FROM "due" AS d
  ORDER BY d."org_id", d."at"
  ON CONFLICT DO NOTHING
  RETURNING 1
)
SELECT count(*)::int AS "planned" FROM "inserted"`;

const PENDING = `
SELECT "identifier", "org_id", "customer_id", (extract(epoch FROM "at") * 1000)::float8 AS "at",
       "value"::float8 AS "value"
FROM "flux_meter_sends"
WHERE "meter" = $1 AND "sent_at" IS NULL
ORDER BY "at", "org_id", "seq"
LIMIT $2`;

const MARK_SENT = `UPDATE "flux_meter_sends" SET "sent_at" = CURRENT_TIMESTAMP
WHERE "meter" = $1 AND "identifier" = ANY($2::text[]) AND "sent_at" IS NULL`;

const TOTALS = `
SELECT COALESCE(sum("value") FILTER (WHERE "sent_at" IS NOT NULL), 0)::float8 AS "sent",
       COALESCE(sum("value") FILTER (WHERE "sent_at" IS NULL), 0)::float8 AS "pending"
FROM "flux_meter_sends" WHERE "meter" = $1 AND ($2::text IS NULL OR "org_id" = $2)`;

export class MeterOutbox {
  private readonly statusClasses: number[];
  private readonly endpoints: string[] | null;
  private readonly settleMs: number;
  private readonly lookbackMs: number;
  private readonly lateMs: number;
  private readonly byUnits: boolean;

  constructor(
    private readonly driver: SqlDriver,
    readonly name: string,
    options: MeterOutboxOptions,
    private readonly now: () => number,
  ) {
    this.statusClasses = options.statusClasses ?? [1, 2, 3];
    this.endpoints = options.endpoints && options.endpoints.length > 0 ? [...options.endpoints] : null;
    this.settleMs = options.settleMs ?? 120_000;
    this.lookbackMs = options.lookbackMs ?? 30 * 86_400_000;
    this.lateMs = options.lateMs ?? 86_400_000;
    this.byUnits = options.value === "units";
  }

  /** Records the sends that settled usage calls for; returns how many rows it wrote. */
  async plan(limit = 10_000): Promise<number> {
    const now = this.now();
    const settledBefore = now - this.settleMs - 60_000;
    const rows = await guard(() =>
      this.driver.withSession((session) =>
        session.query<{ planned: number }>(PLAN, [
          this.name,
          now - this.lookbackMs,
          settledBefore,
          this.statusClasses,
          this.endpoints,
          limit,
          this.lateMs,
          this.byUnits,
        ]),
      ),
    );
    return rows[0]?.planned ?? 0;
  }

  /** Rows written by `plan()` and not yet acknowledged, oldest first. */
  async pending(limit = 1_000): Promise<MeterSendRow[]> {
    const rows = await guard(() =>
      this.driver.withSession((session) =>
        session.query<{ identifier: string; org_id: string; customer_id: string; at: number; value: number }>(
          PENDING,
          [this.name, limit],
        ),
      ),
    );
    return rows.map((row) => ({
      identifier: row.identifier,
      orgId: row.org_id,
      customerId: row.customer_id,
      at: new Date(Number(row.at)),
      value: Number(row.value),
    }));
  }

  /** Records that the provider acknowledged these sends. */
  async markSent(identifiers: readonly string[]): Promise<void> {
    if (identifiers.length === 0) return;
    await guard(() =>
      this.driver.withSession((session) => session.query(MARK_SENT, [this.name, [...identifiers]])),
    );
  }

  /** Units acknowledged and units still to send (for one org, or all). */
  async totals(query: { orgId?: string } = {}): Promise<{ sent: number; pending: number }> {
    const rows = await guard(() =>
      this.driver.withSession((session) =>
        session.query<{ sent: number; pending: number }>(TOTALS, [this.name, query.orgId ?? null]),
      ),
    );
    return { sent: Number(rows[0]?.sent ?? 0), pending: Number(rows[0]?.pending ?? 0) };
  }
}
