/**
 * Usage → Stripe meter events through the real `stripe` client, pointed at a local server that
 * counts each identifier once (as Stripe does) and fails or holds requests on demand.
 */
import { createFlux, type Flux, type FluxOptions } from "@flux-keys/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STORES } from "../../../test/support/services.js";
import { until } from "../../../test/support/until.js";
import { REFUSALS } from "../../../test/support/usage-calls.js";
import { createStripeMeterSync } from "../src/index.js";
import { type FakeStripeServer, fakeStripeClient, startFakeStripe } from "../src/testing/fake-stripe.js";

const MINUTE = 60_000;

describe.each(STORES)("Stripe meter sync on $name", (store) => {
  let flux: Flux;
  let options: (extra?: FluxOptions) => FluxOptions;
  let teardown: () => Promise<void>;
  let server: FakeStripeServer;
  const base = Math.floor(Date.now() / MINUTE) * MINUTE - 60 * MINUTE;
  let recorded = { acme: 0, globex: 0 };

  beforeAll(async () => {
    if (!store.available) return;
    const target = await store.setup();
    teardown = target.teardown;
    options = target.options;
    flux = await createFlux(options());
    server = await startFakeStripe();
    await flux.orgs.create({ id: "acme", name: "Acme", stripeCustomerId: "cus_acme" });
    await flux.orgs.create({ id: "globex", name: "Globex", stripeCustomerId: "cus_globex" });
    await flux.orgs.create({ id: "nocust", name: "No customer" });
  });
  afterAll(async () => {
    await flux?.close();
    await server?.close();
    await teardown?.();
  });

  /** Records calls spread over `minutes` minutes from `from` (allowed, denied and app errors). */
  async function use(minutes: number, from: number) {
    const keys = {
      acme: (await flux.keys.create().forOrg("acme").issue()).key.id,
      globex: (await flux.keys.create().forOrg("globex").issue()).key.id,
      nocust: (await flux.keys.create().forOrg("nocust").issue()).key.id,
    };
    for (let m = 0; m < minutes; m++) {
      const at = from + m * MINUTE + 1_000;
      for (const [org, keyId] of Object.entries(keys)) {
        const calls = 1 + ((m * 7 + org.length) % 5);
        for (let i = 0; i < calls; i++) {
          flux.usage.record({
            keyId,
            orgId: org,
            method: "GET",
            endpoint: "/v1/events",
            status: 200,
            latencyMs: 1,
            at,
          });
        }
        // Denials and failures are not billed by default.
        flux.usage.record({
          keyId,
          orgId: org,
          method: "GET",
          endpoint: "/v1/events",
          status: 429,
          latencyMs: 1,
          at,
        });
        flux.usage.record({
          keyId,
          orgId: org,
          method: "GET",
          endpoint: "/v1/events",
          status: 503,
          latencyMs: 1,
          at,
        });
        if (org === "acme" || org === "globex") recorded[org] += calls;
      }
    }
    await flux.usage.flush();
  }

  const sync = (f: Flux, extra: Partial<Parameters<typeof createStripeMeterSync>[1]> = {}) =>
    createStripeMeterSync(f, {
      stripe: fakeStripeClient(server),
      meters: [{ eventName: "api_calls" }],
      retry: { attempts: 8, initialMs: 5, maxMs: 50 },
      concurrency: 4,
      ...extra,
    });

  it.skipIf(!store.available)(
    "meter totals equal recorded allowed calls, per customer, one event per org minute",
    async () => {
      recorded = { acme: 0, globex: 0 };
      await use(10, base);
      const report = await sync(flux).runOnce();
      expect(report).toMatchObject({ planned: 20, sent: 20, failed: 0 });
      expect(server.total("api_calls", "cus_acme")).toBe(recorded.acme);
      expect(server.total("api_calls", "cus_globex")).toBe(recorded.globex);
      expect(server.meterEvents.every((e) => e.timestamp % 60 === 0)).toBe(true);
      // The request carried the identifier and used it as the idempotency key.
      const sent = server.requests.filter((r) => r.path === "/v1/billing/meter_events");
      expect(sent.every((r) => r.idempotencyKey === r.body.identifier)).toBe(true);
      // Nothing more to send: a second round sends nothing.
      expect(await sync(flux).runOnce()).toMatchObject({ planned: 0, sent: 0 });
    },
  );

  it.skipIf(!store.available)("after injected 500s (fixed and random) totals are still exact", async () => {
    await use(8, base + 10 * MINUTE);
    server.failNext(5);
    const first = await sync(flux).runOnce();
    expect(first.failed).toBe(0);
    await use(6, base + 20 * MINUTE);
    server.failRandomly(0.4);
    try {
      const s = sync(flux, { retry: { attempts: 2, initialMs: 1, maxMs: 5 } });
      for (let round = 0; round < 30; round++) {
        await s.runOnce();
        if ((await s.totals("api_calls")).pending === 0) break;
      }
    } finally {
      server.failRandomly(0);
    }
    expect(server.requests.filter((r) => r.path === "/v1/billing/meter_events").length).toBeGreaterThan(
      server.meterEvents.length,
    );
    expect(server.total("api_calls", "cus_acme")).toBe(recorded.acme);
    expect(server.total("api_calls", "cus_globex")).toBe(recorded.globex);
  });

  it.skipIf(!store.available)("a sender that dies mid-send is resumed exactly by another one", async () => {
    await use(12, base + 30 * MINUTE);
    // A second instance on the same database where the store allows one (PostgreSQL).
    const other = store.name === "postgres" ? await createFlux(options()) : flux;
    const doomed = sync(other, { concurrency: 2 });
    server.holdAfter(5);
    const abandoned = doomed.runOnce().catch(() => null);
    // Stripe counted more than it answered: those acknowledgements never reach the database.
    await until(() => server.heldCount >= 2);
    const partial = server.total("api_calls");
    expect(partial).toBeLessThan(recorded.acme + recorded.globex);
    if (other !== flux) await other.close(); // the crash: its connections are gone

    server.release();
    const resumed = sync(flux);
    const report = await resumed.runOnce();
    expect(report.failed).toBe(0);
    expect(server.total("api_calls", "cus_acme")).toBe(recorded.acme);
    expect(server.total("api_calls", "cus_globex")).toBe(recorded.globex);
    expect((await resumed.totals("api_calls")).pending).toBe(0);
    // The held ones were sent again, with the same identifiers, and counted once.
    const keys = server.requests.map((r) => r.idempotencyKey).filter((k) => k !== null);
    expect(keys.length - new Set(keys).size).toBeGreaterThanOrEqual(2);
    expect((await resumed.totals("api_calls")).sent).toBe(recorded.acme + recorded.globex);
    await abandoned;
  });

  it.skipIf(!store.available)(
    "usage that arrives late for a minute already sent is sent as its next sequence",
    async () => {
      const keyId = (await flux.keys.create().forOrg("acme").issue()).key.id;
      for (let i = 0; i < 4; i++) {
        flux.usage.record({
          keyId,
          orgId: "acme",
          method: "POST",
          endpoint: "/v1/late",
          status: 201,
          latencyMs: 1,
          at: base + 1_000,
        });
      }
      await flux.usage.flush();
      recorded.acme += 4;
      const before = server.meterEvents.length;
      expect(await sync(flux).runOnce()).toMatchObject({ planned: 1, sent: 1 });
      expect(server.meterEvents.length).toBe(before + 1);
      expect(server.meterEvents.at(-1)?.payload.value).toBe("4");
      expect(server.total("api_calls", "cus_acme")).toBe(recorded.acme);
    },
  );

  it.skipIf(!store.available)(
    "a meter can bill by cost: value 'units' sums each call's route cost",
    async () => {
      const keyId = (await flux.keys.create().forOrg("acme").issue()).key.id;
      const at = base + 55 * MINUTE + 1_000;
      for (const units of [5, 5, 2]) {
        flux.usage.record({
          keyId,
          orgId: "acme",
          method: "POST",
          endpoint: "/v1/bulk",
          status: 200,
          latencyMs: 1,
          units,
          at,
        });
      }
      // A refused call costs nothing on the bill, whatever its route's cost.
      flux.usage.record({
        keyId,
        orgId: "acme",
        method: "POST",
        endpoint: "/v1/bulk",
        status: 429,
        latencyMs: 1,
        units: 5,
        at,
      });
      await flux.usage.flush();
      const byCost = sync(flux, {
        meters: [{ eventName: "bulk_units", endpoints: ["POST /v1/bulk"], value: "units" }],
      });
      await byCost.runOnce();
      expect(server.total("bulk_units", "cus_acme")).toBe(12);
      const byCalls = sync(flux, { meters: [{ eventName: "bulk_calls", endpoints: ["POST /v1/bulk"] }] });
      await byCalls.runOnce();
      expect(server.total("bulk_calls", "cus_acme")).toBe(3);
    },
  );

  it.skipIf(!store.available)(
    "never bills a call Flux Keys refused, even for a meter that counts every status class",
    async () => {
      await flux.orgs.create({ id: "refusals", name: "Refusals", stripeCustomerId: "cus_refusals" });
      const keyId = (await flux.keys.create().forOrg("refusals").issue()).key.id;
      const at = base + 40 * MINUTE + 1_000;
      const call = { keyId, orgId: "refusals", method: "GET", endpoint: "/v1/events", latencyMs: 1, at };
      // Served: 3 answered 200 and 2 answered 404 by the app itself, 2 units each.
      for (const status of [200, 200, 200, 404, 404]) flux.usage.record({ ...call, status, units: 2 });
      // Refused once the key was identified (as the adapters record them: no units).
      for (const [outcome, status] of [...REFUSALS, REFUSALS[0]!]) {
        flux.usage.record({ ...call, status, outcome, units: 0 });
      }
      // Even a refusal recorded with units (by hand) is not billed.
      flux.usage.record({ ...call, status: 429, outcome: "rate_limited", units: 9 });
      await flux.usage.flush();
      const every = [1, 2, 3, 4, 5];
      const meters = sync(flux, {
        meters: [
          { eventName: "every_status_calls", statusClasses: every },
          { eventName: "every_status_units", statusClasses: every, value: "units" },
        ],
      });
      await meters.runOnce();
      expect(server.total("every_status_calls", "cus_refusals")).toBe(5);
      expect(server.total("every_status_units", "cus_refusals")).toBe(10);
      // The default meter: served calls below 400 only.
      await sync(flux, { meters: [{ eventName: "default_calls" }] }).runOnce();
      expect(server.total("default_calls", "cus_refusals")).toBe(3);
      // Usage itself counts all of them: 5 served, every refusal, one more rate limited, one by hand.
      const usage = await flux.usage.query({
        orgId: "refusals",
        from: new Date(at - MINUTE),
        to: new Date(at + MINUTE),
        granularity: "hour",
      });
      expect(usage.series[0]?.totals.calls).toBe(5 + REFUSALS.length + 2);
    },
  );

  it.skipIf(!store.available)(
    "a meter can count one endpoint only; the current minute waits to settle",
    async () => {
      const keyId = (await flux.keys.create().forOrg("globex").issue()).key.id;
      const exportAt = base + 50 * MINUTE;
      for (let i = 0; i < 3; i++) {
        flux.usage.record({
          keyId,
          orgId: "globex",
          method: "POST",
          endpoint: "/v1/exports",
          status: 200,
          latencyMs: 1,
          at: exportAt,
        });
      }
      flux.usage.record({
        keyId,
        orgId: "globex",
        method: "POST",
        endpoint: "/v1/exports",
        status: 200,
        latencyMs: 1,
      });
      await flux.usage.flush();
      const exports = sync(flux, { meters: [{ eventName: "exports", endpoints: ["POST /v1/exports"] }] });
      await exports.runOnce();
      expect(server.total("exports", "cus_globex")).toBe(3);
      expect(await exports.totals("exports")).toEqual({ sent: 3, pending: 0 });
    },
  );
});
