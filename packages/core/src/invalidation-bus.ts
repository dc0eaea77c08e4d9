/**
 * Carries cache invalidations to every instance. On PostgreSQL it is `PostgresBus`
 * (LISTEN/NOTIFY, see postgres-bus.ts); on PGlite, which only one process can open, changes are
 * applied in process and the cache is always trusted.
 */
import type { Invalidation } from "./keys/cache.js";

export interface InvalidationBus {
  /** Applies a committed change on this instance (other instances hear it from the database). */
  publish(change: Invalidation): Promise<void>;
  /**
   * Whether a cached record read at `readAt` (`performance.now()`) may be served without reading
   * the database again: always while the bus is heard, else for `maxStaleness` after the read.
   */
  trusts(readAt: number): boolean;
  /** Whether every committed change is known to reach this instance now. */
  hearing(): Promise<boolean>;
  close(): Promise<void>;
}

export function localBus(apply: (change: Invalidation) => void): InvalidationBus {
  return {
    publish: async (change) => apply(change),
    trusts: () => true,
    hearing: async () => true,
    close: async () => {},
  };
}
