/**
 * The hot path: `check()` / `verify()` of a presented key, `release()` of what a denied request
 * consumed, and the one-read-per-digest loader behind them.
 *
 * Order, cheapest first: parse + checksum (no I/O for garbage) -> LRU by digest -> digest filter,
 * lookup budget and negative cache of unknown keys -> one indexed read that also brings org, plan
 * and entitlements -> revoked / expired / grace -> address, scopes and entitlements -> limits ->
 * context. Expected denials are returned as data by `check()`; `verify()` throws them.
 */
import { createHmac, hash } from "node:crypto";
import { FluxError } from "../errors.js";
import { compileTrust } from "../http/client-address.js";
import type { LimitedResult } from "../limits/decide.js";
import type { Runtime } from "../runtime.js";
import { requirementError } from "../scopes.js";
import type { VerificationProbe } from "../telemetry/telemetry.js";
import type { KeyContext } from "../types.js";
import { createKeyParser, type KeyParser, keyLengthOf } from "./format.js";
import { baseContext, type KeyRecord, keyStatus, loadKeyRecord, withRateLimit } from "./record.js";

export interface VerifyOptions {
  /** Units this request consumes from the key's limits and quota. `0` only reads. @default 1 */
  cost?: number;
  /**
   * The client's address (see `clientAddress()`), for the pre-authentication limiter: failed
   * authentications from it are counted and, past `limits.preAuth`, every attempt from it is
   * refused with `rate_limited` before any database read. Omit it to skip that limiter.
   */
  clientAddress?: string;
  /** Scopes the request needs: refused with `scope_denied` (before any limit is consumed). */
  scopes?: readonly string[];
  /** Entitlements the request needs: refused with `entitlement_denied` (nothing consumed). */
  entitlements?: readonly string[];
}

/** The key a denial is about, once it was identified. */
export interface DeniedKey {
  readonly keyId: string;
  readonly orgId: string;
}

/**
 * `key` is set on a denial of an identified key (revoked, expired, address, scope, entitlement,
 * limits): usage records it with its outcome. Absent when no key was identified (missing,
 * malformed, unknown).
 */
export type CheckResult =
  | { valid: true; context: KeyContext }
  | { valid: false; error: FluxError; key?: DeniedKey };

/** Denials returned by `check()` are shared, immutable values: no allocation under attack. */
const DENIALS = Object.fromEntries(
  (
    [
      "key_missing",
      "key_malformed",
      "key_invalid",
      "key_revoked",
      "key_expired",
      "store_unavailable",
      "ip_not_allowed",
      "org_suspended",
    ] as const
  ).map((code) => [
    code,
    Object.freeze({ valid: false as const, error: Object.freeze(new FluxError(code)) }),
  ]),
) as Record<
  | "key_missing"
  | "key_malformed"
  | "key_invalid"
  | "key_revoked"
  | "key_expired"
  | "store_unavailable"
  | "ip_not_allowed"
  | "org_suspended",
  { valid: false; error: FluxError }
>;

/** A shared denial, about this key. */
function identified(
  denial: { valid: false; error: FluxError },
  record: KeyRecord,
): { valid: false; error: FluxError; key: DeniedKey } {
  return { valid: false, error: denial.error, key: record.identity };
}

/** A limit decision as a check result: a refusal names the key. */
function aboutKey(decided: LimitedResult, record: KeyRecord): CheckResult {
  return decided.valid ? decided : { valid: false, error: decided.error, key: record.identity };
}

/** A key of an environment this deployment does not accept (`environments`, e.g. a test key on live). */
const WRONG_ENVIRONMENT = Object.freeze({
  valid: false as const,
  error: Object.freeze(
    new FluxError("key_invalid", { detail: "Keys of this environment are not accepted here." }),
  ),
});

/**
 * Refresh-ahead reads in flight at most: on a busy instance the records due are read a few at a
 * time (PGlite runs them on the event loop's thread), and a record not read before its TTL is read
 * as any missing key.
 */
const REFRESH_AHEAD_READS = 4;

/**
 * Verification of presented keys; `Keys` (keys/keys.ts) extends it, so `flux.keys.check()` is
 * this method itself, with no delegation on the hot path.
 */
export class KeyVerification {
  private readonly parse: KeyParser;
  /** Length of every well-formed key of this prefix. */
  private readonly keyLength: number;
  private readonly loading = new Map<string, Promise<KeyRecord | null>>();
  /** Background reads of records still cached (refresh-ahead) in flight. */
  private refreshing = 0;

  constructor(protected readonly rt: Runtime) {
    this.parse = createKeyParser(rt.options.keyPrefix);
    this.keyLength = keyLengthOf(rt.options.keyPrefix);
  }

  /** Verifies a presented key and returns its context; throws a FluxError on any denial. */
  async verify(secret: unknown, options?: VerifyOptions): Promise<KeyContext> {
    const result = await this.check(secret, options);
    if (result.valid) return result.context;
    throw new FluxError(result.error.code, {
      detail: result.error.detail,
      extensions: result.error.extensions,
    });
  }

  /** Like `verify()`, without throwing: `{ valid: true, context } | { valid: false, error }`. */
  check(secret: unknown, options?: VerifyOptions): Promise<CheckResult> {
    try {
      const result = this.checkNow(secret, options);
      return result instanceof Promise ? result : Promise.resolve(result);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * @internal `check()` for the HTTP adapters: the result itself when it is known in this turn (a
   * cached key on in-process limits: no promise, no microtask between the framework's hook and
   * the handler), else a promise of it. May throw where `check()` would reject.
   */
  checkNow(secret: unknown, options?: VerifyOptions): CheckResult | Promise<CheckResult> {
    const telemetry = this.rt.telemetry;
    if (!telemetry.enabled) return this.checkKey(secret, options, null);
    const probe = telemetry.startVerification();
    let checked: CheckResult | Promise<CheckResult>;
    try {
      checked = this.checkKey(secret, options, probe);
    } catch (error) {
      telemetry.failedVerification(probe, error);
      throw error;
    }
    if (!(checked instanceof Promise)) {
      telemetry.endVerification(probe, checked);
      return checked;
    }
    return checked.then(
      (result) => {
        telemetry.endVerification(probe, result);
        return result;
      },
      (error: unknown) => {
        telemetry.failedVerification(probe, error);
        throw error;
      },
    );
  }

  /** Up to the record: the steps that need no I/O, then the record from the cache or one read. */
  private checkKey(
    secret: unknown,
    options: VerifyOptions | undefined,
    probe: VerificationProbe | null,
  ): CheckResult | Promise<CheckResult> {
    const address = options?.clientAddress;
    if (address !== undefined) {
      const refused = this.rt.limits.refusedAddress(address);
      if (refused !== null) return refused;
    }
    // A cached known key is its own proof of format: only an issued key hashes to a cached digest,
    // so its checksum was right. Anything else is parsed (format, checksum) before any I/O.
    const digest =
      typeof secret === "string" && secret.length === this.keyLength ? this.digest(secret) : undefined;
    let record: KeyRecord | null | undefined = digest === undefined ? undefined : this.rt.cache.get(digest);
    if (probe !== null && record !== undefined) probe.lookup = "hit";
    if (record === undefined) {
      const parsed = this.parse(secret);
      if (!parsed.ok) return this.failed(DENIALS[parsed.code], address);
      if (!this.rt.options.environments.has(parsed.environment))
        return this.failed(WRONG_ENVIRONMENT, address);
    } else if (!this.rt.options.environments.has(record.environment)) {
      return this.failed(WRONG_ENVIRONMENT, address);
    }
    if (options?.cost !== undefined && !(Number.isInteger(options.cost) && options.cost >= 0)) {
      return {
        valid: false,
        error: new FluxError("invalid_request", { detail: "cost must be a non-negative integer." }),
      };
    }
    // Not cached: unknown to the digest filter (past the lookup budget) or remembered as unknown
    // means no I/O. A well-formed key has the exact length, so its digest was computed above.
    // A request that finds the digest's read in flight joins it without spending the budget.
    if (
      record === undefined &&
      !this.loading.has(digest as string) &&
      this.rt.unknownKeys.admit(digest as string) === "unknown"
    ) {
      record = null;
      if (probe !== null) probe.lookup = "negative";
    }
    if (record === undefined) {
      if (probe !== null) probe.lookup = "miss";
      return this.loadThenCheck(digest as string, options, probe);
    }
    if (record !== null && !this.rt.bus.trusts(record.readAt)) {
      return this.reloadThenCheck(digest as string, record, options, probe);
    }
    return this.checkRecord(record, options, probe);
  }

  /** A key the cache does not hold: one read (shared with the requests missing it too). */
  private async loadThenCheck(
    digest: string,
    options: VerifyOptions | undefined,
    probe: VerificationProbe | null,
  ): Promise<CheckResult> {
    let record: KeyRecord | null;
    try {
      record = await this.load(digest);
    } catch {
      return DENIALS.store_unavailable;
    }
    return this.checkRecord(record, options, probe);
  }

  /**
   * This instance cannot prove it hears every change: the record is read again (one read per key
   * at a time). If the database cannot be read either, no change can commit.
   */
  private async reloadThenCheck(
    digest: string,
    cached: KeyRecord,
    options: VerifyOptions | undefined,
    probe: VerificationProbe | null,
  ): Promise<CheckResult> {
    let record: KeyRecord | null = cached;
    try {
      record = await this.load(digest);
    } catch {
      if (this.rt.options.invalidation.whenDatabaseDown === "refuse") return DENIALS.store_unavailable;
    }
    return this.checkRecord(record, options, probe);
  }

  /** From the record on: status, address, scopes and entitlements, then the limits. */
  private checkRecord(
    record: KeyRecord | null,
    options: VerifyOptions | undefined,
    probe: VerificationProbe | null,
  ): CheckResult | Promise<CheckResult> {
    const address = options?.clientAddress;
    if (record === null) return this.failed(DENIALS.key_invalid, address);
    if (probe !== null) probe.record = record;
    const now = this.rt.now();
    if (now >= record.refreshAt && this.refreshing < REFRESH_AHEAD_READS) this.refreshAhead(record);
    // The same status rule as listings and the portal: revoked, then expired (expiry or grace end).
    const status = keyStatus(record, now);
    if (status === "revoked") return this.failed(identified(DENIALS.key_revoked, record), address);
    if (status === "expired") return this.failed(identified(DENIALS.key_expired, record), address);
    // A valid key of a suspended org: not a failed authentication of the client address.
    if (record.orgSuspended) return identified(DENIALS.org_suspended, record);
    if (record.allowFrom.length > 0) {
      record.allowed ??= compileTrust(record.allowFrom);
      // No address to check (core called without one) is refused too: the rule fails closed.
      if (address === undefined || !record.allowed(address, 0)) {
        return this.failed(identified(DENIALS.ip_not_allowed, record), address);
      }
    }
    const base = baseContext(record, now);
    // A request the key is not allowed to make is refused before it consumes anything.
    if (options?.scopes !== undefined || options?.entitlements !== undefined) {
      const denied = requirementError(base, options.scopes, options.entitlements);
      if (denied !== null) return { valid: false, error: denied, key: record.identity };
    }
    // Keys without limits never touch the limiter.
    const limits = this.rt.limits.applicable(record);
    if (limits === null) return { valid: true, context: withRateLimit(base, null) };
    const decided = this.rt.limits.decide(limits, options?.cost ?? 1, base, now);
    if (!(decided instanceof Promise)) return aboutKey(decided, record);
    return decided.then((result) => aboutKey(result, record));
  }

  /** A failed authentication, counted against the client address when there is one. */
  private failed(
    denial: CheckResult & { valid: false },
    address: string | undefined,
  ): CheckResult | Promise<CheckResult> {
    return address === undefined ? denial : this.rt.limits.authFailed(address, denial);
  }

  /**
   * Gives back what a verified request consumed, when it is denied after verification (e.g. by a
   * route-level scope guard that runs later). A no-op for keys without limits, or whose record
   * has left the cache since (then the units stay consumed).
   */
  async release(context: KeyContext, cost = 1): Promise<void> {
    if (context.rateLimit === null || !(Number.isInteger(cost) && cost > 0)) return;
    const record = this.rt.cache.recordOf(context.keyId);
    if (record === undefined) return;
    const bound = this.rt.limits.applicable(record);
    if (bound !== null) await this.rt.limits.giveBack(bound, cost);
  }

  /**
   * Refresh-ahead: a key still in use late in its cache entry's life is read again in the
   * background while the cached record (younger than the TTL) answers, so its requests never wait
   * for the database when the TTL runs out, and the TTL still bounds how old a served record is.
   * Each record starts one such read; a failed one leaves the entry to expire as any other.
   */
  private refreshAhead(record: KeyRecord): void {
    record.refreshAt = Number.POSITIVE_INFINITY;
    this.refreshing++;
    this.load(record.digest)
      .then(
        (fresh) => {
          // The key's row is gone: not served from memory any longer.
          if (fresh === null) this.rt.cache.drop(record.digest, record);
        },
        () => {},
      )
      .finally(() => this.refreshing--);
  }

  /** One database read per digest at a time, however many requests miss the cache together. */
  private load(digest: string): Promise<KeyRecord | null> {
    const pending = this.loading.get(digest);
    if (pending) return pending;
    const epoch = this.rt.cache.currentEpoch();
    const unknownEpoch = this.rt.unknownKeys.currentEpoch();
    const promise = loadKeyRecord(this.rt.driver, digest)
      .then((record) => {
        if (record !== null) {
          // Read again from a point between 70 % and 90 % of the TTL, drawn per record: keys read
          // together (an instance's start, a busy minute) are not all read again in one burst.
          record.refreshAt = this.rt.now() + this.rt.options.cache.ttlMs * (0.7 + 0.2 * Math.random());
          // Unknown digests go to their own bounded cache, never among the known keys.
          this.rt.cache.set(digest, record, epoch);
        }
        this.rt.unknownKeys.settle(digest, record !== null, unknownEpoch);
        return record;
      })
      .finally(() => this.loading.delete(digest));
    this.loading.set(digest, promise);
    return promise;
  }

  /** @internal The instance clock. */
  now(): number {
    return this.rt.now();
  }

  /** @internal SHA-256 of the secret, or HMAC-SHA-256 with the pepper. */
  digest(secret: string): string {
    const pepper = this.rt.options.pepper;
    // One-shot hash: no Hash object per request (bench/RESULTS.md, "Why the hot path is written as it is").
    if (pepper === undefined) return hash("sha256", secret, "hex");
    return createHmac("sha256", pepper).update(secret).digest("hex");
  }
}
