/** The `usage` options of `createFlux`, their defaults, and their resolution. */
import { type Duration, toMs } from "../duration.js";
import { FluxConfigError } from "../errors.js";

export interface UsageOptions {
  /**
   * How often buffered usage is written to the database. Also the most a crash (a process that
   * dies without `close()`) can lose: the calls of at most one interval.
   * @default '5s'
   */
  flushInterval?: Duration;
  /**
   * Buckets held in memory at most, counting both those waiting for the next flush and those
   * kept for a retry after a failed one. Calls that would need a new bucket past this bound are
   * dropped and counted in `flux.usage.stats().dropped`; calls into existing buckets still count.
   * @default 100000
   */
  maxBufferedBuckets?: number;
  /** Flush early (without waiting for the interval) once this many buckets are buffered. @default 10000 */
  flushAt?: number;
  /** Buckets written per statement; a flush writes as many batches as it needs. @default 5000 */
  batchSize?: number;
  /**
   * Age after which minute buckets are summed into hourly ones (minute resolution is lost for
   * them, totals are not). `null` keeps minute buckets until they are pruned.
   * @default '7d'
   */
  rollupAfter?: Duration | null;
  /** Age after which usage is deleted. `null` keeps it until `flux.usage.prune()`. @default null */
  retention?: Duration | null;
  /** How often this instance runs rollup and retention (both are safe from many instances). @default '1h' */
  maintenanceInterval?: Duration;
}

export interface ResolvedUsageOptions {
  flushIntervalMs: number;
  maxBufferedBuckets: number;
  flushAt: number;
  batchSize: number;
  rollupAfterMs: number | null;
  retentionMs: number | null;
  maintenanceIntervalMs: number;
}

const KNOWN = new Set([
  "flushInterval",
  "maxBufferedBuckets",
  "flushAt",
  "batchSize",
  "rollupAfter",
  "retention",
  "maintenanceInterval",
]);

const HOUR_MS = 3_600_000;

export function resolveUsageOptions(options: UsageOptions = {}): ResolvedUsageOptions {
  for (const name of Object.keys(options)) {
    if (!KNOWN.has(name)) {
      throw new FluxConfigError("unknown_option", `Unknown option 'usage.${name}' for createFlux().`);
    }
  }
  const flushIntervalMs = durationMs(options.flushInterval ?? "5s", "usage.flushInterval");
  if (flushIntervalMs < 10) {
    throw new FluxConfigError("invalid_option", "usage.flushInterval must be at least 10ms.");
  }
  const maxBufferedBuckets = positiveInteger(
    options.maxBufferedBuckets ?? 100_000,
    "usage.maxBufferedBuckets",
  );
  const flushAt = positiveInteger(options.flushAt ?? Math.min(10_000, maxBufferedBuckets), "usage.flushAt");
  const batchSize = positiveInteger(options.batchSize ?? 5_000, "usage.batchSize");
  const rollupAfter = options.rollupAfter === undefined ? "7d" : options.rollupAfter;
  const rollupAfterMs = rollupAfter === null ? null : durationMs(rollupAfter, "usage.rollupAfter");
  if (rollupAfterMs !== null && rollupAfterMs < HOUR_MS) {
    throw new FluxConfigError("invalid_option", "usage.rollupAfter must be at least '1h'.");
  }
  const retentionMs =
    options.retention === undefined || options.retention === null
      ? null
      : durationMs(options.retention, "usage.retention");
  if (retentionMs !== null && retentionMs < HOUR_MS) {
    throw new FluxConfigError("invalid_option", "usage.retention must be at least '1h'.");
  }
  return {
    flushIntervalMs,
    maxBufferedBuckets,
    flushAt,
    batchSize,
    rollupAfterMs,
    retentionMs,
    maintenanceIntervalMs: durationMs(options.maintenanceInterval ?? "1h", "usage.maintenanceInterval"),
  };
}

function durationMs(value: Duration, name: string): number {
  try {
    return toMs(value, name);
  } catch {
    throw new FluxConfigError("invalid_option", `${name} must be a duration such as '5s'.`);
  }
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new FluxConfigError("invalid_option", `${name} must be a positive integer.`);
  }
  return value;
}
