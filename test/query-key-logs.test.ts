/**
 * A key sent in the query string is refused, and never reaches the framework's request log: a
 * real pino (Fastify's own logger, pino-http for Express) and morgan write to a stream, and that
 * stream holds no secret. Without the helpers the same logs do hold it (the check is not vacuous).
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { createFlux, type Flux } from "@flux-keys/core";
import { fluxKeys as expressFluxKeys, morganUrl, pinoHttpSerializers } from "@flux-keys/express";
import { fluxKeys as fastifyFluxKeys, requestSerializer } from "@flux-keys/fastify";
import { FluxKeysModule } from "@flux-keys/nestjs";
import { Controller, Get, Module } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { FastifyAdapter } from "@nestjs/platform-fastify";
import express from "express";
import Fastify from "fastify";
import morgan from "morgan";
import pino from "pino";
import { pinoHttp } from "pino-http";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

class Sink extends Writable {
  text = "";
  override _write(chunk: Buffer, _encoding: string, done: () => void) {
    this.text += chunk.toString("utf8");
    done();
  }
}

let flux: Flux;
let secret: string;

beforeAll(async () => {
  flux = await createFlux({ database: { pglite: true }, redis: null, webhooks: { interval: null } });
  await flux.orgs.create({ id: "acme", name: "Acme" });
  ({ secret } = await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue());
});

afterAll(async () => {
  await flux?.close();
});

/** The ways a key ends up in a URL: a known name, any name, a name of your own, encoded. */
const paths = () => [
  `/v1/events?api_key=${secret}`,
  `/v1/events?page=2&q=${secret}`,
  `/v1/events?token=${encodeURIComponent(secret)}&x=1`,
  `/v1/events?access_token=${secret}#frag`,
  `/v1/events?${secret}`,
];

async function sendAll(server: Server | string, withHeader = false) {
  for (const path of paths()) {
    let req = request(server).get(path);
    if (withHeader) req = req.set("Authorization", `Bearer ${secret}`);
    const response = await req;
    expect(response.status, path).toBe(400);
    expect(response.body.code ?? JSON.parse(response.text).code).toBe("invalid_request");
  }
}

async function settle(sink: Sink, needle: string) {
  for (let i = 0; i < 50 && !sink.text.includes(needle); i++) await new Promise((r) => setTimeout(r, 10));
}

describe("Fastify's request log with requestSerializer", () => {
  async function fastifyApp(sink: Sink, redact: boolean) {
    const app = Fastify({
      logger: {
        level: "trace",
        stream: sink,
        ...(redact ? { serializers: { req: requestSerializer } } : {}),
      },
    });
    await app.register(fastifyFluxKeys, { flux });
    app.get("/v1/events", async () => ({ data: [] }));
    await app.ready();
    return app;
  }

  it("holds no key sent in the query string", async () => {
    const sink = new Sink();
    const app = await fastifyApp(sink, true);
    try {
      await sendAll(app.server);
      await sendAll(app.server, true);
      expect(sink.text).toContain("incoming request");
      expect(sink.text).toContain("api_key=[REDACTED]");
      expect(sink.text).toContain("page=2&q=[REDACTED]");
      expect(sink.text).not.toContain(secret);
      expect(sink.text).not.toContain(secret.slice(10, 40));
    } finally {
      await app.close();
    }
  });

  it("(without it, Fastify logs the key: the reason to set it)", async () => {
    const sink = new Sink();
    const app = await fastifyApp(sink, false);
    try {
      await sendAll(app.server);
      expect(sink.text).toContain(secret);
    } finally {
      await app.close();
    }
  });
});

@Controller("v1")
class EventsController {
  @Get("events")
  list() {
    return { data: [] };
  }
}

describe("NestJS on Fastify with requestSerializer", () => {
  it("holds no key sent in the query string", async () => {
    const sink = new Sink();
    @Module({ imports: [FluxKeysModule.forRoot({ flux })], controllers: [EventsController] })
    class AppModule {}
    const adapter = new FastifyAdapter({
      logger: { level: "trace", stream: sink, serializers: { req: requestSerializer } },
    });
    const app = await NestFactory.create(AppModule, adapter, { logger: false, abortOnError: false });
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    try {
      await sendAll(app.getHttpServer());
      expect(sink.text).toContain("api_key=[REDACTED]");
      expect(sink.text).not.toContain(secret);
    } finally {
      await app.close();
    }
  });
});

describe("Express request loggers with the @flux-keys/express helpers", () => {
  let server: Server;
  const pinoSink = new Sink();
  const plainPinoSink = new Sink();
  const morganSink = new Sink();

  beforeAll(async () => {
    const app = express();
    morgan.token("url", morganUrl());
    app.use(morgan("combined", { stream: morganSink }));
    // Unredacted first (what pino-http logs by default), then redacted.
    app.use(pinoHttp({ logger: pino(plainPinoSink) }));
    app.use(pinoHttp({ logger: pino(pinoSink), serializers: pinoHttpSerializers() }));
    app.use(expressFluxKeys(flux));
    app.get("/v1/events", (_req, res) => {
      res.json({ data: [] });
    });
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, "127.0.0.1", () => resolve(s));
    });
  });

  afterAll(async () => {
    if (server) await new Promise((resolve) => server.close(resolve));
  });

  it("pino-http and morgan hold no key, from the query or the headers", async () => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await sendAll(url);
    await sendAll(url, true);
    const served = await request(url).get("/v1/events").set("Authorization", `Bearer ${secret}`);
    expect(served.status).toBe(200);
    await settle(morganSink, "GET /v1/events HTTP");
    await settle(pinoSink, "request completed");
    expect(pinoSink.text).toContain("api_key=[REDACTED]");
    expect(pinoSink.text).toContain('"authorization":"[REDACTED]"');
    expect(pinoSink.text).not.toContain(secret);
    expect(morganSink.text).toContain("/v1/events?api_key=[REDACTED]");
    expect(morganSink.text).not.toContain(secret);
    // pino-http's defaults log the key twice over (URL, query, Authorization).
    expect(plainPinoSink.text).toContain(secret);
  });
});
