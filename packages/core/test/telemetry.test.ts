/**
 * Spans and metrics with the real OpenTelemetry SDKs (in-memory span exporter, a metric reader
 * collected on demand): what a verification records for allowed, denied, rate-limited and
 * store-down requests, and that nothing secret, and no key id, becomes a metric attribute.
 */
import { trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redisAvailable, ThrowawayRedis } from "../../../test/support/faults-services.js";
import { DATABASE_URL, freshSchema, hasPostgres } from "../../../test/support/services.js";
import { TestTelemetry } from "../../../test/support/telemetry.js";
import { startReceiver } from "../../../test/support/webhook-receiver.js";
import { createFlux, type Flux } from "../src/index.js";

async function seed(flux: Flux, limit = 2): Promise<{ secret: string; keyId: string }> {
  await flux.plans.upsert({ id: "pro", name: "Pro", rateLimits: [{ name: "rpm", limit, window: "1m" }] });
  await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
  const { key, secret } = await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue();
  return { secret, keyId: key.id };
}

function decisions(otel: TestTelemetry, result: string, window: string): Promise<number> {
  return otel.value("flux.rate_limiting.decisions", {
    "flux.rate_limiting.result": result,
    "flux.rate_limiting.window": window,
  });
}

describe("telemetry without an SDK", () => {
  it("stays out of the way: verification is not observed and still answers", async () => {
    const flux = await createFlux({ database: { pglite: true }, redis: null });
    try {
      const { secret } = await seed(flux);
      expect(flux.internals.telemetry.enabled).toBe(false);
      expect((await flux.keys.check(secret)).valid).toBe(true);
    } finally {
      await flux.close();
    }
  });
});

describe("telemetry with the OpenTelemetry SDK", () => {
  const otel = new TestTelemetry();
  let flux: Flux;
  let secret: string;
  let keyId: string;

  beforeAll(async () => {
    flux = await createFlux({
      database: { pglite: true },
      redis: null,
      telemetry: { tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider },
    });
    ({ secret, keyId } = await seed(flux));
  });

  afterAll(async () => {
    await flux?.close();
    await otel.shutdown();
  });

  it("an allowed verification: a flux.verify span with outcome, ids and the limiter's decision", async () => {
    otel.spans.reset();
    const result = await flux.keys.check(secret, { scopes: ["read:events"] });
    expect(result.valid).toBe(true);
    const [span] = otel.finished();
    expect(span?.attributes).toMatchObject({
      "flux.outcome": "allowed",
      "flux.key.id": keyId,
      "flux.org.id": "acme",
      "flux.plan.id": "pro",
    });
    expect(span?.events.map((event) => [event.name, event.attributes])).toEqual([
      [
        "flux.rate_limiting.decision",
        {
          "flux.rate_limiting.result": "acquired",
          "flux.rate_limiting.window": "rpm",
          "flux.rate_limiting.remaining": 1,
          "flux.rate_limiting.limit": 2,
        },
      ],
    ]);
    expect(await otel.value("flux.verifications", { "flux.outcome": "allowed" })).toBe(1);
    expect(await decisions(otel, "acquired", "rpm")).toBe(1);
    // The first check read the database; the second finds the key in the cache.
    expect(await otel.value("flux.cache.lookups", { "flux.cache.result": "miss" })).toBe(1);
    await flux.keys.check(secret, { cost: 0 });
    expect(await otel.value("flux.cache.lookups", { "flux.cache.result": "hit" })).toBe(1);
    const durations = await otel.points("flux.verification.duration");
    expect(durations.find((p) => p.attributes["flux.outcome"] === "allowed")?.value).toBe(2);
  });

  it("denials: their outcome, the key's ids once it was identified, never the secret", async () => {
    otel.spans.reset();
    const denied = await flux.keys.check(secret, { scopes: ["write:events"] });
    expect(denied.valid).toBe(false);
    const unknown = await flux.keys.check(`${secret.slice(0, -8)}AAAAAAAA`);
    expect(unknown.valid).toBe(false);
    const spans = otel.finished();
    expect(spans.map((span) => span.attributes["flux.outcome"])).toEqual(["scope_denied", "malformed"]);
    expect(spans[0]?.attributes["flux.key.id"]).toBe(keyId);
    expect(spans[0]?.attributes["error.type"]).toBe("scope_denied");
    expect(spans[1]?.attributes["flux.key.id"]).toBeUndefined();
    // A denial is not an error of the component: the span's status stays unset.
    expect(spans.map((span) => span.status.code)).toEqual([0, 0]);
    expect(await otel.value("flux.verifications", { "flux.outcome": "scope_denied" })).toBe(1);
    expect(await otel.value("flux.verifications", { "flux.outcome": "malformed" })).toBe(1);
    const everything = JSON.stringify([
      spans.map((span) => [span.attributes, span.events]),
      await otel.points("flux.verifications"),
      await otel.points("flux.rate_limiting.decisions"),
      await otel.points("flux.cache.lookups"),
    ]);
    expect(everything).not.toContain(secret);
    expect(everything).not.toContain(secret.slice(10, 40));
    // Key ids are on spans only, never metric attributes.
    const metricAttributes = JSON.stringify([
      await otel.points("flux.verifications"),
      await otel.points("flux.rate_limiting.decisions"),
      await otel.points("flux.verification.duration"),
    ]);
    expect(metricAttributes).not.toContain(keyId);
    expect(metricAttributes).not.toContain("acme");
  });

  it("an unknown well-formed key: outcome unknown, counted per instance without an id", async () => {
    const stranger = (await flux.keys.create().forOrg("acme").issue()).key.id;
    const other = await createFlux({ database: { pglite: true }, redis: null });
    const { secret: foreign } = await seed(other);
    await other.close();
    otel.spans.reset();
    const result = await flux.keys.check(foreign);
    expect(result.valid).toBe(false);
    expect(otel.finished()[0]?.attributes).toEqual({
      "flux.outcome": "unknown",
      "error.type": "key_invalid",
    });
    expect(await otel.value("flux.verifications", { "flux.outcome": "unknown" })).toBe(1);
    expect(stranger).toMatch(/^key_/);
  });

  it("rate limited: outcome rate_limited, a rejected decision for the violated window", async () => {
    const { secret: limited } = await flux.keys.create().forOrg("acme").issue();
    await flux.keys.check(limited);
    await flux.keys.check(limited);
    otel.spans.reset();
    const refused = await flux.keys.check(limited);
    expect(refused.valid).toBe(false);
    const [span] = otel.finished();
    expect(span?.attributes["flux.outcome"]).toBe("rate_limited");
    expect(span?.events.map((event) => event.attributes)).toEqual([
      {
        "flux.rate_limiting.result": "rejected",
        "flux.rate_limiting.window": "rpm",
        "flux.rate_limiting.remaining": 0,
        "flux.rate_limiting.limit": 2,
      },
    ]);
    expect(await otel.value("flux.verifications", { "flux.outcome": "rate_limited" })).toBe(1);
    expect(await decisions(otel, "rejected", "rpm")).toBe(1);
  });

  it("revoked: outcome revoked, with the key's id", async () => {
    const { key, secret: revoked } = await flux.keys.create().forOrg("acme").issue();
    await flux.keys.revoke(key.id);
    otel.spans.reset();
    expect((await flux.keys.check(revoked)).valid).toBe(false);
    expect(otel.finished()[0]?.attributes).toMatchObject({
      "flux.outcome": "revoked",
      "flux.key.id": key.id,
    });
  });

  it("usage: buffer size, flush duration and dropped calls", async () => {
    flux.usage.record({
      keyId,
      orgId: "acme",
      method: "GET",
      endpoint: "/v1/events",
      status: 200,
      latencyMs: 1,
    });
    expect(await otel.value("flux.usage.buffer.size", {})).toBe(1);
    await flux.usage.flush();
    expect(await otel.value("flux.usage.buffer.size", {})).toBe(0);
    const flushes = await otel.points("flux.usage.flush.duration");
    const ok = flushes.find((p) => p.attributes["flux.usage.flush.result"] === "ok");
    expect(ok?.value).toBeGreaterThanOrEqual(1);
    expect(ok?.sum).toBeGreaterThan(0);
    expect(await otel.value("flux.usage.dropped", {})).toBe(0);
  });
});

describe("telemetry of webhook deliveries", () => {
  it("counts each attempt by result", async () => {
    const otel = new TestTelemetry();
    const receiver = await startReceiver((n) => (n === 0 ? 500 : 200));
    let now = Date.now();
    const flux = await createFlux({
      clock: () => now,
      database: { pglite: true },
      redis: null,
      webhooks: {
        endpoints: [{ url: receiver.url, secret: "whsec_telemetry_test_secret_0123456789" }],
        interval: null,
        allowPrivateNetworks: true,
      },
      telemetry: { meterProvider: otel.meterProvider },
    });
    try {
      await flux.orgs.create({ id: "acme", name: "Acme" });
      await flux.keys.create().forOrg("acme").issue();
      expect(await flux.webhooks.runOnce()).toMatchObject({ retrying: 1 });
      now += 3_600_000;
      expect(await flux.webhooks.runOnce()).toMatchObject({ delivered: 1 });
      expect(await otel.value("flux.webhook.deliveries", { "flux.webhook.result": "retrying" })).toBe(1);
      expect(await otel.value("flux.webhook.deliveries", { "flux.webhook.result": "delivered" })).toBe(1);
    } finally {
      await flux.close();
      await receiver.close();
      await otel.shutdown();
    }
  });
});

describe("telemetry: the global providers", () => {
  it("uses an SDK registered after createFlux for spans", async () => {
    const otel = new TestTelemetry();
    const flux = await createFlux({ database: { pglite: true }, redis: null });
    try {
      const { secret } = await seed(flux);
      expect(flux.internals.telemetry.enabled).toBe(false);
      trace.setGlobalTracerProvider(otel.tracerProvider);
      expect(flux.internals.telemetry.enabled).toBe(true);
      await flux.keys.check(secret);
      expect(otel.finished().map((span) => span.attributes["flux.outcome"])).toEqual(["allowed"]);
    } finally {
      trace.disable();
      await flux.close();
      await otel.shutdown();
    }
  });

  it("org and plan metric attributes only when asked", async () => {
    const otel = new TestTelemetry();
    const flux = await createFlux({
      database: { pglite: true },
      redis: null,
      telemetry: { meterProvider: otel.meterProvider, attributes: { org: true, plan: true } },
    });
    try {
      const { secret } = await seed(flux);
      await flux.keys.check(secret);
      expect(
        await otel.value("flux.verifications", {
          "flux.outcome": "allowed",
          "flux.org.id": "acme",
          "flux.plan.id": "pro",
        }),
      ).toBe(1);
    } finally {
      await flux.close();
      await otel.shutdown();
    }
  });

  it("refuses unknown telemetry options", async () => {
    await expect(
      createFlux({ database: { pglite: true }, telemetry: { attributes: { key: true } } as never }),
    ).rejects.toMatchObject({ code: "unknown_option" });
  });
});

describe.skipIf(!redisAvailable)("telemetry when the limit store is down", () => {
  const otel = new TestTelemetry();
  let server: ThrowawayRedis;
  let flux: Flux;

  beforeAll(async () => {
    server = await ThrowawayRedis.start();
    flux = await createFlux({
      database: { pglite: true },
      redis: { url: server.url, keyPrefix: "otel:" },
      limits: { onStoreError: "fail-closed" },
      telemetry: { tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider },
    });
  });

  afterAll(async () => {
    await flux?.close();
    await server?.destroy();
    await otel.shutdown();
  });

  it("a store-down request: outcome store_down, an error span, a store_unavailable decision", async () => {
    const { secret } = await seed(flux, 100);
    expect((await flux.keys.check(secret)).valid).toBe(true);
    await server.kill();
    otel.spans.reset();
    const result = await flux.keys.check(secret);
    expect(result.valid ? null : result.error.code).toBe("store_unavailable");
    const [span] = otel.finished();
    expect(span?.attributes["flux.outcome"]).toBe("store_down");
    expect(span?.status.code).toBe(2);
    expect(span?.events.map((event) => event.attributes?.["flux.rate_limiting.result"])).toEqual([
      "store_unavailable",
    ]);
    expect(await otel.value("flux.verifications", { "flux.outcome": "store_down" })).toBe(1);
    expect(await decisions(otel, "store_unavailable", "*")).toBe(1);
  });
});

describe.skipIf(!hasPostgres)("telemetry of the invalidation bus (PostgreSQL)", () => {
  it("reports the heartbeat's round trip and the bus lag", async () => {
    const otel = new TestTelemetry();
    const schema = await freshSchema();
    const flux = await createFlux({
      database: { url: DATABASE_URL, schema: schema.schema },
      redis: null,
      invalidation: { maxStaleness: "200ms" },
      telemetry: { meterProvider: otel.meterProvider },
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const beats = await otel.points("flux.invalidation.heartbeat.duration");
      expect(
        beats.find((p) => p.attributes["flux.invalidation.heartbeat.result"] === "ok")?.value,
      ).toBeGreaterThan(0);
      const lag = await otel.value("flux.invalidation.lag", {});
      expect(lag).toBeGreaterThanOrEqual(0);
      expect(lag).toBeLessThan(0.2);
    } finally {
      await flux.close();
      await schema.drop();
      await otel.shutdown();
    }
  });
});
