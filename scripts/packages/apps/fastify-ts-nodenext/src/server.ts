// Fastify 5 in TypeScript 6, `nodenext`: the plugin's default export and its type augmentation
// (`request.apiKey`, route `config.apiKey`) must type-check against the published declarations.
import { createFlux, type KeyContext } from "@flux-keys/core";
import fluxKeys from "@flux-keys/fastify";
import Fastify from "fastify";

const flux = await createFlux();
await flux.orgs.create({ id: "acme", name: "Acme" });
const { secret } = await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue();

const app = Fastify();
await app.register(fluxKeys, { flux });
app.get("/v1/events", { config: { apiKey: { scopes: ["read:events"] } } }, async (request) => {
  const key: KeyContext | null | undefined = request.apiKey;
  return { org: key?.orgId };
});

await app.listen({ port: 0, host: "127.0.0.1" });
const address = app.server.address();
const port = typeof address === "object" && address !== null ? address.port : 0;
console.log(`FLUX_APP_READY ${JSON.stringify({ port, secret })}`);
process.once("SIGTERM", async () => {
  await app.close();
  await flux.close();
  process.exit(0);
});
