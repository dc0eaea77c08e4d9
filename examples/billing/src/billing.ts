/**
 * An API whose plans come from Stripe: Express, Flux Keys, and the Stripe webhook mounted in one
 * line. `startBillingApp()` returns the server and what a demo needs to drive it.
 */
import type { AddressInfo } from "node:net";
import { createFlux, type Flux, type KeyContext } from "@flux-keys/core";
import { type ApiKeyRequest, fluxKeys, fluxWebHandler } from "@flux-keys/express";
import { createStripeMeterSync, createStripeWebhookHandler, type StripeMeterSync } from "@flux-keys/stripe";
import express from "express";
import type Stripe from "stripe";

/** Stripe price lookup key → Flux plan. */
export const PLANS = { starter_monthly: "starter", pro_monthly: "pro" };

export interface BillingApp {
  flux: Flux;
  url: string;
  meters: StripeMeterSync;
  close(): Promise<void>;
}

export const limitsOf = (key: KeyContext) => ({
  org: key.orgId,
  plan: key.plan?.id ?? null,
  quota: key.rateLimit?.quota
    ? { limit: key.rateLimit.quota.limit, period: key.rateLimit.quota.period }
    : null,
  burst: key.rateLimit?.windows.find((w) => w.name === "burst")?.limit ?? null,
  entitlements: key.entitlements,
});

export async function startBillingApp(options: {
  stripe: Stripe;
  webhookSecret: string;
  databaseUrl?: string;
  port?: number;
}): Promise<BillingApp> {
  const flux = await createFlux(
    options.databaseUrl ? { database: { url: options.databaseUrl } } : { database: { pglite: true } },
  );
  await flux.plans.upsert({
    id: "starter",
    name: "Starter",
    quota: { limit: 1_000, period: "month" },
    rateLimits: [{ name: "burst", limit: 5, window: "1s" }],
  });
  await flux.plans.upsert({
    id: "pro",
    name: "Pro",
    entitlements: ["bulk_export"],
    quota: { limit: 1_000_000, period: "month" },
    rateLimits: [{ name: "burst", limit: 100, window: "1s" }],
  });

  const app = express();
  // Before any body parser: Stripe signs the raw body.
  app.post(
    "/stripe/webhooks",
    fluxWebHandler(
      createStripeWebhookHandler(flux, {
        stripe: options.stripe,
        webhookSecret: options.webhookSecret,
        plans: PLANS,
        fallbackPlan: "starter",
        pastDue: { graceDays: 3 },
      }),
    ),
  );
  app.use(express.json());
  app.get("/v1/limits", fluxKeys(flux), (req, res) => {
    res.json(limitsOf((req as ApiKeyRequest).apiKey));
  });
  // Allowed calls of every org with a Stripe customer, as meter events (off the request path).
  const meters = createStripeMeterSync(flux, {
    stripe: options.stripe,
    meters: [{ eventName: "api_calls" }],
  });
  meters.start();

  const server = app.listen(options.port ?? 0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    flux,
    url: `http://127.0.0.1:${port}`,
    meters,
    async close() {
      await meters.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await flux.close();
    },
  };
}
