/**
 * One server of `pnpm bench http-parts` (issue 16): Fastify (or Express) with one piece of Flux
 * Keys' work at a time, to find which part of the per-request cost over HTTP is whose. Started by
 * http-parts.bench.ts, pinned to core 0:
 *
 *   node --import tsx --conditions=source bench/http-parts-server.ts <part> [fastify|express]
 *
 * part:
 * - `pristine`: the route alone in a process that holds no Flux instance (requests carry a key
 *   of the same length, unread): beside `bare`, what the instance's presence costs;
 * - `bare`: the route alone (requests carry a key, unread);
 * - `hooks`: onRequest / onSend / onResponse callback hooks that do nothing but set the two
 *   RateLimit fields Flux Keys sends (what the plugin makes Fastify do, without core);
 * - `sha256`: `hooks` plus SHA-256 of the Authorization header (`crypto.hash`, as core does);
 * - `check`: `hooks` plus `flux.keys.checkNow()` of the key (SHA-256, cache, scopes, limiter);
 * - `authenticate`: `hooks` with `authenticateNow()` (credential, client address, check, headers);
 * - `plugin`: the `@flux-keys/fastify` plugin itself (authenticate, usage, observations);
 * - `spin-<ns>`: `hooks` plus `<ns>` nanoseconds of busy work in onRequest and nothing of Flux
 *   Keys: the calibration of what N ns of in-process work costs inside this server under this
 *   load (set beside `plugin`, whose in-process cost `pnpm bench hot-path` reports).
 *
 *
 * On Express the same parts are middleware: `layers` is a no-op `app.use()` middleware and a
 * no-op guard on the route (the two layers `fluxKeys()` + `requireScopes()` add to Express's
 * dispatch, doing nothing); `hooks` is `layers` whose middleware also sets the two RateLimit
 * fields and listens for the response's `finish`, as `fluxKeys()` does; `sha256`, `check`,
 * `authenticate` and `spin-<ns>` add their work to `hooks`; `plugin` is `fluxKeys()` +
 * `requireScopes()` themselves.
 *
 * Every part but `pristine` runs on a Flux instance on the embedded defaults (PGlite, memory
 * limiter) with 100 keys on a plan with one window too large to refuse; `bare` creates one as
 * well, so that the instance's presence is in every row but `pristine`'s. Prints `{ "ready": true, "port", "keys" }` when listening.
 */
import { hash, randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { createFlux, createHttpAuth, type KeyContext } from "@flux-keys/core";
import { fluxKeys as expressFluxKeys, requireScopes } from "@flux-keys/express";
import { fluxKeys } from "@flux-keys/fastify";
import express, { type NextFunction, type Request, type Response } from "express";
import Fastify from "fastify";
import { keyLengthOf } from "../packages/core/src/keys/format.js";

const PARTS = ["pristine", "bare", "layers", "hooks", "sha256", "check", "authenticate", "plugin"] as const;
type Part = (typeof PARTS)[number];
const argument = process.argv[2] ?? "";
const spinMatch = /^spin-(\d+)$/.exec(argument);
/** Busy work per request of a `spin-<ns>` part, in ns. */
const spinNs = spinMatch === null ? 0n : BigInt(spinMatch[1] as string);
const part = (spinMatch === null ? argument : "hooks") as Part;
if (!PARTS.includes(part)) throw new Error(`unknown part '${argument}' (${PARTS.join(", ")}, spin-<ns>)`);
const framework = process.argv[3] ?? "fastify";
if (framework !== "fastify" && framework !== "express") throw new Error(`unknown framework '${framework}'`);
if (part === "layers" && framework !== "express") throw new Error("`layers` is a part of Express only");

const KEYS = Number(process.env.BENCH_KEYS ?? 100);
/** Keys as long as real ones for `pristine`, which loads no Flux instance at all. */
const fakeKey = () =>
  `flux_live_${randomBytes(64)
    .toString("hex")
    .slice(0, keyLengthOf("flux") - 10)}`;
/** `cache.ttl` (bench/cache-refresh.bench.ts sets it; the default otherwise). */
const ttl = process.env.BENCH_CACHE_TTL as `${number}s` | undefined;
const flux =
  part === "pristine"
    ? null
    : await createFlux({
        database: { pglite: true },
        redis: null,
        ...(ttl === undefined ? {} : { cache: { ttl } }),
      });
const keys: string[] = [];
if (flux === null) {
  for (let i = 0; i < KEYS; i++) keys.push(fakeKey());
} else {
  await flux.plans.upsert({
    id: "bench",
    name: "Bench",
    rateLimits: [{ name: "sustained", limit: 1_000_000_000, window: "1m" }],
  });
  await flux.orgs.create({ id: "org_bench", name: "Bench org", planId: "bench" });
  for (let i = 0; i < KEYS; i++) {
    keys.push((await flux.keys.create().forOrg("org_bench").withScopes(["read:events"]).issue()).secret);
  }
}

const route = Object.freeze({ scopes: ["read:events"], cost: 1 });
const RATE_LIMIT_FIELDS = {
  "RateLimit-Policy": '"sustained";q=1000000000;w=60',
  RateLimit: '"sustained";r=999999999;t=60',
};
// Only `pristine` has no instance, and it reaches none of the branches that use one.
const auth = flux === null ? null : createHttpAuth(flux);
let sink = "";
let spins = 0;

/** `spin-<ns>`'s busy work. */
function spin(): void {
  if (spinNs === 0n) return;
  const until = process.hrtime.bigint() + spinNs;
  while (process.hrtime.bigint() < until) spins++;
}

function events(orgId: string) {
  return {
    data: [
      { id: "evt_1", orgId, type: "deploy.started", at: "2025-01-01T00:00:00.000Z" },
      { id: "evt_2", orgId, type: "deploy.finished", at: "2025-01-01T00:01:00.000Z" },
      { id: "evt_3", orgId, type: "config.changed", at: "2025-01-01T00:02:00.000Z" },
    ],
    ...(sink === "never" || spins < 0 ? { sink, spins } : {}),
  };
}

const port = framework === "fastify" ? await startFastify() : await startExpress();
process.stdout.write(`${JSON.stringify({ ready: true, port, keys })}\n`);

async function startFastify(): Promise<number> {
  const app = Fastify({ logger: false });
  if (part === "plugin") {
    await app.register(fluxKeys, { flux: flux! });
  } else if (part !== "bare" && part !== "pristine") {
    app.decorateRequest("apiKey", null);
    app.addHook("onRequest", (request, reply, done) => {
      if (part === "authenticate") {
        const result = auth!.authenticateNow(
          {
            method: request.method,
            url: request.raw.url ?? "/",
            headers: request.headers,
            rawHeaders: request.raw.rawHeaders,
            remoteAddress: request.socket.remoteAddress,
          },
          route,
        );
        // Only the first request of each key reads it (the warm-up): answered once read.
        if (result instanceof Promise) return void result.then(() => done(), done);
        if (!result.ok) throw new Error(result.error.code);
        request.apiKey = result.context;
        reply.headers(result.headers);
        return done();
      }
      spin();
      const credential = String(request.headers.authorization).slice("Bearer ".length);
      if (part === "sha256") sink = hash("sha256", credential, "hex");
      if (part === "check") {
        const result = flux!.keys.checkNow(credential, route);
        if (result instanceof Promise) return void result.then(() => done(), done);
        if (!result.valid) throw new Error(result.error.code);
        request.apiKey = result.context;
      }
      reply.headers(RATE_LIMIT_FIELDS);
      done();
    });
    app.addHook("onSend", (_request, _reply, payload, done) => done(null, payload));
    app.addHook("onResponse", (_request, _reply, done) => done());
  }
  app.get("/v1/events", { config: { apiKey: { scopes: ["read:events"] } } }, async (request) =>
    events((request as { apiKey?: KeyContext | null }).apiKey?.orgId ?? "org_bench"),
  );
  await app.listen({ port: 0, host: "127.0.0.1" });
  process.on("SIGTERM", () => {
    void app
      .close()
      .then(() => flux?.close())
      .then(() => process.exit(0));
  });
  return (app.server.address() as AddressInfo).port;
}
async function startExpress(): Promise<number> {
  const app = express();
  app.disable("x-powered-by");
  type Keyed = Request & { apiKey?: KeyContext };
  const noop = (_req: Request, _res: Response, next: NextFunction) => next();
  if (part === "plugin") {
    app.use(expressFluxKeys(flux!));
  } else if (part === "layers") {
    app.use(noop);
  } else if (part !== "bare" && part !== "pristine") {
    app.use((req: Keyed, res, next) => {
      if (part === "authenticate") {
        const result = auth!.authenticateNow(
          {
            method: req.method,
            url: req.originalUrl,
            headers: req.headers,
            rawHeaders: req.rawHeaders,
            remoteAddress: req.socket.remoteAddress,
          },
          route,
        );
        if (result instanceof Promise) return void result.then(() => next(), next);
        if (!result.ok) throw new Error(result.error.code);
        req.apiKey = result.context;
        for (const name in result.headers) res.setHeader(name, result.headers[name] as string);
      } else {
        spin();
        const credential = String(req.headers.authorization).slice("Bearer ".length);
        if (part === "sha256") sink = hash("sha256", credential, "hex");
        if (part === "check") {
          const result = flux!.keys.checkNow(credential, route);
          if (result instanceof Promise) return void result.then(() => next(), next);
          if (!result.valid) throw new Error(result.error.code);
          req.apiKey = result.context;
        }
        for (const name in RATE_LIMIT_FIELDS)
          res.setHeader(name, RATE_LIMIT_FIELDS[name as keyof typeof RATE_LIMIT_FIELDS]);
      }
      // What fluxKeys() listens for to record the call.
      res.on("finish", () => {
        if (res.statusCode === 0) sink = "never";
      });
      next();
    });
  }
  const guard = part === "plugin" ? requireScopes("read:events") : noop;
  const handler = async (req: Keyed, res: Response) => {
    res.json(events(req.apiKey?.orgId ?? "org_bench"));
  };
  if (part === "bare" || part === "pristine") app.get("/v1/events", handler);
  else app.get("/v1/events", guard, handler);
  const server = await new Promise<import("node:http").Server>((resolve) => {
    const listening = app.listen(0, "127.0.0.1", () => resolve(listening));
  });
  process.on("SIGTERM", () => {
    server.close(() => void (flux?.close() ?? Promise.resolve()).then(() => process.exit(0)));
  });
  return (server.address() as AddressInfo).port;
}
