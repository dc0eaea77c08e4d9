/** Nest-specific API: forRootAsync (factory, class), per-controller guard, decorators, overrides. */
import "reflect-metadata";
import type { Flux, KeyContext } from "@flux-keys/core";
import {
  Controller,
  type ExecutionContext,
  Get,
  type INestApplication,
  Inject,
  Injectable,
  Module,
  UseGuards,
} from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { ExpressAdapter } from "@nestjs/platform-express";
import { FastifyAdapter, type NestFastifyApplication } from "@nestjs/platform-fastify";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { embeddedFluxWithKey } from "../../../test/support/fixtures.js";
import {
  ApiKey,
  type ApiKeyDeniedException,
  ApiKeyGuard,
  FLUX,
  FluxKeysModule,
  type FluxKeysModuleOptions,
  type FluxKeysOptionsFactory,
  Public,
  RateLimitCost,
  Scopes,
} from "../src/index.js";

let flux: Flux;
let secret: string;

@Controller("guarded")
@UseGuards(ApiKeyGuard)
class GuardedController {
  @Get()
  whoami(@ApiKey() key: KeyContext) {
    return { org: key.orgId };
  }

  @Public()
  @Get("open")
  open(@ApiKey() key: KeyContext | null) {
    return { key };
  }

  @Scopes("write:events")
  @Get("write")
  write() {
    return "no";
  }

  @RateLimitCost(5)
  @Get("bulk")
  bulk() {
    return "ok";
  }
}

@Controller("unguarded")
class UnguardedController {
  constructor(@Inject(FLUX) private readonly injected: Flux) {}
  @Get()
  hello() {
    return { same: this.injected === flux };
  }
}

@Injectable()
class OptionsFactory implements FluxKeysOptionsFactory {
  createFluxKeysOptions(): FluxKeysModuleOptions {
    return { flux, realm: "from-class" };
  }
}

async function start(imports: unknown[], controllers: unknown[]): Promise<INestApplication> {
  @Module({ imports: imports as never[], controllers: controllers as never[] })
  class TestModule {}
  const app = await NestFactory.create(TestModule, new ExpressAdapter(), { logger: false });
  await app.init();
  return app;
}

const lastHour = () => ({
  from: new Date(Date.now() - 3_600_000),
  to: new Date(Date.now() + 60_000),
  granularity: "hour" as const,
});
const total = (result: { series: Array<{ totals: { calls: number } }> }) =>
  result.series.reduce((sum, series) => sum + series.totals.calls, 0);

describe("@flux-keys/nestjs", () => {
  beforeAll(async () => {
    ({ flux, secret } = await embeddedFluxWithKey(20));
  });
  afterAll(() => flux.close());

  it("forRootAsync with useFactory and a per-controller guard (global: false)", async () => {
    const app = await start(
      [FluxKeysModule.forRootAsync({ global: false, useFactory: () => ({ flux, realm: "factory" }) })],
      [GuardedController, UnguardedController],
    );
    try {
      const server = app.getHttpServer();
      expect((await request(server).get("/unguarded")).body).toEqual({ same: true });
      const refused = await request(server).get("/guarded");
      expect(refused.status).toBe(401);
      expect(refused.headers["www-authenticate"]).toBe('Bearer realm="factory"');
      expect((await request(server).get("/guarded").set("Authorization", `Bearer ${secret}`)).body).toEqual({
        org: "acme",
      });
      expect((await request(server).get("/guarded/open")).body).toEqual({ key: null });
      const write = await request(server).get("/guarded/write").set("Authorization", `Bearer ${secret}`);
      expect(write.status).toBe(403);
      expect(write.headers["content-type"]).toMatch(/^application\/problem\+json/);
      const a = await request(server).get("/guarded").set("Authorization", `Bearer ${secret}`);
      const b = await request(server).get("/guarded/bulk").set("Authorization", `Bearer ${secret}`);
      const remaining = (r: request.Response) => Number(/r=(\d+)/.exec(String(r.headers.ratelimit))?.[1]);
      expect(remaining(a) - remaining(b)).toBe(5);
    } finally {
      await app.close();
    }
  });

  it("forRootAsync with useClass guards globally", async () => {
    const app = await start(
      [FluxKeysModule.forRootAsync({ useClass: OptionsFactory })],
      [UnguardedController],
    );
    try {
      const refused = await request(app.getHttpServer()).get("/unguarded");
      expect(refused.status).toBe(401);
      expect(refused.headers["www-authenticate"]).toBe('Bearer realm="from-class"');
    } finally {
      await app.close();
    }
  });

  it("flushes usage when the app shuts down, and closes only the instances it created", async () => {
    const app = await start([FluxKeysModule.forRoot({ flux, global: false })], [GuardedController]);
    await flux.usage.flush();
    const before = await flux.usage.query({ orgId: "acme", ...lastHour() });
    const served = await request(app.getHttpServer())
      .get("/guarded")
      .set("Authorization", `Bearer ${secret}`);
    expect(served.status).toBe(200);
    await app.close();
    // Nothing flushed it but the module's shutdown hook (the flush interval is 5 s).
    const after = await flux.usage.query({ orgId: "acme", ...lastHour() });
    expect(total(after) - total(before)).toBe(1);
    // The instance was given to the module: still open.
    expect((await flux.keys.check(secret)).valid).toBe(true);

    const owning = await start(
      [
        FluxKeysModule.forRootAsync({
          global: false,
          useFactory: () => ({ fluxOptions: { database: { pglite: true }, redis: null } }),
        }),
      ],
      [UnguardedController],
    );
    const created = owning.get<Flux>(FLUX);
    await created.orgs.create({ id: "own", name: "Own" });
    await owning.close();
    // Created by the module: closed with the app.
    await expect(created.orgs.get("own")).rejects.toThrow();
  });

  it("answers a key it holds with a boolean, so Nest goes on without awaiting the guard", async () => {
    const answers: string[] = [];
    @Injectable()
    class ObservedGuard extends ApiKeyGuard {
      override canActivate(context: ExecutionContext): boolean | Promise<boolean> {
        const answer = super.canActivate(context);
        answers.push(answer instanceof Promise ? "promise" : typeof answer);
        return answer;
      }
    }
    @Controller("observed")
    @UseGuards(ObservedGuard)
    class ObservedController {
      @Get()
      whoami(@ApiKey() key: KeyContext) {
        return { org: key.orgId };
      }
      @Scopes("write:events")
      @Get("write")
      write() {
        return "no";
      }
    }
    const app = await start([FluxKeysModule.forRoot({ flux, global: false })], [ObservedController]);
    try {
      await flux.usage.flush();
      const before = await flux.usage.query({ orgId: "acme", ...lastHour() });
      const server = app.getHttpServer();
      for (let i = 0; i < 3; i++) {
        const served = await request(server).get("/observed").set("Authorization", `Bearer ${secret}`);
        expect(served.status).toBe(200);
        expect(served.body).toEqual({ org: "acme" });
        expect(served.headers.ratelimit).toMatch(/r=\d+/);
      }
      // The key is cached after the first request: the guard's answer is known in the turn.
      expect(answers.at(-1)).toBe("boolean");
      // A refusal known in the turn is thrown there, and still answered as problem details.
      const refused = await request(server).get("/observed/write").set("Authorization", `Bearer ${secret}`);
      expect(refused.status).toBe(403);
      expect(refused.headers["content-type"]).toMatch(/^application\/problem\+json/);
      await flux.usage.flush();
      const after = await flux.usage.query({ orgId: "acme", ...lastHour() });
      // Each call recorded once, when its response finished.
      expect(total(after) - total(before)).toBe(4);
    } finally {
      await app.close();
    }
  });

  it("declares request.apiKey on Nest's Fastify platform, so guarded requests keep one shape", async () => {
    @Module({ imports: [FluxKeysModule.forRoot({ flux })], controllers: [GuardedController] })
    class FastifyModule {}
    const app = await NestFactory.create<NestFastifyApplication>(FastifyModule, new FastifyAdapter(), {
      logger: false,
    });
    try {
      await app.init();
      const fastify = app.getHttpAdapter().getInstance();
      await fastify.ready();
      expect(fastify.hasRequestDecorator("apiKey")).toBe(true);
      const served = await request(app.getHttpServer())
        .get("/guarded")
        .set("Authorization", `Bearer ${secret}`);
      expect(served.status).toBe(200);
      expect(served.body).toEqual({ org: "acme" });
      expect((await request(app.getHttpServer()).get("/guarded/open")).body).toEqual({ key: null });
    } finally {
      await app.close();
    }
  });

  it("lets a subclass override the guard's extension points", async () => {
    @Injectable()
    class LoggingGuard extends ApiKeyGuard {
      static denied: string[] = [];
      protected override onDenied(exception: ApiKeyDeniedException, context: ExecutionContext): never {
        LoggingGuard.denied.push(`${exception.code} ${context.getHandler().name}`);
        return super.onDenied(exception, context);
      }
    }
    @Controller("custom")
    @UseGuards(LoggingGuard)
    class CustomController {
      @Get()
      handler() {
        return "no";
      }
    }
    const app = await start([FluxKeysModule.forRoot({ flux, global: false })], [CustomController]);
    try {
      expect((await request(app.getHttpServer()).get("/custom")).status).toBe(401);
      expect(LoggingGuard.denied).toEqual(["key_missing handler"]);
    } finally {
      await app.close();
    }
  });
});
