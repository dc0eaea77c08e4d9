/**
 * What a limit decision reports: each counter's answer as an outcome, the rate limit state a
 * context carries, and the 429 / 503 errors built from them, the same for every store.
 */
import { RateLimiterRes } from "rate-limiter-flexible";
import { FluxError } from "../errors.js";
import type { KeyContext, QuotaState, RateLimitState, RateLimitWindowState } from "../types.js";
import type { BoundLimits, BoundWindow } from "./binding.js";
import { periodAt } from "./periods.js";

export type LimitedResult = { valid: true; context: KeyContext } | { valid: false; error: FluxError };

/** Why a limiter call did not admit: a denial from the store, or a store failure. */
export class Denied {
  constructor(readonly res: RateLimiterRes) {}
}
export const STORE_FAILED = Symbol("store failed");
export type Outcome = RateLimiterRes | Denied | typeof STORE_FAILED;

/** Seconds a client should wait when the limit store is unavailable and we fail closed. */
const STORE_RETRY_AFTER = 1;

export function limitState(
  bound: BoundLimits,
  outcomes: Outcome[],
  now: number,
  refunded: number,
): RateLimitState {
  const windows = bound.windows;
  const states: RateLimitWindowState[] = new Array(windows.length);
  for (let i = 0; i < windows.length; i++) {
    const window = windows[i] as BoundWindow;
    const outcome = outcomes[i];
    const res = outcome instanceof Denied ? outcome.res : outcome instanceof RateLimiterRes ? outcome : null;
    const remaining =
      res === null ? 0 : Math.min(window.capacity, remainingAfter(outcome, res, window.limit, refunded));
    if (res !== null) {
      window.lastRemaining = remaining;
      window.lastResetAt = now + res.msBeforeNext;
    }
    states[i] = {
      name: window.name,
      limit: window.limit,
      remaining,
      window: window.seconds,
      resetIn: res === null ? window.seconds : secondsUntil(res.msBeforeNext, window.seconds),
      per: window.per,
    };
  }
  let quotaState: QuotaState | null = null;
  const quota = bound.quota;
  const quotaOutcome = outcomes[windows.length];
  // The quota is reported only when it was asked (without Redis it is not, once a window refuses).
  if (quota !== null && (quotaOutcome instanceof Denied || quotaOutcome instanceof RateLimiterRes)) {
    const res = quotaOutcome instanceof Denied ? quotaOutcome.res : quotaOutcome;
    const endsAt = periodAt(quota.period, now).endsAt;
    quotaState = {
      limit: quota.limit,
      remaining:
        quotaOutcome instanceof Denied
          ? res.remainingPoints
          : Math.min(quota.limit, res.remainingPoints + refunded),
      period: quota.period,
      resetIn: endsAt === null ? null : Math.max(0, Math.ceil((endsAt - now) / 1000)),
    };
  }
  return { windows: states, quota: quotaState };
}

export function limitDenial(bound: BoundLimits, outcomes: Outcome[], now: number, cost: number): FluxError {
  if (outcomes.some((outcome) => outcome === STORE_FAILED)) return storeUnavailable();
  const state = limitState(bound, outcomes, now, cost);
  const quotaOutcome = outcomes[bound.windows.length];
  if (quotaOutcome instanceof Denied && state.quota !== null) {
    const retryAfter = state.quota.resetIn;
    return new FluxError("quota_exceeded", {
      detail:
        retryAfter === null
          ? "The API key's quota is used up."
          : `The API key's ${state.quota.period === "day" ? "daily" : "monthly"} quota is used up.`,
      // A total quota never refills: no Retry-After (retryAfter null) promises a retry.
      extensions: { window: "quota", retryAfter, rateLimit: state, "violated-policies": ["quota"] },
    });
  }
  // A window refused: the quota was not asked on every store (the memory path stops at the
  // first refusal), so no 429 reports it, whichever store counts.
  state.quota = null;
  let worst: RateLimitWindowState | null = null;
  for (let i = 0; i < bound.windows.length; i++) {
    const windowState = state.windows[i] as RateLimitWindowState;
    if (outcomes[i] instanceof Denied && (worst === null || windowState.resetIn > worst.resetIn)) {
      worst = windowState;
    }
  }
  const window = worst ?? (state.windows[0] as RateLimitWindowState);
  return new FluxError("rate_limited", {
    detail: `Rate limit '${window.name}' exceeded: ${window.limit} per ${window.window}s.`,
    extensions: { window: window.name, retryAfter: window.resetIn, rateLimit: state },
  });
}

/** Denial when this process already knows a window is exhausted (no store call was made). */
export function deniedBy(bound: BoundLimits, window: BoundWindow, ms: number, now: number): LimitedResult {
  const outcomes: Outcome[] = bound.windows.map((w) =>
    w === window ? new Denied(new RateLimiterRes(0, ms, window.limit + 1)) : STORE_FAILED,
  );
  const state = limitState(bound, outcomes, now, 0);
  // The others were not asked: they are reported as the store last answered for them, so the
  // 429 lists every window, as one answered by the store does.
  for (let i = 0; i < bound.windows.length; i++) {
    const other = bound.windows[i] as BoundWindow;
    if (other === window) continue;
    const resetMs = other.lastResetAt - now;
    state.windows[i] = {
      name: other.name,
      limit: other.limit,
      remaining: resetMs > 0 ? other.lastRemaining : other.limit,
      window: other.seconds,
      resetIn: resetMs > 0 ? secondsUntil(resetMs, other.seconds) : other.seconds,
      per: other.per,
    };
  }
  state.quota = null;
  const retryAfter = secondsUntil(ms, window.seconds);
  return {
    valid: false,
    error: new FluxError("rate_limited", {
      detail: `Rate limit '${window.name}' exceeded: ${window.limit} per ${window.seconds}s.`,
      extensions: { window: window.name, retryAfter, rateLimit: state },
    }),
  };
}

/**
 * What a counter has left once `refunded` was given back: an admitting counter gets it back; a
 * rate-limiter-flexible counter that refused had counted the refusal too, and is back to what it
 * held before it.
 */
export function remainingAfter(
  outcome: Outcome | undefined,
  res: RateLimiterRes,
  limit: number,
  refunded: number,
): number {
  if (outcome instanceof RateLimiterRes) return res.remainingPoints + refunded;
  if (refunded > 0 && res.consumedPoints > 0) return Math.max(0, limit - (res.consumedPoints - refunded));
  return res.remainingPoints;
}

export function admitted(res: RateLimiterRes): Outcome {
  return res;
}

export function fresh(limit: number, seconds: number): RateLimiterRes {
  return new RateLimiterRes(limit, seconds * 1000, 0, false);
}

export function storeUnavailable(): FluxError {
  return new FluxError("store_unavailable", {
    detail: "The rate limit store is unavailable; try again shortly.",
    extensions: { retryAfter: STORE_RETRY_AFTER },
  });
}

export function secondsUntil(ms: number, fallback: number): number {
  return ms < 0 ? fallback : Math.ceil(ms / 1000);
}
