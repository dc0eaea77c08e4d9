/**
 * The events API on NestJS 12, on the Express or the Fastify platform, protected by Flux Keys.
 */
import "reflect-metadata";
import type { Flux } from "@flux-keys/core";
import { EventStore } from "@flux-keys/example-shared";
import { FluxKeysModule, type FluxKeysModuleOptions } from "@flux-keys/nestjs";
import { type INestApplication, Module } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { ExpressAdapter } from "@nestjs/platform-express";
import { FastifyAdapter } from "@nestjs/platform-fastify";
import { EVENTS, EventsController, HealthController } from "./events.controller.js";

export type Platform = "express" | "fastify";

export async function createNestApp(
  flux: Flux,
  platform: Platform = "express",
  options: Omit<FluxKeysModuleOptions, "flux"> = {},
): Promise<INestApplication> {
  @Module({
    imports: [FluxKeysModule.forRoot({ flux, portal: { basePath: "/portal" }, ...options })],
    controllers: [HealthController, EventsController],
    providers: [{ provide: EVENTS, useValue: new EventStore() }],
  })
  class AppModule {}

  const adapter = platform === "fastify" ? new FastifyAdapter() : new ExpressAdapter();
  const app = await NestFactory.create(AppModule, adapter, { logger: false });
  await app.init();
  if (platform === "fastify") await app.getHttpAdapter().getInstance().ready();
  return app;
}
