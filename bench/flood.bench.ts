/**
 * Flood benchmark (issue 15, items 1 and 2): 200,000 well-formed keys with valid checksums that
 * nobody issued, each from its own client address, against one instance on PostgreSQL with the
 * default options. Counts the key lookups that reach the database (through the real pg driver),
 * checks that a cached known key stays cached, and samples RSS. Then the digest filter alone:
 * memory per million keys and its false-positive rate. Not a test; numbers only.
 *
 *   pnpm bench flood            (BENCH_FLOOD=200000 changes the flood size)
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createFlux } from "@flux-keys/core";
import pg from "pg";
import { DigestFilter } from "../packages/core/src/keys/digest-filter.js";
import { generateKey } from "../packages/core/src/keys/format.js";
import { freshSchema } from "./load-support.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const FLOOD = Number(process.env.BENCH_FLOOD ?? 200_000);
const MB = 1024 * 1024;

function rss(): number {
  return process.memoryUsage().rss;
}

function settledRss(): number {
  for (let i = 0; i < 3; i++) gc();
  return rss();
}

/** Key lookups (`… WHERE k."digest" = $1`) sent through the real pg driver. */
const lookups = { count: 0 };
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const first = args[0] as string | { text?: string } | undefined;
  const text = typeof first === "string" ? first : (first?.text ?? "");
  if (text.includes('WHERE k."digest"')) lookups.count++;
  return (query as (...a: unknown[]) => unknown).apply(this, args);
} as typeof query;

function unknownStats(flux: Awaited<ReturnType<typeof createFlux>>): object | undefined {
  return (flux.internals as { unknownKeys?: { stats: object } }).unknownKeys?.stats;
}

async function flood() {
  const schema = await freshSchema("flood");
  const flux = await createFlux({ database: { url: schema.url, poolSize: 4 }, redis: null });
  try {
    await flux.orgs.create({ id: "acme", name: "Acme" });
    const issued: string[] = [];
    for (let i = 0; i < 1_000; i++) issued.push((await flux.keys.create().forOrg("acme").issue()).secret);
    const known = issued[0] as string;
    if (!(await flux.keys.check(known, { clientAddress: "192.0.2.1" })).valid)
      throw new Error("known key refused");
    // Warm-up (JIT, pool), then the baseline.
    for (let i = 0; i < 5_000; i++) await flux.keys.check(generateKey("flux", "live").secret);
    if (unknownStats(flux))
      Object.assign(unknownStats(flux) as object, {
        refusedByFilter: 0,
        refusedRemembered: 0,
        budgetLookups: 0,
      });
    const base = settledRss();
    let peak = base;
    lookups.count = 0;
    const codes: Record<string, number> = {};
    const start = performance.now();
    for (let i = 0; i < FLOOD; i++) {
      // 200,000 distinct addresses: 100.64.0.0/10 has room for 4 million.
      const address = `100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
      const result = await flux.keys.check(generateKey("flux", "live").secret, { clientAddress: address });
      const code = result.valid ? "valid" : result.error.code;
      codes[code] = (codes[code] ?? 0) + 1;
      if (i % 10_000 === 0) peak = Math.max(peak, rss());
    }
    const seconds = (performance.now() - start) / 1000;
    peak = Math.max(peak, rss());
    const after = settledRss();
    const stillCached = flux.internals.cache.get(flux.keys.digest(known)) != null;
    const before = lookups.count;
    const knownAfter = await flux.keys.check(known, { clientAddress: "192.0.2.1" });
    // Optional: the same program measures a build without them (the figures before the change).
    const unknown = (flux.internals as { unknownKeys?: typeof flux.internals.unknownKeys }).unknownKeys;
    console.log(`flood: ${FLOOD.toLocaleString("en")} random well-formed keys from as many addresses`);
    console.log(
      `  answers: ${JSON.stringify(codes)} in ${seconds.toFixed(1)} s (${Math.round(FLOOD / seconds).toLocaleString("en")}/s)`,
    );
    console.log(
      `  key lookups that reached PostgreSQL: ${lookups.count - 0} = ${((lookups.count / FLOOD) * 100).toFixed(3)} % (target <= 1 %)`,
    );
    console.log(`  unknown-key stats: ${JSON.stringify(unknown?.stats)}, remembered ${unknown?.remembered}`);
    console.log(
      `  known key still cached: ${stillCached}; verified after the flood: ${knownAfter.valid} with ${lookups.count - before} lookups`,
    );
    console.log(
      `  RSS: ${(base / MB).toFixed(0)} MB before, peak ${(peak / MB).toFixed(0)} MB (+${((peak - base) / MB).toFixed(1)} MB), ${(after / MB).toFixed(0)} MB after GC (+${((after - base) / MB).toFixed(1)} MB; target <= 50 MB)`,
    );
    console.log(
      `  pre-auth counters: ${(flux.internals as { limits?: { preAuthAddresses: number } }).limits?.preAuthAddresses} addresses tracked (limits.preAuth.maxAddresses ${flux.internals.options.limits.preAuth?.maxAddresses})`,
    );
    console.log(`  filter at start: ${JSON.stringify(unknown?.filterInfo)}`);
  } finally {
    await flux.close();
    await schema.drop();
  }
}

function filterFigures() {
  for (const rate of [0.001, 0.01]) {
    const filter = new DigestFilter(1_000_000, rate);
    for (let i = 0; i < 1_000_000; i++) filter.add(randomBytes(8).toString("hex"));
    let wrong = 0;
    const probes = 1_000_000;
    for (let i = 0; i < probes; i++) if (filter.has(randomBytes(8).toString("hex"))) wrong++;
    console.log(
      `filter sized for 1,000,000 keys at ${rate * 100} %: ${(filter.bytes / MB).toFixed(2)} MiB (${((filter.bytes * 8) / 1_000_000).toFixed(1)} bits/key, ${filter.hashes} hashes), measured false positives ${((wrong / probes) * 100).toFixed(3)} % of ${probes.toLocaleString("en")} probes`,
    );
  }
}

await flood();
filterFigures();
