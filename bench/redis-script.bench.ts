/**
 * What one limit decision costs Redis itself (issue 18, capacity model): the decision script
 * (limits/shared-store.ts) driven by redis-benchmark (C, 50 connections, no pipelining) against a
 * throwaway redis-server on a free loopback port, for two windows + a daily quota of each
 * algorithm, over 100,000 random keys; and the memory each kind of counter takes
 * (`MEMORY USAGE`). Not a test; numbers only.
 *
 *   npx tsx --conditions=source bench/redis-script.bench.ts [--requests 200000]
 */
import { execFile } from "node:child_process";
import { parseArgs, promisify } from "node:util";
import { Redis } from "ioredis";
import { DECIDE_SCRIPT } from "../packages/core/src/limits/shared-store.js";
import { ThrowawayRedis } from "../test/support/faults-services.js";

const run = promisify(execFile);
const { values: args } = parseArgs({ options: { requests: { type: "string", default: "200000" } } });
const REQUESTS = Number(args.requests);
const CODES = { fixed: "1", sliding: "2", gcra: "3" } as const;
const BIG = "1000000000";

/** Arguments of one decision: two windows of `algorithm`, a daily quota, cost 1. */
function decision(algorithm: keyof typeof CODES, tag: string): string[] {
  const code = CODES[algorithm];
  return [
    "3",
    `flux:rl:{${tag}}:w:k:burst:1`,
    `flux:rl:{${tag}}:w:k:sustained:3600`,
    `flux:rl:{${tag}}:q:k:d`,
    "0",
    "2",
    "1",
    code,
    BIG,
    "1000",
    BIG,
    code,
    BIG,
    "3600000",
    BIG,
    BIG,
    String(86_400_000 + 3_600_000),
    "1",
  ];
}

const server = await ThrowawayRedis.start();
const client = new Redis({ port: server.port, host: "127.0.0.1" });
const rows: string[] = [];
try {
  const sha = String(await client.script("LOAD", DECIDE_SCRIPT));
  for (const algorithm of Object.keys(CODES) as Array<keyof typeof CODES>) {
    await client.flushall();
    const { stdout } = await run(
      "redis-benchmark",
      [
        "-p",
        String(server.port),
        "-h",
        "127.0.0.1",
        "-c",
        "50",
        "-n",
        String(REQUESTS),
        "-r",
        "100000",
        "-q",
        "EVALSHA",
        sha,
        ...decision(algorithm, "org__rand_int__"),
      ],
      { timeout: 300_000 },
    );
    const perSecond = /([\d.]+) requests per second/.exec(stdout)?.[1] ?? "?";
    const stats = await client.info("commandstats");
    const usec = /cmdstat_evalsha:calls=\d+,usec=\d+,usec_per_call=([\d.]+)/.exec(stats)?.[1] ?? "?";
    const keys = await client.dbsize();
    const memory = await client.info("memory");
    const used = Number(/used_memory:(\d+)/.exec(memory)?.[1] ?? 0);
    const sample = await client.randomkey();
    const perCounter = sample === null ? 0 : Number(await client.memory("USAGE", sample));
    rows.push(
      `| ${algorithm} | ${Math.round(Number(perSecond)).toLocaleString("en")} /s | ${usec} µs | ${keys.toLocaleString("en")} | ${(used / 1024 / 1024).toFixed(1)} MiB | ${perCounter} B |`,
    );
    console.log(rows.at(-1));
    await client.config("RESETSTAT");
  }
} finally {
  client.disconnect();
  await server.destroy();
}

console.log(
  `\n| algorithm (2 windows + quota) | decisions per second, one redis-server | Redis CPU per decision (usec_per_call) | counters held | used_memory | MEMORY USAGE of one counter |\n|---|---:|---:|---:|---:|---:|\n${rows.join("\n")}`,
);
