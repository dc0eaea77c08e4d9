/**
 * What verification needs about one key, read in one indexed query that also brings the org's
 * plan and entitlement overrides, and then served from the cache.
 */
import { performance } from "node:perf_hooks";
import type { SqlDriver } from "../database.js";
import { effectiveEntitlements, type OverrideRow } from "../entitlements.js";
import type { KeyContext, KeyStatus, Quota, RateLimitState, RateLimitWindow } from "../types.js";
import type { KeyEnvironment } from "./format.js";

export interface KeyRecord {
  id: string;
  orgId: string;
  name: string;
  environment: KeyEnvironment;
  scopes: readonly string[];
  metadata: Readonly<Record<string, unknown>>;
  expiresAt: Date | null;
  revokedAt: Date | null;
  replacedById: string | null;
  sunsetAt: Date | null;
  rateLimits: RateLimitWindow[] | null;
  quota: Quota | null;
  /** Client networks the key may be used from; empty means anywhere. */
  allowFrom: readonly string[];
  /** First key of the rotation chain (this key when never rotated): quotas count per lineage. */
  lineageId: string;
  /** The org is suspended: every key of it is refused (`org_suspended`). */
  orgSuspended: boolean;
  /** `allowFrom` compiled, on first use. */
  allowed: ((address: string, hop: number) => boolean) | null;
  /** Who a denial of this key is about (see `CheckResult`): one frozen object per record. */
  identity: Readonly<{ keyId: string; orgId: string }>;
  plan: {
    id: string;
    name: string;
    rateLimits: RateLimitWindow[];
    quota: Quota | null;
  } | null;
  planEntitlements: readonly string[];
  overrides: readonly OverrideRow[];
  /** Context without per-request parts, rebuilt when the entitlement set changes with time. */
  base: Omit<KeyContext, "rateLimit"> | null;
  baseValidUntil: number;
  /** `performance.now()` when the read that brought this record was sent (see InvalidationBus.trusts). */
  readAt: number;
  /** The digest it was read by (its cache key). */
  digest: string;
  /**
   * Instance clock time from which a request of this key starts reading it again in the
   * background, before its cache entry expires (see KeyVerification's refresh-ahead); set when
   * the record is cached.
   */
  refreshAt: number;
}

interface Row {
  id: string;
  org_id: string;
  name: string;
  environment: string;
  scopes: string[] | null;
  metadata: unknown;
  expires_at: Date | null;
  revoked_at: Date | null;
  replaced_by_id: string | null;
  sunset_at: Date | null;
  rate_limits: unknown;
  quota: unknown;
  allow_from: string[] | null;
  lineage_id: string | null;
  org_suspended: boolean;
  plan_id: string | null;
  plan_name: string | null;
  plan_entitlements: string[] | null;
  plan_rate_limits: unknown;
  plan_quota: unknown;
  overrides: unknown;
}

const LOAD_SQL = `
    SELECT k."id", k."org_id", k."name", k."environment", k."scopes", k."metadata",
           k."expires_at", k."revoked_at", k."replaced_by_id", k."sunset_at",
           k."rate_limits", k."quota", k."allow_from", k."lineage_id", o."suspended_at" IS NOT NULL AS "org_suspended",
           p."id" AS "plan_id", p."name" AS "plan_name", p."entitlements" AS "plan_entitlements",
           p."rate_limits" AS "plan_rate_limits", p."quota" AS "plan_quota",
           (SELECT COALESCE(json_agg(json_build_object(
                      'name', e."name", 'granted', e."granted",
                      'expiresAt', (EXTRACT(EPOCH FROM e."expires_at") * 1000)::bigint)), '[]'::json)
              FROM "flux_org_entitlements" e WHERE e."org_id" = k."org_id") AS "overrides"
      FROM "flux_api_keys" k
      JOIN "flux_orgs" o ON o."id" = k."org_id"
      LEFT JOIN "flux_plans" p ON p."id" = o."plan_id"
     WHERE k."digest" = $1`;

/**
 * The record of a digest, in one indexed read that also brings the org, the plan and the org's
 * entitlement overrides. Straight on the app's pool (or PGlite), not through Prisma: this read is
 * the cold path of every request whose key is not cached, and Prisma's raw query costs several
 * times the database's own work (bench/RESULTS.md, "cold path").
 */
export async function loadKeyRecord(driver: SqlDriver, digest: string): Promise<KeyRecord | null> {
  const readAt = performance.now();
  const rows = await driver.withSession((session) => session.query<Row>(LOAD_SQL, [digest]));
  const row = rows[0];
  if (row === undefined) return null;
  return {
    id: row.id,
    orgId: row.org_id,
    name: row.name,
    environment: row.environment as KeyEnvironment,
    scopes: Object.freeze([...(row.scopes ?? [])]),
    metadata: Object.freeze(asObject(row.metadata)),
    expiresAt: toDate(row.expires_at),
    revokedAt: toDate(row.revoked_at),
    replacedById: row.replaced_by_id,
    sunsetAt: toDate(row.sunset_at),
    rateLimits: (asJson(row.rate_limits) as RateLimitWindow[] | null) ?? null,
    quota: (asJson(row.quota) as Quota | null) ?? null,
    allowFrom: Object.freeze([...(row.allow_from ?? [])]),
    lineageId: row.lineage_id ?? row.id,
    orgSuspended: row.org_suspended === true,
    allowed: null,
    identity: Object.freeze({ keyId: row.id, orgId: row.org_id }),
    plan:
      row.plan_id === null
        ? null
        : {
            id: row.plan_id,
            name: row.plan_name ?? row.plan_id,
            rateLimits: (asJson(row.plan_rate_limits) as RateLimitWindow[] | null) ?? [],
            quota: (asJson(row.plan_quota) as Quota | null) ?? null,
          },
    planEntitlements: row.plan_entitlements ?? [],
    overrides: (asJson(row.overrides) as Array<{ name: string; granted: boolean; expiresAt: unknown }>).map(
      (o) => ({
        name: o.name,
        granted: o.granted,
        expiresAt: o.expiresAt === null || o.expiresAt === undefined ? null : Number(o.expiresAt),
      }),
    ),
    base: null,
    baseValidUntil: 0,
    readAt,
    digest,
    refreshAt: Number.POSITIVE_INFINITY,
  };
}

/** The per-request-independent part of the context, cached on the record until it changes. */
export function baseContext(record: KeyRecord, now: number): Omit<KeyContext, "rateLimit"> {
  if (record.base !== null && now < record.baseValidUntil) return record.base;
  const entitlements = effectiveEntitlements(record.planEntitlements, record.overrides, now);
  const inGrace = record.replacedById !== null && record.sunsetAt !== null;
  record.base = Object.freeze({
    keyId: record.id,
    name: record.name,
    orgId: record.orgId,
    plan: record.plan === null ? null : Object.freeze({ id: record.plan.id, name: record.plan.name }),
    scopes: record.scopes,
    entitlements: entitlements.names,
    environment: record.environment,
    expiresAt: record.expiresAt,
    metadata: record.metadata,
    rotation: inGrace
      ? Object.freeze({ replacedBy: record.replacedById as string, sunsetAt: record.sunsetAt as Date })
      : null,
  });
  record.baseValidUntil = entitlements.validUntil;
  return record.base;
}

/**
 * The request's context: the record's cached part and this request's rate limit state, as one
 * literal (one object shape for every context; cheaper than a spread on the hot path).
 */
export function withRateLimit(
  base: Omit<KeyContext, "rateLimit">,
  rateLimit: RateLimitState | null,
): KeyContext {
  return {
    keyId: base.keyId,
    name: base.name,
    orgId: base.orgId,
    plan: base.plan,
    scopes: base.scopes,
    entitlements: base.entitlements,
    environment: base.environment,
    expiresAt: base.expiresAt,
    metadata: base.metadata,
    rotation: base.rotation,
    rateLimit,
  };
}

/** Status at `now`, from the same fields on a record or a row. */
export function keyStatus(
  key: {
    revokedAt: Date | null;
    expiresAt: Date | null;
    replacedById: string | null;
    sunsetAt: Date | null;
  },
  now: number,
): KeyStatus {
  if (key.revokedAt !== null) return "revoked";
  if (key.expiresAt !== null && key.expiresAt.getTime() <= now) return "expired";
  if (key.sunsetAt !== null) return key.sunsetAt.getTime() <= now ? "expired" : "grace";
  return "active";
}

function toDate(value: Date | string | null): Date | null {
  if (value === null) return null;
  return value instanceof Date ? value : new Date(value);
}

function asJson(value: unknown): unknown {
  if (typeof value === "string") {
    try {
      return JSON.parse(value);
    } catch {
      return null;
    }
  }
  return value ?? null;
}

function asObject(value: unknown): Record<string, unknown> {
  const parsed = asJson(value);
  return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
    ? (parsed as Record<string, unknown>)
    : {};
}
