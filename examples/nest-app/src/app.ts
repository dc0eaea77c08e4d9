/**
 * The events API on NestJS 12, on the Express or the Fastify platform, protected by Flux Keys.
 */
import "reflect-metadata";
import type { Flux, FluxOptions } from "@flux-keys/core";
import { EventStore } from "@flux-keys/example-shared";
import { FluxKeysModule, type FluxKeysModuleOptions } from "@flux-keys/nestjs";
import { type INestApplication, Module } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { ExpressAdapter } from "@nestjs/platform-express";
import { FastifyAdapter } from "@nestjs/platform-fastify";
import { EVENTS, EventsController, HealthController } from "./events.controller.js";

export type Platform = "express" | "fastify";

/**
 * The app on `flux` (an instance you created and close), or on Flux options the module creates
 * its instance from (and closes on shutdown); with `forRootAsync` when `module` says so.
 */
export async function createNestApp(
  flux: Flux | FluxOptions,
  platform: Platform = "express",
  options: Omit<FluxKeysModuleOptions, "flux" | "fluxOptions"> = {},
  module: "forRoot" | "forRootAsync" = "forRoot",
): Promise<INestApplication> {
  const moduleOptions: FluxKeysModuleOptions = {
    ...("keys" in flux ? { flux: flux as Flux } : { fluxOptions: flux as FluxOptions }),
    portal: { basePath: "/portal" },
    // The flux_* metrics for Prometheus at /metrics (keep the path internal in production).
    metrics: true,
    ...options,
  };
  const fluxKeys =
    module === "forRootAsync"
      ? FluxKeysModule.forRootAsync({ useFactory: async () => moduleOptions })
      : FluxKeysModule.forRoot(moduleOptions);

  @Module({
    imports: [fluxKeys],
    controllers: [HealthController, EventsController],
    providers: [{ provide: EVENTS, useValue: new EventStore() }],
  })
  class AppModule {}

  const adapter = platform === "fastify" ? new FastifyAdapter() : new ExpressAdapter();
  const app = await NestFactory.create(AppModule, adapter, { logger: false, abortOnError: false });
  await app.init();
  if (platform === "fastify") await app.getHttpAdapter().getInstance().ready();
  return app;
}
export { apiDocument } from "./openapi.js";
