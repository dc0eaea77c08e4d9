/**
 * Sliding windows and GCRA, on the memory store and on Redis (the same script as on a cluster),
 * with an injected clock: property tests over random request schedules prove each algorithm's
 * bound, and that the RateLimit state tells the truth (`remaining` more units pass at once and
 * not one more; a refused request is admitted once `resetIn` has passed; an admitted one finds
 * the window whole again after `resetIn`).
 *
 * - sliding (limit L, window W): any span of s ≤ W ms passes at most L × (1 + s / W): about L for
 *   short spans, where a fixed window passes 2L at its edge;
 * - gcra (limit L, window W, burst B): any span of s ms passes at most B + s × L / W.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasRedis, REDIS_URL, uniqueName } from "../../../test/support/services.js";
import { createFlux, type Flux, type RateLimitWindow, rateLimitHeaders } from "../src/index.js";

/** fast-check runs of up to 60 requests each: generous under a loaded CI machine. */
const PROPERTY_TIMEOUT_MS = 180_000;
const WINDOW_S = 10;
const W = WINDOW_S * 1000;

interface Store {
  name: string;
  available: boolean;
  redis: () => { url: string; keyPrefix: string } | null;
}

const STORES: Store[] = [
  { name: "memory", available: true, redis: () => null },
  {
    name: "redis",
    available: hasRedis,
    redis: () => ({ url: REDIS_URL, keyPrefix: `${uniqueName("alg")}:` }),
  },
];

/** A request: ms after the previous one, and its cost. */
const schedule = fc.array(
  fc.record({ gap: fc.integer({ min: 0, max: W / 2 }), cost: fc.integer({ min: 1, max: 3 }) }),
  {
    minLength: 1,
    maxLength: 60,
  },
);

for (const store of STORES) {
  describe.skipIf(!store.available)(`window algorithms on the ${store.name} store`, () => {
    let flux: Flux;
    let now = Date.UTC(2030, 0, 1);
    let runs = 0;

    beforeAll(async () => {
      flux = await createFlux({
        database: { pglite: true },
        redis: store.redis(),
        clock: () => now,
        limits: { preAuth: false },
      });
    }, 60_000);

    afterAll(async () => {
      await flux?.close();
    });

    /** A fresh key with one window; the clock moves to a random point of the window grid. */
    async function keyWith(window: RateLimitWindow, offset: number): Promise<string> {
      const id = `p${++runs}`;
      await flux.plans.upsert({ id, name: id, rateLimits: [window] });
      await flux.orgs.create({ id, name: id, planId: id });
      const { secret } = await flux.keys.create().forOrg(id).issue();
      now += 3 * W + offset;
      return secret;
    }

    /** Runs a schedule; answers the admitted requests as [time, cost]. */
    async function play(secret: string, requests: Array<{ gap: number; cost: number }>) {
      const admitted: Array<[number, number]> = [];
      for (const { gap, cost } of requests) {
        now += gap;
        if ((await flux.keys.check(secret, { cost })).valid) admitted.push([now, cost]);
      }
      return admitted;
    }

    /** The most units passed in a span of `length` ms over `admitted`, against `bound(span)`. */
    function worstExcess(
      admitted: Array<[number, number]>,
      maxSpan: number,
      bound: (span: number) => number,
    ) {
      let worst = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < admitted.length; i++) {
        let units = 0;
        for (let j = i; j < admitted.length; j++) {
          const span = (admitted[j] as [number, number])[0] - (admitted[i] as [number, number])[0];
          if (span > maxSpan) break;
          units += (admitted[j] as [number, number])[1];
          worst = Math.max(worst, units - bound(span));
        }
      }
      return worst;
    }

    it(
      "sliding: any span of s ≤ W passes at most L × (1 + s / W)",
      async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 2, max: 12 }),
            fc.integer({ min: 0, max: W - 1 }),
            schedule,
            async (limit, offset, requests) => {
              const secret = await keyWith(
                { name: "s", limit, window: WINDOW_S, algorithm: "sliding" },
                offset,
              );
              const admitted = await play(secret, requests);
              expect(worstExcess(admitted, W, (span) => limit * (1 + span / W) + 1e-6)).toBeLessThanOrEqual(
                0,
              );
            },
          ),
          { numRuns: 40 },
        );
      },
      PROPERTY_TIMEOUT_MS,
    );

    it("sliding: refuses the fixed window's edge burst", async () => {
      const limit = 10;
      // Window grid aligned: 100 ms before an edge.
      const secret = await keyWith({ name: "s", limit, window: WINDOW_S, algorithm: "sliding" }, 0);
      now += W - (now % W) - 100;
      expect(
        await play(
          secret,
          Array.from({ length: limit }, () => ({ gap: 0, cost: 1 })),
        ),
      ).toHaveLength(limit);
      // 200 ms later (100 ms past the edge) the previous window still weighs 99%: nothing passes.
      const after = await play(secret, [
        { gap: 200, cost: 1 },
        ...Array.from({ length: limit - 1 }, () => ({ gap: 0, cost: 1 })),
      ]);
      expect(after).toHaveLength(0);
    });

    it(
      "gcra: any span of s passes at most B + s × L / W",
      async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 1, max: 12 }),
            fc.integer({ min: 1, max: 12 }),
            fc.integer({ min: 0, max: W - 1 }),
            schedule,
            async (limit, burst, offset, requests) => {
              const secret = await keyWith(
                { name: "g", limit, window: WINDOW_S, algorithm: "gcra", burst },
                offset,
              );
              const admitted = await play(secret, requests);
              const bound = (span: number) => burst + (span * limit) / W + 1e-6;
              expect(worstExcess(admitted, Number.POSITIVE_INFINITY, bound)).toBeLessThanOrEqual(0);
            },
          ),
          { numRuns: 40 },
        );
      },
      PROPERTY_TIMEOUT_MS,
    );

    it("gcra: an even rate after the burst", async () => {
      const limit = 10; // one unit every 1 s
      const secret = await keyWith({ name: "g", limit, window: WINDOW_S, algorithm: "gcra", burst: 3 }, 0);
      expect(
        await play(
          secret,
          Array.from({ length: 5 }, () => ({ gap: 0, cost: 1 })),
        ),
      ).toHaveLength(3);
      // Every 1 s one more, never two.
      for (let i = 0; i < 5; i++) {
        expect(await play(secret, [{ gap: 1_000, cost: 1 }])).toHaveLength(1);
        expect(await play(secret, [{ gap: 0, cost: 1 }])).toHaveLength(0);
      }
      // Half a unit's time: refused; the other half: admitted.
      expect(await play(secret, [{ gap: 500, cost: 1 }])).toHaveLength(0);
      expect(await play(secret, [{ gap: 500, cost: 1 }])).toHaveLength(1);
    });

    for (const algorithm of ["fixed", "sliding", "gcra"] as const) {
      it(`${algorithm}: a refused request consumes nothing, not even from the window that refused`, async () => {
        const id = `refusal-${algorithm}`;
        await flux.plans.upsert({
          id,
          name: id,
          rateLimits: [{ name: "w", limit: 5, window: "1h", algorithm }],
          quota: { limit: 100, period: "day" },
        });
        await flux.orgs.create({ id, name: id, planId: id });
        const { secret } = await flux.keys.create().forOrg(id).issue();
        expect((await flux.keys.check(secret, { cost: 3 })).valid).toBe(true);
        const refused = await flux.keys.check(secret, { cost: 5 });
        expect(refused.valid ? "valid" : refused.error.code).toBe("rate_limited");
        if (refused.valid) return;
        const state = refused.error.extensions.rateLimit as { windows: Array<{ remaining: number }> };
        expect(state.windows[0]?.remaining).toBe(2);
        const fits = await flux.keys.check(secret, { cost: 2 });
        expect(fits.valid).toBe(true);
        if (!fits.valid) return;
        expect(fits.context.rateLimit?.windows[0]?.remaining).toBe(0);
        expect(fits.context.rateLimit?.quota?.remaining).toBe(95);
      });

      it(`${algorithm}: a request the quota refuses consumes nothing either`, async () => {
        const id = `quota-${algorithm}`;
        await flux.plans.upsert({
          id,
          name: id,
          rateLimits: [{ name: "w", limit: 100, window: "1h", algorithm }],
          quota: { limit: 4, period: "day" },
        });
        await flux.orgs.create({ id, name: id, planId: id });
        const { secret } = await flux.keys.create().forOrg(id).issue();
        expect((await flux.keys.check(secret, { cost: 3 })).valid).toBe(true);
        const refused = await flux.keys.check(secret, { cost: 2 });
        expect(refused.valid ? "valid" : refused.error.code).toBe("quota_exceeded");
        if (store.name === "memory") {
          // A database quota that refused keeps what it counted (blocked in memory until the
          // period ends, with no database write per refusal); the windows gave it back.
          const read = await flux.keys.check(secret, { cost: 0 });
          expect(read.valid && read.context.rateLimit?.windows[0]?.remaining).toBe(97);
          return;
        }
        const fits = await flux.keys.check(secret, { cost: 1 });
        expect(fits.valid).toBe(true);
        if (!fits.valid) return;
        expect(fits.context.rateLimit?.windows[0]?.remaining).toBe(96);
        expect(fits.context.rateLimit?.quota?.remaining).toBe(0);
      });
    }

    for (const algorithm of ["sliding", "gcra"] as const) {
      it(
        `${algorithm}: remaining and resetIn tell the truth`,
        async () => {
          await fc.assert(
            fc.asyncProperty(
              fc.integer({ min: 1, max: 10 }),
              fc.integer({ min: 0, max: W - 1 }),
              schedule,
              async (limit, offset, requests) => {
                const window: RateLimitWindow = { name: "t", limit, window: WINDOW_S, algorithm };
                const secret = await keyWith(window, offset);
                await play(secret, requests);
                // `remaining` units pass at once, and not one more.
                const read = await flux.keys.check(secret, { cost: 0 });
                if (!read.valid) throw read.error;
                const remaining = read.context.rateLimit?.windows[0]?.remaining as number;
                if (remaining > 0)
                  expect((await flux.keys.check(secret, { cost: remaining })).valid).toBe(true);
                const refused = await flux.keys.check(secret);
                expect(refused.valid).toBe(false);
                if (refused.valid) return;
                // Refused: admitted once its resetIn (and Retry-After) has passed, not earlier than a
                // second before.
                const resetIn = refused.error.extensions.retryAfter as number;
                expect(Number(rateLimitHeaders(refused)["Retry-After"])).toBe(Math.max(resetIn, 1));
                now += resetIn * 1000;
                const retried = await flux.keys.check(secret);
                expect(retried.valid).toBe(true);
                if (!retried.valid) return;
                // Admitted: whole again after its resetIn.
                now += (retried.context.rateLimit?.windows[0]?.resetIn as number) * 1000;
                const whole = await flux.keys.check(secret, { cost: 0 });
                expect(whole.valid && whole.context.rateLimit?.windows[0]?.remaining).toBe(limit);
              },
            ),
            { numRuns: 25 },
          );
        },
        PROPERTY_TIMEOUT_MS,
      );
    }
  });
}

describe("the algorithm of a window", () => {
  it("is one of fixed, sliding and gcra; burst is for gcra only", async () => {
    const flux = await createFlux({ database: { pglite: true }, redis: null });
    try {
      const refused = async (window: unknown) =>
        flux.plans.upsert({ id: "bad", name: "bad", rateLimits: [window as RateLimitWindow] }).then(
          () => "accepted",
          (error: { code?: string }) => error.code,
        );
      expect(await refused({ name: "w", limit: 5, window: "1s", algorithm: "leaky" })).toBe(
        "invalid_request",
      );
      expect(await refused({ name: "w", limit: 5, window: "1s", burst: 2 })).toBe("invalid_request");
      expect(await refused({ name: "w", limit: 5, window: "1s", algorithm: "sliding", burst: 2 })).toBe(
        "invalid_request",
      );
      expect(await refused({ name: "w", limit: 5, window: "1s", algorithm: "gcra", burst: 0 })).toBe(
        "invalid_request",
      );
      expect(await refused({ name: "w", limit: 5, window: "1s", algorithm: "gcra", burst: 2 })).toBe(
        "accepted",
      );
    } finally {
      await flux.close();
    }
  });
});
