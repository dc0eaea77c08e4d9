/**
 * Fault: clock skew of ±2 minutes between two instances on one (throwaway) PostgreSQL.
 *
 * Instance FAST runs 2 min ahead of the true time, SLOW 2 min behind (the `clock` option), so they
 * are 4 min apart. What "agree" means, and what this proves:
 * - every time-based decision (expiry, rotation grace, entitlement override expiry) compares a
 *   boundary stored in the database as an absolute instant with the deciding instance's own clock:
 *   an instance decides "valid" exactly while `its clock < stored boundary`. This is checked at
 *   probes on both sides of every boundary, as seen by each instance;
 * - so the two instances give the same answer except within `[boundary - 2 min, boundary + 2 min)`
 *   of true time: a disagreement window no wider than the skew between them, and never a
 *   disagreement anywhere else. Both report the same `rotation.sunsetAt` (from the database);
 * - a boundary written as "now + duration" (expiresInDays, gracePeriod) is stored from the writer's
 *   clock, so it is off by the writer's skew (±2 min) from true time; the same stored instant is
 *   then used by everyone. A zero-grace rotation on FAST therefore still lets SLOW accept the old
 *   key for up to the 4 min between them (revocation has no such window: it is not a time check).
 * - issue and rotate take `createdAt` from the same clock as `expiresAt`, so a successor's lifetime
 *   equals its predecessor's and repeated rotation never accumulates skew.
 */
import { createFlux, type Flux } from "@flux-keys/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgAvailable, ThrowawayPostgres } from "./support/faults-services.js";

const SKEW = 120_000;
const MIN = 60_000;
const DAY = 86_400_000;

describe.skipIf(!pgAvailable)("fault: clock skew of ±2 minutes between instances", () => {
  let pg: ThrowawayPostgres;
  /** The true time of this test, moved forward by hand. */
  let trueNow = Math.floor(Date.now() / 1000) * 1000;
  const t0 = trueNow;
  let fast: Flux;
  let slow: Flux;

  beforeAll(async () => {
    pg = await ThrowawayPostgres.create();
    await pg.start();
    fast = await createFlux({
      database: { url: pg.url, poolSize: 2 },
      redis: null,
      clock: () => trueNow + SKEW,
    });
    slow = await createFlux({
      database: { url: pg.url, poolSize: 2 },
      redis: null,
      clock: () => trueNow - SKEW,
    });
  });

  afterAll(async () => {
    await fast?.close().catch(() => {});
    await slow?.close().catch(() => {});
    await pg?.destroy();
  });

  it("decides on stored instants with each instance's clock: they differ only within the skew", async () => {
    await fast.plans.upsert({ id: "skew", name: "Skew", scopes: ["read:events"] });
    const org = await fast.orgs.create({ name: "skew", planId: "skew" });
    const issue = (flux: Flux) => flux.keys.create().forOrg(org.id).withScopes(["read:events"]);

    // Every boundary below is an absolute instant in the database; `at` is where it is stored.
    const explicit = await issue(fast)
      .expiresAt(new Date(t0 + 10 * MIN))
      .issue();
    const relative = await issue(fast).expiresInDays(1).issue();
    const rotatedOnSlow = await issue(slow).issue();
    const graceOnSlow = await slow.keys.rotate(rotatedOnSlow.key.id, { gracePeriod: "10m" });
    const rotatedOnFast = await issue(fast).issue();
    const noGraceOnFast = await fast.keys.rotate(rotatedOnFast.key.id, { gracePeriod: 0 });
    await fast.orgs.setEntitlement(org.id, "beta", { granted: true, expiresAt: new Date(t0 + 20 * MIN) });
    const lifetime = (k: { createdAt: Date; expiresAt: Date | null }) =>
      (k.expiresAt?.getTime() ?? 0) - k.createdAt.getTime();
    const relativeInfo = await slow.keys.get(relative.key.id);
    // Issued on FAST, rotated on SLOW: the successor's lifetime is the predecessor's.
    const predecessor = await issue(fast).expiresInDays(30).issue();
    const successor = await slow.keys.rotate(predecessor.key.id, { gracePeriod: "1h" });
    const eternal = await issue(slow).issue();

    const cases = [
      { name: "explicit expiry", secret: explicit.secret, boundary: t0 + 10 * MIN },
      { name: "expiresInDays on FAST", secret: relative.secret, boundary: t0 + SKEW + DAY },
      { name: "10m grace, rotated on SLOW", secret: rotatedOnSlow.secret, boundary: t0 - SKEW + 10 * MIN },
      { name: "no grace, rotated on FAST", secret: rotatedOnFast.secret, boundary: t0 + SKEW },
    ];
    // Stored where the writer's clock put it.
    expect(relativeInfo.expiresAt?.getTime()).toBe(t0 + SKEW + DAY);
    expect(graceOnSlow.previous.sunsetAt?.getTime()).toBe(t0 - SKEW + 10 * MIN);
    expect(noGraceOnFast.previous.sunsetAt?.getTime()).toBe(t0 + SKEW);
    // Rotation on the other instance keeps the lifetime: no accumulated skew.
    expect(lifetime(successor.key)).toBe(lifetime(predecessor.key));
    expect(lifetime(predecessor.key)).toBe(30 * DAY);
    const entitlementBoundary = t0 + 20 * MIN;

    const boundaries = [...cases.map((c) => c.boundary), entitlementBoundary];
    const probes = [
      ...new Set(
        boundaries.flatMap((b) => [
          b - SKEW - 1_000,
          b - SKEW,
          b - 1,
          b,
          b + SKEW - 1,
          b + SKEW,
          b + SKEW + 1_000,
        ]),
      ),
    ]
      .filter((t) => t >= t0)
      .sort((a, b) => a - b);

    const disagreements: Array<{ what: string; at: number; boundary: number }> = [];
    for (const at of probes) {
      trueNow = at;
      for (const c of cases) {
        const [onFast, onSlow] = await Promise.all([fast.keys.check(c.secret), slow.keys.check(c.secret)]);
        // Each instance: valid exactly while its own clock is before the stored boundary.
        expect({ case: c.name, at: at - t0, fast: onFast.valid }).toEqual({
          case: c.name,
          at: at - t0,
          fast: at + SKEW < c.boundary,
        });
        expect({ case: c.name, at: at - t0, slow: onSlow.valid }).toEqual({
          case: c.name,
          at: at - t0,
          slow: at - SKEW < c.boundary,
        });
        for (const result of [onFast, onSlow]) {
          if (!result.valid) expect(result.error.code).toBe("key_expired");
        }
        if (onFast.valid && onSlow.valid && onFast.context.rotation !== null) {
          expect(onSlow.context.rotation?.sunsetAt.getTime()).toBe(
            onFast.context.rotation.sunsetAt.getTime(),
          );
        }
        if (onFast.valid !== onSlow.valid) disagreements.push({ what: c.name, at, boundary: c.boundary });
      }
      // Entitlement override expiry, through a key of the same org that never expires.
      const [ctxFast, ctxSlow] = await Promise.all([
        fast.keys.verify(eternal.secret),
        slow.keys.verify(eternal.secret),
      ]);
      const betaFast = fast.entitlements.checkForKey(ctxFast, "beta");
      const betaSlow = slow.entitlements.checkForKey(ctxSlow, "beta");
      expect([at - t0, betaFast, betaSlow]).toEqual([
        at - t0,
        at + SKEW < entitlementBoundary,
        at - SKEW < entitlementBoundary,
      ]);
      if (betaFast !== betaSlow)
        disagreements.push({ what: "entitlement", at, boundary: entitlementBoundary });
    }
    // They do disagree, but only within the skew of each boundary.
    expect(disagreements.length).toBeGreaterThan(0);
    expect(disagreements.filter((d) => d.at < d.boundary - SKEW || d.at >= d.boundary + SKEW)).toEqual([]);
  });
});
