/**
 * The key lifecycle, written once and run on embedded PGlite and on PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { STORES } from "../../../test/support/services.js";
import { createFlux, type Flux, FluxError } from "../src/index.js";

/** A clock the test moves by hand. */
function manualClock(start = Date.parse("2026-06-01T12:00:00Z")) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

async function expectCode(promise: Promise<unknown>, code: string) {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FluxError);
  expect((error as FluxError).code).toBe(code);
  return error as FluxError;
}

describe.each(STORES)("key lifecycle on $name", (store) => {
  const clock = manualClock();
  let flux: Flux;
  let teardown: () => Promise<void>;

  beforeAll(async () => {
    if (!store.available) return;
    const target = await store.setup();
    teardown = target.teardown;
    flux = await createFlux(target.options({ clock: clock.now }));
    await flux.plans.upsert({
      id: "pro",
      name: "Pro",
      scopes: ["read:events", "write:events", "write:configs", "admin:*"],
      entitlements: ["bulk_export", "sso"],
    });
    await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
  });

  afterAll(async () => {
    await flux?.close();
    await teardown?.();
  });

  it.skipIf(!store.available)("issues a key whose secret exists only in the return value", async () => {
    const { key, secret } = await flux.keys
      .create()
      .forOrg("acme")
      .named("CI deploys")
      .withScopes(["write:configs", "read:events"])
      .withMetadata({ team: "infra" })
      .expiresInDays(90)
      .createdBy({ type: "admin", id: "ops@acme.test" })
      .issue();
    expect(secret.startsWith("flux_live_")).toBe(true);
    expect(key).toMatchObject({
      orgId: "acme",
      name: "CI deploys",
      scopes: ["read:events", "write:configs"],
      status: "active",
      environment: "live",
      createdBy: { type: "admin", id: "ops@acme.test" },
      start: secret.slice(0, 14),
      last4: secret.slice(-4),
    });
    expect(key.expiresAt?.getTime()).toBe(clock.now() + 90 * 86_400_000);
    expect(JSON.stringify(key)).not.toContain(secret.slice(14, -4));
    expect(JSON.stringify(await flux.keys.get(key.id))).not.toContain(secret.slice(14, -4));

    // The row holds a digest, not the secret or any reversible form of it.
    const rows = await flux.internals.database.prisma.$queryRaw<Array<Record<string, unknown>>>`
      SELECT * FROM "flux_api_keys" WHERE "id" = ${key.id}`;
    const stored = JSON.stringify(rows);
    expect(stored).not.toContain(secret.slice(14, -4));
    expect(stored).not.toContain(Buffer.from(secret).toString("base64").slice(0, 30));

    const context = await flux.keys.verify(secret);
    expect(context).toMatchObject({
      keyId: key.id,
      name: "CI deploys",
      orgId: "acme",
      plan: { id: "pro", name: "Pro" },
      scopes: ["read:events", "write:configs"],
      entitlements: ["bulk_export", "sso"],
      environment: "live",
      metadata: { team: "infra" },
      rotation: null,
    });
    expect(flux.entitlements.checkForKey(context, "bulk_export")).toBe(true);
    expect(flux.entitlements.checkForKey(context, "audit_export")).toBe(false);

    const audit = await flux.audit.list({ keyId: key.id });
    expect(audit.items.map((event) => event.action)).toEqual(["key.created"]);
    expect(audit.items[0]?.actor).toEqual({ type: "admin", id: "ops@acme.test" });
  });

  it.skipIf(!store.available)("issues test keys with their own prefix", async () => {
    const { secret, key } = await flux.keys.create().forOrg("acme").environment("test").issue();
    expect(secret.startsWith("flux_test_")).toBe(true);
    expect((await flux.keys.verify(secret)).environment).toBe("test");
    expect(key.environment).toBe("test");
  });

  it.skipIf(!store.available)("refuses scopes outside the plan and bad input, changing nothing", async () => {
    const before = (await flux.keys.list({ orgId: "acme", limit: 500 })).items.length;
    const error = await expectCode(
      flux.keys.create().forOrg("acme").withScopes(["read:events", "billing:write"]).issue(),
      "scope_not_allowed",
    );
    expect(error.status).toBe(422);
    expect(error.toProblem()).toMatchObject({
      code: "scope_not_allowed",
      status: 422,
      scopes: ["billing:write"],
    });
    await expectCode(flux.keys.create().issue(), "invalid_request");
    await expectCode(flux.keys.create().forOrg("nope").issue(), "not_found");
    await expectCode(flux.keys.create().forOrg("acme").withScopes(["bad scope"]).issue(), "invalid_request");
    await expectCode(flux.keys.create().forOrg("acme").expiresInDays(-1).issue(), "invalid_request");
    await expectCode(
      flux.keys
        .create()
        .forOrg("acme")
        .expiresAt(new Date(clock.now() - 1))
        .issue(),
      "invalid_request",
    );
    expect((await flux.keys.list({ orgId: "acme", limit: 500 })).items.length).toBe(before);
  });

  it.skipIf(!store.available)("denies missing, malformed, unknown, revoked and expired keys", async () => {
    expect(await flux.keys.check(undefined)).toMatchObject({ valid: false, error: { code: "key_missing" } });
    expect(await flux.keys.check("flux_live_nope")).toMatchObject({
      valid: false,
      error: { code: "key_malformed" },
    });
    const unknown = await flux.keys.create().forOrg("acme").issue();
    const forged = `${unknown.secret.slice(0, 20)}${"A".repeat(unknown.secret.length - 20)}`;
    expect((await flux.keys.check(forged)).valid).toBe(false);

    const { key, secret } = await flux.keys.create().forOrg("acme").expiresInDays(1).issue();
    await flux.keys.verify(secret);
    clock.advance(86_400_000);
    const expired = await expectCode(flux.keys.verify(secret), "key_expired");
    expect(expired.status).toBe(401);
    expect((await flux.keys.get(key.id)).status).toBe("expired");
    clock.advance(-86_400_000);

    await flux.keys.revoke(key.id, {
      reason: "leaked",
      actor: { type: "user", id: "u1", ip: "203.0.113.9" },
    });
    const revoked = await expectCode(flux.keys.verify(secret), "key_revoked");
    expect(revoked.message).not.toContain(secret);
    const again = await flux.keys.revoke(key.id, { reason: "twice" });
    expect(again.revokedReason).toBe("leaked");
    const events = (await flux.audit.list({ keyId: key.id })).items;
    expect(events.map((e) => e.action)).toEqual(["key.revoked", "key.created"]);
    expect(events[0]).toMatchObject({
      actor: { type: "user", id: "u1", ip: "203.0.113.9" },
      details: { reason: "leaked" },
    });
  });

  it.skipIf(!store.available)("rejects garbage without touching the database", async () => {
    // Every statement sent on the instance's pool (the key read goes straight to it).
    const driver = flux.internals.database.driver;
    const statements: string[] = [];
    const withSession = driver.withSession.bind(driver);
    const spy = vi.spyOn(driver, "withSession").mockImplementation((fn) =>
      withSession((session) =>
        fn({
          ...session,
          query: (sql, params) => {
            statements.push(sql);
            return session.query(sql, params);
          },
        }),
      ),
    );
    // Only the key lookup by digest counts (background timers query other tables).
    const keyReads = () => statements.filter((sql) => sql.includes('k."digest"')).length;
    try {
      const garbage = [
        "",
        "Bearer something",
        "flux_live_",
        `flux_live_${"a".repeat(49)}`,
        `flux_prod_${"a".repeat(49)}`,
        "x".repeat(1_000_000),
        "flux_live_\u0000\r\n",
      ];
      for (const value of garbage) {
        const result = await flux.keys.check(value);
        expect(result.valid).toBe(false);
      }
      expect(keyReads()).toBe(0);
      // And a real-looking unknown key reaches it once, then is remembered as unknown.
      const { secret } = await flux.keys.create().forOrg("acme").issue();
      const other = await flux.keys.create().forOrg("acme").issue();
      await flux.keys.revoke(other.key.id);
      statements.length = 0;
      await flux.keys.check(secret);
      await flux.keys.check(secret);
      expect(keyReads()).toBe(1);
    } finally {
      spy.mockRestore();
    }
  });

  it.skipIf(!store.available)("updates name, scopes and metadata with audit events", async () => {
    const { key, secret } = await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue();
    await flux.keys.verify(secret);
    const updated = await flux.keys.update(
      key.id,
      { name: "renamed", scopes: ["read:events", "write:events"], metadata: { v: 2 } },
      { actor: { type: "admin", id: "root" } },
    );
    expect(updated).toMatchObject({
      name: "renamed",
      scopes: ["read:events", "write:events"],
      metadata: { v: 2 },
    });
    // The cached context is dropped at once.
    expect((await flux.keys.verify(secret)).scopes).toEqual(["read:events", "write:events"]);
    await expectCode(flux.keys.update(key.id, { scopes: ["billing:write"] }), "scope_not_allowed");
    await expectCode(flux.keys.update(key.id, { name: "" }), "invalid_request");
    await expectCode(flux.keys.update("key_missing", { name: "x" }), "not_found");
    const actions = (await flux.audit.list({ keyId: key.id })).items.map((e) => e.action);
    expect(actions).toEqual(["key.scopes_changed", "key.updated", "key.created"]);
    const scopesEvent = (await flux.audit.list({ keyId: key.id })).items[0];
    expect(scopesEvent?.details).toEqual({ from: ["read:events"], to: ["read:events", "write:events"] });
  });

  it.skipIf(!store.available)("rotates with a grace period, then the old key expires", async () => {
    const { key, secret } = await flux.keys
      .create()
      .forOrg("acme")
      .withScopes(["read:events"])
      .withMetadata({ app: "billing" })
      .withRateLimits([{ name: "burst", limit: 10, window: "1s" }])
      .issue();
    const rotated = await flux.keys.rotate(key.id, {
      gracePeriod: "24h",
      actor: { type: "admin", id: "root" },
    });
    expect(rotated.secret).not.toBe(secret);
    expect(rotated.key).toMatchObject({
      orgId: "acme",
      scopes: ["read:events"],
      metadata: { app: "billing" },
      rateLimits: [{ name: "burst", limit: 10, window: "1s" }],
      status: "active",
    });
    expect(rotated.previous).toMatchObject({ id: key.id, status: "grace", replacedById: rotated.key.id });

    const old = await flux.keys.verify(secret);
    expect(old.rotation).toEqual({
      replacedBy: rotated.key.id,
      sunsetAt: new Date(clock.now() + 86_400_000),
    });
    expect((await flux.keys.verify(rotated.secret)).rotation).toBeNull();
    expect((await flux.keys.list({ orgId: "acme", status: "grace" })).items.map((k) => k.id)).toContain(
      key.id,
    );

    clock.advance(86_400_000);
    await expectCode(flux.keys.verify(secret), "key_expired");
    expect((await flux.keys.verify(rotated.secret)).keyId).toBe(rotated.key.id);
    clock.advance(-86_400_000);

    await expectCode(flux.keys.rotate(key.id, { gracePeriod: "1h" }), "key_conflict");
    await expectCode(
      flux.keys.rotate(rotated.key.id, { gracePeriod: "forever" as never }),
      "invalid_request",
    );
    const actions = (await flux.audit.list({ orgId: "acme", limit: 5 })).items.map((e) => [
      e.action,
      e.keyId,
    ]);
    expect(actions).toContainEqual(["key.rotated", key.id]);
    expect(actions).toContainEqual(["key.created", rotated.key.id]);
  });

  it.skipIf(!store.available)("rotation with no grace expires the old key at once", async () => {
    const { key, secret } = await flux.keys.create().forOrg("acme").issue();
    const rotated = await flux.keys.rotate(key.id, { gracePeriod: 0 });
    await expectCode(flux.keys.verify(secret), "key_expired");
    await flux.keys.verify(rotated.secret);
  });

  it.skipIf(!store.available)(
    "concurrent rotations leave one successor; the losers get key_conflict",
    async () => {
      const { key } = await flux.keys.create().forOrg("acme").issue();
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, () => flux.keys.rotate(key.id, { gracePeriod: "1h" })),
      );
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r) => r.status === "rejected");
      expect(won).toHaveLength(1);
      for (const r of lost)
        expect((r as PromiseRejectedResult).reason).toMatchObject({ code: "key_conflict" });
      const successors = await flux.internals.database.prisma.apiKey.count({
        where: { replaces: { id: key.id } },
      });
      expect(successors).toBe(1);
    },
  );

  it.skipIf(!store.available)(
    "revoking a rotated key ends its lineage: predecessors in grace are revoked too",
    async () => {
      const first = await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue();
      const second = await flux.keys.rotate(first.key.id, { gracePeriod: "1h" });
      const third = await flux.keys.rotate(second.key.id, { gracePeriod: "1h" });
      for (const secret of [first.secret, second.secret, third.secret]) {
        expect((await flux.keys.check(secret)).valid).toBe(true);
      }
      const revoked = await flux.keys.revoke(third.key.id, {
        reason: "leaked",
        actor: { type: "admin", id: "ops" },
      });
      expect(revoked.status).toBe("revoked");
      expect(revoked.revokedWith).toEqual([second.key.id, first.key.id]);
      for (const secret of [first.secret, second.secret, third.secret]) {
        expect(await flux.keys.check(secret)).toMatchObject({ valid: false, error: { code: "key_revoked" } });
      }
      for (const id of [first.key.id, second.key.id]) {
        const events = (await flux.audit.list({ keyId: id })).items.filter((e) => e.action === "key.revoked");
        expect(events).toHaveLength(1);
        expect(events[0]).toMatchObject({ details: { reason: "leaked", lineageOf: third.key.id } });
        expect(events[0]?.actor).toMatchObject({ type: "admin", id: "ops" });
      }
      // Again: nothing more to revoke.
      expect((await flux.keys.revoke(third.key.id)).revokedWith).toEqual([]);
    },
  );

  it.skipIf(!store.available)("revoke with { lineage: false } revokes this key only", async () => {
    const first = await flux.keys.create().forOrg("acme").issue();
    const second = await flux.keys.rotate(first.key.id, { gracePeriod: "1h" });
    const revoked = await flux.keys.revoke(second.key.id, { lineage: false });
    expect(revoked.revokedWith).toEqual([]);
    expect(await flux.keys.check(second.secret)).toMatchObject({
      valid: false,
      error: { code: "key_revoked" },
    });
    expect((await flux.keys.check(first.secret)).valid).toBe(true);
    await expectCode(flux.keys.revoke(first.key.id, { lineage: "yes" as never }), "invalid_request");
  });

  it.skipIf(!store.available)("concurrent rotate and revoke end in one consistent state", async () => {
    const { key } = await flux.keys.create().forOrg("acme").issue();
    const [rotation, revocation] = await Promise.allSettled([
      flux.keys.rotate(key.id, { gracePeriod: "1h" }),
      flux.keys.revoke(key.id, { reason: "race" }),
    ]);
    const final = await flux.keys.get(key.id);
    for (const r of [rotation, revocation]) {
      if (r.status === "rejected") expect(r.reason).toMatchObject({ code: "key_conflict" });
    }
    expect(rotation.status === "fulfilled" || revocation.status === "fulfilled").toBe(true);
    if (rotation.status === "rejected") expect(final.replacedById).toBeNull();
    if (revocation.status === "rejected") expect(final.revokedAt).toBeNull();
    const successors = await flux.internals.database.prisma.apiKey.count({
      where: { replaces: { id: key.id } },
    });
    expect(successors).toBe(rotation.status === "fulfilled" ? 1 : 0);
  });

  it.skipIf(!store.available)("lists an org's keys newest first, by page and by status", async () => {
    await flux.orgs.create({ id: "paging", name: "Paging", planId: "pro" });
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      clock.advance(1_000);
      ids.push((await flux.keys.create().forOrg("paging").named(`k${i}`).issue()).key.id);
    }
    await flux.keys.revoke(ids[3] as string);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<Flux["keys"]["list"]>> = await flux.keys.list({
        orgId: "paging",
        limit: 3,
        cursor,
      });
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items.map((k) => k.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    expect((await flux.keys.list({ orgId: "paging", status: "revoked" })).items.map((k) => k.id)).toEqual([
      ids[3],
    ]);
    expect((await flux.keys.list({ orgId: "paging", status: "active" })).items).toHaveLength(6);
    expect((await flux.keys.list({ orgId: "acme" })).items.every((k) => k.orgId === "acme")).toBe(true);
    await expectCode(flux.keys.list({ orgId: "paging", cursor: "garbage!" }), "invalid_request");
  });

  it.skipIf(!store.available)(
    "applies plan entitlements with org overrides; expired overrides are ignored",
    async () => {
      await flux.orgs.create({ id: "ent", name: "Ent", planId: "pro" });
      const { secret } = await flux.keys.create().forOrg("ent").issue();
      expect((await flux.keys.verify(secret)).entitlements).toEqual(["bulk_export", "sso"]);

      await flux.orgs.setEntitlement("ent", "sso", { granted: false });
      await flux.orgs.setEntitlement("ent", "audit_export", {
        granted: true,
        expiresAt: new Date(clock.now() + 3_600_000),
      });
      const context = await flux.keys.verify(secret);
      expect(context.entitlements).toEqual(["audit_export", "bulk_export"]);
      expect(flux.entitlements.checkForKey(context, "sso")).toBe(false);

      clock.advance(3_600_000);
      expect((await flux.keys.verify(secret)).entitlements).toEqual(["bulk_export"]);
      clock.advance(-3_600_000);

      await expectCode(flux.orgs.setEntitlement("nope", "sso", { granted: true }), "not_found");
    },
  );

  it.skipIf(!store.available)("manages plans and orgs; a plan change reaches cached keys", async () => {
    await flux.plans.upsert({ id: "free", name: "Free", entitlements: [] });
    const org = await flux.orgs.create({ name: "Generated id", planId: "free" });
    expect(org.id).toMatch(/^org_/);
    const { secret } = await flux.keys.create().forOrg(org.id).issue();
    expect((await flux.keys.verify(secret)).plan).toEqual({ id: "free", name: "Free" });

    await flux.orgs.update(org.id, { planId: "pro" });
    expect((await flux.keys.verify(secret)).plan).toEqual({ id: "pro", name: "Pro" });
    await flux.plans.upsert({
      id: "pro",
      name: "Pro 2",
      scopes: ["read:events", "write:events", "write:configs", "admin:*"],
      entitlements: ["bulk_export"],
    });
    expect((await flux.keys.verify(secret)).entitlements).toEqual(["bulk_export"]);
    expect((await flux.keys.verify(secret)).plan?.name).toBe("Pro 2");

    expect((await flux.orgs.get(org.id)).planId).toBe("pro");
    expect((await flux.plans.get("free")).name).toBe("Free");
    await expectCode(flux.orgs.get("missing"), "not_found");
    // Ids that cannot exist (NUL, which PostgreSQL refuses in text; noise) are unknown, not 503.
    for (const impossible of ["a\u0000b", "x".repeat(10_000), "bad id!"]) {
      await expectCode(flux.orgs.get(impossible), "not_found");
      await expectCode(flux.orgs.update(impossible, { name: "x" }), "not_found");
      await expectCode(flux.orgs.setEntitlement(impossible, "sso", { granted: true }), "not_found");
      await expectCode(flux.plans.get(impossible), "not_found");
      expect(await flux.orgs.list({ planId: impossible })).toEqual({ items: [], nextCursor: null });
      expect(await flux.orgs.list({ cursor: impossible })).toEqual({ items: [], nextCursor: null });
    }
    await expectCode(flux.orgs.create({ id: org.id, name: "dup" }), "key_conflict");
    await expectCode(flux.orgs.update(org.id, { planId: "missing-plan" }), "not_found");
    await expectCode(flux.plans.upsert({ id: "bad id!", name: "x" }), "invalid_request");
    const page = await flux.orgs.list({ limit: 2 });
    expect(page.items).toHaveLength(2);
    expect(page.nextCursor).not.toBeNull();
    const orgEvents = (await flux.audit.list({ orgId: org.id })).items.map((e) => e.action);
    expect(orgEvents).toContain("org.plan_changed");
  });
});
