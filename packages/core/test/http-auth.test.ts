/**
 * HttpAuth's timing with the memory limiter: a verified request is answered in the check phase of
 * the loop turn, so the requests read together continue together. Embedded defaults (PGlite).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createFlux, createHttpAuth, type Flux, type HttpAuth } from "../src/index.js";

let flux: Flux;
let auth: HttpAuth;
let request: { method: string; url: string; headers: Record<string, string>; remoteAddress: string };

beforeAll(async () => {
  flux = await createFlux({ database: { pglite: true }, redis: null });
  await flux.plans.upsert({
    id: "timing",
    name: "Timing",
    rateLimits: [{ name: "sustained", limit: 1_000, window: "1m" }],
  });
  await flux.orgs.create({ id: "org_timing", name: "Timing", planId: "timing" });
  const { secret } = await flux.keys.create().forOrg("org_timing").withScopes(["read:x"]).issue();
  auth = createHttpAuth(flux, { usage: false });
  request = {
    method: "GET",
    url: "/x",
    headers: { authorization: `Bearer ${secret}` },
    remoteAddress: "10.0.0.1",
  };
  // The key is cached from here on: no I/O on the way to an answer.
  expect((await auth.authenticate(request)).ok).toBe(true);
});

afterAll(async () => {
  await flux.close();
});

afterEach(() => {
  vi.useRealTimers();
});

describe("HttpAuth with the memory limiter", () => {
  it("answers a verified request in the check phase, after immediates queued before it", async () => {
    const events: string[] = [];
    setImmediate(() => events.push("immediate"));
    const result = await auth.authenticate(request);
    events.push("answered");
    expect(result.ok).toBe(true);
    expect(events).toEqual(["immediate", "answered"]);
  });

  it("answers the requests of one turn together, each with its own count", async () => {
    let turns = 0;
    let counting = true;
    const tick = () => {
      turns++;
      if (counting) setImmediate(tick);
    };
    setImmediate(tick);
    const answered: number[] = [];
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        auth.authenticate(request).then((result) => {
          answered.push(turns);
          return result;
        }),
      ),
    );
    counting = false;
    // Every answer in the same turn.
    expect(new Set(answered).size).toBe(1);
    const remaining = results.map((result) =>
      result.ok ? result.context.rateLimit?.windows[0]?.remaining : -1,
    );
    expect(new Set(remaining).size).toBe(20);
  });

  it("still answers when an app's tests fake the global setImmediate", async () => {
    vi.useFakeTimers({ toFake: ["setImmediate"] });
    const result = await auth.authenticate(request);
    expect(result.ok).toBe(true);
  });
});
