/**
 * The pre-authentication limiter: failed authentications per client address (its bucket: an
 * IPv6 /64, an IPv4 address), counted on Redis when there is one and in a bounded in-process
 * table otherwise (and while Redis is down); past `limits.preAuth.limit` every attempt from the
 * address is refused before any database read, until its window resets.
 */
import type { Cluster, Redis } from "ioredis";
import { LRUCache } from "lru-cache";
import { type RateLimiterAbstract, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { FluxError } from "../errors.js";
import { addressBucket } from "../http/client-address.js";
import type { RateLimitState } from "../types.js";
import { AddressFailures } from "./address-failures.js";
import type { ResolvedLimitOptions } from "./limit-options.js";
import { type LimitedResult, secondsUntil } from "./outcome.js";

/** Pre-authentication window name, as it appears in headers and problem documents. */
export const PRE_AUTH_WINDOW = "auth-failures";

type PreAuthOptions = NonNullable<ResolvedLimitOptions["preAuth"]>;

export class PreAuthLimiter {
  /** Shared counters (Redis), or null: then only the bounded in-process ones count. */
  private readonly limiter: RateLimiterAbstract | null;
  /** In-process counters, bounded; also what counts while Redis is down. */
  private readonly local: AddressFailures;
  /** Addresses past the limit, until their window resets (ms since epoch, real time). */
  private readonly refusedUntil = new LRUCache<string, number>({
    max: 50_000,
    ttl: 60_000,
    ttlAutopurge: false,
  });

  constructor(
    private readonly options: PreAuthOptions,
    redis: Redis | Cluster | null,
    keyPrefix: string,
  ) {
    this.local = new AddressFailures(options.maxAddresses, options.windowSeconds * 1000);
    // Not insured: the bounded local counters stand in while Redis is down.
    this.limiter =
      redis === null
        ? null
        : new RateLimiterRedis({
            storeClient: redis,
            keyPrefix,
            points: options.limit,
            duration: options.windowSeconds,
            inMemoryBlockOnConsumed: options.limit + 1,
            // Never wait for a reconnect: a client that is not ready fails at once.
            rejectIfRedisNotReady: true,
          });
  }

  /** Sync: the refusal for an address past the pre-auth limit, or null. No I/O. */
  refused(address: string): LimitedResult | null {
    if (this.refusedUntil.size === 0) return null;
    const until = this.refusedUntil.get(addressBucket(address));
    if (until === undefined) return null;
    const ms = until - Date.now();
    return ms > 0 ? { valid: false, error: this.denial(ms) } : null;
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
    const local = this.local;
    if (failure.error.code === "key_missing") return failure;
    const bucket = addressBucket(address);
    const limiter = this.limiter;
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
    const limit = this.options.limit;
    return window.count > limit ? this.refuseAddress(bucket, window.resetAt - Date.now()) : failure;
  }

  /** Addresses counted in this process by the pre-auth limiter (at most `preAuth.maxAddresses`). */
  get addresses(): number {
    return this.local.size;
  }

  private refuseAddress(bucket: string, msBeforeNext: number): LimitedResult {
    const ms = Math.max(msBeforeNext, 1);
    this.refusedUntil.set(bucket, Date.now() + ms, { ttl: ms });
    return { valid: false, error: this.denial(ms) };
  }

  private denial(ms: number): FluxError {
    const preAuth = this.options;
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
}
