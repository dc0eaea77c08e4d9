/**
 * `pnpm --filter @flux-keys/example-nest start [express|fastify]`: the events API on the embedded
 * defaults, or on DATABASE_URL / REDIS_URL when set. PORT defaults to 3002.
 */
import { closeOnSignals, demoPortalLink, openFlux, printWelcome, seedDemo } from "@flux-keys/example-shared";
import { createNestApp, type Platform } from "./app.js";

const platform = (process.argv[2] ?? "express") as Platform;
const flux = await openFlux();
const { secret } = await seedDemo(flux);
const port = Number(process.env.PORT ?? 3002);
const app = await createNestApp(flux, platform);
await app.listen(port, "127.0.0.1");
printWelcome(
  `NestJS (${platform}) events API`,
  `http://127.0.0.1:${port}`,
  secret,
  await demoPortalLink(flux, `http://127.0.0.1:${port}`),
);
closeOnSignals(() => app.close(), flux);
