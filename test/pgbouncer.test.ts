/**
 * Flux Keys through PgBouncer in transaction pooling (Debian's pgbouncer on a loopback port, 2
 * server connections shared by every client): migrations, issuance, verification and the usage
 * flush go through the pooler; the invalidation bus's LISTEN and the migrator go to `directUrl`.
 * A fresh database per run (the pooler forwards no `search_path` startup option, so no schema).
 */
import { createFlux, type Flux, migrate } from "@flux-keys/core";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../packages/core/src/database.js";
import { hasPgBouncer, type RunningBouncer, startPgBouncer } from "./support/pgbouncer.js";
import { DATABASE_URL, hasPostgres, uniqueName } from "./support/services.js";

async function admin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe.skipIf(!hasPostgres || !hasPgBouncer)("PgBouncer in transaction pooling", () => {
  const database = uniqueName("flux_pgb");
  let bouncer: RunningBouncer;
  let directUrl: string;
  const instances: Flux[] = [];

  beforeAll(async () => {
    await admin(DATABASE_URL, (c) => c.query(`CREATE DATABASE "${database}"`));
    const direct = new URL(DATABASE_URL);
    direct.pathname = `/${database}`;
    directUrl = direct.toString();
    bouncer = await startPgBouncer({ database, poolSize: 2 });
  });

  afterAll(async () => {
    for (const flux of instances) await flux.close().catch(() => {});
    await bouncer?.stop();
    await admin(DATABASE_URL, (c) => c.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`));
  });

  /** Transactions PgBouncer has served so far (its admin console). */
  async function pooledTransactions(): Promise<number> {
    return admin(bouncer.adminUrl, async (c) => {
      const { rows } = await c.query("SHOW STATS");
      const row = rows.find((r) => r.database === database);
      return Number(row?.total_xact_count ?? 0);
    });
  }

  const open = (extra: { migrate?: boolean } = {}) =>
    createFlux({
      database: { url: bouncer.url, directUrl, poolSize: 8 },
      redis: null,
      ...extra,
    }).then((flux) => {
      instances.push(flux);
      return flux;
    });

  it("migrates through the pooler, twice at once, applying each migration once", async () => {
    const [a, b] = await Promise.all([
      openDatabase({ kind: "postgres", url: bouncer.url, schema: undefined, poolSize: 2 }),
      openDatabase({ kind: "postgres", url: bouncer.url, schema: undefined, poolSize: 2 }),
    ]);
    try {
      const [ra, rb] = await Promise.all([migrate(a.driver), migrate(b.driver)]);
      // One run took the (transaction-scoped) lock and applied everything; the other found it done.
      expect(ra.applied.length === 0 || rb.applied.length === 0).toBe(true);
      expect([...ra.applied, ...rb.applied]).toContain("0013_usage_outcomes");
      expect((await migrate(a.driver)).applied).toEqual([]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("runs the migrator over directUrl: it still works with the pooler paused", async () => {
    const db = await openDatabase({
      kind: "postgres",
      url: bouncer.url,
      schema: undefined,
      poolSize: 2,
      directUrl,
    });
    await admin(bouncer.adminUrl, (c) => c.query(`PAUSE ${database}`));
    try {
      const report = await Promise.race([
        migrate(db.sessionDriver),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error("went through the pooler")), 5_000),
        ),
      ]);
      expect(report.applied).toEqual([]);
      expect(report.alreadyApplied).toContain("0013_usage_outcomes");
    } finally {
      await admin(bouncer.adminUrl, (c) => c.query(`RESUME ${database}`));
      await db.close();
    }
  });

  it("issues, verifies and flushes usage through the pooler, exactly", async () => {
    const flux = await open();
    const before = await pooledTransactions();
    await flux.plans.upsert({
      id: "pro",
      name: "Pro",
      scopes: ["read:events"],
      rateLimits: [{ name: "burst", limit: 3, window: "1m" }],
    });
    await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
    // 40 issuances, 8 at a time (each a transaction holding one of the 8 client connections),
    // over the 2 server connections the pooler shares between them.
    const issued: Array<Awaited<ReturnType<ReturnType<Flux["keys"]["create"]>["issue"]>>> = [];
    for (let round = 0; round < 5; round++) {
      issued.push(
        ...(await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            flux.keys.create().forOrg("acme").named(`k${round}.${i}`).withScopes(["read:events"]).issue(),
          ),
        )),
      );
    }
    expect(new Set(issued.map((k) => k.key.id)).size).toBe(40);
    // Every key verified 4 times at once (first reads from the database): 3 allowed, 1 rate limited.
    const results = await Promise.all(
      issued.flatMap(({ secret }) => Array.from({ length: 4 }, () => flux.keys.check(secret))),
    );
    expect(results.filter((r) => r.valid)).toHaveLength(120);
    expect(results.filter((r) => !r.valid && r.error.code === "rate_limited")).toHaveLength(40);
    for (const result of results) {
      const id = result.valid ? result.context : result.key;
      if (id === undefined) throw new Error("every result names its key");
      flux.usage.record({
        keyId: id.keyId,
        orgId: id.orgId,
        method: "GET",
        endpoint: "/v1/events",
        status: result.valid ? 200 : 429,
        latencyMs: 1,
        outcome: result.valid ? "allowed" : "rate_limited",
      });
    }
    await flux.usage.flush();
    expect(flux.usage.stats()).toMatchObject({ flushed: 160, dropped: 0, failedFlushes: 0 });
    const usage = await flux.usage.query({
      orgId: "acme",
      from: new Date(Date.now() - 3_600_000),
      to: new Date(Date.now() + 60_000),
      granularity: "hour",
      groupBy: ["outcome"],
    });
    expect(Object.fromEntries(usage.series.map((s) => [s.group.outcome, s.totals.calls]))).toEqual({
      allowed: 120,
      rate_limited: 40,
    });
    // All of it went through the pooler.
    expect((await pooledTransactions()) - before).toBeGreaterThan(80);
  });

  it("hears a revocation on every instance within a second: LISTEN is on the direct connection", async () => {
    const [a, b] = [await open({ migrate: false }), await open({ migrate: false })];
    await a.orgs.create({ id: "globex", name: "Globex" });
    const { key, secret } = await a.keys.create().forOrg("globex").issue();
    expect((await b.keys.check(secret)).valid).toBe(true); // cached on b
    // The bus sessions are on the server itself, not among the pooler's clients.
    const listening = await admin(directUrl, async (c) => {
      const { rows } = await c.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'flux-keys-bus'",
      );
      return rows[0].n as number;
    });
    expect(listening).toBeGreaterThanOrEqual(2);
    const pooledBus = await admin(bouncer.adminUrl, async (c) => {
      const { rows } = await c.query("SHOW CLIENTS");
      return rows.filter((r) => r.application_name === "flux-keys-bus").length;
    });
    expect(pooledBus).toBe(0);
    const revokedAt = Date.now();
    await a.keys.revoke(key.id);
    let refused = false;
    while (!refused && Date.now() - revokedAt < 1_000) {
      const result = await b.keys.check(secret);
      refused = !result.valid && result.error.code === "key_revoked";
      if (!refused) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(refused).toBe(true);
  });
});
