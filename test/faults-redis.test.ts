/**
 * Fault: Redis killed (SIGKILL) and restarted under load, through the real Express example app.
 *
 * What it proves, for both `limits.onStoreError` policies at once (two apps, one throwaway
 * redis-server and one throwaway PostgreSQL, all on private loopback ports):
 * - no request hangs: every request gets an HTTP answer within the hang bound (3 s), none is a 500,
 *   and nothing is left as an unhandled rejection;
 * - the policy is applied while Redis is down: `insurance` keeps serving and still limits, per
 *   process (at most `limit` admitted in the window during the outage, then 429); `fail-closed`
 *   answers 503 `store_unavailable` with `Retry-After: 1`;
 * - recovery without restart: the same processes count in Redis again once it is back;
 * - no double counting after reconnect: each request after recovery adds exactly 1 to the Redis
 *   counter, and exactly `limit` requests are admitted by the (restarted, empty) counter; a
 *   refused one adds nothing.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createFlux, type Flux } from "@flux-keys/core";
import { createApp } from "@flux-keys/example-express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Answer,
  ask,
  load,
  pgAvailable,
  redisAvailable,
  ThrowawayPostgres,
  ThrowawayRedis,
  until,
} from "./support/faults-services.js";

const LIMIT = 30;
const HANG_BOUND_MS = 3_000;

interface Target {
  policy: "insurance" | "fail-closed";
  prefix: string;
  flux: Flux;
  server: Server;
  base: string;
  secret: string;
}

describe.skipIf(!pgAvailable || !redisAvailable)("fault: Redis killed and restarted under load", () => {
  let pg: ThrowawayPostgres;
  let redis: ThrowawayRedis;
  const targets: Target[] = [];
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);

  beforeAll(async () => {
    process.on("unhandledRejection", onRejection);
    pg = await ThrowawayPostgres.create();
    await pg.start();
    redis = await ThrowawayRedis.start();
    for (const policy of ["insurance", "fail-closed"] as const) {
      const prefix = `${policy}:`;
      const flux = await createFlux({
        database: { url: pg.url, poolSize: 2 },
        redis: { url: redis.url, keyPrefix: prefix },
        limits: { onStoreError: policy, preAuth: false },
      });
      await flux.plans.upsert({
        id: "faults",
        name: "Faults",
        scopes: ["read:events"],
        rateLimits: [{ name: "rpm", limit: LIMIT, window: "1m" }],
      });
      const org = await flux.orgs.create({ name: policy, planId: "faults" });
      const { secret } = await flux.keys.create().forOrg(org.id).withScopes(["read:events"]).issue();
      const server = await new Promise<Server>((resolve) => {
        const s = createApp(flux).listen(0, "127.0.0.1", () => resolve(s));
      });
      const { port } = server.address() as AddressInfo;
      targets.push({ policy, prefix, flux, server, base: `http://127.0.0.1:${port}`, secret });
    }
  });

  afterAll(async () => {
    for (const t of targets) {
      await new Promise((resolve) => t.server.close(resolve));
      t.server.closeAllConnections();
      await t.flux.close().catch(() => {});
    }
    await redis?.destroy();
    await pg?.destroy();
    process.off("unhandledRejection", onRejection);
  });

  const get = (t: Target) => () =>
    ask(`${t.base}/v1/events`, { headers: { Authorization: `Bearer ${t.secret}` } }, HANG_BOUND_MS);
  const status = (t: Target) => t.flux.internals.redis?.status;

  async function counter(t: Target): Promise<number> {
    const inspector = redis.inspector();
    try {
      const keys = await inspector.keys(`${t.prefix}rl:*`);
      expect(keys.length).toBeLessThanOrEqual(1);
      return keys[0] === undefined ? 0 : Number(await inspector.get(keys[0]));
    } finally {
      inspector.disconnect();
    }
  }

  it("keeps answering by policy through the outage and counts exactly once after", async () => {
    const started = Date.now();
    const loads = targets.map((t) => load(get(t), { workers: 3, maxRequests: 1_500, pauseMs: 40 }));

    // Healthy, under the limit (a window exhausted in Redis would be refused from memory for 1 min).
    await until(() => loads.every((l) => l.answers.length >= 6), 10_000, "healthy answers");
    await redis.kill();
    await until(() => targets.every((t) => status(t) !== "ready"), 5_000, "clients notice the kill");
    const down = Date.now();

    // The outage lasts until each app answered well past the limit.
    await until(
      () => loads.every((l) => l.answers.filter((a) => a.sentAt >= down).length >= LIMIT + 15),
      20_000,
      "answers during the outage",
    );
    const restarting = Date.now();
    await redis.start();
    await until(() => targets.every((t) => status(t) === "ready"), 10_000, "clients reconnect");
    const ready = Date.now();
    await until(
      () => loads.every((l) => l.answers.filter((a) => a.sentAt >= ready).length >= 3),
      10_000,
      "answers after recovery",
    );
    const answersByTarget = await Promise.all(loads.map((l) => l.stop()));

    for (const [i, t] of targets.entries()) {
      const answers = answersByTarget[i] as Answer[];
      // No hang, no network error, no 500.
      expect(answers.filter((a) => a.status === 0 || (a.status >= 500 && a.status !== 503))).toEqual([]);
      const outage = answers.filter((a) => a.sentAt >= down && a.doneAt < restarting);
      expect(outage.length).toBeGreaterThan(LIMIT);
      const afterRecovery = answers.filter((a) => a.sentAt >= ready);
      if (t.policy === "insurance") {
        expect(new Set(answers.map((a) => a.status))).toEqual(new Set([200, 429]));
        const admitted = outage.filter((a) => a.status === 200).length;
        // The insurance limiter enforces the window in this process: served, and limited.
        expect(admitted).toBeGreaterThan(0);
        expect(admitted).toBeLessThanOrEqual(LIMIT);
        expect(outage.filter((a) => a.status === 429).length).toBe(outage.length - admitted);
      } else {
        expect(answers.every((a) => [200, 429, 503].includes(a.status))).toBe(true);
        for (const a of outage) {
          expect(a).toMatchObject({ status: 503, code: "store_unavailable", retryAfter: "1" });
        }
      }
      // Redis restarted empty: the same process counts there again, from zero.
      expect(afterRecovery.length).toBeGreaterThan(0);
      expect(afterRecovery.every((a) => a.status === 200)).toBe(true);

      // Exactly one increment per request, and exactly LIMIT admitted by the fresh counter.
      const before = await counter(t);
      expect(before).toBeGreaterThan(0);
      expect(before).toBeLessThan(LIMIT);
      const sequential: number[] = [];
      for (let n = before; n < LIMIT; n++) sequential.push((await get(t)()).status);
      expect(sequential.every((s) => s === 200)).toBe(true);
      expect(await counter(t)).toBe(LIMIT);
      // A refused request counts nothing (the script consumes only what it admits).
      expect((await get(t)()).status).toBe(429);
      expect(await counter(t)).toBe(LIMIT);
    }
    expect(rejections).toEqual([]);
    console.info(
      `[faults-redis] ${Date.now() - started} ms; answers: ${answersByTarget.map((a, i) => `${targets[i]?.policy}=${a.length} (max ${Math.max(...a.map((x) => x.ms))} ms)`).join(", ")}`,
    );
  }, 50_000);
});
