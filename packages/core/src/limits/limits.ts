/**
 * Per-key rate limits and quotas on rate-limiter-flexible. This module decides which windows apply
 * to a key (live from its plan), asks the library to count, and turns the library's answers into a
 * decision; it never counts anything itself.
 *
 * Stores: windows count in memory (RateLimiterMemory) or, when Redis is configured, in Redis
 * (RateLimiterRedis, one Lua call per window, all issued in the same tick so ioredis's
 * auto-pipelining sends them in one round trip; a hot counter has at most one call in flight and
 * the requests that arrive meanwhile share the next one, see `counted`). Quotas count durably: in
 * Redis, or in the database (RateLimiterPrisma, table flux_limit_counters) when there is no Redis.
 *
 * Windows are fixed windows anchored at the first request (the library's model): a key limited to
 * L per W seconds can pass at most 2L in any span of W seconds (L at the end of one window, L at
 * the start of the next), and at most (k+1)L in any span of kW.
 */
import type { Redis } from "ioredis";
import { LRUCache } from "lru-cache";
import {
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterPrisma,
  RateLimiterRedis,
  RateLimiterRes,
} from "rate-limiter-flexible";
import type { PrismaClient } from "../database.js";
import { FluxError } from "../errors.js";
import { type KeyRecord, withRateLimit } from "../key-record.js";
import type { Logger } from "../options.js";
import type {
  KeyContext,
  Quota,
  QuotaState,
  RateLimitState,
  RateLimitWindow,
  RateLimitWindowState,
} from "../types.js";
import { AddressFailures } from "./address-failures.js";
import { addressBucket } from "./client-address.js";
import type { ResolvedLimitOptions } from "./limit-options.js";
import { windowLength } from "./limit-options.js";
import { periodAt } from "./periods.js";

type Limiter = RateLimiterAbstract;

interface BoundWindow {
  name: string;
  limit: number;
  seconds: number;
  per: "key" | "org";
  limiter: Limiter;
  /** The key given to the limiter. */
  counter: string;
  /** The key as the limiter stores it (for its in-process block list). */
  storedKey: string;
  /** Its queue in `inFlight` (Redis): the limit and the counter. */
  flight: string;
  /**
   * What the store last answered for this window (remaining points, and when it resets on the
   * limiter's clock): a refusal answered without a store call reports every window from it.
   */
  lastRemaining: number;
  lastResetAt: number;
}

interface BoundQuota {
  limit: number;
  period: Quota["period"];
  keyId: string;
  limiter: Limiter;
}

/** The limits of one key record, bound to limiter instances; cached per record. */
export interface BoundLimits {
  windows: readonly BoundWindow[];
  quota: BoundQuota | null;
}

export type LimitedResult = { valid: true; context: KeyContext } | { valid: false; error: FluxError };

/** Why a limiter call did not admit: a denial from the library, or a store failure. */
class Denied {
  constructor(readonly res: RateLimiterRes) {}
}
const STORE_FAILED = Symbol("store failed");
type Outcome = RateLimiterRes | Denied | typeof STORE_FAILED;

/** Pre-authentication window name, as it appears in headers and problem documents. */
export const PRE_AUTH_WINDOW = "auth-failures";
/** Seconds a client should wait when the limit store is unavailable and we fail closed. */
const STORE_RETRY_AFTER = 1;
/** A `total` quota never refills; its counter lives (practically) forever. */
const TOTAL_TTL_SECONDS = 10 * 365 * 86_400;
/** Counters of calendar periods outlive their period by this much (clock skew between instances). */
const PERIOD_SLACK_SECONDS = 3_600;
const LOG_EVERY_MS = 10_000;

export interface LimitsDependencies {
  options: ResolvedLimitOptions;
  prisma: PrismaClient;
  /** Shared Redis client, or null for the memory / database stores. */
  redis: Redis | null;
  redisPrefix: string;
  logger: Logger;
  now(): number;
  /** Told about decisions (lifecycle events, src/events); not called at all while not `active`. */
  observer?: LimitObserver;
}

/** Watches limit decisions without slowing them: `observe` must be synchronous and cheap. */
export interface LimitObserver {
  readonly active: boolean;
  observe(result: LimitedResult, base: Omit<KeyContext, "rateLimit">): void;
}

export class Limits {
  private readonly bound = new WeakMap<KeyRecord, BoundLimits | null>();
  private readonly windowLimiters = new Map<string, Limiter>();
  private readonly quotaLimiters = new Map<number, Limiter>();
  /** Shared pre-auth counters (Redis), or null: then only the bounded in-process ones count. */
  private readonly preAuthLimiter: Limiter | null;
  /** In-process pre-auth counters, bounded; also what counts while Redis is down. */
  private readonly preAuthLocal: AddressFailures | null;
  /** Shared counters with a store call in flight, and the requests queued for the next one. */
  private readonly inFlight = new Map<string, CounterQueue>();
  /** Addresses past the pre-auth limit, until their window resets (ms since epoch, real time). */
  private readonly refused = new LRUCache<string, number>({ max: 50_000, ttl: 60_000, ttlAutopurge: false });
  private readonly prefix: string;
  private readonly insured: boolean;
  private cleanup: NodeJS.Timeout | null = null;
  private lastLog = 0;

  private constructor(
    private readonly deps: LimitsDependencies,
    /** Redis client with auto-pipelining, or null. */
    private readonly redis: Redis | null,
    private readonly ownsRedis: boolean,
  ) {
    this.prefix = `${deps.redisPrefix}rl`;
    this.insured = deps.options.onStoreError === "insurance";
    const preAuth = deps.options.preAuth;
    this.preAuthLocal =
      preAuth === null ? null : new AddressFailures(preAuth.maxAddresses, preAuth.windowSeconds * 1000);
    // Not insured: the bounded local counters stand in while Redis is down.
    this.preAuthLimiter =
      preAuth === null || redis === null
        ? null
        : this.createLimiter(preAuth.limit, preAuth.windowSeconds, false, "window");
    if (redis === null) {
      // Counters of past periods are dead rows; RateLimiterPrisma only replaces a key's own row.
      this.cleanup = setInterval(() => {
        deps.prisma.limitCounter
          .deleteMany({ where: { expire: { lt: new Date(Date.now() - 3_600_000) } } })
          .catch(() => {});
      }, 600_000);
      this.cleanup.unref();
    }
  }

  /**
   * Opens the limits of one Flux instance. With Redis, windows need ioredis auto-pipelining (one
   * round trip per request however many windows apply) and must never have a command resent
   * after a reconnect (a script whose reply was lost has run: resent, it would count twice). The
   * shared client is reused when it is set up so, else a duplicate connection that is is opened
   * (and closed by `close()`).
   */
  static async open(deps: LimitsDependencies): Promise<Limits> {
    const shared = deps.redis;
    if (shared === null) return new Limits(deps, null, false);
    if (shared.options.enableAutoPipelining && shared.options.autoResendUnfulfilledCommands === false) {
      return new Limits(deps, shared, false);
    }
    const client = shared.duplicate({
      enableAutoPipelining: true,
      autoResendUnfulfilledCommands: false,
      enableOfflineQueue: false,
      commandTimeout: 1_000,
      maxRetriesPerRequest: 1,
      lazyConnect: false,
    });
    client.on("error", () => {
      // Reconnects by itself; failures surface through the limiter calls (insurance or 503).
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new FluxError("store_unavailable")), 5_000);
      client.once("ready", () => {
        clearTimeout(timer);
        resolve();
      });
    }).catch((error) => {
      client.disconnect();
      throw error;
    });
    return new Limits(deps, client, true);
  }

  /** Where limits count: `memory` / `redis` for windows, `database` / `redis` for quotas. */
  get stores(): { windows: "memory" | "redis"; quotas: "database" | "redis" } {
    return this.redis === null
      ? { windows: "memory", quotas: "database" }
      : { windows: "redis", quotas: "redis" };
  }

  /** The limits that apply to a key, or null when none do (then the limiter is never touched). */
  applicable(record: KeyRecord): BoundLimits | null {
    let bound = this.bound.get(record);
    if (bound === undefined) {
      bound = this.bind(record);
      this.bound.set(record, bound);
    }
    return bound;
  }

  /**
   * Consumes `cost` from every window and the quota of a key and answers with the context (and
   * its rate limit state) or the denial. `cost: 0` reads the state without consuming. A denied
   * request consumes nothing: what it took from other windows and from the quota is given back.
   */
  decide(bound: BoundLimits, cost: number, base: Omit<KeyContext, "rateLimit">): Promise<LimitedResult> {
    if (cost === 0) return this.peek(bound, base);
    const decided =
      this.redis === null ? this.decideLocally(bound, cost, base) : this.decideShared(bound, cost, base);
    const observer = this.deps.observer;
    if (observer === undefined || !observer.active) return decided;
    return decided.then((result) => {
      observer.observe(result, base);
      return result;
    });
  }

  /**
   * Memory windows, then the database quota. The library answers memory windows synchronously
   * (behind a promise), so they are awaited one after the other: cheaper than Promise.all, and
   * the quota (a database write) is only asked once every window has admitted.
   */
  private async decideLocally(
    bound: BoundLimits,
    cost: number,
    base: Omit<KeyContext, "rateLimit">,
  ): Promise<LimitedResult> {
    const windows = bound.windows;
    const count = windows.length;
    const outcomes: Outcome[] = [];
    let problem = false;
    for (let i = 0; i < count; i++) {
      const window = windows[i] as BoundWindow;
      try {
        outcomes.push(await window.limiter.consume(window.counter, cost));
      } catch (reason) {
        outcomes.push(this.classify(reason));
        problem = true;
      }
    }
    const now = this.deps.now();
    const quota = bound.quota;
    let quotaCounter = "";
    let quotaOptions: { customDuration: number } | undefined;
    if (!problem && quota !== null) {
      const period = periodAt(quota.period, now);
      quotaCounter = `q:${quota.keyId}:${period.id}`;
      quotaOptions = { customDuration: quotaTtl(period.endsAt, now) };
      const outcome = await quota.limiter
        .consume(quotaCounter, cost, quotaOptions)
        .then(admitted, this.classify);
      outcomes.push(outcome);
      if (!(outcome instanceof RateLimiterRes)) problem = true;
    }
    if (!problem) return { valid: true, context: withRateLimit(base, this.state(bound, outcomes, now, 0)) };
    await this.refund(bound, outcomes, cost, quotaCounter, quotaOptions);
    return { valid: false, error: this.denial(bound, outcomes, now, cost) };
  }

  /** Redis: every window and the quota in the same tick, so one pipeline, one round trip. */
  private async decideShared(
    bound: BoundLimits,
    cost: number,
    base: Omit<KeyContext, "rateLimit">,
  ): Promise<LimitedResult> {
    const windows = bound.windows;
    const count = windows.length;
    const quota = bound.quota;
    const now = this.deps.now();
    const period = quota === null ? null : periodAt(quota.period, now);
    const quotaCounter = quota === null || period === null ? "" : `q:${quota.keyId}:${period.id}`;
    const quotaOptions = period === null ? undefined : { customDuration: quotaTtl(period.endsAt, now) };

    // A window this process already saw exhausted answers at once, with no store call at all.
    for (let i = 0; i < count; i++) {
      const window = windows[i] as BoundWindow;
      const ms = blockedMs(window.limiter, window.storedKey);
      if (ms > 0) return this.deniedBy(bound, window, ms, now);
    }

    // Everything goes out in this tick: one pipeline, one round trip.
    const pending: Array<Promise<Outcome>> = new Array(count + (quota === null ? 0 : 1));
    for (let i = 0; i < count; i++) {
      const window = windows[i] as BoundWindow;
      pending[i] = this.counted(window.flight, window.limiter, window.counter, window.limit, cost, undefined);
    }
    if (quota !== null) {
      const flight = flightId(quota.limit, quotaCounter);
      pending[count] = this.counted(flight, quota.limiter, quotaCounter, quota.limit, cost, quotaOptions);
    }
    const outcomes = await Promise.all(pending);

    let problem = false;
    for (let i = 0; i < outcomes.length; i++) {
      if (!(outcomes[i] instanceof RateLimiterRes)) problem = true;
    }
    if (!problem) {
      return { valid: true, context: withRateLimit(base, this.state(bound, outcomes, now, 0)) };
    }
    await this.refund(bound, outcomes, cost, quotaCounter, quotaOptions);
    return { valid: false, error: this.denial(bound, outcomes, now, cost) };
  }

  /**
   * One shared counter, consumed with at most one store call in flight: a request that finds a
   * call in flight for its counter waits and goes out with the next call, which carries the
   * summed cost of everything that queued meanwhile. Each request's answer is where it falls in
   * that sum (the counter's value before the call plus the costs queued ahead of it), exactly as
   * if they had been counted one by one, in order. A quiet counter goes out at once; a hot one
   * costs one store call per round trip instead of one per request.
   */
  private counted(
    id: string,
    limiter: Limiter,
    counter: string,
    limit: number,
    cost: number,
    options: { customDuration: number } | undefined,
  ): Promise<Outcome> {
    const queue = this.inFlight.get(id);
    if (queue !== undefined) {
      return new Promise((resolve) => {
        queue.waiting.push({ cost, resolve });
        queue.total += cost;
      });
    }
    const started: CounterQueue = { waiting: [], total: 0 };
    this.inFlight.set(id, started);
    return new Promise((resolve) => {
      this.sendCounted(id, started, limiter, counter, limit, options, [{ cost, resolve }], cost);
    });
  }

  private sendCounted(
    id: string,
    queue: CounterQueue,
    limiter: Limiter,
    counter: string,
    limit: number,
    options: { customDuration: number } | undefined,
    batch: Waiting[],
    total: number,
  ): void {
    const settle = (outcome: Outcome) => {
      if (batch.length === 1) (batch[0] as Waiting).resolve(outcome);
      else splitOutcome(outcome, batch, total, limit);
      if (queue.waiting.length === 0) {
        this.inFlight.delete(id);
        return;
      }
      const next = queue.waiting;
      const nextTotal = queue.total;
      queue.waiting = [];
      queue.total = 0;
      this.sendCounted(id, queue, limiter, counter, limit, options, next, nextTotal);
    };
    limiter.consume(counter, total, options).then(admitted, this.classify).then(settle);
  }

  /** `cost: 0`: the state without consuming (a window never used yet is full). */
  private async peek(bound: BoundLimits, base: Omit<KeyContext, "rateLimit">): Promise<LimitedResult> {
    const now = this.deps.now();
    const quota = bound.quota;
    const period = quota === null ? null : periodAt(quota.period, now);
    const pending: Array<Promise<Outcome>> = bound.windows.map((window) =>
      window.limiter
        .get(window.counter)
        .then((res) => res ?? fresh(window.limit, window.seconds), this.classify),
    );
    if (quota !== null && period !== null) {
      pending.push(
        quota.limiter
          .get(`q:${quota.keyId}:${period.id}`)
          .then((res) => res ?? fresh(quota.limit, 0), this.classify),
      );
    }
    const outcomes = await Promise.all(pending);
    if (outcomes.some((outcome) => outcome === STORE_FAILED)) {
      return { valid: false, error: storeUnavailable() };
    }
    return { valid: true, context: withRateLimit(base, this.state(bound, outcomes, now, 0)) };
  }

  /** Gives back what a denied request took from the windows and the quota that admitted it. */
  private async refund(
    bound: BoundLimits,
    outcomes: Outcome[],
    cost: number,
    quotaCounter: string,
    quotaOptions: { customDuration: number } | undefined,
  ): Promise<void> {
    const refunds: Array<Promise<unknown>> = [];
    const windows = bound.windows;
    for (let i = 0; i < outcomes.length; i++) {
      if (!(outcomes[i] instanceof RateLimiterRes)) continue;
      const window = windows[i];
      if (window !== undefined) {
        refunds.push(window.limiter.reward(window.counter, cost).catch(() => {}));
      } else if (bound.quota !== null) {
        refunds.push(bound.quota.limiter.reward(quotaCounter, cost, quotaOptions).catch(() => {}));
      }
    }
    await Promise.all(refunds);
  }

  private state(bound: BoundLimits, outcomes: Outcome[], now: number, refunded: number): RateLimitState {
    const windows = bound.windows;
    const states: RateLimitWindowState[] = new Array(windows.length);
    for (let i = 0; i < windows.length; i++) {
      const window = windows[i] as BoundWindow;
      const outcome = outcomes[i];
      const res =
        outcome instanceof Denied ? outcome.res : outcome instanceof RateLimiterRes ? outcome : null;
      const gaveBack = outcome instanceof RateLimiterRes ? refunded : 0;
      const remaining = res === null ? 0 : Math.min(window.limit, res.remainingPoints + gaveBack);
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
      const gaveBack = quotaOutcome instanceof RateLimiterRes ? refunded : 0;
      const endsAt = periodAt(quota.period, now).endsAt;
      quotaState = {
        limit: quota.limit,
        remaining: Math.min(quota.limit, res.remainingPoints + gaveBack),
        period: quota.period,
        resetIn: endsAt === null ? null : Math.max(0, Math.ceil((endsAt - now) / 1000)),
      };
    }
    return { windows: states, quota: quotaState };
  }

  private denial(bound: BoundLimits, outcomes: Outcome[], now: number, cost: number): FluxError {
    if (outcomes.some((outcome) => outcome === STORE_FAILED)) return storeUnavailable();
    const state = this.state(bound, outcomes, now, cost);
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
  private deniedBy(bound: BoundLimits, window: BoundWindow, ms: number, now: number): LimitedResult {
    const outcomes: Outcome[] = bound.windows.map((w) =>
      w === window ? new Denied(new RateLimiterRes(0, ms, window.limit + 1)) : STORE_FAILED,
    );
    const state = this.state(bound, outcomes, now, 0);
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

  // -- Pre-authentication limiter: failed authentications per client address --------------------

  /** Sync: the refusal for an address past the pre-auth limit, or null. No I/O. */
  refusedAddress(address: string): LimitedResult | null {
    if (this.refused.size === 0) return null;
    const until = this.refused.get(addressBucket(address));
    if (until === undefined) return null;
    const ms = until - Date.now();
    return ms > 0 ? { valid: false, error: this.preAuthDenial(ms) } : null;
  }

  /**
   * Counts a failed authentication from an address. Answers with the failure itself, or with
   * `rate_limited` once the address is past the limit (from then on `refusedAddress` refuses it
   * before any read). A missing key is not an attempt and is not counted.
   */
  async authFailed<T extends { valid: false; error: FluxError }>(
    address: string,
    failure: T,
  ): Promise<T | LimitedResult> {
    const local = this.preAuthLocal;
    if (local === null || failure.error.code === "key_missing") return failure;
    const bucket = addressBucket(address);
    const limiter = this.preAuthLimiter;
    if (limiter !== null) {
      try {
        await limiter.consume(`a:${bucket}`, 1);
        return failure;
      } catch (reason) {
        if (reason instanceof RateLimiterRes) return this.refuseAddress(bucket, reason.msBeforeNext);
        // Redis down: counted in this process, within its bound.
      }
    }
    const window = local.fail(bucket);
    const limit = (this.deps.options.preAuth as { limit: number }).limit;
    return window.count > limit ? this.refuseAddress(bucket, window.resetAt - Date.now()) : failure;
  }

  /** Addresses counted in this process by the pre-auth limiter (at most `preAuth.maxAddresses`). */
  get preAuthAddresses(): number {
    return this.preAuthLocal?.size ?? 0;
  }

  private refuseAddress(bucket: string, msBeforeNext: number): LimitedResult {
    const ms = Math.max(msBeforeNext, 1);
    this.refused.set(bucket, Date.now() + ms, { ttl: ms });
    return { valid: false, error: this.preAuthDenial(ms) };
  }

  private preAuthDenial(ms: number): FluxError {
    const preAuth = this.deps.options.preAuth as { limit: number; windowSeconds: number };
    const retryAfter = secondsUntil(ms, preAuth.windowSeconds);
    return new FluxError("rate_limited", {
      detail: "Too many failed authentications from this address.",
      extensions: {
        window: PRE_AUTH_WINDOW,
        retryAfter,
        rateLimit: {
          windows: [
            {
              name: PRE_AUTH_WINDOW,
              limit: preAuth.limit,
              remaining: 0,
              window: preAuth.windowSeconds,
              resetIn: retryAfter,
              per: "address",
            },
          ],
          quota: null,
        } satisfies RateLimitState,
      },
    });
  }

  /**
   * Gives `cost` back to every window and to the quota of a key: for a request admitted here but
   * denied afterwards (a route-level guard that runs after verification).
   */
  async giveBack(bound: BoundLimits, cost: number): Promise<void> {
    const refunds: Array<Promise<unknown>> = bound.windows.map((window) =>
      window.limiter.reward(window.counter, cost).catch(() => {}),
    );
    const quota = bound.quota;
    if (quota !== null) {
      const now = this.deps.now();
      const period = periodAt(quota.period, now);
      refunds.push(
        quota.limiter
          .reward(`q:${quota.keyId}:${period.id}`, cost, { customDuration: quotaTtl(period.endsAt, now) })
          .catch(() => {}),
      );
    }
    await Promise.all(refunds);
  }

  async close(): Promise<void> {
    if (this.cleanup !== null) clearInterval(this.cleanup);
    this.cleanup = null;
    if (this.ownsRedis) this.redis?.disconnect();
  }

  // -- Binding ------------------------------------------------------------------------------------

  /**
   * Resolution, live from the record (which is dropped from the cache when the key, its org or
   * its plan changes): the key's own windows replace the plan's per-key windows; the plan's
   * pooled (`per: 'org'`) windows still apply unless the key has a window of the same name; the
   * key's quota replaces the plan's.
   */
  private bind(record: KeyRecord): BoundLimits | null {
    const planWindows = record.plan?.rateLimits ?? [];
    let specs: readonly RateLimitWindow[];
    if (record.rateLimits === null) {
      specs = planWindows;
    } else {
      const own = record.rateLimits;
      const names = new Set(own.map((window) => window.name));
      specs = [...own, ...planWindows.filter((w) => w.per === "org" && !names.has(w.name))];
    }
    const quota = validQuota(record.quota) ?? validQuota(record.plan?.quota ?? null);
    const windows: BoundWindow[] = [];
    for (const spec of specs) {
      const seconds = windowLength(spec?.window);
      if (seconds === null || !(Number.isInteger(spec.limit) && spec.limit > 0)) continue;
      const per = spec.per === "org" ? "org" : "key";
      const limiter = this.windowLimiter(spec.limit, seconds);
      const counter =
        per === "org"
          ? `o:${record.orgId}:${spec.name}:${seconds}`
          : `w:${record.id}:${spec.name}:${seconds}`;
      windows.push({
        name: spec.name,
        limit: spec.limit,
        seconds,
        per,
        limiter,
        counter,
        storedKey: limiter.getKey(counter),
        flight: flightId(spec.limit, counter),
        lastRemaining: spec.limit,
        lastResetAt: 0,
      });
    }
    if (windows.length === 0 && quota === null) return null;
    return {
      windows,
      quota:
        quota === null
          ? null
          : {
              limit: quota.limit,
              period: quota.period,
              // Per rotation lineage: a successor keeps counting where its predecessor stopped.
              keyId: record.lineageId,
              limiter: this.quotaLimiter(quota.limit),
            },
    };
  }

  private windowLimiter(limit: number, seconds: number): Limiter {
    const id = `${limit}/${seconds}`;
    let limiter = this.windowLimiters.get(id);
    if (limiter === undefined) {
      limiter = this.createLimiter(limit, seconds, this.insured, "window");
      this.windowLimiters.set(id, limiter);
    }
    return limiter;
  }

  private quotaLimiter(limit: number): Limiter {
    let limiter = this.quotaLimiters.get(limit);
    if (limiter === undefined) {
      limiter = this.createLimiter(limit, 86_400, this.insured, "quota");
      this.quotaLimiters.set(limit, limiter);
    }
    return limiter;
  }

  private createLimiter(
    points: number,
    duration: number,
    insured: boolean,
    kind: "window" | "quota",
  ): Limiter {
    const keyPrefix = this.prefix;
    const insurance = insured ? this.insurance(points, duration, kind) : undefined;
    // Once a counter is past its limit, this process refuses it until it resets, without asking.
    const inMemoryBlockOnConsumed = points + 1;
    if (this.redis !== null) {
      return new RateLimiterRedis({
        storeClient: this.redis,
        keyPrefix,
        points,
        duration,
        inMemoryBlockOnConsumed,
        // Never wait for a reconnect: a client that is not ready fails at once (insurance or 503).
        rejectIfRedisNotReady: true,
        insuranceLimiter: insurance,
      });
    }
    if (kind === "quota") {
      return new RateLimiterPrisma({
        storeClient: this.deps.prisma,
        tableName: "limitCounter",
        clearExpiredByTimeout: false,
        keyPrefix,
        points,
        duration,
        inMemoryBlockOnConsumed,
        insuranceLimiter: insurance,
      });
    }
    return new RateLimiterMemory({ keyPrefix, points, duration });
  }

  private insurance(points: number, duration: number, kind: "window" | "quota"): Limiter {
    const onUse = () => {
      const at = Date.now();
      if (at - this.lastLog < LOG_EVERY_MS) return;
      this.lastLog = at;
      this.deps.logger.warn?.(
        { event: "flux.limits.insurance", store: this.redis === null ? "database" : "redis", kind },
        "limit store unavailable; enforcing limits per process",
      );
    };
    return new InsuranceLimiter({ keyPrefix: `${this.prefix}:insurance`, points, duration }, onUse);
  }

  private readonly classify = (reason: unknown): Outcome => {
    if (reason instanceof RateLimiterRes) return new Denied(reason);
    const at = Date.now();
    if (at - this.lastLog >= LOG_EVERY_MS) {
      this.lastLog = at;
      this.deps.logger.warn?.(
        { event: "flux.limits.store_error", store: this.redis === null ? "database" : "redis" },
        "limit store unavailable; refusing requests of limited keys",
      );
    }
    return STORE_FAILED;
  };
}

/** The per-process limiter that counts while the store is down (rate-limiter-flexible insurance). */
class InsuranceLimiter extends RateLimiterMemory {
  constructor(
    options: { keyPrefix: string; points: number; duration: number },
    private readonly onUse: () => void,
  ) {
    super(options);
  }
  override consume(key: string | number, points?: number, options?: { [key: string]: unknown }) {
    this.onUse();
    return super.consume(key, points, options);
  }
}

/** A shared counter's queue id: the same counter under another limit is another queue. */
function flightId(limit: number, counter: string): string {
  return `${limit}\0${counter}`;
}

interface Waiting {
  cost: number;
  resolve(outcome: Outcome): void;
}

interface CounterQueue {
  waiting: Waiting[];
  total: number;
}

/**
 * The answers of a batch counted in one call of `total` units: request i sees the counter at
 * (value before the call) + (costs up to and including its own), and is refused past `limit`.
 */
function splitOutcome(outcome: Outcome, batch: readonly Waiting[], total: number, limit: number): void {
  const res = outcome instanceof Denied ? outcome.res : outcome instanceof RateLimiterRes ? outcome : null;
  // A store failure, or a refusal that counted nothing (the counter was already blocked in this
  // process): the same answer for everyone in the batch.
  if (res === null || res.consumedPoints < total) {
    for (const waiting of batch) waiting.resolve(outcome);
    return;
  }
  let consumed = res.consumedPoints - total;
  for (const waiting of batch) {
    consumed += waiting.cost;
    const own = new RateLimiterRes(Math.max(limit - consumed, 0), res.msBeforeNext, consumed, false);
    waiting.resolve(consumed > limit ? new Denied(own) : own);
  }
}

function admitted(res: RateLimiterRes): Outcome {
  return res;
}

function fresh(limit: number, seconds: number): RateLimiterRes {
  return new RateLimiterRes(limit, seconds * 1000, 0, false);
}

function storeUnavailable(): FluxError {
  return new FluxError("store_unavailable", {
    detail: "The rate limit store is unavailable; try again shortly.",
    extensions: { retryAfter: STORE_RETRY_AFTER },
  });
}

/** Milliseconds this process still refuses a stored key (rate-limiter-flexible's in-memory block). */
function blockedMs(limiter: Limiter, storedKey: string): number {
  return (
    limiter as unknown as { getInMemoryBlockMsBeforeExpire(key: string): number }
  ).getInMemoryBlockMsBeforeExpire(storedKey);
}

function secondsUntil(ms: number, fallback: number): number {
  return ms < 0 ? fallback : Math.ceil(ms / 1000);
}

function quotaTtl(endsAt: number | null, now: number): number {
  return endsAt === null ? TOTAL_TTL_SECONDS : Math.ceil((endsAt - now) / 1000) + PERIOD_SLACK_SECONDS;
}

function validQuota(quota: Quota | null): Quota | null {
  if (quota === null || typeof quota !== "object") return null;
  if (!(Number.isInteger(quota.limit) && quota.limit > 0)) return null;
  return quota.period === "day" || quota.period === "month" || quota.period === "total" ? quota : null;
}
