/**
 * In-process cache of verification records by key digest: a bounded LRU with a TTL for known keys
 * and a shorter one for unknown digests (so a flood of random valid-looking keys does not reach the
 * database every time). Changes drop entries here at once, and on other instances through the
 * invalidation bus.
 */
import { LRUCache } from "lru-cache";
import type { KeyRecord } from "./key-record.js";

/** `null` caches "no such key". */
export type CachedRecord = KeyRecord | null;

export interface KeyCacheOptions {
  max: number;
  ttlMs: number;
  negativeTtlMs: number;
}

export type Invalidation =
  | { kind: "key"; id: string }
  | { kind: "org"; id: string }
  | { kind: "plan"; id: string }
  | { kind: "all" };

const NEGATIVE = Symbol("unknown key");

export class KeyCache {
  private readonly lru: LRUCache<string, KeyRecord | typeof NEGATIVE>;
  private readonly digestByKeyId = new Map<string, string>();
  private readonly negativeTtlMs: number;
  /**
   * Bumped by every invalidation. A database read that started before an invalidation must not
   * fill the cache with what it read: `set` refuses records read under an older epoch.
   */
  private epoch = 0;

  constructor(options: KeyCacheOptions) {
    this.negativeTtlMs = options.negativeTtlMs;
    this.lru = new LRUCache({
      max: options.max,
      ttl: options.ttlMs,
      ttlAutopurge: false,
      // Time checks go through performance.now() once per get; stale entries are dropped lazily.
      dispose: (value, digest) => {
        if (value !== NEGATIVE && this.digestByKeyId.get(value.id) === digest) {
          this.digestByKeyId.delete(value.id);
        }
      },
    });
  }

  /** `undefined` when not cached; `null` when cached as unknown. */
  get(digest: string): CachedRecord | undefined {
    const value = this.lru.get(digest);
    if (value === undefined) return undefined;
    return value === NEGATIVE ? null : value;
  }

  currentEpoch(): number {
    return this.epoch;
  }

  set(digest: string, record: CachedRecord, readAtEpoch: number): void {
    if (readAtEpoch !== this.epoch) return;
    if (record === null) {
      this.lru.set(digest, NEGATIVE, { ttl: this.negativeTtlMs });
    } else {
      this.lru.set(digest, record);
      this.digestByKeyId.set(record.id, digest);
    }
  }

  /** Forgets a digest, e.g. a "no such key" entry for a key that now exists. */
  forgetDigest(digest: string): void {
    this.epoch++;
    this.lru.delete(digest);
  }

  apply(change: Invalidation): void {
    this.epoch++;
    switch (change.kind) {
      case "key": {
        const digest = this.digestByKeyId.get(change.id);
        if (digest !== undefined) this.lru.delete(digest);
        return;
      }
      case "org":
      case "plan": {
        const stale: string[] = [];
        for (const [digest, value] of this.lru.entries()) {
          if (value === NEGATIVE) continue;
          if (change.kind === "org" ? value.orgId === change.id : value.plan?.id === change.id) {
            stale.push(digest);
          }
        }
        for (const digest of stale) this.lru.delete(digest);
        return;
      }
      case "all":
        this.lru.clear();
        return;
    }
  }

  get size(): number {
    return this.lru.size;
  }
}
