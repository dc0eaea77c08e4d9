/**
 * In-process cache of the verification records of known keys, by digest: a bounded LRU with a
 * TTL. Unknown digests live apart, in their own bounded cache (keys/unknown-keys.ts), so a flood
 * of random keys never evicts a known one. Changes drop entries here at once, and on other
 * instances through the invalidation bus.
 */
import { LRUCache } from "lru-cache";
import type { KeyRecord } from "./record.js";

export interface KeyCacheOptions {
  max: number;
  ttlMs: number;
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

type RecordChange = Exclude<Invalidation, { kind: "unknown-keys" }>;

/** Invalidations remembered for fills in flight; a read outliving more of them is refused. */
const RECENT_MAX = 256;

export interface CacheEpoch {
  epoch: number;
}

export class KeyCache {
  private readonly lru: LRUCache<string, KeyRecord>;
  private readonly digestByKeyId = new Map<string, string>();
  /**
   * Bumped by every invalidation. A database read that started before an invalidation of what it
   * read (its key, org or plan, or everything) must not fill the cache with it: `set` looks
   * through the invalidations since the read's epoch (`recent`, the last RECENT_MAX of them) and
   * refuses the fill when one concerns the record, or when they are no longer all known.
   */
  private epoch = 0;
  private readonly recent: RecordChange[] = [];

  constructor(options: KeyCacheOptions) {
    this.lru = new LRUCache({
      max: options.max,
      ttl: options.ttlMs,
      ttlAutopurge: false,
      // Time checks go through performance.now() once per get; stale entries are dropped lazily.
      dispose: (value, digest) => {
        if (this.digestByKeyId.get(value.id) === digest) this.digestByKeyId.delete(value.id);
      },
    });
  }

  /** `undefined` when not cached. */
  get(digest: string): KeyRecord | undefined {
    return this.lru.get(digest);
  }

  /** The cached record of a key id, without refreshing its recency. */
  recordOf(keyId: string): KeyRecord | undefined {
    const digest = this.digestByKeyId.get(keyId);
    return digest === undefined ? undefined : this.lru.peek(digest);
  }

  /** Taken before a database read and handed back to `set` with what it read. */
  currentEpoch(): CacheEpoch {
    return { epoch: this.epoch };
  }

  set(digest: string, record: KeyRecord, readAt: CacheEpoch): void {
    if (readAt.epoch !== this.epoch && this.invalidatedSince(record, readAt.epoch)) return;
    this.lru.set(digest, record);
    this.digestByKeyId.set(record.id, digest);
  }

  /** Forgets `record` if it is still what the cache holds for `digest` (its key's row is gone). */
  drop(digest: string, record: KeyRecord): void {
    if (this.lru.peek(digest) === record) this.lru.delete(digest);
  }

  private invalidatedSince(record: KeyRecord, epoch: number): boolean {
    const missed = this.epoch - epoch;
    if (missed > this.recent.length) return true;
    for (let i = this.recent.length - missed; i < this.recent.length; i++) {
      const change = this.recent[i] as RecordChange;
      if (change.kind === "all") return true;
      if (change.kind === "key" && change.id === record.id) return true;
      if (change.kind === "org" && change.id === record.orgId) return true;
      if (change.kind === "plan" && change.id === record.plan?.id) return true;
    }
    return false;
  }

  apply(change: Invalidation): void {
    // Issuances concern unknown digests only (keys/unknown-keys.ts); no known record changes.
    if (change.kind === "unknown-keys") return;
    this.epoch++;
    this.recent.push(change);
    if (this.recent.length > RECENT_MAX) this.recent.shift();
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
