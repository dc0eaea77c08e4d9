/**
 * Limit events from the limiter's decisions, on the hot path: a key's quota crossing one of
 * `events.quotaThresholds` (once per threshold and period) and a window refusing
 * (`ratelimit.exceeded`, once per window until it resets). Synchronous and allocation-light: the
 * events are handed to `emit` (the lifecycle outbox's queue), never awaited by the request.
 */
import { LRUCache } from "lru-cache";
import type { EventInput } from "../events/events.js";
import type { KeyContext, QuotaState, RateLimitState } from "../types.js";
import type { LimitedResult } from "./outcome.js";
import { periodAt } from "./periods.js";

interface QuotaMark {
  periodId: string;
  endsAt: number;
  /** Index of the highest threshold already reported in this period. */
  reached: number;
}

export class LimitThresholds {
  private readonly quotaMarks = new LRUCache<string, QuotaMark>({ max: 100_000 });
  private readonly rateMarks = new LRUCache<string, number>({ max: 100_000 });

  constructor(
    private readonly thresholds: readonly number[],
    private readonly now: () => number,
    private readonly emit: (event: EventInput) => void,
    /** Told when detecting threw (the event is dropped, the request is not affected). */
    private readonly failed: (error: unknown) => void,
  ) {}

  observe(result: LimitedResult, base: Omit<KeyContext, "rateLimit">): void {
    try {
      if (result.valid) {
        const quota = result.context.rateLimit?.quota;
        if (quota != null) this.quotaUsed(base, quota);
        return;
      }
      const error = result.error;
      if (error.code === "rate_limited") this.rateLimited(base, error.extensions);
      else if (error.code === "quota_exceeded") {
        const quota = (error.extensions.rateLimit as RateLimitState | undefined)?.quota;
        if (quota != null) this.quotaUsed(base, quota);
      }
    } catch (error) {
      this.failed(error);
    }
  }

  private quotaUsed(base: Omit<KeyContext, "rateLimit">, quota: QuotaState): void {
    const thresholds = this.thresholds;
    const used = quota.limit - quota.remaining;
    let reached = -1;
    for (let i = 0; i < thresholds.length; i++) {
      if (used >= reachedAt(thresholds[i] as number, quota.limit)) reached = i;
    }
    if (reached < 0) return;
    const now = this.now();
    let mark = this.quotaMarks.get(base.keyId);
    if (mark !== undefined && now < mark.endsAt && mark.reached >= reached) return;
    const period = periodAt(quota.period, now);
    if (mark === undefined || mark.periodId !== period.id) {
      mark = { periodId: period.id, endsAt: period.endsAt ?? Number.POSITIVE_INFINITY, reached: -1 };
      this.quotaMarks.set(base.keyId, mark);
    }
    for (let i = mark.reached + 1; i <= reached; i++) {
      const threshold = thresholds[i] as number;
      this.emit({
        type: "quota.threshold",
        orgId: base.orgId,
        keyId: base.keyId,
        data: {
          keyId: base.keyId,
          orgId: base.orgId,
          threshold,
          limit: quota.limit,
          used,
          period: quota.period,
          periodId: period.id,
        },
        dedupeKey: `quota.threshold:${base.keyId}:${period.id}:${threshold}`,
      });
    }
    mark.reached = reached;
  }

  private rateLimited(
    base: Omit<KeyContext, "rateLimit">,
    extensions: Readonly<Record<string, unknown>>,
  ): void {
    const name = extensions.window;
    if (typeof name !== "string") return;
    const state = (extensions.rateLimit as RateLimitState | undefined)?.windows.find((w) => w.name === name);
    if (state === undefined) return;
    // Windows run on the limiter's real clock: so does this throttle.
    const at = Date.now();
    const markKey = `${base.keyId}\u0000${name}`;
    const until = this.rateMarks.get(markKey);
    if (until !== undefined && at < until) return;
    const retryAfter = typeof extensions.retryAfter === "number" ? extensions.retryAfter : state.resetIn;
    this.rateMarks.set(markKey, at + Math.max(1, retryAfter) * 1000);
    const windowMs = Math.max(1, state.window) * 1000;
    this.emit({
      type: "ratelimit.exceeded",
      orgId: base.orgId,
      keyId: base.keyId,
      data: {
        keyId: base.keyId,
        orgId: base.orgId,
        window: name,
        limit: state.limit,
        windowSeconds: state.window,
        per: state.per,
        retryAfter,
      },
      // Other instances (sharing the window through Redis) report the same aligned window once.
      dedupeKey: `ratelimit.exceeded:${base.keyId}:${name}:${state.window}:${Math.floor(at / windowMs)}`,
    });
  }
}

/** Units used at which a threshold counts as reached (0.8 of 10 is 8, not 8.000000000000002). */
function reachedAt(threshold: number, limit: number): number {
  return Math.ceil(threshold * limit - 1e-9);
}
