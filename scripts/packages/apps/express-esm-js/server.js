// A plain JavaScript ESM app: no TypeScript, no types, what `npm i @flux-keys/express` gives.
import { createFlux } from "@flux-keys/core";
import { fluxKeys, requireScopes } from "@flux-keys/express";
import express from "express";

const flux = await createFlux();
await flux.orgs.create({ id: "acme", name: "Acme" });
const { secret } = await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue();

const app = express();
app.use(fluxKeys(flux));
app.get("/v1/events", requireScopes("read:events"), (req, res) => {
  res.json({ org: req.apiKey.orgId });
});

const server = app.listen(0, "127.0.0.1", () => {
  console.log(`FLUX_APP_READY ${JSON.stringify({ port: server.address().port, secret })}`);
});
process.once("SIGTERM", () => {
  server.close(async () => {
    await flux.close();
    process.exit(0);
  });
});
