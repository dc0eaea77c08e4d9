/** Options of the webhook handler and the meter sync, their defaults, and their checks. */
import { type Duration, FluxConfigError, type Logger, type SubscriptionPolicy, toMs } from "@flux-keys/core";
import type Stripe from "stripe";

export interface PastDuePolicy {
  /** Days the paid plan stays after the first failed payment. @default 3 */
  graceDays?: number;
  /**
   * What happens once grace is over: move the org to this plan id, or `"suspend"` it (its plan is
   * kept and every key of it is refused with `org_suspended`, 403, until the subscription is paid
   * again; a suspension an operator made with `flux.orgs.suspend()` is never lifted by billing).
   * @default the `fallbackPlan`
   */
  afterGrace?: string | "suspend";
  /**
   * How often the handler moves orgs whose grace has ended (Stripe sends no event for our grace
   * period): a duration, or `null` to run `handler.enforcePastDue()` yourself. The timer does not
   * keep the process alive; `handler.close()` stops it. @default '10m'
   */
  checkInterval?: string | number | null;
}

export interface StripeWebhookOptions {
  /** A `stripe` client (the official SDK). */
  stripe: Stripe;
  /** The endpoint's signing secret (`whsec_…`). */
  webhookSecret: string;
  /** Stripe price `lookup_key` → Flux plan id. Prices may also say `metadata.flux_plan` (or their product). */
  plans: Record<string, string>;
  /** The plan of an org whose subscription is canceled, unpaid, paused or incomplete. @default null (no plan) */
  fallbackPlan?: string | null;
  /** What `past_due` does. @default { graceDays: 3, afterGrace: fallbackPlan } */
  pastDue?: PastDuePolicy;
  /** Seconds a signature stays acceptable (replay window). @default 300 */
  tolerance?: number;
  /** Largest body accepted, in bytes. @default 1048576 */
  maxBodyBytes?: number;
}

const WEBHOOK_KEYS = new Set([
  "stripe",
  "webhookSecret",
  "plans",
  "fallbackPlan",
  "pastDue",
  "tolerance",
  "maxBodyBytes",
]);

export interface ResolvedWebhookOptions {
  stripe: Stripe;
  webhookSecret: string;
  plans: Readonly<Record<string, string>>;
  policy: SubscriptionPolicy;
  /** Interval of the automatic past-due check, or null when the app runs it. */
  pastDueCheckMs: number | null;
  tolerance: number;
  maxBodyBytes: number;
}

function fail(message: string): never {
  throw new FluxConfigError("invalid_option", `@flux-keys/stripe: ${message}`);
}

export function unknownKeys(options: object, known: Set<string>, where: string): void {
  for (const name of Object.keys(options)) {
    if (!known.has(name))
      throw new FluxConfigError("unknown_option", `Unknown option '${name}' for ${where}.`);
  }
}

export function assertStripe(stripe: unknown): asserts stripe is Stripe {
  if (stripe === null || typeof stripe !== "object" || !("webhooks" in stripe)) {
    fail("pass { stripe } (an instance of the official stripe client).");
  }
}

export function resolveWebhookOptions(options: StripeWebhookOptions): ResolvedWebhookOptions {
  if (options === null || typeof options !== "object") fail("pass an options object.");
  unknownKeys(options, WEBHOOK_KEYS, "createStripeWebhookHandler()");
  assertStripe(options.stripe);
  if (typeof options.webhookSecret !== "string" || options.webhookSecret.length < 8) {
    fail("webhookSecret must be the endpoint's signing secret.");
  }
  if (options.plans === null || typeof options.plans !== "object")
    fail("plans must map lookup keys to plan ids.");
  for (const [lookupKey, planId] of Object.entries(options.plans)) {
    if (typeof planId !== "string" || planId.length === 0) fail(`plans['${lookupKey}'] must be a plan id.`);
  }
  const fallbackPlanId = options.fallbackPlan ?? null;
  const pastDue = options.pastDue ?? {};
  unknownKeys(pastDue, new Set(["graceDays", "afterGrace", "checkInterval"]), "pastDue");
  let pastDueCheckMs: number | null = null;
  if (pastDue.checkInterval !== null) {
    try {
      pastDueCheckMs = toMs((pastDue.checkInterval ?? "10m") as Duration, "pastDue.checkInterval");
    } catch {
      fail("pastDue.checkInterval must be a duration such as '10m', or null.");
    }
    if (pastDueCheckMs < 50) fail("pastDue.checkInterval must be at least 50ms.");
  }
  const graceDays = pastDue.graceDays ?? 3;
  if (!Number.isFinite(graceDays) || graceDays < 0) fail("pastDue.graceDays must be a number of days ≥ 0.");
  const afterGrace = pastDue.afterGrace;
  const pastDueSuspends = afterGrace === "suspend";
  const pastDuePlanId = afterGrace === undefined || pastDueSuspends ? fallbackPlanId : afterGrace;
  const tolerance = options.tolerance ?? 300;
  if (!Number.isFinite(tolerance) || tolerance <= 0) fail("tolerance must be a positive number of seconds.");
  const maxBodyBytes = options.maxBodyBytes ?? 1_048_576;
  return {
    stripe: options.stripe,
    webhookSecret: options.webhookSecret,
    plans: Object.freeze({ ...options.plans }),
    policy: Object.freeze({
      fallbackPlanId,
      pastDueGraceMs: graceDays * 86_400_000,
      pastDuePlanId,
      pastDueSuspends,
    }),
    pastDueCheckMs,
    tolerance,
    maxBodyBytes,
  };
}

export interface MeterDefinition {
  /** The Stripe meter's `event_name`. Also names the outbox: keep it stable. */
  eventName: string;
  /**
   * Which served calls count, by status class. Calls Flux Keys refused (rate limited, out of
   * scope, revoked…) never count, whatever their status. @default [1, 2, 3]
   */
  statusClasses?: number[];
  /** Only calls to these endpoints (`"POST /v1/exports"`) count. @default all */
  endpoints?: string[];
  /** What each counted call adds: `'calls'` (one) or `'units'` (its route's cost). @default 'calls' */
  value?: "calls" | "units";
  /** Payload key of the customer (the meter's `customer_mapping.event_payload_key`). @default 'stripe_customer_id' */
  customerKey?: string;
  /** Payload key of the value (the meter's `value_settings.event_payload_key`). @default 'value' */
  valueKey?: string;
}

export interface StripeMeterSyncOptions {
  stripe: Stripe;
  /** The meters to feed, each from the usage buckets of every org with a Stripe customer. */
  meters: MeterDefinition[];
  /** How often `start()` runs a round. @default 60000 (1 minute) */
  intervalMs?: number;
  /** A minute is sent once it ended this long ago. @default 120000 */
  settleMs?: number;
  /** Rows claimed per round per meter (each a meter event). @default 1000 */
  batchSize?: number;
  /** Meter events in flight at once. @default 8 */
  concurrency?: number;
  /** Retries of one event (5xx, 429, network), with exponential backoff and jitter. @default { attempts: 5, initialMs: 200, maxMs: 10000 } */
  retry?: { attempts?: number; initialMs?: number; maxMs?: number };
  /** Where failed sends are reported (pino fits; never a secret). @default none */
  logger?: Logger;
}

const SYNC_KEYS = new Set([
  "stripe",
  "meters",
  "intervalMs",
  "settleMs",
  "batchSize",
  "concurrency",
  "retry",
  "logger",
]);
const METER_KEYS = new Set(["eventName", "statusClasses", "endpoints", "customerKey", "valueKey", "value"]);

export interface ResolvedMeterSyncOptions {
  stripe: Stripe;
  meters: Array<Required<Omit<MeterDefinition, "endpoints">> & { endpoints: string[] }>;
  intervalMs: number;
  settleMs: number;
  batchSize: number;
  concurrency: number;
  retry: { attempts: number; initialMs: number; maxMs: number };
}

const positive = (value: number | undefined, fallback: number, name: string) => {
  const resolved = value ?? fallback;
  if (!Number.isFinite(resolved) || resolved <= 0) fail(`${name} must be a positive number.`);
  return resolved;
};

export function resolveMeterSyncOptions(options: StripeMeterSyncOptions): ResolvedMeterSyncOptions {
  if (options === null || typeof options !== "object") fail("pass an options object.");
  unknownKeys(options, SYNC_KEYS, "createStripeMeterSync()");
  assertStripe(options.stripe);
  if (!Array.isArray(options.meters) || options.meters.length === 0)
    fail("meters must list at least one meter.");
  const names = new Set<string>();
  const meters = options.meters.map((meter) => {
    unknownKeys(meter, METER_KEYS, "a meter");
    if (typeof meter.eventName !== "string" || !/^[A-Za-z0-9_.:-]{1,100}$/.test(meter.eventName)) {
      fail("each meter needs an eventName (the Stripe meter's event_name).");
    }
    if (names.has(meter.eventName)) fail(`meter '${meter.eventName}' is listed twice.`);
    names.add(meter.eventName);
    const statusClasses = meter.statusClasses ?? [1, 2, 3];
    if (!statusClasses.every((c) => Number.isInteger(c) && c >= 1 && c <= 5)) {
      fail("statusClasses must be integers 1..5.");
    }
    const value = meter.value ?? "calls";
    if (value !== "calls" && value !== "units") fail("a meter's value must be 'calls' or 'units'.");
    return {
      eventName: meter.eventName,
      value,
      statusClasses,
      endpoints: meter.endpoints ?? [],
      customerKey: meter.customerKey ?? "stripe_customer_id",
      valueKey: meter.valueKey ?? "value",
    };
  });
  const retry = options.retry ?? {};
  unknownKeys(retry, new Set(["attempts", "initialMs", "maxMs"]), "retry");
  return {
    stripe: options.stripe,
    meters,
    intervalMs: positive(options.intervalMs, 60_000, "intervalMs"),
    settleMs: options.settleMs ?? 120_000,
    batchSize: Math.floor(positive(options.batchSize, 1_000, "batchSize")),
    concurrency: Math.floor(positive(options.concurrency, 8, "concurrency")),
    retry: {
      attempts: Math.floor(positive(retry.attempts, 5, "retry.attempts")),
      initialMs: positive(retry.initialMs, 200, "retry.initialMs"),
      maxMs: positive(retry.maxMs, 10_000, "retry.maxMs"),
    },
  };
}
