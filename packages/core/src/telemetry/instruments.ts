/**
 * The metrics of one Flux instance, named once: OpenTelemetry names under `flux.` (modelled on the
 * stable `aspnetcore.rate_limiting.*` and `http.server.*` conventions: a counter per decision with
 * its result as an attribute, durations as histograms in seconds) and, derived from them, the
 * Prometheus names under `flux_` (`_total` for counters, `_seconds` for durations).
 *
 * No key id is ever an attribute (unbounded cardinality); org and plan ids only when
 * `telemetry.attributes` asks for them.
 */

export type InstrumentKind = "counter" | "histogram" | "gauge" | "observable-counter";

export interface InstrumentSpec {
  /** OpenTelemetry name. */
  name: string;
  kind: InstrumentKind;
  /** UCUM unit (`s`, `{verification}`). */
  unit: string;
  description: string;
  /** Attribute names (before the optional org / plan ones). */
  attributes: readonly string[];
  /** Whether the optional org / plan attributes apply. */
  perOrg?: boolean;
  /** Histogram bucket boundaries (seconds). */
  buckets?: readonly number[];
}

/** Sub-millisecond to seconds: a cached verification is microseconds, a database read milliseconds. */
const VERIFY_BUCKETS = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
  0.5, 1,
];
const IO_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const ATTR = {
  outcome: "flux.outcome",
  orgId: "flux.org.id",
  planId: "flux.plan.id",
  keyId: "flux.key.id",
  limiterResult: "flux.rate_limiting.result",
  limiterWindow: "flux.rate_limiting.window",
  cacheResult: "flux.cache.result",
  heartbeatResult: "flux.invalidation.heartbeat.result",
  flushResult: "flux.usage.flush.result",
  webhookResult: "flux.webhook.result",
} as const;

export const INSTRUMENTS = {
  verifications: {
    name: "flux.verifications",
    kind: "counter",
    unit: "{verification}",
    description:
      "Key verifications, by outcome (allowed, rate_limited, scope_denied, unknown, store_down, …).",
    attributes: [ATTR.outcome],
    perOrg: true,
  },
  verificationDuration: {
    name: "flux.verification.duration",
    kind: "histogram",
    unit: "s",
    description: "Duration of key verifications, by outcome.",
    attributes: [ATTR.outcome],
    perOrg: true,
    buckets: VERIFY_BUCKETS,
  },
  limiterDecisions: {
    name: "flux.rate_limiting.decisions",
    kind: "counter",
    unit: "{decision}",
    description:
      "Rate limit and quota decisions, by result (acquired, rejected, store_unavailable) and window.",
    attributes: [ATTR.limiterResult, ATTR.limiterWindow],
    perOrg: true,
  },
  cacheLookups: {
    name: "flux.cache.lookups",
    kind: "counter",
    unit: "{lookup}",
    description:
      "Key cache lookups of well-formed keys: hit, miss (read from the database), negative (known unknown, no read).",
    attributes: [ATTR.cacheResult],
  },
  invalidationLag: {
    name: "flux.invalidation.lag",
    kind: "gauge",
    unit: "s",
    description:
      "Age of the last heartbeat the invalidation bus answered: every change committed before it has been heard.",
    attributes: [],
  },
  heartbeatDuration: {
    name: "flux.invalidation.heartbeat.duration",
    kind: "histogram",
    unit: "s",
    description: "Round trip of the invalidation bus heartbeat, by result (ok, lost).",
    attributes: [ATTR.heartbeatResult],
    buckets: IO_BUCKETS,
  },
  usageBufferSize: {
    name: "flux.usage.buffer.size",
    kind: "gauge",
    unit: "{bucket}",
    description: "Usage buckets waiting in memory for a flush (or a retry).",
    attributes: [],
  },
  usageFlushDuration: {
    name: "flux.usage.flush.duration",
    kind: "histogram",
    unit: "s",
    description: "Duration of usage flushes, by result (ok, error).",
    attributes: [ATTR.flushResult],
    buckets: IO_BUCKETS,
  },
  usageDropped: {
    name: "flux.usage.dropped",
    kind: "observable-counter",
    unit: "{call}",
    description: "Calls not recorded in usage (buffer full, refused batch, closed instance).",
    attributes: [],
  },
  webhookDeliveries: {
    name: "flux.webhook.deliveries",
    kind: "counter",
    unit: "{delivery}",
    description: "Webhook delivery attempts, by result (delivered, retrying, failed).",
    attributes: [ATTR.webhookResult],
  },
} as const satisfies Record<string, InstrumentSpec>;

export type InstrumentName = keyof typeof INSTRUMENTS;

/** Prometheus label of an attribute: `flux.outcome` -> `outcome`, `flux.org.id` -> `org_id`. */
export function prometheusLabel(attribute: string): string {
  const parts = attribute.split(".");
  const last = parts[parts.length - 1] as string;
  return last === "id" ? `${parts[parts.length - 2]}_id` : last;
}

/** Prometheus name: `flux.verifications` -> `flux_verifications_total`, unit `s` -> `_seconds`. */
export function prometheusName(spec: InstrumentSpec): string {
  const base = spec.name.replace(/\./g, "_");
  const unit = spec.unit === "s" ? "_seconds" : "";
  const total = spec.kind === "counter" || spec.kind === "observable-counter" ? "_total" : "";
  return `${base}${unit}${total}`;
}
