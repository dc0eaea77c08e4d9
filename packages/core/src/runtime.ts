import type { PrismaClient } from "./database.js";
import type { InvalidationBus } from "./invalidation-bus.js";
import type { KeyCache } from "./key-cache.js";
import type { Limits } from "./limits/limits.js";
import type { ResolvedOptions } from "./options.js";
import type { Actor } from "./types.js";

/** What the services of one Flux instance share. Internal. */
export interface Runtime {
  prisma: PrismaClient;
  options: ResolvedOptions;
  cache: KeyCache;
  bus: InvalidationBus;
  /** Rate limits, quotas and the pre-authentication limiter. */
  limits: Limits;
  now(): number;
}

export const SYSTEM_ACTOR: Actor = Object.freeze({ type: "system" });
