/**
 * `pnpm --filter @flux-keys/example-fastify start`: the events API on the embedded defaults, or on
 * DATABASE_URL / REDIS_URL when set. PORT defaults to 3001 (0: any free port, printed).
 */
import { closeOnSignals, demoPortalLink, openFlux, printWelcome, seedDemo } from "@flux-keys/example-shared";
import { createApp } from "./app.js";

const flux = await openFlux();
const { secret } = await seedDemo(flux);
const app = await createApp(flux);
// The address bound (PORT=0 picks a free one).
const base = await app.listen({ port: Number(process.env.PORT ?? 3001), host: "127.0.0.1" });
closeOnSignals(() => app.close(), flux);
printWelcome("Fastify events API", base, secret, await demoPortalLink(flux, base));
