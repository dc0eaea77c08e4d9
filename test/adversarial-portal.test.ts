/**
 * Adversarial use of the portal and the management API (issue 9), through the four adapters:
 * another org's ids on every portal route, CSRF on every state-changing route, scope escalation
 * through `keys.update` and the portal, and hostile paths, queries and Host headers (a typed 4xx,
 * never a 5xx). Each table is a list of rows; add a row to add a case.
 */
import { createFlux, type Flux, FluxError } from "@flux-keys/core";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LogSink, rawRequest } from "./support/adversarial-cases.js";
import { type RunningApp, TARGETS } from "./support/targets.js";

interface Browser {
  cookie: string;
  csrf: string;
}

interface Route {
  method: "GET" | "POST" | "PATCH";
  /** `:id` is replaced by the key id under attack. */
  path: string;
  body?: Record<string, unknown>;
}

/** Every JSON route of the portal (packages/portal/src/handler.ts, packages/portal/src/api.ts) and logout. */
const ROUTES: Route[] = [
  { method: "GET", path: "/portal/api/me" },
  { method: "GET", path: "/portal/api/keys" },
  { method: "POST", path: "/portal/api/keys", body: { name: "new", scopes: ["read:events"] } },
  { method: "GET", path: "/portal/api/keys/:id" },
  { method: "PATCH", path: "/portal/api/keys/:id", body: { name: "pwned" } },
  { method: "POST", path: "/portal/api/keys/:id/rotate", body: { gracePeriod: "none" } },
  { method: "POST", path: "/portal/api/keys/:id/revoke", body: { reason: "pwned" } },
  { method: "GET", path: "/portal/api/usage?range=30d" },
  { method: "GET", path: "/portal/api/usage?range=24h&keyId=:id" },
  { method: "GET", path: "/portal/api/audit" },
  { method: "POST", path: "/portal/logout" },
];
const BY_ID = ROUTES.filter((r) => r.path.includes(":id"));
const STATE_CHANGING = ROUTES.filter((r) => r.method !== "GET");

/** Ways to forge a state-changing request; each must get 403 csrf_rejected. */
const CSRF_CASES: Array<{ name: string; headers: (b: Browser, other: Browser) => Record<string, string> }> = [
  { name: "no token", headers: () => ({}) },
  { name: "wrong token", headers: () => ({ "x-csrf-token": "A".repeat(43) }) },
  { name: "empty token", headers: () => ({ "x-csrf-token": "" }) },
  { name: "another session's token", headers: (_b, other) => ({ "x-csrf-token": other.csrf }) },
  { name: "token with a suffix", headers: (b) => ({ "x-csrf-token": `${b.csrf}x` }) },
  { name: "cross-site fetch", headers: (b) => ({ "x-csrf-token": b.csrf, "sec-fetch-site": "cross-site" }) },
  { name: "same-site sibling", headers: (b) => ({ "x-csrf-token": b.csrf, "sec-fetch-site": "same-site" }) },
  { name: "foreign Origin", headers: (b) => ({ "x-csrf-token": b.csrf, origin: "https://evil.example" }) },
  { name: "Origin null", headers: (b) => ({ "x-csrf-token": b.csrf, origin: "null" }) },
  {
    name: "look-alike Origin",
    headers: (b) => ({ "x-csrf-token": b.csrf, origin: "http://127.0.0.1.evil.example" }),
  },
];

/** Hostile paths and queries for a signed-in admin: typed 4xx, never a 5xx, never another org's data. */
const HOSTILE_PATHS: Array<{ path: string; status: number; code: string }> = [
  { path: "/portal/api/keys/%00", status: 404, code: "not_found" },
  { path: "/portal/api/keys/a%00b/rotate", status: 404, code: "not_found" },
  { path: "/portal/api/keys/%F0%9F%94%91", status: 404, code: "not_found" },
  { path: `/portal/api/keys/${"k".repeat(5000)}`, status: 404, code: "not_found" },
  { path: "/portal/api/keys/..%2F..%2Fapi%2Fme", status: 404, code: "not_found" },
  { path: "/portal/api/usage?keyId=%00", status: 404, code: "not_found" },
  { path: "/portal/api/usage?keyId=%E0%A4%A", status: 404, code: "not_found" },
  { path: "/portal/api/usage?range=%00", status: 400, code: "invalid_request" },
  { path: "/portal/api/usage?range=99y", status: 400, code: "invalid_request" },
  {
    path: `/portal/api/keys?cursor=${Buffer.from("1700000000000|key_x\u0000y").toString("base64url")}`,
    status: 400,
    code: "invalid_request",
  },
  { path: "/portal/api/keys?cursor=%00", status: 400, code: "invalid_request" },
  { path: "/portal/api/audit?cursor=9999999999999999999", status: 400, code: "invalid_request" },
  { path: "/portal/api/audit?cursor=-1", status: 400, code: "invalid_request" },
];

const PORTAL_HOSTS = ["exa mple", "[", "x:99999", "a@b", "%zz", "a/b", "evil.example/portal/api/keys#"];

describe.each(TARGETS)("portal and management API through $name", (target) => {
  const sink = new LogSink();
  let flux: Flux;
  let app: RunningApp;
  let victimKey: { id: string; secret: string };
  let attacker: Browser;
  let attackerOther: Browser;
  let unknownBody: unknown;

  async function signIn(
    orgId: string,
    userId: string,
    role: "viewer" | "member" | "admin",
  ): Promise<Browser> {
    const { url } = await flux.portal.createSession({ orgId, userId, role });
    const login = await request(app.server).get(url);
    expect(login.status).toBe(303);
    const cookie = String(([] as string[]).concat(login.headers["set-cookie"] ?? [])[0]).split(
      ";",
    )[0] as string;
    const page = await request(app.server).get("/portal/").set("Cookie", cookie);
    const csrf = /"csrfToken":"([^"]+)"/.exec(page.text)?.[1] as string;
    expect(csrf).toBeTruthy();
    return { cookie, csrf };
  }

  /** A same-origin request from the browser, with its token (unless `forged`), plus `extra` headers. */
  function send(
    route: Route,
    as: Browser | null,
    id: string,
    extra: Record<string, string> = {},
    forged = false,
  ) {
    const path = route.path.replace(":id", encodeURIComponent(id));
    let req = request(app.server)[route.method.toLowerCase() as "get"](path);
    if (as) req = req.set("Cookie", as.cookie);
    if (route.method !== "GET") {
      req = req.set("Sec-Fetch-Site", "same-origin").set("Origin", app.url);
      if (as && !forged) req = req.set("X-CSRF-Token", as.csrf);
    }
    for (const [name, value] of Object.entries(extra)) req = req.set(name, value);
    if (route.body !== undefined) req = req.set("Content-Type", "application/json").send(route.body);
    return req;
  }

  beforeAll(async () => {
    flux = await createFlux({
      database: { pglite: true },
      redis: null,
      logger: sink.logger,
      webhooks: { interval: null },
    });
    await flux.plans.upsert({
      id: "pro",
      name: "Pro",
      scopes: ["read:events", "write:events", "admin:read"],
    });
    await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
    await flux.orgs.create({ id: "mallory", name: "Mallory", planId: "pro" });
    const issued = await flux.keys
      .create()
      .forOrg("acme")
      .named("Acme production")
      .withScopes(["read:events"])
      .issue();
    victimKey = { id: issued.key.id, secret: issued.secret };
    app = await target.start(flux);
    // The victim used its key (usage and audit exist to leak).
    await request(app.server)
      .get("/v1/events")
      .set("Authorization", `Bearer ${victimKey.secret}`)
      .expect(200);
    await flux.usage.flush();
    attacker = await signIn("mallory", "mal", "admin");
    attackerOther = await signIn("mallory", "mal-2", "admin");
    const unknown = await send(
      { method: "GET", path: "/portal/api/keys/:id" },
      attacker,
      "key_doesnotexist0000000",
    );
    expect(unknown.status).toBe(404);
    unknownBody = unknown.body;
  });

  afterAll(async () => {
    await app?.close();
    await flux?.close();
  });

  async function victimUnchanged(): Promise<void> {
    const key = await flux.keys.get(victimKey.id);
    expect(key).toMatchObject({ name: "Acme production", status: "active", scopes: ["read:events"] });
    expect((await flux.keys.check(victimKey.secret)).valid).toBe(true);
  }

  it.each(BY_ID)("another org's key id on $method $path: the same 404 as an unknown id", async (route) => {
    for (const id of [victimKey.id, victimKey.id.toUpperCase(), ` ${victimKey.id}`, `${victimKey.id}/`]) {
      const response = await send(route, attacker, id);
      expect(response.status, `${route.method} ${route.path} with ${JSON.stringify(id)}`).toBe(404);
      expect(response.body).toEqual(unknownBody);
    }
    await victimUnchanged();
  });

  it("no list, usage or audit route shows another org's keys, names or events", async () => {
    const smuggled = ["", "?orgId=acme", "?org=acme&orgId=acme", `?keyId=${victimKey.id}&range=30d`];
    for (const route of ROUTES.filter((r) => r.method === "GET" && !r.path.includes(":id"))) {
      for (const query of smuggled) {
        const path = route.path.includes("?") ? `${route.path}&${query.slice(1)}` : `${route.path}${query}`;
        const response = await send({ ...route, path }, attacker, "");
        expect(response.status, path).toBeLessThan(500);
        const text = response.text;
        expect(text, path).not.toContain(victimKey.id);
        expect(text, path).not.toContain("Acme production");
        expect(text, path).not.toContain('"acme"');
      }
    }
  });

  it("the body cannot move a key or a new key to another org", async () => {
    const create = await send(
      { method: "POST", path: "/portal/api/keys", body: { name: "sneaky", scopes: [], orgId: "acme" } },
      attacker,
      "",
    );
    expect(create.status).toBe(400);
    const own = (
      await flux.keys
        .create()
        .forOrg("mallory")
        .withScopes(["read:events"])
        .createdBy({ type: "user", id: "mal" })
        .issue()
    ).key;
    const moved = await send(
      { method: "PATCH", path: "/portal/api/keys/:id", body: { name: "x", orgId: "acme" } },
      attacker,
      own.id,
    );
    expect(moved.status).toBe(400);
    expect((await flux.keys.get(own.id)).orgId).toBe("mallory");
    expect((await flux.keys.list({ orgId: "acme" })).items.map((k) => k.name)).toEqual(["Acme production"]);
  });

  it("every route refuses a request without a session, or with an API key instead", async () => {
    for (const route of ROUTES) {
      const bare = await send(route, null, victimKey.id);
      expect(bare.status, `${route.method} ${route.path}`).toBe(401);
      const withKey = await send(route, null, victimKey.id, { Authorization: `Bearer ${victimKey.secret}` });
      expect(withKey.status).toBe(401);
    }
    await victimUnchanged();
  });

  it.each(STATE_CHANGING)(
    "CSRF on $method $path: every forgery 403 csrf_rejected, nothing changes",
    async (route) => {
      const own = (
        await flux.keys.create().forOrg("mallory").named("own").withScopes(["read:events"]).issue()
      ).key;
      for (const forgery of CSRF_CASES) {
        const response = await send(route, attacker, own.id, forgery.headers(attacker, attackerOther), true);
        expect(response.status, forgery.name).toBe(403);
        expect(response.body, forgery.name).toMatchObject({ code: "csrf_rejected" });
      }
      // A form post (text/plain, no custom header possible cross-site) is refused as well.
      const form = await request(app.server)
        [route.method.toLowerCase() as "post"](route.path.replace(":id", own.id))
        .set("Cookie", attacker.cookie)
        .set("Content-Type", "text/plain")
        .send("name=x");
      expect(form.status).toBe(403);
      expect(await flux.keys.get(own.id)).toMatchObject({ name: "own", status: "active" });
      expect(
        (await flux.keys.list({ orgId: "mallory", limit: 500 })).items.some((k) => k.name === "new"),
      ).toBe(false);
      // The session still works: none of it signed the attacker out either.
      expect((await send(ROUTES[0] as Route, attacker, "")).status).toBe(200);
    },
  );

  it("scope escalation through the portal: beyond the plan 422, beyond the role 403", async () => {
    const member = await signIn("mallory", "meg", "member");
    const viewer = await signIn("mallory", "vic", "viewer");
    const admin = attacker;
    const adminKey = (
      await (
        await send(
          { method: "POST", path: "/portal/api/keys", body: { name: "a", scopes: ["read:events"] } },
          admin,
          "",
        )
      ).body
    ).key as { id: string };
    const memberKey = (
      await (
        await send(
          { method: "POST", path: "/portal/api/keys", body: { name: "m", scopes: ["read:events"] } },
          member,
          "",
        )
      ).body
    ).key as { id: string };
    const patch = (scopes: unknown): Route => ({
      method: "PATCH",
      path: "/portal/api/keys/:id",
      body: { scopes },
    });
    const rows: Array<{ as: Browser; id: string; scopes: unknown; status: number; code: string }> = [
      { as: admin, id: adminKey.id, scopes: ["*"], status: 422, code: "scope_not_allowed" },
      { as: admin, id: adminKey.id, scopes: ["admin:*"], status: 422, code: "scope_not_allowed" },
      { as: admin, id: adminKey.id, scopes: ["billing:write"], status: 422, code: "scope_not_allowed" },
      { as: admin, id: adminKey.id, scopes: ["read:events:*"], status: 422, code: "scope_not_allowed" },
      { as: admin, id: adminKey.id, scopes: ["read:*"], status: 422, code: "scope_not_allowed" },
      { as: admin, id: adminKey.id, scopes: ["read:events", " *"], status: 400, code: "invalid_request" },
      { as: admin, id: adminKey.id, scopes: "*", status: 400, code: "invalid_request" },
      { as: member, id: memberKey.id, scopes: ["*"], status: 422, code: "scope_not_allowed" },
      {
        as: member,
        id: adminKey.id,
        scopes: ["read:events", "write:events"],
        status: 403,
        code: "role_denied",
      },
      {
        as: viewer,
        id: memberKey.id,
        scopes: ["read:events", "write:events"],
        status: 403,
        code: "role_denied",
      },
    ];
    for (const row of rows) {
      const response = await send(patch(row.scopes), row.as, row.id);
      expect(response.status, JSON.stringify(row.scopes)).toBe(row.status);
      expect(response.body.code).toBe(row.code);
    }
    const created = await send(
      { method: "POST", path: "/portal/api/keys", body: { name: "wide", scopes: ["admin:*"] } },
      member,
      "",
    );
    expect(created.status).toBe(422);
    expect((await flux.keys.get(adminKey.id)).scopes).toEqual(["read:events"]);
    expect((await flux.keys.get(memberKey.id)).scopes).toEqual(["read:events"]);
    // Rotation keeps the scopes: no way to widen them by rotating.
    const rotated = await send(
      { method: "POST", path: "/portal/api/keys/:id/rotate", body: { gracePeriod: "1h" } },
      member,
      memberKey.id,
    );
    expect(rotated.status).toBe(201);
    expect(rotated.body.key.scopes).toEqual(["read:events"]);
  });

  it.each(HOSTILE_PATHS)("hostile path $path: $status $code", async (row) => {
    const response = await send({ method: "GET", path: row.path }, attacker, "");
    expect(response.status).toBe(row.status);
    expect(response.body.code).toBe(row.code);
  });

  it("a malformed escape in a key id is never a 5xx (frameworks may answer 400 first)", async () => {
    for (const route of BY_ID.filter((r) => !r.path.includes("?"))) {
      const response = await send({ ...route, path: route.path.replace(":id", "%E0%A4%A") }, attacker, "");
      expect([400, 404], `${route.method} ${route.path}`).toContain(response.status);
    }
  });

  it("a hostile Host header is never a 5xx", async () => {
    for (const host of PORTAL_HOSTS) {
      for (const path of ["/portal/", "/portal/api/me", "/portal/api/keys"]) {
        const response = await rawRequest(app.url, { path, host, headers: [["Cookie", attacker.cookie]] });
        expect(response.status, `${JSON.stringify(host)} ${path}`).toBeGreaterThanOrEqual(200);
        expect(response.status, `${JSON.stringify(host)} ${path}`).toBeLessThan(500);
      }
    }
  });

  it("logs no cookie, token or secret", () => {
    const text = sink.lines.join("\n");
    expect(text).not.toContain(attacker.cookie.split("=")[1] as string);
    expect(text).not.toContain(attacker.csrf);
    expect(text).not.toContain(victimKey.secret.slice(10));
  });
});

describe("scope escalation through the management API (keys.update)", () => {
  let flux: Flux;
  let keyId: string;

  beforeAll(async () => {
    flux = await createFlux({ database: { pglite: true }, redis: null, webhooks: { interval: null } });
    await flux.plans.upsert({ id: "basic", name: "Basic", scopes: ["read:events", "admin:read"] });
    await flux.orgs.create({ id: "acme", name: "Acme", planId: "basic" });
    keyId = (await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue()).key.id;
  });
  afterAll(async () => {
    await flux?.close();
  });

  const CASES: Array<{ changes: Record<string, unknown>; code: string }> = [
    { changes: { scopes: ["*"] }, code: "scope_not_allowed" },
    { changes: { scopes: ["read:*"] }, code: "scope_not_allowed" },
    { changes: { scopes: ["admin:*"] }, code: "scope_not_allowed" },
    { changes: { scopes: ["read:events", "write:events"] }, code: "scope_not_allowed" },
    { changes: { scopes: ["read:events:*"] }, code: "scope_not_allowed" },
    { changes: { scopes: ["READ:EVENTS"] }, code: "scope_not_allowed" },
    { changes: { scopes: ["read:events\u0000"] }, code: "invalid_request" },
    { changes: { scopes: ["read:events", "*:*"] }, code: "invalid_request" },
    { changes: { scopes: "read:events" }, code: "invalid_request" },
    { changes: { scopes: Array.from({ length: 101 }, (_, i) => `read:e${i}`) }, code: "invalid_request" },
    { changes: { orgId: "other" }, code: "invalid_request" },
    { changes: { environment: "test" }, code: "invalid_request" },
    { changes: { metadata: { scopes: ["*"] }, scopes: ["*"] }, code: "scope_not_allowed" },
  ];

  it.each(CASES)("update($changes) → $code, nothing changes", async ({ changes, code }) => {
    const error = await flux.keys.update(keyId, changes as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FluxError);
    expect((error as FluxError).code).toBe(code);
    expect((await flux.keys.get(keyId)).scopes).toEqual(["read:events"]);
  });

  it("an id that cannot be a key id is not_found, never a store error", async () => {
    for (const id of ["\u0000", "key_\u0000", "x".repeat(10_000), "", "key_x y"]) {
      for (const call of [
        () => flux.keys.get(id),
        () => flux.keys.update(id, { name: "x" }),
        () => flux.keys.revoke(id),
        () => flux.keys.rotate(id, { gracePeriod: "1h" }),
      ]) {
        await expect(call()).rejects.toMatchObject({ code: "not_found" });
      }
    }
  });
});
