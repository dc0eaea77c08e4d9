/**
 * Usage → Stripe meter events, off the request path. Each round, per meter: core's outbox records
 * what settled usage buckets call for (one row per org and minute, with a stable identifier), then
 * the unsent rows go to `stripe.billing.meterEvents.create` with that `identifier` (and the same
 * value as the request's idempotency key), a few in flight at once, each retried with backoff;
 * acknowledged rows are marked sent in one statement per batch. A crash between the send and the
 * mark resends the same identifiers, which Stripe counts once.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Flux, Logger, MeterOutbox, MeterSendRow } from "@flux-keys/core";
import {
  type ResolvedMeterSyncOptions,
  resolveMeterSyncOptions,
  type StripeMeterSyncOptions,
} from "./options.js";

export interface MeterSyncReport {
  /** Rows newly recorded for sending. */
  planned: number;
  /** Meter events Stripe acknowledged. */
  sent: number;
  /** Meter events that still failed after every retry (left for the next round). */
  failed: number;
}

export interface StripeMeterSync {
  /** One round over every meter; safe to call while a timer runs (rounds never overlap). */
  runOnce(): Promise<MeterSyncReport>;
  /** Runs a round every `intervalMs` until `close()`. */
  start(): void;
  /** Stops the timer and waits for the round in progress. */
  close(): Promise<void>;
  /** Units sent and still pending for one meter (optionally one org). */
  totals(eventName: string, query?: { orgId?: string }): Promise<{ sent: number; pending: number }>;
}

/** Stripe's answer to an identifier it already has: the event is counted, so it is sent. */
function isDuplicate(error: unknown): boolean {
  const e = error as { statusCode?: number; code?: string; message?: string; raw?: { code?: string } };
  const code = e.code ?? e.raw?.code ?? "";
  return (
    e.statusCode === 400 &&
    (code.includes("duplicate") || /identifier.*(already|exists|duplicate)/i.test(e.message ?? ""))
  );
}

function isRetryable(error: unknown): boolean {
  const e = error as { statusCode?: number; type?: string };
  if (e.statusCode === undefined) return true; // network, timeout
  return e.statusCode >= 500 || e.statusCode === 429 || e.statusCode === 409;
}

export function createStripeMeterSync(flux: Flux, options: StripeMeterSyncOptions): StripeMeterSync {
  const config: ResolvedMeterSyncOptions = resolveMeterSyncOptions(options);
  const logger: Logger = options.logger ?? {};
  const outboxes = config.meters.map((meter) => ({
    meter,
    outbox: flux.billing.meter(meter.eventName, {
      statusClasses: meter.statusClasses,
      endpoints: meter.endpoints,
      value: meter.value,
      settleMs: config.settleMs,
    }),
  }));
  let running: Promise<MeterSyncReport> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  async function sendOne(meter: (typeof config.meters)[number], row: MeterSendRow): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        await config.stripe.billing.meterEvents.create(
          {
            event_name: meter.eventName,
            identifier: row.identifier,
            timestamp: Math.floor(row.at.getTime() / 1000),
            payload: { [meter.customerKey]: row.customerId, [meter.valueKey]: String(row.value) },
          },
          { idempotencyKey: row.identifier, maxNetworkRetries: 0 },
        );
        return true;
      } catch (error) {
        if (isDuplicate(error)) return true;
        if (closed || !isRetryable(error) || attempt >= config.retry.attempts) {
          logger.warn?.(
            { event: "flux.stripe.meter_event_failed", meter: meter.eventName, orgId: row.orgId, attempt },
            "meter event not sent; it is retried next round",
          );
          return false;
        }
        const backoff = Math.min(config.retry.maxMs, config.retry.initialMs * 2 ** (attempt - 1));
        await sleep(backoff / 2 + Math.random() * (backoff / 2));
      }
    }
  }

  async function drain(
    meter: (typeof config.meters)[number],
    outbox: MeterOutbox,
    report: MeterSyncReport,
  ): Promise<void> {
    const rows = await outbox.pending(config.batchSize);
    let next = 0;
    const acknowledged: string[] = [];
    const worker = async () => {
      while (next < rows.length && !closed) {
        const row = rows[next++] as MeterSendRow;
        if (await sendOne(meter, row)) {
          acknowledged.push(row.identifier);
          report.sent++;
        } else report.failed++;
        // Marked in batches, so a crash loses at most one batch of acknowledgements (resent, deduplicated).
        if (acknowledged.length >= 100) await outbox.markSent(acknowledged.splice(0));
      }
    };
    await Promise.all(Array.from({ length: Math.min(config.concurrency, rows.length) }, worker));
    await outbox.markSent(acknowledged);
  }

  async function round(): Promise<MeterSyncReport> {
    const report: MeterSyncReport = { planned: 0, sent: 0, failed: 0 };
    for (const { meter, outbox } of outboxes) {
      if (closed) break;
      report.planned += await outbox.plan();
      await drain(meter, outbox, report);
    }
    return report;
  }

  const sync: StripeMeterSync = {
    runOnce() {
      running ??= round().finally(() => {
        running = null;
      });
      return running;
    },
    start() {
      if (timer !== null || closed) return;
      const tick = () => {
        sync
          .runOnce()
          .catch((error: unknown) => {
            logger.warn?.(
              { event: "flux.stripe.meter_sync_failed", code: (error as { code?: string }).code },
              "meter sync round failed; retried next interval",
            );
          })
          .finally(() => {
            if (!closed) timer = setTimeout(tick, config.intervalMs).unref();
          });
      };
      timer = setTimeout(tick, config.intervalMs).unref();
    },
    async close() {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      await running?.catch(() => {});
    },
    totals(eventName, query) {
      const entry = outboxes.find((o) => o.meter.eventName === eventName);
      if (!entry) throw new Error(`@flux-keys/stripe: no meter '${eventName}' in this sync.`);
      return entry.outbox.totals(query);
    },
  };
  return sync;
}
