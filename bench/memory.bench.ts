/**
 * Memory per key (issue 16, item 4): what 100,000 cached keys and 100,000 active limiter entries
 * (memory limiter) cost one process, and that both stay bounded by their options. Not a test.
 *
 *   pnpm bench memory [--keys=100000]
 *
 * Cached keys: one real record (read from the database by a verification) copied under distinct
 * ids and digests into the key cache, `--keys` of them (`cache.max` = `--keys`), then as many
 * again (the cache must stay at its bound). Limiter entries: one decision per
 * distinct key on a plan with two windows (each key gets an entry per window). Reported: RSS and
 * V8 heap before and after, per 100,000, after a full GC (`--expose-gc`, set by this file's runner).
 */
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { createFlux, type Flux } from "@flux-keys/core";
import { baseContext, type KeyRecord } from "../packages/core/src/keys/record.js";

const KEYS = Number(process.argv.find((arg) => arg.startsWith("--keys="))?.slice(7) ?? 100_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with node --expose-gc (pnpm bench memory does)");

function settle(): { rss: number; heap: number } {
  for (let i = 0; i < 3; i++) gc!();
  const usage = process.memoryUsage();
  return { rss: usage.rss, heap: usage.heapUsed };
}
const mib = (bytes: number) => `${(bytes / 1_048_576).toFixed(1)} MiB`;
const per100k = (bytes: number, count: number) => mib((bytes * 100_000) / count);

async function openWith(max: number): Promise<{ flux: Flux; template: KeyRecord }> {
  const flux = await createFlux({ database: { pglite: true }, redis: null, cache: { max } });
  await flux.plans.upsert({
    id: "bench",
    name: "Bench",
    rateLimits: [
      { name: "burst", limit: 1_000_000, window: "1s" },
      { name: "sustained", limit: 1_000_000_000, window: "1h" },
    ],
    entitlements: ["bulk_export"],
  });
  await flux.orgs.create({ id: "org_bench", name: "Bench org", planId: "bench" });
  const { secret } = await flux.keys
    .create()
    .forOrg("org_bench")
    .named("bench key")
    .withScopes(["read:events", "write:events"])
    .issue();
  const context = await flux.keys.verify(secret);
  const template = flux.internals.cache.recordOf(context.keyId);
  if (template === undefined) throw new Error("the verified key is not cached");
  return { flux, template };
}

/** A copy of the record as a database read would bring it for another key. */
function copyOf(template: KeyRecord, i: number): KeyRecord {
  const id = `key_bench${i.toString(36).padStart(16, "0")}`;
  return { ...template, id, lineageId: id, name: `bench key ${i}`, base: null, baseValidUntil: 0 };
}
const digestOf = (i: number) => createHash("sha256").update(`bench-${i}`).digest("hex");

const rows: string[] = [];

{
  const { flux, template } = await openWith(KEYS);
  const cache = flux.internals.cache;
  const before = settle();
  const epoch = cache.currentEpoch();
  const records: KeyRecord[] = [];
  for (let i = 0; i < KEYS; i++) {
    const record = copyOf(template, i);
    records.push(record);
    cache.set(digestOf(i), record, epoch);
  }
  records.length = 0;
  const cached = settle();
  rows.push(
    `| ${KEYS.toLocaleString("en-US")} cached keys (cache.max ${KEYS.toLocaleString("en-US")}) | ${cache.size.toLocaleString("en-US")} | ${per100k(cached.rss - before.rss, KEYS)} | ${per100k(cached.heap - before.heap, KEYS)} |`,
  );

  // Limiter entries: one decision per key, two windows each.
  const limits = flux.internals.limits;
  const started = performance.now();
  for (let i = 0; i < KEYS; i++) {
    const record = cache.get(digestOf(i));
    if (record === undefined) throw new Error("evicted before its decision");
    const bound = limits.applicable(record);
    if (bound === null) throw new Error("no limits bound");
    const decision = await limits.decide(bound, 1, baseContext(record, Date.now()));
    if (!decision.valid) throw new Error("limited");
  }
  const decided = settle();
  rows.push(
    `| ${KEYS.toLocaleString("en-US")} keys with active limiter entries (2 windows each, memory) | — | ${per100k(decided.rss - cached.rss, KEYS)} | ${per100k(decided.heap - cached.heap, KEYS)} |`,
  );
  console.log(
    `(${KEYS.toLocaleString("en-US")} decisions in ${((performance.now() - started) / 1000).toFixed(1)} s)`,
  );

  // As many keys again into the full cache: it holds its bound and no more.
  for (let i = KEYS; i < 2 * KEYS; i++) cache.set(digestOf(i), copyOf(template, i), epoch);
  const overflowed = settle();
  rows.push(
    `| then ${KEYS.toLocaleString("en-US")} more keys into the full cache | ${cache.size.toLocaleString("en-US")} | ${per100k(overflowed.rss - decided.rss, KEYS)} | ${per100k(overflowed.heap - decided.heap, KEYS)} |`,
  );
  if (cache.size > KEYS) throw new Error(`the cache grew past cache.max: ${cache.size}`);
  await flux.close();
}

console.log("");
console.log("| what | entries held | RSS per 100k | V8 heap per 100k |");
console.log("|---|---:|---:|---:|");
for (const row of rows) console.log(row);
