/**
 * Issue 2 benchmark: cached verify throughput on one core, and cold verify (cache miss) latency
 * with 100,000 keys in the table, on PGlite and on the local PostgreSQL.
 *
 *   pnpm bench verify        (or: npx tsx --conditions=source bench/verify.bench.ts)
 *
 * Set BENCH_DATABASE_URL to point at another PostgreSQL (default: the local one).
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { createFlux, type Flux } from "@flux-keys/core";
import pg from "pg";
import { filterHash } from "../packages/core/src/keys/digest-filter.js";
import { displayParts, generateKey } from "../packages/core/src/keys/format.js";

const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const TABLE_KEYS = Number(process.env.BENCH_KEYS ?? 100_000);
const COLD_SAMPLES = Number(process.env.BENCH_COLD_SAMPLES ?? 2_000);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function cachedThroughput(flux: Flux, secret: string): Promise<number> {
  await flux.keys.verify(secret);
  const run = async (n: number) => {
    const start = performance.now();
    for (let i = 0; i < n; i++) await flux.keys.verify(secret);
    return n / ((performance.now() - start) / 1000);
  };
  await run(200_000); // warm up the JIT
  const rates = [await run(1_000_000), await run(1_000_000), await run(1_000_000)];
  return Math.max(...rates);
}

/** Inserts `count` keys straight into the table (fast), returning `samples` secrets among them. */
async function fillKeys(flux: Flux, orgId: string, count: number, samples: number): Promise<string[]> {
  const prisma = flux.internals.database.prisma;
  const secrets: string[] = [];
  const batch = 5_000;
  for (let done = 0; done < count; done += batch) {
    const rows = [];
    for (let i = 0; i < Math.min(batch, count - done); i++) {
      const { secret } = generateKey("flux", "live");
      if (secrets.length < samples && (done + i) % Math.floor(count / samples) === 0) secrets.push(secret);
      rows.push({
        id: `key_bench_${done + i}_${randomBytes(4).toString("hex")}`,
        orgId,
        name: "bench",
        digest: flux.keys.digest(secret),
        ...displayParts(secret, "flux"),
        environment: "live",
        scopes: ["read:events"],
        createdByType: "system",
      });
    }
    await prisma.apiKey.createMany({ data: rows });
    // Inserted behind core's back: tell the digest filter, as issuing through core does.
    flux.internals.unknownKeys.apply({
      kind: "unknown-keys",
      filter: rows.map((row) => filterHash(row.digest)),
    });
  }
  return secrets;
}

async function coldLatency(flux: Flux, secrets: string[]) {
  // Warm up the connection pool and the query plan with a few misses first.
  for (const secret of secrets.slice(0, 50)) await flux.keys.check(`${secret.slice(0, -6)}000000`);
  const samples: number[] = [];
  for (const secret of secrets) {
    const start = performance.now();
    const result = await flux.keys.check(secret);
    samples.push(performance.now() - start);
    if (!result.valid) throw new Error(`bench key did not verify: ${result.error.code}`);
  }
  samples.sort((a, b) => a - b);
  return {
    p50: percentile(samples, 50),
    p90: percentile(samples, 90),
    p99: percentile(samples, 99),
    n: samples.length,
  };
}

async function scenario(name: string, flux: Flux) {
  await flux.plans.upsert({ id: "bench", name: "Bench", entitlements: ["x"] });
  await flux.orgs.create({ id: "bench-org", name: "Bench", planId: "bench" });
  const t0 = performance.now();
  const secrets = await fillKeys(flux, "bench-org", TABLE_KEYS, COLD_SAMPLES);
  const fillSeconds = (performance.now() - t0) / 1000;
  const cold = await coldLatency(flux, secrets);
  const { secret } = await flux.keys.create().forOrg("bench-org").withScopes(["read:events"]).issue();
  const cached = await cachedThroughput(flux, secret);
  console.log(
    JSON.stringify({
      store: name,
      keysInTable: TABLE_KEYS,
      fillSeconds: +fillSeconds.toFixed(1),
      coldVerifyMs: {
        p50: +cold.p50.toFixed(3),
        p90: +cold.p90.toFixed(3),
        p99: +cold.p99.toFixed(3),
        samples: cold.n,
      },
      cachedVerifyPerSecond: Math.round(cached),
    }),
  );
}

const only = process.argv[2];
if (!only || only === "pglite") {
  const flux = await createFlux({ database: { pglite: true }, redis: null });
  try {
    await scenario("pglite", flux);
  } finally {
    await flux.close();
  }
}
if (!only || only === "postgres") {
  const schema = `flux_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  const flux = await createFlux({ database: { url: DATABASE_URL, schema }, redis: null });
  try {
    await scenario("postgres", flux);
  } finally {
    await flux.close();
    await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
    await admin.end();
  }
}
