/**
 * A 429 says the same whichever store counts: the same problem document and RateLimit fields
 * from the memory store and from Redis, after the same requests. A quota that never refills
 * (`period: 'total'`) refuses without a Retry-After that promises a retry, with the problem type
 * the RateLimit draft defines for an exhausted quota; day and month quotas say when they reset.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasRedis, REDIS_URL, uniqueName } from "../../../test/support/services.js";
import { createFlux, denialResponse, type Flux, type Quota, type RateLimitWindow } from "../src/index.js";

const WINDOWS: RateLimitWindow[] = [
  { name: "burst", limit: 3, window: "1m" },
  { name: "sustained", limit: 100, window: "1h" },
];

async function keyOnPlan(flux: Flux, id: string, rateLimits: RateLimitWindow[], quota?: Quota) {
  await flux.plans.upsert({ id, name: id, rateLimits, ...(quota ? { quota } : {}) });
  await flux.orgs.create({ id: `${id}-org`, name: id, planId: id });
  return (await flux.keys.create().forOrg(`${id}-org`).issue()).secret;
}

/** What a client sees of a denial: status, the rate limit fields and the problem document. */
async function denials(flux: Flux, secret: string, requests: number) {
  const seen = [];
  for (let i = 0; i < requests; i++) {
    const result = await flux.keys.check(secret);
    if (result.valid) continue;
    const response = denialResponse(result.error, { realm: "api", keyPresented: true });
    seen.push({
      status: response.status,
      retryAfter: response.headers["Retry-After"],
      policy: response.headers["RateLimit-Policy"],
      // Reset times depend on when each window started: compare remaining counts only.
      rateLimit: response.headers.RateLimit?.replace(/;t=\d+/g, ""),
      body: { ...response.body, rateLimit: undefined, retryAfter: undefined },
    });
  }
  return seen;
}

describe("429s", () => {
  let memory: Flux;

  beforeAll(async () => {
    memory = await createFlux({ database: { pglite: true }, redis: null });
  });
  afterAll(async () => {
    await memory?.close();
  });

  it("a used-up total quota has no Retry-After and the draft's quota-exceeded problem type", async () => {
    const secret = await keyOnPlan(memory, "credits", [], { limit: 2, period: "total" });
    const [denial] = await denials(memory, secret, 3);
    expect(denial?.status).toBe(429);
    expect(denial?.retryAfter).toBeUndefined();
    expect(denial?.body).toMatchObject({
      type: "https://iana.org/assignments/http-problem-types#quota-exceeded",
      code: "quota_exceeded",
      "violated-policies": ["quota"],
    });
    expect(denial?.rateLimit).toBe('"quota";r=0');
  });

  it("a used-up monthly quota says when it resets", async () => {
    const secret = await keyOnPlan(memory, "monthly", [], { limit: 1, period: "month" });
    const result = (await Promise.all([memory.keys.check(secret), memory.keys.check(secret)]))[1];
    if (result === undefined || result.valid) throw new Error("the second request was not refused");
    const response = denialResponse(result.error, { realm: "api", keyPresented: true });
    const reset = Number(/"quota";r=0;t=(\d+)/.exec(response.headers.RateLimit ?? "")?.[1]);
    expect(reset).toBeGreaterThan(0);
    expect(Number(response.headers["Retry-After"])).toBe(reset);
  });

  describe.skipIf(!hasRedis)("on memory and on Redis", () => {
    let redis: Flux;
    beforeAll(async () => {
      redis = await createFlux({
        database: { pglite: true },
        redis: { url: REDIS_URL, keyPrefix: `${uniqueName("denials")}:` },
      });
    });
    afterAll(async () => {
      await redis?.close();
    });

    it("the same requests get the same 429s, with every window (a window's refusal does not report the quota)", async () => {
      const quota: Quota = { limit: 1_000, period: "month" };
      const onMemory = await denials(memory, await keyOnPlan(memory, "same", WINDOWS, quota), 6);
      const onRedis = await denials(redis, await keyOnPlan(redis, "same", WINDOWS, quota), 6);
      expect(onMemory).toHaveLength(3);
      expect(onRedis).toEqual(onMemory);
      expect(onMemory[0]?.policy).toBe('"burst";q=3;w=60, "sustained";q=100;w=3600');
      expect(onMemory[0]?.rateLimit).toBe('"burst";r=0, "sustained";r=97');
    });
  });
});
