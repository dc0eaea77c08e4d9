/**
 * Lifecycle events: every type in process and as a signed webhook to a real local receiver,
 * retries, giving up, once-only periodic and hot-path events, listener isolation.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { STORES } from "../../../test/support/services.js";
import { type Receiver, startReceiver, until } from "../../../test/support/webhook-receiver.js";
import {
  createFlux,
  type Flux,
  FluxConfigError,
  type FluxOptions,
  type LifecycleEvent,
  verifyWebhookSignature,
} from "../src/index.js";

const DAY = 86_400_000;
const SECRET = "whsec_test_secret_0123456789";
const START = Date.UTC(2026, 4, 4, 10, 0, 0);

describe("webhooks options", () => {
  it("reports unknown and invalid options", async () => {
    await expect(createFlux({ webhooks: { nope: 1 } as never })).rejects.toBeInstanceOf(FluxConfigError);
    await expect(
      createFlux({ webhooks: { endpoints: [{ url: "ftp://x", secret: SECRET }] } }),
    ).rejects.toMatchObject({ code: "invalid_option" });
    await expect(
      createFlux({ webhooks: { endpoints: [{ url: "http://127.0.0.1/", secret: "short" }] } }),
    ).rejects.toMatchObject({ code: "invalid_option" });
    await expect(createFlux({ webhooks: { quotaThresholds: [1.5] } })).rejects.toMatchObject({
      code: "invalid_option",
    });
  });
});

describe.each(STORES)("lifecycle events on $name", (store) => {
  let options: (extra?: FluxOptions) => FluxOptions;
  let teardown: () => Promise<void>;
  let receiver: Receiver;
  let flux: Flux | undefined;
  let now = START;

  beforeAll(async () => {
    if (!store.available) return;
    const target = await store.setup();
    options = target.options;
    teardown = target.teardown;
  });
  afterAll(async () => {
    await teardown?.();
  });
  afterEach(async () => {
    await flux?.close();
    flux = undefined;
    await receiver?.close();
  });

  async function open(webhooks: FluxOptions["webhooks"] = {}, extra: FluxOptions = {}): Promise<Flux> {
    receiver = await startReceiver();
    now = START;
    flux = await createFlux(
      options({
        clock: () => now,
        // The receiver is on 127.0.0.1: loopback has to be allowed.
        webhooks: {
          endpoints: [{ url: receiver.url, secret: SECRET }],
          interval: null,
          allowPrivateNetworks: true,
          ...webhooks,
        },
        ...extra,
      }),
    );
    // Each test gets its own tables' content: the suite shares one schema on PostgreSQL.
    await flux.internals.database.prisma.$executeRawUnsafe(
      'TRUNCATE "flux_events", "flux_webhook_deliveries", "flux_webhook_endpoints", "flux_api_keys", "flux_orgs", "flux_plans", "flux_limit_counters" CASCADE',
    );
    return flux;
  }

  /** Everything this instance hears, with `data` loosely typed for the assertions. */
  function collect(target: Flux): Array<LifecycleEvent & { data: Record<string, unknown> }> {
    const seen: Array<LifecycleEvent & { data: Record<string, unknown> }> = [];
    target.on("*", (event) => {
      seen.push(event as LifecycleEvent & { data: Record<string, unknown> });
    });
    return seen;
  }

  it.skipIf(!store.available)("emits every event type in process and delivers each, signed", async () => {
    const f = await open();
    const seen = collect(f);
    await f.orgs.create({ id: "acme", name: "Acme" });
    const expiring = await f.keys.create().forOrg("acme").named("expiring").expiresInDays(3).issue();
    const rotated = await f.keys.rotate(expiring.key.id, { gracePeriod: "1h" });
    const doomed = await f.keys.create().forOrg("acme").named("doomed").issue();
    await f.keys.revoke(doomed.key.id, { reason: "done" });
    const metered = await f.keys.create().forOrg("acme").withQuota({ limit: 5, period: "day" }).issue();
    for (let i = 0; i < 5; i++) await f.keys.verify(metered.secret);
    const bursty = await f.keys
      .create()
      .forOrg("acme")
      .withRateLimits([{ name: "burst", limit: 2, window: "1m" }])
      .issue();
    for (let i = 0; i < 5; i++) await f.keys.check(bursty.secret);
    await f.internals.events.publish({
      type: "key.leaked",
      orgId: "acme",
      keyId: doomed.key.id,
      data: { keyId: doomed.key.id, orgId: "acme", url: "https://github.com/x/y/blob/main/.env" },
    });
    await f.internals.events.flush();
    await f.webhooks.runOnce(); // key.expiring for the successor (same 3-day lifetime)
    now += 31 * DAY; // every live key is idle past 30 days
    await f.webhooks.runOnce();

    const types = [
      "key.created",
      "key.rotated",
      "key.revoked",
      "key.expiring",
      "key.unused",
      "key.leaked",
      "quota.threshold",
      "ratelimit.exceeded",
    ];
    await until(() => types.every((type) => seen.some((event) => event.type === type)));
    await until(() => receiver.receipts.length === seen.length);

    // Same events, same ids, in process and over HTTP.
    expect(receiver.receipts.map((r) => r.json.id).sort()).toEqual(seen.map((e) => e.id).sort());
    for (const receipt of receiver.receipts) {
      expect(receipt.headers["content-type"]).toBe("application/json");
      expect(receipt.headers["flux-delivery-id"]).toMatch(/^dlv_/);
      expect(receipt.headers["flux-event-type"]).toBe(receipt.json.type);
      expect(verifyWebhookSignature(SECRET, receipt.headers["flux-signature"] as string, receipt.body)).toBe(
        true,
      );
      expect(Object.keys(receipt.json).sort()).toEqual(["createdAt", "data", "id", "type"]);
      // No secret of any kind in a payload.
      for (const secret of [
        expiring.secret,
        rotated.secret,
        doomed.secret,
        metered.secret,
        bursty.secret,
        SECRET,
      ]) {
        expect(receipt.body).not.toContain(secret);
      }
      expect(receipt.body).not.toMatch(/[0-9a-f]{64}/);
    }
    const ofType = (type: string) => seen.filter((event) => event.type === type);
    expect(ofType("key.created").map((e) => e.data.keyId)).toEqual(
      expect.arrayContaining([expiring.key.id, rotated.key.id, doomed.key.id, metered.key.id, bursty.key.id]),
    );
    expect(ofType("key.created").find((e) => e.data.keyId === rotated.key.id)?.data).toMatchObject({
      rotatedFrom: expiring.key.id,
      actor: { type: "system", id: null },
    });
    expect(ofType("key.rotated")[0]?.data).toMatchObject({
      keyId: expiring.key.id,
      replacedBy: rotated.key.id,
    });
    expect(ofType("key.revoked")[0]?.data).toMatchObject({ keyId: doomed.key.id, reason: "done" });
    expect(ofType("key.expiring").map((e) => e.data.keyId)).toEqual([rotated.key.id]);
    expect(ofType("key.expiring")[0]?.data).toMatchObject({ daysLeft: 3 });
    expect(ofType("quota.threshold").map((e) => e.data.threshold)).toEqual([0.8, 1]);
    expect(ofType("ratelimit.exceeded")).toHaveLength(1);
    expect(ofType("ratelimit.exceeded")[0]?.data).toMatchObject({
      keyId: bursty.key.id,
      window: "burst",
      limit: 2,
    });
    expect(
      ofType("key.unused")
        .map((e) => e.data.keyId)
        .sort(),
    ).toEqual([metered.key.id, bursty.key.id].sort());

    const deliveries = await f.webhooks.deliveries();
    expect(deliveries).toHaveLength(seen.length);
    expect(
      deliveries.every((d) => d.status === "delivered" && d.attempts === 1 && d.lastStatusCode === 200),
    ).toBe(true);
  });

  it.skipIf(!store.available)(
    "retries after a 500 and then delivers, with the same delivery id",
    async () => {
      const f = await open({ backoff: { initial: "10s", max: "1m" } });
      receiver.respond = (n) => (n === 0 ? 500 : 204);
      await f.orgs.create({ id: "acme", name: "Acme" });
      await f.keys.create().forOrg("acme").issue();
      const first = await f.webhooks.runOnce();
      expect(first).toMatchObject({ attempted: 1, retrying: 1, delivered: 0 });
      let [delivery] = await f.webhooks.deliveries();
      expect(delivery).toMatchObject({
        status: "pending",
        attempts: 1,
        lastStatusCode: 500,
        lastError: "http_500",
      });
      // Backoff with jitter: between 5 and 10 seconds. Not due yet a moment later.
      const wait = (delivery?.nextAttemptAt.getTime() ?? 0) - now;
      expect(wait).toBeGreaterThanOrEqual(5_000);
      expect(wait).toBeLessThanOrEqual(10_000);
      expect(await f.webhooks.runOnce()).toMatchObject({ attempted: 0 });
      now += 10_000;
      expect(await f.webhooks.runOnce()).toMatchObject({ attempted: 1, delivered: 1 });
      [delivery] = await f.webhooks.deliveries();
      expect(delivery).toMatchObject({
        status: "delivered",
        attempts: 2,
        lastStatusCode: 204,
        lastError: null,
      });
      expect(receiver.receipts).toHaveLength(2);
      expect(receiver.receipts[0]?.headers["flux-delivery-id"]).toBe(
        receiver.receipts[1]?.headers["flux-delivery-id"],
      );
      expect(receiver.receipts[0]?.body).toBe(receiver.receipts[1]?.body);
    },
  );

  it.skipIf(!store.available)("gives up after maxAttempts and records the status", async () => {
    const warnings: Array<Record<string, unknown>> = [];
    const f = await open(
      { maxAttempts: 3, backoff: { initial: "1s", max: "4s" } },
      { logger: { warn: (fields) => warnings.push(fields) } },
    );
    receiver.respond = () => 503;
    await f.orgs.create({ id: "acme", name: "Acme" });
    await f.keys.create().forOrg("acme").issue();
    for (let i = 0; i < 5; i++) {
      await f.webhooks.runOnce();
      now += 5_000;
    }
    expect(receiver.receipts).toHaveLength(3);
    const [delivery] = await f.webhooks.deliveries({ status: "failed" });
    expect(delivery).toMatchObject({
      attempts: 3,
      lastStatusCode: 503,
      lastError: "http_503",
      eventType: "key.created",
    });
    const given = warnings.find((w) => w.event === "flux.webhooks.failed");
    expect(given).toMatchObject({ attempts: 3, error: "http_503" });
    expect(JSON.stringify(warnings)).not.toContain(SECRET);
  });

  it.skipIf(!store.available)("times out a receiver that does not answer", async () => {
    const f = await open({ timeout: "200ms", maxAttempts: 1 });
    receiver.respond = () => null;
    await f.orgs.create({ id: "acme", name: "Acme" });
    await f.keys.create().forOrg("acme").issue();
    expect(await f.webhooks.runOnce()).toMatchObject({ attempted: 1, failed: 1 });
    expect((await f.webhooks.deliveries())[0]).toMatchObject({ status: "failed", lastError: "timeout" });
  });

  it.skipIf(!store.available)("emits key.expiring and key.unused once per key", async () => {
    const f = await open({ expiringDays: 7, unusedDays: 30 });
    const seen = collect(f);
    await f.orgs.create({ id: "acme", name: "Acme" });
    const soon = await f.keys.create().forOrg("acme").expiresInDays(5).issue();
    const later = await f.keys.create().forOrg("acme").expiresInDays(20).issue();
    const idle = await f.keys.create().forOrg("acme").issue();
    for (let i = 0; i < 3; i++) await f.webhooks.runOnce();
    now += 14 * DAY; // `later` is now 6 days from expiry
    for (let i = 0; i < 3; i++) await f.webhooks.runOnce();
    now += 17 * DAY; // 31 days idle; `soon` and `later` have expired
    for (let i = 0; i < 3; i++) await f.webhooks.runOnce();
    await until(() => seen.filter((e) => e.type !== "key.created").length === 3);
    const expiring = seen.filter((e) => e.type === "key.expiring").map((e) => e.data.keyId);
    expect(expiring.sort()).toEqual([soon.key.id, later.key.id].sort());
    expect(seen.filter((e) => e.type === "key.unused").map((e) => e.data.keyId)).toEqual([idle.key.id]);
    expect(receiver.receipts.filter((r) => r.json.type !== "key.created")).toHaveLength(3);
    // Extending an expiry is a new occasion: one more key.expiring for the new date.
    await f.keys.update(idle.key.id, { expiresAt: new Date(now + 2 * DAY) });
    await f.webhooks.runOnce();
    await f.webhooks.runOnce();
    await until(() => seen.filter((e) => e.type === "key.expiring").length === 3);
    expect((await f.webhooks.events({ type: "key.expiring" })).length).toBe(3);
  });

  it.skipIf(!store.available)("emits quota.threshold at 80 % and 100 % once per period", async () => {
    const f = await open();
    const seen = collect(f);
    await f.orgs.create({ id: "acme", name: "Acme" });
    const metered = await f.keys.create().forOrg("acme").withQuota({ limit: 10, period: "day" }).issue();
    for (let i = 0; i < 15; i++) await f.keys.check(metered.secret);
    await f.internals.events.flush();
    now += DAY; // a new day, a new quota period
    for (let i = 0; i < 8; i++) await f.keys.check(metered.secret);
    await f.internals.events.flush();
    await f.webhooks.runOnce();
    const thresholds = () =>
      seen.filter((e) => e.type === "quota.threshold").map((e) => `${e.data.periodId}@${e.data.threshold}`);
    await until(() => thresholds().length === 3);
    expect(thresholds()).toEqual(["d2026-05-04@0.8", "d2026-05-04@1", "d2026-05-05@0.8"]);
    expect(seen.find((e) => e.type === "quota.threshold")?.data).toMatchObject({ used: 8, limit: 10 });
    expect(receiver.receipts.filter((r) => r.json.type === "quota.threshold")).toHaveLength(3);
  });

  it.skipIf(!store.available)(
    "emits ratelimit.exceeded at most once per key per window under a burst",
    async () => {
      const f = await open();
      const seen = collect(f);
      await f.orgs.create({ id: "acme", name: "Acme" });
      const windows = [{ name: "burst", limit: 3, window: "1m" as const }];
      const a = await f.keys.create().forOrg("acme").withRateLimits(windows).issue();
      const b = await f.keys.create().forOrg("acme").withRateLimits(windows).issue();
      const results = await Promise.all(
        Array.from({ length: 60 }, (_, i) => f.keys.check(i % 2 === 0 ? a.secret : b.secret)),
      );
      expect(results.filter((r) => !r.valid)).toHaveLength(54);
      await f.internals.events.flush();
      await f.webhooks.runOnce();
      await until(() => seen.filter((e) => e.type === "ratelimit.exceeded").length === 2);
      const exceeded = seen.filter((e) => e.type === "ratelimit.exceeded").map((e) => e.data.keyId);
      expect(exceeded.sort()).toEqual([a.key.id, b.key.id].sort());
      expect(receiver.receipts.filter((r) => r.json.type === "ratelimit.exceeded")).toHaveLength(2);
    },
  );

  it.skipIf(!store.available)("keeps listener errors away from the caller; unsubscribes", async () => {
    const warnings: Array<Record<string, unknown>> = [];
    const f = await open({ endpoints: [] }, { logger: { warn: (fields) => warnings.push(fields) } });
    const heard: string[] = [];
    f.on("key.created", () => {
      throw new Error("listener bug with a secret inside");
    });
    f.on("key.created", async () => {
      throw new TypeError("async listener bug");
    });
    const stop = f.on("key.created", (event) => {
      heard.push(event.data.keyId);
    });
    await f.orgs.create({ id: "acme", name: "Acme" });
    const first = await f.keys.create().forOrg("acme").issue();
    await until(() => heard.length === 1 && warnings.length === 2);
    expect(heard).toEqual([first.key.id]);
    expect(warnings.map((w) => w.error).sort()).toEqual(["Error", "TypeError"]);
    expect(JSON.stringify(warnings)).not.toContain("secret inside");
    stop();
    stop();
    await f.keys.create().forOrg("acme").issue();
    await until(() => warnings.length === 4);
    expect(heard).toHaveLength(1);
    expect(() => f.on("key.nope" as never, () => {})).toThrow(/Unknown lifecycle event type/);
  });

  it.skipIf(!store.available)("does not watch the hot path when nobody wants limit events", async () => {
    const f = await open({ endpoints: [] });
    await f.webhooks.runOnce();
    const observer = f.internals.events.limitObserver;
    expect(observer.active).toBe(false);
    f.on("key.created", () => {});
    expect(observer.active).toBe(false);
    const stop = f.on("ratelimit.exceeded", () => {});
    expect(observer.active).toBe(true);
    stop();
    expect(observer.active).toBe(false);
    await f.webhooks.add({ url: receiver.url, events: ["quota.threshold"] });
    await f.webhooks.runOnce();
    expect(observer.active).toBe(true);
  });

  it.skipIf(!store.available)("stores endpoints: add, list without secrets, deliver, remove", async () => {
    const f = await open({ endpoints: [] });
    const { endpoint, secret } = await f.webhooks.add({ url: receiver.url, events: ["key.revoked"] });
    expect(secret).toMatch(/^whsec_/);
    const listed = await f.webhooks.list();
    expect(listed).toEqual([
      {
        id: endpoint.id,
        url: receiver.url,
        events: ["key.revoked"],
        source: "stored",
        createdAt: expect.any(Date),
      },
    ]);
    expect(JSON.stringify(listed)).not.toContain(secret);
    await f.orgs.create({ id: "acme", name: "Acme" });
    const issued = await f.keys.create().forOrg("acme").issue();
    await f.keys.revoke(issued.key.id);
    await f.webhooks.runOnce();
    expect(receiver.receipts.map((r) => r.json.type)).toEqual(["key.revoked"]);
    expect(
      verifyWebhookSignature(
        secret,
        receiver.receipts[0]?.headers["flux-signature"] as string,
        receiver.receipts[0]?.body ?? "",
      ),
    ).toBe(true);
    receiver.respond = () => 500;
    await f.keys.revoke((await f.keys.create().forOrg("acme").issue()).key.id);
    await f.webhooks.runOnce();
    expect(await f.webhooks.remove(endpoint.id)).toBe(true);
    expect(await f.webhooks.remove(endpoint.id)).toBe(false);
    expect(await f.webhooks.list()).toEqual([]);
    expect((await f.webhooks.deliveries({ status: "failed" }))[0]).toMatchObject({
      lastError: "endpoint_removed",
    });
    await expect(f.webhooks.add({ url: "javascript:alert(1)" })).rejects.toMatchObject({
      code: "invalid_request",
    });
  });
});
