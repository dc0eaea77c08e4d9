/**
 * Small apps on the frameworks that have loggers (Fastify, and NestJS on both platforms), with
 * every framework log line captured at the most verbose level, so the adversarial suite can prove
 * no presented key value reaches a log. (Express has no logger of its own; its Flux Keys logs go
 * through `createFlux({ logger })` like everyone's.)
 */
import "reflect-metadata";
import type { Flux, KeyContext } from "@flux-keys/core";
import fluxKeys from "@flux-keys/fastify";
import { ApiKey, FluxKeysModule, Scopes } from "@flux-keys/nestjs";
import { Controller, Get, type LoggerService, Module } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { ExpressAdapter } from "@nestjs/platform-express";
import { FastifyAdapter } from "@nestjs/platform-fastify";
import Fastify from "fastify";
import type { LogSink } from "./adversarial-cases.js";
import type { RunningApp } from "./targets.js";

export interface LoggedTarget {
  name: "fastify" | "nest-express" | "nest-fastify";
  start(flux: Flux, sink: LogSink): Promise<RunningApp>;
}

@Controller("v1")
class EventsController {
  @Scopes("read:events")
  @Get("events")
  list(@ApiKey() key: KeyContext) {
    return { org: key.orgId };
  }
}

/** Nest's logger interface, every level captured. */
class CapturingNestLogger implements LoggerService {
  constructor(private readonly sink: LogSink) {}
  log(...args: unknown[]) {
    this.sink.note("log", args);
  }
  error(...args: unknown[]) {
    this.sink.note(
      "error",
      args.map((a) => (a instanceof Error ? `${a.name}: ${a.message} ${a.stack}` : a)),
    );
  }
  warn(...args: unknown[]) {
    this.sink.note("warn", args);
  }
  debug(...args: unknown[]) {
    this.sink.note("debug", args);
  }
  verbose(...args: unknown[]) {
    this.sink.note("verbose", args);
  }
  fatal(...args: unknown[]) {
    this.sink.note("fatal", args);
  }
}

async function nestApp(flux: Flux, sink: LogSink, platform: "express" | "fastify"): Promise<RunningApp> {
  @Module({
    imports: [FluxKeysModule.forRoot({ flux })],
    controllers: [EventsController],
  })
  class AppModule {}
  const adapter =
    platform === "fastify"
      ? new FastifyAdapter({ logger: { level: "trace", stream: sink.stream } })
      : new ExpressAdapter();
  const app = await NestFactory.create(AppModule, adapter, { logger: new CapturingNestLogger(sink) });
  await app.init();
  if (platform === "fastify") await app.getHttpAdapter().getInstance().ready();
  await app.listen(0, "127.0.0.1");
  const server = app.getHttpServer();
  const { port } = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

export const LOGGED_TARGETS: LoggedTarget[] = [
  {
    name: "fastify",
    async start(flux, sink) {
      const app = Fastify({ logger: { level: "trace", stream: sink.stream } });
      await app.register(fluxKeys, { flux });
      app.get("/v1/events", { config: { apiKey: { scopes: ["read:events"] } } }, async (request) => ({
        org: request.apiKey?.orgId,
      }));
      await app.listen({ port: 0, host: "127.0.0.1" });
      const { port } = app.server.address() as { port: number };
      return { server: app.server, url: `http://127.0.0.1:${port}`, close: () => app.close() };
    },
  },
  { name: "nest-express", start: (flux, sink) => nestApp(flux, sink, "express") },
  { name: "nest-fastify", start: (flux, sink) => nestApp(flux, sink, "fastify") },
];
