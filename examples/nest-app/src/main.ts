/**
 * `pnpm --filter @flux-keys/example-nest start [express|fastify] [forRoot|forRootAsync]`: the
 * events API on the embedded defaults, or on DATABASE_URL / REDIS_URL when set. PORT defaults to
 * 3002 (0: any free port, printed). As the README's quick start: the module creates Flux from options, and
 * `enableShutdownHooks()` lets SIGTERM / Ctrl-C flush usage and close it.
 */
import type { AddressInfo } from "node:net";
import type { Flux } from "@flux-keys/core";
import { demoPortalLink, printWelcome, seedDemo } from "@flux-keys/example-shared";
import { FLUX } from "@flux-keys/nestjs";
import { createNestApp, type Platform } from "./app.js";

const platform = (process.argv[2] ?? "express") as Platform;
const module = process.argv[3] === "forRootAsync" ? "forRootAsync" : "forRoot";
const app = await createNestApp({}, platform, {}, module);
app.enableShutdownHooks();
const flux = app.get<Flux>(FLUX);
const { secret } = await seedDemo(flux);
await app.listen(Number(process.env.PORT ?? 3002), "127.0.0.1");
// The port bound (PORT=0 picks a free one).
const base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
printWelcome(`NestJS (${platform}) events API`, base, secret, await demoPortalLink(flux, base));
