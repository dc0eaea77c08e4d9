/**
 * Issue 9, soak: one Express example process on PostgreSQL + Redis under a steady mix of valid,
 * invalid and rate-limited keys for 10 minutes (loopback only, bounded in time). Reports the
 * server's RSS (VmRSS) and open descriptors every minute and after the load, and the latency
 * percentiles per minute as this process measured them.
 *
 *   pnpm bench soak      (or: npx tsx --conditions=source bench/soak.bench.ts [--minutes 10] [--rate 500] [--quick])
 *
 * --quick: one minute, sampled every 15 s. The load is open-loop at --rate requests per second
 * (at most 256 in flight; requests over that are counted as shed, not sent). The mix:
 * - 55% a valid key (20 keys, half with generous limits so the Redis limiter runs), GET
 *   /v1/events (200) or an unknown event (404), from 127.0.0.1, over keep-alive connections;
 * - 15% one key limited to 5/s (mostly 429), from 127.0.0.1;
 * - 20% well-formed but unknown keys, a fresh one each time (a database miss every time), from 250
 *   rotating loopback addresses 127.0.1.x on a new connection each (connection churn): 401, or 429
 *   when an address passes the pre-authentication limit (30 failures a minute);
 * - 5% garbage keys from one address 127.0.2.1: 401 until it is locked out, then 429;
 * - 5% no key at all from 127.0.0.1: 401 (not counted as a failed authentication).
 */
import { randomBytes } from "node:crypto";
import { Agent, request } from "node:http";
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { createFlux } from "@flux-keys/core";
import { generateKey } from "../packages/core/src/keys/format.js";
import {
  AppProcess,
  type BenchRedis,
  type BenchSchema,
  DATABASE_URL,
  fdCount,
  fdKinds,
  freePort,
  freshRedis,
  freshSchema,
  percentile,
  quietMachine,
  rssKb,
} from "./load-support.js";

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    rate: { type: "string", default: "500" },
    quick: { type: "boolean", default: false },
  },
});
const MINUTES = args.quick ? 1 : Number(args.minutes);
const SAMPLE_MS = args.quick ? 15_000 : 60_000;
const RATE = Number(args.rate);
const MAX_IN_FLIGHT = 256;
const TICK_MS = 10;

type Kind = "valid" | "limited" | "unknown" | "garbage" | "missing";
const EXPECTED: Record<Kind, number[]> = {
  valid: [200, 404],
  limited: [200, 429],
  unknown: [401, 429],
  garbage: [401, 429],
  missing: [401],
};

interface Window {
  latencies: number[];
  statuses: Map<string, number>;
  shed: number;
}

function newWindow(): Window {
  return { latencies: [], statuses: new Map(), shed: 0 };
}

async function main(): Promise<void> {
  let schema: BenchSchema | undefined;
  let redis: BenchRedis | undefined;
  let app: AppProcess | undefined;
  const agents: Agent[] = [];
  try {
    schema = await freshSchema("soak");
    redis = await freshRedis(6);
    const flux = await createFlux({
      database: { url: DATABASE_URL, schema: schema.name },
      redis: { url: redis.url },
    });
    const valid: string[] = [];
    const limited: string[] = [];
    try {
      await flux.plans.upsert({ id: "soak", name: "Soak", scopes: ["read:events"] });
      await flux.orgs.create({ id: "soak-org", name: "Soak", planId: "soak" });
      const { seedDemo } = await import("@flux-keys/example-shared");
      await seedDemo(flux);
      for (let i = 0; i < 20; i++) {
        const builder = flux.keys.create().forOrg("soak-org").named(`valid ${i}`).withScopes(["read:events"]);
        if (i % 2 === 1) {
          builder.withRateLimits([
            { name: "burst", limit: 100_000, window: "1s" },
            { name: "hour", limit: 100_000_000, window: "1h" },
          ]);
        }
        valid.push((await builder.issue()).secret);
      }
      const slow = await flux.keys
        .create()
        .forOrg("soak-org")
        .named("limited")
        .withScopes(["read:events"])
        .withRateLimits([{ name: "burst", limit: 5, window: "1s" }])
        .issue();
      limited.push(slow.secret);
    } finally {
      await flux.close();
    }

    app = new AppProcess(await freePort(), { DATABASE_URL: schema.url, REDIS_URL: redis.url });
    await app.ready();
    const server = app;
    const pid = server.pid;

    const local = new Agent({ keepAlive: true, maxSockets: 64, localAddress: "127.0.0.1" });
    const attacker = new Agent({ keepAlive: true, maxSockets: 8, localAddress: "127.0.2.1" });
    agents.push(local, attacker);

    let window = newWindow();
    const all = newWindow();
    let inFlight = 0;
    let sent = 0;
    let seq = 0;

    const send = (kind: Kind) => {
      const n = seq++;
      let headers: Record<string, string> = {};
      let path = "/v1/events";
      let agent: Agent | false = local;
      let localAddress: string | undefined;
      switch (kind) {
        case "valid":
          headers = { authorization: `Bearer ${valid[n % valid.length]}` };
          if (n % 10 === 0) path = "/v1/events/evt_none";
          break;
        case "limited":
          headers = { authorization: `Bearer ${limited[0]}` };
          break;
        case "unknown":
          headers = { authorization: `Bearer ${generateKey("flux", "live").secret}` };
          agent = false;
          localAddress = `127.0.1.${1 + (n % 250)}`;
          break;
        case "garbage":
          headers = {
            "x-api-key": `flux_live_${randomBytes(30).toString("base64url").replace(/[-_]/g, "x")}`,
          };
          agent = attacker;
          break;
        case "missing":
          break;
      }
      inFlight++;
      sent++;
      const started = performance.now();
      const done = (status: string) => {
        inFlight--;
        const latency = performance.now() - started;
        const label = `${kind}:${status}`;
        for (const w of [window, all]) {
          w.latencies.push(latency);
          w.statuses.set(label, (w.statuses.get(label) ?? 0) + 1);
        }
      };
      const req = request(
        {
          host: "127.0.0.1",
          port: server.port,
          path,
          method: "GET",
          headers: agent === false ? { ...headers, connection: "close" } : headers,
          agent,
          ...(localAddress ? { localAddress } : {}),
          timeout: 10_000,
        },
        (res) => {
          res.resume();
          res.once("end", () => done(String(res.statusCode)));
          res.once("error", () => done("error"));
        },
      );
      req.once("timeout", () => req.destroy(new Error("timeout")));
      req.once("error", (error) => done(error.message === "timeout" ? "timeout" : "error"));
      req.end();
    };

    const pick = (r: number): Kind =>
      r < 0.55 ? "valid" : r < 0.7 ? "limited" : r < 0.9 ? "unknown" : r < 0.95 ? "garbage" : "missing";

    // Idle baseline, after one request of each kind has gone through.
    for (const kind of ["valid", "limited", "unknown", "garbage", "missing"] as const) send(kind);
    while (inFlight > 0) await sleep(10);
    await sleep(2_000);
    const idleRss = rssKb(pid);
    const idleFds = fdCount(pid);
    const idleKinds = fdKinds(pid);
    window = newWindow();

    const loadAtStart = await quietMachine("soak");
    console.log(
      `soak: ${MINUTES} min at ${RATE} req/s on :${server.port} (pid ${pid}); idle RSS ${(idleRss / 1024).toFixed(1)} MiB, ${idleFds} fds ${JSON.stringify(idleKinds)}`,
    );
    const rows: Array<{
      at: number;
      requests: number;
      p50: number;
      p99: number;
      max: number;
      rssMb: number;
      fds: number;
      shed: number;
      load: number;
    }> = [];
    const startedAt = performance.now();
    const endAt = startedAt + MINUTES * 60_000;
    let nextSample = startedAt + SAMPLE_MS;
    let budget = 0;
    let last = startedAt;
    while (performance.now() < endAt) {
      await sleep(TICK_MS);
      const now = performance.now();
      budget += ((now - last) * RATE) / 1000;
      last = now;
      while (budget >= 1) {
        budget -= 1;
        if (inFlight >= MAX_IN_FLIGHT) {
          window.shed++;
          all.shed++;
          continue;
        }
        send(pick(Math.random()));
      }
      if (now >= nextSample) {
        nextSample += SAMPLE_MS;
        const sorted = Float64Array.from(window.latencies).sort();
        const row = {
          at: Math.round((now - startedAt) / 1000),
          requests: sorted.length,
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          max: sorted[sorted.length - 1] ?? Number.NaN,
          rssMb: rssKb(pid) / 1024,
          fds: fdCount(pid),
          shed: window.shed,
          load: loadavg()[0] as number,
        };
        rows.push(row);
        console.log(
          `  t=${String(row.at).padStart(4)} s: ${row.requests} answers, p50 ${row.p50.toFixed(2)} ms, p99 ${row.p99.toFixed(2)} ms, max ${row.max.toFixed(1)} ms, RSS ${row.rssMb.toFixed(1)} MiB, fds ${row.fds}, shed ${row.shed}, load ${row.load.toFixed(2)}`,
        );
        window = newWindow();
      }
    }
    // Drain, drop the client connections, give the server time to close its side.
    const drainDeadline = Date.now() + 15_000;
    while (inFlight > 0 && Date.now() < drainDeadline) await sleep(10);
    for (const agent of agents) agent.destroy();
    const endLoadRss = rows[rows.length - 1]?.rssMb ?? Number.NaN;
    await sleep(15_000);
    const afterRss = rssKb(pid) / 1024;
    const afterFds = fdCount(pid);
    const afterKinds = fdKinds(pid);

    const statuses = [...all.statuses].sort();
    const unexpected = statuses.filter(([label]) => {
      const [kind, status] = label.split(":") as [Kind, string];
      return !EXPECTED[kind].includes(Number(status));
    });
    const sortedAll = Float64Array.from(all.latencies).sort();
    console.log(
      `\nsent ${sent.toLocaleString("en")}, answered ${sortedAll.length.toLocaleString("en")}, shed ${all.shed}, in flight at the end ${inFlight}`,
    );
    console.log(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
    console.log(`unexpected: ${unexpected.length === 0 ? "none" : JSON.stringify(unexpected)}`);
    console.log(
      `overall latency: p50 ${percentile(sortedAll, 50).toFixed(2)} ms, p90 ${percentile(sortedAll, 90).toFixed(2)} ms, p99 ${percentile(sortedAll, 99).toFixed(2)} ms, max ${(sortedAll[sortedAll.length - 1] ?? Number.NaN).toFixed(1)} ms`,
    );
    const first = rows[0];
    console.log(
      `RSS: idle ${(idleRss / 1024).toFixed(1)} MiB, end of sample 1 ${first?.rssMb.toFixed(1)} MiB, end of the load ${endLoadRss.toFixed(1)} MiB, 15 s after ${afterRss.toFixed(1)} MiB`,
    );
    console.log(
      `fds: idle ${idleFds} ${JSON.stringify(idleKinds)}; 15 s after the load ${afterFds} ${JSON.stringify(afterKinds)}`,
    );
    const p99s = rows.map((r) => r.p99);
    console.log(
      `p99 per sample: ${p99s.map((p) => p.toFixed(1)).join(", ")} ms (load ${loadAtStart.toFixed(2)} at start)`,
    );
    const exit = await server.stop();
    console.log(`server exited with ${exit}\n${server.output.split("\n").slice(-4).join("\n")}`);
    app = undefined;
    if (unexpected.length > 0) process.exitCode = 1;
  } finally {
    for (const agent of agents) agent.destroy();
    await app?.stop(5_000).catch(() => null);
    await redis?.release().catch(() => {});
    await schema?.drop().catch(() => {});
  }
}

await main();
