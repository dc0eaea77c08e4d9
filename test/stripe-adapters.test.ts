/**
 * The Stripe webhook handler mounted through each adapter's Web-handler mount, posted to over a
 * real socket with events signed by the SDK's own test-header helper (two instances on one
 * PostgreSQL: stripe-instances.test.ts).
 */
import "reflect-metadata";
import { createFlux, type Flux, toNodeListener } from "@flux-keys/core";
import { fluxKeys as expressKeys, fluxWebHandler } from "@flux-keys/express";
import { fluxKeys as fastifyKeys, fluxWebRoute } from "@flux-keys/fastify";
import { ApiKey, FluxKeysModule } from "@flux-keys/nestjs";
import { createStripeWebhookHandler } from "@flux-keys/stripe";
import {
  type FakeStripeServer,
  fakeStripeClient,
  signEvent,
  startFakeStripe,
  subscriptionEvent,
} from "@flux-keys/stripe/testing";
import { Controller, Get, Module } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { ExpressAdapter } from "@nestjs/platform-express";
import express from "express";
import Fastify from "fastify";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const SECRET = "whsec_adapters_0123456789";
const PLANS = { pro_monthly: "pro" };
type Server = Parameters<typeof request>[0];

interface Limits {
  plan: string | null;
  quota: number | null;
  sso: boolean;
}

@Controller()
class LimitsController {
  @Get("v1/limits")
  limits(@ApiKey() key: import("@flux-keys/core").KeyContext): Limits {
    return {
      plan: key.plan?.id ?? null,
      quota: key.rateLimit?.quota?.limit ?? null,
      sso: key.entitlements.includes("sso"),
    };
  }
}

const limitsOf = (key: import("@flux-keys/core").KeyContext): Limits => ({
  plan: key.plan?.id ?? null,
  quota: key.rateLimit?.quota?.limit ?? null,
  sso: key.entitlements.includes("sso"),
});

const ADAPTERS: Array<{
  name: string;
  start(
    flux: Flux,
    handler: (r: Request) => Promise<Response>,
  ): Promise<{ server: Server; close(): Promise<void> }>;
}> = [
  {
    name: "Express",
    async start(flux, handler) {
      const app = express();
      app.post("/stripe/webhooks", fluxWebHandler(handler));
      app.use(express.json());
      app.get("/v1/limits", expressKeys(flux), (req, res) => {
        res.json(limitsOf((req as unknown as { apiKey: import("@flux-keys/core").KeyContext }).apiKey));
      });
      return { server: app, close: async () => {} };
    },
  },
  {
    name: "Fastify",
    async start(flux, handler) {
      const app = Fastify();
      await app.register(fastifyKeys, { flux });
      await app.register(async (scope) => fluxWebRoute(scope, "/stripe/webhooks", handler));
      app.get("/v1/limits", async (req) => limitsOf(req.apiKey as import("@flux-keys/core").KeyContext));
      await app.ready();
      return { server: app.server, close: () => app.close() };
    },
  },
  {
    name: "NestJS",
    async start(flux, handler) {
      @Module({ imports: [FluxKeysModule.forRoot({ flux })], controllers: [LimitsController] })
      class AppModule {}
      // Nest's default JSON parser stays on: `rawBody: true` keeps the bytes the signature covers.
      const app = await NestFactory.create(AppModule, new ExpressAdapter(), { logger: false, rawBody: true });
      app.use("/stripe/webhooks", toNodeListener(handler));
      await app.init();
      return { server: app.getHttpServer(), close: () => app.close() };
    },
  },
];

describe.each(ADAPTERS)("Stripe webhooks through $name", (adapter) => {
  let flux: Flux;
  let stripeServer: FakeStripeServer;
  let app: { server: Server; close(): Promise<void> };
  const t0 = Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    flux = await createFlux({ database: { pglite: true }, redis: null });
    stripeServer = await startFakeStripe();
    await flux.plans.upsert({ id: "free", name: "Free", quota: { limit: 100, period: "day" } });
    await flux.plans.upsert({
      id: "pro",
      name: "Pro",
      entitlements: ["sso"],
      quota: { limit: 100_000, period: "day" },
    });
    await flux.orgs.create({ id: "acme", name: "Acme", planId: "free" });
    await flux.orgs.update("acme", { stripeCustomerId: "cus_acme" });
    const handler = createStripeWebhookHandler(flux, {
      stripe: fakeStripeClient(stripeServer),
      webhookSecret: SECRET,
      plans: PLANS,
      fallbackPlan: "free",
    });
    app = await adapter.start(flux, handler);
  });
  afterAll(async () => {
    await app?.close();
    await flux?.close();
    await stripeServer?.close();
  });

  async function deliver(event: Record<string, unknown>) {
    const { body, signature } = signEvent(fakeStripeClient(stripeServer), SECRET, event);
    return request(app.server)
      .post("/stripe/webhooks")
      .set("Content-Type", "application/json")
      .set("Stripe-Signature", signature)
      .send(body);
  }

  it("a signed subscription upgrades the org; its next request gets the new limits; replays change nothing", async () => {
    const { secret } = await flux.keys.create().forOrg("acme").issue();
    const before = await request(app.server).get("/v1/limits").set("Authorization", `Bearer ${secret}`);
    expect(before.body).toEqual({ plan: "free", quota: 100, sso: false });

    const created = subscriptionEvent({
      id: `evt_${adapter.name}_1`,
      type: "customer.subscription.created",
      created: t0,
      customer: "cus_acme",
      status: "active",
      lookupKey: "pro_monthly",
    });
    const delivered = await deliver(created);
    expect(delivered.status).toBe(200);
    expect(delivered.body).toEqual({ received: true, outcome: "applied" });

    const after = await request(app.server).get("/v1/limits").set("Authorization", `Bearer ${secret}`);
    expect(after.body).toEqual({ plan: "pro", quota: 100_000, sso: true });
    expect(after.headers["ratelimit-policy"]).toContain("100000");

    expect((await deliver(created)).body).toEqual({ received: true, outcome: "duplicate" });
    const stale = subscriptionEvent({
      id: `evt_${adapter.name}_0`,
      type: "customer.subscription.updated",
      created: t0 - 60,
      customer: "cus_acme",
      status: "canceled",
      lookupKey: "pro_monthly",
    });
    expect((await deliver(stale)).body).toEqual({ received: true, outcome: "stale" });
    const again = await request(app.server).get("/v1/limits").set("Authorization", `Bearer ${secret}`);
    expect(again.body.plan).toBe("pro");
  });

  it("a forged delivery is a 400 problem and changes nothing", async () => {
    const event = subscriptionEvent({
      id: `evt_${adapter.name}_forged`,
      type: "customer.subscription.deleted",
      created: t0 + 100,
      customer: "cus_acme",
      status: "canceled",
      lookupKey: "pro_monthly",
    });
    const { body } = signEvent(fakeStripeClient(stripeServer), SECRET, event);
    const forged = await request(app.server)
      .post("/stripe/webhooks")
      .set("Content-Type", "application/json")
      .set("Stripe-Signature", `t=${t0},v1=${"0".repeat(64)}`)
      .send(body);
    expect(forged.status).toBe(400);
    expect(forged.headers["content-type"]).toContain("application/problem+json");
    expect(forged.body).toMatchObject({ code: "invalid_request" });
    expect((await flux.orgs.get("acme")).planId).toBe("pro");
  });
});
