/**
 * Limits on a real Redis Cluster (3 masters, 3 replicas, test/support/redis-cluster.ts), with
 * four Flux instances on one PostgreSQL schema:
 * - `redis: { cluster: [...] }` counts in the cluster (not on a Redis at 127.0.0.1:6379), every
 *   counter of a key in its org's hash slot; an app-owned `Cluster` is used and left open;
 * - 500 parallel requests over the four instances on a limit of 100 admit exactly 100, for each
 *   algorithm, and a key with burst, sustained, org-pooled windows and a quota costs one script;
 * - the master holding a key's slot is killed under load: its replica takes over, no request
 *   hangs, the store policy answers meanwhile (`insurance` keeps limiting per process,
 *   `fail-closed` answers 503), counting resumes on the promoted replica, nothing is counted twice;
 * - a revocation reaches every instance within 1 s (PostgreSQL LISTEN/NOTIFY) while limits run on
 *   the cluster.
 */
import { createFlux, type Flux, type RateLimitWindow } from "@flux-keys/core";
import { clusterNodes, openFlux } from "@flux-keys/example-shared";
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "./support/faults-services.js";
import { clusterAvailable, ThrowawayRedisCluster } from "./support/redis-cluster.js";
import {
  DATABASE_URL,
  freshSchema,
  hasPostgres,
  hasRedis,
  REDIS_URL,
  uniqueName,
} from "./support/services.js";

const HANG_BOUND_MS = 3_000;

function inspectorOf(cluster: ThrowawayRedisCluster): Cluster {
  const client = new Cluster(cluster.startupNodes, { redisOptions: { maxRetriesPerRequest: 1 } });
  client.on("error", () => {});
  return client;
}

/** Every key matching `pattern` on every master of the cluster. */
async function clusterKeys(client: Cluster, pattern: string): Promise<string[]> {
  // Until the slots are loaded every startup node (replicas too) is listed as a master.
  if (client.status !== "ready") await new Promise((resolve) => client.once("ready", resolve));
  const found = await Promise.all(client.nodes("master").map((node) => node.keys(pattern)));
  return found.flat();
}

/** A check that must answer within the hang bound: its outcome code, or `hung`. */
async function bounded(flux: Flux, secret: string): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve("hung"), HANG_BOUND_MS);
  });
  const answer = flux.keys.check(secret).then(
    (result) => (result.valid ? "valid" : result.error.code),
    (error: unknown) => `threw:${(error as Error).message}`,
  );
  try {
    return await Promise.race([answer, hang]);
  } finally {
    clearTimeout(timer);
  }
}

describe.skipIf(!clusterAvailable || !hasPostgres)("limits on a Redis Cluster", () => {
  let cluster: ThrowawayRedisCluster;
  let inspector: Cluster;
  let drop: () => Promise<void>;
  const instances: Flux[] = [];
  let failClosed: Flux;
  const prefix = `${uniqueName("cl")}:`;
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  const warnings: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    process.on("unhandledRejection", onRejection);
    cluster = await ThrowawayRedisCluster.start();
    inspector = inspectorOf(cluster);
    const schema = await freshSchema();
    drop = schema.drop;
    const redis = { cluster: cluster.startupNodes, keyPrefix: prefix };
    for (let i = 0; i < 4; i++) {
      instances.push(
        await createFlux({
          database: { url: DATABASE_URL, schema: schema.schema, poolSize: 3 },
          redis,
          limits: { preAuth: false },
          logger: { warn: (fields) => warnings.push(fields) },
        }),
      );
    }
    failClosed = await createFlux({
      database: { url: DATABASE_URL, schema: schema.schema, poolSize: 2 },
      redis,
      limits: { onStoreError: "fail-closed", preAuth: false },
    });
  }, 120_000);

  afterAll(async () => {
    for (const flux of instances) await flux.close();
    await failClosed?.close();
    inspector?.disconnect();
    await cluster?.destroy();
    await drop?.();
    process.off("unhandledRejection", onRejection);
  });

  async function keyOf(
    orgId: string,
    rateLimits: RateLimitWindow[],
    quota?: { limit: number; period: "day" },
  ) {
    const [first] = instances as [Flux];
    await first.plans.upsert({ id: orgId, name: orgId, rateLimits, ...(quota ? { quota } : {}) });
    await first.orgs.create({ id: orgId, name: orgId, planId: orgId });
    return first.keys.create().forOrg(orgId).issue();
  }

  it("counts in the cluster, every counter of a key in its org's slot, one script per request", async () => {
    const { secret } = await keyOf(
      "slots",
      [
        { name: "burst", limit: 10, window: "1s" },
        { name: "sustained", limit: 1000, window: "1h", algorithm: "sliding" },
        { name: "paced", limit: 100, window: "1m", algorithm: "gcra", burst: 20 },
        { name: "pool", limit: 5000, window: "1d", per: "org" },
      ],
      { limit: 100, period: "day" },
    );
    const flux = instances[0] as Flux;
    await flux.keys.verify(secret);
    const scripts = async () => {
      const stats = await Promise.all(inspector.nodes("master").map((node) => node.info("commandstats")));
      return stats
        .map((text) => Number(/cmdstat_evalsha:calls=(\d+)/.exec(text)?.[1] ?? 0))
        .reduce((a, b) => a + b, 0);
    };
    const before = await scripts();
    for (let i = 0; i < 5; i++) await flux.keys.verify(secret);
    expect((await scripts()) - before).toBe(5);
    const context = await flux.keys.verify(secret);
    expect(context.rateLimit?.windows.map((w) => w.name)).toEqual(["burst", "sustained", "paced", "pool"]);
    expect(context.rateLimit?.quota?.remaining).toBe(100 - 7);

    const keys = await clusterKeys(inspector, `${prefix}*`);
    expect(keys).toHaveLength(5);
    const slots = new Set(
      await Promise.all(keys.map((key) => inspector.call("CLUSTER", "KEYSLOT", key) as Promise<number>)),
    );
    expect(slots.size).toBe(1);
  });

  it.skipIf(!hasRedis)("does not count on the Redis at 127.0.0.1:6379", async () => {
    const { Redis } = await import("ioredis");
    const local = new Redis(REDIS_URL);
    try {
      expect(await local.keys(`${prefix}*`)).toEqual([]);
    } finally {
      local.disconnect();
    }
  });

  for (const algorithm of ["fixed", "sliding", "gcra"] as const) {
    it(`admits exactly 100 of 500 parallel requests over four instances (${algorithm})`, async () => {
      const { secret } = await keyOf(`race-${algorithm}`, [
        { name: "w", limit: 100, window: "1h", algorithm },
      ]);
      const results = await Promise.all(
        Array.from({ length: 500 }, (_, i) => (instances[i % 4] as Flux).keys.check(secret)),
      );
      expect(results.filter((r) => r.valid)).toHaveLength(100);
      const codes = new Set(results.filter((r) => !r.valid).map((r) => (r.valid ? "" : r.error.code)));
      expect([...codes]).toEqual(["rate_limited"]);
      for (const flux of instances) {
        const read = await flux.keys.check(secret, { cost: 0 });
        expect(read.valid && read.context.rateLimit?.windows[0]?.remaining).toBe(0);
      }
    });
  }

  it("reaches every instance with a revocation within 1 s", async () => {
    const { key, secret } = await keyOf("revoked", [{ name: "w", limit: 1000, window: "1m" }]);
    for (const flux of instances) expect((await flux.keys.check(secret)).valid).toBe(true);
    const revokedAt = Date.now();
    await (instances[1] as Flux).keys.revoke(key.id, { reason: "cluster test" });
    const heard = await Promise.all(
      instances.map(async (flux) => {
        await until(
          async () => {
            const result = await flux.keys.check(secret);
            return !result.valid && result.error.code === "key_revoked";
          },
          2_000,
          "the revocation heard",
        );
        return Date.now() - revokedAt;
      }),
    );
    expect(Math.max(...heard)).toBeLessThan(1_000);
  });

  it("keeps answering through a master's failover, resumes counting, counts nothing twice", async () => {
    const { secret } = await keyOf("failover", [{ name: "w", limit: 100_000, window: "1h" }]);
    const closedKey = await (failClosed as Flux).keys.check(secret);
    expect(closedKey.valid).toBe(true);
    const [counterKey] = await clusterKeys(inspector, `${prefix}rl:{failover}:*`);
    expect(counterKey).toBeDefined();
    const { master, replica } = await cluster.failoverPair(counterKey as string);

    warnings.length = 0;
    const outcomes: string[] = [];
    const closedOutcomes: string[] = [];
    let loading = true;
    const loaders = instances.map(async (flux) => {
      while (loading) outcomes.push(await bounded(flux, secret));
    });
    const closedLoader = (async () => {
      while (loading) {
        closedOutcomes.push(await bounded(failClosed, secret));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();

    await until(() => outcomes.length > 200, 10_000, "load running");
    await cluster.kill(master);
    const killedAt = outcomes.length;
    const closedKilledAt = closedOutcomes.length;
    await cluster.waitForPromotion(replica);
    // Counting resumes on the promoted replica: the fail-closed instance is admitted again.
    await until(
      async () => (await (failClosed as Flux).keys.check(secret)).valid,
      15_000,
      "counting resumed after the failover",
    );
    const resumedAt = outcomes.length;
    await until(() => outcomes.length > resumedAt + 200, 10_000, "load after the failover");
    loading = false;
    await Promise.all([...loaders, closedLoader]);

    // No request hung or failed otherwise; insurance answered throughout.
    expect(outcomes.filter((o) => o !== "valid")).toEqual([]);
    const duringClosed = closedOutcomes.slice(closedKilledAt);
    expect(duringClosed.filter((o) => o !== "valid" && o !== "store_unavailable")).toEqual([]);
    // The policy applied during the failover: the fail-closed instance refused with 503s, the
    // others counted in their insurance meanwhile.
    expect(duringClosed).toContain("store_unavailable");
    expect(warnings.some((w) => w.event === "flux.limits.insurance" && w.store === "redis")).toBe(true);
    expect(outcomes.length).toBeGreaterThan(killedAt);

    // Nothing counted twice: each request now adds exactly one to the counter on the new master.
    const read = async () => Number(await inspector.get(counterKey as string));
    await until(async () => (await read().catch(() => Number.NaN)) >= 0, 10_000, "the inspector follows");
    const before = await read();
    for (let i = 0; i < 20; i++)
      expect((await (instances[i % 4] as Flux).keys.check(secret)).valid).toBe(true);
    expect(await read()).toBe(before + 20);
    // And the counter holds no more than was admitted (what counted only in insurance is not
    // there; what the old master acknowledged but had not replicated may be lost, never doubled).
    const admitted =
      outcomes.filter((o) => o === "valid").length + closedOutcomes.filter((o) => o === "valid").length + 21;
    expect(before + 20).toBeLessThanOrEqual(admitted);
    expect(rejections).toEqual([]);
  }, 90_000);
});

describe.skipIf(!clusterAvailable)("an app-owned Cluster", () => {
  let cluster: ThrowawayRedisCluster;

  beforeAll(async () => {
    cluster = await ThrowawayRedisCluster.start();
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it("is used for limits and left open by close()", async () => {
    const own = new Cluster(cluster.startupNodes);
    own.on("error", () => {});
    await new Promise((resolve) => own.once("ready", resolve));
    const flux = await createFlux({ database: { pglite: true }, redis: { cluster: own, keyPrefix: "own:" } });
    try {
      await flux.plans.upsert({ id: "p", name: "p", rateLimits: [{ name: "w", limit: 2, window: "1m" }] });
      await flux.orgs.create({ id: "o", name: "o", planId: "p" });
      const { secret } = await flux.keys.create().forOrg("o").issue();
      const codes = [];
      for (let i = 0; i < 3; i++) {
        const result = await flux.keys.check(secret);
        codes.push(result.valid ? "valid" : result.error.code);
      }
      expect(codes).toEqual(["valid", "valid", "rate_limited"]);
      expect(await clusterKeys(own, "own:rl:{o}:*")).toHaveLength(1);
    } finally {
      await flux.close();
    }
    expect(own.status).toBe("ready");
    expect(await own.ping()).toBe("PONG");
    own.disconnect();
  });

  it("counts failed authentications per client address across instances", async () => {
    const redis = { cluster: cluster.startupNodes, keyPrefix: "preauth:" };
    const limits = { preAuth: { limit: 3, window: "1m" as const } };
    const a = await createFlux({ database: { pglite: true }, redis, limits });
    const b = await createFlux({ database: { pglite: true }, redis, limits });
    const inspector = inspectorOf(cluster);
    try {
      const attempt = async (flux: Flux) => {
        const result = await flux.keys.check("flux_live_not-a-key", { clientAddress: "203.0.113.9" });
        return result.valid ? "valid" : result.error.code;
      };
      // Three failures spread over two instances use up the address's allowance on the cluster.
      const codes = [await attempt(a), await attempt(b), await attempt(a), await attempt(b)];
      expect(codes).toEqual(["key_malformed", "key_malformed", "key_malformed", "rate_limited"]);
      const other = await b.keys.check("flux_live_not-a-key", { clientAddress: "198.51.100.7" });
      expect(other.valid ? "valid" : other.error.code).toBe("key_malformed");
      expect((await clusterKeys(inspector, "preauth:*")).length).toBeGreaterThan(0);
    } finally {
      await a.close();
      await b.close();
      inspector.disconnect();
    }
  }, 60_000);

  it("is what the examples count on when REDIS_CLUSTER_NODES names its nodes", async () => {
    const nodes = cluster.startupNodes.map((node) => `${node.host}:${node.port}`).join(",");
    const previous = process.env.REDIS_CLUSTER_NODES;
    process.env.REDIS_CLUSTER_NODES = nodes;
    let flux: Flux | undefined;
    try {
      flux = await openFlux({ database: { pglite: true } });
    } finally {
      if (previous === undefined) delete process.env.REDIS_CLUSTER_NODES;
      else process.env.REDIS_CLUSTER_NODES = previous;
    }
    const inspector = inspectorOf(cluster);
    try {
      await flux.plans.upsert({ id: "p", name: "p", rateLimits: [{ name: "w", limit: 1, window: "1m" }] });
      await flux.orgs.create({ id: "examples-org", name: "o", planId: "p" });
      const { secret } = await flux.keys.create().forOrg("examples-org").issue();
      const first = await flux.keys.check(secret);
      const second = await flux.keys.check(secret);
      expect([first.valid, second.valid ? "valid" : second.error.code]).toEqual([true, "rate_limited"]);
      const counted = await clusterKeys(inspector, "flux:rl:{examples-org}:*");
      expect(counted).toHaveLength(1);
    } finally {
      await flux.close();
      inspector.disconnect();
    }
    expect(() => clusterNodes("127.0.0.1")).toThrow(/REDIS_CLUSTER_NODES: '127.0.0.1' is not host:port/);
  }, 60_000);
});
