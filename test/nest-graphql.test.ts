/**
 * ApiKeyGuard outside plain HTTP: GraphQL resolvers behind the global guard are protected (a real
 * query over HTTP, @nestjs/graphql with the Apollo driver, on the Express and the Fastify
 * platform), and any other context type is refused unless the handler is @Public() or the app opts
 * that type in: a real TCP microservice for rpc, Nest's own execution context of a gateway for ws.
 */
import "reflect-metadata";
import { createServer } from "node:net";
import { createFlux, type Flux, type HttpAuth, type KeyContext } from "@flux-keys/core";
import {
  ApiKey,
  ApiKeyGuard,
  FLUX_KEYS_AUTH,
  FLUX_KEYS_OPTIONS,
  FluxKeysModule,
  type FluxKeysModuleOptions,
  Public,
  Scopes,
} from "@flux-keys/nestjs";
import { ApolloDriver, type ApolloDriverConfig } from "@nestjs/apollo";
import { Controller, type INestApplication, type INestMicroservice, Module } from "@nestjs/common";
import { NestFactory, Reflector } from "@nestjs/core";
import { ExecutionContextHost } from "@nestjs/core/helpers/execution-context-host.js";
import { GraphQLModule, Query, Resolver } from "@nestjs/graphql";
import { ClientProxyFactory, MessagePattern, Transport } from "@nestjs/microservices";
import { ExpressAdapter } from "@nestjs/platform-express";
import { FastifyAdapter } from "@nestjs/platform-fastify";
import { firstValueFrom } from "rxjs";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

@Resolver()
class AccountResolver {
  @Scopes("read:events")
  @Query(() => String, { nullable: true })
  whoami(@ApiKey() key: KeyContext) {
    return key.orgId;
  }

  @Scopes("admin:all")
  @Query(() => String, { nullable: true })
  adminStats() {
    return "secret stats";
  }

  @Public()
  @Query(() => String)
  ping() {
    return "pong";
  }
}

/** A handler of another transport (a gateway's message, a microservice's pattern). */
class Gateway {
  handle() {
    return "handled";
  }

  @Public()
  publicHandle() {
    return "handled";
  }
}

@Controller()
class Patterns {
  @MessagePattern("report")
  report() {
    return "the report";
  }

  @Public()
  @MessagePattern("ping")
  ping() {
    return "pong";
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

let flux: Flux;
let reader: string;

beforeAll(async () => {
  flux = await createFlux({ database: { pglite: true }, redis: null, webhooks: { interval: null } });
  await flux.plans.upsert({
    id: "pro",
    name: "Pro",
    scopes: ["read:events"],
    rateLimits: [{ name: "sustained", limit: 1000, window: "1h" }],
  });
  await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
  ({ secret: reader } = await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue());
});

afterAll(async () => {
  await flux?.close();
});

async function remaining(secret: string): Promise<number> {
  const state = await flux.keys.check(secret, { cost: 0 });
  if (!state.valid) throw new Error(state.error.code);
  return state.context.rateLimit?.windows[0]?.remaining ?? Number.NaN;
}

describe.each(["express", "fastify"] as const)("GraphQL behind the global ApiKeyGuard on %s", (platform) => {
  let app: INestApplication;

  beforeAll(async () => {
    @Module({
      imports: [
        FluxKeysModule.forRoot({ flux }),
        GraphQLModule.forRoot<ApolloDriverConfig>({
          driver: ApolloDriver,
          autoSchemaFile: true,
          // Fastify: hand the reply to the context too, for the RateLimit fields (Express's
          // request carries its response already).
          ...(platform === "fastify"
            ? { context: (request: unknown, reply: unknown) => ({ req: request, reply }) }
            : {}),
        }),
      ],
      providers: [AccountResolver],
    })
    class AppModule {}
    const adapter = platform === "fastify" ? new FastifyAdapter() : new ExpressAdapter();
    app = await NestFactory.create(AppModule, adapter, { logger: false, abortOnError: false });
    await app.init();
    if (platform === "fastify") await app.getHttpAdapter().getInstance().ready();
  });

  afterAll(async () => {
    await app?.close();
  });

  const query = (text: string, headers: Record<string, string> = {}) =>
    request(app.getHttpServer()).post("/graphql").set(headers).send({ query: text });

  it("refuses a query without a key, with the denial's code in the GraphQL error", async () => {
    const response = await query("{ whoami }");
    expect(response.body.data?.whoami ?? null).toBeNull();
    expect(response.body.errors?.[0]?.extensions).toMatchObject({
      code: "key_missing",
      status: 401,
      problem: { code: "key_missing", status: 401 },
    });
    expect(JSON.stringify(response.body)).not.toContain("acme");
    const bad = await query("{ whoami }", { Authorization: "Bearer flux_live_nonsense" });
    expect(JSON.stringify(bad.body.errors)).toContain("key_malformed");
  });

  it("answers a query with a valid key, and a @Public() field without one", async () => {
    const response = await query("{ whoami }", { Authorization: `Bearer ${reader}` });
    expect(response.body).toEqual({ data: { whoami: "acme" } });
    expect(response.headers.ratelimit).toMatch(/^"sustained";r=\d+;t=\d+$/);
    expect((await query("{ ping }")).body).toEqual({ data: { ping: "pong" } });
  });

  it("checks each field's scopes, verifying and consuming once per operation", async () => {
    const before = await remaining(reader);
    const response = await query("{ whoami adminStats }", { "X-API-Key": reader });
    expect(response.body.data?.whoami).toBe("acme");
    expect(response.body.data?.adminStats ?? null).toBeNull();
    expect(JSON.stringify(response.body.errors)).toContain("scope_denied");
    expect(JSON.stringify(response.body)).not.toContain("secret stats");
    expect(before - (await remaining(reader))).toBe(1);
  });
});

describe("ApiKeyGuard on a TCP microservice (rpc)", () => {
  async function call(allowContexts: string[] | undefined, pattern: string): Promise<unknown> {
    @Module({
      imports: [FluxKeysModule.forRoot({ flux, ...(allowContexts ? { allowContexts } : {}) })],
      controllers: [Patterns],
    })
    class ServiceModule {}
    const port = await freePort();
    const service: INestMicroservice = await NestFactory.createMicroservice(ServiceModule, {
      transport: Transport.TCP,
      options: { host: "127.0.0.1", port },
      logger: false,
      abortOnError: false,
    });
    await service.listen();
    const client = ClientProxyFactory.create({
      transport: Transport.TCP,
      options: { host: "127.0.0.1", port },
    });
    try {
      return await firstValueFrom(client.send(pattern, { key: reader }));
    } catch (error) {
      return { refused: (error as { message?: string }).message };
    } finally {
      client.close();
      await service.close();
    }
  }

  it("refuses a message pattern unless it is @Public() or the app opts rpc in", async () => {
    expect(await call(undefined, "report")).toEqual({ refused: "Forbidden resource" });
    expect(await call(undefined, "ping")).toBe("pong");
    expect(await call(["rpc"], "report")).toBe("the report");
  });
});

describe("ApiKeyGuard on other context types", () => {
  let app: INestApplication;

  beforeAll(async () => {
    @Module({ imports: [FluxKeysModule.forRoot({ flux })] })
    class AppModule {}
    app = await NestFactory.create(AppModule, new ExpressAdapter(), { logger: false, abortOnError: false });
    await app.init();
  });

  afterAll(async () => {
    await app?.close();
  });

  /** The context Nest builds for a ws or rpc handler: its own arguments, no HTTP request. */
  function contextOf(type: "ws" | "rpc", handler: keyof Gateway) {
    const host = new ExecutionContextHost([{ data: 1 }, {}], Gateway, Gateway.prototype[handler]);
    host.setType(type);
    return host;
  }

  it("refuses ws and rpc handlers unless @Public()", async () => {
    const guard = app.get(ApiKeyGuard);
    for (const type of ["ws", "rpc"] as const) {
      expect(await guard.canActivate(contextOf(type, "handle")), type).toBe(false);
      expect(await guard.canActivate(contextOf(type, "publicHandle")), type).toBe(true);
    }
  });

  it("lets through the context types the app opts in with allowContexts", async () => {
    const options: FluxKeysModuleOptions = { ...app.get(FLUX_KEYS_OPTIONS), allowContexts: ["ws"] };
    const guard = new ApiKeyGuard(app.get(Reflector), app.get<HttpAuth>(FLUX_KEYS_AUTH), options);
    expect(await guard.canActivate(contextOf("ws", "handle"))).toBe(true);
    expect(await guard.canActivate(contextOf("rpc", "handle"))).toBe(false);
  });
});
