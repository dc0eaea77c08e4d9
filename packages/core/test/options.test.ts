import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createFlux, durationMs, toMs } from "../src/index.js";
import { resolveOptions } from "../src/options.js";

describe("resolveOptions", () => {
  it("defaults to embedded PGlite in memory and no Redis", () => {
    const resolved = resolveOptions({}, {});
    expect(resolved.database).toEqual({ kind: "pglite", dataDir: undefined });
    expect(resolved.redis).toBeNull();
    expect(resolved.migrate).toBe(true);
    expect(resolved.cache).toEqual({ max: 10_000, ttlMs: 30_000, negativeTtlMs: 2_000 });
  });

  it("takes DATABASE_URL and REDIS_URL from the environment when no option is given", () => {
    const env = { DATABASE_URL: "postgresql://u@h/db", REDIS_URL: "redis://h:1" };
    const resolved = resolveOptions({}, env);
    expect(resolved.database).toMatchObject({ kind: "postgres", url: "postgresql://u@h/db" });
    expect(resolved.redis).toMatchObject({ url: "redis://h:1", keyPrefix: "flux:" });
    // Prisma's ?schema= convention selects the schema and is not sent to the server.
    expect(
      resolveOptions({}, { DATABASE_URL: "postgresql://u@h/db?schema=tenant_1&sslmode=disable" }).database,
    ).toEqual({
      kind: "postgres",
      url: "postgresql://u@h/db?sslmode=disable",
      schema: "tenant_1",
      poolSize: 10,
    });
    // An explicit option wins over the environment.
    expect(resolveOptions({ database: { pglite: true }, redis: null }, env)).toMatchObject({
      database: { kind: "pglite" },
      redis: null,
    });
  });
});

describe("options Flux Keys does not understand", () => {
  it("refuses them inside database and redis, with the option's path (never silently ignored)", () => {
    const cases: Array<[unknown, string]> = [
      [{ redis: { url: "redis://h:1", db: 3 } }, "redis.db"],
      [{ redis: { url: "redis://h:1", cluster: [{ host: "127.0.0.1", port: 7000 }] } }, "redis.cluster"],
      [{ redis: { cluster: [{ host: "127.0.0.1", port: 7000 }], password: "x" } }, "redis.password"],
      [{ redis: { cluster: [{ host: "127.0.0.1", port: 7000, tls: true }] } }, "redis.cluster[0].tls"],
      [
        {
          redis: {
            cluster: [
              { host: "127.0.0.1", port: 7000 },
              { host: "127.0.0.1", port: 7001, db: 1 },
            ],
          },
        },
        "redis.cluster[1].db",
      ],
      [{ database: { url: "postgresql://u@h/db", ssl: true } }, "database.ssl"],
      [{ database: { pglite: true, dataDir: "x" } }, "database.dataDir"],
    ];
    for (const [options, path] of cases) {
      expect(() => resolveOptions(options as never, {})).toThrow(
        expect.objectContaining({
          name: "FluxConfigError",
          code: "unknown_option",
          message: expect.stringContaining(path),
        }),
      );
    }
    expect(() => resolveOptions({ redis: { keyPrefix: "x:" } } as never, {})).toThrow(
      expect.objectContaining({ code: "invalid_option" }),
    );
  });

  it("takes a Redis Cluster from its nodes, or as an ioredis Cluster, and refuses anything else", () => {
    const nodes = [
      { host: "10.0.0.1", port: 7000 },
      { host: "10.0.0.2", port: 7001 },
    ];
    expect(resolveOptions({ redis: { cluster: nodes, keyPrefix: "app:" } }, {}).redis).toEqual({
      nodes,
      keyPrefix: "app:",
    });
    // The caller's nodes are copied, never kept or changed.
    const resolved = resolveOptions({ redis: { cluster: nodes } }, {}).redis as { nodes: unknown[] };
    expect(resolved.nodes).not.toBe(nodes);
    expect(resolved).toMatchObject({ keyPrefix: "flux:" });
    for (const cluster of [
      [],
      [{ host: "", port: 7000 }],
      [{ host: "h", port: 0 }],
      [{ host: "h", port: 70_000 }],
      ["h:7000"],
      { nodes },
      "h:7000",
    ]) {
      expect(() => resolveOptions({ redis: { cluster } } as never, {})).toThrow(
        expect.objectContaining({ name: "FluxConfigError", code: "invalid_option" }),
      );
    }
  });
});

describe("embedded PGlite in a folder", () => {
  it("persists keys across instances", async () => {
    const dir = await mkdtemp(join(tmpdir(), "flux-pglite-"));
    try {
      const first = await createFlux({ database: { pglite: dir }, redis: null });
      await first.orgs.create({ id: "acme", name: "Acme" });
      const { secret } = await first.keys.create().forOrg("acme").issue();
      await first.close();

      const second = await createFlux({ database: { pglite: dir }, redis: null });
      try {
        expect((await second.keys.verify(secret)).orgId).toBe("acme");
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("one schema per options section", () => {
  it("refuses an unknown name at any depth of every section, with its path", () => {
    const cases: Array<[unknown, string]> = [
      [{ cache: { maxx: 1 } }, "cache.maxx"],
      [{ invalidation: { staleness: "1s" } }, "invalidation.staleness"],
      [{ serverClock: { every: "1m" } }, "serverClock.every"],
      [{ telemetry: { attributes: { key: true } } }, "telemetry.attributes.key"],
      [{ usage: { flushEvery: "1s" } }, "usage.flushEvery"],
      [{ limits: { preAuth: { limit: 1, window: "1m", burst: 2 } } }, "limits.preAuth.burst"],
      [{ limits: { lease: { units: 5, size: 5 } } }, "limits.lease.size"],
      [{ webhooks: { backoff: { factor: 2 } } }, "webhooks.backoff.factor"],
      [
        { webhooks: { endpoints: [{ url: "https://example.com/", secret: "s".repeat(16), tag: 1 }] } },
        "webhooks.endpoints[0].tag",
      ],
      [{ observations: { maxClients: 1 } }, "observations.maxClients"],
    ];
    for (const [options, path] of cases) {
      expect(() => resolveOptions(options as never, {})).toThrow(
        expect.objectContaining({
          code: "unknown_option",
          message: `Unknown option '${path}' for createFlux().`,
        }),
      );
    }
  });

  it("says which option is wrong and how", () => {
    const cases: Array<[unknown, string]> = [
      [{ cache: { max: 0 } }, "cache.max must be a positive integer."],
      [{ usage: { flushInterval: "5 s" } }, "usage.flushInterval must be a duration such as '5s'."],
      [
        { webhooks: { backoff: { initial: "2h" } } },
        "webhooks.backoff.max must be at least backoff.initial.",
      ],
      [{ limits: { trustProxy: true } }, "set trustProxy once, at the top level: createFlux({ trustProxy })"],
      [{ redis: { cluster: [] } }, "redis.cluster must name at least one node."],
    ];
    for (const [options, message] of cases) {
      expect(() => resolveOptions(options as never, {})).toThrow(
        expect.objectContaining({ code: "invalid_option", message: expect.stringContaining(message) }),
      );
    }
  });

  it("fills every default from the schema, and keeps the caller's object as it was", () => {
    const options = { usage: { maxBufferedBuckets: 500 }, limits: { preAuth: false as const } };
    const copy = structuredClone(options);
    const resolved = resolveOptions(options, {});
    expect(options).toEqual(copy);
    expect(resolved.usage).toEqual({
      flushIntervalMs: 5_000,
      maxBufferedBuckets: 500,
      flushAt: 500,
      batchSize: 5_000,
      rollupAfterMs: 7 * 86_400_000,
      retentionMs: null,
      maintenanceIntervalMs: 3_600_000,
    });
    expect(resolved.limits).toEqual({ onStoreError: "insurance", preAuth: null, lease: false });
    expect(resolveOptions({}, {}).limits.preAuth).toEqual({
      limit: 30,
      windowSeconds: 60,
      maxAddresses: 50_000,
    });
    expect(resolveOptions({}, {}).serverClockIntervalMs).toBe(60_000);
    expect(resolveOptions({ clock: () => 0 }, {}).serverClockIntervalMs).toBeNull();
    expect(resolveOptions({ invalidation: { maxStaleness: 250 } }, {}).invalidation.maxStalenessMs).toBe(250);
  });
});

describe("the duration grammar", () => {
  it("takes milliseconds and a decimal with one unit, and nothing else", () => {
    expect(durationMs(1500)).toBe(1500);
    expect(durationMs("500ms")).toBe(500);
    expect(durationMs("30s")).toBe(30_000);
    expect(durationMs("15m")).toBe(900_000);
    expect(durationMs("1.5h")).toBe(5_400_000);
    expect(durationMs("7d")).toBe(604_800_000);
    expect(durationMs("2w")).toBe(1_209_600_000);
    for (const value of [
      "",
      "30",
      "5 s",
      " 5s",
      "-5s",
      "1y",
      "1 day",
      "5S",
      "s",
      ".5s",
      -1,
      Number.NaN,
      Infinity,
      null,
    ]) {
      expect(durationMs(value), String(value)).toBeNull();
    }
    expect(() => toMs("soon" as never, "gracePeriod")).toThrow(
      expect.objectContaining({ code: "invalid_request" }),
    );
  });
});
