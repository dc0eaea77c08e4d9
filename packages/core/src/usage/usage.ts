/**
 * `flux.usage`: who called what, when, how often, with what result.
 *
 * - `record()` is synchronous and does no I/O: it folds the call into a per-minute bucket keyed by
 *   (key, minute, method + endpoint, status class, outcome) in memory. Every call whose key was
 *   identified is recorded, refusals included (`outcome`); requests refused before a key was
 *   identified are only counted per instance (`stats().unidentified`).
 * - A timer flushes every `usage.flushInterval` (and early past `usage.flushAt` buckets): buckets
 *   become batches of upserts that add, one statement per batch. A failed batch keeps its id and
 *   contents and is retried first on the next flush; the database remembers applied batch ids, so
 *   a batch whose outcome was unknown is never counted twice.
 * - The buffer is bounded (`usage.maxBufferedBuckets`); past it, calls needing a new bucket are
 *   dropped and counted. `close()` flushes. A crash loses at most the last flush interval (plus
 *   whatever was still waiting for a retry if the database was down).
 *
 * One file past ~400 lines on purpose: the buffer, its flushes and retries, and the maintenance
 * loop share one state (what is buffered, in flight, waiting for a retry), read best in one place;
 * parsing, SQL and bucketing are in usage-query.ts, usage-store.ts and usage-recorder.ts.
 */

import { guard, type SqlDriver } from "../database.js";
import { type Duration, toMs } from "../duration.js";
import { FluxError, type FluxErrorCode } from "../errors.js";
import type { Logger } from "../options.js";
import type { Telemetry } from "../telemetry/telemetry.js";
import type { ResolvedUsageOptions } from "./usage-options.js";
import type { UnidentifiedCounts, UsageOutcome } from "./usage-outcomes.js";
import { parseTopQuery, parseUsageQuery, type UsageQuery, type UsageTopQuery } from "./usage-query.js";
import { type UsageBatch, type UsageRecord, UsageRecorder } from "./usage-recorder.js";
import {
  type AggregateRow,
  aggregate,
  deleteBefore,
  dropPartitions,
  ensurePartitions,
  forgetBatches,
  GRANULARITY_MS,
  type Granularity,
  type GroupDimension,
  monthOf,
  monthsAhead,
  rollUp,
  topGroups,
  writeBatch,
} from "./usage-store.js";

export type { UnidentifiedCounts, UsageOutcome } from "./usage-outcomes.js";
export { USAGE_OUTCOMES } from "./usage-outcomes.js";
export type { UsageQuery, UsageTopQuery } from "./usage-query.js";
export type { UsageRecord } from "./usage-recorder.js";
export type { Granularity, GroupDimension } from "./usage-store.js";

export type StatusClass = "1xx" | "2xx" | "3xx" | "4xx" | "5xx";

export interface UsageTotals {
  /** Every identified call, refused ones included (filter or group by `outcome` to tell them apart). */
  calls: number;
  /** Calls answered with a 4xx or 5xx status (group by `status` to tell them apart). */
  errors: number;
  /** null when there were no calls. */
  latencyAvgMs: number | null;
  latencyMaxMs: number | null;
}

export interface UsagePoint extends UsageTotals {
  /** Start of the minute, hour or day (UTC). */
  at: Date;
}

/** The values of the `groupBy` dimensions that identify one series. */
export interface UsageGroup {
  keyId?: string;
  method?: string;
  endpoint?: string;
  status?: StatusClass;
  outcome?: UsageOutcome;
}

export interface UsageSeries {
  group: UsageGroup;
  totals: UsageTotals;
  /** One point per bucket from `from` to `to`, zero-filled. */
  points: UsagePoint[];
}

export interface UsageQueryResult {
  granularity: Granularity;
  /** `from` aligned down and `to` aligned up to the granularity (UTC). */
  from: Date;
  to: Date;
  /**
   * Without `groupBy`: exactly one series. With it: one per group that had calls, most calls
   * first.
   */
  series: UsageSeries[];
}

export interface UsageTopEntry extends UsageTotals {
  keyId?: string;
  method?: string;
  endpoint?: string;
}

export interface UsageFlushReport {
  /** Buckets and calls written by this flush. */
  buckets: number;
  calls: number;
}

export interface UsageStats {
  /** Buckets held in memory: waiting for the next flush, or kept for a retry. */
  buffered: number;
  /** Calls those buckets hold. */
  bufferedCalls: number;
  /** Calls written to the database since start. */
  flushed: number;
  /** Buckets written to the database since start (one bucket may be written in several flushes). */
  flushedBuckets: number;
  /** Calls lost: the buffer was full, a batch the database refused as invalid, or recorded after close(). */
  dropped: number;
  /** Calls refused by record() as malformed (never thrown on the request path). */
  rejected: number;
  /** Requests the adapters refused before a key was identified, by reason (this instance, since start). */
  unidentified: UnidentifiedCounts;
  /** Flushes that wrote everything / that failed and left batches for a retry. */
  flushes: number;
  failedFlushes: number;
  lastFlushAt: Date | null;
  /** The most recent failure; cleared by the next flush that writes everything. */
  lastError: { code: FluxErrorCode; message: string; at: Date } | null;
}

/** Applied batch ids are kept this long (database time). */
const BATCH_ID_TTL_MS = 7 * 86_400_000;
const HOUR_MS = 3_600_000;
const STATUS_CLASSES: readonly StatusClass[] = ["1xx", "1xx", "2xx", "3xx", "4xx", "5xx"];

export class Usage {
  private readonly recorder: UsageRecorder;
  private chain: Promise<unknown> = Promise.resolve();
  private flushTimer: NodeJS.Timeout | null = null;
  private maintenanceTimer: NodeJS.Timeout | null = null;
  private flushRequested = false;
  private flushing = false;
  private closed = false;
  private lastFailureAt = Number.NEGATIVE_INFINITY;
  /** Month starts (UTC ms) whose partitions this instance knows exist (migration 0014). */
  private readonly partitioned = new Set<number>();
  private readonly unidentified: UnidentifiedCounts = { missing: 0, malformed: 0, unknown: 0, other: 0 };
  private readonly counters = {
    flushed: 0,
    flushedBuckets: 0,
    flushes: 0,
    failedFlushes: 0,
    lastFlushAt: null as Date | null,
    lastError: null as UsageStats["lastError"],
  };

  constructor(
    private readonly driver: SqlDriver,
    private readonly options: ResolvedUsageOptions,
    private readonly now: () => number,
    private readonly logger: Logger = {},
    private readonly telemetry?: Telemetry,
  ) {
    this.recorder = new UsageRecorder(options.maxBufferedBuckets, now);
    telemetry?.observe("usageBufferSize", () => this.recorder.bufferedBuckets);
    telemetry?.observe("usageDropped", () => this.recorder.dropped);
  }

  /**
   * Counts one call. Synchronous, no I/O. Returns false when the call was not counted: malformed
   * input (`stats().rejected`), a full buffer or a closed instance (`stats().dropped`). Never throws.
   */
  record(call: UsageRecord): boolean {
    if (this.closed) {
      this.recorder.dropped++;
      return false;
    }
    const counted = this.recorder.record(call);
    if (counted && !this.flushRequested && this.recorder.liveBuckets >= this.options.flushAt) {
      this.requestFlush();
    }
    return counted;
  }

  /**
   * Counts a request refused before its key was identified (no key, malformed, unknown…): one
   * counter per reason for the instance, nothing per key. Synchronous, no allocation.
   */
  countUnidentified(code: FluxErrorCode): void {
    if (code === "key_missing") this.unidentified.missing++;
    else if (code === "key_malformed") this.unidentified.malformed++;
    else if (code === "key_invalid") this.unidentified.unknown++;
    else this.unidentified.other++;
  }

  /**
   * Writes everything buffered now (retrying failed batches first). Resolves once all of it is in
   * the database; rejects with `store_unavailable` when some could not be written, which then
   * stays buffered for the next flush.
   */
  flush(): Promise<UsageFlushReport> {
    const run = this.chain.then(() => this.flushNow());
    this.chain = run.catch(() => {});
    return run;
  }

  stats(): UsageStats {
    return {
      buffered: this.recorder.bufferedBuckets,
      bufferedCalls: this.recorder.bufferedCalls,
      flushed: this.counters.flushed,
      flushedBuckets: this.counters.flushedBuckets,
      dropped: this.recorder.dropped,
      rejected: this.recorder.rejected,
      unidentified: { ...this.unidentified },
      flushes: this.counters.flushes,
      failedFlushes: this.counters.failedFlushes,
      lastFlushAt: this.counters.lastFlushAt,
      lastError: this.counters.lastError,
    };
  }

  /** Time series of what was flushed, zero-filled; `invalid_request` for bad input. */
  async query(input: UsageQuery): Promise<UsageQueryResult> {
    const query = parseUsageQuery(input);
    const step = GRANULARITY_MS[query.granularity];
    const from = Math.floor(query.from.getTime() / step) * step;
    const to = Math.ceil(query.to.getTime() / step) * step;
    const buckets = (to - from) / step;
    if (buckets > MAX_POINTS) {
      throw new FluxError("invalid_request", {
        detail: `The range holds ${buckets} ${query.granularity}s; at most ${MAX_POINTS} per query.`,
        extensions: { field: "query.to" },
      });
    }
    const groupBy = [...new Set(query.groupBy ?? [])].sort() as GroupDimension[];
    const rows = await guard(() =>
      aggregate(
        this.driver,
        {
          orgId: query.orgId,
          keyId: query.keyId,
          method: query.method,
          endpoint: query.endpoint,
          outcome: query.outcome,
          from,
          to,
        },
        query.granularity,
        groupBy,
      ),
    );
    const series = new Map<string, { group: UsageGroup; points: UsagePoint[]; totals: Accumulator }>();
    const seriesOf = (row: AggregateRow) => {
      const group = groupOf(row, groupBy);
      const id = JSON.stringify(group);
      let found = series.get(id);
      if (found === undefined) {
        if ((series.size + 1) * buckets > MAX_CELLS) {
          throw new FluxError("invalid_request", {
            detail: "Too many series for this range: narrow the range, the filters or groupBy.",
            extensions: { field: "query.groupBy" },
          });
        }
        const points = new Array<UsagePoint>(buckets);
        for (let i = 0; i < buckets; i++) {
          points[i] = {
            at: new Date(from + i * step),
            calls: 0,
            errors: 0,
            latencyAvgMs: null,
            latencyMaxMs: null,
          };
        }
        found = { group, points, totals: accumulator() };
        series.set(id, found);
      }
      return found;
    };
    if (groupBy.length === 0) seriesOf({ calls: 0, errors: 0, latency_sum: 0, latency_max: null });
    for (const row of rows) {
      const target = seriesOf(row);
      const index = Math.round((Number(row.t) - from) / step);
      const point = target.points[index];
      if (point === undefined) continue;
      const calls = Number(row.calls);
      point.calls = calls;
      point.errors = Number(row.errors);
      point.latencyAvgMs = calls > 0 ? Number(row.latency_sum) / calls : null;
      point.latencyMaxMs = row.latency_max === null ? null : Number(row.latency_max);
      add(target.totals, row);
    }
    const result = [...series.values()].map((s) => ({
      group: s.group,
      totals: totalsOf(s.totals),
      points: s.points,
    }));
    result.sort(
      (a, b) => b.totals.calls - a.totals.calls || compare(JSON.stringify(a.group), JSON.stringify(b.group)),
    );
    return { granularity: query.granularity, from: new Date(from), to: new Date(to), series: result };
  }

  /** The keys or endpoints of an org with the most calls in a range, most first. */
  async top(input: UsageTopQuery): Promise<UsageTopEntry[]> {
    const query = parseTopQuery(input);
    const rows = await guard(() =>
      topGroups(
        this.driver,
        { orgId: query.orgId, from: query.from.getTime(), to: query.to.getTime() },
        query.by,
        query.limit ?? 10,
      ),
    );
    return rows.map((row) => {
      const totals = totalsOf(add(accumulator(), row));
      return query.by === "key"
        ? { keyId: String(row.key_id), ...totals }
        : { method: String(row.method), endpoint: String(row.endpoint), ...totals };
    });
  }

  /**
   * Deletes usage older than `olderThan` (a date, or an age such as `'90d'`). Buckets are deleted
   * whole: a bucket is deleted once it ends at or before the cut-off. Months that end before it
   * go at once (their partitions are dropped: `droppedPartitions`); the month the cut-off falls
   * in is deleted row by row (`deleted`).
   */
  async prune(input: {
    olderThan: Date | Duration;
  }): Promise<{ deleted: number; droppedPartitions: number }> {
    const before = this.cutoff(input?.olderThan, "olderThan");
    const { minutes, hours, partitions } = await guard(() => deleteBefore(this.driver, before));
    return { deleted: minutes + hours, droppedPartitions: partitions };
  }

  /**
   * Sums minute buckets older than `olderThan` (default: `usage.rollupAfter`) into hourly ones.
   * Totals do not change; minute resolution is lost for them. Safe to run from several instances.
   */
  async rollup(input: { olderThan?: Date | Duration } = {}): Promise<{ rolledUp: number }> {
    const olderThan = input.olderThan ?? this.options.rollupAfterMs;
    if (olderThan === null) return { rolledUp: 0 };
    const before = Math.floor(this.cutoff(olderThan, "olderThan") / HOUR_MS) * HOUR_MS;
    return { rolledUp: await guard(() => rollUp(this.driver, before)) };
  }

  /** @internal Starts the flush and maintenance timers (unref'd: they never keep a process alive). */
  start(): void {
    this.flushTimer = setInterval(() => {
      if (!this.flushing) void this.flush().catch(() => {});
    }, this.options.flushIntervalMs);
    this.flushTimer.unref();
    this.maintenanceTimer = setInterval(() => void this.maintain(), this.options.maintenanceIntervalMs);
    this.maintenanceTimer.unref();
  }

  /** @internal Stops the timers and writes what is buffered. Calls recorded afterwards are dropped. */
  async close(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.maintenanceTimer) clearInterval(this.maintenanceTimer);
    this.flushTimer = null;
    this.maintenanceTimer = null;
    this.closed = true;
    try {
      await this.flush();
    } catch {
      const lost = this.recorder.bufferedCalls;
      this.recorder.dropped += lost;
      this.logger.error?.(
        { event: "flux.usage.lost_on_close", lostCalls: lost },
        "flux-keys: usage could not be written before close",
      );
    }
  }

  /**
   * Partitions ahead, rollup, retention and forgetting old batch ids; failures are logged and
   * retried next time. Retention here drops whole months only (no row deletes on a timer): usage
   * is kept at least `usage.retention`, at most a month longer.
   */
  async maintain(): Promise<void> {
    try {
      const ahead = monthsAhead(this.now());
      await ensurePartitions(this.driver, ahead);
      for (const month of ahead) this.partitioned.add(month);
      await this.rollup();
      if (this.options.retentionMs !== null) {
        if ((await dropPartitions(this.driver, this.now() - this.options.retentionMs)) > 0) {
          this.partitioned.clear();
        }
      }
      await forgetBatches(this.driver, BATCH_ID_TTL_MS);
    } catch (error) {
      this.logger.warn?.(
        { event: "flux.usage.maintenance_failed", error: describe(error) },
        "flux-keys: usage maintenance failed",
      );
    }
  }

  private requestFlush(): void {
    // Past the size bound flush early, but not while the database is failing: the timer retries.
    if (this.now() - this.lastFailureAt < this.options.flushIntervalMs) return;
    this.flushRequested = true;
    setImmediate(() => {
      this.flushRequested = false;
      void this.flush().catch(() => {});
    });
  }

  private async flushNow(): Promise<UsageFlushReport> {
    this.flushing = true;
    const startedAt = performance.now();
    let ok = false;
    const report: UsageFlushReport = { buckets: 0, calls: 0 };
    try {
      // Oldest first; new buckets are taken out only once every retried batch is in.
      for (let round = 0; round < 2; round++) {
        while (this.recorder.pending.length > 0) {
          const batch = this.recorder.pending[0] as UsageBatch;
          await this.write(batch);
          report.buckets += batch.buckets.length;
          report.calls += batch.calls;
        }
        if (round === 0) this.recorder.seal(this.options.batchSize);
      }
      this.counters.flushes++;
      this.counters.lastFlushAt = new Date(this.now());
      this.counters.lastError = null;
      ok = true;
      return report;
    } catch (error) {
      this.counters.failedFlushes++;
      this.lastFailureAt = this.now();
      const failure = error instanceof FluxError ? error : new FluxError("store_unavailable");
      this.counters.lastError = { code: failure.code, message: describe(error), at: new Date(this.now()) };
      if (this.counters.failedFlushes === 1 || this.counters.failedFlushes % 100 === 0) {
        this.logger.warn?.(
          {
            event: "flux.usage.flush_failed",
            error: describe(error),
            bufferedCalls: this.recorder.bufferedCalls,
          },
          "flux-keys: usage flush failed; kept for a retry",
        );
      }
      throw failure;
    } finally {
      this.flushing = false;
      this.telemetry?.usageFlushed((performance.now() - startedAt) / 1000, ok);
    }
  }

  private async write(batch: UsageBatch): Promise<void> {
    try {
      await this.ensureMonths(batch);
      try {
        await writeBatch(this.driver, batch);
      } catch (error) {
        // 23514: no partition for a row (another instance's retention dropped a month this one
        // still believed in): create what is missing and try once more.
        if (sqlState(error) !== "23514") throw error;
        this.partitioned.clear();
        await this.ensureMonths(batch);
        await writeBatch(this.driver, batch);
      }
    } catch (error) {
      if (isDataError(error)) {
        // Retrying could never succeed and would block every batch behind it: give it up, loudly.
        this.recorder.settle(batch);
        this.recorder.dropped += batch.calls;
        this.logger.error?.(
          { event: "flux.usage.batch_refused", error: describe(error), droppedCalls: batch.calls },
          "flux-keys: usage batch refused by the database",
        );
        return;
      }
      throw error;
    }
    this.recorder.settle(batch);
    this.counters.flushed += batch.calls;
    this.counters.flushedBuckets += batch.buckets.length;
  }

  /** Creates the month partitions a batch writes into, unless known to exist. */
  private async ensureMonths(batch: UsageBatch): Promise<void> {
    const missing: number[] = [];
    for (const bucket of batch.buckets) {
      const month = monthOf(bucket.minute);
      if (!this.partitioned.has(month) && !missing.includes(month)) missing.push(month);
    }
    if (missing.length === 0) return;
    await ensurePartitions(this.driver, missing);
    for (const month of missing) this.partitioned.add(month);
  }

  private cutoff(value: Date | Duration | undefined, field: string): number {
    if (value instanceof Date && !Number.isNaN(value.getTime())) return value.getTime();
    if (typeof value === "number" || typeof value === "string") {
      try {
        return this.now() - toMs(value, field);
      } catch {
        // fall through
      }
    }
    throw new FluxError("invalid_request", {
      detail: `${field} must be a Date or a duration such as '90d'.`,
      extensions: { field },
    });
  }
}

/** At most this many buckets per series, and series × buckets per query. */
const MAX_POINTS = 50_000;
const MAX_CELLS = 2_000_000;

interface Accumulator {
  calls: number;
  errors: number;
  latencySum: number;
  latencyMax: number | null;
}

function accumulator(): Accumulator {
  return { calls: 0, errors: 0, latencySum: 0, latencyMax: null };
}

function add(acc: Accumulator, row: AggregateRow): Accumulator {
  acc.calls += Number(row.calls);
  acc.errors += Number(row.errors);
  acc.latencySum += Number(row.latency_sum);
  if (row.latency_max !== null && (acc.latencyMax === null || Number(row.latency_max) > acc.latencyMax)) {
    acc.latencyMax = Number(row.latency_max);
  }
  return acc;
}

function totalsOf(acc: Accumulator): UsageTotals {
  return {
    calls: acc.calls,
    errors: acc.errors,
    latencyAvgMs: acc.calls > 0 ? acc.latencySum / acc.calls : null,
    latencyMaxMs: acc.latencyMax,
  };
}

function groupOf(row: AggregateRow, groupBy: readonly GroupDimension[]): UsageGroup {
  const group: UsageGroup = {};
  for (const dimension of groupBy) {
    if (dimension === "key") group.keyId = String(row.key_id);
    else if (dimension === "endpoint") {
      group.method = String(row.method);
      group.endpoint = String(row.endpoint);
    } else if (dimension === "outcome") group.outcome = String(row.outcome) as UsageOutcome;
    else group.status = STATUS_CLASSES[Number(row.status_class)] ?? "5xx";
  }
  return group;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity): the same batch would fail again. */
function isDataError(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined && (code.startsWith("22") || code.startsWith("23"));
}

function sqlState(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** SQLSTATE and server message, never connection details. */
function describe(error: unknown): string {
  const code = sqlState(error);
  if (code !== undefined) return `${code}: ${String((error as { message?: unknown }).message ?? "")}`;
  if (error instanceof FluxError) return error.detail;
  return "database unreachable or refused the connection";
}
