/**
 * One server of the HTTP adapter benchmark (issue 5): `GET /v1/events` answering a small JSON list,
 * on one framework, bare or behind an API key check. Started by `http.bench.ts`, one process per
 * scenario, pinned to its own core:
 *
 *   node --import tsx --conditions=source bench/http-server.ts <framework>-<variant>
 *
 * framework: express | fastify | nest-express | nest-fastify
 * variant:   bare | flux | flux-redis | flux-redis-lease | peer | peer-redis | redis-floor |
 *            handrolled-prisma | handrolled-map (the last two on Express, peer-redis and redis-floor
 *            on Fastify). `peer` is what the framework's own ecosystem offers: a bearer-token check
 *            against a set of tokens plus its rate limiter, keyed by the token (@fastify/bearer-auth
 *            + @fastify/rate-limit; express-rate-limit; @nestjs/throttler), with no usage, scopes
 *            or headers beyond the limiter's. `peer-redis` is the Fastify peer with
 *            @fastify/rate-limit counting on Redis (its own ioredis client and Lua script).
 *            `redis-floor` is no check at all, only one Redis round trip per request (`INCR` of a
 *            counter per token, on an ioredis client as Flux Keys sets it up): the floor of any
 *            limiter that asks Redis once per request, on this machine. `guard-floor` (Nest only) is
 *            the peer's bearer guard alone, no limiter: what any guard-based check costs in Nest.
 *
 * Environment: BENCH_DATABASE_URL and BENCH_PG_SCHEMA (an existing, empty schema) for the variants
 * on PostgreSQL; BENCH_REDIS_URL and BENCH_REDIS_PREFIX for `flux-redis` and `flux-redis-lease` (the opt-in leasing mode); BENCH_HANDLER=io makes
 * every variant's handler await one PostgreSQL query (`SELECT 1` on a pool of 10, BENCH_DATABASE_URL)
 * before answering, as a real endpoint does; BENCH_CACHE_MAX sets Flux Keys' `cache.max` (the cold
 * path: more keys than the cache holds). Diagnostics:
 * BENCH_FLUX_USAGE=off, BENCH_FLUX_LIMITS=off, BENCH_NEST_PARAM=off (Nest's guarded route without
 * the `@ApiKey()` parameter), BENCH_FLUX_DATABASE=postgres (the `flux` variant on
 * PostgreSQL instead of PGlite), BENCH_PROFILE_DIR and BENCH_PROFILE_INTERVAL (µs, default 100; see
 * profileOnSignal). Prints one line of JSON on stdout once listening: `{ "ready": true, "port": …, "key": "<secret or null>" }`.
 * SIGTERM closes the server and Flux (flushing usage) and exits.
 */
import "reflect-metadata";
import { createHash, randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import fastifyBearerAuth from "@fastify/bearer-auth";
import fastifyRateLimit from "@fastify/rate-limit";
import { createFlux, type Flux, type FluxOptions } from "@flux-keys/core";
import { type ApiKeyRequest, fluxKeys, requireScopes } from "@flux-keys/express";
import { fluxKeys as fluxKeysPlugin } from "@flux-keys/fastify";
import { ApiKey, FluxKeysModule, Scopes } from "@flux-keys/nestjs";
import {
  type CanActivate,
  Controller,
  type ExecutionContext,
  Get,
  Inject,
  Injectable,
  Module,
  UnauthorizedException,
} from "@nestjs/common";
import { APP_GUARD, NestFactory, Reflector } from "@nestjs/core";
import { ExpressAdapter } from "@nestjs/platform-express";
import { FastifyAdapter } from "@nestjs/platform-fastify";
import {
  InjectThrottlerOptions,
  InjectThrottlerStorage,
  ThrottlerGuard,
  ThrottlerModule,
  type ThrottlerModuleOptions,
  type ThrottlerStorage,
} from "@nestjs/throttler";
import express from "express";
import { rateLimit } from "express-rate-limit";
import Fastify from "fastify";
import { Redis } from "ioredis";
import pg from "pg";
import { FRAMEWORKS, type Framework, VARIANTS, type Variant, WITHOUT_FLUX } from "./http-scenarios.js";

function parseScenario(name: string): { framework: Framework; variant: Variant } | null {
  for (const framework of [...FRAMEWORKS].sort((a, b) => b.length - a.length)) {
    if (!name.startsWith(`${framework}-`)) continue;
    const variant = name.slice(framework.length + 1) as Variant;
    if (!VARIANTS.includes(variant)) return null;
    if (variant.startsWith("handrolled") && framework !== "express") return null;
    if ((variant === "peer-redis" || variant === "redis-floor") && framework !== "fastify") return null;
    if (variant === "guard-floor" && !framework.startsWith("nest")) return null;
    return { framework, variant };
  }
  return null;
}

/** The same payload for every variant: what a small list endpoint returns. */
function eventsOf(orgId: string) {
  return {
    data: [
      { id: "evt_1", orgId, type: "deploy.started", at: "2025-01-01T00:00:00.000Z" },
      { id: "evt_2", orgId, type: "deploy.finished", at: "2025-01-01T00:01:00.000Z" },
      { id: "evt_3", orgId, type: "config.changed", at: "2025-01-01T00:02:00.000Z" },
    ],
  };
}
const BARE_ORG = "org_bench";

/** BENCH_HANDLER=io: the handler's own work, one PostgreSQL round trip, the same in every variant. */
const ioPool =
  process.env.BENCH_HANDLER === "io"
    ? new pg.Pool({ connectionString: process.env.BENCH_DATABASE_URL, max: 10 })
    : null;
async function handlerWork(): Promise<void> {
  if (ioPool !== null) await ioPool.query("SELECT 1");
}

/** The peers' tokens: as many as Flux Keys issues, random, checked against a set. */
function peerTokens(): string[] {
  const count = Math.max(1, Number(process.env.BENCH_KEYS ?? 1));
  return Array.from({ length: count }, () => `tok_${randomBytes(24).toString("base64url")}`);
}
/** A limit so high nothing is limited (as Flux Keys' plan has), per token per minute. */
const PEER_LIMIT = 1_000_000_000;

interface Running {
  port: number;
  close(): Promise<void>;
}

/**
 * `BENCH_KEYS` keys (default 1) with the scope the route needs, on a plan with a window so large
 * nothing is limited.
 */
async function seed(flux: Flux): Promise<string[]> {
  await flux.plans.upsert({
    id: "bench",
    name: "Bench",
    // BENCH_FLUX_LIMITS=off (diagnostics): a plan without windows, so the limiter is never reached.
    rateLimits:
      process.env.BENCH_FLUX_LIMITS === "off"
        ? []
        : [{ name: "sustained", limit: 1_000_000_000, window: "1m" }],
  });
  await flux.orgs.create({ id: BARE_ORG, name: "Bench org", planId: "bench" });
  const count = Math.max(1, Number(process.env.BENCH_KEYS ?? 1));
  const secrets: string[] = [];
  // A few at a time: the cold path's 10,000 keys would take minutes one by one.
  for (let i = 0; i < count; i += 8) {
    const batch = Array.from({ length: Math.min(8, count - i) }, () =>
      flux.keys.create().forOrg(BARE_ORG).withScopes(["read:events"]).issue(),
    );
    for (const { secret } of await Promise.all(batch)) secrets.push(secret);
  }
  return secrets;
}

function fluxOptions(variant: Variant): FluxOptions {
  const cache = process.env.BENCH_CACHE_MAX ? { cache: { max: Number(process.env.BENCH_CACHE_MAX) } } : {};
  return { ...storeOptions(variant), ...cache };
}

function storeOptions(variant: Variant): FluxOptions {
  // BENCH_FLUX_DATABASE=postgres (diagnostics): the memory-limiter variant on PostgreSQL, not PGlite.
  if (variant === "flux" && process.env.BENCH_FLUX_DATABASE !== "postgres") {
    return { database: { pglite: true }, redis: null };
  }
  const url = process.env.BENCH_DATABASE_URL;
  const schema = process.env.BENCH_PG_SCHEMA;
  if (!url || !schema) throw new Error(`${variant} needs BENCH_DATABASE_URL and BENCH_PG_SCHEMA`);
  const database = { url, schema, poolSize: 4 };
  if (variant !== "flux-redis" && variant !== "flux-redis-lease") return { database, redis: null };
  const redisUrl = benchRedisUrl();
  const keyPrefix = process.env.BENCH_REDIS_PREFIX;
  if (!keyPrefix) throw new Error(`${variant} needs BENCH_REDIS_PREFIX`);
  // flux-redis-lease: the opt-in leasing mode (limits.lease), 100 units per lease.
  const limits = variant === "flux-redis-lease" ? { limits: { lease: { units: 100 } } } : {};
  return { database, redis: { url: redisUrl, keyPrefix }, ...limits };
}

function benchRedisUrl(): string {
  return process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
}

type Prisma = Flux["internals"]["database"]["prisma"];
type StoredKey = NonNullable<Awaited<ReturnType<Prisma["apiKey"]["findUnique"]>>>;

/**
 * The baseline a team writes by hand: SHA-256 of the Bearer key, one Prisma lookup per request
 * (or an unbounded in-process Map in front of it), 401 when unknown or revoked. No limits, no
 * usage, no scopes: strictly less work than Flux Keys does.
 */
function handRolled(prisma: Prisma, cached: boolean): express.RequestHandler {
  const cache = new Map<string, StoredKey>();
  const unauthorized = (res: express.Response) =>
    res.status(401).set("WWW-Authenticate", 'Bearer realm="api"').json({ error: "unauthorized" });
  return async (req, res, next) => {
    const header = req.headers.authorization;
    if (header === undefined || !header.startsWith("Bearer ")) return unauthorized(res);
    const digest = createHash("sha256").update(header.slice(7)).digest("hex");
    let key = cached ? cache.get(digest) : undefined;
    if (key === undefined) {
      const found = await prisma.apiKey.findUnique({ where: { digest } });
      if (found === null) return unauthorized(res);
      key = found;
      if (cached) cache.set(digest, found);
    }
    if (key.revokedAt !== null) return unauthorized(res);
    (req as express.Request & { apiKey: StoredKey }).apiKey = key;
    next();
  };
}

async function listen(app: express.Express): Promise<Running> {
  const server = await new Promise<import("node:http").Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function startExpress(variant: Variant, flux: Flux | null, peer: string[]): Promise<Running> {
  const app = express();
  app.disable("x-powered-by");
  if (variant === "bare") {
    app.get("/v1/events", async (_req, res) => {
      await handlerWork();
      res.json(eventsOf(BARE_ORG));
    });
  } else if (variant === "peer") {
    const tokens = new Set(peer);
    app.use((req, res, next) => {
      const header = req.headers.authorization;
      const token = header?.startsWith("Bearer ") ? header.slice(7) : undefined;
      if (token === undefined || !tokens.has(token)) {
        res.status(401).set("WWW-Authenticate", 'Bearer realm="api"').json({ error: "unauthorized" });
        return;
      }
      next();
    });
    app.use(
      rateLimit({
        windowMs: 60_000,
        limit: PEER_LIMIT,
        standardHeaders: "draft-8",
        legacyHeaders: false,
        keyGenerator: (req) => req.headers.authorization as string,
      }),
    );
    app.get("/v1/events", async (_req, res) => {
      await handlerWork();
      res.json(eventsOf(BARE_ORG));
    });
  } else if (variant === "handrolled-prisma" || variant === "handrolled-map") {
    app.use(handRolled(flux!.internals.database.prisma, variant === "handrolled-map"));
    app.get("/v1/events", async (req, res) => {
      await handlerWork();
      res.json(eventsOf((req as express.Request & { apiKey: StoredKey }).apiKey.orgId));
    });
  } else {
    app.use(fluxKeys(flux!, adapterOptions));
    app.get("/v1/events", requireScopes("read:events"), async (req, res) => {
      await handlerWork();
      res.json(eventsOf((req as ApiKeyRequest).apiKey.orgId));
    });
  }
  return listen(app);
}

async function startFastify(variant: Variant, flux: Flux | null, peer: string[]): Promise<Running> {
  const app = Fastify({ logger: false });
  if (variant === "bare") {
    app.get("/v1/events", async () => {
      await handlerWork();
      return eventsOf(BARE_ORG);
    });
  } else if (variant === "peer" || variant === "peer-redis") {
    await app.register(fastifyBearerAuth, { keys: new Set(peer), addHook: true });
    await app.register(fastifyRateLimit, {
      max: PEER_LIMIT,
      timeWindow: 60_000,
      keyGenerator: (request) => request.headers.authorization as string,
      // The settings @fastify/rate-limit's README recommends for a Redis store.
      ...(variant === "peer-redis"
        ? {
            redis: new Redis(benchRedisUrl(), { connectTimeout: 500, maxRetriesPerRequest: 1 }),
            nameSpace: process.env.BENCH_REDIS_PREFIX,
          }
        : {}),
    });
    app.get("/v1/events", async () => {
      await handlerWork();
      return eventsOf(BARE_ORG);
    });
  } else if (variant === "redis-floor") {
    // As Flux Keys connects (flux.ts connectRedis): fail fast, never resend.
    const redis = new Redis(benchRedisUrl(), {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      maxRetriesPerRequest: 1,
      autoResendUnfulfilledCommands: false,
      commandTimeout: 1_000,
    });
    await new Promise((ready) => redis.once("ready", ready));
    const prefix = process.env.BENCH_REDIS_PREFIX;
    app.addHook("onClose", async () => void redis.disconnect());
    app.get("/v1/events", async (request) => {
      await redis.incr(`${prefix}${request.headers.authorization}`);
      await handlerWork();
      return eventsOf(BARE_ORG);
    });
  } else {
    await app.register(fluxKeysPlugin, { flux: flux!, ...adapterOptions });
    app.get("/v1/events", { config: { apiKey: { scopes: ["read:events"] } } }, async (request) => {
      await handlerWork();
      return eventsOf(request.apiKey!.orgId);
    });
  }
  await app.listen({ port: 0, host: "127.0.0.1" });
  return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
}

@Controller("v1")
class BareEventsController {
  @Get("events")
  async list() {
    await handlerWork();
    return eventsOf(BARE_ORG);
  }
}

@Controller("v1")
class KeyedEventsController {
  @Scopes("read:events")
  @Get("events")
  async list(@ApiKey() key: { orgId: string }) {
    await handlerWork();
    return eventsOf(key.orgId);
  }
}

/** BENCH_NEST_PARAM=off (diagnostics): the guarded route without `@ApiKey()`, as bare answers. */
@Controller("v1")
class KeyedNoParamEventsController {
  @Scopes("read:events")
  @Get("events")
  async list() {
    await handlerWork();
    return eventsOf(BARE_ORG);
  }
}

/** The peer's token check for Nest: a guard against the set of tokens (Nest has no stock one). */
const PEER_TOKENS = new Set<string>();
@Injectable()
class PeerBearerGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const header = context.switchToHttp().getRequest<{ headers: Record<string, string | undefined> }>()
      .headers.authorization;
    const token = header?.startsWith("Bearer ") ? header.slice(7) : undefined;
    if (token === undefined || !PEER_TOKENS.has(token)) throw new UnauthorizedException();
    return true;
  }
}
/**
 * ThrottlerGuard with its constructor's dependencies named: its compiled metadata names Nest's
 * `Reflector` through a CommonJS require of the ESM-only Nest 12, which resolves to nothing here.
 */
@Injectable()
class PeerThrottlerGuard extends ThrottlerGuard {
  constructor(
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() storage: ThrottlerStorage,
    @Inject(Reflector) reflector: Reflector,
  ) {
    super(options, storage, reflector);
  }
}

async function startNest(
  platform: "express" | "fastify",
  variant: Variant,
  flux: Flux | null,
  peer: string[],
): Promise<Running> {
  for (const token of peer) PEER_TOKENS.add(token);
  @Module(
    variant === "peer"
      ? {
          imports: [
            // Keyed by the token, as Flux Keys limits per key.
            ThrottlerModule.forRoot({
              throttlers: [{ ttl: 60_000, limit: PEER_LIMIT }],
              getTracker: (request: Record<string, unknown>) =>
                ((request.headers as Record<string, string>).authorization ?? "") as string,
            }),
          ],
          controllers: [BareEventsController],
          providers: [
            { provide: APP_GUARD, useClass: PeerBearerGuard },
            { provide: APP_GUARD, useClass: PeerThrottlerGuard },
          ],
        }
      : variant === "guard-floor"
        ? {
            controllers: [BareEventsController],
            providers: [{ provide: APP_GUARD, useClass: PeerBearerGuard }],
          }
        : flux === null
          ? { controllers: [BareEventsController] }
          : {
              imports: [FluxKeysModule.forRoot({ flux, ...adapterOptions })],
              controllers: [
                process.env.BENCH_NEST_PARAM === "off" ? KeyedNoParamEventsController : KeyedEventsController,
              ],
            },
  )
  class BenchModule {}
  const adapter = platform === "fastify" ? new FastifyAdapter() : new ExpressAdapter();
  const app = await NestFactory.create(BenchModule, adapter, { logger: false, abortOnError: false });
  await app.init();
  if (platform === "fastify") await app.getHttpAdapter().getInstance().ready();
  await app.listen(0, "127.0.0.1");
  return { port: (app.getHttpServer().address() as AddressInfo).port, close: () => app.close() };
}

/** BENCH_FLUX_USAGE=off (diagnostics): the adapters' `usage: false`. */
const adapterOptions = process.env.BENCH_FLUX_USAGE === "off" ? { usage: false } : {};

/**
 * BENCH_PROFILE_DIR (diagnostics): SIGUSR2 starts a CPU profile, the next SIGUSR2 writes it to
 * `<dir>/<scenario>-<n>.cpuprofile`, so that a profile covers a measured window and nothing else.
 */
async function profileOnSignal(dir: string, name: string): Promise<void> {
  const { Session } = await import("node:inspector/promises");
  const { writeFileSync } = await import("node:fs");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", {
    interval: Number(process.env.BENCH_PROFILE_INTERVAL ?? 100),
  });
  let profiling = false;
  let count = 0;
  process.on("SIGUSR2", () => {
    void (async () => {
      if (!profiling) {
        profiling = true;
        await session.post("Profiler.start");
        return;
      }
      profiling = false;
      const { profile } = await session.post("Profiler.stop");
      writeFileSync(`${dir}/${name}-${count++}.cpuprofile`, JSON.stringify(profile));
    })();
  });
}

async function main() {
  const name = process.argv[2] ?? "";
  const scenario = parseScenario(name);
  if (scenario === null) throw new Error(`unknown scenario '${name}'`);
  const { framework, variant } = scenario;
  const flux = WITHOUT_FLUX.includes(variant) ? null : await createFlux(fluxOptions(variant));
  const peer = WITHOUT_FLUX.includes(variant) && variant !== "bare" ? peerTokens() : [];
  const keys = flux === null ? peer : await seed(flux);
  const key = keys[0] ?? null;
  let running: Running;
  if (framework === "express") running = await startExpress(variant, flux, peer);
  else if (framework === "fastify") running = await startFastify(variant, flux, peer);
  else running = await startNest(framework === "nest-fastify" ? "fastify" : "express", variant, flux, peer);

  let closing = false;
  process.on("SIGTERM", () => {
    if (closing) return;
    closing = true;
    // Flux is closed after the server so that the last requests' usage is flushed.
    void (async () => {
      await running.close();
      await flux?.close();
      await ioPool?.end();
      process.exit(0);
    })().catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
  });
  if (process.env.BENCH_PROFILE_DIR) await profileOnSignal(process.env.BENCH_PROFILE_DIR, name);
  process.stdout.write(`${JSON.stringify({ ready: true, port: running.port, key, keys })}\n`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
