/**
 * Timing (issue 9): a client cannot tell unknown, near-miss, revoked and expired keys apart by how
 * long the answer takes, beyond noise. Statistical, not a speed test: many samples, the categories
 * interleaved in a shuffled order each round (so load from other suites falls on all of them
 * alike), compared by median with a generous bound relative to the spread of the samples. Two
 * regimes: cold (the cache emptied before every request: each one is a database read) and warm
 * (each key presented again: answered from the cache, positive or negative).
 *
 * Warm, all four are compared. Cold, the keys answered alike are: a never-issued key and a near
 * miss both get `key_invalid`, and neither costs a database read (the parser or the digest filter
 * of issue 15 answers them). A revoked and an expired key are answered with their own codes
 * (`key_revoked`, `key_expired`) after the read that tells them apart, ≈ 0.8 ms more on this
 * machine: their timing tells a client nothing their answer does not, so they are compared with
 * each other. (Compared with all four, that read made the pooled samples bimodal and their
 * interquartile range, the bound, about as wide as the gap itself: a coin toss, not a test.)
 */
import { Agent, request as httpRequest } from "node:http";
import { createFlux, type Flux } from "@flux-keys/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nearMiss, neverIssued } from "./support/adversarial-cases.js";
import { DATABASE_URL, freshSchema, hasPostgres } from "./support/services.js";
import { type RunningApp, TARGETS } from "./support/targets.js";

const ROUNDS = 120;
const WARMUP = 15;

type Category = "unknown" | "near miss" | "revoked" | "expired";
const CATEGORIES: Category[] = ["unknown", "near miss", "revoked", "expired"];
/** Per regime, the groups whose timing must not tell them apart (see the header). */
const ALIKE: Record<"cold" | "warm", Category[][]> = {
  cold: [
    ["unknown", "near miss"],
    ["revoked", "expired"],
  ],
  warm: [CATEGORIES],
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe("timing of refused keys", () => {
  let flux: Flux;
  let app: RunningApp;
  let drop: (() => Promise<void>) | undefined;
  let offset = 0;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const keys = {} as Record<"live" | "revoked" | "expired", string>;

  beforeAll(async () => {
    let database: { pglite: true } | { url: string; schema: string };
    if (hasPostgres) {
      const schema = await freshSchema();
      drop = schema.drop;
      database = { url: DATABASE_URL, schema: schema.schema };
    } else {
      database = { pglite: true };
    }
    flux = await createFlux({
      database,
      redis: null,
      clock: () => Date.now() + offset,
      limits: { preAuth: { limit: 1_000_000, window: "1h" } },
      webhooks: { interval: null },
    });
    await flux.orgs.create({ id: "acme", name: "Acme" });
    const issue = () => flux.keys.create().forOrg("acme").withScopes(["read:events"]);
    keys.live = (await issue().issue()).secret;
    const revoked = await issue().issue();
    await flux.keys.revoke(revoked.key.id);
    keys.revoked = revoked.secret;
    keys.expired = (await issue().expiresInDays(1).issue()).secret;
    offset = 2 * 86_400_000;
    app = await (TARGETS[0] as (typeof TARGETS)[number]).start(flux);
  });

  afterAll(async () => {
    agent.destroy();
    await app?.close();
    await flux?.close();
    await drop?.();
  });

  /** Milliseconds from sending the request to the end of the answer, as the client sees it. */
  function timed(secret: string): Promise<{ ms: number; code: string }> {
    const { port } = new URL(app.url);
    return new Promise((resolve, reject) => {
      const started = process.hrtime.bigint();
      const req = httpRequest(
        {
          host: "127.0.0.1",
          port,
          path: "/v1/events",
          agent,
          headers: { authorization: `Bearer ${secret}` },
        },
        (res) => {
          let body = "";
          res.on("data", (chunk) => {
            body += chunk;
          });
          res.on("end", () => {
            const ms = Number(process.hrtime.bigint() - started) / 1e6;
            resolve({ ms, code: (JSON.parse(body) as { code: string }).code });
          });
        },
      );
      req.on("error", reject);
      req.end();
    });
  }

  const presented: Record<Category, (regime: "cold" | "warm") => string> = {
    unknown: (regime) => (regime === "cold" ? neverIssued() : fixedUnknown),
    "near miss": (regime) => (regime === "cold" ? nearMiss(keys.live) : fixedNearMiss),
    revoked: () => keys.revoked,
    expired: () => keys.expired,
  };
  const expectedCode: Record<Category, string> = {
    unknown: "key_invalid",
    "near miss": "key_invalid",
    revoked: "key_revoked",
    expired: "key_expired",
  };
  const fixedUnknown = neverIssued();
  let fixedNearMiss = "";

  async function sample(regime: "cold" | "warm"): Promise<Record<Category, number[]>> {
    fixedNearMiss ||= nearMiss(keys.live);
    const samples = Object.fromEntries(CATEGORIES.map((c) => [c, [] as number[]])) as Record<
      Category,
      number[]
    >;
    for (let round = 0; round < WARMUP + ROUNDS; round++) {
      for (const category of shuffled(CATEGORIES)) {
        if (regime === "cold") flux.internals.cache.apply({ kind: "all" });
        const { ms, code } = await timed(presented[category](regime));
        expect(code).toBe(expectedCode[category]);
        if (round >= WARMUP) samples[category].push(ms);
      }
    }
    return samples;
  }

  it.each(["cold", "warm"] as const)("%s: medians within noise of each other", async (regime) => {
    const samples = await sample(regime);
    for (const group of ALIKE[regime]) {
      const all = group.flatMap((c) => samples[c]);
      const pooled = median(all);
      // The noise: the interquartile range of the group's samples (each category sees the same load).
      const spread = quantile(all, 0.75) - quantile(all, 0.25);
      const medians = Object.fromEntries(group.map((c) => [c, median(samples[c])])) as Record<
        Category,
        number
      >;
      const gap = Math.max(...Object.values(medians)) - Math.min(...Object.values(medians));
      const bound = Math.max(0.5, 0.5 * pooled, spread);
      console.info(
        `timing ${regime}: medians ${JSON.stringify(Object.fromEntries(Object.entries(medians).map(([k, v]) => [k, v.toFixed(3)])))} ms, ` +
          `pooled ${pooled.toFixed(3)}, IQR ${spread.toFixed(3)}, gap ${gap.toFixed(3)}, bound ${bound.toFixed(3)}`,
      );
      expect(gap, group.join(" / ")).toBeLessThanOrEqual(bound);
    }
  });
});
