/**
 * `pnpm --filter @flux-keys/example-fastify start`: the events API on the embedded defaults, or on
 * DATABASE_URL / REDIS_URL when set. PORT defaults to 3001.
 */
import { closeOnSignals, demoPortalLink, openFlux, printWelcome, seedDemo } from "@flux-keys/example-shared";
import { createApp } from "./app.js";

const flux = await openFlux();
const { secret } = await seedDemo(flux);
const port = Number(process.env.PORT ?? 3001);
const app = await createApp(flux);
await app.listen({ port, host: "127.0.0.1" });
printWelcome(
  "Fastify events API",
  `http://127.0.0.1:${port}`,
  secret,
  await demoPortalLink(flux, `http://127.0.0.1:${port}`),
);
closeOnSignals(() => app.close(), flux);
