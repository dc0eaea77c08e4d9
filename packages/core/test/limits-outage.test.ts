/**
 * A real Redis outage: a throwaway redis-server on its own port is killed mid-run and restarted.
 * No request hangs, none becomes a 500 or an unhandled rejection; the insurance limiter keeps
 * enforcing per process (or, with `onStoreError: 'fail-closed'`, requests get store_unavailable
 * with Retry-After); Redis is used again after it comes back, without a restart.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redisAvailable, ThrowawayRedis } from "../../../test/support/faults-services.js";
import { until } from "../../../test/support/until.js";
import { createFlux, type Flux, rateLimitHeaders } from "../src/index.js";

describe.skipIf(!redisAvailable)("limits through a Redis outage", () => {
  let port: number;
  let server: ThrowawayRedis;
  let insured: Flux;
  let closed: Flux;
  let insuredSecret: string;
  let closedSecret: string;
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  const warnings: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    process.on("unhandledRejection", onRejection);
    server = await ThrowawayRedis.start();
    port = server.port;
    const url = `redis://127.0.0.1:${port}`;
    insured = await createFlux({
      database: { pglite: true },
      redis: { url, keyPrefix: "insured:" },
      logger: { warn: (fields) => warnings.push(fields) },
    });
    closed = await createFlux({
      database: { pglite: true },
      redis: { url, keyPrefix: "closed:" },
      limits: { onStoreError: "fail-closed" },
    });
    for (const flux of [insured, closed]) {
      await flux.plans.upsert({ id: "p", name: "p", rateLimits: [{ name: "rpm", limit: 3, window: "1m" }] });
      await flux.orgs.create({ id: "o", name: "o", planId: "p" });
    }
    insuredSecret = (await insured.keys.create().forOrg("o").issue()).secret;
    closedSecret = (await closed.keys.create().forOrg("o").issue()).secret;
  });

  afterAll(async () => {
    await insured?.close();
    await closed?.close();
    await server?.destroy();
    process.off("unhandledRejection", onRejection);
  });

  it("keeps answering through the outage and recovers without a restart", async () => {
    // Healthy: counted in Redis.
    expect((await insured.keys.check(insuredSecret)).valid).toBe(true);
    expect((await closed.keys.check(closedSecret)).valid).toBe(true);

    await server.kill();
    await until(
      () => insured.internals.redis?.status !== "ready" && closed.internals.redis?.status !== "ready",
    );

    // Insurance: a fresh in-memory limiter enforces the same window in this process.
    const insuredCodes: string[] = [];
    for (let i = 0; i < 5; i++) {
      const result = await insured.keys.check(insuredSecret);
      insuredCodes.push(result.valid ? "valid" : result.error.code);
    }
    expect(insuredCodes).toEqual(["valid", "valid", "valid", "rate_limited", "rate_limited"]);
    expect(warnings.some((w) => w.event === "flux.limits.insurance")).toBe(true);
    await expect(insured.keys.verify(insuredSecret)).rejects.toMatchObject({ code: "rate_limited" });

    // Fail closed: 503 with Retry-After, never a thrown non-FluxError.
    const refused = await closed.keys.check(closedSecret);
    expect(refused.valid).toBe(false);
    if (refused.valid) return;
    expect(refused.error.code).toBe("store_unavailable");
    expect(refused.error.status).toBe(503);
    expect(rateLimitHeaders(refused)).toEqual({ "Retry-After": "1" });
    await expect(closed.keys.verify(closedSecret)).rejects.toMatchObject({ code: "store_unavailable" });
    const reads = await closed.keys.check(closedSecret, { cost: 0 });
    expect(reads.valid ? "valid" : reads.error.code).toBe("store_unavailable");

    // Back: both instances reconnect on their own and count in Redis again.
    await server.start();
    await until(
      () => insured.internals.redis?.status === "ready" && closed.internals.redis?.status === "ready",
    );
    const recovered = await closed.keys.check(closedSecret);
    expect(recovered.valid).toBe(true);
    const inspector = new Redis({ port, host: "127.0.0.1" });
    try {
      // The server restarted empty: the counter it holds now was written after the outage.
      const keys = await inspector.keys("closed:rl:*");
      expect(keys).toHaveLength(1);
      expect(await inspector.get(keys[0] as string)).toBe("1");
    } finally {
      inspector.disconnect();
    }
    const insuredAgain = await insured.keys.check(insuredSecret);
    expect(insuredAgain.valid).toBe(true);
    expect(rejections).toEqual([]);
  });
});
