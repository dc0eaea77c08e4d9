/**
 * Two instances on one PostgreSQL (invalidation over LISTEN/NOTIFY, or Redis): a plan change that a
 * Stripe webhook made on one is what the other's next request sees; one event delivered to both
 * at once is applied once.
 */
import { createFlux, type Flux } from "@flux-keys/core";
import { createStripeWebhookHandler } from "@flux-keys/stripe";
import {
  type FakeStripeServer,
  fakeStripeClient,
  signEvent,
  startFakeStripe,
  subscriptionEvent,
} from "@flux-keys/stripe/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DATABASE_URL,
  freshSchema,
  hasPostgres,
  hasRedis,
  REDIS_URL,
  uniqueName,
} from "./support/services.js";

const SECRET = "whsec_instances_0123456789";
const PLANS = { pro_monthly: "pro" };

const BUSES = [
  { bus: "PostgreSQL LISTEN/NOTIFY", available: hasPostgres, redis: false },
  { bus: "Redis pub/sub", available: hasPostgres && hasRedis, redis: true },
];

describe.each(BUSES)(
  "Stripe webhooks with two instances on one PostgreSQL ($bus)",
  ({ available, redis }) => {
    let a: Flux;
    let b: Flux;
    let drop: () => Promise<void>;
    let stripeServer: FakeStripeServer;

    beforeAll(async () => {
      if (!available) return;
      const fresh = await freshSchema();
      drop = fresh.drop;
      const options = {
        database: { url: DATABASE_URL, schema: fresh.schema, poolSize: 2 },
        redis: redis ? { url: REDIS_URL, keyPrefix: `${uniqueName("stripe")}:` } : null,
        // Long TTLs: only the invalidation can make B see the change.
        cache: { ttl: "10m", negativeTtl: "10m" },
      } as const;
      a = await createFlux(options);
      b = await createFlux(options);
      stripeServer = await startFakeStripe();
      await a.plans.upsert({ id: "free", name: "Free", quota: { limit: 100, period: "day" } });
      await a.plans.upsert({
        id: "pro",
        name: "Pro",
        entitlements: ["sso"],
        quota: { limit: 100_000, period: "day" },
      });
      await a.orgs.create({ id: "acme", name: "Acme", planId: "free", stripeCustomerId: "cus_acme" });
    });
    afterAll(async () => {
      await a?.close();
      await b?.close();
      await stripeServer?.close();
      await drop?.();
    });

    it.skipIf(!available)(
      "a plan change handled by A reaches B's next request within a second; concurrent replays apply once",
      async () => {
        const { secret } = await a.keys.create().forOrg("acme").issue();
        expect((await b.keys.verify(secret)).plan?.id).toBe("free");
        const stripe = fakeStripeClient(stripeServer);
        const handlerA = createStripeWebhookHandler(a, {
          stripe,
          webhookSecret: SECRET,
          plans: PLANS,
          fallbackPlan: "free",
        });
        const handlerB = createStripeWebhookHandler(b, {
          stripe,
          webhookSecret: SECRET,
          plans: PLANS,
          fallbackPlan: "free",
        });
        const event = subscriptionEvent({
          id: "evt_two_instances",
          type: "customer.subscription.created",
          created: Math.floor(Date.now() / 1000),
          customer: "cus_acme",
          status: "active",
          lookupKey: "pro_monthly",
        });
        const delivery = () => {
          const { body, signature } = signEvent(stripe, SECRET, event);
          return new Request("http://localhost/stripe/webhooks", {
            method: "POST",
            headers: { "Stripe-Signature": signature, "Content-Type": "application/json" },
            body,
          });
        };
        // Stripe may deliver the same event to two instances at once.
        const outcomes = await Promise.all([
          handlerA(delivery()),
          handlerB(delivery()),
          handlerA(delivery()),
        ]);
        const bodies = await Promise.all(outcomes.map((r) => r.json() as Promise<{ outcome: string }>));
        expect(bodies.map((x) => x.outcome).sort()).toEqual(["applied", "duplicate", "duplicate"]);

        const start = Date.now();
        while ((await b.keys.verify(secret)).plan?.id !== "pro") {
          if (Date.now() - start > 1_000) throw new Error("B did not see the new plan within 1 s");
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        const seen = await b.keys.verify(secret);
        expect(seen.entitlements).toContain("sso");
        expect(seen.rateLimit?.quota?.limit).toBe(100_000);
        const changes = (await b.audit.list({ orgId: "acme" })).items.filter(
          (e) => e.action === "org.plan_changed",
        );
        expect(changes).toHaveLength(1);
        expect(changes[0]?.actor).toEqual({ type: "system", id: "stripe" });
      },
    );
  },
);
