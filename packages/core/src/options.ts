/**
 * The one options object of `createFlux`: one zod schema per section holds every option's name,
 * its check and its default (once, in `prefault`, mirrored by the `@default` tag above it), and
 * `FluxOptions` is inferred from it. The caller's object is never mutated; a name Flux Keys does
 * not know, at any depth, is `unknown_option`; a bad value is `invalid_option`. The TSDoc comments
 * sit on the schema's fields: editors show them on `FluxOptions` (z.input keeps each field's
 * declaration). What depends on the environment (`DATABASE_URL`, `REDIS_URL`) or on another
 * option (`serverClock` on `clock`) is settled in `resolveOptions`, after the schema.
 */
import type { Cluster, Redis } from "ioredis";
import { z } from "zod";
import type { DatabaseConfig } from "./database.js";
import { FluxConfigError } from "./errors.js";
import { webhookOptionsSchema } from "./events/webhook-options.js";
import { compileTrust, type TrustProxy } from "./http/client-address.js";
import { ENVIRONMENTS, isValidPrefix, type KeyEnvironment } from "./keys/format.js";
import type { UnknownKeyOptions } from "./keys/unknown-keys.js";
import { limitOptionsSchema } from "./limits/limit-options.js";
import { choose, duration, forms, instance, integer, parseOptions, section } from "./options-schema.js";
import { telemetryOptionsSchema } from "./telemetry/telemetry-options.js";
import { usageOptionsSchema } from "./usage/usage-options.js";

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

/** A node of a Redis Cluster to discover the others from. */
export interface ClusterNode {
  host: string;
  port: number;
}

const isObject = (value: unknown): value is object => typeof value === "object" && value !== null;
const REDIS_FORMS =
  "must be { url }, { client }, { cluster: [{ host, port }, …] }, { cluster: Cluster } or null.";
const DATABASE_FORMS = "must be { pglite } or { url }.";
const redisKeyPrefix = z.string({ error: "must be a string." }).prefault("flux:");
const nodeForm = "must be { host: string, port: integer from 1 to 65535 }.";
const clusterNode = section(
  {
    host: z.string({ error: nodeForm }).min(1, { error: nodeForm }),
    port: integer(nodeForm, 1, 65_535),
  },
  "must be { host, port }.",
);
const positive = "must be a positive integer.";

const fluxSection = section({
  /**
   * Where keys live.
   * - `{ pglite: 'memory://' }` or `{ pglite: true }`: embedded PGlite in memory;
   * - `{ pglite: './folder' }`: embedded PGlite persisted in a folder;
   * - `{ url }`: PostgreSQL through `@prisma/adapter-pg` (`schema` sets the search path).
   *   `directUrl` is a direct connection to the server for what needs a session of its own (the
   *   invalidation bus's `LISTEN`), when `url` goes through a transaction pooler such as PgBouncer.
   * @default `DATABASE_URL` when set, else embedded PGlite in memory
   */
  database: forms(
    {
      pglite: section({
        pglite: z.union([z.string(), z.literal(true)], { error: "must be a folder, 'memory://' or true." }),
      }),
      url: section({
        url: z.string({ error: DATABASE_FORMS }).min(1, { error: DATABASE_FORMS }),
        schema: z.string({ error: "must be a string." }).optional(),
        poolSize: z.number({ error: positive }).optional(),
        directUrl: z
          .string({ error: "is not a valid PostgreSQL URL." })
          .refine((url) => URL.canParse(url), { error: "is not a valid PostgreSQL URL." })
          .optional(),
      }),
    },
    "url",
    DATABASE_FORMS,
  ).optional(),
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
  redis: forms(
    {
      url: section({ url: z.string({ error: REDIS_FORMS }), keyPrefix: redisKeyPrefix }),
      client: section({ client: instance<Redis>(isObject, REDIS_FORMS), keyPrefix: redisKeyPrefix }),
      cluster: section({
        cluster: choose(
          Array.isArray,
          z
            .array(clusterNode)
            .min(1, { error: "must name at least one node." })
            .transform((nodes) => ({ nodes })),
          instance<Cluster>(
            (value) => isObject(value) && (value as Cluster).isCluster === true,
            REDIS_FORMS,
          ).transform((cluster) => ({ cluster })),
        ) as z.ZodType<{ nodes: ClusterNode[] } | { cluster: Cluster }, readonly ClusterNode[] | Cluster>,
        keyPrefix: redisKeyPrefix,
      }),
    },
    "url",
    REDIS_FORMS,
  )
    .nullable()
    .optional(),
  /** Apply the SQL migrations on start. @default true */
  migrate: z.boolean({ error: "must be true or false." }).prefault(true),
  /** Key prefix: keys look like `<prefix>_live_…`. Lowercase letters and digits. @default 'flux' */
  keyPrefix: z
    .custom<string>((value) => typeof value === "string" && isValidPrefix(value), {
      error: "must be 1-16 lowercase letters or digits, starting with a letter.",
    })
    .prefault("flux"),
  /** Server-side secret; when set keys are stored as HMAC-SHA-256 instead of SHA-256. @default none */
  pepper: z
    .string({ error: "must be at least 16 characters." })
    .min(16, { error: "must be at least 16 characters." })
    .optional(),
  /**
   * Key environments this deployment accepts. A key of another one (a `test` key presented to a
   * live-only deployment: `['live']`) is refused with `key_invalid` from its format alone, before
   * any cache or database read. Issuing keys of any environment is unaffected.
   * @default ['live', 'test']
   */
  environments: z
    .array(z.enum(ENVIRONMENTS, { error: "must be a non-empty list of 'live' and 'test'." }), {
      error: "must be a non-empty list of 'live' and 'test'.",
    })
    .min(1, { error: "must be a non-empty list of 'live' and 'test'." })
    .readonly()
    .prefault(ENVIRONMENTS),
  cache: section({
    /** Most verification records kept in memory. @default 10000 */
    max: integer(positive).prefault(10_000),
    /** How long a known key is served from memory (bounds revocation delay without Redis). @default '30s' */
    ttl: duration("30s").prefault("30s"),
    /** How long an unknown key is remembered as unknown. @default '2s' */
    negativeTtl: duration("30s").prefault("2s"),
    /**
     * Unknown digests remembered (for `negativeTtl`), at most; kept apart from the known keys of
     * `max`, so a flood of unknown keys evicts no real one.
     * @default 10000
     */
    negativeMax: integer(positive).prefault(10_000),
    /**
     * A Bloom filter of every key digest (built from the database at start, about 1.7 MB per
     * million keys, kept current on issue and rotation through the invalidation bus): a
     * well-formed key it has never seen is refused with `key_invalid` and no database read.
     * `false`: every uncached key is read from the database.
     * @default true
     */
    filter: z.boolean({ error: "must be true or false." }).prefault(true),
    /**
     * Database lookups per second, per instance, for keys the filter has not seen (a key issued
     * on another instance whose bus message is late or lost still gets in); past it such keys are
     * refused without I/O. `0`: the filter alone decides.
     * @default 20
     */
    unknownLookupsPerSecond: z
      .number({ error: "must be a number >= 0." })
      .min(0, { error: "must be a number >= 0." })
      .prefault(20),
  }).prefault({}),
  /**
   * How changes reach the caches of other instances. On PostgreSQL every committed change to a
   * key, org, plan or entitlement override is heard through `LISTEN/NOTIFY` within a second; an
   * instance that cannot prove it hears (heartbeats on the listening connection) trusts a cached
   * record for at most `maxStaleness` before reading it again. On PGlite (one process) changes are
   * applied in process.
   */
  invalidation: section({
    /** How long a cached record is trusted while the bus is not heard. @default '1s' */
    maxStaleness: duration("30s", { ms: 100, error: "must be at least 100ms." }).prefault("1s"),
    /**
     * While the bus is not heard and the database cannot be read either: `'serve-cached'` keeps
     * answering from the cache (no change can commit while the database is down), `'refuse'`
     * answers `store_unavailable`.
     * @default 'serve-cached'
     */
    whenDatabaseDown: z
      .enum(["serve-cached", "refuse"], { error: "must be 'serve-cached' or 'refuse'." })
      .prefault("serve-cached"),
  })
    .prefault({})
    .transform(({ maxStaleness, whenDatabaseDown }) => ({ maxStalenessMs: maxStaleness, whenDatabaseDown })),
  /** Milliseconds since the epoch; injectable for tests. @default Date.now */
  clock: instance<() => number>((value) => typeof value === "function", "must be a function.").optional(),
  /**
   * Decide time with the database server's clock, so that instances with skewed clocks agree on
   * expiry and grace: the offset of `clock` to PostgreSQL's clock is measured at start and every
   * `interval`, and added to it. Ignored on PGlite (it runs in this process, on this clock).
   * @default { interval: '1m' } on PostgreSQL; `false` when a `clock` is injected (a test's fake time is used as is)
   */
  serverClock: choose(
    (value) => typeof value === "boolean",
    z.boolean(),
    section(
      { interval: duration("30s", { ms: 1_000, error: "must be at least 1s." }).prefault("1m") },
      "must be a boolean or { interval }.",
    ),
  ).optional(),
  /** pino-style logger for operational events (never given secrets or digests). @default none */
  logger: instance<Logger>(isObject, "must be a logger (an object).").prefault({}),
  /**
   * OpenTelemetry: `flux.verify` spans and `flux.*` metrics through `@opentelemetry/api` (no-ops
   * until the app installs an SDK). See `TelemetryOptions`.
   * @default the global tracer and meter providers, no org / plan metric attributes
   */
  telemetry: telemetryOptionsSchema,
  /**
   * Which proxies in front of this instance to believe, for every part of it: the client address
   * (the pre-authentication limiter, key observations, the portal's sessions and audit entries,
   * `flux.limits.clientAddress()`) from `X-Forwarded-For`, and the portal's scheme and host (so its
   * origin check and `Secure` cookies) from `X-Forwarded-Proto` / `X-Forwarded-Host` or
   * `Forwarded`. Forwarded headers count only when the socket's peer is trusted. The only trust
   * setting of an instance: adapters and `limits` refuse one of their own.
   * - `false`: none (only the socket address and the connection's own scheme);
   * - `true`: every hop (the leftmost `X-Forwarded-For` entry is the client);
   * - a number: that many hops from the socket;
   * - addresses / CIDRs of your proxies (also `'loopback'`, `'linklocal'`, `'uniquelocal'`), as an
   *   array or a comma-separated string.
   * The same values as Express's `trust proxy` setting and Fastify's `trustProxy`: give both the same.
   * @default false
   */
  trustProxy: z
    .custom<TrustProxy>()
    .prefault(false)
    .transform((trustProxy, ctx) => {
      try {
        return { trustProxy, trust: compileTrust(trustProxy) };
      } catch (error) {
        ctx.issues.push({
          code: "custom",
          input: trustProxy,
          message: `is not understood: ${(error as Error).message}.`,
        });
        return z.NEVER;
      }
    }),
  /**
   * Usage tracking (`flux.usage`): flush cadence, buffer bound, rollup and retention. Every
   * default is a `@default` tag on `UsageOptions`.
   * @default { flushInterval: '5s', maxBufferedBuckets: 100000, flushAt: 10000, batchSize: 5000, rollupAfter: '7d', retention: null, maintenanceInterval: '1h' }
   */
  usage: usageOptionsSchema,
  /**
   * Rate limits and quotas: what happens when the limit store fails, and the pre-authentication
   * limiter. Every default is a `@default` tag on `LimitOptions`.
   * @default { onStoreError: 'insurance', preAuth: { limit: 30, window: '1m', maxAddresses: 50000 } }
   */
  limits: limitOptionsSchema,
  /**
   * Lifecycle events sent as signed webhooks: endpoints, retries, the `key.expiring` /
   * `key.unused` checks and `quota.threshold` fractions. Every default is a `@default` tag on
   * `WebhookOptions`.
   * @default { endpoints: [], maxAttempts: 8, backoff: { initial: '10s', max: '1h' }, timeout: '5s', interval: '5s', checkInterval: '1h', expiringDays: 7, unusedDays: 30, quotaThresholds: [0.8, 1], retention: '90d', allowPrivateNetworks: false }
   */
  webhooks: webhookOptionsSchema,
  observations: section({
    /**
     * Clients (address and user agent) kept per key in `flux_key_clients` while it is in a
     * rotation grace, the most recently seen; older ones are summed into one row per key, so
     * `graceUsage().calls` stays exact while a flood of user agents adds no rows.
     * @default 100
     */
    maxClientsPerKey: integer("must be an integer from 1 to 10000.", 1, 10_000).prefault(100),
  }).prefault({}),
});

/** The options of `createFlux`, inferred from its schema. */
export type FluxOptions = z.input<typeof fluxSection>;

type Parsed = z.output<typeof fluxSection>;

export interface ResolvedOptions
  extends Omit<
    Parsed,
    "database" | "redis" | "environments" | "cache" | "clock" | "serverClock" | "trustProxy"
  > {
  database: DatabaseConfig;
  redis:
    | { url: string; keyPrefix: string }
    | { client: Redis; keyPrefix: string }
    | { nodes: ClusterNode[]; keyPrefix: string }
    | { cluster: Cluster; keyPrefix: string }
    | null;
  environments: ReadonlySet<KeyEnvironment>;
  cache: { max: number; ttlMs: number; negativeTtlMs: number };
  unknownKeys: UnknownKeyOptions;
  clock: () => number;
  /** Interval of the offset measurement, or null when the local clock is used as is. */
  serverClockIntervalMs: number | null;
  trustProxy: TrustProxy;
  /** `trustProxy` compiled once: `(address, hop) => trusted`. */
  trust: (address: string, hop: number) => boolean;
}

export function resolveOptions(
  options: FluxOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): ResolvedOptions {
  const parsed = parseOptions(fluxSection, options);
  const { cache } = parsed;
  const serverClock = parsed.serverClock ?? parsed.clock === undefined;
  return {
    ...parsed,
    database: resolveDatabase(parsed.database, env),
    redis: resolveRedis(parsed.redis, env),
    environments: new Set(parsed.environments),
    cache: { max: cache.max, ttlMs: cache.ttl, negativeTtlMs: cache.negativeTtl },
    unknownKeys: {
      filter: cache.filter,
      falsePositiveRate: 0.001,
      negativeMax: cache.negativeMax,
      negativeTtlMs: cache.negativeTtl,
      lookupsPerSecond: cache.unknownLookupsPerSecond,
    },
    clock: parsed.clock ?? Date.now,
    serverClockIntervalMs:
      serverClock === false ? null : serverClock === true ? 60_000 : serverClock.interval,
    trustProxy: parsed.trustProxy.trustProxy,
    trust: parsed.trustProxy.trust,
  };
}

function resolveRedis(redis: Parsed["redis"], env: NodeJS.ProcessEnv): ResolvedOptions["redis"] {
  if (redis === undefined) return env.REDIS_URL ? { url: env.REDIS_URL, keyPrefix: "flux:" } : null;
  if (redis === null) return null;
  if ("cluster" in redis) return { ...redis.cluster, keyPrefix: redis.keyPrefix };
  return redis;
}

function resolveDatabase(database: Parsed["database"], env: NodeJS.ProcessEnv): DatabaseConfig {
  if (database === undefined) {
    if (env.DATABASE_URL) return postgres(env.DATABASE_URL, undefined, 10);
    return { kind: "pglite", dataDir: undefined };
  }
  if ("pglite" in database) {
    const dir = database.pglite;
    return { kind: "pglite", dataDir: dir === true || dir === "memory://" ? undefined : dir };
  }
  const config = postgres(database.url, database.schema, database.poolSize ?? 10);
  if (database.directUrl === undefined || config.kind !== "postgres") return config;
  return { ...config, directUrl: database.directUrl };
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
