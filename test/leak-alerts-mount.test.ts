/**
 * GitHub's secret-scanning alerts, mounted through each adapter's Web-handler mount, with a real
 * socket and a signature made here.
 */
import { generateKeyPairSync, sign } from "node:crypto";
import { createFlux, createSecretScanningHandler, type Flux, toNodeListener } from "@flux-keys/core";
import { fluxWebHandler } from "@flux-keys/express";
import { fluxWebRoute } from "@flux-keys/fastify";
import { Controller, Get, Module } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { ExpressAdapter } from "@nestjs/platform-express";
import express from "express";
import Fastify from "fastify";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const publicKeys = [
  { keyIdentifier: "k1", key: publicKey.export({ type: "spki", format: "pem" }).toString() },
];

@Controller()
class NothingController {
  @Get("nothing")
  nothing() {
    return "";
  }
}

describe("GitHub alerts mounted through each adapter", () => {
  let flux: Flux;
  beforeAll(async () => {
    flux = await createFlux({ database: { pglite: true }, redis: null });
    await flux.orgs.create({ id: "acme", name: "Acme" });
  });
  afterAll(() => flux.close());

  /** Reports a fresh key as leaked at `path`: the answer, and what checking the key says after. */
  async function report(server: Parameters<typeof request>[0], path: string) {
    const { secret } = await flux.keys.create().forOrg("acme").issue();
    const body = JSON.stringify([
      { token: secret, type: "flux_api_key", url: "https://github.com/a/b", source: "content" },
    ]);
    const response = await request(server)
      .post(path)
      .set("Content-Type", "application/json")
      .set("Github-Public-Key-Identifier", "k1")
      .set("Github-Public-Key-Signature", sign("sha256", Buffer.from(body), privateKey).toString("base64"))
      .send(body);
    return { status: response.status, body: response.body as unknown, after: await flux.keys.check(secret) };
  }

  /** A reported key is labelled a true positive and revoked. */
  function expectRevoked(outcome: Awaited<ReturnType<typeof report>>) {
    expect(outcome.status).toBe(200);
    expect(outcome.body).toEqual([expect.objectContaining({ label: "true_positive" })]);
    expect(outcome.after).toMatchObject({ valid: false, error: { code: "key_revoked" } });
  }

  it("Express: fluxWebHandler, before express.json()", async () => {
    const app = express();
    app.post("/github/secret-scanning", fluxWebHandler(createSecretScanningHandler(flux, { publicKeys })));
    app.use(express.json());
    expectRevoked(await report(app, "/github/secret-scanning"));
  });

  it("Fastify: fluxWebRoute in its own scope", async () => {
    const app = Fastify();
    await app.register(async (scope) => {
      fluxWebRoute(scope, "/github/secret-scanning", createSecretScanningHandler(flux, { publicKeys }));
    });
    await app.ready();
    expectRevoked(await report(app.server, "/github/secret-scanning"));
    await app.close();
  });

  it("NestJS: app.use() with core's node listener", async () => {
    @Module({ controllers: [NothingController] })
    class AppModule {}
    const app = await NestFactory.create(AppModule, new ExpressAdapter(), {
      logger: false,
      bodyParser: false,
    });
    app.use("/github/secret-scanning", toNodeListener(createSecretScanningHandler(flux, { publicKeys })));
    await app.init();
    expectRevoked(await report(app.getHttpServer(), "/github/secret-scanning"));
    await app.close();
  });
});
