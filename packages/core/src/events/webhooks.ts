/** `flux.webhooks`: stored endpoints, delivery records, recorded events, and a manual run. */
import { randomBytes } from "node:crypto";
import { guard, type PrismaClient } from "../database.js";
import { FluxError } from "../errors.js";
import type { Prisma } from "../generated/prisma/client.js";
import { randomId } from "../keys/format.js";
import type { Logger } from "../options.js";
import type { Telemetry } from "../telemetry/telemetry.js";
import { Dispatcher, type WebhookRunReport } from "./dispatcher.js";
import type { LifecycleEventType } from "./event-types.js";
import type { Events } from "./events.js";
import {
  checkEvents,
  checkSecret,
  checkUrl,
  publicTarget,
  type ResolvedWebhookOptions,
} from "./webhook-options.js";

export interface WebhookEndpointInfo {
  id: string;
  url: string;
  /** null: every event type. */
  events: LifecycleEventType[] | null;
  /** `options`: from `createFlux({ webhooks })`; `stored`: added with `flux.webhooks.add`. */
  source: "options" | "stored";
  createdAt: Date | null;
}

export interface AddWebhookInput {
  url: string;
  /** Event types to send. @default all */
  events?: LifecycleEventType[];
  /** Signing secret (16-256 characters). @default a new random `whsec_…` secret */
  secret?: string;
}

export type WebhookDeliveryStatus = "pending" | "delivered" | "failed";

export interface WebhookDeliveryInfo {
  id: string;
  eventId: string;
  eventType: string;
  endpointId: string;
  url: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  lastStatusCode: number | null;
  /** `timeout`, `network_error`, `blocked_address`, `http_<status>`, `endpoint_removed`, or null. */
  lastError: string | null;
  nextAttemptAt: Date;
  deliveredAt: Date | null;
  createdAt: Date;
}

export interface WebhookDeliveryQuery {
  eventId?: string;
  endpointId?: string;
  status?: WebhookDeliveryStatus;
  /** @default 100 (at most 1000) */
  limit?: number;
}

export interface RecordedEvent {
  id: string;
  type: string;
  orgId: string | null;
  keyId: string | null;
  createdAt: Date;
  data: Record<string, unknown>;
  dispatchedAt: Date | null;
}

export interface RecordedEventQuery {
  type?: LifecycleEventType;
  keyId?: string;
  orgId?: string;
  /** @default 100 (at most 1000) */
  limit?: number;
}

export class Webhooks {
  private readonly dispatcher: Dispatcher;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly outbox: Events,
    private readonly options: ResolvedWebhookOptions,
    now: () => number,
    logger: Logger,
    telemetry?: Telemetry,
  ) {
    this.dispatcher = new Dispatcher({ prisma, events: outbox, options, now, logger, telemetry });
  }

  /** @internal */
  start(): void {
    this.dispatcher.start();
  }

  /**
   * Stores an endpoint (every instance picks it up on its next run). The secret is returned here
   * and never again.
   */
  async add(input: AddWebhookInput): Promise<{ endpoint: WebhookEndpointInfo; secret: string }> {
    const url = checkUrl(input?.url);
    if (url === null) throw invalid("url must be an http(s) URL.", "url");
    if (!this.options.allowPrivateNetworks && !publicTarget(url)) {
      throw invalid(
        "url is a loopback, private, link-local or metadata address (see webhooks.allowPrivateNetworks).",
        "url",
      );
    }
    const events = checkEvents(input.events);
    if (events === undefined) throw invalid("events must be a list of lifecycle event types.", "events");
    if (input.secret !== undefined && !checkSecret(input.secret)) {
      throw invalid("secret must be 16 to 256 characters.", "secret");
    }
    const secret = input.secret ?? `whsec_${randomBytes(24).toString("base64url")}`;
    const row = await guard(() =>
      this.prisma.webhookEndpoint.create({
        data: { id: randomId("whk"), url, secret, events: events === null ? [] : [...events] },
      }),
    );
    return { endpoint: storedInfo(row), secret };
  }

  /** Endpoints from the options, then stored ones (oldest first). Never a secret. */
  async list(): Promise<WebhookEndpointInfo[]> {
    const rows = await guard(() => this.prisma.webhookEndpoint.findMany({ orderBy: { createdAt: "asc" } }));
    return [
      ...this.options.endpoints.map(
        (endpoint): WebhookEndpointInfo => ({
          id: endpoint.id,
          url: endpoint.url,
          events: endpoint.events === null ? null : ([...endpoint.events] as LifecycleEventType[]),
          source: "options",
          createdAt: null,
        }),
      ),
      ...rows.map(storedInfo),
    ];
  }

  /** Removes a stored endpoint; its pending deliveries are marked failed. False when unknown. */
  async remove(id: string): Promise<boolean> {
    if (this.options.endpoints.some((endpoint) => endpoint.id === id)) {
      throw invalid("This endpoint comes from the options; change them instead.", "id");
    }
    return guard(() =>
      this.prisma.$transaction(async (tx) => {
        const { count } = await tx.webhookEndpoint.deleteMany({ where: { id: String(id) } });
        if (count === 0) return false;
        await tx.webhookDelivery.updateMany({
          where: { endpointId: String(id), status: "pending" },
          data: { status: "failed", lastError: "endpoint_removed", lockedUntil: null },
        });
        return true;
      }),
    );
  }

  /** Deliveries, newest first. */
  async deliveries(query: WebhookDeliveryQuery = {}): Promise<WebhookDeliveryInfo[]> {
    const where: Prisma.WebhookDeliveryWhereInput = {};
    if (query.eventId !== undefined) where.eventId = String(query.eventId);
    if (query.endpointId !== undefined) where.endpointId = String(query.endpointId);
    if (query.status !== undefined) where.status = String(query.status);
    const rows = await guard(() =>
      this.prisma.webhookDelivery.findMany({
        where,
        include: { event: { select: { type: true } } },
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
        take: pageSize(query.limit),
      }),
    );
    return rows.map((row) => ({
      id: row.id,
      eventId: row.eventId,
      eventType: row.event.type,
      endpointId: row.endpointId,
      url: row.url,
      status: row.status as WebhookDeliveryStatus,
      attempts: row.attempts,
      lastStatusCode: row.lastStatusCode,
      lastError: row.lastError,
      nextAttemptAt: row.nextAttemptAt,
      deliveredAt: row.deliveredAt,
      createdAt: row.createdAt,
    }));
  }

  /** Recorded lifecycle events, newest first (kept for `webhooks.retention`). */
  async events(query: RecordedEventQuery = {}): Promise<RecordedEvent[]> {
    const where: Prisma.LifecycleEventWhereInput = {};
    if (query.type !== undefined) where.type = String(query.type);
    if (query.keyId !== undefined) where.keyId = String(query.keyId);
    if (query.orgId !== undefined) where.orgId = String(query.orgId);
    const rows = await guard(() =>
      this.prisma.lifecycleEvent.findMany({
        where,
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
        take: pageSize(query.limit),
      }),
    );
    return rows.map((row) => ({
      id: row.id,
      type: row.type,
      orgId: row.orgId,
      keyId: row.keyId,
      createdAt: row.createdAt,
      data: (row.data ?? {}) as Record<string, unknown>,
      dispatchedAt: row.dispatchedAt,
    }));
  }

  /**
   * Runs the scheduler once on this instance, now: the expiring / unused checks, fan-out of new
   * events, and every due delivery. Safe alongside other instances.
   */
  runOnce(): Promise<WebhookRunReport> {
    return this.dispatcher.runOnce();
  }

  /** @internal Stops the scheduler, then writes queued events. */
  async close(): Promise<void> {
    await this.dispatcher.close();
    await this.outbox.close();
  }
}

function storedInfo(row: {
  id: string;
  url: string;
  events: string[];
  createdAt: Date;
}): WebhookEndpointInfo {
  return {
    id: row.id,
    url: row.url,
    events: row.events.length === 0 ? null : (row.events as LifecycleEventType[]),
    source: "stored",
    createdAt: row.createdAt,
  };
}

function pageSize(limit: number | undefined): number {
  return Math.min(Math.max(Math.trunc(limit ?? 100) || 100, 1), 1_000);
}

function invalid(detail: string, field: string): FluxError {
  return new FluxError("invalid_request", { detail, extensions: { field: `webhook.${field}` } });
}
