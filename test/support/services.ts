/**
 * The real services the suites talk to. Outside CI a missing service skips the suites that need
 * it; under CI (CI=true) a missing service fails the run instead.
 */
import { randomBytes } from "node:crypto";
import { createFlux, type FluxOptions } from "@flux-keys/core";
import { Redis } from "ioredis";
import pg from "pg";

export const DATABASE_URL = process.env.FLUX_TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
export const REDIS_URL = process.env.FLUX_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const IN_CI = Boolean(process.env.CI);

async function reachable(name: string, probe: () => Promise<void>): Promise<boolean> {
  try {
    await probe();
    return true;
  } catch (error) {
    if (IN_CI) {
      throw new Error(`${name} is required under CI but unreachable (${(error as Error).message})`);
    }
    return false;
  }
}

export const hasPostgres = await reachable("PostgreSQL", async () => {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 2_000 });
  await client.connect();
  await client.end();
});

export const hasRedis = await reachable("Redis", async () => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0 });
  redis.on("error", () => {});
  try {
    await redis.connect();
    await redis.ping();
  } finally {
    redis.disconnect();
  }
});

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString("hex")}`;
}

/** A fresh PostgreSQL schema for one suite; `drop()` removes it. */
export async function freshSchema(): Promise<{ schema: string; drop(): Promise<void> }> {
  const schema = uniqueName("flux_test");
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.end();
  return {
    schema,
    async drop() {
      const c = new pg.Client({ connectionString: DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await c.end();
    },
  };
}

export interface StoreTarget {
  name: "pglite" | "postgres";
  available: boolean;
  /** Options for one instance on this store; calls with the same `shared` value share data. */
  setup(): Promise<{ options: (extra?: FluxOptions) => FluxOptions; teardown(): Promise<void> }>;
}

export const STORES: StoreTarget[] = [
  {
    name: "pglite",
    available: true,
    async setup() {
      return {
        options: (extra = {}) => ({ database: { pglite: true }, redis: null, ...extra }),
        teardown: async () => {},
      };
    },
  },
  {
    name: "postgres",
    available: hasPostgres,
    async setup() {
      const { schema, drop } = await freshSchema();
      return {
        options: (extra = {}) => ({
          database: { url: DATABASE_URL, schema, poolSize: 4 },
          redis: null,
          ...extra,
        }),
        teardown: drop,
      };
    },
  },
];

/** Calls of the examples' demo org recorded in the last hour, in the schema an example ran on. */
export async function demoOrgCalls(schema: string): Promise<number> {
  const flux = await createFlux({ database: { url: DATABASE_URL, schema }, redis: null, migrate: false });
  try {
    const result = await flux.usage.query({
      orgId: "demo-org",
      from: new Date(Date.now() - 3_600_000),
      to: new Date(Date.now() + 60_000),
      granularity: "hour",
    });
    return result.series.reduce((sum, series) => sum + series.totals.calls, 0);
  } finally {
    await flux.close();
  }
}
