/**
 * The four HTTP targets of the adapter contract suite: Express, Fastify, and NestJS on both
 * platforms. Each starts the example app of its framework on a loopback port.
 */

import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Flux, HttpAuthOptions } from "@flux-keys/core";
import { createApp as createExpressApp } from "@flux-keys/example-express";
import { createApp as createFastifyApp } from "@flux-keys/example-fastify";
import { createNestApp } from "@flux-keys/example-nest";

export interface RunningApp {
  server: Server;
  url: string;
  close(): Promise<void>;
}

export interface Target {
  name: "express" | "fastify" | "nest-express" | "nest-fastify";
  start(flux: Flux, options?: HttpAuthOptions): Promise<RunningApp>;
}

function running(server: Server, close: () => Promise<void>): RunningApp {
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, close };
}

export const TARGETS: Target[] = [
  {
    name: "express",
    async start(flux, options) {
      const app = createExpressApp(flux, options);
      const server = await new Promise<Server>((resolve) => {
        const s = app.listen(0, "127.0.0.1", () => resolve(s));
      });
      return running(server, () => new Promise((resolve) => server.close(() => resolve())));
    },
  },
  {
    name: "fastify",
    async start(flux, options) {
      const app = await createFastifyApp(flux, options);
      await app.listen({ port: 0, host: "127.0.0.1" });
      return running(app.server, () => app.close());
    },
  },
  {
    name: "nest-express",
    async start(flux, options) {
      const app = await createNestApp(flux, "express", options);
      await app.listen(0, "127.0.0.1");
      return running(app.getHttpServer(), () => app.close());
    },
  },
  {
    name: "nest-fastify",
    async start(flux, options) {
      const app = await createNestApp(flux, "fastify", options);
      await app.listen(0, "127.0.0.1");
      return running(app.getHttpServer(), () => app.close());
    },
  },
];
