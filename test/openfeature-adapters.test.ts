/**
 * Per-request OpenFeature context on every adapter: with `runWithContext:
 * transactionContextFromKey()`, a flag evaluated deep in a handler (after awaits, with no context
 * passed) targets the verified key's org and plan; concurrent requests of two orgs never mix.
 */
import "reflect-metadata";
import { setTimeout as sleep } from "node:timers/promises";
import { createFlux, type Flux } from "@flux-keys/core";
import { fluxKeys as expressKeys } from "@flux-keys/express";
import { fluxKeys as fastifyKeys } from "@flux-keys/fastify";
import { FluxKeysModule } from "@flux-keys/nestjs";
import { FluxEntitlementProvider, transactionContextFromKey } from "@flux-keys/openfeature";
import { Body, Controller, Get, Module, Post } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { ExpressAdapter } from "@nestjs/platform-express";
import { FastifyAdapter } from "@nestjs/platform-fastify";
import { InMemoryProvider, MultiProvider, OpenFeature } from "@openfeature/server-sdk";
import express from "express";
import Fastify from "fastify";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const DOMAIN = "flux-adapters";

/** Somewhere deep in the app: no request, no key, no context in hand. */
async function deepInTheHandler(): Promise<{ org: unknown; sso: boolean; plan: string; beta: boolean }> {
  await sleep(5);
  await Promise.resolve();
  const flags = OpenFeature.getClient(DOMAIN);
  return {
    org: flags.getContext().targetingKey ?? OpenFeature.getTransactionContext().targetingKey,
    sso: await flags.getBooleanValue("sso", false),
    plan: await flags.getStringValue("plan", "none"),
    beta: await flags.getBooleanValue("beta", false),
  };
}

@Controller()
class DeepController {
  @Get("deep")
  get() {
    return deepInTheHandler();
  }
  @Post("deep")
  post(@Body() _body: unknown) {
    return deepInTheHandler();
  }
}

type Server = Parameters<typeof request>[0];
const ADAPTERS: Array<{
  name: string;
  start(flux: Flux): Promise<{ server: Server; close(): Promise<void> }>;
}> = [
  {
    name: "Express",
    async start(flux) {
      const app = express();
      app.use(express.json());
      app.use(expressKeys(flux, { runWithContext: transactionContextFromKey() }));
      app.get("/deep", async (_req, res) => {
        res.json(await deepInTheHandler());
      });
      app.post("/deep", async (_req, res) => {
        res.json(await deepInTheHandler());
      });
      return { server: app, close: async () => {} };
    },
  },
  {
    name: "Fastify",
    async start(flux) {
      const app = Fastify();
      await app.register(fastifyKeys, { flux, runWithContext: transactionContextFromKey() });
      app.get("/deep", () => deepInTheHandler());
      app.post("/deep", () => deepInTheHandler());
      await app.ready();
      return { server: app.server, close: () => app.close() };
    },
  },
  ...(["express", "fastify"] as const).map((platform) => ({
    name: `NestJS (${platform})`,
    async start(flux: Flux) {
      @Module({
        imports: [FluxKeysModule.forRoot({ flux, runWithContext: transactionContextFromKey() })],
        controllers: [DeepController],
      })
      class AppModule {}
      const adapter = platform === "fastify" ? new FastifyAdapter() : new ExpressAdapter();
      const app = await NestFactory.create(AppModule, adapter, { logger: false });
      await app.init();
      if (platform === "fastify") await app.getHttpAdapter().getInstance().ready();
      return { server: app.getHttpServer(), close: () => app.close() };
    },
  })),
];

describe("OpenFeature transaction context per request", () => {
  let flux: Flux;
  let secrets: { acme: string; globex: string };

  beforeAll(async () => {
    flux = await createFlux({ database: { pglite: true }, redis: null });
    await flux.plans.upsert({ id: "pro", name: "Pro", entitlements: ["sso"] });
    await flux.plans.upsert({ id: "team", name: "Team", entitlements: ["sso"] });
    await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
    await flux.orgs.create({ id: "globex", name: "Globex", planId: "team" });
    secrets = {
      acme: (await flux.keys.create().forOrg("acme").issue()).secret,
      globex: (await flux.keys.create().forOrg("globex").issue()).secret,
    };
    const killSwitches = new InMemoryProvider({
      sso: {
        variants: { on: true, off: false },
        defaultVariant: "on",
        disabled: false,
        contextEvaluator: (ctx) => (ctx.targetingKey === "globex" ? "off" : "on"),
      },
      beta: {
        variants: { on: true, off: false },
        defaultVariant: "off",
        disabled: false,
        contextEvaluator: (ctx) => (ctx.plan === "pro" ? "on" : "off"),
      },
    });
    await OpenFeature.setProviderAndWait(
      DOMAIN,
      new MultiProvider([{ provider: killSwitches }, { provider: new FluxEntitlementProvider(flux) }]),
    );
  });
  afterAll(async () => {
    await OpenFeature.clearProviders();
    await flux?.close();
  });

  describe.each(ADAPTERS)("$name", (adapter) => {
    let app: { server: Server; close(): Promise<void> };
    beforeAll(async () => {
      app = await adapter.start(flux);
    });
    afterAll(() => app?.close());

    it("a flag evaluated deep in the handler targets the key's org and plan (GET and POST with a body)", async () => {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => {
          const org = i % 2 === 0 ? "acme" : "globex";
          const call =
            i % 4 < 2
              ? request(app.server).get("/deep")
              : request(app.server).post("/deep").set("Content-Type", "application/json").send({ n: i });
          return call.set("Authorization", `Bearer ${secrets[org]}`).then((res) => ({ org, res }));
        }),
      );
      for (const { org, res } of results) {
        expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
        expect(res.body).toEqual(
          org === "acme"
            ? { org: "acme", sso: true, plan: "pro", beta: true }
            : { org: "globex", sso: false, plan: "team", beta: false },
        );
      }
    });
  });
});
