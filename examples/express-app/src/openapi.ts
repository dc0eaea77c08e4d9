/**
 * The events API's OpenAPI document, as an Express app would write it, with what Flux Keys
 * requires of each route added from the app's own router (`addFluxKeysToOpenApi`).
 */
import { addFluxKeysToOpenApi } from "@flux-keys/express";
import type express from "express";

const ok = (description: string) => ({
  description,
  content: { "application/json": { schema: { type: "object" } } },
});
const id = { name: "id", in: "path", required: true, schema: { type: "string" } };

export function apiDocument(app: express.Express) {
  return addFluxKeysToOpenApi(app, {
    openapi: "3.1.0",
    info: { title: "Events API (Express)", version: "1.0.0" },
    paths: {
      "/health": { get: { operationId: "health", responses: { "200": ok("Up") } } },
      "/v1/events": {
        get: { operationId: "listEvents", responses: { "200": ok("The org's events") } },
        post: { operationId: "createEvent", responses: { "201": ok("The new event") } },
      },
      "/v1/events/{id}": {
        get: { operationId: "getEvent", parameters: [id], responses: { "200": ok("One event") } },
      },
      "/v1/exports": { post: { operationId: "export", responses: { "202": ok("Export queued") } } },
    },
  });
}
