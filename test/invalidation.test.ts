/**
 * Cache invalidation across instances: two createFlux instances on one PostgreSQL and one Redis.
 */

import { createFlux, type Flux } from "@flux-keys/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DATABASE_URL,
  freshSchema,
  hasPostgres,
  hasRedis,
  REDIS_URL,
  uniqueName,
} from "./support/services.js";

async function until(condition: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await condition()) return Date.now() - start;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

describe.skipIf(!hasPostgres || !hasRedis)("cache invalidation over Redis", () => {
  let a: Flux;
  let b: Flux;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const fresh = await freshSchema();
    drop = fresh.drop;
    const keyPrefix = `${uniqueName("inv")}:`;
    // Long TTLs: only the published invalidation can make B forget.
    const options = {
      database: { url: DATABASE_URL, schema: fresh.schema, poolSize: 2 },
      redis: { url: REDIS_URL, keyPrefix },
      cache: { ttl: "10m", negativeTtl: "10m" },
    } as const;
    a = await createFlux(options);
    b = await createFlux(options);
    await a.plans.upsert({ id: "pro", name: "Pro", entitlements: ["sso"] });
    await a.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await drop?.();
  });

  it("a key cached on B is rejected by B within 1 s of a revoke on A", async () => {
    const { key, secret } = await a.keys.create().forOrg("acme").issue();
    await b.keys.verify(secret);
    expect(b.internals.cache.get(b.keys.digest(secret))).toBeTruthy();
    await a.keys.revoke(key.id);
    const elapsed = await until(async () => (await b.keys.check(secret)).valid === false, 1_000);
    expect((await b.keys.check(secret)).valid).toBe(false);
    expect(elapsed).toBeLessThan(1_000);
    expect(await b.keys.check(secret)).toMatchObject({ error: { code: "key_revoked" } });
  });

  it("rotation, updates and plan changes on A reach B", async () => {
    const { key, secret } = await a.keys.create().forOrg("acme").issue();
    await b.keys.verify(secret);
    const rotated = await a.keys.rotate(key.id, { gracePeriod: "1h" });
    await until(async () => (await b.keys.verify(secret)).rotation?.replacedBy === rotated.key.id, 1_000);

    await b.keys.verify(rotated.secret);
    await a.keys.update(rotated.key.id, { name: "renamed" });
    await until(async () => (await b.keys.verify(rotated.secret)).name === "renamed", 1_000);

    await a.plans.upsert({ id: "pro", name: "Pro", entitlements: ["sso", "bulk_export"] });
    await until(
      async () => (await b.keys.verify(rotated.secret)).entitlements.includes("bulk_export"),
      1_000,
    );

    await a.orgs.setEntitlement("acme", "sso", { granted: false });
    await until(async () => !(await b.keys.verify(rotated.secret)).entitlements.includes("sso"), 1_000);
  });

  it("a freshly issued key is never blocked by a stale unknown-key entry on another instance", async () => {
    // B remembers a digest as unknown (as if the secret had been presented before it existed).
    const issued = a.keys.create().forOrg("acme").issue();
    const { secret } = await issued;
    b.internals.cache.apply({ kind: "all" });
    b.internals.cache.set(b.keys.digest(secret), null, b.internals.cache.currentEpoch());
    expect(b.internals.cache.get(b.keys.digest(secret))).toBeNull();
    // Issuing any key on A makes every instance forget its unknown-key entries.
    await a.keys.create().forOrg("acme").issue();
    await until(async () => (await b.keys.check(secret)).valid, 1_000);
  });
});
