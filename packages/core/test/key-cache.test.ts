import { describe, expect, it } from "vitest";
import { KeyCache } from "../src/keys/cache.js";
import type { KeyRecord } from "../src/keys/record.js";

const record = (id: string, orgId = "o", planId = "p") =>
  ({ id, orgId, plan: { id: planId, name: planId, rateLimits: [], quota: null } }) as unknown as KeyRecord;

describe("KeyCache", () => {
  const options = { max: 3, ttlMs: 60_000, negativeTtlMs: 60_000 };

  it("is bounded", () => {
    const cache = new KeyCache(options);
    for (let i = 0; i < 10; i++) cache.set(`d${i}`, record(`k${i}`), cache.currentEpoch());
    expect(cache.size).toBe(3);
    expect(cache.get("d9")).toBeTruthy();
    expect(cache.get("d0")).toBeUndefined();
  });

  it("drops by key id, org and plan", () => {
    const cache = new KeyCache({ ...options, max: 10 });
    cache.set("a", record("ka", "o1", "p1"), cache.currentEpoch());
    cache.set("b", record("kb", "o2", "p1"), cache.currentEpoch());
    cache.set("c", record("kc", "o3", "p2"), cache.currentEpoch());
    cache.apply({ kind: "key", id: "ka" });
    expect(cache.get("a")).toBeUndefined();
    cache.apply({ kind: "org", id: "o3" });
    expect(cache.get("c")).toBeUndefined();
    expect(cache.get("b")).toBeTruthy();
    cache.apply({ kind: "plan", id: "p1" });
    expect(cache.get("b")).toBeUndefined();
  });

  it("refuses a fill read before an invalidation", () => {
    const cache = new KeyCache(options);
    const before = cache.currentEpoch();
    cache.apply({ kind: "key", id: "k1" });
    cache.set("d", record("k1"), before);
    expect(cache.get("d")).toBeUndefined();
  });

  it("keeps a fill read before an invalidation of something else; refuses it past what it remembers", () => {
    const cache = new KeyCache(options);
    const before = cache.currentEpoch();
    cache.apply({ kind: "key", id: "other" });
    cache.apply({ kind: "org", id: "other-org" });
    cache.set("d", record("k1"), before);
    expect(cache.get("d")).toBeTruthy();
    const stale = cache.currentEpoch();
    cache.apply({ kind: "plan", id: "p" });
    cache.set("e", record("k2"), stale);
    expect(cache.get("e")).toBeUndefined();
    const old = cache.currentEpoch();
    for (let i = 0; i < 300; i++) cache.apply({ kind: "key", id: `x${i}` });
    cache.set("f", record("k3"), old);
    expect(cache.get("f")).toBeUndefined();
  });

  it("an issuance neither drops nor refuses known records (unknown digests live in keys/unknown-keys.ts)", () => {
    const cache = new KeyCache(options);
    cache.set("known", record("known"), cache.currentEpoch());
    const before = cache.currentEpoch();
    cache.apply({ kind: "unknown-keys" });
    expect(cache.get("known")).toBeTruthy();
    cache.set("k", record("k"), before);
    expect(cache.get("k")).toBeTruthy();
  });
});
