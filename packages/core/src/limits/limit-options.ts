/**
 * The `limits` option of `createFlux`: every default of rate limiting lives here, written once in
 * the `@default` tags and once in `resolveLimitOptions`.
 */
import { FluxConfigError } from "../errors.js";

export type WindowLength = number | "1s" | "1m" | "1h" | "1d";

export interface LimitOptions {
  /**
   * What verification does when the limit store fails (Redis down, or the database for quotas
   * kept there):
   * - `'insurance'`: an in-memory limiter per process keeps enforcing the same windows until the
   *   store is back (each process then admits up to the full limit on its own);
   * - `'fail-closed'`: requests of keys with limits are refused with `store_unavailable` (503,
   *   `Retry-After`).
   * @default 'insurance'
   */
  onStoreError?: "insurance" | "fail-closed";
  /**
   * Failed authentications allowed per client address (IPv6 grouped by /64) per window, counted
   * only when the adapter passes `clientAddress`. Past it, every attempt from that address is
   * refused with `rate_limited` before any database read. `false` turns it off. `maxAddresses`:
   * addresses counted in this process at most (the least recently failing is forgotten first), so
   * a flood from many addresses cannot grow memory without bound.
   * @default { limit: 30, window: '1m', maxAddresses: 50000 }
   */
  preAuth?: { limit: number; window: WindowLength; maxAddresses?: number } | false;
}

export interface ResolvedLimitOptions {
  onStoreError: "insurance" | "fail-closed";
  preAuth: { limit: number; windowSeconds: number; maxAddresses: number } | null;
}

const KNOWN = new Set(["onStoreError", "preAuth"]);
const SHORTHAND: Record<string, number> = { "1s": 1, "1m": 60, "1h": 3600, "1d": 86400 };

export function resolveLimitOptions(limits: LimitOptions | undefined): ResolvedLimitOptions {
  const input = limits ?? {};
  if (typeof input !== "object" || input === null) {
    throw new FluxConfigError("invalid_option", "limits must be an object.");
  }
  for (const name of Object.keys(input)) {
    if (name === "trustProxy") {
      throw new FluxConfigError(
        "invalid_option",
        "limits.trustProxy is gone: set trustProxy once, at the top level: createFlux({ trustProxy }).",
      );
    }
    if (!KNOWN.has(name)) throw new FluxConfigError("unknown_option", `Unknown option 'limits.${name}'.`);
  }
  const onStoreError = input.onStoreError ?? "insurance";
  if (onStoreError !== "insurance" && onStoreError !== "fail-closed") {
    throw new FluxConfigError("invalid_option", "limits.onStoreError must be 'insurance' or 'fail-closed'.");
  }
  const preAuthInput = input.preAuth ?? { limit: 30, window: "1m" };
  let preAuth: ResolvedLimitOptions["preAuth"] = null;
  if (preAuthInput !== false) {
    const windowSeconds = windowLength(preAuthInput.window);
    if (!(Number.isInteger(preAuthInput.limit) && preAuthInput.limit > 0) || windowSeconds === null) {
      throw new FluxConfigError(
        "invalid_option",
        "limits.preAuth must be { limit: positive integer, window: seconds or '1s' | '1m' | '1h' | '1d' } or false.",
      );
    }
    for (const name of Object.keys(preAuthInput)) {
      if (name !== "limit" && name !== "window" && name !== "maxAddresses") {
        throw new FluxConfigError("unknown_option", `Unknown option 'limits.preAuth.${name}'.`);
      }
    }
    const maxAddresses = preAuthInput.maxAddresses ?? 50_000;
    if (!(Number.isInteger(maxAddresses) && maxAddresses >= 1 && maxAddresses <= 10_000_000)) {
      throw new FluxConfigError(
        "invalid_option",
        "limits.preAuth.maxAddresses must be an integer from 1 to 10000000.",
      );
    }
    preAuth = { limit: preAuthInput.limit, windowSeconds, maxAddresses };
  }
  return { onStoreError, preAuth };
}

/** Seconds of a window given as a positive integer or a shorthand; null when invalid. */
export function windowLength(window: unknown): number | null {
  if (typeof window === "number") return Number.isInteger(window) && window > 0 ? window : null;
  if (typeof window === "string") return SHORTHAND[window] ?? null;
  return null;
}
