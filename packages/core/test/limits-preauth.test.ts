/**
 * The pre-authentication limiter: failed authentications per client address, refused before any
 * database read past the limit, without locking out the key holder elsewhere; and the entitlement
 * queries with I/O.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFlux, type Flux } from "../src/index.js";
import { generateKey } from "../src/keys/format.js";

describe("pre-authentication limiter", () => {
  let flux: Flux;
  let secret: string;

  beforeAll(async () => {
    flux = await createFlux({
      database: { pglite: true },
      redis: null,
      limits: { preAuth: { limit: 3, window: "1m" } },
    });
    await flux.orgs.create({ id: "acme", name: "Acme" });
    ({ secret } = await flux.keys.create().forOrg("acme").issue());
  });

  afterAll(async () => {
    await flux?.close();
  });

  /** A well-formed key (right prefix and checksum) that no one issued: it reaches the database. */
  const stranger = () => generateKey("flux", "live").secret;

  it("refuses an address past the limit, and only that address", async () => {
    const attacker = "198.51.100.7";
    for (let i = 0; i < 3; i++) {
      const result = await flux.keys.check(stranger(), { clientAddress: attacker });
      expect(result.valid ? "valid" : result.error.code).toBe("key_invalid");
    }
    const blocked = await flux.keys.check(stranger(), { clientAddress: attacker });
    expect(blocked.valid).toBe(false);
    if (blocked.valid) return;
    expect(blocked.error.code).toBe("rate_limited");
    expect(blocked.error.extensions).toMatchObject({ window: "auth-failures" });
    expect(blocked.error.extensions.retryAfter).toBeGreaterThan(0);
    // Even a valid key is refused from that address until the window resets...
    const fromAttacker = await flux.keys.check(secret, { clientAddress: attacker });
    expect(fromAttacker.valid ? "valid" : fromAttacker.error.code).toBe("rate_limited");
    // ...while the key holder, elsewhere, is not locked out.
    const holder = await flux.keys.check(secret, { clientAddress: "203.0.113.20" });
    expect(holder.valid).toBe(true);
    // Without a client address the pre-auth limiter is not consulted at all.
    expect((await flux.keys.check(secret)).valid).toBe(true);
  });

  it("counts garbage and malformed keys, but not a missing key", async () => {
    const address = "192.0.2.44";
    for (let i = 0; i < 5; i++) {
      const missing = await flux.keys.check(undefined, { clientAddress: address });
      expect(missing.valid ? "valid" : missing.error.code).toBe("key_missing");
    }
    const codes: string[] = [];
    for (let i = 0; i < 4; i++) {
      const result = await flux.keys.check("flux_live_nonsense", { clientAddress: address });
      codes.push(result.valid ? "valid" : result.error.code);
    }
    expect(codes).toEqual(["key_malformed", "key_malformed", "key_malformed", "rate_limited"]);
  });

  it("groups IPv6 by /64 and IPv4-mapped IPv6 with IPv4", async () => {
    // Three failures are allowed; the fourth, from anywhere in the same /64, crosses the limit.
    for (const address of ["2001:db8:5:6::1", "2001:db8:5:6::2", "2001:db8:5:6:ffff::9", "2001:db8:5:6::3"]) {
      await flux.keys.check(stranger(), { clientAddress: address });
    }
    const sameSubnet = await flux.keys.check(secret, { clientAddress: "2001:db8:5:6::abcd" });
    expect(sameSubnet.valid ? "valid" : sameSubnet.error.code).toBe("rate_limited");
    expect((await flux.keys.check(secret, { clientAddress: "2001:db8:5:7::1" })).valid).toBe(true);

    for (let i = 0; i < 4; i++) await flux.keys.check(stranger(), { clientAddress: "::ffff:192.0.2.99" });
    const mapped = await flux.keys.check(secret, { clientAddress: "192.0.2.99" });
    expect(mapped.valid ? "valid" : mapped.error.code).toBe("rate_limited");
  });

  it("refuses before any database read once an address is past the limit", async () => {
    const isolated = await createFlux({
      database: { pglite: true },
      redis: null,
      limits: { preAuth: { limit: 2, window: "1m" } },
    });
    try {
      for (let i = 0; i < 3; i++) await isolated.keys.check(stranger(), { clientAddress: "198.51.100.200" });
      // With the database gone, anything that reads it answers store_unavailable.
      await isolated.internals.database.close();
      const unknownKey = stranger();
      const blocked = await isolated.keys.check(unknownKey, { clientAddress: "198.51.100.200" });
      expect(blocked.valid ? "valid" : blocked.error.code).toBe("rate_limited");
      const elsewhere = await isolated.keys.check(unknownKey, { clientAddress: "198.51.100.201" });
      expect(elsewhere.valid ? "valid" : elsewhere.error.code).toBe("store_unavailable");
    } finally {
      await isolated.close().catch(() => {});
    }
  });

  it("tracks at most maxAddresses addresses (default 50000), the least recently failing forgotten first", async () => {
    expect(flux.internals.options.limits.preAuth?.maxAddresses).toBe(50_000);
    const small = await createFlux({
      database: { pglite: true },
      redis: null,
      limits: { preAuth: { limit: 2, window: "1m", maxAddresses: 100 } },
    });
    try {
      const attacker = "198.51.100.9";
      // 2,000 addresses, one malformed key each (no database read), and one repeat offender.
      for (let i = 0; i < 2_000; i++) {
        await small.keys.check("flux_live_garbage", { clientAddress: `10.0.${i >> 8}.${i & 255}` });
        if (i % 50 === 0) await small.keys.check("flux_live_garbage", { clientAddress: attacker });
      }
      expect(small.internals.limits.preAuthAddresses).toBe(100);
      // A recent offender is still counted while the flood rolls past the bound.
      const refused = await small.keys.check("flux_live_garbage", { clientAddress: attacker });
      expect(refused.valid ? "valid" : refused.error.code).toBe("rate_limited");
    } finally {
      await small.close();
    }
    await expect(
      createFlux({
        database: { pglite: true },
        limits: { preAuth: { limit: 2, window: "1m", maxAddresses: 0 } },
      }),
    ).rejects.toMatchObject({ code: "invalid_option" });
  });

  it("can be turned off", async () => {
    const open = await createFlux({
      database: { pglite: true },
      redis: null,
      trustProxy: "loopback",
      limits: { preAuth: false },
    });
    try {
      // The instance's clientAddress() uses its trustProxy option.
      const request = { remoteAddress: "::1", headers: { "x-forwarded-for": "198.51.100.9" } };
      expect(open.limits.clientAddress(request)).toBe("198.51.100.9");
      expect(flux.limits.clientAddress(request)).toBe("0:0:0:0:0:0:0:1");
      for (let i = 0; i < 50; i++) {
        const result = await open.keys.check("flux_live_x", { clientAddress: "198.51.100.1" });
        expect(result.valid ? "valid" : result.error.code).toBe("key_malformed");
      }
    } finally {
      await open.close();
    }
  });
});

describe("entitlements with I/O", () => {
  let flux: Flux;
  const at = Date.parse("2026-06-01T12:00:00Z");

  beforeAll(async () => {
    flux = await createFlux({ database: { pglite: true }, redis: null, clock: () => at });
    await flux.plans.upsert({ id: "pro", name: "Pro", entitlements: ["bulk_export", "sso", "audit_log"] });
    await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
    await flux.orgs.setEntitlement("acme", "sso", { granted: false });
    await flux.orgs.setEntitlement("acme", "beta_ui", {
      granted: true,
      expiresAt: new Date(at + 86_400_000),
    });
    await flux.orgs.setEntitlement("acme", "old_trial", { granted: true, expiresAt: new Date(at - 1) });
  });

  afterAll(async () => {
    await flux?.close();
  });

  it("checks one entitlement of an org", async () => {
    expect(await flux.entitlements.check("acme", "bulk_export")).toBe(true);
    expect(await flux.entitlements.check("acme", "sso")).toBe(false);
    expect(await flux.entitlements.check("acme", "beta_ui")).toBe(true);
    expect(await flux.entitlements.check("acme", "old_trial")).toBe(false);
    await expect(flux.entitlements.check("nobody", "sso")).rejects.toMatchObject({ code: "not_found" });
  });

  it("lists them with their source and expiry, agreeing with checkForKey", async () => {
    expect(await flux.entitlements.list("acme")).toEqual([
      { name: "audit_log", granted: true, source: "plan", expiresAt: null },
      { name: "beta_ui", granted: true, source: "override", expiresAt: new Date(at + 86_400_000) },
      { name: "bulk_export", granted: true, source: "plan", expiresAt: null },
      { name: "sso", granted: false, source: "override", expiresAt: null },
    ]);
    const { secret } = await flux.keys.create().forOrg("acme").issue();
    const context = await flux.keys.verify(secret);
    for (const entry of await flux.entitlements.list("acme")) {
      expect(flux.entitlements.checkForKey(context, entry.name)).toBe(entry.granted);
    }
  });
});
