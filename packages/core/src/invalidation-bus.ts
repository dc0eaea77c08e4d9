/**
 * Carries cache invalidations to every instance. Without Redis it is local only (one process);
 * with Redis it publishes on a channel that every instance subscribes to. While the subscriber is
 * disconnected messages are lost, so after every reconnect the whole cache is dropped.
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { Invalidation } from "./key-cache.js";
import type { Logger } from "./options.js";

export interface InvalidationBus {
  publish(change: Invalidation): Promise<void>;
  close(): Promise<void>;
}

export function localBus(apply: (change: Invalidation) => void): InvalidationBus {
  return {
    publish: async (change) => apply(change),
    close: async () => {},
  };
}

export async function redisBus(
  publisher: Redis,
  channel: string,
  apply: (change: Invalidation) => void,
  logger: Logger,
): Promise<InvalidationBus> {
  const origin = randomUUID();
  const subscriber = publisher.duplicate({ enableOfflineQueue: true });
  subscriber.on("error", () => {
    // Reported through the publisher's failures; reconnects on its own.
  });
  let connectedOnce = false;
  subscriber.on("ready", () => {
    if (connectedOnce) {
      logger.warn?.({ event: "flux.invalidation.resubscribed" }, "cache dropped after reconnect");
      apply({ kind: "all" });
    }
    connectedOnce = true;
  });
  subscriber.on("message", (_channel: string, message: string) => {
    const change = decode(message);
    if (change && change.origin !== origin) apply(change.change);
  });
  await subscriber.subscribe(channel);

  return {
    async publish(change) {
      apply(change);
      try {
        await publisher.publish(channel, JSON.stringify({ origin, ...change }));
      } catch {
        // Other instances fall back to the cache TTL; the change itself is already stored.
        logger.warn?.({ event: "flux.invalidation.publish_failed" }, "invalidation not published");
      }
    },
    async close() {
      subscriber.disconnect();
    },
  };
}

function decode(message: string): { origin: string; change: Invalidation } | null {
  try {
    const parsed = JSON.parse(message) as {
      origin?: unknown;
      kind?: unknown;
      id?: unknown;
      filter?: unknown;
    };
    if (typeof parsed.origin !== "string") return null;
    if (parsed.kind === "all") return { origin: parsed.origin, change: { kind: parsed.kind } };
    if (parsed.kind === "unknown-keys") {
      // The digest filter's hashes of the issued keys (checked again where they are used).
      const filter = Array.isArray(parsed.filter)
        ? parsed.filter.filter((hash): hash is string => typeof hash === "string").slice(0, 1_000)
        : [];
      return { origin: parsed.origin, change: { kind: parsed.kind, filter } };
    }
    if (
      (parsed.kind === "key" || parsed.kind === "org" || parsed.kind === "plan") &&
      typeof parsed.id === "string"
    ) {
      return { origin: parsed.origin, change: { kind: parsed.kind, id: parsed.id } };
    }
  } catch {
    // Not ours; ignore.
  }
  return null;
}
