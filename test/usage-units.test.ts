/**
 * Every adapter records what a call cost (its route's cost) in usage, so that a meter that bills
 * by cost (`value: 'units'` in @flux-keys/stripe) sees the same units the limiter consumed.
 * Real HTTP through each framework; embedded defaults.
 */
import "reflect-metadata";
import { createFlux, type Flux } from "@flux-keys/core";
import { fluxKeys as expressKeys } from "@flux-keys/express";
import fastifyKeys from "@flux-keys/fastify";
import { FluxKeysModule, RateLimitCost } from "@flux-keys/nestjs";
import { Controller, Get, Module } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { ExpressAdapter } from "@nestjs/platform-express";
import { FastifyAdapter } from "@nestjs/platform-fastify";
import express from "express";
import Fastify from "fastify";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

@Controller("v1")
class BulkController {
  @RateLimitCost(5)
  @Get("bulk")
  bulk() {
    return { ok: true };
  }
}

type Server = Parameters<typeof request>[0];

const APPS: Array<{ name: string; start(flux: Flux): Promise<{ server: Server; close(): Promise<void> }> }> =
  [
    {
      name: "express",
      async start(flux) {
        const app = express();
        app.use(expressKeys(flux, { cost: (req) => (req.path === "/v1/bulk" ? 5 : 1) }));
        app.get("/v1/bulk", (_req, res) => {
          res.json({ ok: true });
        });
        return { server: app, close: async () => {} };
      },
    },
    {
      name: "fastify",
      async start(flux) {
        const app = Fastify();
        await app.register(fastifyKeys, { flux });
        app.get("/v1/bulk", { config: { apiKey: { cost: 5 } } }, async () => ({ ok: true }));
        await app.ready();
        return { server: app.server, close: () => app.close() };
      },
    },
    ...(["express", "fastify"] as const).map((platform) => ({
      name: `nest-${platform}`,
      async start(flux: Flux) {
        @Module({ imports: [FluxKeysModule.forRoot({ flux })], controllers: [BulkController] })
        class AppModule {}
        const adapter = platform === "fastify" ? new FastifyAdapter() : new ExpressAdapter();
        const app = await NestFactory.create(AppModule, adapter, { logger: false });
        await app.init();
        if (platform === "fastify") await app.getHttpAdapter().getInstance().ready();
        return { server: app.getHttpServer(), close: () => app.close() };
      },
    })),
  ];

describe.each(APPS)("usage units on $name", (target) => {
  let flux: Flux;
  let secret: string;
  let app: { server: Server; close(): Promise<void> };

  beforeAll(async () => {
    flux = await createFlux({ database: { pglite: true }, redis: null });
    await flux.orgs.create({ id: "acme", name: "Acme" });
    ({ secret } = await flux.keys
      .create()
      .forOrg("acme")
      .withRateLimits([{ name: "minute", limit: 100, window: "1m" }])
      .issue());
    app = await target.start(flux);
  });
  afterAll(async () => {
    await app?.close();
    await flux?.close();
  });

  it("records the route's cost as the call's units, the same the limiter consumed", async () => {
    let remaining = 100;
    for (let i = 0; i < 2; i++) {
      const response = await request(app.server).get("/v1/bulk").set("Authorization", `Bearer ${secret}`);
      expect(response.status).toBe(200);
      remaining = Number(/"minute";r=(\d+)/.exec(String(response.headers.ratelimit))?.[1]);
    }
    expect(remaining).toBe(90);
    await flux.usage.flush();
    const [row] = await flux.internals.database.driver.withSession((session) =>
      session.query<{ calls: string; units: string }>(
        `SELECT sum("count")::text AS "calls", sum("units")::text AS "units" FROM "flux_usage_minutes" WHERE "org_id" = 'acme'`,
      ),
    );
    expect(row).toEqual({ calls: "2", units: "10" });
  });
});
