/**
 * The invalidation bus on PostgreSQL: every committed change to a key, org, plan or entitlement
 * override reaches every instance within 1 s through `LISTEN/NOTIFY`, with no Redis, whichever
 * process made it (another instance, the `flux` CLI with its own settings, plain SQL); and an
 * instance that cannot hear the bus trusts a cached record for at most `invalidation.maxStaleness`.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createFlux, type Flux } from "@flux-keys/core";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FaultyProxy, pgAvailable, ThrowawayPostgres, until } from "./support/faults-services.js";
import {
  DATABASE_URL,
  freshSchema,
  hasPostgres,
  hasRedis,
  REDIS_URL,
  uniqueName,
} from "./support/services.js";

const CLI = fileURLToPath(new URL("../packages/cli/bin/flux.mjs", import.meta.url));

/** ms until `check` gives up the key on `flux`, polling; throws past `timeoutMs`. */
async function msUntilRefused(flux: Flux, secret: string, timeoutMs = 3_000): Promise<number> {
  const start = Date.now();
  await until(async () => !(await flux.keys.check(secret)).valid, timeoutMs, "the key refused");
  return Date.now() - start;
}

function runCli(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code: code ?? -1, out }));
  });
}

describe.skipIf(!hasPostgres)("invalidation over PostgreSQL LISTEN/NOTIFY", () => {
  let a: Flux;
  let b: Flux;
  let schema: string;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const fresh = await freshSchema();
    schema = fresh.schema;
    drop = fresh.drop;
    // Long TTLs: only the bus can make B forget. No Redis anywhere.
    const options = {
      database: { url: DATABASE_URL, schema, poolSize: 2 },
      redis: null,
      cache: { ttl: "10m", negativeTtl: "10m" },
    } as const;
    a = await createFlux(options);
    b = await createFlux(options);
    await a.plans.upsert({ id: "pro", name: "Pro", scopes: ["read:events"], entitlements: ["sso"] });
    await a.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await drop?.();
  });

  it("a revoke on A is refused by B within 1 s, with no Redis at all", async () => {
    const { key, secret } = await a.keys.create().forOrg("acme").issue();
    await b.keys.verify(secret);
    await a.keys.revoke(key.id);
    expect(await msUntilRefused(b, secret)).toBeLessThan(1_000);
    expect(await b.keys.check(secret)).toMatchObject({ error: { code: "key_revoked" } });
  });

  it("rotation, updates, plan and entitlement changes on A reach B within 1 s", async () => {
    const { key, secret } = await a.keys.create().forOrg("acme").issue();
    await b.keys.verify(secret);
    const rotated = await a.keys.rotate(key.id, { gracePeriod: "1h" });
    await until(async () => (await b.keys.verify(secret)).rotation?.replacedBy === rotated.key.id, 1_000);
    await b.keys.verify(rotated.secret);
    await a.keys.update(rotated.key.id, { name: "renamed" });
    await until(async () => (await b.keys.verify(rotated.secret)).name === "renamed", 1_000);
    await a.plans.upsert({ id: "pro", name: "Pro", scopes: ["read:events"], entitlements: ["sso", "bulk"] });
    await until(async () => (await b.keys.verify(rotated.secret)).entitlements.includes("bulk"), 1_000);
    await a.orgs.setEntitlement("acme", "sso", { granted: false });
    await until(async () => !(await b.keys.verify(rotated.secret)).entitlements.includes("sso"), 1_000);
  });

  it("a change made with plain SQL by another program reaches every instance", async () => {
    const { key, secret } = await a.keys.create().forOrg("acme").issue();
    await a.keys.verify(secret);
    await b.keys.verify(secret);
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      await client.query(`UPDATE "${schema}"."flux_api_keys" SET "revoked_at" = now() WHERE "id" = $1`, [
        key.id,
      ]);
    } finally {
      await client.end();
    }
    expect(await msUntilRefused(a, secret)).toBeLessThan(1_000);
    expect(await msUntilRefused(b, secret)).toBeLessThan(1_000);
  });

  it("usage bookkeeping (last used) does not invalidate anything", async () => {
    const { key, secret } = await a.keys.create().forOrg("acme").issue();
    await b.keys.verify(secret);
    const digest = b.keys.digest(secret);
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      await client.query(`UPDATE "${schema}"."flux_api_keys" SET "last_used_at" = now() WHERE "id" = $1`, [
        key.id,
      ]);
    } finally {
      await client.end();
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(b.internals.cache.get(digest)).toBeTruthy();
  });

  it("a key issued on A is accepted on B within 1 s with no lookup budget: the filter learns it from the bus", async () => {
    const strictB = await createFlux({
      database: { url: DATABASE_URL, schema, poolSize: 2 },
      redis: null,
      cache: { unknownLookupsPerSecond: 0 },
    });
    try {
      const { secret } = await a.keys.create().forOrg("acme").issue();
      await until(async () => (await strictB.keys.check(secret)).valid, 1_000, "B accepting the new key");
    } finally {
      await strictB.close();
    }
  });

  it("a freshly issued key is never blocked by a stale unknown-key entry on another instance", async () => {
    // B remembers a digest as unknown (as if the secret had been presented before it existed).
    const issued = a.keys.create().forOrg("acme").issue();
    const { secret } = await issued;
    const digest = b.keys.digest(secret);
    b.internals.cache.apply({ kind: "all" });
    // B's negative cache (apart from the known keys) remembers the digest as unknown.
    b.internals.unknownKeys.settle(digest, false, b.internals.unknownKeys.currentEpoch());
    expect(b.internals.unknownKeys.admit(digest)).toBe("unknown");
    // Issuing any key on A makes every instance forget its unknown-key entries.
    await a.keys.create().forOrg("acme").issue();
    await until(async () => (await b.keys.check(secret)).valid, 1_000);
  });

  it.skipIf(!hasRedis)(
    "the flux CLI, without Redis and with none of the app's settings, is heard by a running app",
    async () => {
      const app = await createFlux({
        database: { url: DATABASE_URL, schema, poolSize: 2 },
        redis: { url: REDIS_URL, keyPrefix: `${uniqueName("myapp")}:` },
        cache: { ttl: "10m", negativeTtl: "10m" },
      });
      try {
        const { key, secret } = await a.keys.create().forOrg("acme").issue();
        await app.keys.verify(secret);
        const url = new URL(DATABASE_URL);
        url.searchParams.set("schema", schema);
        const started = Date.now();
        const result = await runCli(["keys", "revoke", key.id, "--reason", "cli"], {
          DATABASE_URL: url.toString(),
        });
        expect(result.code, result.out).toBe(0);
        const revokedAt = Date.now();
        await until(async () => !(await app.keys.check(secret)).valid, 1_000, "the app hearing the CLI");
        expect(Date.now() - revokedAt).toBeLessThan(1_000);
        expect(revokedAt - started).toBeGreaterThan(0);
      } finally {
        await app.close();
      }
    },
  );
});

describe.skipIf(!pgAvailable)("fault: an instance that cannot hear the bus", () => {
  let server: ThrowawayPostgres;
  let proxy: FaultyProxy;
  let a: Flux;
  /** Hears through the proxy; serves its cache while the database is down. */
  let deaf: Flux;
  /** Hears through the proxy; refuses while deaf and the database is down. */
  let strict: Flux;

  beforeAll(async () => {
    server = await ThrowawayPostgres.create();
    await server.start();
    proxy = await FaultyProxy.start(server.port);
    const direct = `postgresql://postgres@127.0.0.1:${proxy.port}/postgres`;
    a = await createFlux({ database: { url: server.url, poolSize: 2 }, redis: null });
    const listening = (whenDatabaseDown: "serve-cached" | "refuse") =>
      createFlux({
        database: { url: server.url, directUrl: direct, poolSize: 2 },
        redis: null,
        cache: { ttl: "10m" },
        invalidation: { maxStaleness: "1s", whenDatabaseDown },
      });
    deaf = await listening("serve-cached");
    strict = await listening("refuse");
    await a.plans.upsert({ id: "pro", name: "Pro" });
    await a.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
  });
  afterAll(async () => {
    for (const flux of [a, deaf, strict]) await flux?.close().catch(() => {});
    await proxy?.close();
    await server?.destroy();
  });

  it("while its bus is partitioned, a revoke elsewhere is refused within about 1 s", async () => {
    const { key, secret } = await a.keys.create().forOrg("acme").issue();
    await deaf.keys.verify(secret);
    proxy.blackHole();
    try {
      // The partition is silent: nothing tells the instance its bus went away.
      await new Promise((resolve) => setTimeout(resolve, 100));
      await a.keys.revoke(key.id);
      const ms = await msUntilRefused(deaf, secret, 5_000);
      // maxStaleness (1 s) from the last moment the bus was known to be heard, plus a poll.
      expect(ms).toBeLessThan(1_500);
      expect(await deaf.keys.check(secret)).toMatchObject({ error: { code: "key_revoked" } });
    } finally {
      proxy.heal();
    }
  });

  it("answers concurrent requests while deaf (one read at a time per key), and drops its cache when it hears again", async () => {
    const { secret } = await a.keys.create().forOrg("acme").issue();
    await deaf.keys.verify(secret);
    const digest = deaf.keys.digest(secret);
    proxy.blackHole();
    proxy.cut();
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      expect(await listening(deaf)).toBe(false);
      // Past maxStaleness the record is read again, once for all of them; none is refused.
      const results = await Promise.all(Array.from({ length: 50 }, () => deaf.keys.check(secret)));
      expect(results.every((r) => r.valid)).toBe(true);
      expect(deaf.internals.cache.get(digest)).toBeTruthy();
    } finally {
      proxy.heal();
    }
    await until(() => listening(deaf), 5_000, "hearing again");
    // What it cached while deaf is dropped once it hears again: messages sent meanwhile are lost.
    expect(deaf.internals.cache.get(digest)).toBeUndefined();
  });

  it("when the database is down as well, whenDatabaseDown decides: serve the cached state or refuse", async () => {
    const { secret } = await a.keys.create().forOrg("acme").issue();
    await until(async () => (await listening(deaf)) && (await listening(strict)), 5_000, "both hearing");
    await deaf.keys.verify(secret);
    await strict.keys.verify(secret);
    await server.stop("fast");
    try {
      // Past maxStaleness neither instance may trust its cache without asking the database.
      await new Promise((resolve) => setTimeout(resolve, 1_600));
      expect((await deaf.keys.check(secret)).valid).toBe(true);
      expect(await strict.keys.check(secret)).toMatchObject({
        valid: false,
        error: { code: "store_unavailable" },
      });
    } finally {
      await server.start();
    }
    // Back: both hear again and serve from the database.
    await until(async () => (await strict.keys.check(secret)).valid, 10_000, "strict serving again");
  });
});

/** Whether the instance's bus is connected and its heartbeat current. */
async function listening(flux: Flux): Promise<boolean> {
  return flux.internals.bus.hearing();
}
