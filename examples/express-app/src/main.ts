/**
 * `pnpm --filter @flux-keys/example-express start` (or `pnpm start` at the root): the events API on
 * the embedded defaults, or on DATABASE_URL / REDIS_URL (or REDIS_CLUSTER_NODES) when set. PORT
 * defaults to 3000.
 */
import { closeOnSignals, demoPortalLink, openFlux, printWelcome, seedDemo } from "@flux-keys/example-shared";
import { createApp } from "./app.js";

const flux = await openFlux();
const { secret } = await seedDemo(flux);
const port = Number(process.env.PORT ?? 3000);
const base = `http://127.0.0.1:${port}`;
const portal = await demoPortalLink(flux, base);
const server = createApp(flux).listen(port, "127.0.0.1", () => {
  printWelcome("Express events API", base, secret, portal);
});
closeOnSignals(() => new Promise<void>((resolve) => server.close(() => resolve())), flux);
