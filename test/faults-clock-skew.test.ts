/**
 * Fault: three instances on one PostgreSQL whose clocks are skewed by −2 min, 0 and +2 min.
 *
 * Every instance decides time with the database server's clock (its offset to PostgreSQL's clock,
 * measured at start), so they agree: each refuses a key within 1 s of its expiry and of the end of
 * its rotation grace, and accepts it until then; an entitlement override ends at the same moment
 * on all three; and an instant written as "now + duration" by a skewed instance is stored on the
 * server's time, not on the writer's.
 */
import { createFlux, type Flux } from "@flux-keys/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATABASE_URL, freshSchema, hasPostgres } from "./support/services.js";

const SKEWS = [-120_000, 0, 120_000];
const DAY = 86_400_000;

describe.skipIf(!hasPostgres)("fault: clocks skewed by ±2 minutes between instances", () => {
  let instances: Flux[] = [];
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const fresh = await freshSchema();
    drop = fresh.drop;
    instances = await Promise.all(
      SKEWS.map((skew) =>
        createFlux({
          database: { url: DATABASE_URL, schema: fresh.schema, poolSize: 2 },
          redis: null,
          // The machine's clock, wrong by `skew`; serverClock is what production runs by default.
          clock: () => Date.now() + skew,
          serverClock: true,
        }),
      ),
    );
    const [slow] = instances as [Flux];
    await slow.plans.upsert({ id: "skew", name: "Skew", scopes: ["read:events"] });
    await slow.orgs.create({ id: "acme", name: "Acme", planId: "skew" });
  });

  afterAll(async () => {
    for (const flux of instances) await flux.close().catch(() => {});
    await drop?.();
  });

  it("stores instants written as now + duration on the server's time, whoever writes them", async () => {
    for (const flux of instances) {
      const before = Date.now();
      const { key } = await flux.keys.create().forOrg("acme").expiresInDays(1).issue();
      const after = Date.now();
      expect(key.createdAt.getTime()).toBeGreaterThanOrEqual(before - 100);
      expect(key.createdAt.getTime()).toBeLessThanOrEqual(after + 100);
      expect(Math.abs((key.expiresAt?.getTime() ?? 0) - (before + DAY))).toBeLessThan(after - before + 200);
    }
  });

  it("all refuse within 1 s of an expiry, of a grace end and of an override's end, and accept until then", async () => {
    const [slow, , fast] = instances as [Flux, Flux, Flux];
    const expiry = Date.now() + 2_500;
    const expiring = await fast.keys.create().forOrg("acme").expiresAt(new Date(expiry)).issue();
    // Rotated on the fast instance: its grace end is written from the server's time.
    const old = await slow.keys.create().forOrg("acme").issue();
    const rotateSent = Date.now();
    const rotated = await fast.keys.rotate(old.key.id, { gracePeriod: "3s" });
    const sunset = rotated.previous.sunsetAt?.getTime() ?? 0;
    // Written on the server's time (within the offset's error), not the fast instance's +2 min.
    expect(sunset).toBeGreaterThanOrEqual(rotateSent + 3_000 - 100);
    expect(sunset).toBeLessThanOrEqual(Date.now() + 3_000 + 100);
    const eternal = await slow.keys.create().forOrg("acme").issue();
    const overrideEnd = Date.now() + 2_000;
    await slow.orgs.setEntitlement("acme", "beta", { granted: true, expiresAt: new Date(overrideEnd) });

    const cases = [
      {
        name: "expiry",
        boundary: expiry,
        valid: (f: Flux) => f.keys.check(expiring.secret).then((r) => r.valid),
      },
      {
        name: "grace end",
        boundary: sunset,
        valid: (f: Flux) => f.keys.check(old.secret).then((r) => r.valid),
      },
      {
        name: "override end",
        boundary: overrideEnd,
        valid: async (f: Flux) => f.entitlements.checkForKey(await f.keys.verify(eternal.secret), "beta"),
      },
    ];
    const lastBoundary = Math.max(...cases.map((c) => c.boundary));
    /** Per case and instance: the true times at which it answered valid, and refused. */
    const seen = cases.map(() => SKEWS.map(() => ({ lastValid: 0, firstRefused: Number.POSITIVE_INFINITY })));
    while (Date.now() < lastBoundary + 1_500) {
      for (const [c, test] of cases.entries()) {
        for (const [i, flux] of instances.entries()) {
          const at = Date.now();
          const record = seen[c]?.[i] as { lastValid: number; firstRefused: number };
          if (await test.valid(flux)) record.lastValid = Math.max(record.lastValid, at);
          else record.firstRefused = Math.min(record.firstRefused, at);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    for (const [c, test] of cases.entries()) {
      for (const [i, skew] of SKEWS.entries()) {
        const { lastValid, firstRefused } = seen[c]?.[i] as { lastValid: number; firstRefused: number };
        const label = `${test.name} on the instance skewed ${skew / 1000} s`;
        // Accepted until shortly before the boundary (a poll's and a round trip's worth) ...
        expect(firstRefused - test.boundary, label).toBeGreaterThan(-300);
        // ... and refused within 1 s after it, never accepted again.
        expect(firstRefused - test.boundary, label).toBeLessThan(1_000);
        expect(lastValid, label).toBeLessThan(firstRefused);
      }
    }
  });
});
