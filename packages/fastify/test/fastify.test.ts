/** Fastify-specific API: route config, request decoration, error handler shaping, encapsulation. */
import type { Flux } from "@flux-keys/core";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { embeddedFluxWithKey } from "../../../test/support/fixtures.js";
import fluxKeysDefault, { FluxKeysError, fluxKeys } from "../src/index.js";

describe("@flux-keys/fastify", () => {
  let flux: Flux;
  let secret: string;

  beforeAll(async () => {
    ({ flux, secret } = await embeddedFluxWithKey(10));
  });
  afterAll(() => flux.close());

  it("is a default and a named export, decorates request.apiKey, reads route config", async () => {
    expect(fluxKeysDefault).toBe(fluxKeys);
    const app = Fastify();
    await app.register(fluxKeys, { flux });
    app.get("/me", async (request) => ({ org: request.apiKey?.orgId }));
    app.get("/open", { config: { apiKey: { public: true } } }, async (request) => ({ key: request.apiKey }));
    app.get("/bulk", { config: { apiKey: { cost: 3 } } }, async () => "ok");
    const me = await app.inject({ url: "/me", headers: { authorization: `Bearer ${secret}` } });
    expect(me.json()).toEqual({ org: "acme" });
    expect((await app.inject("/open")).json()).toEqual({ key: null });
    const before = Number(/r=(\d+)/.exec(me.headers.ratelimit as string)?.[1]);
    const bulk = await app.inject({ url: "/bulk", headers: { authorization: `Bearer ${secret}` } });
    expect(Number(/r=(\d+)/.exec(bulk.headers.ratelimit as string)?.[1])).toBe(before - 3);
    await app.close();
  });

  it("throws denials to the app's error handler, which may shape them", async () => {
    const app = Fastify();
    app.setErrorHandler((error, _request, reply) => {
      if (error instanceof FluxKeysError) {
        return reply.code(error.statusCode).headers(error.headers).send({ custom: error.code });
      }
      return reply.send(error);
    });
    await app.register(fluxKeys, { flux });
    app.get("/x", { config: { apiKey: { scopes: ["write:events"] } } }, async () => "no");
    const response = await app.inject({ url: "/x", headers: { authorization: `Bearer ${secret}` } });
    expect(response.statusCode).toBe(403);
    expect(response.json()).toEqual({ custom: "scope_denied" });
    expect(response.headers["www-authenticate"]).toContain('error="insufficient_scope"');
    await app.close();
  });

  it("sends problem details when the error reaches Fastify's default handler", async () => {
    const app = Fastify();
    await app.register(fluxKeys, { flux });
    app.get("/x", async () => "no");
    const response = await app.inject({ url: "/x" });
    expect(response.statusCode).toBe(401);
    expect(response.headers["content-type"]).toBe("application/problem+json");
    expect(response.json()).toMatchObject({ code: "key_missing", status: 401 });
    await app.close();
  });

  it("refuses to register without a flux instance", async () => {
    const app = Fastify();
    await expect(app.register(fluxKeys, {} as never).ready()).rejects.toThrow(/flux/);
  });
});
