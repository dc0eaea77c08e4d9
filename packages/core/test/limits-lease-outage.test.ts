/**
 * Leasing (`limits.lease`) through a real Redis outage: a throwaway redis-server is killed while an
 * instance holds a lease. The units Redis admitted before the outage are spent (they were counted
 * there); past them, the exact path answers as `onStoreError` says, at once; once Redis is back,
 * leases resume without a restart, and nothing is left unhandled.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redisAvailable, ThrowawayRedis } from "../../../test/support/faults-services.js";
import { until } from "../../../test/support/until.js";
import { createFlux, type Flux } from "../src/index.js";

describe.skipIf(!redisAvailable)("limits.lease through a Redis outage", () => {
  let server: ThrowawayRedis;
  let flux: Flux;
  let secret: string;
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);

  beforeAll(async () => {
    process.on("unhandledRejection", onRejection);
    server = await ThrowawayRedis.start();
    flux = await createFlux({
      database: { pglite: true },
      redis: { url: `redis://127.0.0.1:${server.port}`, keyPrefix: "lease:" },
      limits: { onStoreError: "fail-closed", lease: { units: 5 } },
    });
    await flux.plans.upsert({ id: "p", name: "p", rateLimits: [{ name: "rpm", limit: 100, window: "1m" }] });
    await flux.orgs.create({ id: "o", name: "o", planId: "p" });
    secret = (await flux.keys.create().forOrg("o").issue()).secret;
  });

  afterAll(async () => {
    await flux?.close();
    await server?.destroy();
    process.off("unhandledRejection", onRejection);
  });

  it("spends what Redis granted, then fails closed at once, then leases again", async () => {
    expect((await flux.keys.check(secret)).valid).toBe(true); // a lease of 5: 4 held

    await server.kill();
    await until(() => flux.internals.redis?.status !== "ready");

    const codes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const started = performance.now();
      const result = await flux.keys.check(secret);
      codes.push(result.valid ? "valid" : result.error.code);
      expect(performance.now() - started).toBeLessThan(500); // nothing waits for Redis
    }
    expect(codes).toEqual(["valid", "valid", "valid", "valid", "store_unavailable", "store_unavailable"]);

    await server.start();
    await until(async () => (await flux.keys.check(secret)).valid, 15_000, "a check after the restart");
    // For a second after a failed lease call, requests are decided exactly; then leases resume.
    const inspector = new Redis(`redis://127.0.0.1:${server.port}`);
    try {
      const [counter] = await inspector.keys("lease:rl:*");
      const count = async () => Number(await inspector.get(counter as string));
      await sleep(1_100);
      const before = await count();
      expect((await flux.keys.check(secret)).valid).toBe(true);
      expect(await count()).toBe(before + 5);
      for (let i = 0; i < 4; i++) expect((await flux.keys.check(secret)).valid).toBe(true);
      expect(await count()).toBe(before + 5); // spent from the lease, no call
    } finally {
      inspector.disconnect();
    }
    expect(rejections).toEqual([]);
  });
});
