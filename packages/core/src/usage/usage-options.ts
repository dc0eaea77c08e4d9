/** The `usage` options of `createFlux`: one schema holds their names, defaults and checks. */
import type { z } from "zod";
import { duration, integer, section } from "../options-schema.js";

const HOUR = { ms: 3_600_000 } as const;
const positive = "must be a positive integer.";

const usageSection = section({
  /**
   * How often buffered usage is written to the database. Also the most a crash (a process that
   * dies without `close()`) can lose: the calls of at most one interval.
   * @default '5s'
   */
  flushInterval: duration("5s", { ms: 10, error: "must be at least 10ms." }).prefault("5s"),
  /**
   * Buckets held in memory at most, counting both those waiting for the next flush and those
   * kept for a retry after a failed one. Calls that would need a new bucket past this bound are
   * dropped and counted in `flux.usage.stats().dropped`; calls into existing buckets still count.
   * @default 100000
   */
  maxBufferedBuckets: integer(positive).prefault(100_000),
  /**
   * Flush early (without waiting for the interval) once this many buckets are buffered.
   * @default 10000 (or `maxBufferedBuckets` when that is lower)
   */
  flushAt: integer(positive).optional(),
  /** Buckets written per statement; a flush writes as many batches as it needs. @default 5000 */
  batchSize: integer(positive).prefault(5_000),
  /**
   * Age after which minute buckets are summed into hourly ones (minute resolution is lost for
   * them, totals are not). `null` keeps minute buckets until they are pruned.
   * @default '7d'
   */
  rollupAfter: duration("5s", { ...HOUR, error: "must be at least '1h'." })
    .nullable()
    .prefault("7d"),
  /** Age after which usage is deleted. `null` keeps it until `flux.usage.prune()`. @default null */
  retention: duration("5s", { ...HOUR, error: "must be at least '1h'." })
    .nullable()
    .prefault(null),
  /** How often this instance runs rollup and retention (both are safe from many instances). @default '1h' */
  maintenanceInterval: duration("5s").prefault("1h"),
});

export type UsageOptions = z.input<typeof usageSection>;

export const usageOptionsSchema = usageSection.prefault({}).transform((usage) => ({
  flushIntervalMs: usage.flushInterval,
  maxBufferedBuckets: usage.maxBufferedBuckets,
  flushAt: usage.flushAt ?? Math.min(10_000, usage.maxBufferedBuckets),
  batchSize: usage.batchSize,
  rollupAfterMs: usage.rollupAfter,
  retentionMs: usage.retention,
  maintenanceIntervalMs: usage.maintenanceInterval,
}));

export type ResolvedUsageOptions = z.output<typeof usageOptionsSchema>;
