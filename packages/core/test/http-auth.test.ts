/**
 * HttpAuth's timing with the memory limiter: a cached key is answered without I/O and without
 * waiting for any later phase of the event loop, in the order the requests came, so responses
 * leave in the order the framework would send them. Embedded defaults (PGlite).
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
  it("answers a verified request before an immediate queued first: no deferral to the check phase", async () => {
    const events: string[] = [];
    setImmediate(() => events.push("immediate"));
    const result = await auth.authenticate(request);
    events.push("answered");
    expect(result.ok).toBe(true);
    expect(events).toEqual(["answered"]);
  });

  it("answers concurrent requests in the order they came, each with its own count", async () => {
    const answered: number[] = [];
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        auth.authenticate(request).then((result) => {
          answered.push(i);
          return result;
        }),
      ),
    );
    expect(answered).toEqual(Array.from({ length: 20 }, (_, i) => i));
    const remaining = results.map((result) =>
      result.ok ? result.context.rateLimit?.windows[0]?.remaining : -1,
    );
    expect(new Set(remaining).size).toBe(20);
    // Counted in arrival order: each one fewer than the one before.
    for (let i = 1; i < remaining.length; i++) {
      expect(remaining[i]).toBe((remaining[i - 1] as number) - 1);
    }
  });

  it("still answers when an app's tests fake the global setImmediate", async () => {
    vi.useFakeTimers({ toFake: ["setImmediate"] });
    const result = await auth.authenticate(request);
    expect(result.ok).toBe(true);
  });

  it("answers a cached key in the caller's turn: authenticateNow returns the result, not a promise", () => {
    const result = auth.authenticateNow(request);
    expect(result).not.toBeInstanceOf(Promise);
    expect((result as { ok: boolean }).ok).toBe(true);
  });

  it("answers a key the cache does not hold with a promise, after its one read", async () => {
    const { secret } = await flux.keys.create().forOrg("org_timing").withScopes(["read:x"]).issue();
    flux.internals.cache.apply({ kind: "all" });
    const pending = auth.authenticateNow({ ...request, headers: { authorization: `Bearer ${secret}` } });
    expect(pending).toBeInstanceOf(Promise);
    expect((await pending).ok).toBe(true);
  });
});
