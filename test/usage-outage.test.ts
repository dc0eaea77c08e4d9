/**
 * Usage through a PostgreSQL outage: a throwaway server (initdb + pg_ctl in a temp folder, its own
 * port) is stopped while calls are recorded and started again; the same process, with no restart,
 * ends with exact totals.
 */
import { createFlux, type Flux, FluxError } from "@flux-keys/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgAvailable as available, ThrowawayPostgres } from "./support/faults-services.js";
import { expectedSeries, generateCalls, mismatches, sumCalls } from "./support/usage-calls.js";

const START = Date.parse("2026-04-01T10:00:00Z");
const keys = [
  { keyId: "key_o1", orgId: "org_1" },
  { keyId: "key_o2", orgId: "org_1" },
  { keyId: "key_o3", orgId: "org_2" },
];

describe.skipIf(!available)("usage through a PostgreSQL outage", () => {
  let server: ThrowawayPostgres;
  let flux: Flux;

  beforeAll(async () => {
    server = await ThrowawayPostgres.create();
    await server.start();
    // A short interval: the timer keeps retrying during the outage, as in production.
    flux = await createFlux({
      database: { url: server.url, poolSize: 2 },
      redis: null,
      usage: { flushInterval: "100ms" },
    });
  });

  afterAll(async () => {
    try {
      if (server?.running) await flux?.close();
    } finally {
      await server?.destroy();
    }
  });

  it("keeps every call while the database is down and writes them exactly once after", async () => {
    const calls = generateCalls(9_000, { seed: 7, start: START, minutes: 30, keys });
    const [before, during, later] = [calls.slice(0, 3_000), calls.slice(3_000, 6_000), calls.slice(6_000)];

    for (const call of before) flux.usage.record(call);
    await flux.usage.flush();
    expect(flux.usage.stats()).toMatchObject({ flushed: 3_000, buffered: 0 });

    await server.stop();
    for (const call of during) flux.usage.record(call);
    const failure = await flux.usage.flush().then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(FluxError);
    expect((failure as FluxError).code).toBe("store_unavailable");
    for (const call of later) expect(flux.usage.record(call)).toBe(true);
    await expect(flux.usage.flush()).rejects.toMatchObject({ code: "store_unavailable" });
    const down = flux.usage.stats();
    expect(down.bufferedCalls).toBe(6_000);
    expect(down.failedFlushes).toBeGreaterThanOrEqual(2);
    expect(down.lastError).toMatchObject({ code: "store_unavailable" });
    expect(down.lastError?.message).not.toContain(String(server.port));
    expect(down.dropped).toBe(0);

    await server.start();
    // The timer alone recovers: wait for it (polling, bounded), then check nothing is left.
    const deadline = Date.now() + 20_000;
    while (flux.usage.stats().buffered > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(flux.usage.stats()).toMatchObject({
      buffered: 0,
      bufferedCalls: 0,
      flushed: 9_000,
      dropped: 0,
      lastError: null,
    });

    const query = {
      from: START,
      to: START + 30 * 60_000,
      granularity: "minute" as const,
      groupBy: ["key", "endpoint", "status"] as const,
    };
    const result = await flux.usage.query({
      ...query,
      from: new Date(query.from),
      to: new Date(query.to),
      groupBy: [...query.groupBy],
    });
    expect(sumCalls(result)).toBe(9_000);
    expect(mismatches(result, expectedSeries(calls, { ...query, groupBy: [...query.groupBy] }))).toEqual([]);
  });
});
