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
  /**
   * A key was issued: forget every "unknown key" entry, on every instance. `filter`: the issued
   * digests' `filterHash` (64 bits, never the digest), for every instance's digest filter.
   */
  | { kind: "unknown-keys"; filter?: string[] }
  | { kind: "all" };

const NEGATIVE = Symbol("unknown key");
/** Invalidations remembered for fills in flight; a read outliving more of them is refused. */
const RECENT_MAX = 256;

export interface CacheEpoch {
  epoch: number;
  unknownEpoch: number;
}

export class KeyCache {
  private readonly lru: LRUCache<string, KeyRecord | typeof NEGATIVE>;
  private readonly digestByKeyId = new Map<string, string>();
  private readonly negativeTtlMs: number;
  /**
   * Bumped by every invalidation. A database read that started before an invalidation of what it
   * read (its key, org or plan, or everything) must not fill the cache with it: `set` looks
   * through the invalidations since the read's epoch (`recent`, the last RECENT_MAX of them) and
   * refuses the fill when one concerns the record, or when they are no longer all known.
   */
  private epoch = 0;
  private readonly recent: Array<Exclude<Invalidation, { kind: "unknown-keys" }>> = [];
  /** Bumped when keys are issued: refuses "unknown" fills read before, but not known records. */
  private unknownEpoch = 0;

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

  /** The cached record of a key id, without refreshing its recency. */
  recordOf(keyId: string): KeyRecord | undefined {
    const digest = this.digestByKeyId.get(keyId);
    if (digest === undefined) return undefined;
    const value = this.lru.peek(digest);
    return value === undefined || value === NEGATIVE ? undefined : value;
  }

  /** Taken before a database read and handed back to `set` with what it read. */
  currentEpoch(): CacheEpoch {
    return { epoch: this.epoch, unknownEpoch: this.unknownEpoch };
  }

  set(digest: string, record: CachedRecord, readAt: CacheEpoch): void {
    if (readAt.epoch !== this.epoch && (record === null || this.invalidatedSince(record, readAt.epoch)))
      return;
    if (record === null) {
      if (readAt.unknownEpoch !== this.unknownEpoch) return;
      this.lru.set(digest, NEGATIVE, { ttl: this.negativeTtlMs });
    } else {
      this.lru.set(digest, record);
      this.digestByKeyId.set(record.id, digest);
    }
  }

  private invalidatedSince(record: KeyRecord, epoch: number): boolean {
    const missed = this.epoch - epoch;
    if (missed > this.recent.length) return true;
    for (let i = this.recent.length - missed; i < this.recent.length; i++) {
      const change = this.recent[i] as Exclude<Invalidation, { kind: "unknown-keys" }>;
      if (change.kind === "all") return true;
      if (change.kind === "key" && change.id === record.id) return true;
      if (change.kind === "org" && change.id === record.orgId) return true;
      if (change.kind === "plan" && change.id === record.plan?.id) return true;
    }
    return false;
  }

  apply(change: Invalidation): void {
    if (change.kind === "unknown-keys") this.unknownEpoch++;
    else {
      this.epoch++;
      this.recent.push(change);
      if (this.recent.length > RECENT_MAX) this.recent.shift();
    }
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
      case "unknown-keys": {
        const negatives: string[] = [];
        for (const [digest, value] of this.lru.entries()) if (value === NEGATIVE) negatives.push(digest);
        for (const digest of negatives) this.lru.delete(digest);
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
