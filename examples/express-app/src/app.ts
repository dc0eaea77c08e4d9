/**
 * The events API on Express 5, protected by Flux Keys.
 */
import type { Flux } from "@flux-keys/core";
import { EventStore } from "@flux-keys/example-shared";
import {
  type ApiKeyRequest,
  type FluxKeysOptions,
  fluxKeys,
  fluxMetrics,
  fluxPortal,
  requireEntitlement,
  requireScopes,
} from "@flux-keys/express";
import express, { type NextFunction, type Request, type Response } from "express";

export function createApp(flux: Flux, options: FluxKeysOptions = {}): express.Express {
  const app = express();
  const events = new EventStore();
  app.disable("x-powered-by");
  // The customer portal: its own sessions, not API keys, so it goes before the middleware.
  app.use("/portal", fluxPortal(flux));
  app.use(express.json({ limit: "16kb" }));

  // Public routes go before the middleware.
  app.get("/health", (_req, res) => {
    res.json({ ok: true });
  });
  // The flux_* metrics for Prometheus (keep the path internal in production).
  app.get("/metrics", fluxMetrics(flux));

  app.use(fluxKeys(flux, options));

  app.get("/v1/events", requireScopes("read:events"), (req, res) => {
    res.json({ data: events.list((req as ApiKeyRequest).apiKey.orgId) });
  });
  app.get("/v1/events/:id", requireScopes("read:events"), (req, res) => {
    const { apiKey } = req as ApiKeyRequest;
    const event = events.get(apiKey.orgId, String(req.params.id));
    if (event === undefined) {
      res.status(404).type("application/problem+json").json({ title: "Not found", status: 404 });
      return;
    }
    res.json(event);
  });
  app.post("/v1/events", requireScopes("write:events"), (req, res) => {
    const event = events.add((req as ApiKeyRequest).apiKey.orgId, req.body);
    if (event === null) {
      res.status(400).type("application/problem+json").json({ title: "Invalid event", status: 400 });
      return;
    }
    res.status(201).json(event);
  });
  app.post("/v1/exports", requireEntitlement("bulk_export"), (req, res) => {
    res.status(202).json({ export: "queued", orgId: (req as ApiKeyRequest).apiKey.orgId });
  });
  app.get("/v1/boom", requireScopes("read:events"), () => {
    throw new Error("handler failure");
  });

  app.use((error: Error, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    res.status(500).type("application/problem+json").json({ title: "Internal error", status: 500 });
  });
  return app;
}
export { apiDocument } from "./openapi.js";
