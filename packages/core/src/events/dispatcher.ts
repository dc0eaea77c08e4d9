/**
 * The webhook scheduler. Every instance runs it; the database makes them cooperate:
 *
 * - fan-out: new events are taken with `FOR UPDATE SKIP LOCKED` and turned into one delivery per
 *   matching endpoint (unique per event and endpoint) in the same transaction that marks them
 *   dispatched, so each event is fanned out once;
 * - delivery: due deliveries are claimed by one statement (`UPDATE … WHERE id IN (SELECT … FOR
 *   UPDATE SKIP LOCKED)`) that sets a lease (`lockedUntil`) and counts the attempt; only the
 *   claiming instance sends it. A crash mid-send leaves the lease to expire, and the delivery is
 *   tried again (same delivery id, so receivers can drop the repeat);
 * - checks: `key.expiring` / `key.unused` candidates are inserted with a dedupe key, so two
 *   instances checking at once record each event once.
 *
 * One file past ~400 lines on purpose: fan-out, claim, delivery and the periodic checks share one
 * lease protocol over the same tables, which is reviewed best in one place; signing, HTTP and
 * options are in signature.ts, webhook-http.ts and webhook-options.ts.
 */

import type { PrismaClient } from "../database.js";
import { Prisma } from "../generated/prisma/client.js";
import { randomId } from "../keys/format.js";
import type { Logger } from "../options.js";
import type { Telemetry } from "../telemetry/telemetry.js";
import { isBlockedAddressError } from "./address-guard.js";
import type { LifecycleEventType } from "./event-types.js";
import type { Events } from "./events.js";
import { SIGNATURE_HEADER, signWebhookPayload } from "./signature.js";
import { BlockedAddressError, createWebhookPoster, type WebhookPoster } from "./webhook-http.js";
import type { ResolvedEndpoint, ResolvedWebhookOptions } from "./webhook-options.js";

const DAY_MS = 86_400_000;
const FANOUT_BATCH = 200;
const DELIVERY_BATCH = 50;
const CHECK_BATCH = 500;
/** Batches per run at most, so one run cannot go on forever. */
const MAX_ROUNDS = 20;
/** A claimed delivery is someone else's to retry after the timeout plus this. */
const LEASE_SLACK_MS = 60_000;

export interface WebhookRunReport {
  /** `key.expiring` / `key.unused` events recorded by the checks of this run. */
  checked: number;
  /** Events turned into deliveries. */
  dispatched: number;
  /** Delivery attempts made, and how they ended. */
  attempted: number;
  delivered: number;
  retrying: number;
  failed: number;
}

interface ClaimRow {
  id: string;
  eventId: string;
  endpointId: string;
  attempts: number;
  lockedUntil: Date;
}

export interface DispatcherDependencies {
  prisma: PrismaClient;
  events: Events;
  options: ResolvedWebhookOptions;
  logger: Logger;
  now(): number;
  telemetry?: Telemetry | undefined;
}

export class Dispatcher {
  private endpoints: ResolvedEndpoint[];
  private timer: NodeJS.Timeout | null = null;
  private nudged: NodeJS.Timeout | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private busy = false;
  private lastCheck = Number.NEGATIVE_INFINITY;
  private closed = false;
  private readonly aborter = new AbortController();
  private readonly poster: WebhookPoster;

  constructor(private readonly deps: DispatcherDependencies) {
    this.endpoints = deps.options.endpoints;
    this.poster = createWebhookPoster({
      allowPrivateNetworks: deps.options.allowPrivateNetworks,
      timeoutMs: deps.options.timeoutMs,
    });
    this.publishFilter();
  }

  /** Starts the timer (unless `webhooks.interval` is null) and dispatching on local changes. */
  start(): void {
    const interval = this.deps.options.intervalMs;
    if (interval === null) return;
    this.timer = setInterval(() => this.tick(), interval);
    this.timer.unref();
    this.deps.events.onRecorded = () => this.nudge();
  }

  /** Everything now: refresh endpoints, run the checks, fan out, deliver what is due. */
  runOnce(): Promise<WebhookRunReport> {
    return this.enqueue(true);
  }

  /** All endpoints this instance sends to. */
  currentEndpoints(): readonly ResolvedEndpoint[] {
    return this.endpoints;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    if (this.nudged !== null) clearTimeout(this.nudged);
    this.timer = null;
    this.nudged = null;
    this.deps.events.onRecorded = null;
    this.aborter.abort();
    await this.chain.catch(() => {});
    await this.poster.close().catch(() => {});
  }

  private tick(): void {
    if (this.busy || this.closed) return;
    const checks = this.deps.now() - this.lastCheck >= this.deps.options.checkIntervalMs;
    void this.enqueue(checks).catch(() => {});
  }

  private nudge(): void {
    if (this.closed || this.nudged !== null) return;
    this.nudged = setTimeout(() => {
      this.nudged = null;
      this.tick();
    }, 0);
    this.nudged.unref();
  }

  private enqueue(checks: boolean): Promise<WebhookRunReport> {
    const run = this.chain.then(() => this.cycle(checks));
    this.chain = run.catch(() => {});
    return run;
  }

  private async cycle(checks: boolean): Promise<WebhookRunReport> {
    const report: WebhookRunReport = {
      checked: 0,
      dispatched: 0,
      attempted: 0,
      delivered: 0,
      retrying: 0,
      failed: 0,
    };
    if (this.closed) return report;
    this.busy = true;
    try {
      await this.refreshEndpoints();
      if (checks) {
        this.lastCheck = this.deps.now();
        report.checked = (await this.checkExpiring()) + (await this.checkUnused());
        await this.prune();
      }
      await this.deps.events.flush().catch(() => {});
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const count = await this.fanOut();
        report.dispatched += count;
        if (count < FANOUT_BATCH) break;
      }
      for (let round = 0; round < MAX_ROUNDS && !this.closed; round++) {
        const claimed = await this.claim();
        if (claimed.length === 0) break;
        await this.deliverAll(claimed, report);
        if (claimed.length < DELIVERY_BATCH) break;
      }
      return report;
    } catch (error) {
      this.deps.logger.warn?.(
        { event: "flux.webhooks.run_failed", error: (error as Error)?.name ?? typeof error },
        "webhook run failed; retried on the next run",
      );
      throw error;
    } finally {
      this.busy = false;
    }
  }

  private async refreshEndpoints(): Promise<void> {
    const stored = await this.deps.prisma.webhookEndpoint.findMany({ orderBy: { createdAt: "asc" } });
    this.endpoints = [
      ...this.deps.options.endpoints,
      ...stored.map(
        (row): ResolvedEndpoint => ({
          id: row.id,
          url: row.url,
          secret: row.secret,
          events: row.events.length === 0 ? null : new Set(row.events),
          source: "stored",
        }),
      ),
    ];
    this.publishFilter();
  }

  private publishFilter(): void {
    const endpoints = this.endpoints;
    this.deps.events.setEndpointFilter((type: LifecycleEventType) =>
      endpoints.some((endpoint) => endpoint.events === null || endpoint.events.has(type)),
    );
  }

  // -- Periodic checks -----------------------------------------------------------------------------

  private async checkExpiring(): Promise<number> {
    const days = this.deps.options.expiringDays;
    if (days === null) return 0;
    let recorded = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const now = this.deps.now();
      const horizon = new Date(now + days * DAY_MS);
      const rows = await this.deps.prisma.$queryRaw<
        Array<{ id: string; org_id: string; name: string; expires_at: Date }>
      >`SELECT k."id", k."org_id", k."name", k."expires_at" FROM "flux_api_keys" k
        WHERE k."revoked_at" IS NULL AND k."sunset_at" IS NULL
          AND k."expires_at" > ${new Date(now)} AND k."expires_at" <= ${horizon}
          AND NOT EXISTS (SELECT 1 FROM "flux_events" e WHERE e."dedupe_key" =
            'key.expiring:' || k."id" || ':' || ((EXTRACT(EPOCH FROM k."expires_at") * 1000)::bigint)::text)
        ORDER BY k."expires_at", k."id" LIMIT ${CHECK_BATCH}`;
      const drafts = rows.map((row) => {
        const expiresAt = new Date(row.expires_at);
        return this.deps.events.draft({
          type: "key.expiring",
          orgId: row.org_id,
          keyId: row.id,
          data: {
            keyId: row.id,
            orgId: row.org_id,
            name: row.name,
            expiresAt: expiresAt.toISOString(),
            daysLeft: Math.max(0, Math.ceil((expiresAt.getTime() - now) / DAY_MS)),
          },
          dedupeKey: `key.expiring:${row.id}:${expiresAt.getTime()}`,
        });
      });
      recorded += (await this.deps.events.insert(drafts)).length;
      if (rows.length < CHECK_BATCH) break;
    }
    return recorded;
  }

  private async checkUnused(): Promise<number> {
    const days = this.deps.options.unusedDays;
    if (days === null) return 0;
    let recorded = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const now = this.deps.now();
      const cutoff = new Date(now - days * DAY_MS);
      const rows = await this.deps.prisma.$queryRaw<
        Array<{ id: string; org_id: string; name: string; last_used_at: Date | null; idle_since: Date }>
      >`SELECT k."id", k."org_id", k."name", k."last_used_at",
               COALESCE(k."last_used_at", k."created_at") AS "idle_since"
        FROM "flux_api_keys" k
        WHERE k."revoked_at" IS NULL AND k."sunset_at" IS NULL
          AND (k."expires_at" IS NULL OR k."expires_at" > ${new Date(now)})
          AND COALESCE(k."last_used_at", k."created_at") <= ${cutoff}
          AND NOT EXISTS (SELECT 1 FROM "flux_events" e WHERE e."dedupe_key" =
            'key.unused:' || k."id" || ':' ||
            ((EXTRACT(EPOCH FROM COALESCE(k."last_used_at", k."created_at")) * 1000)::bigint)::text)
        ORDER BY 5, k."id" LIMIT ${CHECK_BATCH}`;
      const drafts = rows.map((row) => {
        const idleSince = new Date(row.idle_since);
        return this.deps.events.draft({
          type: "key.unused",
          orgId: row.org_id,
          keyId: row.id,
          data: {
            keyId: row.id,
            orgId: row.org_id,
            name: row.name,
            lastUsedAt: row.last_used_at === null ? null : new Date(row.last_used_at).toISOString(),
            idleSince: idleSince.toISOString(),
            idleDays: Math.floor((now - idleSince.getTime()) / DAY_MS),
          },
          dedupeKey: `key.unused:${row.id}:${idleSince.getTime()}`,
        });
      });
      recorded += (await this.deps.events.insert(drafts)).length;
      if (rows.length < CHECK_BATCH) break;
    }
    return recorded;
  }

  /**
   * Deletes old events and their deliveries. Events that keep a periodic or per-key check from
   * firing again (expiring, unused, `total` quota thresholds) stay: one per key and occasion.
   */
  private async prune(): Promise<void> {
    const cutoff = new Date(this.deps.now() - this.deps.options.retentionMs);
    await this.deps.prisma.$executeRaw`DELETE FROM "flux_events" e
      WHERE e."created_at" < ${cutoff} AND e."dispatched_at" IS NOT NULL
        AND (e."dedupe_key" IS NULL OR e."type" = 'ratelimit.exceeded'
             OR (e."type" = 'quota.threshold' AND e."data"->>'period' <> 'total'))
        AND NOT EXISTS (SELECT 1 FROM "flux_webhook_deliveries" d
                        WHERE d."event_id" = e."id" AND d."status" = 'pending')`;
  }

  // -- Fan-out and delivery ------------------------------------------------------------------------

  private async fanOut(): Promise<number> {
    const endpoints = this.endpoints;
    const now = new Date(this.deps.now());
    return this.deps.prisma.$transaction(async (tx) => {
      const rows = await tx.$queryRaw<Array<{ id: string; type: string }>>`
        SELECT "id", "type" FROM "flux_events" WHERE "dispatched_at" IS NULL
        ORDER BY "created_at", "id" LIMIT ${FANOUT_BATCH} FOR UPDATE SKIP LOCKED`;
      if (rows.length === 0) return 0;
      const deliveries: Prisma.WebhookDeliveryCreateManyInput[] = [];
      for (const row of rows) {
        for (const endpoint of endpoints) {
          if (endpoint.events !== null && !endpoint.events.has(row.type)) continue;
          deliveries.push({
            id: randomId("dlv"),
            eventId: row.id,
            endpointId: endpoint.id,
            url: endpoint.url,
            nextAttemptAt: now,
            createdAt: now,
            updatedAt: now,
          });
        }
      }
      if (deliveries.length > 0)
        await tx.webhookDelivery.createMany({ data: deliveries, skipDuplicates: true });
      await tx.lifecycleEvent.updateMany({
        where: { id: { in: rows.map((row) => row.id) } },
        data: { dispatchedAt: now },
      });
      return rows.length;
    });
  }

  /** Takes due deliveries of endpoints this instance knows, under a lease, counting the attempt. */
  private async claim(): Promise<ClaimRow[]> {
    const ids = this.endpoints.map((endpoint) => endpoint.id);
    if (ids.length === 0) return [];
    const nowMs = this.deps.now();
    const now = new Date(nowMs);
    const leaseUntil = new Date(nowMs + this.deps.options.timeoutMs + LEASE_SLACK_MS);
    return this.deps.prisma.$queryRaw<ClaimRow[]>`
      UPDATE "flux_webhook_deliveries"
      SET "locked_until" = ${leaseUntil}, "attempts" = "attempts" + 1, "updated_at" = ${now}
      WHERE "id" IN (
        SELECT "id" FROM "flux_webhook_deliveries"
        WHERE "status" = 'pending' AND "next_attempt_at" <= ${now}
          AND ("locked_until" IS NULL OR "locked_until" <= ${now})
          AND "endpoint_id" IN (${Prisma.join(ids)})
        ORDER BY "next_attempt_at" LIMIT ${DELIVERY_BATCH}
        FOR UPDATE SKIP LOCKED)
      RETURNING "id", "event_id" AS "eventId", "endpoint_id" AS "endpointId", "attempts", "locked_until" AS "lockedUntil"`;
  }

  private async deliverAll(claimed: ClaimRow[], report: WebhookRunReport): Promise<void> {
    const events = await this.deps.prisma.lifecycleEvent.findMany({
      where: { id: { in: [...new Set(claimed.map((row) => row.eventId))] } },
    });
    const bodies = new Map(
      events.map((event) => [
        event.id,
        {
          type: event.type,
          body: JSON.stringify({
            id: event.id,
            type: event.type,
            createdAt: event.createdAt.toISOString(),
            data: event.data,
          }),
        },
      ]),
    );
    const byId = new Map(this.endpoints.map((endpoint) => [endpoint.id, endpoint]));
    await Promise.all(
      claimed.map(async (delivery) => {
        const endpoint = byId.get(delivery.endpointId);
        const payload = bodies.get(delivery.eventId);
        if (endpoint === undefined || payload === undefined) {
          await this.finish(delivery, { statusCode: null, error: "endpoint_removed" }, true);
          report.failed++;
          return;
        }
        const outcome = await this.send(endpoint, delivery, payload.type, payload.body);
        if (outcome === "closing") {
          // Closing: give the attempt back, another run (or instance) makes it.
          await this.deps.prisma.$executeRaw`UPDATE "flux_webhook_deliveries"
            SET "attempts" = "attempts" - 1, "locked_until" = NULL
            WHERE "id" = ${delivery.id} AND "locked_until" = ${new Date(delivery.lockedUntil)}`.catch(
            () => {},
          );
          return;
        }
        report.attempted++;
        const delivered = outcome.error === null;
        const exhausted = !delivered && delivery.attempts >= this.deps.options.maxAttempts;
        await this.finish(delivery, outcome, exhausted);
        const result = delivered ? "delivered" : exhausted ? "failed" : "retrying";
        report[result]++;
        this.deps.telemetry?.webhookDelivery(result);
      }),
    );
  }

  private async send(
    endpoint: ResolvedEndpoint,
    delivery: ClaimRow,
    type: string,
    body: string,
  ): Promise<{ statusCode: number | null; error: string | null } | "closing"> {
    // Real time: receivers compare it with their own clock.
    const timestamp = Math.floor(Date.now() / 1000);
    const timeoutMs = this.deps.options.timeoutMs;
    // Our own controller and timers, held until the attempt ends: abort propagation into fetch
    // through derived signals (AbortSignal.any / .timeout) can be lost to GC (nodejs/node#55428).
    const controller = new AbortController();
    const abort = () => controller.abort();
    this.aborter.signal.addEventListener("abort", abort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    let hardTimer: NodeJS.Timeout | undefined;
    const attempt = this.poster.post(
      endpoint.url,
      {
        "Content-Type": "application/json",
        "User-Agent": "flux-keys-webhooks/1",
        [SIGNATURE_HEADER]: signWebhookPayload(endpoint.secret, body, timestamp),
        "Flux-Delivery-Id": delivery.id,
        "Flux-Event-Id": delivery.eventId,
        "Flux-Event-Type": type,
        "Flux-Delivery-Attempt": String(delivery.attempts),
      },
      body,
      controller.signal,
    );
    attempt.catch(() => {});
    try {
      timer = setTimeout(abort, timeoutMs);
      // Should the abort not reach fetch, the attempt still ends shortly after the timeout.
      const deadline = new Promise<never>((_, reject) => {
        hardTimer = setTimeout(() => reject(new DOMException("timeout", "TimeoutError")), timeoutMs + 1_000);
      });
      const status = await Promise.race([attempt, deadline]);
      const ok = status >= 200 && status < 300;
      return { statusCode: status, error: ok ? null : `http_${status}` };
    } catch (error) {
      if (this.aborter.signal.aborted) return "closing";
      // Loopback, private, link-local or metadata: refused (see `webhooks.allowPrivateNetworks`).
      if (error instanceof BlockedAddressError || isBlockedAddressError(error)) {
        return { statusCode: null, error: "blocked_address" };
      }
      const timedOut = controller.signal.aborted || (error as Error)?.name === "TimeoutError";
      return { statusCode: null, error: timedOut ? "timeout" : "network_error" };
    } finally {
      clearTimeout(timer);
      clearTimeout(hardTimer);
      controller.abort();
      this.aborter.signal.removeEventListener("abort", abort);
    }
  }

  private async finish(
    delivery: ClaimRow,
    outcome: { statusCode: number | null; error: string | null },
    final: boolean,
  ): Promise<void> {
    const nowMs = this.deps.now();
    const delivered = outcome.error === null;
    const data: Prisma.WebhookDeliveryUpdateManyMutationInput = {
      lastStatusCode: outcome.statusCode,
      lastError: outcome.error,
      lockedUntil: null,
      updatedAt: new Date(nowMs),
    };
    if (delivered) {
      data.status = "delivered";
      data.deliveredAt = new Date(nowMs);
    } else if (final) {
      data.status = "failed";
      this.deps.logger.warn?.(
        {
          event: "flux.webhooks.failed",
          deliveryId: delivery.id,
          eventId: delivery.eventId,
          endpointId: delivery.endpointId,
          attempts: delivery.attempts,
          error: outcome.error,
        },
        "webhook delivery given up",
      );
    } else {
      data.nextAttemptAt = new Date(nowMs + this.backoff(delivery.attempts));
    }
    // Only while the lease is ours: a delivery whose lease ran out belongs to whoever took it next.
    await this.deps.prisma.webhookDelivery.updateMany({
      where: { id: delivery.id, lockedUntil: new Date(delivery.lockedUntil) },
      data,
    });
  }

  /** Exponential, capped, with jitter: between half and all of initial × 2^(attempt-1). */
  private backoff(attempt: number): number {
    const { backoffInitialMs, backoffMaxMs } = this.deps.options;
    const full = Math.min(backoffMaxMs, backoffInitialMs * 2 ** Math.max(0, attempt - 1));
    return Math.round(full / 2 + (Math.random() * full) / 2);
  }
}
