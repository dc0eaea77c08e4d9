/**
 * One server of the HTTP adapter benchmark (issue 5): `GET /v1/events` answering a small JSON list,
 * on one framework, bare or behind an API key check. Started by `http.bench.ts`, one process per
 * scenario, pinned to its own core:
 *
 *   node --import tsx --conditions=source bench/http-server.ts <framework>-<variant>
 *
 * framework: express | fastify | nest-express | nest-fastify
 * variant:   bare | flux | flux-redis | handrolled-prisma | handrolled-map (the last two on Express)
 *
 * Environment: BENCH_DATABASE_URL and BENCH_PG_SCHEMA (an existing, empty schema) for the variants
 * on PostgreSQL; BENCH_REDIS_URL and BENCH_REDIS_PREFIX for `flux-redis`. Diagnostics:
 * BENCH_FLUX_USAGE=off, BENCH_FLUX_LIMITS=off, BENCH_FLUX_DATABASE=postgres (the `flux` variant on
 * PostgreSQL instead of PGlite), BENCH_PROFILE_DIR and BENCH_PROFILE_INTERVAL (µs, default 100; see
 * profileOnSignal). Prints one line of JSON on stdout once listening: `{ "ready": true, "port": …, "key": "<secret or null>" }`.
 * SIGTERM closes the server and Flux (flushing usage) and exits.
 */
import "reflect-metadata";
import { createHash } from "node:crypto";
import type { AddressInfo } from "node:net";
import { createFlux, type Flux, type FluxOptions } from "@flux-keys/core";
import { type ApiKeyRequest, fluxKeys, requireScopes } from "@flux-keys/express";
import { fluxKeys as fluxKeysPlugin } from "@flux-keys/fastify";
import { ApiKey, FluxKeysModule, Scopes } from "@flux-keys/nestjs";
import { Controller, Get, Module } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { ExpressAdapter } from "@nestjs/platform-express";
import { FastifyAdapter } from "@nestjs/platform-fastify";
import express from "express";
import Fastify from "fastify";

const FRAMEWORKS = ["express", "fastify", "nest-express", "nest-fastify"] as const;
const VARIANTS = ["bare", "flux", "flux-redis", "handrolled-prisma", "handrolled-map"] as const;
type Framework = (typeof FRAMEWORKS)[number];
type Variant = (typeof VARIANTS)[number];

function parseScenario(name: string): { framework: Framework; variant: Variant } | null {
  for (const framework of [...FRAMEWORKS].sort((a, b) => b.length - a.length)) {
    if (!name.startsWith(`${framework}-`)) continue;
    const variant = name.slice(framework.length + 1) as Variant;
    if (!VARIANTS.includes(variant)) return null;
    if (variant.startsWith("handrolled") && framework !== "express") return null;
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
  for (let i = 0; i < count; i++) {
    const { secret } = await flux.keys.create().forOrg(BARE_ORG).withScopes(["read:events"]).issue();
    secrets.push(secret);
  }
  return secrets;
}

function fluxOptions(variant: Variant): FluxOptions {
  // BENCH_FLUX_DATABASE=postgres (diagnostics): the memory-limiter variant on PostgreSQL, not PGlite.
  if (variant === "flux" && process.env.BENCH_FLUX_DATABASE !== "postgres") {
    return { database: { pglite: true }, redis: null };
  }
  const url = process.env.BENCH_DATABASE_URL;
  const schema = process.env.BENCH_PG_SCHEMA;
  if (!url || !schema) throw new Error(`${variant} needs BENCH_DATABASE_URL and BENCH_PG_SCHEMA`);
  const database = { url, schema, poolSize: 4 };
  if (variant !== "flux-redis") return { database, redis: null };
  const redisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
  const keyPrefix = process.env.BENCH_REDIS_PREFIX;
  if (!keyPrefix) throw new Error("flux-redis needs BENCH_REDIS_PREFIX");
  return { database, redis: { url: redisUrl, keyPrefix } };
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

async function startExpress(variant: Variant, flux: Flux | null): Promise<Running> {
  const app = express();
  app.disable("x-powered-by");
  if (variant === "bare") {
    app.get("/v1/events", (_req, res) => {
      res.json(eventsOf(BARE_ORG));
    });
  } else if (variant === "handrolled-prisma" || variant === "handrolled-map") {
    app.use(handRolled(flux!.internals.database.prisma, variant === "handrolled-map"));
    app.get("/v1/events", (req, res) => {
      res.json(eventsOf((req as express.Request & { apiKey: StoredKey }).apiKey.orgId));
    });
  } else {
    app.use(fluxKeys(flux!, adapterOptions));
    app.get("/v1/events", requireScopes("read:events"), (req, res) => {
      res.json(eventsOf((req as ApiKeyRequest).apiKey.orgId));
    });
  }
  return listen(app);
}

async function startFastify(variant: Variant, flux: Flux | null): Promise<Running> {
  const app = Fastify({ logger: false });
  if (variant === "bare") {
    app.get("/v1/events", async () => eventsOf(BARE_ORG));
  } else {
    await app.register(fluxKeysPlugin, { flux: flux!, ...adapterOptions });
    app.get("/v1/events", { config: { apiKey: { scopes: ["read:events"] } } }, async (request) =>
      eventsOf(request.apiKey!.orgId),
    );
  }
  await app.listen({ port: 0, host: "127.0.0.1" });
  return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
}

@Controller("v1")
class BareEventsController {
  @Get("events")
  list() {
    return eventsOf(BARE_ORG);
  }
}

@Controller("v1")
class KeyedEventsController {
  @Scopes("read:events")
  @Get("events")
  list(@ApiKey() key: { orgId: string }) {
    return eventsOf(key.orgId);
  }
}

async function startNest(platform: "express" | "fastify", flux: Flux | null): Promise<Running> {
  @Module(
    flux === null
      ? { controllers: [BareEventsController] }
      : {
          imports: [FluxKeysModule.forRoot({ flux, ...adapterOptions })],
          controllers: [KeyedEventsController],
        },
  )
  class BenchModule {}
  const adapter = platform === "fastify" ? new FastifyAdapter() : new ExpressAdapter();
  const app = await NestFactory.create(BenchModule, adapter, { logger: false });
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
  const flux = variant === "bare" ? null : await createFlux(fluxOptions(variant));
  const keys = flux === null ? [] : await seed(flux);
  const key = keys[0] ?? null;
  let running: Running;
  if (framework === "express") running = await startExpress(variant, flux);
  else if (framework === "fastify") running = await startFastify(variant, flux);
  else running = await startNest(framework === "nest-fastify" ? "fastify" : "express", flux);

  let closing = false;
  process.on("SIGTERM", () => {
    if (closing) return;
    closing = true;
    // Flux is closed after the server so that the last requests' usage is flushed.
    void (async () => {
      await running.close();
      await flux?.close();
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
