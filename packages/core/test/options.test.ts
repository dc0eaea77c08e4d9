import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createFlux } from "../src/index.js";
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
