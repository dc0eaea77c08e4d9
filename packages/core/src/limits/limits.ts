/**
 * Per-key rate limits and quotas. This module decides which windows apply to a key (live from its
 * plan), has them counted, and turns the answers into a decision.
 *
 * Stores:
 * - memory (no Redis): every window on the in-process counters of limits/algorithms.ts (answered
 *   synchronously); quotas durably in the database (RateLimiterPrisma, table flux_limit_counters).
 * - Redis, Valkey or Redis Cluster: every window and the quota of a request in one Lua script
 *   (limits/shared-store.ts), all counters of a key in its org's hash slot: atomic, one round
 *   trip, and a refusal consumes nothing. A hot key has at most one call in flight; requests that
 *   arrive meanwhile go out together with the next one, each decided in order.
 *
 * Algorithms per window (`algorithm`): `fixed` windows are anchored at their first request (the
 * library's model): a key limited to L per W seconds can pass at most 2L in any span of W seconds
 * (L at the end of one window, L at the start of the next), and at most (k+1)L in any span of kW.
 * `sliding` and `gcra`: see limits/algorithms.ts for what they bound.
 *
 * One file past 400 lines: both store paths, the insurance and the pre-auth limiter build the same
 * window state and denials from the same bound windows; split, they would share them through a
 * back door.
 */
import type { Cluster, Redis } from "ioredis";
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
import { type KeyRecord, withRateLimit } from "../keys/record.js";
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
import { FixedCounter, GcraCounter, type MemoryCounter, SlidingCounter } from "./algorithms.js";
import { addressBucket } from "./client-address.js";
import type { ResolvedLimitOptions } from "./limit-options.js";
import { windowLength } from "./limit-options.js";
import { periodAt } from "./periods.js";
import { type Client, duplicateForCounting, safeForCounting } from "./redis-clients.js";
import { type Algorithm, type Reply, SharedStore, type SharedWindow, WINDOW_FIELDS } from "./shared-store.js";

type Limiter = RateLimiterAbstract;

interface BoundWindow {
  name: string;
  limit: number;
  seconds: number;
  per: "key" | "org";
  algorithm: Algorithm;
  /** Most units the window can have left: its limit, or a GCRA window's burst. */
  capacity: number;
  /** The counter in this process: the window's store (memory), or its insurance (Redis), or null. */
  local: MemoryCounter | null;
  /** The key given to the local counter. */
  counter: string;
  /**
   * What the store last answered for this window (remaining points, and when it resets on the
   * limiter's clock): a refusal answered without a store call reports every window from it.
   */
  lastRemaining: number;
  lastResetAt: number;
  /** Shared store: until when (clock ms) a request of one unit is refused without asking. */
  blockedUntil: number;
}

interface BoundQuota {
  limit: number;
  period: Quota["period"];
  keyId: string;
  /** The database counter (memory store), the insurance (Redis), or null. */
  local: Limiter | null;
}

/** The shared-store call of a key's decision: its counters, in one hash slot. */
interface SharedDecision {
  /** The windows' counters, then the quota's prefix (its period is added per call). */
  keys: string[];
  quotaKey: string;
  head: string[];
  flight: string;
}

/** The limits of one key record, bound to limiter instances; cached per record. */
export interface BoundLimits {
  windows: readonly BoundWindow[];
  quota: BoundQuota | null;
  shared: SharedDecision | null;
}

export type LimitedResult = { valid: true; context: KeyContext } | { valid: false; error: FluxError };

/** Why a limiter call did not admit: a denial from the store, or a store failure. */
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
  /** Shared Redis client (or Cluster), or null for the memory / database stores. */
  redis: Redis | Cluster | null;
  redisPrefix: string;
  logger: Logger;
  now(): number;
  /**
   * Whether `now` is a clock the app injected (tests): then sliding and GCRA windows in Redis
   * count on it; else on the store's own clock, so instances with skewed clocks agree.
   */
  clockInjected?: boolean;
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
  private readonly windowCounters = new Map<string, MemoryCounter | null>();
  private readonly quotaLimiters = new Map<number, Limiter | null>();
  /** Shared pre-auth counters (Redis), or null: then only the bounded in-process ones count. */
  private readonly preAuthLimiter: Limiter | null;
  /** In-process pre-auth counters, bounded; also what counts while Redis is down. */
  private readonly preAuthLocal: AddressFailures | null;
  /** The windows-and-quota script on Redis, or null on the memory store. */
  private readonly store: SharedStore | null;
  /** Addresses past the pre-auth limit, until their window resets (ms since epoch, real time). */
  private readonly refused = new LRUCache<string, number>({ max: 50_000, ttl: 60_000, ttlAutopurge: false });
  private readonly prefix: string;
  private readonly insured: boolean;
  private cleanup: NodeJS.Timeout | null = null;
  private lastLog = 0;

  private constructor(
    private readonly deps: LimitsDependencies,
    /** Redis client (or Cluster) with auto-pipelining, or null. */
    private readonly redis: Redis | Cluster | null,
    private readonly ownsRedis: boolean,
  ) {
    this.prefix = `${deps.redisPrefix}rl`;
    this.insured = deps.options.onStoreError === "insurance";
    this.store =
      redis === null ? null : new SharedStore(redis, deps.clockInjected === true ? deps.now : null);
    const preAuth = deps.options.preAuth;
    this.preAuthLocal =
      preAuth === null ? null : new AddressFailures(preAuth.maxAddresses, preAuth.windowSeconds * 1000);
    // Not insured: the bounded local counters stand in while Redis is down.
    this.preAuthLimiter =
      preAuth === null || redis === null
        ? null
        : new RateLimiterRedis({
            storeClient: redis,
            keyPrefix: this.prefix,
            points: preAuth.limit,
            duration: preAuth.windowSeconds,
            inMemoryBlockOnConsumed: preAuth.limit + 1,
            // Never wait for a reconnect: a client that is not ready fails at once.
            rejectIfRedisNotReady: true,
          });
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
   * round trip per request however many requests are in flight) and must never have a command
   * resent after a reconnect or a failover (a script whose reply was lost has run: resent, it
   * would count twice). The shared client is reused when it is set up so, else a duplicate
   * connection that is is opened (and closed by `close()`).
   */
  static async open(deps: LimitsDependencies): Promise<Limits> {
    const shared = deps.redis;
    if (shared === null) return new Limits(deps, null, false);
    if (safeForCounting(shared)) return Limits.ready(new Limits(deps, shared, false), shared);
    const client = duplicateForCounting(shared);
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
    return Limits.ready(new Limits(deps, client, true), client);
  }

  private static async ready(limits: Limits, client: Client): Promise<Limits> {
    await limits.store?.preload(client);
    return limits;
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
   * request consumes nothing.
   */
  decide(bound: BoundLimits, cost: number, base: Omit<KeyContext, "rateLimit">): Promise<LimitedResult> {
    if (cost === 0) return this.peek(bound, base);
    const decided =
      bound.shared === null
        ? this.decideLocally(bound, cost, base)
        : this.decideShared(bound, bound.shared, cost, base);
    const observer = this.deps.observer;
    if (observer === undefined || !observer.active) return decided;
    return decided.then((result) => {
      observer.observe(result, base);
      return result;
    });
  }

  /**
   * Counters in this process (the memory store, or the insurance while Redis is down), then the
   * quota. The memory counters answer synchronously (behind a promise), so they are awaited one
   * after the other: cheaper than Promise.all, and the quota (a database write on the memory
   * store) is only asked once every window has admitted. What a refused request took from the
   * windows that admitted it is given back.
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
      const local = window.local;
      if (local === null) {
        outcomes.push(STORE_FAILED);
        problem = true;
        continue;
      }
      // In-process counters answer synchronously: no promise, no microtask.
      const res = local.take(window.counter, cost);
      if (res.consumedPoints < 0) {
        outcomes.push(new Denied(res));
        problem = true;
      } else {
        outcomes.push(res);
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
      const outcome =
        quota.local === null
          ? STORE_FAILED
          : await quota.local.consume(quotaCounter, cost, quotaOptions).then(admitted, this.classify);
      outcomes.push(outcome);
      if (!(outcome instanceof RateLimiterRes)) problem = true;
    }
    if (!problem) return { valid: true, context: withRateLimit(base, this.state(bound, outcomes, now, 0)) };
    await this.refund(bound, outcomes, cost, quotaCounter, quotaOptions);
    return { valid: false, error: this.denial(bound, outcomes, now, cost) };
  }

  /** Redis: one script decides every window and the quota, in one round trip. */
  private async decideShared(
    bound: BoundLimits,
    shared: SharedDecision,
    cost: number,
    base: Omit<KeyContext, "rateLimit">,
  ): Promise<LimitedResult> {
    const windows = bound.windows;
    const count = windows.length;
    const now = this.deps.now();

    // A window this process already saw exhausted answers at once, with no store call at all.
    for (let i = 0; i < count; i++) {
      const window = windows[i] as BoundWindow;
      if (window.blockedUntil > now) return this.deniedBy(bound, window, window.blockedUntil - now, now);
    }

    const call = this.sharedCall(bound, shared, now);
    const reply = await (this.store as SharedStore).decide(call.flight, call.keys, call.head, cost);
    if ("failed" in reply) {
      if (!this.insured) {
        this.classify(reply.failed);
        return { valid: false, error: storeUnavailable() };
      }
      this.onInsurance();
      return this.decideLocally(bound, cost, base);
    }
    const outcomes = this.sharedOutcomes(bound, reply, now);
    if (reply.values[reply.offset] === 0) {
      return { valid: true, context: withRateLimit(base, this.state(bound, outcomes, now, 0)) };
    }
    // Nothing was consumed: every window reports what it has left.
    return { valid: false, error: this.denial(bound, outcomes, now, 0) };
  }

  /** The keys, arguments and in-flight queue of a key's shared call at `now` (the quota's period). */
  private sharedCall(
    bound: BoundLimits,
    shared: SharedDecision,
    now: number,
  ): { keys: string[]; head: string[]; flight: string } {
    const quota = bound.quota;
    if (quota === null) return shared;
    const period = periodAt(quota.period, now);
    return {
      keys: [...shared.keys, `${shared.quotaKey}${period.id}`],
      head: [...shared.head, String(quota.limit), String(quotaTtl(period.endsAt, now) * 1000)],
      flight: `${shared.flight}\0${period.id}`,
    };
  }

  /** One request's reply as outcomes (and the windows it leaves exhausted, blocked locally). */
  private sharedOutcomes(
    bound: BoundLimits,
    reply: { values: readonly number[]; offset: number },
    now: number,
  ) {
    const values = reply.values;
    let at = reply.offset + 1;
    const windows = bound.windows;
    const outcomes: Outcome[] = new Array(windows.length + (bound.quota === null ? 0 : 1));
    for (let i = 0; i < windows.length; i++) {
      const window = windows[i] as BoundWindow;
      const res = new RateLimiterRes(values[at] as number, values[at + 1] as number);
      const nextUnit = values[at + 2] as number;
      if (nextUnit > 0) window.blockedUntil = now + nextUnit;
      outcomes[i] = values[at + 3] === 1 ? new Denied(res) : res;
      at += WINDOW_FIELDS;
    }
    if (bound.quota !== null) {
      const res = new RateLimiterRes(values[at] as number, 0);
      outcomes[windows.length] = values[at + 1] === 1 ? new Denied(res) : res;
    }
    return outcomes;
  }

  /** `cost: 0`: the state without consuming (a window never used yet is full). */
  private async peek(bound: BoundLimits, base: Omit<KeyContext, "rateLimit">): Promise<LimitedResult> {
    const now = this.deps.now();
    const shared = bound.shared;
    if (shared !== null) {
      const call = this.sharedCall(bound, shared, now);
      const reply: Reply = await (this.store as SharedStore).peek(call.keys, call.head);
      if (!("failed" in reply)) {
        const outcomes = this.sharedOutcomes(bound, reply, now);
        return { valid: true, context: withRateLimit(base, this.state(bound, outcomes, now, 0)) };
      }
      if (!this.insured) {
        this.classify(reply.failed);
        return { valid: false, error: storeUnavailable() };
      }
      this.onInsurance();
    }
    const quota = bound.quota;
    const period = quota === null ? null : periodAt(quota.period, now);
    const pending: Array<Promise<Outcome>> = bound.windows.map((window) =>
      window.local === null
        ? Promise.resolve(STORE_FAILED)
        : window.local
            .get(window.counter)
            .then((res) => res ?? fresh(window.limit, window.seconds), this.classify),
    );
    if (quota !== null && period !== null) {
      pending.push(
        quota.local === null
          ? Promise.resolve(STORE_FAILED)
          : quota.local
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

  /**
   * Gives back what a denied request took: from the windows and the quota that admitted it, and
   * from a rate-limiter-flexible window that refused it (the library counts a refusal too; the
   * sliding and GCRA counters do not), so a refusal consumes nothing, as in the shared store. A
   * database quota that refused keeps what it counted: it is blocked in memory until its period
   * ends (no database write per refused request), which a refund would not lift.
   */
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
      const outcome = outcomes[i];
      const counted =
        outcome instanceof RateLimiterRes ||
        (outcome instanceof Denied && outcome.res.consumedPoints > 0 && i < windows.length);
      if (!counted) continue;
      const window = windows[i];
      if (window !== undefined) {
        if (window.local !== null) refunds.push(window.local.reward(window.counter, cost).catch(() => {}));
      } else if (bound.quota?.local) {
        refunds.push(bound.quota.local.reward(quotaCounter, cost, quotaOptions).catch(() => {}));
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
    const shared = bound.shared;
    if (shared !== null) {
      const call = this.sharedCall(bound, shared, this.deps.now());
      await (this.store as SharedStore).giveBack(call.keys, call.head, cost).catch(() => {});
      return;
    }
    const refunds: Array<Promise<unknown>> = [];
    for (const window of bound.windows) {
      if (window.local !== null) refunds.push(window.local.reward(window.counter, cost).catch(() => {}));
    }
    const quota = bound.quota;
    if (quota?.local) {
      const now = this.deps.now();
      const period = periodAt(quota.period, now);
      refunds.push(
        quota.local
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
    const sharedWindows: SharedWindow[] = [];
    const keys: string[] = [];
    // Every counter of a key in its org's hash slot: one node decides them all (Redis Cluster).
    const slot = `${this.prefix}:{${record.orgId}}:`;
    for (const spec of specs) {
      const seconds = windowLength(spec?.window);
      if (seconds === null || !(Number.isInteger(spec.limit) && spec.limit > 0)) continue;
      const per = spec.per === "org" ? "org" : "key";
      const algorithm: Algorithm =
        spec.algorithm === "sliding" || spec.algorithm === "gcra" ? spec.algorithm : "fixed";
      const burst =
        algorithm === "gcra" && Number.isInteger(spec.burst) && (spec.burst as number) > 0
          ? (spec.burst as number)
          : spec.limit;
      const suffix = algorithm === "fixed" ? "" : algorithm === "sliding" ? ":s" : `:g${burst}`;
      const counter =
        per === "org"
          ? `o:${record.orgId}:${spec.name}:${seconds}${suffix}`
          : `w:${record.id}:${spec.name}:${seconds}${suffix}`;
      windows.push({
        name: spec.name,
        limit: spec.limit,
        seconds,
        per,
        algorithm,
        capacity: algorithm === "gcra" ? burst : spec.limit,
        local: this.windowCounter(algorithm, spec.limit, seconds, burst),
        counter,
        lastRemaining: spec.limit,
        lastResetAt: 0,
        blockedUntil: 0,
      });
      sharedWindows.push({ algorithm, limit: spec.limit, ms: seconds * 1000, burst });
      keys.push(`${slot}${counter}`);
    }
    if (windows.length === 0 && quota === null) return null;
    const boundQuota: BoundQuota | null =
      quota === null
        ? null
        : {
            limit: quota.limit,
            period: quota.period,
            // Per rotation lineage: a successor keeps counting where its predecessor stopped.
            keyId: record.lineageId,
            local: this.quotaLimiter(quota.limit),
          };
    const head = SharedStore.head(sharedWindows, null);
    return {
      windows,
      quota: boundQuota,
      shared:
        this.store === null
          ? null
          : {
              keys,
              quotaKey: boundQuota === null ? "" : `${slot}q:${boundQuota.keyId}:`,
              // The head without the quota: `sharedCall` adds it with the period's TTL.
              head: boundQuota === null ? head : [...head.slice(0, 2), "1", ...head.slice(3)],
              flight: `${keys.join("\0")}\0${head.join(",")}`,
            },
    };
  }

  /** The window's counter in this process: its store (memory), its insurance (Redis), or null. */
  private windowCounter(
    algorithm: Algorithm,
    limit: number,
    seconds: number,
    burst: number,
  ): MemoryCounter | null {
    if (this.redis !== null && !this.insured) return null;
    const id = `${algorithm}/${limit}/${seconds}/${burst}`;
    let counter = this.windowCounters.get(id);
    if (counter === undefined) {
      const ms = seconds * 1000;
      counter =
        algorithm === "sliding"
          ? new SlidingCounter(limit, ms, this.deps.now)
          : algorithm === "gcra"
            ? new GcraCounter(limit, ms, burst, this.deps.now)
            : new FixedCounter(limit, ms, this.deps.now);
      this.windowCounters.set(id, counter);
    }
    return counter;
  }

  /** The quota's counter in this process: the database (memory store), the insurance, or null. */
  private quotaLimiter(limit: number): Limiter | null {
    if (this.redis !== null && !this.insured) return null;
    let limiter = this.quotaLimiters.get(limit);
    if (limiter === undefined) {
      const keyPrefix = this.prefix;
      limiter =
        this.redis === null
          ? new RateLimiterPrisma({
              storeClient: this.deps.prisma,
              tableName: "limitCounter",
              clearExpiredByTimeout: false,
              keyPrefix,
              points: limit,
              duration: 86_400,
              inMemoryBlockOnConsumed: limit + 1,
              insuranceLimiter: this.insured ? this.insurance(limit, 86_400) : undefined,
            })
          : this.insurance(limit, 86_400);
      this.quotaLimiters.set(limit, limiter);
    }
    return limiter;
  }

  /** The per-process limiter that counts a database quota while the database is down. */
  private insurance(points: number, duration: number): Limiter {
    const onUse = () => this.onInsurance("database");
    return new InsuranceLimiter({ keyPrefix: `${this.prefix}:insurance`, points, duration }, onUse);
  }

  private onInsurance(store: "redis" | "database" = "redis"): void {
    const at = Date.now();
    if (at - this.lastLog < LOG_EVERY_MS) return;
    this.lastLog = at;
    this.deps.logger.warn?.(
      { event: "flux.limits.insurance", store },
      "limit store unavailable; enforcing limits per process",
    );
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

/**
 * What a counter has left once `refunded` was given back: an admitting counter gets it back; a
 * rate-limiter-flexible counter that refused had counted the refusal too, and is back to what it
 * held before it.
 */
function remainingAfter(
  outcome: Outcome | undefined,
  res: RateLimiterRes,
  limit: number,
  refunded: number,
): number {
  if (outcome instanceof RateLimiterRes) return res.remainingPoints + refunded;
  if (refunded > 0 && res.consumedPoints > 0) return Math.max(0, limit - (res.consumedPoints - refunded));
  return res.remainingPoints;
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
