/**
 * `createFlux(options)`: opens the store, applies migrations, connects Redis when configured, and
 * returns the public API.
 */
import { Cluster, Redis } from "ioredis";
import { AuditLog, writeAudit } from "./audit.js";
import { type Billing, createBilling } from "./billing/billing.js";
import { type Database, guard, openDatabase } from "./database.js";
import { checkForKey, type EntitlementCheckOptions, flagContextFor } from "./entitlements.js";
import { FluxConfigError, FluxError } from "./errors.js";
import type { LifecycleEventType, LifecycleHandler } from "./events/event-types.js";
import { Events } from "./events/events.js";
import { Webhooks } from "./events/webhooks.js";
import { type ClientAddressSource, clientAddress } from "./http/client-address.js";
import { type InvalidationBus, localBus } from "./invalidation-bus.js";
import { type Invalidation, KeyCache } from "./keys/cache.js";
import { Keys } from "./keys/keys.js";
import { UnknownKeys } from "./keys/unknown-keys.js";
import { Limits } from "./limits/decide.js";
import { checkEntitlement, type EntitlementEntry, listEntitlements } from "./limits/entitlement-queries.js";
import { countingClusterOptions } from "./limits/redis-clients.js";
import { migrate } from "./migrator.js";
import { KeyObservations } from "./observations/key-observations.js";
import { type ClusterNode, type FluxOptions, type ResolvedOptions, resolveOptions } from "./options.js";
import { Orgs } from "./orgs.js";
import { Plans } from "./plans.js";
import { Portal } from "./portal/portal.js";
import { PostgresBus } from "./postgres-bus.js";
import type { Runtime } from "./runtime.js";
import { registerSeams } from "./seams.js";
import { ServerClock } from "./server-clock.js";
import { Telemetry } from "./telemetry/telemetry.js";
import type { KeyContext } from "./types.js";
import { Usage } from "./usage/usage.js";

export interface Flux {
  readonly plans: Plans;
  readonly orgs: Orgs;
  readonly keys: Keys;
  readonly audit: AuditLog;
  /** Usage tracking: `record()` per call (in memory), `query()`, `top()`, `prune()`, `rollup()`. */
  readonly usage: Usage;
  readonly entitlements: {
    /**
     * Synchronous and pure: answers from the context's entitlements (plan + org overrides, as
     * verified), with no I/O and no feature flags.
     */
    checkForKey(context: Pick<KeyContext, "entitlements">, name: string): boolean;
    /**
     * Whether an entitlement is in force: for a verified key's context (from its entitlements,
     * no I/O) or for an org id (reads the database). With `options.flags` (an OpenFeature client)
     * the flag of that name is evaluated for the key's (or org's) context, defaulting to the
     * entitlement: a rollout or kill switch can grant or withhold it.
     */
    check(context: string | KeyContext, name: string, options?: EntitlementCheckOptions): Promise<boolean>;
    /** The org's entitlements with their source (plan or override, with the override's expiry). */
    list(orgId: string): Promise<EntitlementEntry[]>;
  };
  readonly limits: {
    /** The client address of a request, trusting forwarded-for hops as `trustProxy` says. */
    clientAddress(source: ClientAddressSource): string | null;
  };
  /** What billing integrations (`@flux-keys/stripe`) use: provider events, meter outboxes. */
  readonly billing: Billing;
  /** The customer self-service portal: `handler(options)` (Web Request -> Response), `createSession()`. */
  readonly portal: Portal;
  /**
   * Listens to lifecycle events on this instance (`'*'` for all); returns the function that stops
   * listening. Listeners run after the change is committed; their errors are logged, never thrown.
   */
  on<T extends LifecycleEventType>(type: T | "*", handler: LifecycleHandler<T>): () => void;
  /** Signed webhooks of lifecycle events: `add`, `list`, `remove`, `deliveries`, `events`, `runOnce`. */
  readonly webhooks: Webhooks;
  /** Flushes usage, then releases the database, Redis and timers. Safe to call twice. */
  close(): Promise<void>;
  /**
   * @internal For tests and benchmarks only: resolved options and the store. Modules built over
   * an instance get narrow dependencies instead (src/seams.ts; `@flux-keys/core/admin`).
   */
  readonly internals: {
    options: ResolvedOptions;
    database: Database;
    cache: KeyCache;
    redis: Redis | Cluster | null;
    /** The invalidation bus: `hearing()` says whether every committed change reaches this instance. */
    bus: InvalidationBus;
    /** Lifecycle events: `publish({ type, orgId, keyId, data })` for events outside a transaction. */
    events: Events;
    /** Rate limits and the pre-authentication limiter (for tests and benchmarks: its bounds). */
    limits: Limits;
    /** The digest filter, lookup budget and negative cache of unknown keys. */
    unknownKeys: UnknownKeys;
    /** Spans and metrics; `createPrometheusRegistry` adds its registry here. */
    telemetry: Telemetry;
  };
}

export async function createFlux(options: FluxOptions = {}): Promise<Flux> {
  const resolved = resolveOptions(options);
  let database: Database;
  try {
    database = await openDatabase(resolved.database);
  } catch {
    throw new FluxError("store_unavailable", { detail: "The database could not be opened." });
  }
  const cleanup: Array<() => Promise<void>> = [() => database.close()];
  const closeAll = async () => {
    for (const step of cleanup.reverse()) await step().catch(() => {});
  };
  try {
    // Over the direct connection when there is one: the migrator holds an advisory lock and runs DDL.
    if (resolved.migrate) await migrate(database.sessionDriver);
    else await guard(() => database.prisma.$queryRaw`SELECT 1`);
    if (database.kind === "postgres" && resolved.serverClockIntervalMs !== null) {
      // From here on every part of this instance reads time from the server's clock.
      const serverClock = new ServerClock(resolved.clock, database.driver, resolved.logger);
      await serverClock.measure();
      serverClock.start(resolved.serverClockIntervalMs);
      cleanup.push(async () => serverClock.close());
      resolved.clock = serverClock.now;
    }

    const telemetry = new Telemetry(resolved.telemetry);
    const cache = new KeyCache(resolved.cache);
    // Unknown keys apart from known ones: the digest filter (read now), a budget, a negative cache.
    const unknownKeys = new UnknownKeys(resolved.unknownKeys, database.driver, resolved.logger);
    await guard(() => unknownKeys.start());
    cleanup.push(async () => unknownKeys.close());
    const applyChange = (change: Invalidation) => {
      cache.apply(change);
      unknownKeys.apply(change);
    };
    let bus: InvalidationBus = localBus(applyChange);
    if (resolved.database.kind === "postgres") {
      const config = resolved.database;
      bus = await PostgresBus.start({
        url: config.directUrl ?? config.url,
        schema: config.schema,
        maxStalenessMs: resolved.invalidation.maxStalenessMs,
        apply: applyChange,
        logger: resolved.logger,
        telemetry,
      });
      const opened = bus;
      cleanup.push(() => opened.close());
    }
    let redis: Redis | Cluster | null = null;
    if (resolved.redis !== null) {
      const config = resolved.redis;
      redis =
        "client" in config
          ? config.client
          : "cluster" in config
            ? config.cluster
            : "nodes" in config
              ? connectCluster(config.nodes)
              : connectRedis(config.url);
      if ("url" in config || "nodes" in config) {
        const owned = redis;
        cleanup.push(async () => {
          owned.disconnect();
        });
      }
      try {
        await whenReady(redis, 5_000);
        await redis.ping();
      } catch {
        throw new FluxError("store_unavailable", { detail: "Redis could not be reached." });
      }
    }

    const events = new Events({
      prisma: database.prisma,
      logger: resolved.logger,
      now: resolved.clock,
      quotaThresholds: resolved.webhooks.quotaThresholds,
    });
    const limits = await Limits.open({
      observer: events.limitObserver,
      options: resolved.limits,
      prisma: database.prisma,
      redis,
      redisPrefix: resolved.redis?.keyPrefix ?? "flux:",
      logger: resolved.logger,
      now: resolved.clock,
      clockInjected: resolved.clock !== Date.now,
    });
    cleanup.push(() => limits.close());
    // Closed before the limits and the database: stops the scheduler, writes queued events.
    const webhooks = new Webhooks(
      database.prisma,
      events,
      resolved.webhooks,
      resolved.clock,
      resolved.logger,
      telemetry,
    );
    cleanup.push(() => webhooks.close());
    webhooks.start();
    const observations = new KeyObservations(
      database.driver,
      resolved.clock,
      resolved.logger,
      resolved.observations.maxClientsPerKey,
    );
    cleanup.push(() => observations.close());
    observations.start(resolved.usage.flushIntervalMs);
    const rt: Runtime = {
      prisma: database.prisma,
      driver: database.driver,
      options: resolved,
      cache,
      unknownKeys,
      bus,
      limits,
      observations,
      events,
      telemetry,
      now: resolved.clock,
    };
    // Pushed last so that it runs first: usage is flushed while the database is still open.
    const usage = new Usage(database.driver, resolved.usage, resolved.clock, resolved.logger, telemetry);
    cleanup.push(() => usage.close());
    usage.start();
    let closed: Promise<void> | null = null;
    let portal: Portal | undefined;
    const flux: Flux = {
      plans: new Plans(rt),
      orgs: new Orgs(rt),
      keys: new Keys(rt),
      audit: new AuditLog(database.prisma),
      usage,
      entitlements: {
        checkForKey,
        check: async (context, name, options = {}) => {
          const entitled =
            typeof context === "string"
              ? await checkEntitlement(database.prisma, context, name, resolved.clock())
              : checkForKey(context, name);
          if (options.flags === undefined) return entitled;
          const flagContext =
            typeof context === "string" ? { targetingKey: context } : flagContextFor(context);
          const flagKey = options.flagKey ? options.flagKey(name) : name;
          return (await options.flags.getBooleanValue(flagKey, entitled, flagContext)) === true;
        },
        list: (orgId) => listEntitlements(database.prisma, orgId, resolved.clock()),
      },
      billing: createBilling(rt, database.driver),
      limits: { clientAddress: (source) => clientAddress(source, resolved.trust) },
      on: (type, handler) => events.on(type, handler),
      webhooks,
      close: () => {
        closed ??= closeAll();
        return closed;
      },
      internals: { options: resolved, database, cache, redis, bus, events, limits, unknownKeys, telemetry },
      get portal() {
        portal ??= new Portal(flux);
        return portal;
      },
    };
    registerSeams(flux, {
      httpAuth: {
        keyPrefix: resolved.keyPrefix,
        trust: resolved.trust,
        check: flux.keys.checkNow.bind(flux.keys),
      },
      leaks: {
        keyPrefix: resolved.keyPrefix,
        writeAudit: (entry) => writeAudit(database.prisma, entry),
        publish: (event) => events.publish(event),
      },
      metrics: { addSink: (sink) => telemetry.addSink(sink) },
      admin: {
        driver: database.driver,
        sessionDriver: database.sessionDriver,
        schema: resolved.database.kind === "postgres" ? resolved.database.schema : undefined,
      },
    });
    return flux;
  } catch (error) {
    await closeAll();
    if (error instanceof FluxError || error instanceof FluxConfigError) throw error;
    throw new FluxError("store_unavailable");
  }
}

/** Resolves once the client is connected (commands fail fast before that: no offline queue). */
function whenReady(redis: Redis | Cluster, timeoutMs: number): Promise<void> {
  if (redis.status === "ready") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off("ready", onReady);
      reject(new Error("timeout"));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once("ready", onReady);
  });
}

/** A Redis Cluster set up as `connectRedis` is: nothing waits, nothing is sent twice. */
function connectCluster(nodes: ClusterNode[]): Cluster {
  const cluster = new Cluster(nodes, countingClusterOptions());
  cluster.on("error", () => {
    // Reconnects and follows failovers by itself; failures surface through the commands.
  });
  return cluster;
}

function connectRedis(url: string): Redis {
  const redis = new Redis(url, {
    // Never hang a request on a dead Redis: fail commands fast and let the caller's policy decide.
    enableOfflineQueue: false,
    // Commands issued in one tick go out in one write (the limits' decision script is one command).
    enableAutoPipelining: true,
    maxRetriesPerRequest: 1,
    // A command whose reply was lost with its connection may have run: never send it again (a
    // limiter script sent twice counts one request twice). The caller's store policy answers it.
    autoResendUnfulfilledCommands: false,
    commandTimeout: 1_000,
    connectTimeout: 2_000,
    lazyConnect: false,
  });
  redis.on("error", () => {
    // Reconnects by itself; failures surface through the commands that need it.
  });
  return redis;
}
