/**
 * The invalidation bus on PostgreSQL: `LISTEN` on one dedicated connection (the direct URL when
 * the pool goes through PgBouncer) for the `NOTIFY`s that migration 0009's triggers send from the
 * transaction of every change, so a change is heard if and only if it committed, from whichever
 * process made it.
 *
 * Hearing is proven, not assumed: a heartbeat query on the listening connection every
 * `maxStaleness / 4`. PostgreSQL delivers a session's notifications before the answer to its next
 * query, so when a heartbeat sent at `t` is answered, every change committed before `t` has been
 * heard. `hearsUntil` is then `t + maxStaleness`: until that moment a cached record is as good as
 * the database; after it the instance is deaf, and the cache trusts a record for at most
 * `maxStaleness` after it was read (see `Keys.check`). On reconnecting, every cached record is
 * dropped: what was sent while the connection was down is lost.
 */
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import pg from "pg";
import { quoteIdent } from "./database.js";
import type { InvalidationBus } from "./invalidation-bus.js";
import type { Invalidation } from "./keys/cache.js";
import { isFilterHash } from "./keys/digest-filter.js";
import type { Logger } from "./options.js";
import type { Telemetry } from "./telemetry/telemetry.js";

export interface PostgresBusOptions {
  url: string;
  schema: string | undefined;
  maxStalenessMs: number;
  apply(change: Invalidation): void;
  logger: Logger;
  telemetry?: Telemetry;
}

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 2_000;

export class PostgresBus implements InvalidationBus {
  private client: pg.Client | null = null;
  private closed = false;
  /** `performance.now()` until which every committed change is known to have been heard. */
  private hearsUntil = 0;
  private readonly heartbeatMs: number;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  private constructor(private readonly options: PostgresBusOptions) {
    this.heartbeatMs = Math.max(25, Math.floor(options.maxStalenessMs / 4));
    options.telemetry?.observe("invalidationLag", () => this.lagSeconds());
  }

  /** Seconds since the last heartbeat that was answered was sent; null before the first. */
  lagSeconds(): number | null {
    if (this.hearsUntil === 0) return null;
    return Math.max(0, performance.now() - (this.hearsUntil - this.options.maxStalenessMs)) / 1000;
  }

  /** Resolves once listening, or after the first attempt failed (it keeps trying in the background). */
  static async start(options: PostgresBusOptions): Promise<PostgresBus> {
    const bus = new PostgresBus(options);
    const first = bus.connect().then(
      () => true,
      () => false,
    );
    const ok = await first;
    if (!ok) options.logger.warn?.({ event: "flux.invalidation.deaf" }, "invalidation bus not connected");
    bus.loop = bus.run(ok);
    return bus;
  }

  async publish(change: Invalidation): Promise<void> {
    // Other instances hear the trigger's NOTIFY; this one applies the change at once.
    this.options.apply(change);
  }

  trusts(readAt: number): boolean {
    const now = performance.now();
    return now < this.hearsUntil || now - readAt < this.options.maxStalenessMs;
  }

  async hearing(): Promise<boolean> {
    return performance.now() < this.hearsUntil;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => {});
    await this.loop;
  }

  private async connect(): Promise<void> {
    const { url, schema } = this.options;
    const client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: Math.max(1_000, this.options.maxStalenessMs),
      keepAlive: true,
      // Tells the listening sessions apart in pg_stat_activity (and shows where they connect).
      application_name: "flux-keys-bus",
      ...(schema ? { options: `-c search_path=${quoteIdent(schema)}` } : {}),
    });
    client.on("error", () => {
      // The heartbeat notices; the loop reconnects.
    });
    try {
      await client.connect();
      const sentAt = performance.now();
      const rows = await client.query<{ channel: string }>(
        "SELECT 'flux_inv_' || left(md5(current_schema()), 16) AS channel",
      );
      const channel = rows.rows[0]?.channel as string;
      client.on("notification", (message) => {
        if (message.channel === channel) this.receive(message.payload);
      });
      await client.query(`LISTEN ${quoteIdent(channel)}`);
      if (this.closed) throw new Error("closed");
      this.client = client;
      this.hearsUntil = sentAt + this.options.maxStalenessMs;
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
  }

  private receive(payload: string | undefined): void {
    if (payload === undefined) return;
    const colon = payload.indexOf(":");
    const kind = payload.slice(0, colon);
    const id = payload.slice(colon + 1);
    if (kind === "key" || kind === "org" || kind === "plan") this.options.apply({ kind, id });
    else if (kind === "issued") {
      this.options.apply(
        isFilterHash(id) ? { kind: "unknown-keys", filter: [id] } : { kind: "unknown-keys" },
      );
    }
  }

  /** Heartbeats while listening; reconnects (then drops the cache) when the connection fails. */
  private async run(connected: boolean): Promise<void> {
    let backoff = RECONNECT_MIN_MS;
    let wasDeaf = !connected;
    while (!this.closed) {
      const client = this.client;
      if (client === null) {
        try {
          await this.connect();
          backoff = RECONNECT_MIN_MS;
          if (wasDeaf) {
            this.options.logger.warn?.(
              { event: "flux.invalidation.reconnected" },
              "invalidation bus reconnected; cache dropped",
            );
            this.options.apply({ kind: "all" });
          }
          wasDeaf = false;
        } catch {
          await this.sleep(backoff);
          backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
        }
        continue;
      }
      await this.sleep(this.heartbeatMs);
      if (this.closed) break;
      const sentAt = performance.now();
      const heard = await this.heartbeat(client);
      this.options.telemetry?.heartbeat((performance.now() - sentAt) / 1000, heard);
      if (heard) {
        this.hearsUntil = sentAt + this.options.maxStalenessMs;
      } else {
        this.options.logger.warn?.({ event: "flux.invalidation.deaf" }, "invalidation bus lost");
        wasDeaf = true;
        this.client = null;
        // A partitioned connection may never answer `end()`: drop the socket.
        (
          client as unknown as { connection?: { stream?: { destroy(): void } } }
        ).connection?.stream?.destroy();
        client.end().catch(() => {});
      }
    }
  }

  /** One `SELECT 1` on the listening connection, answered within the staleness bound, or false. */
  private async heartbeat(client: pg.Client): Promise<boolean> {
    const timeout = new AbortController();
    try {
      return await Promise.race([
        client.query("SELECT 1").then(
          () => true,
          () => false,
        ),
        delay(this.options.maxStalenessMs / 2, false, { signal: timeout.signal }).catch(() => false),
      ]);
    } finally {
      timeout.abort();
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }
}
