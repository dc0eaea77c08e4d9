/**
 * Per-key rate limits and quotas: the decision. This module has a key's bound windows
 * (limits/binding.ts) counted and turns the answers into a decision (limits/outcome.ts).
 *
 * Stores:
 * - memory (no Redis): every window on the in-process counters of limits/algorithms.ts (answered
 *   synchronously); quotas durably in the database (RateLimiterPrisma, table flux_limit_counters).
 * - Redis, Valkey or Redis Cluster: every window and the quota of a request in one Lua script
 *   (limits/shared-store.ts), all counters of a key in its org's hash slot: atomic, one round
 *   trip, and a refusal consumes nothing. A hot key has at most one call in flight; requests that
 *   arrive meanwhile go out together with the next one, each decided in order (the in-flight queue of limits/shared-store.ts).
 *
 * Algorithms per window (`algorithm`): `fixed` windows are anchored at their first request (the
 * library's model): a key limited to L per W seconds can pass at most 2L in any span of W seconds
 * (L at the end of one window, L at the start of the next), and at most (k+1)L in any span of kW.
 * `sliding` and `gcra`: see limits/algorithms.ts for what they bound.
 *
 * Also here: the refunds of a denied request, and the pre-authentication limiter's entry points
 * (limits/pre-auth.ts); the insurance while a store is down is limits/insurance.ts.
 *
 * One file past 400 lines: the memory path, the Redis path, the peek and the refunds read and
 * write the same bound windows and outcomes of one decision; apart, each would re-derive them.
 */
import type { Cluster, Redis } from "ioredis";
import { RateLimiterRes } from "rate-limiter-flexible";
import type { PrismaClient } from "../database.js";
import { FluxError } from "../errors.js";
import { type KeyRecord, withRateLimit } from "../keys/record.js";
import type { Logger } from "../options.js";
import type { KeyContext } from "../types.js";
import {
  type BoundLimits,
  type BoundWindow,
  LimitBinding,
  quotaTtl,
  type SharedDecision,
} from "./binding.js";
import { StoreWarnings } from "./insurance.js";
import type { Lease } from "./lease.js";
import type { ResolvedLimitOptions } from "./limit-options.js";
import {
  admitted,
  Denied,
  deniedBy,
  fresh,
  type LimitedResult,
  limitDenial,
  limitState,
  type Outcome,
  STORE_FAILED,
  storeUnavailable,
} from "./outcome.js";
import { periodAt } from "./periods.js";
import { PreAuthLimiter } from "./pre-auth.js";
import { type Client, duplicateForCounting, safeForCounting } from "./redis-clients.js";
import { type Reply, SharedStore, WINDOW_FIELDS } from "./shared-store.js";

export type { BoundLimits } from "./binding.js";
export type { LimitedResult } from "./outcome.js";
export { PRE_AUTH_WINDOW } from "./pre-auth.js";

/** After a lease call fails, requests are decided exactly (and see the failure) this long. */
const LEASE_RETRY_MS = 1_000;

/** A window this process already saw exhausted at `now` (refused with no store call), or null. */
function exhaustedWindow(bound: BoundLimits, now: number): BoundWindow | null {
  for (const window of bound.windows) if (window.blockedUntil > now) return window;
  return null;
}

export interface LimitsDependencies {
  options: ResolvedLimitOptions;
  prisma: PrismaClient;
  /** Shared Redis client (or Cluster), or null for the memory / database stores. */
  redis: Redis | Cluster | null;
  redisPrefix: string;
  logger: Logger;
  now(): number;
  /**
   * Whether `now` is not the process's own clock (an injected one, or the PostgreSQL server
   * clock): then sliding and GCRA windows in Redis count on it; else on the store's own clock, so
   * instances with skewed clocks agree.
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
  private readonly binding: LimitBinding;
  /** Failed authentications per client address, or null when `limits.preAuth` is off. */
  private readonly preAuth: PreAuthLimiter | null;
  /** The windows-and-quota script on Redis, or null on the memory store. */
  private readonly store: SharedStore | null;
  private readonly insured: boolean;
  private readonly warnings: StoreWarnings;
  private cleanup: NodeJS.Timeout | null = null;

  private constructor(
    private readonly deps: LimitsDependencies,
    /** Redis client (or Cluster), or null. */
    private readonly redis: Redis | Cluster | null,
    private readonly ownsRedis: boolean,
  ) {
    const prefix = `${deps.redisPrefix}rl`;
    this.insured = deps.options.onStoreError === "insurance";
    this.warnings = new StoreWarnings(deps.logger);
    this.store =
      redis === null ? null : new SharedStore(redis, deps.clockInjected === true ? deps.now : null);
    this.binding = new LimitBinding(
      prefix,
      redis !== null,
      this.store !== null,
      this.insured,
      deps.prisma,
      deps.now,
      this.warnings,
      redis !== null && deps.options.lease !== false ? deps.options.lease.units : null,
    );
    const preAuth = deps.options.preAuth;
    this.preAuth = preAuth === null ? null : new PreAuthLimiter(preAuth, redis, prefix);
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
   * Opens the limits of one Flux instance. With Redis (one script, one round trip per decision),
   * the client must never resend a command after a reconnect or a failover (a script whose reply
   * was lost has run: resent, it would count twice). The shared client is reused when it is set up
   * so, else a duplicate connection that is is opened (and closed by `close()`).
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
    return this.binding.applicable(record);
  }

  /**
   * Consumes `cost` from every window and the quota of a key and answers with the context (and
   * its rate limit state) or the denial. `cost: 0` reads the state without consuming. A denied
   * request consumes nothing. Answers synchronously (no promise) when the counters are in this
   * process and the key has no quota; a caller must accept either.
   */
  decide(
    bound: BoundLimits,
    cost: number,
    base: Omit<KeyContext, "rateLimit">,
    /** The instance clock's reading for this request, when the caller has one (one read per request). */
    now: number = this.deps.now(),
  ): LimitedResult | Promise<LimitedResult> {
    if (cost === 0) return this.peek(bound, base);
    const decided =
      bound.shared === null
        ? this.decideLocally(bound, cost, base, now)
        : bound.lease === null
          ? this.decideShared(bound, bound.shared, cost, base, now)
          : this.decideLeased(bound, bound.shared, bound.lease, cost, base, now, true);
    const observer = this.deps.observer;
    if (observer === undefined || !observer.active) return decided;
    if (!(decided instanceof Promise)) {
      observer.observe(decided, base);
      return decided;
    }
    return decided.then((result) => {
      observer.observe(result, base);
      return result;
    });
  }

  /**
   * Counters in this process (the memory store, or the insurance while Redis is down), then the
   * quota. The memory counters answer synchronously, and so does this method when every window
   * admits and the key has no quota: the request continues in the same turn, with no promise. A
   * quota (a database write on the memory store) is only asked once every window has admitted.
   * What a refused request took from the windows that admitted it is given back.
   */
  private decideLocally(
    bound: BoundLimits,
    cost: number,
    base: Omit<KeyContext, "rateLimit">,
    now: number,
  ): LimitedResult | Promise<LimitedResult> {
    const windows = bound.windows;
    const count = windows.length;
    const outcomes: Outcome[] = new Array(count);
    let problem = false;
    for (let i = 0; i < count; i++) {
      const window = windows[i] as BoundWindow;
      const local = window.local;
      if (local === null) {
        outcomes[i] = STORE_FAILED;
        problem = true;
        continue;
      }
      const res = local.take(window.counter, cost, now);
      if (res.consumedPoints < 0) {
        outcomes[i] = new Denied(res);
        problem = true;
      } else {
        outcomes[i] = res;
      }
    }
    if (!problem && bound.quota === null) {
      return { valid: true, context: withRateLimit(base, limitState(bound, outcomes, now, 0)) };
    }
    return this.quotaThenDecide(bound, cost, base, outcomes, problem, now);
  }

  /** The rest of a local decision: the quota (when every window admitted), or the refunds. */
  private async quotaThenDecide(
    bound: BoundLimits,
    cost: number,
    base: Omit<KeyContext, "rateLimit">,
    outcomes: Outcome[],
    refused: boolean,
    now: number,
  ): Promise<LimitedResult> {
    const quota = bound.quota;
    let problem = refused;
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
    if (!problem) return { valid: true, context: withRateLimit(base, limitState(bound, outcomes, now, 0)) };
    await this.refund(bound, outcomes, cost, quotaCounter, quotaOptions);
    return { valid: false, error: limitDenial(bound, outcomes, now, cost) };
  }

  /** Redis: one script decides every window and the quota, in one round trip. */
  private async decideShared(
    bound: BoundLimits,
    shared: SharedDecision,
    cost: number,
    base: Omit<KeyContext, "rateLimit">,
    now: number,
  ): Promise<LimitedResult> {
    // A window this process already saw exhausted answers at once, with no store call at all.
    const exhausted = exhaustedWindow(bound, now);
    if (exhausted !== null) return deniedBy(bound, exhausted, exhausted.blockedUntil - now, now);

    const call = this.sharedCall(bound, shared, now);
    const reply = await (this.store as SharedStore).decide(call.flight, call.keys, call.head, cost);
    if ("failed" in reply) {
      if (!this.insured) {
        this.classify(reply.failed);
        return { valid: false, error: storeUnavailable() };
      }
      this.warnings.insurance();
      return this.decideLocally(bound, cost, base, this.deps.now());
    }
    const outcomes = this.sharedOutcomes(bound, reply, now);
    if (reply.values[reply.offset] === 0) {
      return { valid: true, context: withRateLimit(base, limitState(bound, outcomes, now, 0)) };
    }
    // Nothing was consumed: every window reports what it has left.
    return { valid: false, error: limitDenial(bound, outcomes, now, 0) };
  }

  /**
   * Leasing (`limits.lease`, limits/lease.ts): a request spends units this instance holds, in
   * this turn, with no call. One that finds too few waits for the next lease (one call for every
   * request that waits with it), then is decided exactly if that lease is gone already; so is a
   * request that costs more than a lease, and every request while a refused lease's window lasts.
   */
  private decideLeased(
    bound: BoundLimits,
    shared: SharedDecision,
    lease: Lease,
    cost: number,
    base: Omit<KeyContext, "rateLimit">,
    now: number,
    wait: boolean,
  ): LimitedResult | Promise<LimitedResult> {
    if (lease.spend(cost, now)) {
      return { valid: true, context: withRateLimit(base, this.leasedState(bound, lease, now)) };
    }
    if (!wait || cost > lease.units || now < lease.exactUntil || exhaustedWindow(bound, now) !== null) {
      return this.decideShared(bound, shared, cost, base, now);
    }
    lease.taking ??= this.takeLease(bound, shared, lease);
    return lease.taking.then(() =>
      this.decideLeased(bound, shared, lease, cost, base, this.deps.now(), false),
    );
  }

  /** One call takes `lease.units` from every counter of the key, as one request of that cost. */
  private async takeLease(bound: BoundLimits, shared: SharedDecision, lease: Lease): Promise<void> {
    const sentAt = this.deps.now();
    try {
      const call = this.sharedCall(bound, shared, sentAt);
      const reply = await (this.store as SharedStore).decide(call.flight, call.keys, call.head, lease.units);
      // The store failed: requests are decided exactly for a while (insurance or 503 from there).
      if ("failed" in reply) lease.exactUntil = sentAt + LEASE_RETRY_MS;
      else lease.settle(bound, reply.values, reply.offset, sentAt);
    } finally {
      lease.taking = null;
    }
  }

  /** A leased request's state: what Redis had left with the lease, plus what this instance holds. */
  private leasedState(bound: BoundLimits, lease: Lease, now: number) {
    // The windows, then the quota (which resets with its period: no wait reported for it).
    const counters = lease.remaining.length;
    const outcomes: Outcome[] = new Array(counters);
    for (let i = 0; i < counters; i++) {
      const wait = i < lease.resetAt.length ? Math.max(0, (lease.resetAt[i] as number) - now) : 0;
      outcomes[i] = new RateLimiterRes((lease.remaining[i] as number) + lease.left, wait);
    }
    return limitState(bound, outcomes, now, 0);
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
        return { valid: true, context: withRateLimit(base, limitState(bound, outcomes, now, 0)) };
      }
      if (!this.insured) {
        this.classify(reply.failed);
        return { valid: false, error: storeUnavailable() };
      }
      this.warnings.insurance();
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
    return { valid: true, context: withRateLimit(base, limitState(bound, outcomes, now, 0)) };
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

  // -- Pre-authentication limiter: failed authentications per client address --------------------

  /** Sync: the refusal for an address past the pre-auth limit, or null. No I/O. */
  refusedAddress(address: string): LimitedResult | null {
    return this.preAuth === null ? null : this.preAuth.refused(address);
  }

  /**
   * Counts a failed authentication from an address. Answers with the failure itself, or with
   * `rate_limited` once the address is past the limit (from then on `refusedAddress` refuses it
   * before any read). A missing key is not an attempt and is not counted.
   */
  authFailed<T extends { valid: false; error: FluxError }>(
    address: string,
    failure: T,
  ): Promise<T | LimitedResult> {
    if (this.preAuth === null) return Promise.resolve(failure);
    return this.preAuth.authFailed(address, failure);
  }

  /** Addresses counted in this process by the pre-auth limiter (at most `preAuth.maxAddresses`). */
  get preAuthAddresses(): number {
    return this.preAuth?.addresses ?? 0;
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

  private readonly classify = (reason: unknown): Outcome => {
    if (reason instanceof RateLimiterRes) return new Denied(reason);
    this.warnings.storeError(this.redis === null ? "database" : "redis");
    return STORE_FAILED;
  };
}
