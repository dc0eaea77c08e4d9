/**
 * What a busy server sees when its cached keys reach `cache.ttl` (issue 16): the Fastify plugin
 * on the embedded defaults (bench/http-parts-server.ts `plugin`, pinned to core 0), 100 keys
 * round-robin from 50 connections for longer than one TTL, and each second's responses and
 * slowest response. All 100 keys are read in a 3-second warm-up (not counted), so without
 * refresh-ahead they all expire together one TTL later and every request of theirs waits for its
 * read.
 *
 *   pnpm bench cache-refresh [--duration=40] [--ttl=30s] [--framework=fastify|express]
 */
import { spawn } from "node:child_process";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { onExit } from "./load-support.js";

const here = dirname(fileURLToPath(import.meta.url));
function flag(name: string, fallback: string): string {
  const found = process.argv.find((arg) => arg.startsWith(`--${name}=`));
  return found === undefined ? fallback : found.slice(name.length + 3);
}
const DURATION = Number(flag("duration", "40"));
const TTL = flag("ttl", "30s");
const FRAMEWORK = flag("framework", "fastify");

spawn("taskset", ["-cp", "1", String(process.pid)], { stdio: "ignore" });
const child = spawn(
  "taskset",
  [
    "-c",
    "0",
    process.execPath,
    "--import",
    "tsx",
    "--conditions=source",
    join(here, "http-parts-server.ts"),
    "plugin",
    FRAMEWORK,
  ],
  {
    env: { ...process.env, NODE_ENV: "production", BENCH_CACHE_TTL: TTL },
    stdio: ["ignore", "pipe", "inherit"],
  },
);
onExit(() => child.kill("SIGTERM"));
const ready = await new Promise<{ port: number; keys: string[] }>((resolve, reject) => {
  child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  createInterface({ input: child.stdout! }).on("line", (line) => {
    try {
      const message = JSON.parse(line) as { ready?: boolean; port: number; keys: string[] };
      if (message.ready) resolve(message);
    } catch {
      // Not ours.
    }
  });
});
console.log(
  `cache-refresh: ${FRAMEWORK} plugin, cache.ttl ${TTL}, 50 connections, ${ready.keys.length} keys, ${DURATION} s; load average ${loadavg()[0]?.toFixed(2)}`,
);

let next = Math.floor(Math.random() * ready.keys.length);
const load = (duration: number) =>
  autocannon(
    {
      url: `http://127.0.0.1:${ready.port}/v1/events`,
      connections: 50,
      duration,
      requests: [
        {
          setupRequest: (request: autocannon.Request) => {
            next = (next + 1) % ready.keys.length;
            request.headers = { ...request.headers, authorization: `Bearer ${ready.keys[next]}` };
            return request;
          },
        },
      ],
    },
    () => {},
  );
// The warm-up reads every key (one TTL from now they are due) and warms the JIT.
const warmUp = load(3);
await new Promise((resolve) => warmUp.on("done", resolve));
const seconds: Array<{ responses: number; slowest: number }> = [];
const startedAt = performance.now();
const instance = load(DURATION);
let failed = 0;
instance.on("response", (_client: unknown, status: number, _bytes: number, responseTime: number) => {
  if (status !== 200) failed++;
  const second = Math.floor((performance.now() - startedAt) / 1000);
  while (seconds.length <= second) seconds.push({ responses: 0, slowest: 0 });
  const slot = seconds[second] as { responses: number; slowest: number };
  slot.responses++;
  if (responseTime > slot.slowest) slot.slowest = responseTime;
});
await new Promise((resolve) => instance.on("done", resolve));
child.kill("SIGTERM");
if (failed > 0) throw new Error(`${failed} responses were not 200`);

// The last second may be cut short.
const measured = seconds.slice(0, DURATION);
const sorted = [...measured].sort((a, b) => a.responses - b.responses);
const median = sorted[Math.floor(sorted.length / 2)] as { responses: number };
const worst = sorted[0] as { responses: number; slowest: number };
const slowest = Math.max(...measured.map((second) => second.slowest));
const typicalSlowest = [...measured.map((second) => second.slowest)].sort((a, b) => a - b)[
  Math.floor(measured.length / 2)
] as number;
console.log(
  `\nper second (responses / slowest ms): ${seconds.map((s, i) => `${i}s ${s.responses}/${s.slowest.toFixed(0)}`).join(", ")}`,
);
console.log("\n| responses per second: median | worst second | slowest response: median second | worst |");
console.log("|---:|---:|---:|---:|");
console.log(
  `| ${median.responses} | ${worst.responses} (${((worst.responses / median.responses) * 100).toFixed(0)} %) | ${typicalSlowest.toFixed(0)} ms | ${slowest.toFixed(0)} ms |`,
);
console.log(`\nload average at the end ${loadavg()[0]?.toFixed(2)}`);
process.exit(0);
