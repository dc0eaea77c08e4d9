/**
 * The events API on Fastify 5, protected by Flux Keys.
 */

import swagger from "@fastify/swagger";
import { type Flux, openApiComponents } from "@flux-keys/core";
import { EventStore } from "@flux-keys/example-shared";
import { type FluxKeysPluginOptions, fluxKeys, fluxMetrics, fluxPortal } from "@flux-keys/fastify";
import Fastify, { type FastifyInstance } from "fastify";

export async function createApp(
  flux: Flux,
  options: Omit<FluxKeysPluginOptions, "flux"> = {},
): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  const events = new EventStore();
  // The API document (`app.swagger()`): registered first, so that it sees every route.
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "Events API (Fastify)", version: "1.0.0" },
      components: { securitySchemes: openApiComponents().securitySchemes as never },
    },
  });
  // `openapi: true`: each protected route's schema describes its scopes, entitlement and denials.
  await app.register(fluxKeys, { flux, openapi: true, ...options });
  // The customer portal (its routes are public to fluxKeys: portal sessions, not API keys).
  await app.register(fluxPortal, { flux, prefix: "/portal" });
  // The flux_* metrics for Prometheus at /metrics (keep the path internal in production).
  await app.register(fluxMetrics, { flux });

  app.get("/health", { config: { apiKey: { public: true } } }, async () => ({ ok: true }));

  app.get("/v1/events", { config: { apiKey: { scopes: ["read:events"] } } }, async (request) => ({
    data: events.list(request.apiKey!.orgId),
  }));
  app.get<{ Params: { id: string } }>(
    "/v1/events/:id",
    { config: { apiKey: { scopes: ["read:events"] } } },
    async (request, reply) => {
      const event = events.get(request.apiKey!.orgId, request.params.id);
      if (event === undefined)
        return reply.code(404).type("application/problem+json").send({ title: "Not found", status: 404 });
      return event;
    },
  );
  app.post("/v1/events", { config: { apiKey: { scopes: ["write:events"] } } }, async (request, reply) => {
    const event = events.add(request.apiKey!.orgId, request.body);
    if (event === null)
      return reply.code(400).type("application/problem+json").send({ title: "Invalid event", status: 400 });
    return reply.code(201).send(event);
  });
  app.post("/v1/exports", { config: { apiKey: { entitlement: "bulk_export" } } }, async (request, reply) =>
    reply.code(202).send({ export: "queued", orgId: request.apiKey!.orgId }),
  );
  app.get("/v1/boom", { config: { apiKey: { scopes: ["read:events"] } } }, async () => {
    throw new Error("handler failure");
  });
  return app;
}
