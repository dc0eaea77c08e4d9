/**
 * What keeps a flood of well-formed keys that nobody issued away from the database, apart from the
 * cache of known keys (so such a flood evicts no real key):
 * - a filter of the digests that exist (built at start, kept current on issue through the
 *   invalidation bus): a digest it has never seen is surely unknown, refused with no I/O;
 * - a budget of database lookups per second for digests the filter has not seen, so a key issued
 *   on another instance whose bus message has not arrived yet (or was lost) still gets through;
 * - a bounded cache of digests the database said are unknown (the filter's false positives).
 */
import { LRUCache } from "lru-cache";
import type { SqlDriver } from "../database.js";
import type { Logger } from "../options.js";
import type { Invalidation } from "./cache.js";
import { DigestFilter, filterHash, isFilterHash } from "./digest-filter.js";

export interface UnknownKeyOptions {
  /** Use the digest filter. */
  filter: boolean;
  /** Target false-positive rate of the filter at its capacity. */
  falsePositiveRate: number;
  /** Digests remembered as unknown, at most. */
  negativeMax: number;
  negativeTtlMs: number;
  /** Database lookups per second for digests the filter has not seen (a token bucket; burst = rate). */
  lookupsPerSecond: number;
}

/** What `admit` decided for a digest that is not in the key cache. */
export type Admission = "lookup" | "unknown";

const LOAD_BATCH = 50_000;
/** Capacity beyond the keys there are at build, before the filter is rebuilt larger. */
const HEADROOM = 2;
const MIN_CAPACITY = 100_000;

export class UnknownKeys {
  private filter: DigestFilter | null = null;
  /** Hashes added while a rebuild reads the table: replayed into the new filter. */
  private pending: string[] | null = null;
  private readonly negatives: LRUCache<string, true>;
  /** Bumped by every issue: refuses "unknown" fills read before it. */
  private epoch = 0;
  private tokens: number;
  private refilledAt = Date.now();
  private closed = false;
  /** Refused by the filter (past the budget), refused as remembered unknown, budgeted lookups. */
  readonly stats = { refusedByFilter: 0, refusedRemembered: 0, budgetLookups: 0 };

  constructor(
    private readonly options: UnknownKeyOptions,
    private readonly driver: SqlDriver,
    private readonly logger: Logger,
  ) {
    this.negatives = new LRUCache({
      max: options.negativeMax,
      ttl: options.negativeTtlMs,
      ttlAutopurge: false,
    });
    this.tokens = options.lookupsPerSecond;
  }

  /** Builds the filter from the database (before the instance serves: it then refuses unknown keys). */
  async start(): Promise<void> {
    if (!this.options.filter) return;
    // Opened with `migrate: false` on a database not migrated yet (e.g. by `flux migrate`): no
    // filter then, every uncached digest is looked up as without one.
    const [table] = await this.driver.withSession((session) =>
      session.query<{ t: string | null }>("SELECT to_regclass('flux_api_keys')::text AS \"t\""),
    );
    if (!table?.t) return;
    this.filter = await this.build();
  }

  close(): void {
    this.closed = true;
  }

  /** Sync, no I/O: whether an uncached digest is worth a database lookup. */
  admit(digest: string): Admission {
    if (this.negatives.get(digest) !== undefined) {
      this.stats.refusedRemembered++;
      return "unknown";
    }
    const filter = this.filter;
    if (filter === null || filter.has(digest)) return "lookup";
    // Not in the filter: surely unknown, unless it was issued elsewhere and the bus has not said so.
    if (this.take()) {
      this.stats.budgetLookups++;
      return "lookup";
    }
    this.stats.refusedByFilter++;
    // Remembered, so a client retrying the same unknown key does not spend the budget again
    // (any issuance clears this cache, and the filter learns the new key then).
    this.negatives.set(digest, true);
    return "unknown";
  }

  /** Taken before a lookup, handed back with its answer. */
  currentEpoch(): number {
    return this.epoch;
  }

  /** The database's answer for a digest: remembered when unknown, learnt by the filter when found. */
  settle(digest: string, found: boolean, readAt: number): void {
    if (found) {
      if (this.filter !== null && !this.filter.has(digest)) this.add(filterHash(digest));
      return;
    }
    if (readAt === this.epoch) this.negatives.set(digest, true);
  }

  /** Invalidations from this instance and from the bus. */
  apply(change: Invalidation): void {
    if (change.kind === "unknown-keys") {
      this.epoch++;
      this.negatives.clear();
      for (const hash of change.filter ?? []) if (isFilterHash(hash)) this.add(hash);
    } else if (change.kind === "all") {
      // Messages may have been lost (a reconnect): read the table again.
      this.epoch++;
      this.negatives.clear();
      this.rebuild();
    }
  }

  /** For benchmarks and tests: the filter's size and what it holds. */
  get filterInfo(): { bytes: number; count: number; capacity: number; hashes: number } | null {
    const f = this.filter;
    return f === null ? null : { bytes: f.bytes, count: f.count, capacity: f.capacity, hashes: f.hashes };
  }

  get remembered(): number {
    return this.negatives.size;
  }

  private add(hash: string): void {
    const filter = this.filter;
    if (filter === null) return;
    filter.add(hash);
    this.pending?.push(hash);
    if (filter.count > filter.capacity) this.rebuild();
  }

  private take(): boolean {
    const rate = this.options.lookupsPerSecond;
    if (rate <= 0) return false;
    const now = Date.now();
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  /** Replaces the filter by one read afresh, keeping the current one until then. */
  private rebuild(): void {
    if (this.filter === null || this.pending !== null || this.closed) return;
    this.pending = [];
    this.build()
      .then((fresh) => {
        for (const hash of this.pending ?? []) fresh.add(hash);
        this.filter = fresh;
      })
      .catch(() => {
        // Kept: the old filter and the lookup budget still let issued keys in.
        this.logger.warn?.(
          { event: "flux.filter.rebuild_failed" },
          "key filter not rebuilt; kept the old one",
        );
      })
      .finally(() => {
        this.pending = null;
      });
  }

  /** Every digest's filter hash, read in batches by id (an index scan, no large result in memory). */
  private async build(): Promise<DigestFilter> {
    return this.driver.withSession(async (session) => {
      const [row] = await session.query<{ n: number }>('SELECT count(*)::int AS "n" FROM "flux_api_keys"');
      const capacity = Math.max(MIN_CAPACITY, (row?.n ?? 0) * HEADROOM);
      const filter = new DigestFilter(capacity, this.options.falsePositiveRate);
      let after = "";
      for (;;) {
        const rows = await session.query<{ id: string; h: string }>(
          'SELECT "id", substr("digest", 1, 16) AS "h" FROM "flux_api_keys" WHERE "id" > $1 ORDER BY "id" LIMIT $2',
          [after, LOAD_BATCH],
        );
        for (const r of rows) filter.add(r.h);
        if (rows.length < LOAD_BATCH) break;
        after = (rows[rows.length - 1] as { id: string }).id;
      }
      return filter;
    });
  }
}
