// Temporary experiment: which part of the Fastify plugin costs what. Variants via argv[2].
import { createFlux, createHttpAuth } from "@flux-keys/core";
import { fluxKeys } from "@flux-keys/fastify";
import Fastify from "fastify";
const mode = process.argv[2]!;
const flux = await createFlux({ database: { pglite: true }, redis: null });
await flux.plans.upsert({ id: "bench", name: "Bench", rateLimits: [{ name: "sustained", limit: 1_000_000_000, window: "1m" }] });
await flux.orgs.create({ id: "org_bench", name: "Bench org", planId: "bench" });
const { secret } = await flux.keys.create().forOrg("org_bench").withScopes(["read:events"]).issue();
const auth = createHttpAuth(flux);
const app = Fastify({ logger: false });
const body = (orgId: string) => ({ data: [{ id: "evt_1", orgId, type: "deploy.started", at: "2025-01-01T00:00:00.000Z" }, { id: "evt_2", orgId, type: "deploy.finished", at: "2025-01-01T00:01:00.000Z" }, { id: "evt_3", orgId, type: "config.changed", at: "2025-01-01T00:02:00.000Z" }] });
const pending = new WeakMap<object, unknown>();
if (mode === "plugin") {
  await app.register(fluxKeys, { flux });
} else if (mode === "empty-hooks") {
  app.addHook("onRequest", async () => {});
  app.addHook("onSend", async (_r, _p, payload) => payload);
  app.addHook("onResponse", async () => {});
} else if (mode === "auth-only") {
  app.addHook("onRequest", async (request, reply) => {
    const result = await auth.authenticate({ method: request.method, url: request.raw.url ?? "/", headers: request.headers, remoteAddress: request.socket.remoteAddress }, { scopes: ["read:events"], cost: 1 });
    if (!result.ok) throw new Error("denied");
    reply.headers(result.headers);
  });
} else if (mode === "auth-weakmap") {
  app.addHook("onRequest", async (request, reply) => {
    const result = await auth.authenticate({ method: request.method, url: request.raw.url ?? "/", headers: request.headers, remoteAddress: request.socket.remoteAddress }, { scopes: ["read:events"], cost: 1 });
    if (!result.ok) throw new Error("denied");
    pending.set(request, { context: result.context });
    reply.headers(result.headers);
  });
} else if (mode === "check-only") {
  app.addHook("onRequest", async () => {
    const r = await flux.keys.check(secret, { cost: 1 });
    if (!r.valid) throw new Error("denied");
  });
} else if (mode === "hash-only") {
  const { createHash } = await import("node:crypto");
  app.addHook("onRequest", async () => { createHash("sha256").update(secret).digest("hex"); });
}
app.get("/v1/events", async () => body("org_bench"));
await app.listen({ port: 0, host: "127.0.0.1" });
process.on("SIGTERM", () => { void app.close().then(() => flux.close()).then(() => process.exit(0)); });
console.log(JSON.stringify({ ready: true, port: (app.server.address() as { port: number }).port, key: secret }));
