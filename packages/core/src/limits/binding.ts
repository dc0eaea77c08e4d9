/**
 * Binding: the limits of one key record (its own windows, its plan's, its quota) bound to the
 * counters that count them, once per record (a record is dropped from the cache when the key,
 * its org or its plan changes, and with it its binding).
 */
import type { RateLimiterAbstract } from "rate-limiter-flexible";
import { RateLimiterPrisma } from "rate-limiter-flexible";
import type { PrismaClient } from "../database.js";
import type { KeyRecord } from "../keys/record.js";
import type { Quota, RateLimitWindow } from "../types.js";
import { FixedCounter, GcraCounter, type MemoryCounter, SlidingCounter } from "./algorithms.js";
import { InsuranceLimiter, type StoreWarnings } from "./insurance.js";
import { Lease, leasable } from "./lease.js";
import { windowLength } from "./limit-options.js";
import { type Algorithm, SharedStore, type SharedWindow } from "./shared-store.js";

type Limiter = RateLimiterAbstract;

export interface BoundWindow {
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

export interface BoundQuota {
  limit: number;
  period: Quota["period"];
  keyId: string;
  /** The database counter (memory store), the insurance (Redis), or null. */
  local: Limiter | null;
}

/** The shared-store call of a key's decision: its counters, in one hash slot. */
export interface SharedDecision {
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
  /** Units leased from Redis and spent here (`limits.lease`), or null: every request decided there. */
  lease: Lease | null;
}

/** A `total` quota never refills; its counter lives (practically) forever. */
const TOTAL_TTL_SECONDS = 10 * 365 * 86_400;
/** Counters of calendar periods outlive their period by this much (clock skew between instances). */
const PERIOD_SLACK_SECONDS = 3_600;

export function quotaTtl(endsAt: number | null, now: number): number {
  return endsAt === null ? TOTAL_TTL_SECONDS : Math.ceil((endsAt - now) / 1000) + PERIOD_SLACK_SECONDS;
}

export class LimitBinding {
  private readonly bound = new WeakMap<KeyRecord, BoundLimits | null>();
  private readonly windowCounters = new Map<string, MemoryCounter | null>();
  private readonly quotaLimiters = new Map<number, Limiter | null>();

  constructor(
    private readonly prefix: string,
    /** Counters on Redis (else windows in memory, quotas in the database). */
    private readonly onRedis: boolean,
    /** Whether the shared store decides (Redis): then bound limits carry their shared call. */
    private readonly shared: boolean,
    /** Whether counters in this process stand in while the store is down. */
    private readonly insured: boolean,
    private readonly prisma: PrismaClient,
    private readonly now: () => number,
    private readonly warnings: StoreWarnings,
    /** `limits.lease.units` on Redis, or null (no leasing). */
    private readonly leaseUnits: number | null = null,
  ) {}

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
    const bound: BoundLimits = {
      windows,
      quota: boundQuota,
      shared: !this.shared
        ? null
        : {
            keys,
            quotaKey: boundQuota === null ? "" : `${slot}q:${boundQuota.keyId}:`,
            // The head without the quota: `sharedCall` adds it with the period's TTL.
            head: boundQuota === null ? head : [...head.slice(0, 2), "1", ...head.slice(3)],
            flight: `${keys.join("\0")}\0${head.join(",")}`,
          },
      lease: null,
    };
    if (this.leaseUnits !== null && leasable(bound)) {
      bound.lease = new Lease(this.leaseUnits, windows.length, boundQuota !== null);
    }
    return bound;
  }

  /** The window's counter in this process: its store (memory), its insurance (Redis), or null. */
  private windowCounter(
    algorithm: Algorithm,
    limit: number,
    seconds: number,
    burst: number,
  ): MemoryCounter | null {
    if (this.onRedis && !this.insured) return null;
    const id = `${algorithm}/${limit}/${seconds}/${burst}`;
    let counter = this.windowCounters.get(id);
    if (counter === undefined) {
      const ms = seconds * 1000;
      counter =
        algorithm === "sliding"
          ? new SlidingCounter(limit, ms, this.now)
          : algorithm === "gcra"
            ? new GcraCounter(limit, ms, burst, this.now)
            : new FixedCounter(limit, ms, this.now);
      this.windowCounters.set(id, counter);
    }
    return counter;
  }

  /** The quota's counter in this process: the database (memory store), the insurance, or null. */
  private quotaLimiter(limit: number): Limiter | null {
    if (this.onRedis && !this.insured) return null;
    let limiter = this.quotaLimiters.get(limit);
    if (limiter === undefined) {
      const keyPrefix = this.prefix;
      limiter = !this.onRedis
        ? new RateLimiterPrisma({
            storeClient: this.prisma,
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
    const onUse = () => this.warnings.insurance("database");
    return new InsuranceLimiter({ keyPrefix: `${this.prefix}:insurance`, points, duration }, onUse);
  }
}

function validQuota(quota: Quota | null): Quota | null {
  if (quota === null || typeof quota !== "object") return null;
  if (!(Number.isInteger(quota.limit) && quota.limit > 0)) return null;
  return quota.period === "day" || quota.period === "month" || quota.period === "total" ? quota : null;
}
