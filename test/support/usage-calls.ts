/**
 * Test helpers for the usage suites: a deterministic call generator and a reference model that
 * answers a usage query by folding the raw calls (independent of the implementation's buckets).
 */
import type {
  Granularity,
  GroupDimension,
  UsageOutcome,
  UsageQueryResult,
  UsageRecord,
} from "@flux-keys/core";

export type Call = Required<
  Pick<UsageRecord, "keyId" | "orgId" | "method" | "endpoint" | "status" | "latencyMs" | "outcome">
> & {
  at: number;
};

const STEP: Record<Granularity, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** Small seeded PRNG (mulberry32): the same calls on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const ENDPOINTS = [
  ["GET", "/v1/events"],
  ["GET", "/v1/events/:id"],
  ["POST", "/v1/events"],
  ["DELETE", "/v1/events/:id"],
  ["GET", "/v1/configs"],
  ["PUT", "/v1/configs/:name"],
] as const;
export const STATUSES = [200, 200, 200, 201, 204, 304, 400, 401, 404, 429, 500, 503] as const;
/** Refusals of identified keys, each with the status the adapters answer it with. */
export const REFUSALS: ReadonlyArray<readonly [UsageOutcome, number]> = [
  ["rate_limited", 429],
  ["quota_exceeded", 429],
  ["scope_denied", 403],
  ["entitlement_denied", 403],
  ["ip_not_allowed", 403],
  ["revoked", 401],
  ["expired", 401],
  ["org_suspended", 403],
];

/** `n` calls over `minutes` minutes from `start`, across the given keys (each bound to one org). */
export function generateCalls(
  n: number,
  options: { seed: number; start: number; minutes: number; keys: Array<{ keyId: string; orgId: string }> },
): Call[] {
  const random = prng(options.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const calls: Call[] = [];
  for (let i = 0; i < n; i++) {
    const key = pick(options.keys);
    const [method, endpoint] = pick(ENDPOINTS);
    // About a quarter refused, spread over every refusal.
    const refusal = random() < 0.25 ? pick(REFUSALS) : null;
    calls.push({
      ...key,
      method,
      endpoint,
      status: refusal === null ? pick(STATUSES) : refusal[1],
      outcome: refusal === null ? "allowed" : refusal[0],
      // Whole and fractional milliseconds, so sums are compared with a tolerance only where needed.
      latencyMs: Math.round(random() * 4000) / 8,
      at: options.start + Math.floor(random() * options.minutes * 60_000),
    });
  }
  return calls;
}

export interface Expected {
  calls: number;
  errors: number;
  latencySum: number;
  latencyMax: number;
}

/** What a query must answer, from the raw calls: series id -> bucket start -> totals. */
export function expectedSeries(
  calls: readonly Call[],
  query: {
    orgId?: string;
    keyId?: string;
    method?: string;
    endpoint?: string;
    outcome?: UsageOutcome;
    from: number;
    to: number;
    granularity: Granularity;
    groupBy?: GroupDimension[];
  },
): Map<string, Map<number, Expected>> {
  const step = STEP[query.granularity];
  const from = Math.floor(query.from / step) * step;
  const to = Math.ceil(query.to / step) * step;
  const out = new Map<string, Map<number, Expected>>();
  for (const call of calls) {
    if (call.at < from || call.at >= to) continue;
    if (query.orgId !== undefined && call.orgId !== query.orgId) continue;
    if (query.keyId !== undefined && call.keyId !== query.keyId) continue;
    if (query.method !== undefined && call.method !== query.method) continue;
    if (query.endpoint !== undefined && call.endpoint !== query.endpoint) continue;
    if (query.outcome !== undefined && call.outcome !== query.outcome) continue;
    const id = groupId(call, query.groupBy ?? []);
    let series = out.get(id);
    if (!series) {
      series = new Map();
      out.set(id, series);
    }
    const t = Math.floor(call.at / step) * step;
    const e = series.get(t) ?? { calls: 0, errors: 0, latencySum: 0, latencyMax: 0 };
    e.calls++;
    if (call.status >= 400) e.errors++;
    e.latencySum += call.latencyMs;
    e.latencyMax = Math.max(e.latencyMax, call.latencyMs);
    series.set(t, e);
  }
  return out;
}

function groupId(call: Call, groupBy: readonly GroupDimension[]): string {
  const group: Record<string, string> = {};
  for (const dimension of [...groupBy].sort()) {
    if (dimension === "key") group.keyId = call.keyId;
    if (dimension === "endpoint") {
      group.endpoint = call.endpoint;
      group.method = call.method;
    }
    if (dimension === "status") group.status = `${Math.floor(call.status / 100)}xx`;
    if (dimension === "outcome") group.outcome = call.outcome;
  }
  return canonical(group);
}

export function canonical(group: Record<string, unknown>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(group).sort(([a], [b]) => (a < b ? -1 : 1))));
}

/** Compares a query result with the reference, point by point; returns the mismatches (empty = exact). */
export function mismatches(result: UsageQueryResult, expected: Map<string, Map<number, Expected>>): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const series of result.series) {
    const id = canonical(series.group as Record<string, unknown>);
    seen.add(id);
    const want = expected.get(id) ?? new Map<number, Expected>();
    let total = 0;
    for (const point of series.points) {
      const e = want.get(point.at.getTime());
      total += point.calls;
      if ((e?.calls ?? 0) !== point.calls || (e?.errors ?? 0) !== point.errors) {
        problems.push(
          `${id} @${point.at.toISOString()}: ${point.calls}/${point.errors} != ${e?.calls ?? 0}/${e?.errors ?? 0}`,
        );
      } else if (
        e &&
        (Math.abs((point.latencyAvgMs ?? 0) * e.calls - e.latencySum) > 1e-6 ||
          point.latencyMaxMs !== e.latencyMax)
      ) {
        problems.push(`${id} @${point.at.toISOString()}: latency differs`);
      } else if (!e && (point.latencyAvgMs !== null || point.latencyMaxMs !== null)) {
        problems.push(`${id} @${point.at.toISOString()}: latency on an empty bucket`);
      }
    }
    if (total !== series.totals.calls)
      problems.push(`${id}: totals ${series.totals.calls} != sum of points ${total}`);
  }
  for (const [id, points] of expected) {
    if (!seen.has(id) && [...points.values()].some((p) => p.calls > 0))
      problems.push(`${id}: series missing`);
  }
  return problems;
}

export function sumCalls(result: UsageQueryResult): number {
  return result.series.reduce((total, series) => total + series.totals.calls, 0);
}
