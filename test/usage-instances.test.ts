/**
 * Two instances recording into one PostgreSQL database, into the same buckets, flushing at the
 * same time: the totals add up exactly (upserts that add, one lock order, no lost update).
 */

import { createFlux, type Flux } from "@flux-keys/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATABASE_URL, freshSchema, hasPostgres } from "./support/services.js";
import { expectedSeries, generateCalls, mismatches, sumCalls } from "./support/usage-calls.js";

const START = Date.parse("2026-05-01T08:00:00Z");
const keys = [
  { keyId: "key_1", orgId: "org_a" },
  { keyId: "key_2", orgId: "org_a" },
  { keyId: "key_3", orgId: "org_b" },
];

describe.skipIf(!hasPostgres)("usage from two instances into one database", () => {
  let a: Flux;
  let b: Flux;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const fresh = await freshSchema();
    drop = fresh.drop;
    const options = {
      database: { url: DATABASE_URL, schema: fresh.schema, poolSize: 4 },
      redis: null,
      usage: { flushInterval: "1h" as const, batchSize: 200 },
    };
    [a, b] = await Promise.all([createFlux(options), createFlux(options)]);
  });

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await drop?.();
  });

  it("adds up exactly", async () => {
    // Same keys, endpoints and minutes on both sides: nearly every bucket is written by both.
    const callsA = generateCalls(6_000, { seed: 1, start: START, minutes: 20, keys });
    const callsB = generateCalls(6_000, { seed: 2, start: START, minutes: 20, keys });
    for (let round = 0; round < 3; round++) {
      for (const call of callsA.slice(round * 2_000, (round + 1) * 2_000)) a.usage.record(call);
      for (const call of callsB.slice(round * 2_000, (round + 1) * 2_000)) b.usage.record(call);
      await Promise.all([a.usage.flush(), b.usage.flush()]);
    }
    expect(a.usage.stats()).toMatchObject({ flushed: 6_000, buffered: 0, dropped: 0 });
    expect(b.usage.stats()).toMatchObject({ flushed: 6_000, buffered: 0, dropped: 0 });

    const all = [...callsA, ...callsB];
    const query = { from: START, to: START + 20 * 60_000, granularity: "minute" as const };
    for (const groupBy of [[], ["key", "endpoint", "status"]] as Array<
      Array<"key" | "endpoint" | "status">
    >) {
      for (const reader of [a, b]) {
        const result = await reader.usage.query({
          ...query,
          from: new Date(query.from),
          to: new Date(query.to),
          groupBy,
        });
        expect(sumCalls(result)).toBe(12_000);
        expect(mismatches(result, expectedSeries(all, { ...query, groupBy }))).toEqual([]);
      }
    }
  });

  it("rolls up from both instances at once without counting twice", async () => {
    const before = new Date(START + 3_600_000);
    await Promise.all([a.usage.rollup({ olderThan: before }), b.usage.rollup({ olderThan: before })]);
    const result = await a.usage.query({ from: new Date(START), to: before, granularity: "hour" });
    expect(sumCalls(result)).toBe(12_000);
  });
});
