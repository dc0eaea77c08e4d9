// Every entry point of every package, used with its types. The check copies this file to
// consumer.cts so that nodenext also resolves each import from CommonJS (the `require` types).
import { run } from "@flux-keys/cli";
import { createFlux, type Flux, type FluxError, type KeyContext } from "@flux-keys/core";
import { type ApiKeyRequest, fluxKeys, requireScopes } from "@flux-keys/express";
import fastifyFluxKeys, { type FluxKeysPluginOptions } from "@flux-keys/fastify";
import { ApiKeyGuard, FluxKeysModule, Scopes } from "@flux-keys/nestjs";
import { FluxEntitlementProvider } from "@flux-keys/openfeature";
import { createStripeWebhookHandler } from "@flux-keys/stripe";
import { startFakeStripe } from "@flux-keys/stripe/testing";
import express from "express";
import Fastify from "fastify";

export async function consumer(): Promise<number> {
  const flux: Flux = await createFlux();
  const app = express();
  app.use(fluxKeys(flux));
  app.get("/v1/events", requireScopes("read:events"), (req, res) => {
    const key: KeyContext = (req as ApiKeyRequest).apiKey;
    res.json({ org: key.orgId });
  });

  const fastify = Fastify();
  const options: FluxKeysPluginOptions = { flux };
  await fastify.register(fastifyFluxKeys, options);
  fastify.get("/v1/events", { config: { apiKey: { scopes: ["read:events"] } } }, async (request) => ({
    org: request.apiKey?.orgId,
  }));

  const nest: unknown[] = [FluxKeysModule.forRoot({ flux }), ApiKeyGuard, Scopes("read:events")];
  const provider = new FluxEntitlementProvider(flux, { prefix: "flux." });
  const stripe = await startFakeStripe();
  const handler: (request: Request) => Promise<Response> = createStripeWebhookHandler(flux, {
    stripe: {} as never,
    webhookSecret: "whsec_test",
    plans: {},
  });
  const error: FluxError | undefined = undefined;
  void [nest, provider.metadata.name, handler, error, stripe.port];
  return run(["--help"]);
}
