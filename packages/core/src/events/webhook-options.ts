/**
 * The `webhooks` option of `createFlux`: endpoints, retries and the periodic checks. One schema
 * holds their names, defaults and checks; the endpoint checks are shared with `flux.webhooks.add`.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { duration, integer, section } from "../options-schema.js";
import { isPublicAddress, literalAddress } from "./address-guard.js";
import { isEventType, type LifecycleEventType } from "./event-types.js";

const DAY_MS = 86_400_000;
const days = "must be a number of days (0 < n <= 3650) or null.";
const fractions = "must be at most 10 fractions in (0, 1], such as [0.8, 1].";

const endpointSection = section(
  {
    /** `http:` or `https:` URL that receives `POST` requests. */
    url: z.custom<string>((value) => checkUrl(value) !== null, { error: "must be an http(s) URL." }),
    /** Signing secret (at least 16 characters): receivers check `Flux-Signature` with it. */
    secret: z.custom<string>(checkSecret, { error: "must be 16 to 256 characters." }),
    /** Event types sent to this endpoint. @default all */
    events: z
      .custom<LifecycleEventType[]>((value) => checkEvents(value) !== undefined, {
        error: "must be a list of event types.",
      })
      .optional(),
  },
  "must be { url, secret, events? }.",
);

export type WebhookEndpointOptions = z.input<typeof endpointSection>;

const webhooksSection = section({
  /** Endpoints every instance sends to (more can be stored with `flux.webhooks.add`). @default [] */
  endpoints: z.array(endpointSection, { error: "must be a list of endpoints." }).prefault([]),
  /** Attempts per delivery before it is marked `failed`. @default 8 */
  maxAttempts: integer("must be an integer from 1 to 100.", 1, 100).prefault(8),
  /**
   * Delay before attempt n+1: `initial` × 2^(n-1), at most `max`, with jitter (between half and
   * all of it).
   * @default { initial: '10s', max: '1h' }
   */
  backoff: section({
    initial: duration("5s").prefault("10s"),
    max: duration("5s").prefault("1h"),
  })
    .refine((backoff) => backoff.max >= backoff.initial, {
      error: "must be at least backoff.initial.",
      path: ["max"],
    })
    .prefault({}),
  /** How long one delivery attempt may take. @default '5s' */
  timeout: duration("5s", { ms: 1, error: "must be positive." }).prefault("5s"),
  /**
   * How often this instance looks for due deliveries and new events (it also looks right after it
   * records an event). `null`: never by itself; call `flux.webhooks.runOnce()`.
   * @default '5s'
   */
  interval: duration("5s", { ms: 10, error: "must be at least 10ms." }).nullable().prefault("5s"),
  /** How often this instance runs the `key.expiring` / `key.unused` checks and retention. @default '1h' */
  checkInterval: duration("5s", { ms: 10, error: "must be at least 10ms." }).prefault("1h"),
  /** `key.expiring` is emitted this many days before a key expires; `null` turns it off. @default 7 */
  expiringDays: z
    .number({ error: days })
    .gt(0, { error: days })
    .max(3650, { error: days })
    .nullable()
    .prefault(7),
  /** `key.unused` is emitted after this many days without use; `null` turns it off. @default 30 */
  unusedDays: z
    .number({ error: days })
    .gt(0, { error: days })
    .max(3650, { error: days })
    .nullable()
    .prefault(30),
  /** `quota.threshold` is emitted when a key's use of its quota reaches these fractions. @default [0.8, 1] */
  quotaThresholds: z
    .array(z.number({ error: fractions }).gt(0, { error: fractions }).max(1, { error: fractions }), {
      error: fractions,
    })
    .max(10, { error: fractions })
    .prefault([0.8, 1]),
  /** Events (and their deliveries) older than this are deleted. At least '32d'. @default '90d' */
  retention: duration("5s", { ms: 32 * DAY_MS, error: "must be at least '32d'." }).prefault("90d"),
  /**
   * Let endpoints reach loopback, private (RFC 1918, unique local), link-local and cloud metadata
   * addresses. Off, such addresses are refused when an endpoint is configured or added (an address
   * in the URL) and at connect time on what its name resolved to (`lastError: 'blocked_address'`),
   * so neither a URL nor DNS rebinding can aim deliveries at this host's network. For development
   * (a receiver on 127.0.0.1) only.
   * @default false
   */
  allowPrivateNetworks: z.boolean({ error: "must be true or false." }).prefault(false),
});

export type WebhookOptions = z.input<typeof webhooksSection>;

export const webhookOptionsSchema = webhooksSection.prefault({}).transform((webhooks, ctx) => {
  const endpoints: ResolvedEndpoint[] = [];
  for (const [index, endpoint] of webhooks.endpoints.entries()) {
    const url = checkUrl(endpoint.url) as string;
    if (!webhooks.allowPrivateNetworks && !publicTarget(url)) {
      ctx.issues.push({
        code: "custom",
        input: endpoint.url,
        path: ["endpoints", index, "url"],
        message:
          "is a loopback, private, link-local or metadata address (see webhooks.allowPrivateNetworks).",
      });
      return z.NEVER;
    }
    const events = checkEvents(endpoint.events) ?? null;
    endpoints.push({
      id: configuredEndpointId(url),
      url,
      secret: endpoint.secret,
      events,
      source: "options",
    });
  }
  if (new Set(endpoints.map((e) => e.id)).size !== endpoints.length) {
    ctx.issues.push({
      code: "custom",
      input: webhooks.endpoints,
      path: ["endpoints"],
      message: "has the same url twice.",
    });
    return z.NEVER;
  }
  return {
    endpoints,
    maxAttempts: webhooks.maxAttempts,
    backoffInitialMs: webhooks.backoff.initial,
    backoffMaxMs: webhooks.backoff.max,
    timeoutMs: webhooks.timeout,
    intervalMs: webhooks.interval,
    checkIntervalMs: webhooks.checkInterval,
    expiringDays: webhooks.expiringDays,
    unusedDays: webhooks.unusedDays,
    quotaThresholds: [...new Set(webhooks.quotaThresholds)].sort((a, b) => a - b) as readonly number[],
    retentionMs: webhooks.retention,
    allowPrivateNetworks: webhooks.allowPrivateNetworks,
  };
});

export interface ResolvedEndpoint {
  id: string;
  url: string;
  secret: string;
  /** null: every type. */
  events: ReadonlySet<string> | null;
  source: "options" | "stored";
}

export type ResolvedWebhookOptions = z.output<typeof webhookOptionsSchema>;

/** Configured endpoints are known by their URL: the id survives restarts and secret changes. */
export function configuredEndpointId(url: string): string {
  return `cfg_${createHash("sha256").update(url).digest("hex").slice(0, 24)}`;
}

/** The URL normalised, or null when it is not an http(s) URL. */
export function checkUrl(value: unknown): string | null {
  if (typeof value !== "string" || value.length > 2_000) return null;
  try {
    const url = new URL(value);
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    return url.toString();
  } catch {
    return null;
  }
}

/**
 * False when the URL's host is an address that is not public. A name is not judged here: what it
 * resolves to is checked at connect time.
 */
export function publicTarget(url: string): boolean {
  const literal = literalAddress(new URL(url));
  return literal === null || isPublicAddress(literal);
}

export function checkSecret(value: unknown): value is string {
  return typeof value === "string" && value.length >= 16 && value.length <= 256;
}

/** null for "all", undefined when invalid. */
export function checkEvents(value: unknown): ReadonlySet<string> | null | undefined {
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value) || !value.every(isEventType)) return undefined;
  return value.length === 0 ? null : new Set(value);
}
