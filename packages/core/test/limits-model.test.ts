/**
 * Rate limits and quotas without Redis (windows in memory, quotas in the database), written once and
 * run on embedded PGlite and on PostgreSQL: resolution from the plan, overrides, pooled windows,
 * live plan changes, cost, read-only checks, quotas by UTC calendar period, and that denials and
 * failed authentications never consume a quota.
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DATABASE_URL,
  freshSchema,
  hasPostgres,
  STORES,
  uniqueName,
} from "../../../test/support/services.js";
import {
  createFlux,
  type Flux,
  FluxConfigError,
  FluxError,
  type KeyContext,
  type PlanInput,
} from "../src/index.js";

function manualClock(start: number) {
  let now = start;
  return {
    now: () => now,
    set: (at: number) => {
      now = at;
    },
  };
}

async function admitted(flux: Flux, secret: string, cost?: number): Promise<KeyContext> {
  const result = await flux.keys.check(secret, cost === undefined ? undefined : { cost });
  if (!result.valid) throw new Error(`expected admission, got ${result.error.code}`);
  return result.context;
}

async function refused(flux: Flux, secret: string, cost?: number): Promise<FluxError> {
  const result = await flux.keys.check(secret, cost === undefined ? undefined : { cost });
  if (result.valid) throw new Error("expected a denial");
  return result.error;
}

describe.each(STORES)("limits and quotas on $name (no Redis)", (store) => {
  const clock = manualClock(Date.parse("2026-06-01T12:00:00Z"));
  let flux: Flux;
  let teardown: () => Promise<void>;

  /** A fresh plan + org, so tests do not share counters. */
  async function org(plan: Omit<PlanInput, "id" | "name">) {
    const planId = uniqueName("plan");
    const orgId = uniqueName("org");
    await flux.plans.upsert({ id: planId, name: planId, ...plan });
    await flux.orgs.create({ id: orgId, name: orgId, planId });
    return { planId, orgId };
  }

  beforeAll(async () => {
    if (!store.available) return;
    const target = await store.setup();
    teardown = target.teardown;
    flux = await createFlux(target.options({ clock: clock.now }));
  });

  afterAll(async () => {
    await flux?.close();
    await teardown?.();
  });

  it.skipIf(!store.available)("keys without limits get no rate limit state", async () => {
    const { orgId } = await org({});
    const { secret } = await flux.keys.create().forOrg(orgId).issue();
    expect((await admitted(flux, secret)).rateLimit).toBeNull();
  });

  it.skipIf(!store.available)("applies every window of the plan and names the one that refuses", async () => {
    const { orgId } = await org({
      rateLimits: [
        { name: "burst", limit: 3, window: "1m" },
        { name: "sustained", limit: 100, window: "1h" },
      ],
    });
    const { secret } = await flux.keys.create().forOrg(orgId).issue();
    const first = await admitted(flux, secret);
    expect(first.rateLimit).toEqual({
      windows: [
        { name: "burst", limit: 3, remaining: 2, window: 60, resetIn: 60, per: "key" },
        { name: "sustained", limit: 100, remaining: 99, window: 3600, resetIn: 3600, per: "key" },
      ],
      quota: null,
    });
    await admitted(flux, secret);
    await admitted(flux, secret);
    const denial = await refused(flux, secret);
    expect(denial.code).toBe("rate_limited");
    expect(denial.status).toBe(429);
    expect(denial.extensions.window).toBe("burst");
    expect(denial.extensions.retryAfter).toBeGreaterThan(0);
    expect(denial.extensions.retryAfter).toBeLessThanOrEqual(60);
    // The refused request gave back what it took from `sustained`.
    const state = denial.extensions.rateLimit as { windows: Array<{ name: string; remaining: number }> };
    expect(state.windows.find((w) => w.name === "sustained")?.remaining).toBe(97);
    // verify() throws the same, with the window and retry-after for the problem document.
    const thrown = (await flux.keys.verify(secret).then(
      () => null,
      (e: unknown) => e,
    )) as FluxError;
    expect(thrown).toBeInstanceOf(FluxError);
    expect(thrown.toProblem()).toMatchObject({ code: "rate_limited", status: 429, window: "burst" });
    expect(JSON.stringify(thrown.toProblem())).not.toContain(secret);
  });

  it.skipIf(!store.available)(
    "a key's own windows replace the plan's; pooled org windows still apply",
    async () => {
      const { orgId } = await org({
        rateLimits: [
          { name: "burst", limit: 100, window: "1m" },
          { name: "org-pool", limit: 4, window: "1h", per: "org" },
        ],
      });
      const own = await flux.keys
        .create()
        .forOrg(orgId)
        .withRateLimits([{ name: "tight", limit: 2, window: "1m" }])
        .issue();
      const other = await flux.keys.create().forOrg(orgId).issue();
      const context = await admitted(flux, own.secret);
      expect(context.rateLimit?.windows.map((w) => `${w.name}:${w.limit}:${w.per}`)).toEqual([
        "tight:2:key",
        "org-pool:4:org",
      ]);
      // The pool is shared by every key of the org.
      await admitted(flux, other.secret);
      await admitted(flux, other.secret);
      await admitted(flux, own.secret);
      const pooled = await refused(flux, other.secret);
      expect(pooled.extensions.window).toBe("org-pool");
      expect(pooled.code).toBe("rate_limited");
    },
  );

  it.skipIf(!store.available)("a plan change reaches every key of the org on its next request", async () => {
    const { planId, orgId } = await org({ rateLimits: [{ name: "rpm", limit: 2, window: "1m" }] });
    const { secret } = await flux.keys.create().forOrg(orgId).issue();
    await admitted(flux, secret);
    await admitted(flux, secret);
    expect((await refused(flux, secret)).code).toBe("rate_limited");
    await flux.plans.upsert({
      id: planId,
      name: planId,
      rateLimits: [{ name: "rpm", limit: 50, window: "1m" }],
    });
    const context = await admitted(flux, secret);
    expect(context.rateLimit?.windows[0]?.limit).toBe(50);
    // Switching the org to a plan without limits lifts them, again without touching the key.
    const free = uniqueName("plan");
    await flux.plans.upsert({ id: free, name: free });
    await flux.orgs.update(orgId, { planId: free });
    expect((await admitted(flux, secret)).rateLimit).toBeNull();
  });

  it.skipIf(!store.available)("cost consumes several units; cost 0 reads without consuming", async () => {
    const { orgId } = await org({ rateLimits: [{ name: "units", limit: 10, window: "1h" }] });
    const { secret } = await flux.keys.create().forOrg(orgId).issue();
    // Read before any use: the window is full.
    expect((await admitted(flux, secret, 0)).rateLimit?.windows[0]?.remaining).toBe(10);
    expect((await admitted(flux, secret, 4)).rateLimit?.windows[0]?.remaining).toBe(6);
    expect((await admitted(flux, secret, 0)).rateLimit?.windows[0]?.remaining).toBe(6);
    expect((await admitted(flux, secret, 6)).rateLimit?.windows[0]?.remaining).toBe(0);
    // Exhausted: reading still answers (valid, remaining 0); consuming is refused.
    expect((await admitted(flux, secret, 0)).rateLimit?.windows[0]?.remaining).toBe(0);
    expect((await refused(flux, secret)).code).toBe("rate_limited");
    expect((await refused(flux, secret, -1)).code).toBe("invalid_request");
  });

  it.skipIf(!store.available)("a total quota is a credit balance that never refills", async () => {
    const { orgId } = await org({});
    const { secret } = await flux.keys
      .create()
      .forOrg(orgId)
      .withQuota({ limit: 3, period: "total" })
      .issue();
    for (const remaining of [2, 1, 0]) {
      expect((await admitted(flux, secret)).rateLimit?.quota).toEqual({
        limit: 3,
        remaining,
        period: "total",
        resetIn: null,
      });
    }
    const denial = await refused(flux, secret);
    expect(denial.code).toBe("quota_exceeded");
    expect(denial.extensions).toMatchObject({ window: "quota", retryAfter: null });
    clock.set(clock.now() + 400 * 86_400_000);
    expect((await refused(flux, secret)).code).toBe("quota_exceeded");
    clock.set(Date.parse("2026-06-01T12:00:00Z"));
  });

  it.skipIf(!store.available)(
    "rotation does not refill a quota: it counts per rotation lineage",
    async () => {
      const { orgId } = await org({});
      const { key, secret } = await flux.keys
        .create()
        .forOrg(orgId)
        .withQuota({ limit: 3, period: "total" })
        .issue();
      await admitted(flux, secret);
      await admitted(flux, secret);
      const first = await flux.keys.rotate(key.id, { gracePeriod: "1h" });
      expect((await admitted(flux, first.secret)).rateLimit?.quota?.remaining).toBe(0);
      expect((await refused(flux, first.secret)).code).toBe("quota_exceeded");
      // The old key in its grace shares the same balance, and so does a second rotation.
      expect((await refused(flux, secret)).code).toBe("quota_exceeded");
      const second = await flux.keys.rotate(first.key.id, { gracePeriod: 0 });
      expect((await refused(flux, second.secret)).code).toBe("quota_exceeded");
    },
  );

  it.skipIf(!store.available)("daily and monthly quotas follow UTC calendar periods", async () => {
    const { orgId } = await org({ quota: { limit: 2, period: "day" } });
    const { secret } = await flux.keys.create().forOrg(orgId).issue();
    clock.set(Date.parse("2026-06-01T23:59:00Z"));
    expect((await admitted(flux, secret)).rateLimit?.quota).toMatchObject({ remaining: 1, resetIn: 60 });
    await admitted(flux, secret);
    const denial = await refused(flux, secret);
    expect(denial.code).toBe("quota_exceeded");
    expect(denial.extensions.retryAfter).toBe(60);
    clock.set(Date.parse("2026-06-02T00:00:01Z"));
    expect((await admitted(flux, secret)).rateLimit?.quota).toMatchObject({ remaining: 1, period: "day" });

    const monthly = await flux.keys.create().forOrg(orgId).withQuota({ limit: 1, period: "month" }).issue();
    clock.set(Date.parse("2026-06-30T23:00:00Z"));
    expect((await admitted(flux, monthly.secret)).rateLimit?.quota).toMatchObject({ resetIn: 3600 });
    expect((await refused(flux, monthly.secret)).code).toBe("quota_exceeded");
    clock.set(Date.parse("2026-07-01T00:00:00Z"));
    await admitted(flux, monthly.secret);
    clock.set(Date.parse("2026-06-01T12:00:00Z"));
  });

  it.skipIf(!store.available)(
    "denied requests and failed authentications never consume the quota",
    async () => {
      const { orgId } = await org({
        rateLimits: [{ name: "rpm", limit: 1, window: "1m" }],
        quota: { limit: 5, period: "total" },
      });
      const { key, secret } = await flux.keys.create().forOrg(orgId).issue();
      expect((await admitted(flux, secret)).rateLimit?.quota?.remaining).toBe(4);
      for (let i = 0; i < 5; i++) expect((await refused(flux, secret)).code).toBe("rate_limited");
      expect((await admitted(flux, secret, 0)).rateLimit?.quota?.remaining).toBe(4);
      // A revoked key fails authentication and leaves its counters alone.
      const prisma = flux.internals.database.prisma;
      const before = await prisma.limitCounter.findMany({ orderBy: { key: "asc" } });
      await flux.keys.revoke(key.id);
      expect((await refused(flux, secret)).code).toBe("key_revoked");
      expect(await prisma.limitCounter.findMany({ orderBy: { key: "asc" } })).toEqual(before);
    },
  );

  it.skipIf(!store.available)("a quota denial gives back what the windows took", async () => {
    const { orgId } = await org({
      rateLimits: [{ name: "rpm", limit: 10, window: "1m" }],
      quota: { limit: 1, period: "total" },
    });
    const { secret } = await flux.keys.create().forOrg(orgId).issue();
    await admitted(flux, secret);
    const denial = await refused(flux, secret);
    expect(denial.code).toBe("quota_exceeded");
    const state = denial.extensions.rateLimit as { windows: Array<{ remaining: number }> };
    expect(state.windows[0]?.remaining).toBe(9);
    expect((await admitted(flux, secret, 0)).rateLimit?.windows[0]?.remaining).toBe(9);
  });

  it.skipIf(!store.available)("concurrent first requests of a quota are all counted", async () => {
    const { orgId } = await org({ quota: { limit: 20, period: "day" } });
    const { secret } = await flux.keys.create().forOrg(orgId).issue();
    const results = await Promise.all(Array.from({ length: 30 }, () => flux.keys.check(secret)));
    expect(results.filter((r) => r.valid)).toHaveLength(20);
    expect(results.filter((r) => !r.valid && r.error.code === "quota_exceeded")).toHaveLength(10);
  });
});

describe("durable quotas", () => {
  it("survive a restart of an embedded PGlite kept in a folder", async () => {
    const dir = await mkdtemp(join(tmpdir(), "flux-quota-"));
    try {
      const first = await createFlux({ database: { pglite: dir }, redis: null });
      await first.plans.upsert({ id: "trial", name: "Trial", quota: { limit: 3, period: "total" } });
      await first.orgs.create({ id: "o", name: "O", planId: "trial" });
      const { secret } = await first.keys.create().forOrg("o").issue();
      await admitted(first, secret);
      await admitted(first, secret);
      await first.close();
      const second = await createFlux({ database: { pglite: dir }, redis: null });
      try {
        expect((await admitted(second, secret)).rateLimit?.quota?.remaining).toBe(0);
        expect((await refused(second, secret)).code).toBe("quota_exceeded");
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!hasPostgres)("survive a restart on PostgreSQL", async () => {
    const { schema, drop } = await freshSchema();
    const options = { database: { url: DATABASE_URL, schema, poolSize: 2 }, redis: null } as const;
    try {
      const first = await createFlux(options);
      await first.plans.upsert({ id: "trial", name: "Trial", quota: { limit: 3, period: "total" } });
      await first.orgs.create({ id: "o", name: "O", planId: "trial" });
      const { secret } = await first.keys.create().forOrg("o").issue();
      await admitted(first, secret);
      await admitted(first, secret);
      await first.close();
      const second = await createFlux(options);
      try {
        expect((await admitted(second, secret)).rateLimit?.quota?.remaining).toBe(0);
        expect((await refused(second, secret)).code).toBe("quota_exceeded");
      } finally {
        await second.close();
      }
    } finally {
      await drop();
    }
  });
});

describe("limits options", () => {
  it("reports unknown and invalid limit options", async () => {
    await expect(createFlux({ limits: { nope: true } as never })).rejects.toBeInstanceOf(FluxConfigError);
    await expect(createFlux({ limits: { preAuth: { limit: 0, window: "1m" } } })).rejects.toMatchObject({
      code: "invalid_option",
    });
    await expect(createFlux({ limits: { onStoreError: "open" as never } })).rejects.toMatchObject({
      code: "invalid_option",
    });
    await expect(createFlux({ trustProxy: ["not-an-ip"] })).rejects.toMatchObject({
      code: "invalid_option",
    });
  });
});
