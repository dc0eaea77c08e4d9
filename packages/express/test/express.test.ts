/** Express-specific API: onDenied, passToErrorHandler, cost, and guards without the middleware. */
import type { Flux } from "@flux-keys/core";
import express, { type NextFunction, type Request, type Response } from "express";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { embeddedFluxWithKey } from "../../../test/support/fixtures.js";
import { type ApiKeyRequest, type FluxKeysHttpError, fluxKeys, requireScopes } from "../src/index.js";

describe("@flux-keys/express", () => {
  let flux: Flux;
  let secret: string;

  beforeAll(async () => {
    ({ flux, secret } = await embeddedFluxWithKey(10));
  });
  afterAll(() => flux.close());

  it("puts the context on req.apiKey", async () => {
    const app = express().use(fluxKeys(flux));
    app.get("/me", (req, res) => {
      res.json({ org: (req as ApiKeyRequest).apiKey.orgId, scopes: (req as ApiKeyRequest).apiKey.scopes });
    });
    const response = await request(app).get("/me").set("Authorization", `Bearer ${secret}`);
    expect(response.body).toEqual({ org: "acme", scopes: ["read:events"] });
  });

  it("hands denials to Express's error handlers with passToErrorHandler", async () => {
    const app = express().use(fluxKeys(flux, { passToErrorHandler: true }));
    app.get("/x", (_req, res) => {
      res.send("no");
    });
    app.use((error: FluxKeysHttpError, _req: Request, res: Response, _next: NextFunction) => {
      res.status(error.statusCode).set(error.headers).json({ mine: error.code });
    });
    const response = await request(app).get("/x");
    expect(response.status).toBe(401);
    expect(response.body).toEqual({ mine: "key_missing" });
    expect(response.headers["www-authenticate"]).toBe('Bearer realm="api"');
  });

  it("lets onDenied shape the response", async () => {
    const app = express().use(
      fluxKeys(flux, {
        realm: "acme-api",
        onDenied: (error, _req, res) => {
          res.status(error.statusCode).json({ error: error.code, problem: error.toProblem() });
        },
      }),
    );
    app.get("/x", requireScopes("write:events"), (_req, res) => {
      res.send("no");
    });
    const response = await request(app).get("/x").set("Authorization", `Bearer ${secret}`);
    expect(response.status).toBe(403);
    expect(response.body).toMatchObject({
      error: "scope_denied",
      problem: { code: "scope_denied", status: 403 },
    });
  });

  it("charges the configured cost, and gives it back when a guard refuses", async () => {
    const app = express().use(fluxKeys(flux, { cost: (req) => (req.path === "/bulk" ? 4 : 1) }));
    app.get("/bulk", (_req, res) => {
      res.send("ok");
    });
    app.get("/write", requireScopes("write:events"), (_req, res) => {
      res.send("no");
    });
    const remaining = async () => {
      const state = await flux.keys.check(secret, { cost: 0 });
      return state.valid ? state.context.rateLimit?.windows[0]?.remaining : undefined;
    };
    const before = (await remaining()) as number;
    await request(app).get("/bulk").set("Authorization", `Bearer ${secret}`).expect(200);
    expect(await remaining()).toBe(before - 4);
    await request(app).get("/write").set("Authorization", `Bearer ${secret}`).expect(403);
    expect(await remaining()).toBe(before - 4);
  });

  it("fails loudly when a guard runs without the middleware", async () => {
    const app = express();
    app.get("/x", requireScopes("read:events"), (_req, res) => {
      res.send("should not happen");
    });
    app.use((error: Error, _req: Request, res: Response, _next: NextFunction) => {
      res.status(500).send(error.message);
    });
    const response = await request(app).get("/x").set("Authorization", `Bearer ${secret}`);
    expect(response.status).toBe(500);
    expect(response.text).toContain("fluxKeys");
  });
});
