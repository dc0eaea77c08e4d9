/**
 * Issue 9, scale, on the local PostgreSQL in a fresh schema (dropped afterwards):
 * - 1,000,000 keys across 10,000 orgs: 10 big orgs of ~10,000 keys each, 9,990 orgs of ~90; 5%
 *   revoked, 5% expired; 1,000 orgs with entitlement overrides. 998,000 rows are generated in SQL
 *   (digests of strings that are not keys), 2,000 are real keys generated here and inserted with
 *   createMany, so they can be presented.
 *   - cold verify: each of the 2,000 real keys verified once by a fresh instance (all cache misses);
 *   - portal list pages: `flux.keys.list({ orgId, limit: 50 })`, first pages of 1,000 orgs and
 *     pages deep into the big orgs (cursor), and the portal's own GET /portal/api/keys through a
 *     real session (link -> cookie), in process (Web Request -> Response, no HTTP server);
 * - 10,000,000 minute usage buckets over the last 60 days (the loader of bench/usage.bench.ts,
 *   with org ids of this dataset): the 30-day hourly query of an org (target < 200 ms), of the
 *   big org (1% of the table), and the portal's 30-day usage endpoint.
 *
 *   pnpm bench scale     (or: npx tsx --conditions=source bench/scale.bench.ts)
 *
 * BENCH_SCALE_KEYS / BENCH_SCALE_USAGE_ROWS shrink the dataset for a quick run. Needs ~3 GB of disk
 * while it runs.
 */
import { performance } from "node:perf_hooks";
import {
  type ApiKeyInfo,
  createFlux,
  type Flux,
  type KeyListQuery,
  type Page,
  type UsageQuery,
} from "@flux-keys/core";
import { filterHash } from "../packages/core/src/keys/digest-filter.js";
import { displayParts, generateKey } from "../packages/core/src/keys/format.js";
import {
  type BenchSchema,
  DATABASE_URL,
  freshSchema,
  loadUsageMinutes,
  percentile,
  quietMachine,
} from "./load-support.js";

const KEYS = Number(process.env.BENCH_SCALE_KEYS ?? 1_000_000);
const ORGS = 10_000;
const BIG_ORGS = 10;
const SAMPLES = 2_000;
const USAGE_ROWS = Number(process.env.BENCH_SCALE_USAGE_ROWS ?? 10_000_000);
const USAGE_KEYS = 10_000;
const PER_KEY = Math.ceil(USAGE_ROWS / USAGE_KEYS);
const DAY = 86_400_000;

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

function line(name: string, samples: number[]): string {
  const s = stats(samples);
  return `${name}: n=${s.n}, p50 ${s.p50.toFixed(2)} ms, p90 ${s.p90.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms, max ${s.max.toFixed(1)} ms`;
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const start = performance.now();
  const value = await fn();
  return [performance.now() - start, value];
}

/** Deterministic pseudo-random numbers, so reruns sample the same orgs. */
function rng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1_664_525 + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

async function loadKeys(schema: BenchSchema, flux: Flux): Promise<string[]> {
  const { admin } = schema;
  const t = (name: string) => `"${schema.name}"."${name}"`;
  await flux.plans.upsert({
    id: "scale",
    name: "Scale",
    scopes: ["read:events", "write:events"],
    entitlements: ["bulk_export", "sso"],
  });
  const started = performance.now();
  await admin.query(`
    INSERT INTO ${t("flux_orgs")} ("id", "name", "plan_id", "created_at", "updated_at")
    SELECT 'org_' || i, 'Org ' || i, 'scale', now() - i * INTERVAL '1 minute', now()
    FROM generate_series(0, ${ORGS - 1}) AS i`);
  await admin.query(`
    INSERT INTO ${t("flux_org_entitlements")} ("org_id", "name", "granted", "updated_at")
    SELECT 'org_' || i, CASE WHEN i % 2 = 0 THEN 'beta' ELSE 'sso' END, i % 2 = 0, now()
    FROM generate_series(0, ${ORGS - 1}, 10) AS i`);
  // Loaded without the secondary indexes, rebuilt afterwards exactly as 0001_init.sql defines them.
  await admin.query(
    `DROP INDEX ${t("flux_api_keys_digest_key")}, ${t("flux_api_keys_replaced_by_id_key")}, ${t("flux_api_keys_org_id_created_at_id_idx")}`,
  );
  const generated = KEYS - SAMPLES;
  await admin.query(`SET maintenance_work_mem = '512MB'`);
  // 10% of the keys in 10 big orgs, 90% spread over the other 9,990; created over the last year.
  await admin.query(`
    INSERT INTO ${t("flux_api_keys")}
      ("id", "org_id", "name", "digest", "start", "last4", "environment", "scopes", "expires_at",
       "revoked_at", "revoked_reason", "created_by_type", "created_by_id", "created_at", "updated_at")
    SELECT 'key_s' || i,
           CASE WHEN i % 100 < 10 THEN 'org_' || (i % ${BIG_ORGS}) ELSE 'org_' || (${BIG_ORGS} + i % ${ORGS - BIG_ORGS}) END,
           'Key ' || i,
           encode(sha256(convert_to('scale-' || i, 'UTF8')), 'hex'),
           'flux_live_' || substr(md5(i::text), 1, 4),
           right(md5(i::text), 4),
           'live',
           ARRAY['read:events'],
           CASE WHEN i % 20 = 1 THEN now() - INTERVAL '1 day' WHEN i % 3 = 0 THEN now() + INTERVAL '90 days' ELSE NULL END,
           CASE WHEN i % 20 = 2 THEN now() - INTERVAL '2 days' ELSE NULL END,
           CASE WHEN i % 20 = 2 THEN 'rotated out' ELSE NULL END,
           CASE WHEN i % 4 = 0 THEN 'user' ELSE 'admin' END,
           'user_' || (i % 7),
           now() - (i % 525600) * INTERVAL '1 minute' - (i / 525600) * INTERVAL '1 second',
           now()
    FROM generate_series(0, ${generated - 1}) AS i`);
  const sqlDone = performance.now();
  // The real keys, spread over the orgs (a tenth in the big ones), created now.
  const random = rng(7);
  const secrets: string[] = [];
  const prisma = flux.internals.database.prisma;
  for (let done = 0; done < SAMPLES; done += 1_000) {
    const rows = [];
    for (let i = done; i < Math.min(SAMPLES, done + 1_000); i++) {
      const { secret } = generateKey("flux", "live");
      secrets.push(secret);
      const org =
        random() < 0.1
          ? Math.floor(random() * BIG_ORGS)
          : BIG_ORGS + Math.floor(random() * (ORGS - BIG_ORGS));
      rows.push({
        id: `key_real_${i}`,
        orgId: `org_${org}`,
        name: `Real ${i}`,
        digest: flux.keys.digest(secret),
        ...displayParts(secret, "flux"),
        environment: "live",
        scopes: ["read:events"],
        createdByType: "admin",
      });
    }
    await prisma.apiKey.createMany({ data: rows });
    // Inserted behind core's back: tell the digest filter, as issuing through core does.
    flux.internals.unknownKeys.apply({
      kind: "unknown-keys",
      filter: rows.map((row) => filterHash(row.digest)),
    });
  }
  await admin.query(`CREATE UNIQUE INDEX "flux_api_keys_digest_key" ON ${t("flux_api_keys")}("digest")`);
  await admin.query(
    `CREATE UNIQUE INDEX "flux_api_keys_replaced_by_id_key" ON ${t("flux_api_keys")}("replaced_by_id")`,
  );
  await admin.query(
    `CREATE INDEX "flux_api_keys_org_id_created_at_id_idx" ON ${t("flux_api_keys")}("org_id", "created_at" DESC, "id" DESC)`,
  );
  await admin.query(`VACUUM ANALYZE ${t("flux_api_keys")}, ${t("flux_orgs")}, ${t("flux_org_entitlements")}`);
  const size = await admin.query(
    `SELECT count(*)::int AS n, count(DISTINCT org_id)::int AS orgs, pg_size_pretty(pg_total_relation_size('${t("flux_api_keys")}')) AS size FROM ${t("flux_api_keys")}`,
  );
  console.log(
    `keys: ${size.rows[0].n.toLocaleString("en")} in ${size.rows[0].orgs.toLocaleString("en")} orgs (${size.rows[0].size} with indexes); SQL insert ${((sqlDone - started) / 1000).toFixed(0)} s, real keys + indexes + analyze ${((performance.now() - sqlDone) / 1000).toFixed(0)} s`,
  );
  return secrets;
}

async function coldVerify(flux: Flux, secrets: string[]): Promise<void> {
  // Warm the pool and the statement with misses of keys that are not in the table.
  for (let i = 0; i < 50; i++) await flux.keys.check(generateKey("flux", "live").secret);
  const samples: number[] = [];
  for (const secret of secrets) {
    const start = performance.now();
    const result = await flux.keys.check(secret);
    samples.push(performance.now() - start);
    if (!result.valid) throw new Error(`sample key did not verify: ${result.error.code}`);
  }
  console.log(line("cold verify (each a cache miss, sequential)", samples));
}

function decodeCursorForPlan(cursor: string): { createdAt: Date; id: string } {
  const [ms, id] = Buffer.from(cursor, "base64url").toString("utf8").split("|");
  return { createdAt: new Date(Number(ms)), id: id as string };
}

async function listPages(flux: Flux, admin: BenchSchema["admin"], schemaName: string): Promise<void> {
  const random = rng(11);
  const first: number[] = [];
  let empty = 0;
  for (let i = 0; i < 1_000; i++) {
    const org = `org_${BIG_ORGS + Math.floor(random() * (ORGS - BIG_ORGS))}`;
    const [ms, page] = await timed(() => flux.keys.list({ orgId: org, limit: 50 }));
    if (page.items.length === 0) empty++;
    first.push(ms);
  }
  console.log(
    `${line("list, first page of 50, 1,000 orgs of ~90 keys", first)}${empty ? ` (${empty} empty)` : ""}`,
  );
  const deep: number[] = [];
  const bigFirst: number[] = [];
  for (let org = 0; org < BIG_ORGS; org++) {
    let cursor: string | null = null;
    for (let page = 0; page < 20; page++) {
      const query: KeyListQuery = { orgId: `org_${org}`, limit: 50, cursor };
      const [ms, result]: [number, Page<ApiKeyInfo>] = await timed(() => flux.keys.list(query));
      (page === 0 ? bigFirst : deep).push(ms);
      cursor = result.nextCursor;
      if (cursor === null) break;
    }
  }
  console.log(line("list, first page of 50, 10 orgs of ~10,000 keys", bigFirst));
  console.log(line("list, pages 2-20 of the big orgs (cursor)", deep));
  // The whole of one big org, page by page: does the 200th page cost what the first does?
  const walk: number[] = [];
  let cursor: string | null = null;
  let listed = 0;
  const cursors: Array<string | null> = [];
  for (let page = 0; page < 1_000; page++) {
    cursors.push(cursor);
    const query: KeyListQuery = { orgId: "org_3", limit: 50, cursor };
    const [ms, result]: [number, Page<ApiKeyInfo>] = await timed(() => flux.keys.list(query));
    walk.push(ms);
    listed += result.items.length;
    cursor = result.nextCursor;
    if (cursor === null) break;
  }
  console.log(
    `${line(`list, all ${walk.length} pages of org_3 (${listed.toLocaleString("en")} keys)`, walk)}; last page ${walk[walk.length - 1]?.toFixed(2)} ms`,
  );
  // By depth: keyset pages should cost the same at any depth. Median of 5 reruns of each page.
  const depths: string[] = [];
  for (const depth of [1, 2, 25, 50, 100, 150, 199]) {
    if (depth > cursors.length) break;
    const query = { orgId: "org_3", limit: 50, cursor: cursors[depth - 1] ?? null };
    const runs: number[] = [];
    for (let i = 0; i < 5; i++) runs.push((await timed(() => flux.keys.list(query)))[0]);
    depths.push(`page ${depth}: ${stats(runs).p50.toFixed(2)} ms`);
  }
  console.log(`list, org_3 by depth (median of 5): ${depths.join(", ")}`);
  const deepest = cursors[Math.min(cursors.length, 150) - 1];
  if (deepest) {
    const { createdAt, id } = decodeCursorForPlan(deepest);
    const plan = await admin.query(
      `EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM "${schemaName}"."flux_api_keys"
       WHERE "org_id" = 'org_3' AND ("created_at" < $1 OR ("created_at" = $1 AND "id" < $2))
       ORDER BY "created_at" DESC, "id" DESC LIMIT 51`,
      [createdAt, id],
    );
    console.log("plan of page 150 (the query list() sends):");
    for (const row of plan.rows) console.log(`  ${row["QUERY PLAN"]}`);
  }
  const active: number[] = [];
  const revoked: number[] = [];
  for (let org = 0; org < BIG_ORGS; org++) {
    active.push((await timed(() => flux.keys.list({ orgId: `org_${org}`, status: "active", limit: 50 })))[0]);
    revoked.push(
      (await timed(() => flux.keys.list({ orgId: `org_${org}`, status: "revoked", limit: 50 })))[0],
    );
  }
  console.log(line("list, status=active, first page, big orgs", active));
  console.log(line("list, status=revoked (5%), first page, big orgs", revoked));
}

/** A portal session for an org: the link opened once, the cookie it sets. */
async function portalSession(
  flux: Flux,
  handler: (request: Request) => Promise<Response>,
  orgId: string,
): Promise<string> {
  const link = await flux.portal.createSession({ orgId, userId: "bench-admin", role: "admin" });
  const response = await handler(new Request(`http://portal.bench${link.url}`));
  if (response.status !== 303) throw new Error(`portal login answered ${response.status}`);
  return response.headers
    .getSetCookie()
    .map((cookie) => cookie.split(";")[0])
    .join("; ");
}

async function portalKeys(flux: Flux): Promise<void> {
  const portal = flux.portal.handler({ basePath: "/portal" });
  const handler = (request: Request) => portal(request, { remoteAddress: "127.0.0.1" });
  const random = rng(13);
  const typical: number[] = [];
  const big: number[] = [];
  for (let i = 0; i < 210; i++) {
    const isBig = i < 10;
    const org = isBig ? `org_${i}` : `org_${BIG_ORGS + Math.floor(random() * (ORGS - BIG_ORGS))}`;
    const cookie = await portalSession(flux, handler, org);
    for (let r = 0; r < 3; r++) {
      const [ms, response] = await timed(() =>
        handler(new Request("http://portal.bench/portal/api/keys", { headers: { cookie } })),
      );
      const body = (await response.json()) as { items?: unknown[] };
      if (response.status !== 200 || !Array.isArray(body.items))
        throw new Error(`portal keys of ${org}: ${response.status}`);
      (isBig ? big : typical).push(ms);
    }
  }
  console.log(
    line("portal GET /portal/api/keys (100 per page, session lookup), 200 orgs of ~90 keys", typical),
  );
  console.log(line("portal GET /portal/api/keys, 10 orgs of ~10,000 keys", big));
}

async function loadUsage(schema: BenchSchema, now: number): Promise<void> {
  // The last 60 days, one bucket per key every ~86 minutes. 100 keys (1% of the rows) belong to
  // org_0; the other 9,900 to 2,000 orgs of about 5 keys.
  const loaded = await loadUsageMinutes(schema.admin, schema.name, {
    keyPrefix: "key_s",
    keys: USAGE_KEYS,
    perKey: PER_KEY,
    start: new Date(Math.floor(now / 3_600_000) * 3_600_000 - 60 * DAY).toISOString(),
    orgOf: `CASE WHEN k < 100 THEN 'org_0' ELSE 'org_' || (${BIG_ORGS} + k % 2000) END`,
  });
  console.log(
    `usage: ${loaded.rows.toLocaleString("en")} minute buckets (${loaded.size} with indexes); insert ${(loaded.insertMs / 1000).toFixed(0)} s, keys + indexes + analyze ${(loaded.indexMs / 1000).toFixed(0)} s`,
  );
}

async function usageQueries(flux: Flux, now: number): Promise<void> {
  const to = new Date(now);
  const from = new Date(now - 30 * DAY);
  const cases: Array<[string, UsageQuery]> = [
    [
      "org_17 (~5 keys, ~2,500 buckets in range), 30 days hourly",
      { orgId: "org_17", from, to, granularity: "hour" },
    ],
    ["org_1234, 30 days hourly", { orgId: "org_1234", from, to, granularity: "hour" }],
    [
      "org_0 (100 keys, 50,000 buckets in range), 30 days hourly",
      { orgId: "org_0", from, to, granularity: "hour" },
    ],
    ["org_0, 30 days daily", { orgId: "org_0", from, to, granularity: "day" }],
    [
      "org_0, 30 days hourly by key (100 series)",
      { orgId: "org_0", from, to, granularity: "hour", groupBy: ["key"] },
    ],
    ["one key (key_s117), 30 days hourly", { keyId: "key_s117", from, to, granularity: "hour" }],
  ];
  for (const [name, query] of cases) {
    const [firstMs, result] = await timed(() => flux.usage.query(query));
    const runs: number[] = [];
    for (let i = 0; i < 7; i++) runs.push((await timed(() => flux.usage.query(query)))[0]);
    const calls = result.series.reduce((sum, s) => sum + s.totals.calls, 0);
    console.log(
      `usage query ${name}: first ${firstMs.toFixed(1)} ms, median ${stats(runs).p50.toFixed(1)} ms, max ${stats(runs).max.toFixed(1)} ms (${result.series.length} series x ${result.series[0]?.points.length} points, ${calls.toLocaleString("en")} calls) -> ${stats(runs).p50 < 200 && firstMs < 200 ? "< 200 ms" : "NOT < 200 ms"}`,
    );
  }
  // A typical sample of orgs: the 30-day hourly query, first run each.
  const random = rng(17);
  const spread: number[] = [];
  for (let i = 0; i < 100; i++) {
    const org = `org_${BIG_ORGS + Math.floor(random() * 2000)}`;
    spread.push((await timed(() => flux.usage.query({ orgId: org, from, to, granularity: "hour" })))[0]);
  }
  console.log(line("usage query, 30 days hourly, 100 distinct orgs of ~5 keys (each its first run)", spread));
  const [topMs] = await timed(() => flux.usage.top({ orgId: "org_0", by: "endpoint", from, to, limit: 10 }));
  console.log(`usage top 10 endpoints of org_0 over 30 days: ${topMs.toFixed(1)} ms`);

  const portal = flux.portal.handler({ basePath: "/portal" });
  const handler = (request: Request) => portal(request, { remoteAddress: "127.0.0.1" });
  for (const org of ["org_17", "org_0"]) {
    const cookie = await portalSession(flux, handler, org);
    for (const range of ["30d", "7d"]) {
      const runs: number[] = [];
      for (let i = 0; i < 5; i++) {
        const [ms, response] = await timed(() =>
          handler(
            new Request(`http://portal.bench/portal/api/usage?range=${range}`, { headers: { cookie } }),
          ),
        );
        await response.arrayBuffer();
        if (response.status !== 200) throw new Error(`portal usage of ${org}: ${response.status}`);
        runs.push(ms);
      }
      console.log(
        `portal GET /portal/api/usage?range=${range} for ${org}: first ${runs[0]?.toFixed(1)} ms, median ${stats(runs).p50.toFixed(1)} ms`,
      );
    }
  }
}

async function main(): Promise<void> {
  const startLoad = await quietMachine("scale load");
  const schema = await freshSchema("scale");
  let flux: Flux | undefined;
  try {
    flux = await createFlux({
      database: { url: DATABASE_URL, schema: schema.name, poolSize: 4 },
      redis: null,
    });
    const secrets = await loadKeys(schema, flux);
    await flux.close();
    // A fresh instance: an empty cache, so every first verify is a miss.
    flux = await createFlux({
      database: { url: DATABASE_URL, schema: schema.name, poolSize: 4 },
      redis: null,
      migrate: false,
    });
    const verifyLoad = await quietMachine("scale cold verify");
    await coldVerify(flux, secrets);
    const listLoad = await quietMachine("scale list");
    await listPages(flux, schema.admin, schema.name);
    await portalKeys(flux);
    const now = Date.now();
    await loadUsage(schema, now);
    const usageLoad = await quietMachine("scale usage queries");
    await usageQueries(flux, now);
    console.log(
      `load averages at the start of: data load ${startLoad.toFixed(2)}, cold verify ${verifyLoad.toFixed(2)}, lists ${listLoad.toFixed(2)}, usage queries ${usageLoad.toFixed(2)}`,
    );
  } finally {
    await flux?.close().catch(() => {});
    await schema.drop();
  }
}

await main();
