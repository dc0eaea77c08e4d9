/**
 * What a request log may show of a request that carried a key where it should not: frameworks
 * log the URL (Fastify before any hook runs) and loggers such as pino-http the headers too. These
 * helpers give the loggers a copy with every key-like value replaced; the request is untouched
 * (and a key in its query is still refused with 400).
 */
import { SUSPICIOUS_PARAMETERS } from "./credentials.js";

export const REDACTED = "[REDACTED]";

/** A Flux key of any prefix (`<prefix>_<env>_` then 49 base62 characters) anywhere in a value. */
const KEY_SHAPE = /[a-z][a-z0-9]{0,15}_(?:live|test)_[0-9A-Za-z]{49}/;

export interface RedactOptions {
  /** Also redact values starting with `<keyPrefix>_`. @default 'flux' */
  keyPrefix?: string;
  /** The query parameter you allow to carry the key (`queryParameter`), if any. @default none */
  queryParameter?: string | false;
}

/** Headers that carry credentials. */
const SECRET_HEADERS = new Set(["authorization", "x-api-key", "cookie", "proxy-authorization"]);

function decode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return text;
  }
}

/** Whether a query parameter's value must not reach a log. */
export function isKeyLike(name: string, value: string, options: RedactOptions = {}): boolean {
  const lower = name.toLowerCase();
  if (SUSPICIOUS_PARAMETERS.has(lower)) return true;
  if (options.queryParameter && name === options.queryParameter) return true;
  if (value.startsWith(`${options.keyPrefix ?? "flux"}_`)) return true;
  return KEY_SHAPE.test(value);
}

/**
 * The URL with every key-like query value replaced by `[REDACTED]` (names, order and every other
 * byte as received). `/v1/events?api_key=flux_live_…&page=2` → `/v1/events?api_key=[REDACTED]&page=2`.
 */
export function redactUrl(url: string, options: RedactOptions = {}): string {
  const start = url.indexOf("?");
  if (start === -1) return url;
  const hash = url.indexOf("#", start);
  const end = hash === -1 ? url.length : hash;
  let changed = false;
  const parts = url
    .slice(start + 1, end)
    .split("&")
    .map((part) => {
      const eq = part.indexOf("=");
      const name = decode(eq === -1 ? part : part.slice(0, eq));
      const value = eq === -1 ? "" : decode(part.slice(eq + 1));
      // A key as the parameter's name (`?flux_live_…`): the whole pair goes.
      if (isKeyLike("", name, options)) {
        changed = true;
        return REDACTED;
      }
      if (!isKeyLike(name, value, options) || value.length === 0) return part;
      changed = true;
      return `${part.slice(0, eq)}=${REDACTED}`;
    });
  return changed ? `${url.slice(0, start + 1)}${parts.join("&")}${url.slice(end)}` : url;
}

/** A copy of a parsed query (`req.query`) with key-like values redacted. */
export function redactQuery(query: unknown, options: RedactOptions = {}): unknown {
  if (typeof query !== "object" || query === null) return query;
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(query as Record<string, unknown>)) {
    if (isKeyLike("", name, options)) {
      out[REDACTED] = REDACTED;
      continue;
    }
    const values = Array.isArray(value) ? value : [value];
    out[name] = values.some((v) => typeof v === "string" && isKeyLike(name, v, options)) ? REDACTED : value;
  }
  return out;
}

/** A copy of request headers with the credential-carrying ones (`Authorization`, `X-API-Key`, `Cookie`) redacted. */
export function redactHeaders(
  headers: Record<string, unknown> | undefined,
  extra: readonly string[] = [],
): Record<string, unknown> | undefined {
  if (headers === undefined) return undefined;
  const out: Record<string, unknown> = {};
  const names = new Set([...SECRET_HEADERS, ...extra.map((name) => name.toLowerCase())]);
  for (const [name, value] of Object.entries(headers)) {
    out[name] = names.has(name.toLowerCase()) && value !== undefined ? REDACTED : value;
  }
  return out;
}
