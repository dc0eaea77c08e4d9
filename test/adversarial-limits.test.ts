/**
 * Rate-limit bypass attempts (issue 9), over HTTP through the four adapters: rotating
 * forwarded-for headers does not reset the pre-authentication limiter or a key's limits when no
 * proxy is trusted (the default), and parallel bursts spread over four instances (one per adapter)
 * sharing PostgreSQL and Redis admit exactly the limit.
 */
import { createFlux, type Flux } from "@flux-keys/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { neverIssued, problemCode, type RawResponse, rawRequest } from "./support/adversarial-cases.js";
import {
  DATABASE_URL,
  freshSchema,
  hasPostgres,
  hasRedis,
  REDIS_URL,
  uniqueName,
} from "./support/services.js";
import { type RunningApp, TARGETS } from "./support/targets.js";

/** Headers a client might use to claim another address; each request rotates all of them. */
function spoofed(i: number): Array<[string, string]> {
  const ip = `203.0.${113 + (i % 3)}.${(i * 37) % 250}`;
  return [
    ["X-Forwarded-For", `${ip}, 198.51.100.${i % 250}`],
    ["X-Real-IP", ip],
    ["Forwarded", `for=${ip};proto=https`],
    ["True-Client-IP", ip],
    ["CF-Connecting-IP", ip],
  ];
}

const outcome = (r: RawResponse) => (r.status === 200 ? "200" : `${r.status} ${problemCode(r)}`);

describe("forwarded-for rotation with trustProxy false (the default)", () => {
  let flux: Flux;
  let secret: string;
  let limited: string;
  const apps: RunningApp[] = [];

  beforeAll(async () => {
    flux = await createFlux({
      database: { pglite: true },
      redis: null,
      limits: { preAuth: { limit: 5, window: "1m" } },
      webhooks: { interval: null },
    });
    await flux.orgs.create({ id: "acme", name: "Acme" });
    secret = (await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue()).secret;
    limited = (
      await flux.keys
        .create()
        .forOrg("acme")
        .withScopes(["read:events"])
        .withRateLimits([{ name: "burst", limit: 3, window: "1m" }])
        .issue()
    ).secret;
    for (const target of TARGETS) apps.push(await target.start(flux));
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await flux?.close();
  });

  // Each adapter's client connects from its own loopback address: its own pre-auth bucket.
  it.each(TARGETS.map((t, i) => ({ name: t.name, i })))(
    "$name: failed authentications from one socket address are counted whatever the headers say",
    async ({ i }) => {
      const app = apps[i] as RunningApp;
      const from = `127.0.0.${20 + i}`;
      const codes: string[] = [];
      for (let n = 0; n < 8; n++) {
        const response = await rawRequest(app.url, {
          path: "/v1/events",
          localAddress: from,
          headers: [["Authorization", `Bearer ${neverIssued()}`], ...spoofed(n)],
        });
        codes.push(outcome(response));
      }
      expect(codes).toEqual([...Array(5).fill("401 key_invalid"), ...Array(3).fill("429 rate_limited")]);
      // Locked out from that socket address even with a valid key and a fresh forwarded-for...
      const locked = await rawRequest(app.url, {
        path: "/v1/events",
        localAddress: from,
        headers: [["Authorization", `Bearer ${secret}`], ...spoofed(99)],
      });
      expect(outcome(locked)).toBe("429 rate_limited");
      expect(Number(locked.headers["retry-after"])).toBeGreaterThan(0);
      // ...while the key holder elsewhere is not.
      const holder = await rawRequest(app.url, {
        path: "/v1/events",
        localAddress: `127.0.0.${40 + i}`,
        headers: [["Authorization", `Bearer ${secret}`]],
      });
      expect(holder.status).toBe(200);
    },
  );

  it("a key's own limit is not reset by rotating addresses or adapters", async () => {
    const codes: string[] = [];
    for (let n = 0; n < 6; n++) {
      const response = await rawRequest((apps[n % apps.length] as RunningApp).url, {
        path: "/v1/events",
        localAddress: `127.0.0.${60 + n}`,
        headers: [["X-API-Key", limited], ...spoofed(n)],
      });
      codes.push(outcome(response));
    }
    expect(codes).toEqual(["200", "200", "200", "429 rate_limited", "429 rate_limited", "429 rate_limited"]);
  });
});

describe.skipIf(!hasPostgres || !hasRedis)("parallel bursts over four instances sharing Redis", () => {
  const instances: Flux[] = [];
  const apps: RunningApp[] = [];
  let drop: () => Promise<void>;
  let secret: string;

  beforeAll(async () => {
    const schema = await freshSchema();
    drop = schema.drop;
    const redisPrefix = `${uniqueName("adversarial")}:`;
    for (const target of TARGETS) {
      const flux = await createFlux({
        database: { url: DATABASE_URL, schema: schema.schema, poolSize: 3 },
        redis: { url: REDIS_URL, keyPrefix: redisPrefix },
        limits: { preAuth: { limit: 10, window: "1m" } },
        // Only the first instance applies migrations; the others find them applied.
        migrate: instances.length === 0,
        webhooks: { interval: null },
      });
      instances.push(flux);
      apps.push(await target.start(flux));
    }
    const first = instances[0] as Flux;
    await first.orgs.create({ id: "acme", name: "Acme" });
    secret = (
      await first.keys
        .create()
        .forOrg("acme")
        .withScopes(["read:events"])
        .withRateLimits([{ name: "burst", limit: 25, window: "1m" }])
        .issue()
    ).secret;
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    for (const flux of instances) await flux.close();
    await drop?.();
  });

  it("100 parallel requests of one key over four adapters: exactly 25 admitted", async () => {
    const responses = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        rawRequest((apps[i % apps.length] as RunningApp).url, {
          path: "/v1/events",
          localAddress: `127.0.1.${1 + (i % 50)}`,
          headers: [["Authorization", `Bearer ${secret}`], ...spoofed(i)],
        }),
      ),
    );
    const counts = new Map<string, number>();
    for (const response of responses) counts.set(outcome(response), (counts.get(outcome(response)) ?? 0) + 1);
    expect(Object.fromEntries(counts)).toEqual({ "200": 25, "429 rate_limited": 75 });
  });

  it("40 parallel failed authentications from one address over four instances: exactly 10 counted", async () => {
    const responses = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        rawRequest((apps[i % apps.length] as RunningApp).url, {
          path: "/v1/events",
          localAddress: "127.0.2.7",
          headers: [["Authorization", `Bearer ${neverIssued()}`], ...spoofed(i)],
        }),
      ),
    );
    const counts = new Map<string, number>();
    for (const response of responses) counts.set(outcome(response), (counts.get(outcome(response)) ?? 0) + 1);
    expect(Object.fromEntries(counts)).toEqual({ "401 key_invalid": 10, "429 rate_limited": 30 });
  });
});
