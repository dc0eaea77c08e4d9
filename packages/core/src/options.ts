/**
 * The one options object of `createFlux`, resolved once into an internal config. The caller's
 * object is never mutated; unknown options are reported; every default is documented here.
 */
import type { Cluster, Redis } from "ioredis";
import type { DatabaseConfig } from "./database.js";
import { type Duration, toMs } from "./duration.js";
import { FluxConfigError } from "./errors.js";
import {
  type ResolvedWebhookOptions,
  resolveWebhookOptions,
  type WebhookOptions,
} from "./events/webhook-options.js";
import { compileTrust, type TrustProxy } from "./http/client-address.js";
import { ENVIRONMENTS, isValidPrefix, type KeyEnvironment } from "./keys/format.js";
import type { UnknownKeyOptions } from "./keys/unknown-keys.js";
import { type LimitOptions, type ResolvedLimitOptions, resolveLimitOptions } from "./limits/limit-options.js";
import {
  type ResolvedTelemetryOptions,
  resolveTelemetryOptions,
  type TelemetryOptions,
} from "./telemetry/telemetry-options.js";
import { type ResolvedUsageOptions, resolveUsageOptions, type UsageOptions } from "./usage/usage-options.js";

/** What every log line carries: a stable `event` name (`flux.usage.flush_failed`), never a secret. */
export interface LogFields {
  event: string;
  [field: string]: unknown;
}

/**
 * A pino logger as is (or any object with some of these methods), called as `(fields, message)`
 * on the logger itself, so pino's child loggers, redaction and serializers apply.
 */
export interface Logger {
  debug?(fields: LogFields, message?: string): void;
  info?(fields: LogFields, message?: string): void;
  warn?(fields: LogFields, message?: string): void;
  error?(fields: LogFields, message?: string): void;
}

export interface FluxOptions {
  /**
   * Where keys live.
   * - `{ pglite: 'memory://' }` or `{ pglite: true }`: embedded PGlite in memory;
   * - `{ pglite: './folder' }`: embedded PGlite persisted in a folder;
   * - `{ url }`: PostgreSQL through `@prisma/adapter-pg` (`schema` sets the search path).
   *   `directUrl` is a direct connection to the server for what needs a session of its own (the
   *   invalidation bus's `LISTEN`), when `url` goes through a transaction pooler such as PgBouncer.
   * @default `DATABASE_URL` when set, else embedded PGlite in memory
   */
  database?:
    | { pglite: string | true }
    | { url: string; schema?: string; poolSize?: number; directUrl?: string };
  /**
   * Redis, Valkey or Redis Cluster for limits and quotas shared by every instance (invalidation
   * goes through PostgreSQL, see `invalidation`). One of:
   * - `{ url }`: one server;
   * - `{ client }`: an ioredis client you own (Flux Keys will not close it);
   * - `{ cluster: [{ host, port }, …] }`: a Redis Cluster, from some of its nodes;
   * - `{ cluster: new Cluster(…) }`: an ioredis `Cluster` you own (Flux Keys will not close it).
   * All counters of one key live in its org's hash slot (`{org}`), so every decision is one
   * script on one node.
   * @default `REDIS_URL` when set, else none (limits in memory, quotas in the database)
   */
  redis?:
    | { url: string; keyPrefix?: string }
    | { client: Redis; keyPrefix?: string }
    | { cluster: readonly ClusterNode[] | Cluster; keyPrefix?: string }
    | null;
  /** Apply the SQL migrations on start. @default true */
  migrate?: boolean;
  /** Key prefix: keys look like `<prefix>_live_…`. Lowercase letters and digits. @default 'flux' */
  keyPrefix?: string;
  /** Server-side secret; when set keys are stored as HMAC-SHA-256 instead of SHA-256. @default none */
  pepper?: string;
  /**
   * Key environments this deployment accepts. A key of another one (a `test` key presented to a
   * live-only deployment: `['live']`) is refused with `key_invalid` from its format alone, before
   * any cache or database read. Issuing keys of any environment is unaffected.
   * @default ['live', 'test']
   */
  environments?: readonly KeyEnvironment[];
  cache?: {
    /** Most verification records kept in memory. @default 10000 */
    max?: number;
    /** How long a known key is served from memory (bounds revocation delay without Redis). @default '30s' */
    ttl?: Duration;
    /** How long an unknown key is remembered as unknown. @default '2s' */
    negativeTtl?: Duration;
    /**
     * Unknown digests remembered (for `negativeTtl`), at most; kept apart from the known keys of
     * `max`, so a flood of unknown keys evicts no real one.
     * @default 10000
     */
    negativeMax?: number;
    /**
     * A Bloom filter of every key digest (built from the database at start, about 1.7 MB per
     * million keys, kept current on issue and rotation through the invalidation bus): a
     * well-formed key it has never seen is refused with `key_invalid` and no database read.
     * `false`: every uncached key is read from the database.
     * @default true
     */
    filter?: boolean;
    /**
     * Database lookups per second, per instance, for keys the filter has not seen (a key issued
     * on another instance whose bus message is late or lost still gets in); past it such keys are
     * refused without I/O. `0`: the filter alone decides.
     * @default 20
     */
    unknownLookupsPerSecond?: number;
  };
  /**
   * How changes reach the caches of other instances. On PostgreSQL every committed change to a
   * key, org, plan or entitlement override is heard through `LISTEN/NOTIFY` within a second; an
   * instance that cannot prove it hears (heartbeats on the listening connection) trusts a cached
   * record for at most `maxStaleness` before reading it again. On PGlite (one process) changes are
   * applied in process.
   */
  invalidation?: {
    /** How long a cached record is trusted while the bus is not heard. @default '1s' */
    maxStaleness?: Duration;
    /**
     * While the bus is not heard and the database cannot be read either: `'serve-cached'` keeps
     * answering from the cache (no change can commit while the database is down), `'refuse'`
     * answers `store_unavailable`.
     * @default 'serve-cached'
     */
    whenDatabaseDown?: "serve-cached" | "refuse";
  };
  /** Milliseconds since the epoch; injectable for tests. @default Date.now */
  clock?: () => number;
  /**
   * Decide time with the database server's clock, so that instances with skewed clocks agree on
   * expiry and grace: the offset of `clock` to PostgreSQL's clock is measured at start and every
   * `interval`, and added to it. Ignored on PGlite (it runs in this process, on this clock).
   * @default { interval: '1m' } on PostgreSQL; `false` when a `clock` is injected (a test's fake time is used as is)
   */
  serverClock?: boolean | { interval?: Duration };
  /** pino-style logger for operational events (never given secrets or digests). @default none */
  logger?: Logger;
  /**
   * OpenTelemetry: `flux.verify` spans and `flux.*` metrics through `@opentelemetry/api` (no-ops
   * until the app installs an SDK). See `TelemetryOptions`.
   * @default the global tracer and meter providers, no org / plan metric attributes
   */
  telemetry?: TelemetryOptions;
  /**
   * Which proxies in front of this instance to believe, for every part of it: the client address
   * (the pre-authentication limiter, key observations, the portal's sessions and audit entries,
   * `flux.limits.clientAddress()`) from `X-Forwarded-For`, and the portal's scheme and host (so its
   * origin check and `Secure` cookies) from `X-Forwarded-Proto` / `X-Forwarded-Host` or
   * `Forwarded`. Forwarded headers count only when the socket's peer is trusted.
   * - `false`: none (only the socket address and the connection's own scheme);
   * - `true`: every hop (the leftmost `X-Forwarded-For` entry is the client);
   * - a number: that many hops from the socket;
   * - addresses / CIDRs of your proxies (also `'loopback'`, `'linklocal'`, `'uniquelocal'`), as an
   *   array or a comma-separated string.
   * The same values as Express's `trust proxy` setting and Fastify's `trustProxy`: give both the same.
   * @default false
   */
  trustProxy?: TrustProxy;
  /**
   * Usage tracking (`flux.usage`): flush cadence, buffer bound, rollup and retention. Every
   * default is a `@default` tag on `UsageOptions`.
   * @default { flushInterval: '5s', maxBufferedBuckets: 100000, flushAt: 10000, batchSize: 5000, rollupAfter: '7d', retention: null, maintenanceInterval: '1h' }
   */
  usage?: UsageOptions;
  /**
   * Rate limits and quotas: what happens when the limit store fails, and the pre-authentication
   * limiter. Every default is a `@default` tag on `LimitOptions`.
   * @default { onStoreError: 'insurance', preAuth: { limit: 30, window: '1m', maxAddresses: 50000 } }
   */
  limits?: LimitOptions;
  /**
   * Lifecycle events sent as signed webhooks: endpoints, retries, the `key.expiring` /
   * `key.unused` checks and `quota.threshold` fractions. Every default is a `@default` tag on
   * `WebhookOptions`.
   * @default { endpoints: [], maxAttempts: 8, backoff: { initial: '10s', max: '1h' }, timeout: '5s', interval: '5s', checkInterval: '1h', expiringDays: 7, unusedDays: 30, quotaThresholds: [0.8, 1], retention: '90d', allowPrivateNetworks: false }
   */
  webhooks?: WebhookOptions;
  observations?: {
    /**
     * Clients (address and user agent) kept per key in `flux_key_clients` while it is in a
     * rotation grace, the most recently seen; older ones are summed into one row per key, so
     * `graceUsage().calls` stays exact while a flood of user agents adds no rows.
     * @default 100
     */
    maxClientsPerKey?: number;
  };
}

/** A node of a Redis Cluster to discover the others from. */
export interface ClusterNode {
  host: string;
  port: number;
}

export interface ResolvedOptions {
  database: DatabaseConfig;
  redis:
    | { url: string; keyPrefix: string }
    | { client: Redis; keyPrefix: string }
    | { nodes: ClusterNode[]; keyPrefix: string }
    | { cluster: Cluster; keyPrefix: string }
    | null;
  migrate: boolean;
  keyPrefix: string;
  pepper: string | undefined;
  environments: ReadonlySet<KeyEnvironment>;
  cache: { max: number; ttlMs: number; negativeTtlMs: number };
  invalidation: { maxStalenessMs: number; whenDatabaseDown: "serve-cached" | "refuse" };
  unknownKeys: UnknownKeyOptions;
  clock: () => number;
  /** Interval of the offset measurement, or null when the local clock is used as is. */
  serverClockIntervalMs: number | null;
  logger: Logger;
  telemetry: ResolvedTelemetryOptions;
  trustProxy: TrustProxy;
  /** `trustProxy` compiled once: `(address, hop) => trusted`. */
  trust: (address: string, hop: number) => boolean;
  usage: ResolvedUsageOptions;
  limits: ResolvedLimitOptions;
  webhooks: ResolvedWebhookOptions;
  observations: { maxClientsPerKey: number };
}

const KNOWN = new Set([
  "database",
  "redis",
  "migrate",
  "keyPrefix",
  "pepper",
  "environments",
  "cache",
  "invalidation",
  "clock",
  "serverClock",
  "logger",
  "telemetry",
  "trustProxy",
  "usage",
  "limits",
  "webhooks",
  "observations",
]);

const CACHE_KNOWN = new Set([
  "max",
  "ttl",
  "negativeTtl",
  "negativeMax",
  "filter",
  "unknownLookupsPerSecond",
]);

export function resolveOptions(
  options: FluxOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): ResolvedOptions {
  for (const name of Object.keys(options)) {
    if (!KNOWN.has(name)) {
      throw new FluxConfigError("unknown_option", `Unknown option '${name}' for createFlux().`);
    }
  }
  const keyPrefix = options.keyPrefix ?? "flux";
  if (!isValidPrefix(keyPrefix)) {
    throw new FluxConfigError(
      "invalid_option",
      "keyPrefix must be 1-16 lowercase letters or digits, starting with a letter.",
    );
  }
  if (options.pepper !== undefined && options.pepper.length < 16) {
    throw new FluxConfigError("invalid_option", "pepper must be at least 16 characters.");
  }
  const environments = options.environments ?? ENVIRONMENTS;
  if (
    !Array.isArray(environments) ||
    environments.length === 0 ||
    !environments.every((env) => (ENVIRONMENTS as readonly unknown[]).includes(env))
  ) {
    throw new FluxConfigError(
      "invalid_option",
      "environments must be a non-empty list of 'live' and 'test'.",
    );
  }
  const redis = resolveRedis(options.redis, env);
  const trustProxy = options.trustProxy ?? false;
  let trust: ResolvedOptions["trust"];
  try {
    trust = compileTrust(trustProxy);
  } catch (error) {
    throw new FluxConfigError("invalid_option", `trustProxy: ${(error as Error).message}.`);
  }
  const cacheMax = options.cache?.max ?? 10_000;
  if (!Number.isInteger(cacheMax) || cacheMax < 1) {
    throw new FluxConfigError("invalid_option", "cache.max must be a positive integer.");
  }
  for (const name of Object.keys(options.cache ?? {})) {
    if (!CACHE_KNOWN.has(name)) {
      throw new FluxConfigError("unknown_option", `Unknown option 'cache.${name}' for createFlux().`);
    }
  }
  const negativeMax = options.cache?.negativeMax ?? 10_000;
  if (!Number.isInteger(negativeMax) || negativeMax < 1) {
    throw new FluxConfigError("invalid_option", "cache.negativeMax must be a positive integer.");
  }
  const filter = options.cache?.filter ?? true;
  if (typeof filter !== "boolean") {
    throw new FluxConfigError("invalid_option", "cache.filter must be true or false.");
  }
  const lookupsPerSecond = options.cache?.unknownLookupsPerSecond ?? 20;
  if (typeof lookupsPerSecond !== "number" || !Number.isFinite(lookupsPerSecond) || lookupsPerSecond < 0) {
    throw new FluxConfigError("invalid_option", "cache.unknownLookupsPerSecond must be a number >= 0.");
  }
  const negativeTtlMs = configMs(options.cache?.negativeTtl ?? "2s", "cache.negativeTtl");
  for (const name of Object.keys(options.observations ?? {})) {
    if (name !== "maxClientsPerKey") {
      throw new FluxConfigError("unknown_option", `Unknown option 'observations.${name}' for createFlux().`);
    }
  }
  const maxClientsPerKey = options.observations?.maxClientsPerKey ?? 100;
  if (!Number.isInteger(maxClientsPerKey) || maxClientsPerKey < 1 || maxClientsPerKey > 10_000) {
    throw new FluxConfigError(
      "invalid_option",
      "observations.maxClientsPerKey must be an integer from 1 to 10000.",
    );
  }
  return {
    database: resolveDatabase(options.database, env),
    redis,
    migrate: options.migrate ?? true,
    keyPrefix,
    pepper: options.pepper,
    environments: new Set(environments),
    cache: {
      max: cacheMax,
      ttlMs: configMs(options.cache?.ttl ?? "30s", "cache.ttl"),
      negativeTtlMs,
    },
    invalidation: resolveInvalidation(options.invalidation),
    unknownKeys: { filter, falsePositiveRate: 0.001, negativeMax, negativeTtlMs, lookupsPerSecond },
    clock: options.clock ?? Date.now,
    serverClockIntervalMs: resolveServerClock(options),
    logger: options.logger ?? {},
    telemetry: resolveTelemetryOptions(options.telemetry),
    trustProxy,
    trust,
    usage: resolveUsageOptions(options.usage),
    limits: resolveLimitOptions(options.limits),
    webhooks: resolveWebhookOptions(options.webhooks),
    observations: { maxClientsPerKey },
  };
}

const REDIS_FORMS =
  "redis must be { url }, { client }, { cluster: [{ host, port }, …] }, { cluster: Cluster } or null.";

function resolveRedis(input: FluxOptions["redis"], env: NodeJS.ProcessEnv): ResolvedOptions["redis"] {
  if (input === undefined) return env.REDIS_URL ? { url: env.REDIS_URL, keyPrefix: "flux:" } : null;
  if (input === null) return null;
  if (typeof input !== "object") throw new FluxConfigError("invalid_option", REDIS_FORMS);
  // One form: an option of another form beside it is reported as not understood.
  const form = "url" in input ? "url" : "client" in input ? "client" : "cluster" in input ? "cluster" : "url";
  refuseUnknown(input, [form, "keyPrefix"], "redis");
  const keyPrefix = input.keyPrefix ?? "flux:";
  if (typeof keyPrefix !== "string")
    throw new FluxConfigError("invalid_option", "redis.keyPrefix must be a string.");
  if ("client" in input) {
    if (input.client === null || typeof input.client !== "object") {
      throw new FluxConfigError("invalid_option", REDIS_FORMS);
    }
    return { client: input.client, keyPrefix };
  }
  if ("cluster" in input) {
    const cluster = input.cluster;
    if (!Array.isArray(cluster)) {
      if (cluster === null || typeof cluster !== "object" || (cluster as Cluster).isCluster !== true) {
        throw new FluxConfigError("invalid_option", REDIS_FORMS);
      }
      return { cluster: cluster as Cluster, keyPrefix };
    }
    if (cluster.length === 0) {
      throw new FluxConfigError("invalid_option", "redis.cluster must name at least one node.");
    }
    const nodes = cluster.map((node: unknown, i: number) => {
      if (node === null || typeof node !== "object") {
        throw new FluxConfigError("invalid_option", `redis.cluster[${i}] must be { host, port }.`);
      }
      refuseUnknown(node, ["host", "port"], `redis.cluster[${i}]`);
      const { host, port } = node as Partial<ClusterNode>;
      if (
        typeof host !== "string" ||
        host.length === 0 ||
        !Number.isInteger(port) ||
        (port as number) < 1 ||
        (port as number) > 65_535
      ) {
        throw new FluxConfigError(
          "invalid_option",
          `redis.cluster[${i}] must be { host: string, port: integer from 1 to 65535 }.`,
        );
      }
      return { host, port: port as number };
    });
    return { nodes, keyPrefix };
  }
  if (typeof input.url !== "string") throw new FluxConfigError("invalid_option", REDIS_FORMS);
  return { url: input.url, keyPrefix };
}

function resolveServerClock(options: FluxOptions): number | null {
  const setting = options.serverClock ?? options.clock === undefined;
  if (setting === false) return null;
  if (setting === true) return 60_000;
  if (typeof setting !== "object" || setting === null) {
    throw new FluxConfigError("invalid_option", "serverClock must be a boolean or { interval }.");
  }
  for (const name of Object.keys(setting)) {
    if (name !== "interval") {
      throw new FluxConfigError("unknown_option", `Unknown option 'serverClock.${name}' for createFlux().`);
    }
  }
  const ms = configMs(setting.interval ?? "1m", "serverClock.interval");
  if (ms < 1_000) throw new FluxConfigError("invalid_option", "serverClock.interval must be at least 1s.");
  return ms;
}

function resolveInvalidation(options: FluxOptions["invalidation"]): ResolvedOptions["invalidation"] {
  for (const name of Object.keys(options ?? {})) {
    if (name !== "maxStaleness" && name !== "whenDatabaseDown") {
      throw new FluxConfigError("unknown_option", `Unknown option 'invalidation.${name}' for createFlux().`);
    }
  }
  const maxStalenessMs = configMs(options?.maxStaleness ?? "1s", "invalidation.maxStaleness");
  if (maxStalenessMs < 100) {
    throw new FluxConfigError("invalid_option", "invalidation.maxStaleness must be at least 100ms.");
  }
  const whenDatabaseDown = options?.whenDatabaseDown ?? "serve-cached";
  if (whenDatabaseDown !== "serve-cached" && whenDatabaseDown !== "refuse") {
    throw new FluxConfigError(
      "invalid_option",
      "invalidation.whenDatabaseDown must be 'serve-cached' or 'refuse'.",
    );
  }
  return { maxStalenessMs, whenDatabaseDown };
}

function resolveDatabase(database: FluxOptions["database"], env: NodeJS.ProcessEnv): DatabaseConfig {
  if (database === undefined) {
    if (env.DATABASE_URL) return postgres(env.DATABASE_URL, undefined, 10);
    return { kind: "pglite", dataDir: undefined };
  }
  if (typeof database !== "object" || database === null) {
    throw new FluxConfigError("invalid_option", "database must be { pglite } or { url }.");
  }
  refuseUnknown(
    database,
    "pglite" in database ? ["pglite"] : ["url", "schema", "poolSize", "directUrl"],
    "database",
  );
  if ("pglite" in database) {
    const dir = database.pglite;
    return { kind: "pglite", dataDir: dir === true || dir === "memory://" ? undefined : dir };
  }
  if ("url" in database && typeof database.url === "string" && database.url.length > 0) {
    const config = postgres(database.url, database.schema, database.poolSize ?? 10);
    if (database.directUrl === undefined || config.kind !== "postgres") return config;
    if (typeof database.directUrl !== "string" || !URL.canParse(database.directUrl)) {
      throw new FluxConfigError("invalid_option", "database.directUrl is not a valid PostgreSQL URL.");
    }
    return { ...config, directUrl: database.directUrl };
  }
  throw new FluxConfigError("invalid_option", "database must be { pglite } or { url }.");
}

/** Takes Prisma's `?schema=` convention out of the URL (the pg driver would send it to the server). */
function postgres(url: string, schema: string | undefined, poolSize: number): DatabaseConfig {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new FluxConfigError("invalid_option", "database.url is not a valid PostgreSQL URL.");
  }
  const fromUrl = parsed.searchParams.get("schema");
  if (fromUrl === null) return { kind: "postgres", url, schema, poolSize };
  parsed.searchParams.delete("schema");
  return { kind: "postgres", url: parsed.toString(), schema: schema ?? fromUrl, poolSize };
}

function configMs(value: Duration, name: string): number {
  try {
    return toMs(value, name);
  } catch {
    throw new FluxConfigError("invalid_option", `${name} must be a duration such as '30s'.`);
  }
}

/** Every option Flux Keys does not understand is a mistake worth stopping for (`{ cluster }`…). */
function refuseUnknown(section: object, known: readonly string[], where: string): void {
  for (const name of Object.keys(section)) {
    if (!known.includes(name)) {
      throw new FluxConfigError("unknown_option", `Unknown option '${where}.${name}' for createFlux().`);
    }
  }
}
