/**
 * Guards run for controller routes only: paths that Nest serves through middleware
 * (`consumer.apply(...).forRoutes(...)`) or `app.use` are protected by FluxKeysMiddleware, on the
 * Express and the Fastify platform. On a controller route behind both, the key is verified (and
 * consumed) once.
 */
import "reflect-metadata";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createFlux, type Flux, type KeyContext } from "@flux-keys/core";
import { ApiKey, FluxKeysMiddleware, FluxKeysModule, Scopes } from "@flux-keys/nestjs";
import {
  Controller,
  Get,
  type INestApplication,
  type MiddlewareConsumer,
  Module,
  type NestModule,
  RequestMethod,
} from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { ExpressAdapter } from "@nestjs/platform-express";
import { FastifyAdapter } from "@nestjs/platform-fastify";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** A path answered by middleware itself, as legacy or proxied routes are. */
function legacy(req: IncomingMessage & { apiKey?: KeyContext | null }, res: ServerResponse) {
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ org: req.apiKey?.orgId ?? null }));
}

@Controller("v1")
class EventsController {
  @Scopes("read:events")
  @Get("events")
  list(@ApiKey() key: KeyContext) {
    return { org: key.orgId };
  }

  @Scopes("admin:all")
  @Get("admin")
  admin() {
    return { admin: true };
  }
}

@Module({})
class RoutesModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer
      .apply(FluxKeysMiddleware, legacy)
      .forRoutes({ path: "legacy/{*splat}", method: RequestMethod.ALL });
    consumer
      .apply(FluxKeysMiddleware.requiring({ scopes: ["write:events"], endpoint: "legacy-write" }), legacy)
      .forRoutes({ path: "legacy-write", method: RequestMethod.ALL });
    consumer.apply(legacy).forRoutes({ path: "open", method: RequestMethod.ALL });
    consumer.apply(FluxKeysMiddleware).forRoutes(EventsController);
  }
}

function remaining(response: request.Response): number {
  return Number(/;r=(\d+)/.exec(String(response.headers.ratelimit))?.[1]);
}

describe.each(["express", "fastify"] as const)("FluxKeysMiddleware on Nest's %s platform", (platform) => {
  let flux: Flux;
  let app: INestApplication;
  let reader: string;
  let writer: string;

  beforeAll(async () => {
    flux = await createFlux({ database: { pglite: true }, redis: null, webhooks: { interval: null } });
    await flux.plans.upsert({
      id: "pro",
      name: "Pro",
      scopes: ["read:events", "write:events"],
      rateLimits: [{ name: "sustained", limit: 1000, window: "1h" }],
    });
    await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
    ({ secret: reader } = await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue());
    ({ secret: writer } = await flux.keys.create().forOrg("acme").withScopes(["write:events"]).issue());

    @Module({
      imports: [FluxKeysModule.forRoot({ flux }), RoutesModule],
      controllers: [EventsController],
    })
    class AppModule {}

    const adapter = platform === "fastify" ? new FastifyAdapter() : new ExpressAdapter();
    app = await NestFactory.create(AppModule, adapter, { logger: false, abortOnError: false });
    const keys = app.get(FluxKeysMiddleware);
    app.use("/raw", keys.use.bind(keys));
    app.use("/raw", legacy);
    await app.init();
    if (platform === "fastify") await app.getHttpAdapter().getInstance().ready();
  });

  afterAll(async () => {
    await app?.close();
    await flux?.close();
  });

  const api = () => request(app.getHttpServer());

  it("protects a path served by middleware (consumer.apply(...).forRoutes(...))", async () => {
    const missing = await api().get("/legacy/report");
    expect(missing.status).toBe(401);
    expect(missing.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(missing.headers["www-authenticate"]).toBe('Bearer realm="api"');
    expect(JSON.parse(missing.text)).toMatchObject({ code: "key_missing", status: 401 });
    const bad = await api().get("/legacy/report").set("Authorization", "Bearer flux_live_nonsense");
    expect(bad.status).toBe(401);
    const served = await api().get("/legacy/report").set("Authorization", `Bearer ${reader}`);
    expect(served.status).toBe(200);
    expect(JSON.parse(served.text)).toEqual({ org: "acme" });
    expect(served.headers.ratelimit).toMatch(/^"sustained";r=\d+;t=\d+$/);
  });

  it("enforces the requirements given with FluxKeysMiddleware.requiring()", async () => {
    const denied = await api().get("/legacy-write").set("Authorization", `Bearer ${reader}`);
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.text)).toMatchObject({ code: "scope_denied" });
    const allowed = await api().get("/legacy-write").set("Authorization", `Bearer ${writer}`);
    expect(allowed.status).toBe(200);
  });

  it("protects a path mounted with app.use", async () => {
    expect((await api().get("/raw/thing")).status).toBe(401);
    const served = await api().get("/raw/thing").set("X-API-Key", reader);
    expect(served.status).toBe(200);
    expect(JSON.parse(served.text)).toEqual({ org: "acme" });
  });

  it("(a middleware path without it is open: the global guard never sees it)", async () => {
    const open = await api().get("/open");
    expect(open.status).toBe(200);
    expect(JSON.parse(open.text)).toEqual({ org: null });
  });

  it("verifies a controller route behind both the middleware and the guard once", async () => {
    const auth = { Authorization: `Bearer ${reader}` };
    const first = await api().get("/v1/events").set(auth);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ org: "acme" });
    const second = await api().get("/v1/events").set(auth);
    expect(remaining(first) - remaining(second)).toBe(1);
    // The guard still checks the controller route's scopes, and a refusal consumes nothing.
    const admin = await api().get("/v1/admin").set(auth);
    expect(admin.status).toBe(403);
    expect(JSON.parse(admin.text)).toMatchObject({ code: "scope_denied" });
    const third = await api().get("/v1/events").set(auth);
    expect(remaining(second) - remaining(third)).toBe(1);
  });
});
