/**
 * Where Flux Keys' cost over HTTP goes (issue 16): Fastify (or, with `--framework=express`,
 * Express) servers that each add one part of the work (bench/http-parts-server.ts: `bare`,
 * Express's `layers`, `hooks`, `sha256`, `check`, `authenticate`, `plugin`), loaded in alternating rounds at saturation, 50 connections, 100 keys round-robin,
 * server pinned to core 0 and this process to core 1. Reported: each server's CPU per request
 * (user + system from /proc, divided by the responses), the median of the rounds, and what it
 * adds to the row before it and to the first part (`bare` unless `--parts` says otherwise: the
 * median of the per-round differences, each round's servers loaded back to back), and its
 * throughput as a ratio to the first part's in the same round.
 * `spin-<ns>` parts (e.g. `--parts=bare,hooks,spin-500,spin-2000,plugin`) do N ns of busy work per
 * request and nothing of Flux Keys: the curve of what in-process work costs inside the server.
 * In-process (`pnpm bench hot-path`) the same parts cost a few µs;
 * this shows what they cost inside a server whose caches the network stack keeps cold.
 *
 * `--profile` also records every server with Linux `perf` during its rounds (bench/perf-profile.ts)
 * and prints where each one's CPU per request goes: Flux Keys' files, the framework, Node's HTTP,
 * V8's collector, the kernel's wake-up of the load generator, V8's new object shapes. perf's
 * sampling slows every server a little; the CPU figures of a profiled run include it.
 *
 *   pnpm bench http-parts [--framework=fastify|express] [--rounds=5] [--duration=3] [--parts=bare,hooks,…] [--profile]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { onExit, processCpuSeconds } from "./load-support.js";
import { attribute, NEW_SHAPES, perfAvailable, record, removePerfMap, WAKE_UP } from "./perf-profile.js";

const here = dirname(fileURLToPath(import.meta.url));
function flag(name: string, fallback: string): string {
  const found = process.argv.find((arg) => arg.startsWith(`--${name}=`));
  return found === undefined ? fallback : found.slice(name.length + 3);
}
const ROUNDS = Number(flag("rounds", "5"));
const DURATION = Number(flag("duration", "3"));
const FRAMEWORK = flag("framework", "fastify");
if (FRAMEWORK !== "fastify" && FRAMEWORK !== "express") throw new Error(`--framework: fastify or express`);
const PROFILE = process.argv.includes("--profile");
if (PROFILE && !perfAvailable())
  throw new Error("--profile needs Linux perf, allowed to sample (perf_event_paranoid)");
const PARTS = flag(
  "parts",
  FRAMEWORK === "express"
    ? "bare,layers,hooks,sha256,check,authenticate,plugin"
    : "bare,hooks,sha256,check,authenticate,plugin",
).split(",");

interface Server {
  part: string;
  child: ChildProcess;
  url: string;
  keys: string[];
  samples: number[];
  /** Responses per second in each round. */
  rates: number[];
  /** `--profile`: ns of CPU by category over the profiled rounds, and the responses they served. */
  profile: Map<string, number>;
  profiled: number;
}

async function start(part: string): Promise<Server> {
  const child = spawn(
    "taskset",
    [
      "-c",
      "0",
      process.execPath,
      ...(PROFILE ? ["--perf-basic-prof"] : []),
      "--import",
      "tsx",
      "--conditions=source",
      join(here, "http-parts-server.ts"),
      part,
      FRAMEWORK,
    ],
    { env: { ...process.env, NODE_ENV: "production" }, stdio: ["ignore", "pipe", "inherit"] },
  );
  const ready = await new Promise<{ port: number; keys: string[] }>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${part}: exited with ${code}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      try {
        const message = JSON.parse(line) as { ready?: boolean; port: number; keys: string[] };
        if (message.ready) resolve(message);
      } catch {
        // Not ours.
      }
    });
  });
  return {
    part,
    child,
    url: `http://127.0.0.1:${ready.port}/v1/events`,
    keys: ready.keys,
    samples: [],
    rates: [],
    profile: new Map(),
    profiled: 0,
  };
}

async function load(server: Server, seconds: number): Promise<{ cpu: number; rate: number }> {
  let next = Math.floor(Math.random() * server.keys.length);
  let served = 0;
  let failed = 0;
  const before = processCpuSeconds(server.child.pid!);
  let instance!: autocannon.Instance;
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      {
        url: server.url,
        connections: 50,
        duration: seconds,
        requests: [
          {
            setupRequest: (request: autocannon.Request) => {
              next = (next + 1) % server.keys.length;
              request.headers = { ...request.headers, authorization: `Bearer ${server.keys[next]}` };
              return request;
            },
          },
        ],
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
  });
  instance.on("response", (_client: unknown, status: number) => {
    if (status === 200) served++;
    else failed++;
  });
  await finished;
  if (failed > 0) throw new Error(`${server.part}: ${failed} responses were not 200`);
  return { cpu: ((processCpuSeconds(server.child.pid!) - before) * 1e6) / served, rate: served / seconds };
}

spawn("taskset", ["-cp", "1", String(process.pid)], { stdio: "ignore" });
const servers: Server[] = [];
// A failed or interrupted run must not leave its servers behind.
onExit(() => {
  for (const server of servers) server.child.kill("SIGTERM");
});
for (const part of PARTS) servers.push(await start(part));
console.log(
  `http-parts: ${FRAMEWORK}, ${ROUNDS} rounds × ${DURATION} s at saturation, 50 connections, 100 keys; load average ${loadavg()[0]?.toFixed(2)}`,
);
for (const server of servers) await load(server, 1);
for (let round = 0; round < ROUNDS; round++) {
  for (let i = 0; i < servers.length; i++) {
    const server = servers[(round + i) % servers.length] as Server;
    const file = `/tmp/flux-http-parts-${server.child.pid}.data`;
    const stop = PROFILE ? record(server.child.pid!, file) : null;
    const { cpu, rate } = await load(server, DURATION);
    server.samples.push(cpu);
    server.rates.push(rate);
    if (stop !== null) {
      await stop();
      for (const [category, ns] of attribute(file)) {
        server.profile.set(category, (server.profile.get(category) ?? 0) + ns);
      }
      server.profiled += rate * DURATION;
    }
  }
}
const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const signed = (value: number) => `${value >= 0 ? "+" : ""}${value.toFixed(1)} µs`;
const base = servers[0] as Server;
console.log(
  `\n| part | server CPU/req (median) | added to the row above | added to ${base.part} (paired) | throughput / ${base.part} (paired) | rounds |`,
);
console.log("|---|---:|---:|---:|---:|---|");
let previous: number | null = null;
for (const server of servers) {
  const value = median(server.samples);
  const added = previous === null ? "—" : signed(value - previous);
  const paired =
    server === base ? "—" : signed(median(server.samples.map((s, i) => s - (base.samples[i] as number))));
  const ratio =
    server === base ? "—" : median(server.rates.map((r, i) => r / (base.rates[i] as number))).toFixed(2);
  console.log(
    `| ${server.part} | ${value.toFixed(1)} µs | ${added} | ${paired} | ${ratio} | ${server.samples.map((s) => s.toFixed(0)).join(", ")} |`,
  );
  previous = value;
}
if (PROFILE) printProfile();
console.log(`\nload average at the end ${loadavg()[0]?.toFixed(2)}`);
for (const server of servers) {
  server.child.kill("SIGTERM");
  removePerfMap(server.child.pid!);
}
process.exit(0);

/** `--profile`: µs of CPU per response by category, each server beside the first part. */
function printProfile(): void {
  const perRequest = (server: Server, category: string) =>
    (server.profile.get(category) ?? 0) / 1e3 / server.profiled;
  const slices = new Set([WAKE_UP, NEW_SHAPES]);
  const categories = [...new Set(servers.flatMap((server) => [...server.profile.keys()]))].filter(
    (category) => !slices.has(category),
  );
  // Largest difference to the first part first; categories under 0.1 µs everywhere are left out.
  const last = servers[servers.length - 1] as Server;
  categories.sort(
    (a, b) =>
      Math.abs(perRequest(last, b) - perRequest(base, b)) -
      Math.abs(perRequest(last, a) - perRequest(base, a)),
  );
  const shown = categories.filter((category) =>
    servers.some((server) => perRequest(server, category) >= 0.1),
  );
  const total = (server: Server) =>
    categories.reduce((sum, category) => sum + perRequest(server, category), 0);
  console.log(
    `\nperf profile, µs of CPU per response (${ROUNDS} rounds each; "±" is the difference to ${base.part}):\n`,
  );
  console.log(`| category | ${servers.map((server) => server.part).join(" | ")} |`);
  console.log(`|---|${servers.map(() => "---:").join("|")}|`);
  const row = (label: string, value: (server: Server) => number) => {
    const cells = servers.map((server) => {
      const own = value(server);
      return server === base
        ? own.toFixed(2)
        : `${own.toFixed(2)} (${signed(own - value(base)).replace(" µs", "")})`;
    });
    console.log(`| ${label} | ${cells.join(" | ")} |`);
  };
  row("**all samples**", total);
  for (const category of shown) row(category, (server) => perRequest(server, category));
  for (const slice of slices) row(`_of which, anywhere: ${slice}_`, (server) => perRequest(server, slice));
}
