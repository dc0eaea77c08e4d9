/**
 * Paired HTTP benchmark (issue 16): server CPU per request of several servers of
 * `bench/http-server.ts`, all started at once, loaded one after the other in short rounds, the
 * order reversed every round. On this shared 2-core VM a server's CPU per request moves by tens of
 * percent within minutes (other tenants), so a figure taken minutes apart from its baseline says
 * little. Here each server's round is paired with the first server's round a few seconds away, and
 * the reported "added" is the median of those per-round differences. Not a test; numbers.
 *
 *   pnpm bench http-pair [--rounds=12] [--duration=2] [--connections=50] [--rate=N] [--keys=100]
 *                        [LABEL=SCENARIO[:ENV=VALUE,…][@/path/to/worktree] …]
 *
 * Without servers named: bare and flux of each framework, each flux row paired with its own bare.
 * `SCENARIO` is one of http-server.ts (`fastify-flux`, `nest-fastify-guard-floor`…); `ENV=VALUE`
 * pairs set its diagnostics (e.g. `noparam=nest-fastify-flux:BENCH_NEST_PARAM=off`), and `@path`
 * runs the server from another checkout (a `git worktree` of an older commit: old against new
 * code in one run). Named servers are all paired with the first one. `--rate` offers a fixed
 * load in req/s instead of saturating. Servers on Redis or PostgreSQL get a fresh prefix or schema
 * (REDIS_URL, BENCH_DATABASE_URL), dropped at the end.
 *
 * Server on core 0, this process (autocannon) on core 1, `--keys` distinct keys round-robin (each
 * load starting at a random one). CPU per request from `/proc/<pid>/stat`.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import autocannon from "autocannon";
import { Redis } from "ioredis";
import { FRAMEWORKS, ON_REDIS, VARIANTS, type Variant, WITHOUT_FLUX } from "./http-scenarios.js";
import {
  DATABASE_URL,
  freshSchema,
  percentile,
  processCpuSeconds,
  ROOT,
  roundRobinKeys,
} from "./load-support.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

function flag(name: string, fallback: number): number {
  const found = process.argv.find((arg) => arg.startsWith(`--${name}=`));
  const value = found === undefined ? fallback : Number(found.slice(name.length + 3));
  if (!(Number.isFinite(value) && value > 0)) throw new Error(`--${name} must be a positive number`);
  return value;
}
const rounds = flag("rounds", 12);
const duration = flag("duration", 2);
const connections = flag("connections", 50);
const keys = flag("keys", 100);
const rate = process.argv.some((arg) => arg.startsWith("--rate=")) ? flag("rate", 1) : undefined;

interface Spec {
  label: string;
  scenario: string;
  env: Record<string, string>;
  cwd: string;
  /** The label this server's rounds are paired with. */
  pairedWith: string;
}

/** `label=scenario[:ENV=VALUE,…][@/worktree]`. */
function parseSpec(text: string, first: string | undefined): Spec {
  const equals = text.indexOf("=");
  if (equals <= 0) throw new Error(`expected LABEL=SCENARIO, got '${text}'`);
  const label = text.slice(0, equals);
  let rest = text.slice(equals + 1);
  const at = rest.lastIndexOf("@/");
  const cwd = at < 0 ? ROOT : rest.slice(at + 1);
  if (at >= 0) rest = rest.slice(0, at);
  const colon = rest.indexOf(":");
  const scenario = colon < 0 ? rest : rest.slice(0, colon);
  const env: Record<string, string> = {};
  for (const pair of colon < 0 ? [] : rest.slice(colon + 1).split(",")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`expected ENV=VALUE in '${text}'`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { label, scenario, env, cwd, pairedWith: first ?? label };
}

function defaultSpecs(): Spec[] {
  return FRAMEWORKS.flatMap((framework) => [
    {
      label: `${framework}-bare`,
      scenario: `${framework}-bare`,
      env: {},
      cwd: ROOT,
      pairedWith: `${framework}-bare`,
    },
    {
      label: `${framework}-flux`,
      scenario: `${framework}-flux`,
      env: {},
      cwd: ROOT,
      pairedWith: `${framework}-bare`,
    },
  ]);
}

const named = process.argv.slice(2).filter((arg) => !arg.startsWith("--"));
const specs: Spec[] = [];
for (const text of named) specs.push(parseSpec(text, specs[0]?.label));
if (specs.length === 0) specs.push(...defaultSpecs());

function variantOf(scenario: string): Variant {
  const variant = [...VARIANTS]
    .sort((a, b) => b.length - a.length)
    .find((candidate) => scenario.endsWith(`-${candidate}`));
  if (variant === undefined) throw new Error(`unknown scenario '${scenario}'`);
  return variant;
}

interface Server extends Spec {
  child: ChildProcess;
  url: string;
  keys: string[];
}

const cleanups: Array<() => Promise<void>> = [];

async function start(spec: Spec): Promise<Server> {
  const variant = variantOf(spec.scenario);
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: "production", BENCH_KEYS: String(keys) };
  if (ON_REDIS.includes(variant)) {
    const prefix = `bench_pair_${randomBytes(4).toString("hex")}:`;
    env.BENCH_REDIS_URL = REDIS_URL;
    env.BENCH_REDIS_PREFIX = prefix;
    cleanups.push(async () => {
      const redis = new Redis(REDIS_URL);
      const found = await redis.keys(`${prefix}*`);
      if (found.length > 0) await redis.del(...found);
      await redis.quit();
    });
  }
  if ((ON_REDIS.includes(variant) && !WITHOUT_FLUX.includes(variant)) || variant.startsWith("handrolled")) {
    const schema = await freshSchema("pair");
    env.BENCH_DATABASE_URL = DATABASE_URL;
    env.BENCH_PG_SCHEMA = schema.name;
    cleanups.push(() => schema.drop());
  }
  Object.assign(env, spec.env);
  const args = ["-c", "0", process.execPath, "--import", "tsx", "--conditions=source"];
  const child = spawn("taskset", [...args, join(spec.cwd, "bench/http-server.ts"), spec.scenario], {
    cwd: spec.cwd,
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const ready = await new Promise<{ port: number; keys?: string[] }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      try {
        const message = JSON.parse(line) as { ready?: boolean; port: number; keys?: string[] };
        if (message.ready) resolve(message);
      } catch {
        // A library printing to stdout.
      }
    });
    child.once("exit", (code) => reject(new Error(`${spec.label}: exited with ${code} before it was ready`)));
  });
  return { ...spec, child, url: `http://127.0.0.1:${ready.port}/v1/events`, keys: ready.keys ?? [] };
}

interface Sample {
  rps: number;
  cpuPerRequest: number;
  p99: number;
}

async function load(server: Server, seconds: number): Promise<Sample> {
  const before = processCpuSeconds(server.child.pid!);
  const result = await autocannon({
    url: server.url,
    connections,
    duration: seconds,
    ...(rate === undefined ? {} : { overallRate: rate }),
    ...(server.keys.length > 0 ? roundRobinKeys(server.keys) : {}),
  });
  const served = result.requests.total;
  if (result.non2xx > 0) throw new Error(`${server.label}: ${result.non2xx} responses were not 2xx`);
  return {
    rps: served / seconds,
    cpuPerRequest:
      served === 0 ? Number.NaN : ((processCpuSeconds(server.child.pid!) - before) * 1e6) / served,
    p99: result.latency.p99,
  };
}

function median(values: number[]): number {
  return percentile(Float64Array.from(values).sort(), 50);
}

async function main() {
  const pinned = spawnSync("taskset", ["-a", "-p", "-c", "1", String(process.pid)]).status === 0;
  if (!pinned) console.log("taskset or a second core is missing: server and load generator are NOT pinned.");
  const loadAtStart = loadavg()[0]!;
  const started = new Date();
  const servers: Server[] = [];
  try {
    for (const spec of specs) servers.push(await start(spec));
    for (const server of servers) await load(server, 1);
    const samples = new Map<string, Sample[]>(servers.map((server) => [server.label, []]));
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const server of order) samples.get(server.label)!.push(await load(server, duration));
      const line = servers.map((s) => `${s.label} ${samples.get(s.label)!.at(-1)!.cpuPerRequest.toFixed(1)}`);
      console.log(`round ${round + 1}: ${line.join(", ")} µs/req`);
    }
    const loadAtEnd = loadavg()[0]!;
    console.log(
      `\n${started.toISOString()}, ${rounds} rounds × ${duration} s, ${connections} connections, ${keys} keys, ` +
        `${rate === undefined ? "saturated" : `${rate} req/s offered`}; load average ${loadAtStart.toFixed(2)} at the start, ${loadAtEnd.toFixed(2)} at the end\n`,
    );
    console.log(
      "| server | req/s | server CPU/req | added (paired median) | ratio to its pair (paired median) | p99 | rounds (µs/req) |",
    );
    console.log("|---|---:|---:|---:|---:|---:|---|");
    for (const server of servers) {
      const own = samples.get(server.label)!;
      const base = samples.get(server.pairedWith)!;
      const isBase = server.pairedWith === server.label;
      const added = median(own.map((sample, i) => sample.cpuPerRequest - base[i]!.cpuPerRequest));
      const ratio = median(own.map((sample, i) => sample.rps / base[i]!.rps));
      console.log(
        `| ${server.label} | ${Math.round(median(own.map((s) => s.rps))).toLocaleString("en-US")} | ` +
          `${median(own.map((s) => s.cpuPerRequest)).toFixed(1)} µs | ${isBase ? "—" : `${added >= 0 ? "+" : ""}${added.toFixed(1)} µs`} | ` +
          `${isBase ? "—" : ratio.toFixed(2)} | ${median(own.map((s) => s.p99))} ms | ${own.map((s) => s.cpuPerRequest.toFixed(0)).join(", ")} |`,
      );
    }
  } finally {
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            if (server.child.exitCode !== null) return resolve();
            server.child.once("exit", () => resolve());
            server.child.kill("SIGTERM");
          }),
      ),
    );
    for (const cleanup of cleanups) await cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
