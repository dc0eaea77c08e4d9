/**
 * Shared by the issue 9 load benchmarks (cluster, soak, scale): a fresh PostgreSQL schema, a
 * private Redis database, example processes spawned as a user starts them (and always killed),
 * /proc readings of a process, percentiles, and a wait for a quiet machine. Not a benchmark itself
 * (`bench/run.ts` only runs `*.bench.ts`).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type autocannon from "autocannon";
import { Redis } from "ioredis";
import pg from "pg";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
/** Redis server; the benchmarks pick a database number of their own on it. */
export const REDIS_BASE = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/**
 * autocannon's `requests` for many distinct keys, as a real API sees them: each request carries
 * the next key as a Bearer credential, round-robin, starting at a random one (so loads do not
 * always begin on the same key). Shared by the HTTP benchmarks.
 */
export function roundRobinKeys(keys: readonly string[]): { requests: autocannon.Request[] } {
  let next = Math.floor(Math.random() * keys.length);
  return {
    requests: [
      {
        setupRequest: (request: autocannon.Request) => {
          next = (next + 1) % keys.length;
          request.headers = { ...request.headers, authorization: `Bearer ${keys[next]}` };
          return request;
        },
      },
    ],
  };
}

export function ms(value: number): string {
  return `${value.toFixed(value < 10 ? 2 : 1)} ms`;
}

// --- cleanup on every exit path ----------------------------------------------------------------

const cleanups = new Set<() => void>();
let hooked = false;
/** Runs `fn` synchronously when the process exits, however it exits (also SIGINT / SIGTERM). */
export function onExit(fn: () => void): () => void {
  if (!hooked) {
    hooked = true;
    const runAll = () => {
      for (const cleanup of cleanups) {
        try {
          cleanup();
        } catch {}
      }
      cleanups.clear();
    };
    process.once("exit", runAll);
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      process.once(signal, () => {
        runAll();
        process.exit(130);
      });
    }
  }
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

// --- the machine -------------------------------------------------------------------------------

/**
 * Waits (bounded) until the 1-minute load average is at most `max`; returns the load when the
 * phase starts, so the results can say what else was running.
 */
export async function quietMachine(phase: string, max = 3, maxWaitMs = 180_000): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  let load = loadavg()[0] as number;
  if (load > max)
    console.log(`[${phase}] load ${load.toFixed(2)} > ${max}: waiting up to ${maxWaitMs / 1000} s`);
  while (load > max && Date.now() < deadline) {
    await sleep(5_000);
    load = loadavg()[0] as number;
  }
  console.log(
    `[${phase}] starting at load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  return load;
}

/** A free loopback port (the fault tests' helper). */
export { freePort } from "../test/support/faults-services.js";

/** Clock ticks per second of /proc's CPU times. */
const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"]).stdout?.toString().trim()) || 100;

/** User + system CPU seconds of a process so far, every thread (from /proc/<pid>/stat). */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After "pid (comm) ", field 3 (state) is index 0: utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Resident set size of a process in KiB (VmRSS), or NaN once it is gone. */
export function rssKb(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Open file descriptors of a process (sockets, pipes, files). */
export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

/** What the open descriptors of a process are, by kind (socket, pipe, anon_inode:[eventfd], file). */
export function fdKinds(pid: number): Record<string, number> {
  const kinds: Record<string, number> = {};
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const kind = target.startsWith("socket:")
        ? "socket"
        : target.startsWith("pipe:")
          ? "pipe"
          : target.startsWith("anon_inode:")
            ? target
            : "file";
      kinds[kind] = (kinds[kind] ?? 0) + 1;
    }
  } catch {}
  return kinds;
}

// --- PostgreSQL and Redis ----------------------------------------------------------------------

export interface BenchSchema {
  name: string;
  /** DATABASE_URL for a child process (Prisma's `?schema=` convention, which Flux Keys honours). */
  url: string;
  admin: pg.Client;
  drop(): Promise<void>;
}

/** A fresh schema, dropped by `drop()` (and on exit if the benchmark dies first). */
export async function freshSchema(tag: string): Promise<BenchSchema> {
  const name = `flux_bench_${tag}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA "${name}"`);
  let dropped = false;
  const unregister = onExit(() => {
    if (dropped) return;
    // Last resort on a crash: psql, synchronously.
    try {
      execFileSync("psql", [DATABASE_URL, "-qc", `DROP SCHEMA IF EXISTS "${name}" CASCADE`], {
        stdio: "ignore",
      });
    } catch {}
  });
  const url = new URL(DATABASE_URL);
  url.searchParams.set("schema", name);
  return {
    name,
    url: url.toString(),
    admin,
    async drop() {
      if (dropped) return;
      dropped = true;
      unregister();
      await admin.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
      await admin.end();
    },
  };
}

export interface BenchRedis {
  url: string;
  client: Redis;
  /** FLUSHDB and disconnect. */
  release(): Promise<void>;
}

/**
 * A Redis database of its own (an empty one among 1..15, starting at `preferred`), flushed before
 * use and on release. Note that pub/sub channels are server-wide, not per database: invalidation
 * messages of other Flux instances on the same server reach ours (they only drop cache entries).
 */
export async function freshRedis(preferred: number): Promise<BenchRedis> {
  for (let offset = 0; offset < 15; offset++) {
    const db = ((preferred - 1 + offset) % 15) + 1;
    const client = new Redis(`${REDIS_BASE}/${db}`, { maxRetriesPerRequest: 1 });
    client.on("error", () => {});
    if ((await client.dbsize()) !== 0) {
      client.disconnect();
      continue;
    }
    await client.flushdb();
    return {
      url: `${REDIS_BASE}/${db}`,
      client,
      async release() {
        await client.flushdb();
        client.disconnect();
      },
    };
  }
  throw new Error("no empty Redis database among 1..15");
}

// --- example processes -------------------------------------------------------------------------

export const EXPRESS_MAIN = join(ROOT, "examples/express-app/src/main.ts");

/** An example app as a user starts it: `node --import tsx --conditions=source main.ts`. */
export class AppProcess {
  readonly child: ChildProcess;
  output = "";
  private readonly unregister: () => void;

  constructor(
    readonly port: number,
    env: Record<string, string>,
    entry = EXPRESS_MAIN,
  ) {
    this.child = spawn(process.execPath, ["--import", "tsx", "--conditions=source", entry], {
      cwd: ROOT,
      env: { ...process.env, ...env, PORT: String(port) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (chunk: Buffer) => {
      // Bounded: keep the start of the output (the banner) and the last 20 kB.
      this.output = (this.output + chunk.toString()).slice(-20_000);
    };
    this.child.stdout?.on("data", keep);
    this.child.stderr?.on("data", keep);
    this.unregister = onExit(() => this.child.kill("SIGKILL"));
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** Waits for the banner (the demo key line) and returns the demo key. */
  async ready(timeoutMs = 90_000): Promise<string> {
    const pattern = /Demo key \(shown once\): (flux_live_[0-9A-Za-z]+)/;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const match = pattern.exec(this.output);
      if (match) return match[1] as string;
      if (this.exited) throw new Error(`example on :${this.port} exited:\n${this.output}`);
      await sleep(50);
    }
    throw new Error(`example on :${this.port} not ready within ${timeoutMs} ms:\n${this.output}`);
  }

  /** SIGTERM (the app closes its server and flushes usage), SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 20_000): Promise<number | null> {
    if (this.exited) {
      this.unregister();
      return this.child.exitCode;
    }
    const exited = new Promise<number | null>((resolve) => this.child.once("exit", (code) => resolve(code)));
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    const code = await exited;
    clearTimeout(timer);
    this.unregister();
    return code;
  }
}

/**
 * Fills a migrated schema's `flux_usage_minutes` with `keys` × `perKey` buckets in time order (as
 * traffic arrives: 60 days from `start`), loaded without the indexes, which are then built as the
 * migration defines them. `orgOf` is the SQL of a key's org from `k`, the key's number.
 */
export async function loadUsageMinutes(
  admin: pg.Client,
  schema: string,
  load: {
    keyPrefix: string;
    keys: number;
    perKey: number;
    start: string;
    orgOf: string;
    maintenanceWorkMem?: string;
  },
): Promise<{ rows: number; size: string; insertMs: number; indexMs: number }> {
  const t = (name: string) => `"${schema}"."${name}"`;
  const started = performance.now();
  // Month partitions for the 60 days (migration 0014), then the load without keys and indexes.
  await admin.query(
    `SELECT ${t("flux_usage_ensure_partitions")}(ARRAY(SELECT generate_series(TIMESTAMPTZ '${load.start}', TIMESTAMPTZ '${load.start}' + INTERVAL '61 days', INTERVAL '1 day')))`,
  );
  await admin.query(`DROP INDEX ${t("flux_usage_minutes_org_id_at_idx")}, ${t("flux_usage_minutes_at_idx")}`);
  await admin.query(`ALTER TABLE ${t("flux_usage_minutes")} DROP CONSTRAINT "flux_usage_minutes_pkey"`);
  if (load.maintenanceWorkMem) await admin.query(`SET maintenance_work_mem = '${load.maintenanceWorkMem}'`);
  await admin.query(`
    INSERT INTO ${t("flux_usage_minutes")}
      ("key_id", "at", "method", "endpoint", "status_class", "org_id", "count", "units", "latency_sum", "latency_max")
    SELECT '${load.keyPrefix}' || k,
           TIMESTAMPTZ '${load.start}' + ((j * 86400 / ${load.perKey}) * INTERVAL '1 minute'),
           (ARRAY['GET', 'POST', 'PUT', 'DELETE'])[1 + j % 4],
           '/v1/resource_' || (j % 20) || '/:id',
           CASE WHEN j % 10 = 0 THEN 5 WHEN j % 7 = 0 THEN 4 ELSE 2 END,
           ${load.orgOf},
           1 + j % 50, 1 + j % 50, (1 + j % 50) * 12.5, 40
    FROM generate_series(0, ${load.perKey - 1}) AS j, generate_series(0, ${load.keys - 1}) AS k`);
  const loaded = performance.now();
  await buildUsageKeys(admin, schema);
  const indexed = performance.now();
  const size = await admin.query(
    `SELECT count(*)::int AS n,
            pg_size_pretty((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('${t("flux_usage_minutes")}'))) AS size
     FROM ${t("flux_usage_minutes")}`,
  );
  return {
    rows: size.rows[0].n,
    size: size.rows[0].size,
    insertMs: loaded - started,
    indexMs: indexed - loaded,
  };
}

/** The primary key and indexes of `flux_usage_minutes`, as the migrations define them, then analyze. */
export async function buildUsageKeys(admin: pg.Client, schema: string): Promise<void> {
  const table = `"${schema}"."flux_usage_minutes"`;
  await admin.query(
    `ALTER TABLE ${table} ADD CONSTRAINT "flux_usage_minutes_pkey" PRIMARY KEY ("key_id", "at", "method", "endpoint", "status_class", "outcome")`,
  );
  await admin.query(`CREATE INDEX "flux_usage_minutes_org_id_at_idx" ON ${table}("org_id", "at")`);
  await admin.query(`CREATE INDEX "flux_usage_minutes_at_idx" ON ${table}("at")`);
  await admin.query(`VACUUM ANALYZE ${table}`);
}

/** One query's first run and the median of `runs` more (warm), in ms, with its answer. */
export async function timeQuery<T>(
  run: () => Promise<T>,
  runs = 7,
): Promise<{ result: T; firstMs: number; medianMs: number }> {
  const first = performance.now();
  const result = await run();
  const firstMs = performance.now() - first;
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await run();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return { result, firstMs, medianMs: times[Math.floor(times.length / 2)] ?? Number.NaN };
}
