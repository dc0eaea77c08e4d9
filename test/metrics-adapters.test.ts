/**
 * Prometheus through every adapter: the example apps serve `/metrics` (no API key needed), in
 * prom-client's text format, with the `flux_*` metrics counting exactly the requests made, by
 * outcome, and never a key id or a secret.
 */
import { createFlux, type Flux } from "@flux-keys/core";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningApp, TARGETS } from "./support/targets.js";

interface Family {
  name: string;
  type: string;
  help: string;
  metrics: Array<{ labels?: Record<string, string>; value?: string; count?: string; sum?: string }>;
}

/**
 * parse-prometheus-text-format folds histogram samples by `le` only and drops the `_count` of a
 * labelled histogram: those are read from their sample line, `name_count{labels} value`.
 */
function histogramCount(text: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels)
    .map(([label, value]) => `${label}="${value}"`)
    .join(",");
  const line = text.split("\n").find((l) => l.startsWith(`${name}_count{${wanted}} `));
  return Number(line?.split(" ")[1] ?? 0);
}

function sample(families: Family[], name: string, labels: Record<string, string>): number {
  const family = families.find((f) => f.name === name);
  const metric = family?.metrics.find((m) =>
    Object.entries(labels).every(([label, value]) => m.labels?.[label] === value),
  );
  return Number(metric?.value ?? metric?.count ?? 0);
}

describe.each(TARGETS)("Prometheus metrics: $name", (target) => {
  let flux: Flux;
  let app: RunningApp;
  const secrets: Record<string, string> = {};
  const ids: string[] = [];

  beforeAll(async () => {
    flux = await createFlux({ database: { pglite: true }, redis: null });
    await flux.plans.upsert({ id: "pro", name: "Pro", scopes: ["read:events", "write:events"] });
    await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
    for (const [name, limit] of [
      ["reader", 100],
      ["limited", 3],
    ] as const) {
      const { key, secret } = await flux.keys
        .create()
        .forOrg("acme")
        .withScopes(["read:events"])
        .withRateLimits([{ name: "burst", limit, window: "1m" }])
        .issue();
      secrets[name] = secret;
      ids.push(key.id);
    }
    app = await target.start(flux);
  });

  afterAll(async () => {
    await app?.close();
    await flux?.close();
  });

  it("serves /metrics without a key, counting each request by outcome", async () => {
    const api = () => request(app.server);
    const auth = (name: string) => ({ authorization: `Bearer ${secrets[name]}` });
    expect((await api().get("/v1/events").set(auth("reader"))).status).toBe(200);
    expect((await api().post("/v1/events").set(auth("reader")).send({ type: "x" })).status).toBe(403);
    expect((await api().get("/v1/events").set({ authorization: "Bearer flux_live_nope" })).status).toBe(401);
    for (let i = 0; i < 3; i++) expect((await api().get("/v1/events").set(auth("limited"))).status).toBe(200);
    expect((await api().get("/v1/events").set(auth("limited"))).status).toBe(429);

    const scrape = await api().get("/metrics");
    expect(scrape.status).toBe(200);
    expect(scrape.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusTextFormat(scrape.text) as Family[];
    const names = families.map((family) => family.name);
    expect(names).toEqual(
      expect.arrayContaining([
        "flux_verifications_total",
        "flux_verification_duration_seconds",
        "flux_rate_limiting_decisions_total",
        "flux_cache_lookups_total",
        "flux_usage_buffer_size",
        "flux_usage_flush_duration_seconds",
        "flux_usage_dropped_total",
        "flux_webhook_deliveries_total",
      ]),
    );
    for (const family of families) {
      expect(family.name).toMatch(/^flux_/);
      if (family.type === "COUNTER") expect(family.name).toMatch(/_total$/);
    }
    const verifications = (outcome: string) => sample(families, "flux_verifications_total", { outcome });
    expect(verifications("allowed")).toBe(4);
    expect(verifications("scope_denied")).toBe(1);
    expect(verifications("malformed")).toBe(1);
    expect(verifications("rate_limited")).toBe(1);
    expect(families.find((f) => f.name === "flux_verification_duration_seconds")?.type).toBe("HISTOGRAM");
    expect(histogramCount(scrape.text, "flux_verification_duration_seconds", { outcome: "allowed" })).toBe(4);
    expect(
      sample(families, "flux_rate_limiting_decisions_total", { result: "rejected", window: "burst" }),
    ).toBe(1);
    expect(
      sample(families, "flux_rate_limiting_decisions_total", { result: "acquired", window: "burst" }),
    ).toBe(4);
    // The first request of each key read the database; the others found it in the cache.
    expect(sample(families, "flux_cache_lookups_total", { result: "miss" })).toBe(2);
    expect(sample(families, "flux_cache_lookups_total", { result: "hit" })).toBe(4);
    for (const id of ids) expect(scrape.text).not.toContain(id);
    for (const secret of Object.values(secrets)) expect(scrape.text).not.toContain(secret.slice(10));
    expect(scrape.text).not.toContain("acme");
  });

  it("serves metrics to GET and HEAD only", async () => {
    const post = await request(app.server).post("/metrics");
    expect(post.status).not.toBe(200);
    expect(post.text).not.toContain("flux_verifications_total");
    const head = await request(app.server).head("/metrics");
    expect(head.status).toBe(200);
  });
});
