/**
 * Lifecycle events: the outbox (`flux_events`) and the in-process listeners (`flux.on`).
 *
 * - Lifecycle changes (issue, rotate, revoke) record their event in the same transaction as the
 *   change (`record(tx, …)` inside `transaction()`); listeners hear it once the transaction commits.
 * - Hot-path events (`quota.threshold`, `ratelimit.exceeded`) are detected from the limiter's
 *   decisions (limits/thresholds.ts) through `limitObserver`: deduplicated in memory, queued,
 *   written in the background. The request never waits for them, and when nobody listens the
 *   limiter does not even call in.
 * - Periodic events (`key.expiring`, `key.unused`) are found by the dispatcher's checks.
 * Every event with a `dedupeKey` is inserted with ON CONFLICT DO NOTHING: it happens once however
 * many instances notice it, and only the instance whose insert won tells its listeners.
 */
import type { PrismaClient } from "../database.js";
import { FluxError } from "../errors.js";
import type { Prisma } from "../generated/prisma/client.js";
import { randomId } from "../keys/format.js";
import type { LimitObserver } from "../limits/decide.js";
import { LimitThresholds } from "../limits/thresholds.js";
import type { LogFields, Logger } from "../options.js";
import {
  type EventData,
  isEventType,
  type LifecycleEvent,
  type LifecycleEventType,
  type LifecycleHandler,
} from "./event-types.js";

export interface EventInput<T extends LifecycleEventType = LifecycleEventType> {
  type: T;
  orgId: string | null;
  keyId: string | null;
  data: EventData[T];
  /** Events with the same dedupe key are recorded once (only outside transactions). */
  dedupeKey?: string | null;
}

interface QueuedEvent extends EventInput {
  id: string;
  createdAt: Date;
}

type Tx = Pick<PrismaClient, "lifecycleEvent">;

/** Hot-path events waiting for their background write, at most. */
const MAX_QUEUED = 10_000;
const RETRY_MS = 1_000;
const LOG_EVERY_MS = 10_000;
const LIMIT_TYPES = ["quota.threshold", "ratelimit.exceeded"] as const;

export interface EventsDependencies {
  prisma: PrismaClient;
  logger: Logger;
  now(): number;
  quotaThresholds: readonly number[];
}

export class Events {
  private readonly handlers = new Map<string, Set<LifecycleHandler>>();
  private readonly collectors = new WeakMap<object, LifecycleEvent[]>();
  /** Quota thresholds and refused windows, detected from the limiter's decisions. */
  private readonly thresholds: LimitThresholds;
  private queue: QueuedEvent[] = [];
  private chain: Promise<void> = Promise.resolve();
  private writeScheduled = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private endpointWants: (type: LifecycleEventType) => boolean = () => false;
  private closed = false;
  private lastLog = 0;
  /** Hot-path events lost: the queue was full, or the instance was closed. */
  dropped = 0;
  /** Called after events were recorded by this instance (the dispatcher sends them soon). */
  onRecorded: (() => void) | null = null;

  /** Given to the limiter: `active` is false unless someone wants limit events. */
  readonly limitObserver: LimitObserver & { active: boolean } = {
    active: false,
    observe: (result, base) => this.thresholds.observe(result, base),
  };

  constructor(private readonly deps: EventsDependencies) {
    this.thresholds = new LimitThresholds(
      deps.quotaThresholds,
      () => deps.now(),
      (event) => this.enqueue(event),
      (error) =>
        this.logThrottled(
          { event: "flux.events.observe_error", error: (error as Error)?.name },
          "limit event dropped",
        ),
    );
  }

  /** Listens to one event type (or `'*'`); returns the function that stops listening. */
  on<T extends LifecycleEventType>(type: T | "*", handler: LifecycleHandler<T>): () => void {
    if (type !== "*" && !isEventType(type)) {
      throw new FluxError("invalid_request", { detail: `Unknown lifecycle event type '${String(type)}'.` });
    }
    if (typeof handler !== "function") {
      throw new FluxError("invalid_request", { detail: "on() needs a handler function." });
    }
    let set = this.handlers.get(type);
    if (set === undefined) {
      set = new Set();
      this.handlers.set(type, set);
    }
    const entry = handler as LifecycleHandler;
    set.add(entry);
    this.refreshActive();
    return () => {
      const current = this.handlers.get(type);
      if (current?.delete(entry) && current.size === 0) this.handlers.delete(type);
      this.refreshActive();
    };
  }

  /** @internal The dispatcher tells which types some endpoint subscribes to. */
  setEndpointFilter(wants: (type: LifecycleEventType) => boolean): void {
    this.endpointWants = wants;
    this.refreshActive();
  }

  /**
   * Runs `fn` in a transaction; events recorded in it with `record(tx, …)` reach the listeners
   * after the commit (and never when it rolls back).
   */
  async transaction<T>(prisma: PrismaClient, fn: (tx: Prisma.TransactionClient) => Promise<T>): Promise<T> {
    const recorded: LifecycleEvent[] = [];
    const result = await prisma.$transaction(async (tx) => {
      this.collectors.set(tx, recorded);
      try {
        return await fn(tx);
      } finally {
        this.collectors.delete(tx);
      }
    });
    if (recorded.length > 0) {
      this.emitLocal(recorded);
      this.onRecorded?.();
    }
    return result;
  }

  /**
   * Records an event in the caller's transaction. Listeners hear it after the commit when the
   * transaction was started by `transaction()`; webhooks are sent either way.
   */
  async record<T extends LifecycleEventType>(tx: Tx, input: EventInput<T>): Promise<LifecycleEvent<T>> {
    const event = {
      id: randomId("evt"),
      type: input.type,
      createdAt: new Date(this.deps.now()),
      data: input.data,
    } as LifecycleEvent<T>;
    await tx.lifecycleEvent.create({
      data: {
        id: event.id,
        type: event.type,
        orgId: input.orgId,
        keyId: input.keyId,
        data: input.data as unknown as Prisma.InputJsonValue,
        dedupeKey: input.dedupeKey ?? null,
        createdAt: event.createdAt,
      },
    });
    this.collectors.get(tx)?.push(event as LifecycleEvent);
    return event;
  }

  /**
   * Records an event outside any transaction (e.g. `key.leaked` from a leak report) and tells the
   * listeners. Returns null when an event with the same dedupe key exists already.
   */
  async publish<T extends LifecycleEventType>(input: EventInput<T>): Promise<LifecycleEvent<T> | null> {
    if (!isEventType(input?.type)) {
      throw new FluxError("invalid_request", { detail: "publish() needs a lifecycle event type." });
    }
    const [event] = await this.insert([
      { ...input, id: randomId("evt"), createdAt: new Date(this.deps.now()) },
    ]);
    return (event as LifecycleEvent<T> | undefined) ?? null;
  }

  /**
   * @internal Inserts events, skipping those whose dedupe key is taken; tells the listeners about
   * the ones inserted and returns them.
   */
  async insert(events: QueuedEvent[]): Promise<LifecycleEvent[]> {
    if (events.length === 0) return [];
    const rows = await this.deps.prisma.lifecycleEvent.createManyAndReturn({
      data: events.map((event) => ({
        id: event.id,
        type: event.type,
        orgId: event.orgId,
        keyId: event.keyId,
        data: event.data as unknown as Prisma.InputJsonValue,
        dedupeKey: event.dedupeKey ?? null,
        createdAt: event.createdAt,
      })),
      skipDuplicates: true,
      select: { id: true },
    });
    const inserted = new Set(rows.map((row) => row.id));
    const emitted: LifecycleEvent[] = events
      .filter((event) => inserted.has(event.id))
      .map(
        (event) =>
          ({
            id: event.id,
            type: event.type,
            createdAt: event.createdAt,
            data: event.data,
          }) as LifecycleEvent,
      );
    if (emitted.length > 0) {
      this.emitLocal(emitted);
      this.onRecorded?.();
    }
    return emitted;
  }

  /** @internal A new event, for the periodic checks. */
  draft<T extends LifecycleEventType>(input: EventInput<T>): QueuedEvent {
    return { ...input, id: randomId("evt"), createdAt: new Date(this.deps.now()) };
  }

  /** Writes the queued hot-path events; resolves when they are written (or kept for a retry). */
  flush(): Promise<void> {
    const run = this.chain.then(() => this.writeQueued());
    this.chain = run.catch(() => {});
    return run;
  }

  async close(): Promise<void> {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await this.flush().catch(() => {});
    this.closed = true;
    this.dropped += this.queue.length;
    this.queue = [];
    this.limitObserver.active = false;
  }

  // -- In-process delivery -------------------------------------------------------------------------

  private emitLocal(events: LifecycleEvent[]): void {
    if (this.handlers.size === 0) return;
    // After the caller's current work: a listener never runs inside the lifecycle call.
    setImmediate(() => {
      for (const event of events) {
        const frozen = Object.freeze(event);
        for (const handler of this.handlers.get(event.type) ?? []) this.call(handler, frozen);
        for (const handler of this.handlers.get("*") ?? []) this.call(handler, frozen);
      }
    });
  }

  private call(handler: LifecycleHandler, event: LifecycleEvent): void {
    try {
      const returned = handler(event);
      if (returned && typeof (returned as Promise<void>).then === "function") {
        (returned as Promise<void>).then(undefined, (error) => this.handlerFailed(event, error));
      }
    } catch (error) {
      this.handlerFailed(event, error);
    }
  }

  private handlerFailed(event: LifecycleEvent, error: unknown): void {
    // The error's name only: its message is the listener's and may carry anything.
    this.deps.logger.warn?.(
      {
        event: "flux.events.handler_error",
        type: event.type,
        eventId: event.id,
        error: error instanceof Error ? error.name : typeof error,
      },
      "a lifecycle event listener failed",
    );
  }

  private refreshActive(): void {
    this.limitObserver.active =
      !this.closed &&
      (this.handlers.has("*") ||
        LIMIT_TYPES.some((type) => this.handlers.has(type) || this.endpointWants(type)));
  }

  private enqueue(input: EventInput): void {
    if (this.closed || this.queue.length >= MAX_QUEUED) {
      this.dropped++;
      return;
    }
    this.queue.push({ ...input, id: randomId("evt"), createdAt: new Date(this.deps.now()) });
    if (!this.writeScheduled) {
      this.writeScheduled = true;
      setImmediate(() => {
        this.writeScheduled = false;
        void this.flush().catch(() => {});
      });
    }
  }

  private async writeQueued(): Promise<void> {
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    try {
      await this.insert(batch);
    } catch {
      // Kept for a retry (bounded); the request that caused them is long answered.
      const room = MAX_QUEUED - this.queue.length;
      this.dropped += Math.max(0, batch.length - room);
      this.queue = [...batch.slice(0, room), ...this.queue];
      this.logThrottled(
        { event: "flux.events.write_failed", queued: this.queue.length },
        "events kept for a retry",
      );
      if (!this.closed && this.retryTimer === null) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          void this.flush().catch(() => {});
        }, RETRY_MS);
        this.retryTimer.unref();
      }
      throw new FluxError("store_unavailable");
    }
  }

  private logThrottled(fields: LogFields, message: string): void {
    const at = Date.now();
    if (at - this.lastLog < LOG_EVERY_MS) return;
    this.lastLog = at;
    this.deps.logger.warn?.(fields, message);
  }
}

export type { QueuedEvent };
