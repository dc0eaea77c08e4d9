import type { PrismaClient, SqlDriver } from "./database.js";
import type { Events } from "./events/events.js";
import type { InvalidationBus } from "./invalidation-bus.js";
import type { KeyCache } from "./keys/cache.js";
import type { UnknownKeys } from "./keys/unknown-keys.js";
import type { Limits } from "./limits/decide.js";
import type { KeyObservations } from "./observations/key-observations.js";
import type { ResolvedOptions } from "./options.js";
import type { Telemetry } from "./telemetry/telemetry.js";
import type { Actor } from "./types.js";

/** What the services of one Flux instance share. Internal. */
export interface Runtime {
  prisma: PrismaClient;
  /** The same pool (or PGlite) without Prisma: the key read of the cold path. */
  driver: SqlDriver;
  options: ResolvedOptions;
  cache: KeyCache;
  /** Unknown keys: the digest filter, the lookup budget and the negative cache. */
  unknownKeys: UnknownKeys;
  bus: InvalidationBus;
  /** Rate limits, quotas and the pre-authentication limiter. */
  limits: Limits;
  /** Lifecycle events: `record(tx, …)` next to the audit write, listeners, webhook outbox. */
  events: Events;
  /** Clients of keys in grace and scopes exercised, buffered and flushed in batches. */
  observations: KeyObservations;
  /** Spans and metrics (OpenTelemetry API; no-ops without an SDK). */
  telemetry: Telemetry;
  now(): number;
}

export const SYSTEM_ACTOR: Actor = Object.freeze({ type: "system" });
