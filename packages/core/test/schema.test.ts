/**
 * Proves the SQL migrations are what prisma/schema.prisma describes:
 * - every table and column of the migrated database is a model and field of the schema, and back
 *   (the month partitions of the usage tables are the usage tables: migration 0014);
 * - every model round-trips a row with every field set, on PGlite and on PostgreSQL;
 * - the migrator is idempotent and safe when two processes run it at once.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATABASE_URL, freshSchema, hasPostgres, STORES } from "../../../test/support/services.js";
import { openDatabase } from "../src/database.js";
import { createFlux, type Flux, migrate } from "../src/index.js";
import { ensurePartitions } from "../src/usage/usage-store.js";

const at = new Date("2026-05-04T03:02:01.123Z");

type Delegate = {
  create(args: { data: unknown }): Promise<unknown>;
  findUniqueOrThrow(args: { where: unknown }): Promise<unknown>;
};

/**
 * One row per model with every column set to a non-default value. Order matters (foreign keys).
 * A model missing here fails the "every model has a sample" test.
 */
const SAMPLES: Array<{ model: string; data: Record<string, unknown>; where: Record<string, unknown> }> = [
  {
    model: "Plan",
    data: {
      id: "p1",
      name: "Plan",
      scopes: ["a:b", "c:*"],
      rateLimits: [{ name: "burst", limit: 1, window: 1 }],
      quota: { limit: 5, period: "day" },
      entitlements: ["x"],
      createdAt: at,
      updatedAt: at,
    },
    where: { id: "p1" },
  },
  {
    model: "Org",
    data: {
      id: "o1",
      name: "Org",
      planId: "p1",
      metadata: { k: [1, "v"] },
      stripeCustomerId: "cus_1",
      createdAt: at,
      updatedAt: at,
    },
    where: { id: "o1" },
  },
  {
    model: "OrgEntitlement",
    data: { orgId: "o1", name: "sso", granted: false, expiresAt: at, updatedAt: at },
    where: { orgId_name: { orgId: "o1", name: "sso" } },
  },
  {
    model: "ApiKey",
    data: {
      id: "k2",
      orgId: "o1",
      name: "successor",
      digest: "d2",
      start: "flux_live_abcd",
      last4: "wxyz",
      environment: "test",
      scopes: [],
      createdByType: "system",
      createdAt: at,
    },
    where: { id: "k2" },
  },
  {
    model: "ApiKey",
    data: {
      id: "k1",
      orgId: "o1",
      name: "Key",
      digest: "d1",
      start: "flux_live_ABCD",
      last4: "WXYZ",
      environment: "live",
      scopes: ["a:b"],
      rateLimits: [{ name: "w", limit: 2, window: "1m", per: "org" }],
      allowFrom: ["10.0.0.0/8", "2001:db8::/32"],
      lineageId: "k0",
      quota: { limit: 9, period: "total" },
      metadata: { nested: { ok: true } },
      expiresAt: at,
      revokedAt: at,
      revokedReason: "why",
      replacedById: "k2",
      sunsetAt: at,
      createdByType: "admin",
      createdById: "me",
      lastUsedAt: at,
      version: 7,
      createdAt: at,
      updatedAt: at,
    },
    where: { id: "k1" },
  },
  {
    model: "AuditEvent",
    data: {
      id: 9_007_199_254_740_993n,
      at,
      orgId: "o1",
      keyId: "k1",
      action: "key.created",
      actorType: "user",
      actorId: "u",
      ip: "2001:db8::1",
      details: { a: 1 },
    },
    where: { id: 9_007_199_254_740_993n },
  },
  ...(["UsageMinute", "UsageHour"] as const).map((model) => ({
    model,
    data: {
      keyId: "k1",
      at,
      method: "GET",
      endpoint: "/v1/events/:id",
      statusClass: 4,
      outcome: "rate_limited",
      orgId: "o1",
      count: 9_007_199_254_740_993n,
      units: 9_007_199_254_740_995n,
      latencySum: 1234.5,
      latencyMax: 99.25,
    },
    where: {
      keyId_at_method_endpoint_statusClass_outcome: {
        keyId: "k1",
        at,
        method: "GET",
        endpoint: "/v1/events/:id",
        statusClass: 4,
        outcome: "rate_limited",
      },
    },
  })),
  {
    model: "BillingState",
    data: {
      orgId: "o1",
      provider: "stripe",
      subscriptionId: "sub_1",
      status: "past_due",
      paidPlanId: "p1",
      pastDueSince: at,
      eventAt: at,
      eventId: "evt_1",
      updatedAt: at,
    },
    where: { orgId: "o1" },
  },
  {
    model: "BillingEvent",
    data: { id: "evt_1", provider: "stripe", type: "t", orgId: "o1", outcome: "applied", receivedAt: at },
    where: { id: "evt_1" },
  },
  {
    model: "MeterSend",
    data: {
      meter: "m",
      orgId: "o1",
      at,
      seq: 2,
      value: 12n,
      identifier: "flux-m-o1-1",
      customerId: "cus_1",
      createdAt: at,
      sentAt: at,
    },
    where: { identifier: "flux-m-o1-1" },
  },
  { model: "UsageBatch", data: { id: "b1", appliedAt: at }, where: { id: "b1" } },
  { model: "LimitCounter", data: { key: "rl:q:k1:t", points: 7, expire: at }, where: { key: "rl:q:k1:t" } },
  {
    model: "PortalLink",
    data: {
      id: "l1",
      orgId: "o1",
      userId: "u1",
      role: "admin",
      returnUrl: "https://app.example/settings",
      expiresAt: at,
      usedAt: at,
      createdAt: at,
    },
    where: { id: "l1" },
  },
  {
    model: "PortalSession",
    data: {
      id: "s1",
      orgId: "o1",
      userId: "u1",
      role: "member",
      returnUrl: "/back",
      expiresAt: at,
      createdAt: at,
    },
    where: { id: "s1" },
  },
  {
    model: "LifecycleEvent",
    data: {
      id: "evt1",
      type: "key.expiring",
      orgId: "o1",
      keyId: "k1",
      data: { keyId: "k1", daysLeft: 3 },
      dedupeKey: "key.expiring:k1:1",
      createdAt: at,
      dispatchedAt: at,
    },
    where: { id: "evt1" },
  },
  {
    model: "WebhookEndpoint",
    data: {
      id: "we1",
      url: "https://hooks.example/flux",
      secret: "whsec_x",
      events: ["key.created"],
      createdAt: at,
    },
    where: { id: "we1" },
  },
  {
    model: "WebhookDelivery",
    data: {
      id: "wd1",
      eventId: "evt1",
      endpointId: "we1",
      url: "https://hooks.example/flux",
      status: "failed",
      attempts: 3,
      lastStatusCode: 500,
      lastError: "http_500",
      nextAttemptAt: at,
      lockedUntil: at,
      deliveredAt: at,
      createdAt: at,
      updatedAt: at,
    },
    where: { id: "wd1" },
  },
  {
    model: "KeyClient",
    data: {
      keyId: "k1",
      address: "2001:db8::1",
      userAgent: "curl/8",
      firstSeenAt: at,
      lastSeenAt: at,
      calls: 3n,
    },
    where: { keyId_address_userAgent: { keyId: "k1", address: "2001:db8::1", userAgent: "curl/8" } },
  },
  {
    model: "KeyScopeUse",
    data: { keyId: "k1", scope: "read:events", firstUsedAt: at, lastUsedAt: at, calls: 5n },
    where: { keyId_scope: { keyId: "k1", scope: "read:events" } },
  },
];

const SQL_TYPES: Record<string, string[]> = {
  String: ["text", "ARRAY"],
  Int: ["integer"],
  BigInt: ["bigint"],
  Float: ["double precision"],
  Boolean: ["boolean"],
  DateTime: ["timestamp with time zone"],
  Json: ["jsonb"],
};

interface RuntimeModel {
  dbName: string | null;
  fields: Array<{ name: string; kind: string; type: string; dbName?: string }>;
}

function runtimeModels(flux: Flux): Record<string, RuntimeModel> {
  return (
    flux.internals.database.prisma as unknown as {
      _runtimeDataModel: { models: Record<string, RuntimeModel> };
    }
  )._runtimeDataModel.models;
}

function delegate(flux: Flux, model: string): Delegate {
  const name = model[0]?.toLowerCase() + model.slice(1);
  return (flux.internals.database.prisma as unknown as Record<string, Delegate>)[name] as Delegate;
}

describe.each(STORES)("schema and migrations on $name", (store) => {
  let flux: Flux;
  let teardown: () => Promise<void>;

  beforeAll(async () => {
    if (!store.available) return;
    const target = await store.setup();
    teardown = target.teardown;
    flux = await createFlux(target.options());
  });
  afterAll(async () => {
    await flux?.close();
    await teardown?.();
  });

  it.skipIf(!store.available)("has a sample row for every model", () => {
    const sampled = new Set(SAMPLES.map((s) => s.model));
    expect(Object.keys(runtimeModels(flux)).filter((m) => !sampled.has(m))).toEqual([]);
  });

  it.skipIf(!store.available)("has exactly the tables and columns the schema describes", async () => {
    const rows = await flux.internals.database.prisma.$queryRaw<
      Array<{ table_name: string; column_name: string; data_type: string }>
    >`SELECT table_name, column_name, data_type FROM information_schema.columns
       WHERE table_schema = current_schema() AND table_name <> 'flux_migrations'
         AND table_name NOT IN (SELECT c.relname FROM pg_class c
                                WHERE c.relispartition AND c.relnamespace = to_regnamespace(quote_ident(current_schema())))`;
    const actual = new Map<string, Map<string, string>>();
    for (const row of rows) {
      if (!actual.has(row.table_name)) actual.set(row.table_name, new Map());
      actual.get(row.table_name)?.set(row.column_name, row.data_type);
    }
    const models = Object.entries(runtimeModels(flux));
    expect([...actual.keys()].sort()).toEqual(models.map(([name, m]) => m.dbName ?? name).sort());
    for (const [name, model] of models) {
      const columns = actual.get(model.dbName ?? name) ?? new Map();
      const scalars = model.fields.filter((f) => f.kind === "scalar");
      expect([...columns.keys()].sort(), name).toEqual(scalars.map((f) => f.dbName ?? f.name).sort());
      for (const field of scalars) {
        expect(SQL_TYPES[field.type], `${name}.${field.name}`).toContain(
          columns.get(field.dbName ?? field.name),
        );
      }
    }
  });

  it.skipIf(!store.available)("round-trips every model with every field set", async () => {
    // Usage rows go in through the flush, which first creates their month's partition.
    await ensurePartitions(flux.internals.database.driver, [at.getTime()]);
    for (const sample of SAMPLES) {
      await delegate(flux, sample.model).create({ data: sample.data });
      const read = (await delegate(flux, sample.model).findUniqueOrThrow({ where: sample.where })) as Record<
        string,
        unknown
      >;
      expect(read, sample.model).toMatchObject(sample.data);
    }
  });

  it.skipIf(!store.available)("applies nothing the second time", async () => {
    const report = await migrate(flux.internals.database.driver);
    expect(report.applied).toEqual([]);
    expect(report.alreadyApplied.length).toBeGreaterThan(0);
  });
});

describe.skipIf(!hasPostgres)("migrator on PostgreSQL", () => {
  it("is safe from two processes at once", async () => {
    const { schema, drop } = await freshSchema();
    try {
      const config = { kind: "postgres" as const, url: DATABASE_URL, schema, poolSize: 2 };
      const [a, b] = await Promise.all([openDatabase(config), openDatabase(config)]);
      const [ra, rb] = await Promise.all([migrate(a.driver), migrate(b.driver)]);
      expect([...ra.applied, ...rb.applied].sort()).toEqual([...ra.alreadyApplied, ...ra.applied].sort());
      expect(ra.applied.length === 0 || rb.applied.length === 0).toBe(true);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await drop();
    }
  });

  it("refuses a migration that changed after it was applied", async () => {
    const { schema, drop } = await freshSchema();
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      const db = await openDatabase({ kind: "postgres", url: DATABASE_URL, schema, poolSize: 1 });
      await migrate(db.driver);
      await client.query(`UPDATE "${schema}"."flux_migrations" SET checksum = 'x' WHERE id = '0001_init'`);
      await expect(migrate(db.driver)).rejects.toMatchObject({ code: "migration_failed" });
      await db.close();
    } finally {
      await client.end();
      await drop();
    }
  });
});
