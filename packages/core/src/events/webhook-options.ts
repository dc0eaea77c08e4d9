/** The `webhooks` option of `createFlux`: endpoints, retries and the periodic checks. */
import { createHash } from "node:crypto";
import { type Duration, toMs } from "../duration.js";
import { FluxConfigError } from "../errors.js";
import { isPublicAddress, literalAddress } from "./address-guard.js";
import { isEventType, type LifecycleEventType } from "./event-types.js";

export interface WebhookEndpointOptions {
  /** `http:` or `https:` URL that receives `POST` requests. */
  url: string;
  /** Signing secret (at least 16 characters): receivers check `Flux-Signature` with it. */
  secret: string;
  /** Event types sent to this endpoint. @default all */
  events?: LifecycleEventType[];
}

export interface WebhookOptions {
  /** Endpoints every instance sends to (more can be stored with `flux.webhooks.add`). @default [] */
  endpoints?: WebhookEndpointOptions[];
  /** Attempts per delivery before it is marked `failed`. @default 8 */
  maxAttempts?: number;
  /**
   * Delay before attempt n+1: `initial` × 2^(n-1), at most `max`, with jitter (between half and
   * all of it).
   * @default { initial: '10s', max: '1h' }
   */
  backoff?: { initial?: Duration; max?: Duration };
  /** How long one delivery attempt may take. @default '5s' */
  timeout?: Duration;
  /**
   * How often this instance looks for due deliveries and new events (it also looks right after it
   * records an event). `null`: never by itself; call `flux.webhooks.runOnce()`.
   * @default '5s'
   */
  interval?: Duration | null;
  /** How often this instance runs the `key.expiring` / `key.unused` checks and retention. @default '1h' */
  checkInterval?: Duration;
  /** `key.expiring` is emitted this many days before a key expires; `null` turns it off. @default 7 */
  expiringDays?: number | null;
  /** `key.unused` is emitted after this many days without use; `null` turns it off. @default 30 */
  unusedDays?: number | null;
  /** `quota.threshold` is emitted when a key's use of its quota reaches these fractions. @default [0.8, 1] */
  quotaThresholds?: number[];
  /** Events (and their deliveries) older than this are deleted. At least '32d'. @default '90d' */
  retention?: Duration;
  /**
   * Let endpoints reach loopback, private (RFC 1918, unique local), link-local and cloud metadata
   * addresses. Off, such addresses are refused when an endpoint is configured or added (an address
   * in the URL) and at connect time on what its name resolved to (`lastError: 'blocked_address'`),
   * so neither a URL nor DNS rebinding can aim deliveries at this host's network. For development
   * (a receiver on 127.0.0.1) only.
   * @default false
   */
  allowPrivateNetworks?: boolean;
}

export interface ResolvedEndpoint {
  id: string;
  url: string;
  secret: string;
  /** null: every type. */
  events: ReadonlySet<string> | null;
  source: "options" | "stored";
}

export interface ResolvedWebhookOptions {
  endpoints: ResolvedEndpoint[];
  maxAttempts: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  timeoutMs: number;
  intervalMs: number | null;
  checkIntervalMs: number;
  expiringDays: number | null;
  unusedDays: number | null;
  quotaThresholds: readonly number[];
  retentionMs: number;
  allowPrivateNetworks: boolean;
}

const KNOWN = new Set([
  "endpoints",
  "maxAttempts",
  "backoff",
  "timeout",
  "interval",
  "checkInterval",
  "expiringDays",
  "unusedDays",
  "quotaThresholds",
  "retention",
  "allowPrivateNetworks",
]);
const DAY_MS = 86_400_000;

export function resolveWebhookOptions(options: WebhookOptions | undefined): ResolvedWebhookOptions {
  const input = options ?? {};
  if (typeof input !== "object" || input === null) {
    throw new FluxConfigError("invalid_option", "webhooks must be an object.");
  }
  for (const name of Object.keys(input)) {
    if (!KNOWN.has(name)) throw new FluxConfigError("unknown_option", `Unknown option 'webhooks.${name}'.`);
  }
  const allowPrivateNetworks = input.allowPrivateNetworks ?? false;
  if (typeof allowPrivateNetworks !== "boolean") {
    throw new FluxConfigError("invalid_option", "webhooks.allowPrivateNetworks must be true or false.");
  }
  const endpoints = (input.endpoints ?? []).map((endpoint, index) =>
    resolveEndpoint(endpoint, index, allowPrivateNetworks),
  );
  if (new Set(endpoints.map((e) => e.id)).size !== endpoints.length) {
    throw new FluxConfigError("invalid_option", "webhooks.endpoints has the same url twice.");
  }
  const maxAttempts = input.maxAttempts ?? 8;
  if (!(Number.isInteger(maxAttempts) && maxAttempts >= 1 && maxAttempts <= 100)) {
    throw new FluxConfigError("invalid_option", "webhooks.maxAttempts must be an integer from 1 to 100.");
  }
  const backoff = input.backoff ?? {};
  const backoffInitialMs = ms(backoff.initial ?? "10s", "webhooks.backoff.initial");
  const backoffMaxMs = ms(backoff.max ?? "1h", "webhooks.backoff.max");
  if (backoffMaxMs < backoffInitialMs) {
    throw new FluxConfigError("invalid_option", "webhooks.backoff.max must be at least backoff.initial.");
  }
  const timeoutMs = ms(input.timeout ?? "5s", "webhooks.timeout");
  if (timeoutMs < 1) throw new FluxConfigError("invalid_option", "webhooks.timeout must be positive.");
  const interval = input.interval === undefined ? "5s" : input.interval;
  const intervalMs = interval === null ? null : ms(interval, "webhooks.interval");
  if (intervalMs !== null && intervalMs < 10) {
    throw new FluxConfigError("invalid_option", "webhooks.interval must be at least 10ms.");
  }
  const checkIntervalMs = ms(input.checkInterval ?? "1h", "webhooks.checkInterval");
  if (checkIntervalMs < 10) {
    throw new FluxConfigError("invalid_option", "webhooks.checkInterval must be at least 10ms.");
  }
  const expiringDays = days(
    input.expiringDays === undefined ? 7 : input.expiringDays,
    "webhooks.expiringDays",
  );
  const unusedDays = days(input.unusedDays === undefined ? 30 : input.unusedDays, "webhooks.unusedDays");
  const thresholds = input.quotaThresholds ?? [0.8, 1];
  if (
    !Array.isArray(thresholds) ||
    thresholds.length > 10 ||
    !thresholds.every((t) => typeof t === "number" && t > 0 && t <= 1)
  ) {
    throw new FluxConfigError(
      "invalid_option",
      "webhooks.quotaThresholds must be at most 10 fractions in (0, 1], such as [0.8, 1].",
    );
  }
  const retentionMs = ms(input.retention ?? "90d", "webhooks.retention");
  if (retentionMs < 32 * DAY_MS) {
    throw new FluxConfigError("invalid_option", "webhooks.retention must be at least '32d'.");
  }
  return {
    endpoints,
    maxAttempts,
    backoffInitialMs,
    backoffMaxMs,
    timeoutMs,
    intervalMs,
    checkIntervalMs,
    expiringDays,
    unusedDays,
    quotaThresholds: [...new Set(thresholds)].sort((a, b) => a - b),
    retentionMs,
    allowPrivateNetworks,
  };
}

function resolveEndpoint(
  endpoint: WebhookEndpointOptions,
  index: number,
  allowPrivateNetworks: boolean,
): ResolvedEndpoint {
  const where = `webhooks.endpoints[${index}]`;
  if (typeof endpoint !== "object" || endpoint === null) {
    throw new FluxConfigError("invalid_option", `${where} must be { url, secret, events? }.`);
  }
  for (const name of Object.keys(endpoint)) {
    if (name !== "url" && name !== "secret" && name !== "events") {
      throw new FluxConfigError("unknown_option", `Unknown option '${where}.${name}'.`);
    }
  }
  const url = checkUrl(endpoint.url);
  if (url === null) throw new FluxConfigError("invalid_option", `${where}.url must be an http(s) URL.`);
  if (!allowPrivateNetworks && !publicTarget(url)) {
    throw new FluxConfigError(
      "invalid_option",
      `${where}.url is a loopback, private, link-local or metadata address (see webhooks.allowPrivateNetworks).`,
    );
  }
  if (!checkSecret(endpoint.secret)) {
    throw new FluxConfigError("invalid_option", `${where}.secret must be 16 to 256 characters.`);
  }
  const events = checkEvents(endpoint.events);
  if (events === undefined) {
    throw new FluxConfigError("invalid_option", `${where}.events must be a list of event types.`);
  }
  return { id: configuredEndpointId(url), url, secret: endpoint.secret, events, source: "options" };
}

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

function ms(value: Duration, name: string): number {
  try {
    return toMs(value, name);
  } catch {
    throw new FluxConfigError("invalid_option", `${name} must be a duration such as '5s'.`);
  }
}

function days(value: number | null, name: string): number | null {
  if (value === null) return null;
  if (!(typeof value === "number" && Number.isFinite(value) && value > 0 && value <= 3650)) {
    throw new FluxConfigError("invalid_option", `${name} must be a number of days (0 < n <= 3650) or null.`);
  }
  return value;
}
