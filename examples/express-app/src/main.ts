/**
 * `pnpm --filter @flux-keys/example-express start` (or `pnpm start` at the root): the events API on
 * the embedded defaults, or on DATABASE_URL / REDIS_URL (or REDIS_CLUSTER_NODES) when set. PORT
 * defaults to 3000 (0: any free port, printed).
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { closeOnSignals, demoPortalLink, openFlux, printWelcome, seedDemo } from "@flux-keys/example-shared";
import { createApp } from "./app.js";

const flux = await openFlux();
const { secret } = await seedDemo(flux);
const server = createApp(flux).listen(Number(process.env.PORT ?? 3000), "127.0.0.1");
// Not listen's callback: Express 5 calls it on a listen error too (a port in use), and the demo
// would then print its welcome for a server that is not there. `once` rejects on "error".
await once(server, "listening");
closeOnSignals(() => new Promise<void>((resolve) => server.close(() => resolve())), flux);
// The port bound (PORT=0 picks a free one).
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
printWelcome("Express events API", base, secret, await demoPortalLink(flux, base));
