/**
 * The adapter contract: one description of the HTTP behaviour, run against Express, Fastify, and
 * NestJS on the Express and the Fastify platform, each on embedded PGlite with in-memory limits and
 * on PostgreSQL with Redis. Real sockets, real stores; nothing of ours is mocked.
 */
import { createFlux, type Flux, type FluxOptions } from "@flux-keys/core";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKey } from "../packages/core/src/keys/format.js";
import { rawRequest } from "./support/adversarial-cases.js";
import {
  DATABASE_URL,
  freshSchema,
  hasPostgres,
  hasRedis,
  REDIS_URL,
  uniqueName,
} from "./support/services.js";
import { type RunningApp, TARGETS } from "./support/targets.js";

const DOCS = "https://docs.example.test/keys/rotation";

interface StoreSetup {
  name: string;
  available: boolean;
  open(clock: () => number): Promise<{ flux: Flux; cleanup(): Promise<void> }>;
}

const STORES: StoreSetup[] = [
  {
    name: "pglite + memory limits",
    available: true,
    async open(clock) {
      const flux = await createFlux({ database: { pglite: true }, redis: null, clock });
      return { flux, cleanup: async () => {} };
    },
  },
  {
    name: "postgres + redis",
    available: hasPostgres && hasRedis,
    async open(clock) {
      const { schema, drop } = await freshSchema();
      const options: FluxOptions = {
        database: { url: DATABASE_URL, schema, poolSize: 4 },
        redis: { url: REDIS_URL, keyPrefix: `${uniqueName("contract")}:` },
        clock,
      };
      const flux = await createFlux(options);
      return { flux, cleanup: drop };
    },
  },
];

const CASES = TARGETS.flatMap((target) =>
  STORES.map((store) => ({ target, store, label: `${target.name} on ${store.name}` })),
);

function problemOf(response: request.Response) {
  expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
  const body =
    typeof response.body === "object" && response.body !== null && Object.keys(response.body).length > 0
      ? response.body
      : JSON.parse(response.text);
  expect(body).toMatchObject({ status: response.status, type: expect.stringContaining(body.code) });
  return body as { code: string; status: number; title: string; detail: string };
}

describe.each(CASES)("adapter contract: $label", ({ target, store }) => {
  let now = Date.now();
  const clock = () => now;
  let flux: Flux;
  let cleanup: () => Promise<void>;
  let app: RunningApp;
  const secrets: Record<string, string> = {};
  const ids: Record<string, string> = {};
  const api = () => request(app.server);

  beforeAll(async () => {
    if (!store.available) return;
    ({ flux, cleanup } = await store.open(clock));
    await flux.plans.upsert({
      id: "pro",
      name: "Pro",
      scopes: ["read:events", "write:events"],
      rateLimits: [{ name: "sustained", limit: 1000, window: "1h" }],
      entitlements: ["bulk_export"],
    });
    await flux.plans.upsert({ id: "free", name: "Free", scopes: ["read:events", "write:events"] });
    await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
    await flux.orgs.create({ id: "tiny", name: "Tiny", planId: "free" });
    const issue = async (name: string, build: (b: ReturnType<Flux["keys"]["create"]>) => typeof b) => {
      const { key, secret } = await build(flux.keys.create().named(name)).issue();
      secrets[name] = secret;
      ids[name] = key.id;
    };
    await issue("full", (b) => b.forOrg("acme").withScopes(["read:events", "write:events"]));
    await issue("reader", (b) => b.forOrg("acme").withScopes(["read:events"]));
    await issue("free", (b) => b.forOrg("tiny").withScopes(["read:events", "write:events"]));
    await issue("limited", (b) =>
      b
        .forOrg("acme")
        .withScopes(["read:events"])
        .withRateLimits([{ name: "burst", limit: 3, window: "1m" }]),
    );
    await issue("revoked", (b) => b.forOrg("acme").withScopes(["read:events"]));
    await issue("expiring", (b) => b.forOrg("acme").withScopes(["read:events"]).expiresInDays(1));
    await issue("rotating", (b) => b.forOrg("acme").withScopes(["read:events"]));
    await issue("usage", (b) => b.forOrg("acme").withScopes(["read:events", "write:events"]));
    await issue("guarded", (b) =>
      b
        .forOrg("acme")
        .withScopes(["read:events"])
        .withRateLimits([{ name: "burst", limit: 5, window: "1m" }]),
    );
    await flux.keys.revoke(ids.revoked as string, { reason: "contract" });
    const rotated = await flux.keys.rotate(ids.rotating as string, { gracePeriod: "1h" });
    secrets.successor = rotated.secret;
    app = await target.start(flux, { rotationDocsUrl: DOCS });
  });

  afterAll(async () => {
    await app?.close();
    await flux?.close();
    await cleanup?.();
  });

  const run = it.skipIf(!store.available);

  run("refuses a request without a key: 401, problem details, WWW-Authenticate", async () => {
    const response = await api().get("/v1/events");
    expect(response.status).toBe(401);
    expect(problemOf(response).code).toBe("key_missing");
    expect(response.headers["www-authenticate"]).toBe('Bearer realm="api"');
  });

  run("refuses malformed keys and bad checksums without naming the key", async () => {
    const full = secrets.full as string;
    const typo = `${full.slice(0, -1)}${full.endsWith("A") ? "B" : "A"}`;
    for (const value of ["flux_live_short", typo, "x".repeat(5000)]) {
      const response = await api().get("/v1/events").set("Authorization", `Bearer ${value}`);
      expect(response.status).toBe(401);
      expect(problemOf(response).code).toBe("key_malformed");
      expect(response.headers["www-authenticate"]).toMatch(/^Bearer realm="api", error="invalid_token"/);
      expect(response.text).not.toContain(value.slice(10, 40));
    }
  });

  run("refuses unknown, revoked and expired keys", async () => {
    // A well-formed, checksummed key that was never issued.
    const neverIssued = generateKey("flux", "live").secret;
    const unknown = await api().get("/v1/events").set("Authorization", `Bearer ${neverIssued}`);
    expect(unknown.status).toBe(401);
    expect(problemOf(unknown).code).toBe("key_invalid");

    const revoked = await api().get("/v1/events").set("Authorization", `Bearer ${secrets.revoked}`);
    expect(revoked.status).toBe(401);
    expect(problemOf(revoked).code).toBe("key_revoked");

    now += 2 * 86_400_000;
    try {
      const expired = await api().get("/v1/events").set("Authorization", `Bearer ${secrets.expiring}`);
      expect(expired.status).toBe(401);
      expect(problemOf(expired).code).toBe("key_expired");
    } finally {
      now -= 2 * 86_400_000;
    }
  });

  run("refuses every key of a suspended org with 403 org_suspended, until it is resumed", async () => {
    await flux.orgs.create({ id: `held-${now}`, name: "Held", planId: "pro" });
    const { secret } = await flux.keys.create().forOrg(`held-${now}`).withScopes(["read:events"]).issue();
    expect((await api().get("/v1/events").set("Authorization", `Bearer ${secret}`)).status).toBe(200);
    await flux.orgs.suspend(`held-${now}`, { reason: "contract" });
    try {
      const refused = await api().get("/v1/events").set("Authorization", `Bearer ${secret}`);
      expect(refused.status).toBe(403);
      expect(problemOf(refused).code).toBe("org_suspended");
      expect(refused.text).not.toContain("contract");
      // Attributed to the key, with its outcome.
      await flux.usage.flush();
      const usage = await flux.usage.query({
        orgId: `held-${now}`,
        from: new Date(now - 3_600_000),
        to: new Date(now + 3_600_000),
        granularity: "hour",
        groupBy: ["outcome"],
      });
      const byOutcome = Object.fromEntries(usage.series.map((s) => [s.group.outcome, s.totals.calls]));
      expect(byOutcome).toEqual({ allowed: 1, org_suspended: 1 });
    } finally {
      await flux.orgs.resume(`held-${now}`);
    }
    expect((await api().get("/v1/events").set("Authorization", `Bearer ${secret}`)).status).toBe(200);
  });

  run("serves a valid key from Authorization or X-API-Key, with RateLimit fields", async () => {
    const bearer = await api().get("/v1/events").set("Authorization", `Bearer ${secrets.full}`);
    expect(bearer.status).toBe(200);
    expect(bearer.body).toEqual({ data: [] });
    expect(bearer.headers["ratelimit-policy"]).toBe('"sustained";q=1000;w=3600');
    expect(bearer.headers.ratelimit).toMatch(/^"sustained";r=\d+;t=\d+$/);
    const header = await api()
      .get("/v1/events")
      .set("X-API-Key", secrets.full as string);
    expect(header.status).toBe(200);
    const created = await api()
      .post("/v1/events")
      .set("Authorization", `bearer ${secrets.full}`)
      .send({ type: "deploy" });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ orgId: "acme", type: "deploy" });
  });

  run("refuses keys in the query string and two different credentials", async () => {
    const inQuery = await api().get(`/v1/events?api_key=${secrets.full}`);
    expect(inQuery.status).toBe(400);
    expect(problemOf(inQuery).code).toBe("invalid_request");
    const asName = await api().get(`/v1/events?${secrets.full}`);
    expect(asName.status).toBe(400);
    expect(problemOf(asName).code).toBe("invalid_request");
    const hidden = await api()
      .get(`/v1/events?q=${secrets.full}`)
      .set("Authorization", `Bearer ${secrets.full}`);
    expect(hidden.status).toBe(400);
    const two = await api()
      .get("/v1/events")
      .set("Authorization", `Bearer ${secrets.full}`)
      .set("X-API-Key", secrets.reader as string);
    expect(two.status).toBe(400);
    expect(problemOf(two).code).toBe("invalid_request");
    const same = await api()
      .get("/v1/events")
      .set("Authorization", `Bearer ${secrets.full}`)
      .set("X-API-Key", secrets.full as string);
    expect(same.status).toBe(200);
  });

  run("refuses two Authorization or two X-API-Key headers: 400, even with the same value", async () => {
    const full = secrets.full as string;
    const reader = secrets.reader as string;
    const cases: Array<Array<[string, string]>> = [
      [
        ["Authorization", `Bearer ${full}`],
        ["Authorization", `Bearer ${reader}`],
      ],
      [
        ["X-API-Key", full],
        ["X-API-Key", reader],
      ],
      [
        ["Authorization", `Bearer ${full}`],
        ["Authorization", "Basic dXNlcjpwYXNz"],
      ],
    ];
    for (const headers of cases) {
      const response = await rawRequest(app.url, { path: "/v1/events", headers });
      expect(response.status).toBe(400);
      expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(response.body)).toMatchObject({ code: "invalid_request", status: 400 });
      expect(response.body).not.toContain(full.slice(10, 40));
    }
    // A singleton field sent twice is malformed (RFC 9110 §5.3), whatever the copies say.
    const repeated = await rawRequest(app.url, {
      path: "/v1/events",
      headers: [
        ["X-API-Key", full],
        ["X-API-Key", full],
      ],
    });
    expect(repeated.status).toBe(400);
    const single = await rawRequest(app.url, { path: "/v1/events", headers: [["X-API-Key", full]] });
    expect(single.status).toBe(200);
  });

  run("refuses a missing scope with 403 insufficient_scope, consuming nothing", async () => {
    const before = await flux.keys.check(secrets.reader, { cost: 0 });
    const response = await api()
      .post("/v1/events")
      .set("Authorization", `Bearer ${secrets.reader}`)
      .send({ type: "x" });
    expect(response.status).toBe(403);
    expect(problemOf(response).code).toBe("scope_denied");
    expect(response.headers["www-authenticate"]).toBe(
      'Bearer realm="api", error="insufficient_scope", scope="write:events"',
    );
    const after = await flux.keys.check(secrets.reader, { cost: 0 });
    expect(after.valid && after.context.rateLimit?.windows[0]?.remaining).toBe(
      before.valid && before.context.rateLimit?.windows[0]?.remaining,
    );
  });

  run("consumes nothing for requests their route refuses, however many arrive at once", async () => {
    // 100 at once to a route whose scope the key lacks, with the holder's 4 valid requests among
    // them: a limit of 5 leaves room for all 4 only if the refused ones take nothing, ever.
    const refusedScope = () =>
      api().post("/v1/events").set("Authorization", `Bearer ${secrets.guarded}`).send({ type: "x" });
    const valid = () => api().get("/v1/events").set("Authorization", `Bearer ${secrets.guarded}`);
    const requests = Array.from({ length: 104 }, (_, i) => (i % 26 === 25 ? valid() : refusedScope()));
    const responses = await Promise.all(requests);
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((status) => status === 403)).toHaveLength(100);
    expect(statuses.filter((status) => status === 200)).toHaveLength(4);
    // And the window has one left: only the 4 served requests counted.
    const last = await valid();
    expect(last.status).toBe(200);
    expect(last.headers.ratelimit).toContain('"burst";r=0;');
  });

  run("refuses a missing entitlement with 403 and allows it where the plan has it", async () => {
    const denied = await api().post("/v1/exports").set("Authorization", `Bearer ${secrets.free}`);
    expect(denied.status).toBe(403);
    expect(problemOf(denied).code).toBe("entitlement_denied");
    const allowed = await api().post("/v1/exports").set("Authorization", `Bearer ${secrets.full}`);
    expect(allowed.status).toBe(202);
  });

  run("limits a key: 429 with Retry-After no earlier than the window's reset", async () => {
    const statuses: number[] = [];
    let last: request.Response | undefined;
    for (let i = 0; i < 4; i++) {
      last = await api().get("/v1/events").set("Authorization", `Bearer ${secrets.limited}`);
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    const limited = last as request.Response;
    expect(problemOf(limited).code).toBe("rate_limited");
    const t = Number(/"burst";r=0;t=(\d+)/.exec(String(limited.headers.ratelimit))?.[1]);
    expect(Number(limited.headers["retry-after"])).toBeGreaterThanOrEqual(t);
    expect(limited.headers["ratelimit-policy"]).toContain('"burst";q=3;w=60');
  });

  run("marks a key in its rotation grace with Deprecation, Sunset and Link", async () => {
    const old = await api().get("/v1/events").set("Authorization", `Bearer ${secrets.rotating}`);
    expect(old.status, old.text).toBe(200);
    expect(old.headers.deprecation).toMatch(/^@\d+$/);
    expect(new Date(old.headers.sunset as string).getTime()).toBeGreaterThan(Date.now());
    expect(old.headers.link).toBe(`<${DOCS}>; rel="deprecation"; type="text/html"`);
    const successor = await api().get("/v1/events").set("Authorization", `Bearer ${secrets.successor}`);
    expect(successor.status).toBe(200);
    expect(successor.headers.deprecation).toBeUndefined();
    expect(successor.headers.sunset).toBeUndefined();
  });

  run("serves public routes without a key, and only those", async () => {
    const health = await api().get("/health");
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ ok: true });
  });

  run("gives path variants no way around authentication", async () => {
    const variants: Array<[string, string]> = [
      ["GET", "//v1/events"],
      ["GET", "/v1/events/"],
      ["GET", "/V1/EVENTS"],
      ["GET", "/v1/%65vents"],
      ["GET", "/v1/./events"],
      ["GET", "/v1/events;x=1"],
      ["HEAD", "/v1/events"],
      ["OPTIONS", "/v1/events"],
      ["POST", "/V1/Exports"],
    ];
    for (const [method, path] of variants) {
      const response = await request(app.url)[method.toLowerCase() as "get"](path);
      // Never served without a key: refused (401), or not a route at all (404).
      expect([401, 404], `${method} ${path} -> ${response.status}`).toContain(response.status);
      if (response.status === 401) expect(response.headers["www-authenticate"]).toMatch(/^Bearer/);
    }
  });

  run("records every verified call with its route template and final status", async () => {
    const key = secrets.usage as string;
    const auth = { Authorization: `Bearer ${key}` };
    await api().get("/v1/events").set(auth).expect(200);
    await api().get("/v1/events").set(auth).expect(200);
    await api().get("/v1/events/evt_does_not_exist").set(auth).expect(404);
    await api().get("/v1/boom").set(auth).expect(500);
    await api().post("/v1/events").set(auth).send({ type: "" }).expect(400);
    const expected = new Map([
      ["GET /v1/events 2xx", 2],
      ["GET /v1/events/:id 4xx", 1],
      ["GET /v1/boom 5xx", 1],
      ["POST /v1/events 4xx", 1],
    ]);
    let seen = new Map<string, number>();
    for (let attempt = 0; attempt < 50; attempt++) {
      await flux.usage.flush();
      const result = await flux.usage.query({
        keyId: ids.usage,
        from: new Date(now - 3_600_000),
        to: new Date(now + 3_600_000),
        granularity: "hour",
        groupBy: ["endpoint", "status"],
      });
      seen = new Map(
        result.series.map((s) => [`${s.group.method} ${s.group.endpoint} ${s.group.status}`, s.totals.calls]),
      );
      if ([...expected].every(([k, v]) => seen.get(k) === v)) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(expected));
  });

  run("records every refused call of an identified key with its outcome; counts the others", async () => {
    const org = uniqueName("outcomes");
    await flux.orgs.create({ id: org, name: "Outcomes", planId: "free" });
    const keyIds: string[] = [];
    const issue = async (build: (b: ReturnType<Flux["keys"]["create"]>) => typeof b) => {
      const { key, secret } = await build(flux.keys.create().forOrg(org).withScopes(["read:events"])).issue();
      keyIds.push(key.id);
      return secret;
    };
    const limited = await issue((b) => b.withRateLimits([{ name: "burst", limit: 2, window: "1m" }]));
    const quota = await issue((b) => b.withQuota({ limit: 1, period: "month" }));
    const revoked = await issue((b) => b);
    const expiring = await issue((b) => b.expiresInDays(1));
    const elsewhere = await issue((b) => b.allowFrom(["192.0.2.0/24"]));
    const unidentifiedBefore = flux.usage.stats().unidentified;
    await flux.keys.revoke(keyIds[2] as string);
    const get = (secret: string) => api().get("/v1/events").set("Authorization", `Bearer ${secret}`);
    // limited: 2 served, 1 rate limited; a write (scope) and an export (entitlement) refused.
    expect((await get(limited)).status).toBe(200);
    expect((await get(limited)).status).toBe(200);
    expect((await get(limited)).status).toBe(429);
    const write = await api()
      .post("/v1/events")
      .set("Authorization", `Bearer ${limited}`)
      .send({ type: "x" });
    expect(write.status).toBe(403);
    expect((await api().post("/v1/exports").set("Authorization", `Bearer ${quota}`)).status).toBe(403);
    // quota: 1 served, then over quota.
    expect((await get(quota)).status).toBe(200);
    const overQuota = await get(quota);
    expect([overQuota.status, JSON.parse(overQuota.text).code]).toEqual([429, "quota_exceeded"]);
    expect(problemOf(await get(elsewhere)).code).toBe("ip_not_allowed");
    expect(problemOf(await get(revoked)).code).toBe("key_revoked");
    now += 2 * 86_400_000;
    try {
      expect(problemOf(await get(expiring)).code).toBe("key_expired");
    } finally {
      now -= 2 * 86_400_000;
    }
    // Not identified: counted per instance, never recorded per key.
    expect((await api().get("/v1/events")).status).toBe(401);
    expect((await get(generateKey("flux", "live").secret)).status).toBe(401);
    expect((await get("flux_live_short")).status).toBe(401);
    const expected = {
      "GET /v1/events allowed": 3,
      "GET /v1/events rate_limited": 1,
      "POST /v1/events scope_denied": 1,
      "POST /v1/exports entitlement_denied": 1,
      "GET /v1/events quota_exceeded": 1,
      "GET /v1/events ip_not_allowed": 1,
      "GET /v1/events revoked": 1,
      "GET /v1/events expired": 1,
    };
    let seen: Record<string, number> = {};
    let byOutcome: Record<string, number> = {};
    let total = 0;
    for (let attempt = 0; attempt < 50; attempt++) {
      await flux.usage.flush();
      const range = { orgId: org, from: new Date(now - 3_600_000), to: new Date(now + 3 * 86_400_000) };
      const grouped = await flux.usage.query({
        ...range,
        granularity: "day",
        groupBy: ["endpoint", "outcome"],
      });
      seen = Object.fromEntries(
        grouped.series.map((s) => [
          `${s.group.method} ${s.group.endpoint} ${s.group.outcome}`,
          s.totals.calls,
        ]),
      );
      const outcomes = await flux.usage.query({ ...range, granularity: "day", groupBy: ["outcome"] });
      byOutcome = Object.fromEntries(outcomes.series.map((s) => [s.group.outcome, s.totals.calls]));
      total = (await flux.usage.query({ ...range, granularity: "day" })).series[0]?.totals.calls ?? 0;
      if (total === 10) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(seen).toEqual(expected);
    expect(byOutcome).toEqual({
      allowed: 3,
      rate_limited: 1,
      scope_denied: 1,
      entitlement_denied: 1,
      quota_exceeded: 1,
      ip_not_allowed: 1,
      revoked: 1,
      expired: 1,
    });
    // Without groupBy, the totals count every identified request.
    expect(total).toBe(10);
    const unidentified = flux.usage.stats().unidentified;
    expect(unidentified.missing - unidentifiedBefore.missing).toBe(1);
    expect(unidentified.unknown - unidentifiedBefore.unknown).toBe(1);
    expect(unidentified.malformed - unidentifiedBefore.malformed).toBe(1);
  });

  run("mounts the customer portal in one line; keys and portal sessions stay apart", async () => {
    const { url } = await flux.portal.createSession({ orgId: "acme", userId: "u-1", role: "admin" });
    expect(url.startsWith("/portal/login/")).toBe(true);
    const login = await api().get(url);
    expect(login.status).toBe(303);
    const cookies = ([] as string[]).concat(login.headers["set-cookie"] ?? []);
    expect(cookies.some((c) => /HttpOnly/i.test(c) && /SameSite=Lax/i.test(c))).toBe(true);
    const cookie = cookies.map((c) => c.split(";")[0]).join("; ");
    const me = await api().get("/portal/api/me").set("Cookie", cookie);
    expect(me.status).toBe(200);
    expect(JSON.stringify(me.body)).toContain("acme");
    const page = await api().get("/portal/").set("Cookie", cookie);
    expect(page.status).toBe(200);
    expect(page.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
    expect(page.headers["x-frame-options"]).toBe("DENY");
    // An API key does not open the portal, and a portal session does not open the API.
    const withKey = await api().get("/portal/api/me").set("Authorization", `Bearer ${secrets.full}`);
    expect(withKey.status).toBe(401);
    expect((await api().get("/v1/events").set("Cookie", cookie)).status).toBe(401);
    // The link works once.
    expect((await api().get(url)).status).not.toBe(303);
  });

  run("shows who still uses a key in grace, and which scopes a key exercised", async () => {
    const { key, secret } = await flux.keys
      .create()
      .forOrg("acme")
      .withScopes(["read:events", "write:events"])
      .issue();
    const call = (agent: string) =>
      api().get("/v1/events").set("Authorization", `Bearer ${secret}`).set("User-Agent", agent).expect(200);
    for (const agent of ["billing-sync/1.2", "billing-sync/1.2", "cron/0.1"]) await call(agent);
    const suggestion = await flux.keys.suggestScopes(key.id);
    expect(suggestion).toMatchObject({
      suggested: ["read:events"],
      unused: ["write:events"],
      narrower: true,
    });
    expect(suggestion.used).toEqual([expect.objectContaining({ scope: "read:events", calls: 3 })]);
    expect((await flux.keys.graceUsage(key.id)).clients).toEqual([]);

    await flux.keys.rotate(key.id, { gracePeriod: "1h" });
    for (const agent of ["billing-sync/1.2", "billing-sync/1.2", "cron/0.1"]) await call(agent);
    let grace = await flux.keys.graceUsage(key.id);
    for (let i = 0; i < 50 && grace.calls < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      grace = await flux.keys.graceUsage(key.id);
    }
    expect(grace).toMatchObject({ inGrace: true, calls: 3 });
    expect(grace.clients.map((c) => [c.address, c.userAgent, c.calls]).sort()).toEqual([
      ["127.0.0.1", "billing-sync/1.2", 2],
      ["127.0.0.1", "cron/0.1", 1],
    ]);
  });

  run(
    "answers 503 store_unavailable when the key store is down (last: it takes the store away)",
    async () => {
      const uncached = (await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue()).secret;
      await flux.internals.database.close();
      const response = await api().get("/v1/events").set("Authorization", `Bearer ${uncached}`);
      expect(response.status).toBe(503);
      expect(problemOf(response).code).toBe("store_unavailable");
      expect(Number(response.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      // A key verified before the outage keeps working from the cache.
      const cached = await api().get("/v1/events").set("Authorization", `Bearer ${secrets.full}`);
      expect(cached.status).toBe(200);
    },
  );
});
