/**
 * While a limit store is down: the per-process insurance limiter that counts in its place
 * (rate-limiter-flexible's insurance), and warnings about it at most once per 10 s.
 */
import { RateLimiterMemory } from "rate-limiter-flexible";
import type { Logger } from "../options.js";

const LOG_EVERY_MS = 10_000;

/** Warnings of one Limits instance about its stores, throttled together. */
export class StoreWarnings {
  private lastLog = 0;

  constructor(private readonly logger: Logger) {}

  insurance(store: "redis" | "database" = "redis"): void {
    if (!this.due()) return;
    this.logger.warn?.(
      { event: "flux.limits.insurance", store },
      "limit store unavailable; enforcing limits per process",
    );
  }

  storeError(store: "redis" | "database"): void {
    if (!this.due()) return;
    this.logger.warn?.(
      { event: "flux.limits.store_error", store },
      "limit store unavailable; refusing requests of limited keys",
    );
  }

  private due(): boolean {
    const at = Date.now();
    if (at - this.lastLog < LOG_EVERY_MS) return false;
    this.lastLog = at;
    return true;
  }
}

/** The per-process limiter that counts while the store is down (rate-limiter-flexible insurance). */
export class InsuranceLimiter extends RateLimiterMemory {
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
