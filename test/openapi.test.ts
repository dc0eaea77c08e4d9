/**
 * API documents of the example apps, generated as each framework's users generate them
 * (@fastify/swagger, @nestjs/swagger, and a written document for Express), with Flux Keys' routes
 * described: security schemes, each route's scopes and entitlement as security requirements and
 * in `x-flux-keys`, the 401 / 403 / 429 problem responses. Each is valid OpenAPI 3.1.
 */
import { createFlux, type Flux } from "@flux-keys/core";
import { createApp as createExpressApp, apiDocument as expressDocument } from "@flux-keys/example-express";
import { createApp as createFastifyApp } from "@flux-keys/example-fastify";
import { createNestApp, apiDocument as nestDocument } from "@flux-keys/example-nest";
import { Validator } from "@seriousme/openapi-schema-validator";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

type Operation = {
  security?: Array<Record<string, string[]>>;
  "x-flux-keys"?: { scopes: string[]; entitlements: string[]; cost: number };
  responses: Record<string, { content?: Record<string, { schema: { $ref: string } }> }>;
};
type Document = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, unknown>; schemas: Record<string, { properties: object }> };
};

interface Generator {
  name: string;
  document(flux: Flux): Promise<{ document: Document; close(): Promise<void> }>;
}

const GENERATORS: Generator[] = [
  {
    name: "express (addFluxKeysToOpenApi)",
    async document(flux) {
      return {
        document: expressDocument(createExpressApp(flux)) as unknown as Document,
        close: async () => {},
      };
    },
  },
  {
    name: "fastify (@fastify/swagger)",
    async document(flux) {
      const app = await createFastifyApp(flux);
      await app.ready();
      return { document: app.swagger() as unknown as Document, close: () => app.close() };
    },
  },
  {
    name: "nest (@nestjs/swagger)",
    async document(flux) {
      const app = await createNestApp(flux, "express");
      return { document: nestDocument(app) as unknown as Document, close: () => app.close() };
    },
  },
];

describe.each(GENERATORS)("OpenAPI: $name", (generator) => {
  let flux: Flux;
  let document: Document;
  let close: () => Promise<void>;

  beforeAll(async () => {
    flux = await createFlux({ database: { pglite: true }, redis: null });
    ({ document, close } = await generator.document(flux));
  });

  afterAll(async () => {
    await close?.();
    await flux?.close();
  });

  it("is a valid OpenAPI 3.1 document", async () => {
    const result = await new Validator().validate(structuredClone(document) as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(document.openapi).toMatch(/^3\.1/);
  });

  it("declares the bearer and header schemes and the problem schema", () => {
    expect(document.components.securitySchemes).toMatchObject({
      fluxBearer: { type: "http", scheme: "bearer" },
      fluxApiKey: { type: "apiKey", in: "header", name: "x-api-key" },
    });
    expect(
      Object.values(document.components.schemas).map((schema) => Object.keys(schema.properties ?? {})),
    ).toContainEqual(expect.arrayContaining(["type", "title", "status", "detail", "code"]));
  });

  it("gives each protected route its scopes, entitlement and cost, and its denials", () => {
    const list = document.paths["/v1/events"]?.get as Operation;
    expect(list.security).toEqual([{ fluxBearer: ["read:events"] }, { fluxApiKey: ["read:events"] }]);
    expect(list["x-flux-keys"]).toEqual({ scopes: ["read:events"], entitlements: [], cost: 1 });
    expect(document.paths["/v1/events"]?.post?.security?.[0]).toEqual({ fluxBearer: ["write:events"] });
    expect(document.paths["/v1/events/{id}"]?.get?.["x-flux-keys"]?.scopes).toEqual(["read:events"]);
    const exports = document.paths["/v1/exports"]?.post as Operation;
    expect(exports["x-flux-keys"]).toEqual({ scopes: [], entitlements: ["bulk_export"], cost: 1 });
    expect(exports.security?.[0]).toEqual({ fluxBearer: ["entitlement:bulk_export"] });
    for (const status of ["401", "403", "429"]) {
      const schema = list.responses[status]?.content?.["application/problem+json"]?.schema;
      expect(schema?.$ref).toMatch(/^#\/components\/schemas\/.+/);
      const name = schema?.$ref.split("/").pop() as string;
      expect(document.components.schemas[name]).toBeDefined();
    }
    // The route's own answer is kept.
    expect(Object.keys(list.responses)).toContain("200");
  });

  it("leaves public routes without security", () => {
    const health = document.paths["/health"]?.get as Operation;
    expect(health).toBeDefined();
    expect(health.security).toBeUndefined();
    expect(health["x-flux-keys"]).toBeUndefined();
    expect(Object.keys(health.responses)).not.toContain("401");
  });
});

describe("OpenAPI: describing routes changes no answer (Fastify)", () => {
  it("a denial is still the problem document, with the route's schema in place", async () => {
    const flux = await createFlux({ database: { pglite: true }, redis: null });
    const app = await createFastifyApp(flux);
    try {
      await app.ready();
      const missing = await request(app.server).get("/v1/events");
      expect(missing.status).toBe(401);
      expect(missing.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(missing.text)).toMatchObject({
        code: "key_missing",
        status: 401,
        title: "API key missing",
      });
      await flux.plans.upsert({ id: "p", name: "P", scopes: ["read:events", "write:events"] });
      await flux.orgs.create({ id: "o", name: "O", planId: "p" });
      const { secret } = await flux.keys.create().forOrg("o").withScopes(["read:events"]).issue();
      const denied = await request(app.server)
        .post("/v1/events")
        .set("x-api-key", secret)
        .send({ type: "x" });
      expect(denied.status).toBe(403);
      expect(JSON.parse(denied.text)).toMatchObject({
        code: "scope_denied",
        requiredScopes: ["write:events"],
      });
      const allowed = await request(app.server).get("/v1/events").set("x-api-key", secret);
      expect(allowed.status).toBe(200);
    } finally {
      await app.close();
      await flux.close();
    }
  });
});

describe("OpenAPI: Nest with forRootAsync({ global: false })", () => {
  it("describes only the routes ApiKeyGuard guards, as forRoot({ global: false }) does", async () => {
    const { Controller, Get, Module, UseGuards } = await import("@nestjs/common");
    const { NestFactory } = await import("@nestjs/core");
    const { ApiKeyGuard, FluxKeysModule, Scopes } = await import("@flux-keys/nestjs");
    const { createFluxKeysDocument } = await import("@flux-keys/nestjs/swagger");
    const { DocumentBuilder } = await import("@nestjs/swagger");
    const flux = await createFlux({ database: { pglite: true }, redis: null });

    @Controller("open")
    class OpenController {
      @Get()
      list() {
        return [];
      }
    }
    @Controller("guarded")
    @UseGuards(ApiKeyGuard)
    class GuardedController {
      @Scopes("read:events")
      @Get()
      list() {
        return [];
      }
    }
    for (const [method, target] of [
      ["list", OpenController],
      ["list", GuardedController],
    ] as const) {
      // tsx emits no decorator metadata: name the route handler's return type for @nestjs/swagger.
      Reflect.defineMetadata("design:returntype", Array, target.prototype, method);
    }
    @Module({
      imports: [FluxKeysModule.forRootAsync({ global: false, useFactory: () => ({ flux }) })],
      controllers: [OpenController, GuardedController],
    })
    class AppModule {}

    const app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
    try {
      await app.init();
      const document = createFluxKeysDocument(
        app,
        new DocumentBuilder().setOpenAPIVersion("3.1.0").setTitle("t").setVersion("1").build(),
      ) as unknown as Document;
      const open = Object.values(document.paths["/open"] ?? {})[0] as Operation;
      const guarded = Object.values(document.paths["/guarded"] ?? {})[0] as Operation;
      expect(open.security).toBeUndefined();
      expect(open["x-flux-keys"]).toBeUndefined();
      expect(guarded["x-flux-keys"]).toMatchObject({ scopes: ["read:events"] });
      // And the app agrees: the open route answers without a key.
      expect((await request(app.getHttpServer()).get("/open")).status).toBe(200);
    } finally {
      await app.close();
      await flux.close();
    }
  });
});

describe("OpenAPI: Express with a cost computed per request", () => {
  it("says so in x-flux-keys instead of a number it cannot know", async () => {
    const express = (await import("express")).default;
    const { addFluxKeysToOpenApi, fluxKeys, requireScopes } = await import("@flux-keys/express");
    const flux = await createFlux({ database: { pglite: true }, redis: null });
    try {
      const app = express();
      app.use(fluxKeys(flux, { cost: (req) => (req.method === "POST" ? 5 : 1) }));
      app.get("/v1/things", requireScopes("read:things"), (_req, res) => {
        res.json([]);
      });
      const document = addFluxKeysToOpenApi(app, {
        openapi: "3.1.0",
        info: { title: "t", version: "1" },
        paths: { "/v1/things": { get: { responses: { "200": { description: "ok" } } } } },
      }) as unknown as Document;
      const operation = document.paths["/v1/things"]?.get as Operation;
      expect(operation["x-flux-keys"]).toEqual({
        scopes: ["read:things"],
        entitlements: [],
        cost: "per-request",
      });
    } finally {
      await flux.close();
    }
  });
});
