/**
 * The rate limit state as HTTP fields, per draft-ietf-httpapi-ratelimit-headers-11: one list member
 * per window (Structured Fields strings with parameters), e.g.
 *
 *   RateLimit-Policy: "burst";q=10;w=1, "sustained";q=1000;w=3600
 *   RateLimit: "burst";r=3;t=1, "sustained";r=990;t=3521
 *
 * plus `Retry-After` on 429 and 503 (never earlier than the reset of the window that refused).
 * Window names and numbers only: never a key, a digest or a key id (no `pk` parameter).
 *
 * Serialised by hand because it runs on every response (bench/RESULTS.md, "Why the hot path is
 * written as it is"); packages/core/test/rate-limit-headers.test.ts checks the output with `structured-headers`.
 */
import { FluxError } from "../errors.js";
import type { RateLimitState } from "../types.js";

export type RateLimitHeaderSource =
  | RateLimitState
  | { rateLimit: RateLimitState | null }
  | FluxError
  | { valid: true; context: { rateLimit: RateLimitState | null } }
  | { valid: false; error: FluxError }
  | null
  | undefined;

/**
 * Headers for a response: pass the context's `rateLimit` state (or the context, or a check result),
 * or the FluxError of a denial. Returns `{}` when there is nothing to say.
 */
export function rateLimitHeaders(source: RateLimitHeaderSource): Record<string, string> {
  if (source === null || source === undefined) return {};
  if (source instanceof FluxError) return errorHeaders(source);
  if ("valid" in source) {
    return source.valid ? stateHeaders(source.context.rateLimit) : errorHeaders(source.error);
  }
  if ("windows" in source) return stateHeaders(source);
  if ("rateLimit" in source) return stateHeaders(source.rateLimit);
  return {};
}

function errorHeaders(error: FluxError): Record<string, string> {
  const { rateLimit, retryAfter } = error.extensions as { rateLimit?: RateLimitState; retryAfter?: unknown };
  if (error.code === "store_unavailable") {
    return { "Retry-After": String(typeof retryAfter === "number" ? retryAfter : 1) };
  }
  if (error.code !== "rate_limited" && error.code !== "quota_exceeded") return {};
  const headers = stateHeaders(rateLimit ?? null);
  if (typeof retryAfter === "number") {
    // Never earlier than the reset the RateLimit field announces for the window that refused.
    const window = (error.extensions as { window?: unknown }).window;
    const announced =
      rateLimit?.windows.find((w) => w.name === window)?.resetIn ??
      (window === "quota" ? (rateLimit?.quota?.resetIn ?? 0) : 0);
    headers["Retry-After"] = String(Math.max(retryAfter, announced, 1));
  }
  return headers;
}

function stateHeaders(state: RateLimitState | null): Record<string, string> {
  if (state === null || (state.windows.length === 0 && state.quota === null)) return {};
  let policy = "";
  let current = "";
  for (const window of state.windows) {
    const separator = policy === "" ? "" : ", ";
    policy += separator + windowPolicy(window.name, window.limit, window.window);
    current += `${separator}${sfString(window.name)};r=${window.remaining};t=${window.resetIn}`;
  }
  const quota = state.quota;
  if (quota !== null) {
    const separator = policy === "" ? "" : ", ";
    const window = quota.period === "day" ? ";w=86400" : quota.period === "month" ? ";w=2592000" : "";
    policy += `${separator}"quota";q=${quota.limit}${window}`;
    current += `${separator}"quota";r=${quota.remaining}${quota.resetIn === null ? "" : `;t=${quota.resetIn}`}`;
  }
  return { "RateLimit-Policy": policy, RateLimit: current };
}

/**
 * Window names and sizes come from a handful of plans: each name's policy member is kept (the
 * latest limit and length seen under that name) instead of being rebuilt for every response.
 * Both memos are bounded; past the bound, members are built per response (same output).
 */
const MEMO_LIMIT = 1_000;
const policies = new Map<string, { limit: number; seconds: number; member: string }>();
const names = new Map<string, string>();

function windowPolicy(name: string, limit: number, seconds: number): string {
  const known = policies.get(name);
  if (known !== undefined && known.limit === limit && known.seconds === seconds) return known.member;
  const member = `${sfString(name)};q=${limit};w=${seconds}`;
  if (known !== undefined || policies.size < MEMO_LIMIT) policies.set(name, { limit, seconds, member });
  return member;
}

/** A Structured Fields string (RFC 9651 §3.3.3): printable ASCII, `"` and `\` escaped. */
function sfString(value: string): string {
  let out = names.get(value);
  if (out !== undefined) return out;
  out = '"';
  for (const char of value) {
    const code = char.charCodeAt(0);
    if (code < 0x20 || code > 0x7e) continue;
    out += char === '"' || char === "\\" ? `\\${char}` : char;
  }
  out += '"';
  if (names.size < MEMO_LIMIT) names.set(value, out);
  return out;
}
