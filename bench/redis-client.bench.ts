/**
 * What one limits call costs the Node process on ioredis (issue 16): the decision script
 * (limits/shared-store.ts, one fixed window) over 100 keys, `--concurrency` callers each awaiting
 * its reply, sent four ways:
 *
 * - `defineCommand`: ioredis's generated script method on a client with auto-pipelining (how
 *   Flux Keys sent it before; the method wraps commands issued in one tick in a pipeline);
 * - `sendCommand`: one `EVALSHA` command handed to the same client (how Flux Keys sends it now);
 * - the same two on a client without auto-pipelining;
 * - a plain `GET` through the generated method, for scale.
 *
 * Reported: this process's CPU time (user + system) per call, and wall time per call. Redis's own
 * time is not in the CPU figure.
 *
 *   pnpm bench redis-client [--calls=200000] [--concurrency=50] [--runs=3]
 */
import { parseArgs } from "node:util";
import { Command, Redis } from "ioredis";
import { DECIDE_SCRIPT } from "../packages/core/src/limits/shared-store.js";

const { values: args } = parseArgs({
  options: {
    calls: { type: "string", default: "200000" },
    concurrency: { type: "string", default: "50" },
    runs: { type: "string", default: "3" },
  },
});
const CALLS = Number(args.calls);
const CONCURRENCY = Number(args.concurrency);
const RUNS = Number(args.runs);
const KEYS = 100;
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `bench_redis_client_${process.pid}:`;
/** One fixed window of a billion a minute, no quota, then the cost. */
const HEAD = ["0", "1", "0", "1", "1000000000", "60000", "0", "1"];

type Send = (redis: Redis, sha: string, key: string) => Promise<unknown>;
const viaMethod: Send = (redis, _sha, key) =>
  (redis as unknown as { fluxBench: (...a: unknown[]) => Promise<unknown> }).fluxBench(1, key, ...HEAD);
const viaCommand: Send = (redis, sha, key) =>
  redis.sendCommand(new Command("evalsha", [sha, "1", key, ...HEAD])) as Promise<unknown>;
const WAYS: Array<{ name: string; pipelining: boolean; send: Send }> = [
  { name: "defineCommand, auto-pipelining", pipelining: true, send: viaMethod },
  { name: "sendCommand(EVALSHA), auto-pipelining client", pipelining: true, send: viaCommand },
  { name: "defineCommand, no auto-pipelining", pipelining: false, send: viaMethod },
  { name: "sendCommand(EVALSHA), no auto-pipelining", pipelining: false, send: viaCommand },
  {
    name: "GET (generated method), auto-pipelining",
    pipelining: true,
    send: (redis, _sha, key) => redis.get(key),
  },
];

async function measure(redis: Redis, sha: string, send: Send): Promise<{ cpu: number; wall: number }> {
  let issued = 0;
  const caller = async (start: number) => {
    let k = start;
    while (issued < CALLS) {
      issued++;
      await send(redis, sha, `${PREFIX}{o${k}}:w`);
      k = (k + 1) % KEYS;
    }
  };
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => caller(i % KEYS)));
  const used = process.cpuUsage(cpu);
  return { cpu: (used.user + used.system) / CALLS, wall: ((performance.now() - started) * 1000) / CALLS };
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

console.log(
  `ioredis call cost, ${RUNS} runs × ${CALLS.toLocaleString("en-US")} calls, ${CONCURRENCY} callers, ${KEYS} keys, ${REDIS_URL}\n`,
);
console.log("| how the call is sent | CPU µs/call (median) | wall µs/call (median) |");
console.log("|---|---:|---:|");
for (const way of WAYS) {
  const redis = new Redis(REDIS_URL, {
    enableAutoPipelining: way.pipelining,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 1_000,
  });
  await new Promise((ready, unreachable) => {
    redis.once("ready", ready);
    redis.once("error", (error) => unreachable(new Error(`Redis at ${REDIS_URL}: ${error.message}`)));
  });
  redis.defineCommand("fluxBench", { lua: DECIDE_SCRIPT, numberOfKeys: undefined });
  const sha = (await redis.script("LOAD", DECIDE_SCRIPT)) as string;
  await measure(redis, sha, way.send); // warm-up
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const sample = await measure(redis, sha, way.send);
    cpu.push(sample.cpu);
    wall.push(sample.wall);
  }
  console.log(`| ${way.name} | ${median(cpu).toFixed(2)} | ${median(wall).toFixed(2)} |`);
  redis.disconnect();
}
const cleaner = new Redis(REDIS_URL);
const stale = await cleaner.keys(`${PREFIX}*`);
if (stale.length > 0) await cleaner.del(...stale);
cleaner.disconnect();
