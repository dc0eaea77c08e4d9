/**
 * Fault: the connection to Redis drops after Redis ran a limiter script and before its reply
 * arrived (a proxy forwards the command, swallows the answer and cuts both sides), many times.
 * A command whose reply was lost is never sent again: each request is counted in Redis exactly
 * once, so the counter equals the requests admitted. The same for a lease (`limits.lease`).
 */
import { createFlux, type Flux, type FluxOptions } from "@flux-keys/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CuttingProxy, redisAvailable, ThrowawayRedis, until } from "./support/faults-services.js";

const CUTS = 8;

/**
 * A throwaway Redis behind a cutting proxy, an instance on it with these limits (keys prefixed
 * `prefix`), one key on a plan that limits nothing here, and the key's counter as Redis holds it.
 */
function lossyRedis(prefix: string, limits: FluxOptions["limits"]) {
  const state = {} as { redis: ThrowawayRedis; proxy: CuttingProxy; flux: Flux; secret: string };
  beforeAll(async () => {
    state.redis = await ThrowawayRedis.start();
    // Redis answers a command in one frame: the first reply data is the answer to lose.
    state.proxy = await CuttingProxy.start(state.redis.port, () => true);
    state.flux = await createFlux({
      database: { pglite: true },
      redis: { url: state.proxy.redisUrl, keyPrefix: prefix },
      limits,
    });
    await state.flux.plans.upsert({
      id: "metered",
      name: "Metered",
      rateLimits: [{ name: "rpm", limit: 10_000, window: "1h" }],
    });
    await state.flux.orgs.create({ id: "acme", name: "Acme", planId: "metered" });
    ({ secret: state.secret } = await state.flux.keys.create().forOrg("acme").issue());
  });
  afterAll(async () => {
    await state.flux?.close();
    await state.proxy?.close();
    await state.redis?.destroy();
  });
  const counter = async (): Promise<number> => {
    const inspector = state.redis.inspector();
    try {
      const keys = await inspector.keys(`${prefix}rl*`);
      expect(keys.length).toBe(1);
      return Number(await inspector.get(keys[0] as string));
    } finally {
      inspector.disconnect();
    }
  };
  return { state, counter };
}

describe.skipIf(!redisAvailable)("fault: a limiter reply lost with its connection", () => {
  const { state, counter } = lossyRedis("lost:", { onStoreError: "insurance", preAuth: false });

  it("counts every admitted request once, however many replies are lost", async () => {
    const { proxy, flux, secret } = state;
    let admitted = 0;
    for (let i = 0; i < CUTS; i++) {
      // The limiter script names its counter; its reply is lost with the connection.
      proxy.arm("lost:rl");
      if ((await flux.keys.check(secret)).valid) admitted++;
      await until(() => flux.internals.redis?.status === "ready", 5_000, "Redis reconnected");
      if ((await flux.keys.check(secret)).valid) admitted++;
    }
    expect(proxy.cuts).toBe(CUTS);
    expect(admitted).toBe(2 * CUTS);
    // Give a resent command every chance to arrive before counting.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await counter()).toBe(admitted);
  });
});

/**
 * The same fault for a lease (`limits.lease`): the script that took the lease's units ran, and its
 * reply is lost. The lease is never sent again (its units stay counted in Redis and are never
 * spent: fewer requests admitted, never more), and every unit the instance spends was counted
 * there once.
 */
describe.skipIf(!redisAvailable)("fault: a lease's reply lost with its connection", () => {
  const UNITS = 5;
  // Fail closed: a request is admitted only by what Redis counted (no insurance counters).
  const { state, counter } = lossyRedis("lease:", {
    onStoreError: "fail-closed",
    preAuth: false,
    lease: { units: UNITS },
  });

  it("never resends a lease, and spends only units Redis counted", async () => {
    const { proxy, flux, secret } = state;
    const cuts = 4;
    let admitted = 0;
    for (let i = 0; i < cuts; i++) {
      // No units held here: this request sends a lease, and its reply is lost. It is then decided
      // exactly: admitted if the client has reconnected already, else refused (fail-closed).
      proxy.arm("lease:rl");
      const lost = await flux.keys.check(secret);
      if (lost.valid) admitted++;
      else expect(lost.error.code).toBe("store_unavailable");
      await until(() => flux.internals.redis?.status === "ready", 5_000, "Redis reconnected");
      // Past the second of exact decisions after a failed lease call: the next request leases,
      // and these spend that lease whole.
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      for (let j = 0; j < UNITS; j++) if ((await flux.keys.check(secret)).valid) admitted++;
    }
    expect(proxy.cuts).toBe(cuts);
    expect(admitted).toBeGreaterThanOrEqual(cuts * UNITS);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Every admitted request counted once, plus each lost lease's units once (never resent).
    expect(await counter()).toBe(admitted + cuts * UNITS);
  });
});
