/**
 * HTTP adapter benchmark (issues 5 and 16): each framework bare, behind Flux Keys (memory limiter,
 * usage on), again with the Redis limiter, beside the framework's own peer stack (bearer check +
 * its rate limiter: @fastify/bearer-auth + @fastify/rate-limit, express-rate-limit,
 * @nestjs/throttler), and on Express against two hand-rolled baselines (SHA-256 + a Prisma lookup
 * per request; the same behind a Map). On Fastify also the peer stack counting on Redis
 * (`peer-redis`) and one Redis round trip with no check at all (`redis-floor`); on Nest, the peer's
 * bearer guard alone (`guard-floor`). Not a test; numbers.
 *
 *   pnpm bench http [--quick] [--rounds=5] [--duration=6] [--warmup=3] [--connections=50,1]
 *                   [--keys=100] [--handler=empty|io] [--cache-max=N] [--database=pglite|postgres]
 *                   [--paced=0.25] [--only=express,fastify,nest-express,nest-fastify]
 *                   [--variants=bare,flux,…] [--no-pin]
 *
 * `--keys` distinct keys (default 100) are sent round-robin, each load starting at a random one.
 * `--handler=io` makes every variant's handler await one PostgreSQL query before it answers.
 * The cold path: `--keys=10000 --cache-max=1000 --database=postgres` (more keys than the cache
 * holds; the memory-limiter variant on PostgreSQL too), where the report adds the key reads the
 * database saw per request (`pg_stat_user_tables`, one schema per server).
 *
 * Each server (bench/http-server.ts) runs in its own process pinned to core 0 with `taskset`; this
 * process (autocannon's programmatic API, loopback only) pins itself to core 1. All the servers of
 * a framework are started together (idle ones cost nothing), checked, warmed up, then measured in
 * alternating rounds (bare, flux, …, the order rotated each round). Reported: the median of the
 * rounds, and the median of the per-round ratios to bare (variants of a round run back to back).
 *
 * Throughput and latency at saturation feed back on each other on a small VM (a slower server
 * leaves the load generator idle, and waking it makes each write dearer), so each round also offers
 * every variant the same fixed load, `--paced` × bare's req/s of that round (default 0.25; 0 skips
 * it), and reports the server CPU per request there: the cost Flux Keys adds at equal load.
 *
 * Environment: BENCH_DATABASE_URL (PostgreSQL for the Redis and hand-rolled variants; one fresh
 * schema per server, dropped at the end), REDIS_URL, BENCH_SERVER_NODE_FLAGS (e.g. `--cpu-prof
 * --cpu-prof-dir=/tmp/prof` to profile the servers). Variants whose service is unreachable are
 * skipped with a note.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { Redis } from "ioredis";
import pg from "pg";
import { type Framework, ON_REDIS, PEER_LIKE, type Variant, WITHOUT_FLUX } from "./http-scenarios.js";
import { processCpuSeconds, roundRobinKeys } from "./load-support.js";

const here = dirname(fileURLToPath(import.meta.url));
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

// ---------------------------------------------------------------------------------------------
// Options

function flag(name: string): string | undefined {
  const prefix = `--${name}=`;
  const found = process.argv.find((arg) => arg === `--${name}` || arg.startsWith(prefix));
  if (found === undefined) return undefined;
  return found.startsWith(prefix) ? found.slice(prefix.length) : "true";
}

function numberFlag(name: string, env: string, fallback: number): number {
  const raw = flag(name) ?? process.env[env];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!(Number.isFinite(value) && value > 0)) throw new Error(`--${name} must be a positive number`);
  return value;
}

const quick = flag("quick") !== undefined;
const settings = {
  rounds: numberFlag("rounds", "BENCH_HTTP_ROUNDS", quick ? 2 : 5),
  duration: numberFlag("duration", "BENCH_HTTP_DURATION", quick ? 3 : 6),
  warmup: numberFlag("warmup", "BENCH_HTTP_WARMUP", quick ? 1 : 3),
  connections: (flag("connections") ?? process.env.BENCH_HTTP_CONNECTIONS ?? "50,1")
    .split(",")
    .map((value) => {
      const n = Number(value);
      if (!(Number.isInteger(n) && n > 0)) throw new Error("--connections must be positive integers");
      return n;
    }),
  handler: (flag("handler") ?? "empty") as "empty" | "io",
  cacheMax: flag("cache-max") === undefined ? undefined : numberFlag("cache-max", "", 1),
  database: (flag("database") ?? "pglite") as "pglite" | "postgres",
  paced: flag("paced") === "0" ? 0 : numberFlag("paced", "BENCH_HTTP_PACED", 0.25),
  pin: flag("no-pin") === undefined,
  /** Distinct keys each Flux Keys server issues; requests go round-robin over them. */
  keys: numberFlag("keys", "BENCH_HTTP_KEYS", 100),
};

interface Group {
  framework: Framework;
  variants: Variant[];
  /** Issue 16's saturated throughput targets (fraction of bare, 100 keys, empty handler). */
  target: number;
  redisTarget?: number;
}
if (!["empty", "io"].includes(settings.handler)) throw new Error("--handler must be empty or io");
if (!["pglite", "postgres"].includes(settings.database))
  throw new Error("--database must be pglite or postgres");

const GROUPS: Group[] = [
  {
    framework: "express",
    variants: [
      "bare",
      "flux",
      "flux-redis",
      "flux-redis-lease",
      "peer",
      "handrolled-prisma",
      "handrolled-map",
    ],
    target: 0.85,
    redisTarget: 0.75,
  },
  {
    framework: "fastify",
    variants: ["bare", "flux", "flux-redis", "flux-redis-lease", "peer", "peer-redis", "redis-floor"],
    target: 0.8,
    redisTarget: 0.6,
  },
  { framework: "nest-express", variants: ["bare", "flux", "flux-redis", "peer", "guard-floor"], target: 0.9 },
  {
    framework: "nest-fastify",
    variants: ["bare", "flux", "flux-redis", "peer", "guard-floor"],
    target: 0.85,
  },
];
const P99_TARGET = 1.3;
/** Issue 16: server CPU added per request at equal offered load, µs. */
const CPU_TARGET: Partial<Record<Variant, number>> = { flux: 5, "flux-redis": 15 };
/** What issue 5 measured for comparable setups on this kind of machine (fraction of bare). */
const REFERENCE: Partial<Record<Variant, number>> = { "handrolled-prisma": 0.32, "handrolled-map": 0.84 };

const only = flag("only")?.split(",");
const onlyVariants = flag("variants")?.split(",");
const groups = GROUPS.filter((group) => !only || only.includes(group.framework)).map((group) => ({
  ...group,
  variants: group.variants.filter((v) => v === "bare" || !onlyVariants || onlyVariants.includes(v)),
}));

// ---------------------------------------------------------------------------------------------
// Core pinning and CPU accounting

const notes: string[] = [];
const hasTaskset = spawnSync("taskset", ["--version"]).status === 0;
const pinned = settings.pin && hasTaskset && availableParallelism() >= 2;
if (pinned) {
  // -a: every thread of this process (libuv pool, V8 helpers); threads started later inherit it.
  const result = spawnSync("taskset", ["-a", "-p", "-c", "1", String(process.pid)]);
  if (result.status !== 0) throw new Error(`taskset failed: ${result.stderr}`);
} else {
  notes.push(
    settings.pin
      ? "taskset or a second core is missing: server and load generator were NOT pinned."
      : "--no-pin: server and load generator were NOT pinned.",
  );
}
const allowedCpus = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];

// ---------------------------------------------------------------------------------------------
// Services

async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

async function redisReachable(): Promise<boolean> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0 });
  redis.on("error", () => {});
  try {
    await redis.connect();
    await redis.ping();
    return true;
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

const schemas: string[] = [];
const redisPrefixes: string[] = [];
async function dropRedisKeys(): Promise<void> {
  if (redisPrefixes.length === 0) return;
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    for (const prefix of redisPrefixes.splice(0)) {
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== "0");
    }
  } finally {
    redis.disconnect();
  }
}
async function sql(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
async function createSchema(): Promise<string> {
  const schema = `bench_http_${randomBytes(6).toString("hex")}`;
  await sql(`CREATE SCHEMA "${schema}"`);
  schemas.push(schema);
  return schema;
}
async function dropSchemas(): Promise<void> {
  for (const schema of schemas.splice(0)) await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

// ---------------------------------------------------------------------------------------------
// Servers

interface Server {
  scenario: string;
  variant: Variant;
  child: ChildProcess;
  url: string;
  key: string | null;
  /** Every key the server issued (`--keys`), sent round-robin. */
  keys: string[];
  /** The PostgreSQL schema of its keys, or null (PGlite, or no keys). */
  schema: string | null;
}

/** Lookups by digest so far: the key reads the database served (cold path). */
async function keyReads(schema: string): Promise<number> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    // Statistics reach the view within about a second of the transaction.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await client.query("SELECT pg_stat_clear_snapshot()");
    // Scans of the digest index only: the key table's primary key is also scanned by the foreign
    // key checks of every usage and observation row written (not key reads).
    const result = await client.query<{ n: string }>(
      `SELECT coalesce(sum(idx_scan), 0) AS n FROM pg_stat_user_indexes
        WHERE schemaname = $1 AND relname = 'flux_api_keys' AND indexrelname LIKE '%digest%'`,
      [schema],
    );
    return Number(result.rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

async function startServer(framework: string, variant: Variant): Promise<Server> {
  const scenario = `${framework}-${variant}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: "production",
    BENCH_KEYS: String(settings.keys),
    BENCH_HANDLER: settings.handler,
    ...(settings.cacheMax !== undefined ? { BENCH_CACHE_MAX: String(settings.cacheMax) } : {}),
    ...(settings.database === "postgres" ? { BENCH_FLUX_DATABASE: "postgres" } : {}),
  };
  if (settings.handler === "io") env.BENCH_DATABASE_URL = DATABASE_URL;
  const onRedis = ON_REDIS.includes(variant);
  // Flux Keys on Redis keeps its keys in PostgreSQL; the peers and the floor on Redis need none.
  const onPostgres =
    (onRedis && !WITHOUT_FLUX.includes(variant)) ||
    variant.startsWith("handrolled") ||
    (variant === "flux" && settings.database === "postgres");
  let schema: string | null = null;
  if (onPostgres) {
    env.BENCH_DATABASE_URL = DATABASE_URL;
    schema = await createSchema();
    env.BENCH_PG_SCHEMA = schema;
  }
  if (onRedis) {
    env.BENCH_REDIS_URL = REDIS_URL;
    env.BENCH_REDIS_PREFIX = `bench_http_${randomBytes(4).toString("hex")}:`;
    redisPrefixes.push(env.BENCH_REDIS_PREFIX);
  }
  const nodeArgs = [
    ...(process.env.BENCH_SERVER_NODE_FLAGS?.split(" ").filter(Boolean) ?? []),
    "--import",
    "tsx",
    "--conditions=source",
    join(here, "http-server.ts"),
    scenario,
  ];
  const [command, args] = pinned
    ? ["taskset", ["-c", "0", process.execPath, ...nodeArgs]]
    : [process.execPath, nodeArgs];
  const child = spawn(command, args as string[], { env, stdio: ["ignore", "pipe", "inherit"] });
  const ready = await new Promise<{ port: number; key: string | null; keys?: string[] }>(
    (resolve, reject) => {
      // Seeding takes time with many keys (the cold path's 10,000).
      const wait = 90_000 + settings.keys * 30;
      const timer = setTimeout(
        () => reject(new Error(`${scenario}: not ready after ${wait / 1000} s`)),
        wait,
      );
      const lines = createInterface({ input: child.stdout! });
      lines.on("line", (line) => {
        try {
          const message = JSON.parse(line) as {
            ready?: boolean;
            port: number;
            key: string | null;
            keys?: string[];
          };
          if (message.ready) {
            clearTimeout(timer);
            resolve(message);
          }
        } catch {
          // Not ours: a library printing to stdout.
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${scenario}: exited with ${code} before it was ready`));
      });
    },
  );
  return {
    scenario,
    variant,
    child,
    url: `http://127.0.0.1:${ready.port}/v1/events`,
    key: ready.key,
    keys: ready.keys ?? (ready.key === null ? [] : [ready.key]),
    schema,
  };
}

async function stopServer(server: Server): Promise<void> {
  if (server.child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => server.child.once("exit", () => resolve()));
  server.child.kill("SIGTERM");
  const timeout = setTimeout(() => server.child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timeout);
}

/** Refuses to measure a misconfigured server: the right status, body and headers first. */
async function check(server: Server): Promise<void> {
  const fail = (what: string) => {
    throw new Error(`${server.scenario}: ${what}`);
  };
  const headers: Record<string, string> = server.key ? { authorization: `Bearer ${server.key}` } : {};
  const ok = await fetch(server.url, { headers });
  const body = (await ok.json()) as { data?: unknown[] };
  if (ok.status !== 200 || body.data?.length !== 3) fail(`expected 200 with 3 events, got ${ok.status}`);
  if (server.variant === "bare" || server.variant === "redis-floor") return;
  if (server.key === null) fail("no key printed");
  if (server.variant.startsWith("flux")) {
    if (!ok.headers.get("ratelimit") || !ok.headers.get("ratelimit-policy")) {
      fail("the verified response carries no RateLimit / RateLimit-Policy fields");
    }
  }
  const anonymous = await fetch(server.url);
  await anonymous.arrayBuffer();
  if (anonymous.status !== 401) fail(`expected 401 without a key, got ${anonymous.status}`);
  // The peers answer 401 as their libraries do (not all send WWW-Authenticate).
  if (!PEER_LIKE.includes(server.variant) && !anonymous.headers.get("www-authenticate"))
    fail("401 without WWW-Authenticate");
  if (server.variant.startsWith("flux") && !anonymous.headers.get("content-type")?.includes("problem+json")) {
    fail("401 is not application/problem+json");
  }
  const wrong = await fetch(server.url, { headers: { authorization: "Bearer flux_live_not-a-key" } });
  if (PEER_LIKE.includes(server.variant) && wrong.status === 401) return void (await wrong.arrayBuffer());
  await wrong.arrayBuffer();
  if (wrong.status !== 401) fail(`expected 401 for a wrong key, got ${wrong.status}`);
}

// ---------------------------------------------------------------------------------------------
// Load

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  /** Server CPU utilisation during the run (1 = one core fully busy). */
  serverCpu: number;
  /** Server CPU microseconds per response: unlike req/s, barely moved by other work on the machine. */
  cpuPerRequest: number;
  /** Load generator CPU utilisation during the run. */
  generatorCpu: number;
  load: number;
  /** Key reads the database served per response (cold path runs on PostgreSQL), or NaN. */
  readsPerRequest: number;
}

/** Only the cold path counts key reads (each count waits for the statistics to settle). */
const countReads = settings.cacheMax !== undefined;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** `rate`: requests per second offered in all (paced); without it, as fast as the server answers. */
async function load(server: Server, seconds: number, connections: number, rate?: number): Promise<Sample> {
  const readsBefore = countReads && server.schema !== null ? await keyReads(server.schema) : Number.NaN;
  // Latencies to the microsecond (autocannon's own histogram keeps whole milliseconds).
  let latencies = new Float64Array(1 << 20);
  let count = 0;
  let failures = 0;
  const loadAverage = loadavg()[0]!;
  const cpuBefore = processCpuSeconds(server.child.pid!);
  const ownBefore = process.cpuUsage();
  const start = performance.now();
  let instance!: autocannon.Instance;
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      {
        url: server.url,
        connections,
        pipelining: 1,
        duration: seconds,
        ...(rate === undefined ? {} : { overallRate: Math.max(1, Math.round(rate)) }),
        ...(server.keys.length > 1
          ? roundRobinKeys(server.keys)
          : { headers: server.key ? { authorization: `Bearer ${server.key}` } : {} }),
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
  });
  instance.on("response", (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    if (statusCode !== 200) {
      failures++;
      return;
    }
    if (count === latencies.length) {
      const bigger = new Float64Array(latencies.length * 2);
      bigger.set(latencies);
      latencies = bigger;
    }
    latencies[count++] = responseTime;
  });
  const result = await finished;
  const elapsed = (performance.now() - start) / 1000;
  const own = process.cpuUsage(ownBefore);
  const serverCpuSeconds = processCpuSeconds(server.child.pid!) - cpuBefore;
  if (failures > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(
      `${server.scenario}: ${failures} non-200 responses, ${result.errors} errors, ${result.timeouts} timeouts`,
    );
  }
  const sorted = latencies.subarray(0, count).sort();
  const readsAfter = Number.isNaN(readsBefore) ? Number.NaN : await keyReads(server.schema as string);
  return {
    readsPerRequest: (readsAfter - readsBefore) / count,
    rps: count / elapsed,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    serverCpu: serverCpuSeconds / elapsed,
    cpuPerRequest: (serverCpuSeconds * 1e6) / count,
    generatorCpu: (own.user + own.system) / 1e6 / elapsed,
    load: loadAverage,
  };
}

// ---------------------------------------------------------------------------------------------
// Report

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const fmt = (value: number, digits = 0) =>
  value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

interface Row {
  variant: Variant;
  samples: Sample[];
  /** The same rounds at a fixed offered load (empty with `--paced=0`). */
  paced: Sample[];
}

/** The targets hold for issue 16's scenario only: 50 connections, empty handler, many keys, warm cache. */
const targetsApply = (connections: number) =>
  connections === 50 &&
  settings.handler === "empty" &&
  settings.keys >= 100 &&
  settings.cacheMax === undefined;

function targetOf(group: Group, variant: Variant, connections: number): { rps?: number; p99?: number } {
  if (!targetsApply(connections)) return {};
  if (variant === "flux") return { rps: group.target, p99: P99_TARGET };
  if (variant === "flux-redis" && group.redisTarget !== undefined) return { rps: group.redisTarget };
  return {};
}

function report(group: Group, connections: number, rows: Row[]): string {
  const bare = rows.find((row) => row.variant === "bare")!;
  const bareCpu = median(bare.samples.map((s) => s.cpuPerRequest));
  const pacedLines: string[] = [];
  const reads = rows.some((row) => row.samples.some((s) => !Number.isNaN(s.readsPerRequest)));
  const lines = [
    `### ${group.framework}, ${connections} connection${connections === 1 ? "" : "s"}, ${settings.keys} keys, ${settings.handler} handler${
      settings.cacheMax !== undefined ? `, cache.max ${settings.cacheMax}` : ""
    }`,
    "",
    `| variant | req/s | p50 | p99 | req/s ratio (rounds' range) | p99 ratio | target | result | server CPU/req | CPU ratio | server CPU | load gen. CPU |${reads ? " key reads/req |" : ""}`,
    `|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|${reads ? "---:|" : ""}`,
  ];
  for (const row of rows) {
    const rps = median(row.samples.map((s) => s.rps));
    const p50 = median(row.samples.map((s) => s.p50));
    const p99 = median(row.samples.map((s) => s.p99));
    const cpu = median(row.samples.map((s) => s.cpuPerRequest));
    // Paired per round (the variants of a round run back to back), then the median: slow drifts
    // in the machine's load cancel out better than in a ratio of medians.
    const perRound = row.samples.map((s, i) => s.rps / bare.samples[i]!.rps);
    const ratio = median(perRound);
    const p99Ratio = median(row.samples.map((s, i) => s.p99 / bare.samples[i]!.p99));
    const range = `${fmt(Math.min(...perRound), 2)}–${fmt(Math.max(...perRound), 2)}`;
    const target = targetOf(group, row.variant, connections);
    const goals: string[] = [];
    const verdicts: string[] = [];
    if (target.rps !== undefined) {
      goals.push(`≥ ${target.rps}`);
      verdicts.push(ratio >= target.rps ? "pass" : "FAIL");
    }
    if (target.p99 !== undefined) {
      goals.push(`p99 ≤ ${target.p99}×`);
      verdicts.push(p99Ratio <= target.p99 ? "pass" : "FAIL");
    }
    if (row.paced.length > 0) pacedLines.push(pacedRow(row, bare, connections));
    const reference = REFERENCE[row.variant];
    if (reference !== undefined) goals.push(`(issue: ~${reference})`);
    lines.push(
      `| ${row.variant} | ${fmt(rps)} | ${fmt(p50, 2)} ms | ${fmt(p99, 2)} ms | ${
        row.variant === "bare" ? "1.00" : `**${fmt(ratio, 2)}** (${range})`
      } | ${fmt(p99Ratio, 2)}× | ${goals.join(", ") || "—"} | ${verdicts.join(", ") || "—"} | ${fmt(
        cpu,
      )} µs | ${fmt(bareCpu / cpu, 2)} | ${fmt(median(row.samples.map((s) => s.serverCpu)) * 100)}% | ${fmt(
        median(row.samples.map((s) => s.generatorCpu)) * 100,
      )}% |${reads ? ` ${Number.isNaN(row.samples[0]!.readsPerRequest) ? "—" : fmt(median(row.samples.map((s) => s.readsPerRequest)), 3)} |` : ""}`,
    );
  }
  if (pacedLines.length > 0) {
    lines.push(
      "",
      `At a fixed offered load (${fmt(settings.paced * 100)}% of bare's req/s in each round, the same for every variant; autocannon paces in bursts, so latency here grows with the cost per request):`,
      "",
      "| variant | offered req/s | served req/s | p50 | p99 | p99 ratio | server CPU | CPU/req | CPU/req added | target |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
      ...pacedLines,
    );
  }
  return lines.join("\n");
}

function pacedRow(row: Row, bare: Row, connections: number): string {
  const p99Ratio = median(row.paced.map((s, i) => s.p99 / bare.paced[i]!.p99));
  const cpu = median(row.paced.map((s) => s.cpuPerRequest));
  const added = median(row.paced.map((s, i) => s.cpuPerRequest - bare.paced[i]!.cpuPerRequest));
  const cpuTarget = targetsApply(connections) ? CPU_TARGET[row.variant] : undefined;
  const goals: string[] = [];
  if (cpuTarget !== undefined) goals.push(`≤ +${cpuTarget} µs ${added <= cpuTarget ? "pass" : "FAIL"}`);
  if (targetsApply(connections) && row.variant === "flux")
    goals.push(`p99 ≤ 1.1× ${p99Ratio <= 1.1 ? "pass" : "FAIL"}`);
  const offered = median(bare.samples.map((s) => s.rps * settings.paced));
  return `| ${row.variant} | ${fmt(offered)} | ${fmt(median(row.paced.map((s) => s.rps)))} | ${fmt(
    median(row.paced.map((s) => s.p50)),
    2,
  )} ms | ${fmt(median(row.paced.map((s) => s.p99)), 2)} ms | ${fmt(p99Ratio, 2)}× | ${fmt(
    median(row.paced.map((s) => s.serverCpu)) * 100,
  )}% | ${fmt(cpu)} µs | ${row.variant === "bare" ? "—" : `${added >= 0 ? "+" : ""}${fmt(added)} µs`} | ${goals.join(", ") || "—"} |`;
}

// ---------------------------------------------------------------------------------------------
// Main

const running = new Set<Server>();
let interrupted = false;
process.on("SIGINT", () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  console.error("interrupted: stopping servers and dropping schemas");
  void Promise.all([...running].map(stopServer))
    .then(dropSchemas)
    .then(dropRedisKeys)
    .finally(() => process.exit(130));
});

const [hasPostgres, hasRedis] = await Promise.all([postgresReachable(), redisReachable()]);
if (!hasPostgres)
  notes.push(`PostgreSQL unreachable at ${DATABASE_URL}: Redis and hand-rolled variants skipped.`);
else if (!hasRedis) notes.push(`Redis unreachable at ${REDIS_URL}: Redis variants skipped.`);

const startedAt = performance.now();
console.log(
  `HTTP adapters: ${settings.rounds} rounds × ${settings.duration} s (warm-up ${settings.warmup} s), ` +
    `${settings.connections.join(" and ")} connections, pipelining 1, loopback, ${settings.keys} keys, ` +
    `${settings.handler} handler${settings.cacheMax !== undefined ? `, cache.max ${settings.cacheMax}` : ""}; ` +
    (pinned ? `servers on core 0, load generator on core ${allowedCpus}` : "NOT pinned") +
    `; load average ${loadavg()
      .map((v) => v.toFixed(2))
      .join(" ")}`,
);

const sections: string[] = [];
try {
  for (const group of groups) {
    const variants = group.variants.filter(
      (variant) =>
        variant === "bare" ||
        variant === "flux" ||
        (hasPostgres && (!ON_REDIS.includes(variant) || hasRedis)),
    );
    const servers: Server[] = [];
    for (const variant of variants) {
      const server = await startServer(group.framework, variant);
      running.add(server);
      servers.push(server);
      await check(server);
    }
    for (const connections of settings.connections) {
      for (const server of servers) await load(server, settings.warmup, connections);
      const samples = new Map<Variant, Sample[]>(variants.map((variant) => [variant, []]));
      const paced = new Map<Variant, Sample[]>(variants.map((variant) => [variant, []]));
      for (let round = 0; round < settings.rounds; round++) {
        const order = servers.map((_, i) => servers[(i + round) % servers.length]!);
        for (const server of order) {
          const sample = await load(server, settings.duration, connections);
          samples.get(server.variant)!.push(sample);
          console.log(
            `  ${group.framework} c=${connections} round ${round + 1} ${server.variant.padEnd(17)} ${fmt(
              sample.rps,
            ).padStart(7)} req/s  p99 ${fmt(sample.p99, 2).padStart(6)} ms  server CPU ${fmt(
              sample.serverCpu * 100,
            )}% (${fmt(sample.cpuPerRequest)} µs/req)  load gen. CPU ${fmt(sample.generatorCpu * 100)}%  loadavg ${sample.load.toFixed(2)}`,
          );
        }
        if (settings.paced > 0) {
          const rate = samples.get("bare")![round]!.rps * settings.paced;
          for (const server of order) {
            const sample = await load(server, settings.duration, connections, rate);
            paced.get(server.variant)!.push(sample);
            console.log(
              `  ${group.framework} c=${connections} round ${round + 1} ${server.variant.padEnd(17)} paced at ${fmt(rate)} req/s: ${fmt(
                sample.rps,
              )} served, p50 ${fmt(sample.p50, 2)} ms, p99 ${fmt(sample.p99, 2)} ms, ${fmt(sample.cpuPerRequest)} µs/req`,
            );
          }
        }
      }
      const section = report(
        group,
        connections,
        variants.map((variant) => ({ variant, samples: samples.get(variant)!, paced: paced.get(variant)! })),
      );
      sections.push(section);
      console.log(`\n${section}\n`);
    }
    for (const server of servers) {
      await stopServer(server);
      running.delete(server);
    }
  }
} finally {
  await Promise.all([...running].map(stopServer));
  await dropSchemas();
  await dropRedisKeys();
}

console.log("\n## Summary\n");
console.log(sections.join("\n\n"));
for (const note of notes) console.log(`\nNote: ${note}`);
console.log(
  `\nTotal ${fmt((performance.now() - startedAt) / 1000)} s; load average at the end ${loadavg()
    .map((v) => v.toFixed(2))
    .join(" ")}.`,
);
