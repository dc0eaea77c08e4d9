/**
 * The portal handler over HTTP (Web Requests in, Responses out), on PGlite and PostgreSQL:
 * links (single use, expiry, digest only), sessions (cookie flags, id change at login, logout),
 * CSRF, org isolation (IDOR), roles, headers, problem details, audit actors and logs.
 */

import { createFlux, type Flux, FluxConfigError, type PortalHandler } from "@flux-keys/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STORES } from "../../../test/support/services.js";

const ORIGIN = "http://portal.test";

function manualClock(start = Date.parse("2026-06-01T12:00:00Z")) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by the assertions that read them
type Body = any;
type TestResponse = Omit<Response, "json"> & { json(): Promise<Body> };

interface Browser {
  cookie: string;
  csrf: string;
}

interface Call {
  method?: string;
  body?: unknown;
  as?: Browser | null;
  csrf?: string | null;
  headers?: Record<string, string>;
  origin?: string;
  remoteAddress?: string;
}

describe.each(STORES)("portal handler on $name", (store) => {
  const clock = manualClock();
  const logs: unknown[] = [];
  let flux: Flux;
  let portal: PortalHandler;
  let teardown: () => Promise<void>;

  async function call(path: string, options: Call = {}): Promise<TestResponse> {
    const method = options.method ?? "GET";
    const headers: Record<string, string> = { ...options.headers };
    if (options.as) headers.cookie = options.as.cookie;
    if (method !== "GET") {
      headers["sec-fetch-site"] ??= "same-origin";
      headers.origin = options.origin ?? ORIGIN;
      const csrf = options.csrf === undefined ? options.as?.csrf : options.csrf;
      if (csrf) headers["x-csrf-token"] = csrf;
    }
    if (options.body !== undefined) headers["content-type"] = "application/json";
    return portal(
      new Request(`${ORIGIN}${path}`, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      }),
      { remoteAddress: options.remoteAddress ?? "198.51.100.7" },
    );
  }

  /** Opens a fresh link for a user and returns the browser state (cookie and the page's CSRF token). */
  async function signIn(
    orgId: string,
    userId: string,
    role: "viewer" | "member" | "admin",
  ): Promise<Browser> {
    const { url } = await portal.createSession({ orgId, userId, role, returnUrl: "/settings" });
    const response = await call(url);
    expect(response.status).toBe(303);
    const cookie = (response.headers.get("set-cookie") ?? "").split(";")[0] as string;
    const page = await call("/portal/", { as: { cookie, csrf: "" } });
    const html = await page.text();
    const csrf = /"csrfToken":"([^"]+)"/.exec(html)?.[1] as string;
    expect(csrf).toBeTruthy();
    return { cookie, csrf };
  }

  beforeAll(async () => {
    if (!store.available) return;
    const target = await store.setup();
    teardown = target.teardown;
    const record = (level: string) => (fields: unknown, message?: string) =>
      logs.push({ level, fields, message });
    flux = await createFlux(
      target.options({
        clock: clock.now,
        logger: {
          debug: record("debug"),
          info: record("info"),
          warn: record("warn"),
          error: record("error"),
        },
      }),
    );
    await flux.plans.upsert({ id: "pro", name: "Pro", scopes: ["read:events", "write:events", "admin:*"] });
    await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
    await flux.orgs.create({ id: "globex", name: "Globex", planId: "pro" });
    portal = flux.portal.handler({ basePath: "/portal", title: "Acme API keys" });
  });

  afterAll(async () => {
    await flux?.close();
    await teardown?.();
  });

  describe("links", () => {
    it.skipIf(!store.available)(
      "a link works once, sets a hardened cookie and stores only a digest",
      async () => {
        const { url, expiresAt } = await portal.createSession({
          orgId: "acme",
          userId: "u-ann",
          role: "admin",
        });
        expect(url).toMatch(/^\/portal\/login\/fpl_[A-Za-z0-9_-]{43}$/);
        expect(expiresAt.getTime()).toBe(clock.now() + 5 * 60_000);
        const token = url.split("/").pop() as string;
        const rows = await flux.internals.database.prisma.portalLink.findMany();
        expect(JSON.stringify(rows, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(token);

        const first = await call(url);
        expect(first.status).toBe(303);
        expect(first.headers.get("location")).toBe("/portal/");
        const cookie = first.headers.get("set-cookie") as string;
        expect(cookie).toMatch(/^flux_portal=fps_[A-Za-z0-9_-]{43}; /);
        expect(cookie).toContain("HttpOnly");
        expect(cookie).toContain("SameSite=Lax");
        expect(cookie).toContain("Path=/portal");
        expect(cookie).not.toContain("Secure");

        const again = await call(url);
        expect(again.status).toBe(410);
        expect(again.headers.get("set-cookie")).toBeNull();
        expect(await again.text()).toContain("This link has expired");
        // A HEAD (a link preview, a scanner) does not spend a link.
        const { url: previewed } = await portal.createSession({
          orgId: "acme",
          userId: "u-ann",
          role: "admin",
        });
        const head = await portal(new Request(`${ORIGIN}${previewed}`, { method: "HEAD" }));
        expect(head.headers.get("set-cookie")).toBeNull();
        expect((await call(previewed)).status).toBe(303);
      },
    );

    it.skipIf(!store.available)("cookies are Secure under https", async () => {
      const { url } = await portal.createSession({ orgId: "acme", userId: "u-ann", role: "admin" });
      const response = await portal(new Request(`https://portal.test${url}`));
      expect(response.headers.get("set-cookie")).toContain("; Secure");
    });

    it.skipIf(!store.available)("a link expires; a ttl over 15 minutes is refused", async () => {
      const { url } = await portal.createSession({
        orgId: "acme",
        userId: "u-ann",
        role: "admin",
        ttl: "15m",
      });
      clock.advance(15 * 60_000 + 1);
      expect((await call(url)).status).toBe(410);
      await expect(
        portal.createSession({ orgId: "acme", userId: "u", role: "admin", ttl: "16m" }),
      ).rejects.toMatchObject({ code: "invalid_request" });
      await expect(
        portal.createSession({ orgId: "acme", userId: "u", role: "owner" as "admin" }),
      ).rejects.toMatchObject({ code: "invalid_request" });
      await expect(portal.createSession({ orgId: "nope", userId: "u", role: "admin" })).rejects.toMatchObject(
        {
          code: "not_found",
        },
      );
      expect((await call("/portal/login/fpl_garbage")).status).toBe(410);
    });

    it.skipIf(!store.available)("flux.portal.createSession builds absolute links from baseUrl", async () => {
      const link = await flux.portal.createSession({
        orgId: "acme",
        userId: "u-ann",
        role: "viewer",
        baseUrl: "https://app.example.com/portal/",
      });
      expect(link.url).toMatch(/^https:\/\/app\.example\.com\/portal\/login\/fpl_/);
      const relative = await flux.portal.createSession({
        orgId: "acme",
        userId: "u",
        role: "viewer",
        basePath: "/keys",
      });
      expect(relative.url).toMatch(/^\/keys\/login\/fpl_/);
    });
  });

  describe("sessions", () => {
    it.skipIf(!store.available)("the session id changes at login and the old one stops working", async () => {
      const first = await signIn("acme", "u-ann", "admin");
      const { url } = await portal.createSession({ orgId: "acme", userId: "u-ann", role: "admin" });
      const response = await call(url, { as: first });
      const second = (response.headers.get("set-cookie") ?? "").split(";")[0] as string;
      expect(second).not.toBe(first.cookie);
      expect((await call("/portal/api/me", { as: first })).status).toBe(401);
      expect((await call("/portal/api/me", { as: { cookie: second, csrf: "" } })).status).toBe(200);
    });

    it.skipIf(!store.available)("logout ends the session server-side", async () => {
      const browser = await signIn("acme", "u-ann", "admin");
      const out = await call("/portal/logout", { method: "POST", as: browser });
      expect(out.status).toBe(200);
      expect(await out.json()).toEqual({ signedOut: true, returnUrl: "/settings" });
      expect(out.headers.get("set-cookie")).toMatch(/^flux_portal=; .*Max-Age=0/);
      const after = await call("/portal/api/me", { as: browser });
      expect(after.status).toBe(401);
      expect(after.headers.get("content-type")).toBe("application/problem+json");
      expect(await after.json()).toMatchObject({ code: "session_required", status: 401 });
      const page = await call("/portal/", { as: browser });
      expect(page.status).toBe(401);
      expect(await page.text()).toContain("Please sign in");
    });

    it.skipIf(!store.available)(
      "tells a suspended org's users so, without the operator's reason",
      async () => {
        const browser = await signIn("acme", "u-ann", "viewer");
        await flux.orgs.suspend("acme", { reason: "internal: chargeback 4411" });
        try {
          const response = await call("/portal/api/me", { as: browser });
          expect(response.status).toBe(200);
          const text = await response.text();
          expect(JSON.parse(text).org.suspendedAt).toEqual(expect.any(String));
          expect(text).not.toContain("chargeback");
        } finally {
          await flux.orgs.resume("acme");
        }
        const after = await (await call("/portal/api/me", { as: browser })).json();
        expect(after.org.suspendedAt).toBeNull();
      },
    );

    it.skipIf(!store.available)("a session ends after sessionTtl", async () => {
      const browser = await signIn("acme", "u-ann", "viewer");
      clock.advance(8 * 3_600_000 + 1);
      expect((await call("/portal/api/me", { as: browser })).status).toBe(401);
    });

    it.skipIf(!store.available)(
      "API keys do not authenticate the portal, and sessions do not authenticate the API",
      async () => {
        const { secret } = await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue();
        const withKey = await call("/portal/api/keys", {
          headers: { authorization: `Bearer ${secret}`, "x-api-key": secret },
        });
        expect(withKey.status).toBe(401);
        const browser = await signIn("acme", "u-ann", "admin");
        const token = browser.cookie.split("=")[1] as string;
        const check = await flux.keys.check(token);
        expect(check.valid).toBe(false);
      },
    );
  });

  describe("pages and headers", () => {
    it.skipIf(!store.available)("pages and API responses forbid framing, sniffing and caching", async () => {
      const browser = await signIn("acme", "u-ann", "admin");
      for (const path of ["/portal/", "/portal/api/keys", "/portal/login/fpl_x", "/portal/nowhere"]) {
        const response = await call(path, { as: browser });
        expect(response.headers.get("content-security-policy"), path).toContain("frame-ancestors 'none'");
        expect(response.headers.get("content-security-policy"), path).toContain("script-src 'self'");
        expect(response.headers.get("x-frame-options"), path).toBe("DENY");
        expect(response.headers.get("x-content-type-options"), path).toBe("nosniff");
        expect(response.headers.get("cache-control"), path).toBe("no-store");
      }
      const page = await call("/portal/", { as: browser });
      const html = await page.text();
      expect(html).toContain("<title>Acme API keys</title>");
      expect(html).not.toMatch(/<script>(?!<\/script>)|style="/);
      const script = await call("/portal/assets/portal.js");
      expect(script.headers.get("content-type")).toContain("text/javascript");
      const source = await script.text();
      // Compiles (does not run): the shipped script is valid JavaScript.
      expect(() => new Function(source)).not.toThrow();
      expect(source.length).toBeGreaterThan(1000);
    });

    it.skipIf(!store.available)("paths outside basePath are not the portal's", async () => {
      expect((await call("/elsewhere")).status).toBe(404);
      expect((await call("/portalx/")).status).toBe(404);
    });
  });

  describe("CSRF", () => {
    it.skipIf(!store.available)("forged cross-site POSTs get 403 and change nothing", async () => {
      const browser = await signIn("acme", "u-ann", "admin");
      const before = (await flux.keys.list({ orgId: "acme", limit: 500 })).items.length;
      const body = { name: "forged", scopes: [] };
      const attempts: Call[] = [
        { method: "POST", body, as: browser, csrf: null },
        { method: "POST", body, as: browser, csrf: "not-the-token" },
        { method: "POST", body, as: browser, headers: { "sec-fetch-site": "cross-site" } },
        { method: "POST", body, as: browser, headers: { "sec-fetch-site": "same-site" } },
        { method: "POST", body, as: browser, origin: "https://evil.example" },
      ];
      for (const attempt of attempts) {
        const response = await call("/portal/api/keys", attempt);
        expect(response.status).toBe(403);
        expect(await response.json()).toMatchObject({ code: "csrf_rejected", status: 403 });
      }
      // A browser without Fetch Metadata: Origin decides, the token still required.
      const noMeta = await portal(
        new Request(`${ORIGIN}/portal/api/keys`, {
          method: "POST",
          headers: {
            cookie: browser.cookie,
            origin: "https://evil.example",
            "content-type": "application/json",
            "x-csrf-token": browser.csrf,
          },
          body: JSON.stringify(body),
        }),
      );
      expect(noMeta.status).toBe(403);
      // A token from another session is refused too.
      const other = await signIn("acme", "u-bob", "admin");
      expect(
        (await call("/portal/api/keys", { method: "POST", body, as: browser, csrf: other.csrf })).status,
      ).toBe(403);
      expect((await flux.keys.list({ orgId: "acme", limit: 500 })).items.length).toBe(before);
      expect((await call("/portal/api/keys", { method: "POST", body, as: browser })).status).toBe(201);
    });
  });

  describe("org isolation", () => {
    it.skipIf(!store.available)(
      "another org's key id gives the same 404 as an unknown id and changes nothing",
      async () => {
        const theirs = await flux.keys
          .create()
          .forOrg("globex")
          .named("Globex prod")
          .withScopes(["read:events"])
          .issue();
        const acme = await signIn("acme", "u-ann", "admin");
        const unknown = await call("/portal/api/keys/key_doesnotexist", { as: acme });
        const unknownBody = await unknown.json();
        expect(unknown.status).toBe(404);
        const id = theirs.key.id;
        const attempts: Array<[string, Call]> = [
          [`/portal/api/keys/${id}`, {}],
          [`/portal/api/keys/${id}`, { method: "PATCH", body: { name: "pwned", scopes: [] } }],
          [`/portal/api/keys/${id}/rotate`, { method: "POST", body: { gracePeriod: "none" } }],
          [`/portal/api/keys/${id}/revoke`, { method: "POST", body: {} }],
          [`/portal/api/usage?keyId=${id}`, {}],
        ];
        for (const [path, options] of attempts) {
          const response = await call(path, { ...options, as: acme });
          expect(response.status, path).toBe(404);
          expect(await response.json(), path).toEqual(unknownBody);
        }
        const list = await (await call("/portal/api/keys", { as: acme })).json();
        expect(list.items.map((k: { id: string }) => k.id)).not.toContain(id);
        const audit = await (await call("/portal/api/audit", { as: acme })).json();
        expect(audit.items.every((e: { keyId: string | null }) => e.keyId !== id)).toBe(true);
        const after = await flux.keys.get(id);
        expect(after).toMatchObject({ name: "Globex prod", status: "active", scopes: ["read:events"] });
        expect((await flux.keys.check(theirs.secret)).valid).toBe(true);
      },
    );

    it.skipIf(!store.available)("the body cannot move a key to another org", async () => {
      const acme = await signIn("acme", "u-ann", "admin");
      const response = await call("/portal/api/keys", {
        method: "POST",
        as: acme,
        body: { name: "sneaky", scopes: [], orgId: "globex" },
      });
      expect(response.status).toBe(400);
      expect(
        (await flux.keys.list({ orgId: "globex", limit: 500 })).items.some((k) => k.name === "sneaky"),
      ).toBe(false);
    });
  });

  describe("roles", () => {
    it.skipIf(!store.available)(
      "viewers read, members manage their own keys, admins manage all",
      async () => {
        const viewer = await signIn("acme", "u-vic", "viewer");
        const member = await signIn("acme", "u-meg", "member");
        const admin = await signIn("acme", "u-ann", "admin");

        expect((await call("/portal/api/keys", { as: viewer })).status).toBe(200);
        const denied = await call("/portal/api/keys", {
          method: "POST",
          as: viewer,
          body: { name: "v", scopes: [] },
        });
        expect(denied.status).toBe(403);
        expect(await denied.json()).toMatchObject({ code: "role_denied" });

        const adminKey = (
          await (
            await call("/portal/api/keys", {
              method: "POST",
              as: admin,
              body: { name: "admin's", scopes: ["admin:*"] },
            })
          ).json()
        ).key;
        const memberKey = (
          await (
            await call("/portal/api/keys", {
              method: "POST",
              as: member,
              body: { name: "meg's", scopes: ["read:events"] },
            })
          ).json()
        ).key;
        expect(memberKey.createdByYou).toBe(true);

        expect(
          (await call(`/portal/api/keys/${memberKey.id}/revoke`, { method: "POST", as: viewer, body: {} }))
            .status,
        ).toBe(403);
        expect(
          (await call(`/portal/api/keys/${adminKey.id}/revoke`, { method: "POST", as: member, body: {} }))
            .status,
        ).toBe(403);
        expect(
          (
            await call(`/portal/api/keys/${adminKey.id}`, {
              method: "PATCH",
              as: member,
              body: { name: "x" },
            })
          ).status,
        ).toBe(403);
        expect(
          (
            await call(`/portal/api/keys/${adminKey.id}/rotate`, {
              method: "POST",
              as: member,
              body: { gracePeriod: "1h" },
            })
          ).status,
        ).toBe(403);
        expect((await flux.keys.get(adminKey.id)).status).toBe("active");

        const renamed = await call(`/portal/api/keys/${memberKey.id}`, {
          method: "PATCH",
          as: member,
          body: { name: "meg's CI", scopes: ["read:events", "write:events"] },
        });
        expect(renamed.status).toBe(200);
        expect((await renamed.json()).key).toMatchObject({
          name: "meg's CI",
          scopes: ["read:events", "write:events"],
        });
        expect(
          (
            await call(`/portal/api/keys/${memberKey.id}/revoke`, {
              method: "POST",
              as: admin,
              body: { reason: "left" },
            })
          ).status,
        ).toBe(200);
        expect((await flux.keys.get(memberKey.id)).status).toBe("revoked");
      },
    );

    it.skipIf(!store.available)("nobody can grant a scope the plan does not allow", async () => {
      const admin = await signIn("acme", "u-ann", "admin");
      const created = await call("/portal/api/keys", {
        method: "POST",
        as: admin,
        body: { name: "too much", scopes: ["billing:write"] },
      });
      expect(created.status).toBe(422);
      expect(await created.json()).toMatchObject({ code: "scope_not_allowed", scopes: ["billing:write"] });
      const key = (
        await (
          await call("/portal/api/keys", {
            method: "POST",
            as: admin,
            body: { name: "ok", scopes: ["read:events"] },
          })
        ).json()
      ).key;
      const widened = await call(`/portal/api/keys/${key.id}`, {
        method: "PATCH",
        as: admin,
        body: { scopes: ["*"] },
      });
      expect(widened.status).toBe(422);
      expect((await flux.keys.get(key.id)).scopes).toEqual(["read:events"]);
    });
  });

  describe("keys, rotation, usage and audit", () => {
    it.skipIf(!store.available)("shows a secret once, with no-store, and never again", async () => {
      const admin = await signIn("acme", "u-ann", "admin");
      const created = await call("/portal/api/keys", {
        method: "POST",
        as: admin,
        body: { name: "Production", scopes: ["read:events"], expiresInDays: 3 },
        remoteAddress: "203.0.113.9",
      });
      expect(created.status).toBe(201);
      expect(created.headers.get("cache-control")).toBe("no-store");
      const { key, secret } = await created.json();
      expect((await flux.keys.verify(secret)).keyId).toBe(key.id);
      expect(key.status).toBe("expiring");
      const row = await flux.internals.database.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } });
      for (const path of ["/portal/api/keys", `/portal/api/keys/${key.id}`, "/portal/api/audit"]) {
        const text = await (await call(path, { as: admin })).text();
        expect(text, path).not.toContain(secret);
        expect(text, path).not.toContain(row.digest);
      }
      const events = await flux.audit.list({ keyId: key.id });
      expect(events.items[0]).toMatchObject({
        action: "key.created",
        actor: { type: "user", id: "u-ann", ip: "203.0.113.9" },
      });
    });

    it.skipIf(!store.available)("suggests narrower scopes from what a key actually used", async () => {
      const admin = await signIn("acme", "u-ann", "admin");
      const { key } = await (
        await call("/portal/api/keys", {
          method: "POST",
          as: admin,
          body: { name: "Reader", scopes: ["read:events", "write:events"] },
        })
      ).json();
      const before = await (await call(`/portal/api/keys/${key.id}`, { as: admin })).json();
      expect(before.scopeAdvice).toBeNull();
      flux.keys.observe({ keyId: key.id, rotation: null } as never, { scopes: ["read:events"] });
      const after = await (await call(`/portal/api/keys/${key.id}`, { as: admin })).json();
      expect(after.scopeAdvice).toEqual({ suggested: ["read:events"], unused: ["write:events"] });
    });

    it.skipIf(!store.available)(
      "during a rotation grace it shows the old key's calls since the rotation",
      async () => {
        const admin = await signIn("acme", "u-ann", "admin");
        const { key } = await (
          await call("/portal/api/keys", { method: "POST", as: admin, body: { name: "Worker", scopes: [] } })
        ).json();
        const rotated = await call(`/portal/api/keys/${key.id}/rotate`, {
          method: "POST",
          as: admin,
          body: { gracePeriod: "24h" },
        });
        expect(rotated.status).toBe(201);
        expect(rotated.headers.get("cache-control")).toBe("no-store");
        const result = await rotated.json();
        expect(result.previous.status).toBe("grace");
        expect(typeof result.secret).toBe("string");
        clock.advance(60_000);
        for (let i = 0; i < 3; i++) {
          flux.usage.record({
            keyId: key.id,
            orgId: "acme",
            method: "GET",
            endpoint: "/v1/events",
            status: i === 2 ? 500 : 200,
            latencyMs: 5,
          });
        }
        await flux.usage.flush();
        // What an adapter notes for each call of a key in grace: who made it.
        const inGrace = { keyId: key.id, rotation: { replacedBy: result.key.id, sunsetAt: new Date() } };
        flux.keys.observe(inGrace as never, {
          clientAddress: "203.0.113.9",
          userAgent: "worker/2.1",
          scopes: ["read:events"],
        });
        const detail = await (await call(`/portal/api/keys/${key.id}`, { as: admin })).json();
        expect(detail.key.status).toBe("grace");
        expect(detail.grace).toMatchObject({
          callsSinceRotation: 3,
          errorsSinceRotation: 1,
          replacedBy: { id: result.key.id },
          clients: [{ address: "203.0.113.9", userAgent: "worker/2.1", calls: 1 }],
          endpoints: [{ method: "GET", endpoint: "/v1/events", calls: 3, errors: 1 }],
        });
        const usage = await (await call(`/portal/api/usage?range=1h&keyId=${key.id}`, { as: admin })).json();
        expect(usage.totals).toEqual({ calls: 3, errors: 1 });
        expect(usage.granularity).toBe("minute");
        const org = await (await call("/portal/api/usage?range=24h", { as: admin })).json();
        expect(org.keys.find((k: { keyId: string }) => k.keyId === key.id)).toMatchObject({
          name: "Worker",
          calls: 3,
        });
        expect(org.endpoints[0]).toMatchObject({ endpoint: "/v1/events" });
        const audit = await (await call("/portal/api/audit", { as: admin })).json();
        expect(
          audit.items.some(
            (e: { action: string; keyId: string }) => e.action === "key.rotated" && e.keyId === key.id,
          ),
        ).toBe(true);
        // Revoking the successor ends the lineage, and the answer says so.
        const revoked = await call(`/portal/api/keys/${result.key.id}/revoke`, {
          method: "POST",
          as: admin,
          body: {},
        });
        expect(revoked.status).toBe(200);
        expect((await revoked.json()).revokedWith).toEqual([key.id]);
        expect((await flux.keys.get(key.id)).status).toBe("revoked");
      },
    );

    it.skipIf(!store.available)("shows the customer the calls refused, by outcome", async () => {
      const admin = await signIn("acme", "u-ann", "admin");
      const { key } = await (
        await call("/portal/api/keys", {
          method: "POST",
          as: admin,
          body: { name: "Throttled", scopes: ["read:events"] },
        })
      ).json();
      const call1 = { keyId: key.id, orgId: "acme", method: "GET", endpoint: "/v1/events", latencyMs: 1 };
      for (let i = 0; i < 4; i++) flux.usage.record({ ...call1, status: 200 });
      for (let i = 0; i < 3; i++) flux.usage.record({ ...call1, status: 429, outcome: "rate_limited" });
      flux.usage.record({ ...call1, status: 403, outcome: "scope_denied" });
      await flux.usage.flush();
      const usage = await (await call(`/portal/api/usage?range=1h&keyId=${key.id}`, { as: admin })).json();
      expect(usage.totals).toEqual({ calls: 8, errors: 4 });
      expect(usage.refused).toBe(4);
      expect(usage.outcomes).toEqual({ allowed: 4, rate_limited: 3, scope_denied: 1 });
      expect(usage.points.reduce((sum: number, p: { refused: number }) => sum + p.refused, 0)).toBe(4);
    });

    it.skipIf(!store.available)("errors are problem details", async () => {
      const admin = await signIn("acme", "u-ann", "admin");
      const bad = await call("/portal/api/keys", {
        method: "POST",
        as: admin,
        body: { name: "", scopes: [] },
      });
      expect(bad.status).toBe(400);
      expect(bad.headers.get("content-type")).toBe("application/problem+json");
      expect(await bad.json()).toMatchObject({
        type: "https://flux-keys.dev/problems/invalid_request",
        title: "Invalid request",
        status: 400,
        code: "invalid_request",
      });
      const range = await call("/portal/api/usage?range=1y", { as: admin });
      expect(range.status).toBe(400);
    });

    it.skipIf(!store.available)("logs carry no secret, digest, token or cookie", async () => {
      const serialized = JSON.stringify(logs);
      expect(logs.length).toBeGreaterThan(0);
      const prisma = flux.internals.database.prisma;
      const digests = [
        ...(await prisma.apiKey.findMany({ select: { digest: true } })).map((r) => r.digest),
        ...(await prisma.portalSession.findMany({ select: { id: true } })).map((r) => r.id),
        ...(await prisma.portalLink.findMany({ select: { id: true } })).map((r) => r.id),
      ];
      for (const digest of digests) expect(serialized).not.toContain(digest);
      expect(serialized).not.toMatch(/fps_|fpl_|fpc_|flux_(live|test)_/);
    });
  });

  describe("who and from where: admins only", () => {
    it.skipIf(!store.available)(
      "members and viewers see what happened in the audit log, not who from which address",
      async () => {
        const admin = await signIn("acme", "u-ann", "admin");
        const member = await signIn("acme", "u-meg", "member");
        const viewer = await signIn("acme", "u-vic", "viewer");
        const { key } = await (
          await call("/portal/api/keys", {
            method: "POST",
            as: admin,
            body: { name: "Audited", scopes: ["read:events"] },
            remoteAddress: "203.0.113.44",
          })
        ).json();
        const rotated = await (
          await call(`/portal/api/keys/${key.id}/rotate`, {
            method: "POST",
            as: admin,
            body: { gracePeriod: "24h" },
            remoteAddress: "203.0.113.44",
          })
        ).json();
        // Another key is revoked (revoking the successor would end the old key's grace too).
        const { key: doomed } = await (
          await call("/portal/api/keys", {
            method: "POST",
            as: admin,
            body: { name: "Doomed", scopes: ["read:events"] },
            remoteAddress: "203.0.113.44",
          })
        ).json();
        expect(
          (
            await call(`/portal/api/keys/${doomed.id}/revoke`, {
              method: "POST",
              as: admin,
              body: { reason: "audit test" },
              remoteAddress: "203.0.113.44",
            })
          ).status,
        ).toBe(200);
        flux.keys.observe({ keyId: key.id, rotation: { replacedBy: rotated.key.id } } as never, {
          clientAddress: "198.51.100.200",
          userAgent: "secret-integration/1.0",
        });

        const full = await (await call("/portal/api/audit", { as: admin })).json();
        const revokedByAdmin = full.items.find(
          (e: { action: string; keyId: string }) => e.action === "key.revoked" && e.keyId === doomed.id,
        );
        expect(revokedByAdmin).toMatchObject({
          actor: { type: "user", id: "u-ann", ip: "203.0.113.44" },
          details: { reason: "audit test" },
        });
        const adminDetail = await (await call(`/portal/api/keys/${key.id}`, { as: admin })).json();
        expect(adminDetail.key.createdBy).toEqual({ type: "user", id: "u-ann" });
        expect(adminDetail.grace.clients).toEqual([
          expect.objectContaining({ address: "198.51.100.200", userAgent: "secret-integration/1.0" }),
        ]);

        for (const reader of [member, viewer]) {
          const audit = await call("/portal/api/audit", { as: reader });
          expect(audit.status).toBe(200);
          const text = await audit.text();
          const page = JSON.parse(text);
          // What happened, still there.
          const revoked = page.items.find(
            (e: { action: string; keyId: string }) => e.action === "key.revoked" && e.keyId === doomed.id,
          );
          expect(revoked).toMatchObject({ actor: { type: "user" }, details: { reason: "audit test" } });
          expect(page.items.some((e: { action: string }) => e.action === "portal.session_started")).toBe(
            true,
          );
          // Who, and from where: not there.
          for (const event of page.items) expect(Object.keys(event.actor).sort()).toEqual(["type", "you"]);
          for (const hidden of ["u-ann", "203.0.113.44", "198.51.100.7"]) expect(text).not.toContain(hidden);

          const listing = await (await call("/portal/api/keys", { as: reader })).text();
          expect(listing).not.toContain("u-ann");
          const detail = await call(`/portal/api/keys/${key.id}`, { as: reader });
          const detailText = await detail.text();
          for (const hidden of ["u-ann", "198.51.100.200", "secret-integration"]) {
            expect(detailText).not.toContain(hidden);
          }
          expect(JSON.parse(detailText).grace).toMatchObject({ clients: null, callsSinceRotation: 0 });
        }
        // A member's own actions are marked as theirs, without their id.
        const own = await (await call("/portal/api/audit", { as: member })).json();
        expect(
          own.items.find(
            (e: { action: string; actor: { you: boolean } }) =>
              e.action === "portal.session_started" && e.actor.you,
          ),
        ).toBeDefined();
      },
    );
  });

  describe("active keys per org", () => {
    it.skipIf(!store.available)(
      "holds at most 100 active keys per org by default: the next create is key_limit_reached",
      async () => {
        await flux.orgs.create({ id: "hooli", name: "Hooli", planId: "pro" });
        // 98 issued outside the portal, one revoked and one expired do not count.
        for (let i = 0; i < 98; i++) await flux.keys.create().forOrg("hooli").named(`k${i}`).issue();
        const revoked = await flux.keys.create().forOrg("hooli").issue();
        await flux.keys.revoke(revoked.key.id);
        await flux.keys
          .create()
          .forOrg("hooli")
          .expiresAt(new Date(clock.now() + 1_000))
          .issue();
        clock.advance(2_000);
        const admin = await signIn("hooli", "u-gavin", "admin");
        const create = (name: string) =>
          call("/portal/api/keys", { method: "POST", as: admin, body: { name, scopes: [] } });
        const ninetyNinth = await create("99th");
        expect(ninetyNinth.status).toBe(201);
        const hundredth = await (await create("100th")).json();
        expect(hundredth.key.status).toBe("active");

        const refused = await create("101st");
        expect(refused.status).toBe(409);
        expect(refused.headers.get("content-type")).toBe("application/problem+json");
        expect(await refused.json()).toMatchObject({
          type: "https://flux-keys.dev/problems/key_limit_reached",
          status: 409,
          code: "key_limit_reached",
          limit: 100,
        });
        expect((await flux.keys.list({ orgId: "hooli", status: "active", limit: 500 })).items).toHaveLength(
          100,
        );

        // Rotating replaces a key (the old one in grace is not counted twice).
        const rotated = await call(`/portal/api/keys/${hundredth.key.id}/rotate`, {
          method: "POST",
          as: admin,
          body: { gracePeriod: "24h" },
        });
        expect(rotated.status).toBe(201);
        expect((await create("still too many")).status).toBe(409);
        // Revoking one makes room for one.
        const revoke = await call(`/portal/api/keys/${(await rotated.json()).key.id}/revoke`, {
          method: "POST",
          as: admin,
          body: {},
        });
        expect(revoke.status).toBe(200);
        expect((await create("room again")).status).toBe(201);
        expect((await create("and full")).status).toBe(409);
      },
    );

    it.skipIf(!store.available)("takes maxActiveKeys from the options, and refuses a bad one", async () => {
      await flux.orgs.create({ id: "pied", name: "Pied Piper", planId: "pro" });
      const small = flux.portal.handler({ basePath: "/portal", maxActiveKeys: 2 });
      const { url } = await small.createSession({ orgId: "pied", userId: "u-r", role: "member" });
      const opened = await small(new Request(`${ORIGIN}${url}`), { remoteAddress: "198.51.100.7" });
      const cookie = (opened.headers.get("set-cookie") ?? "").split(";")[0] as string;
      const html = await (await small(new Request(`${ORIGIN}/portal/`, { headers: { cookie } }))).text();
      const csrf = /"csrfToken":"([^"]+)"/.exec(html)?.[1] as string;
      const create = () =>
        small(
          new Request(`${ORIGIN}/portal/api/keys`, {
            method: "POST",
            headers: {
              cookie,
              origin: ORIGIN,
              "sec-fetch-site": "same-origin",
              "x-csrf-token": csrf,
              "content-type": "application/json",
            },
            body: JSON.stringify({ name: "k", scopes: [] }),
          }),
        );
      expect((await create()).status).toBe(201);
      expect((await create()).status).toBe(201);
      const third = await create();
      expect(third.status).toBe(409);
      expect(await third.json()).toMatchObject({ code: "key_limit_reached", limit: 2 });
      for (const maxActiveKeys of [0, -1, 1.5, 100_001]) {
        expect(() => flux.portal.handler({ maxActiveKeys })).toThrow(FluxConfigError);
      }
    });
  });

  describe("resolveCustomer (the host app's own sessions)", () => {
    it.skipIf(!store.available)("uses the host's identity, with a CSRF cookie of its own", async () => {
      const hosted = flux.portal.handler({
        basePath: "/keys",
        resolveCustomer: (request) => {
          const user = request.headers.get("x-test-user");
          return user ? { orgId: "globex", userId: user, role: "member" } : null;
        },
      });
      expect((await hosted(new Request(`${ORIGIN}/keys/api/me`))).status).toBe(401);
      const page = await hosted(new Request(`${ORIGIN}/keys/`, { headers: { "x-test-user": "g-1" } }));
      expect(page.status).toBe(200);
      const csrfCookie = (page.headers.get("set-cookie") ?? "").split(";")[0] as string;
      expect(csrfCookie).toMatch(/^flux_portal_csrf=fpc_/);
      const csrf = /"csrfToken":"([^"]+)"/.exec(await page.text())?.[1] as string;
      const post = (headers: Record<string, string>) =>
        hosted(
          new Request(`${ORIGIN}/keys/api/keys`, {
            method: "POST",
            headers: {
              "x-test-user": "g-1",
              "content-type": "application/json",
              "sec-fetch-site": "same-origin",
              ...headers,
            },
            body: JSON.stringify({ name: "host", scopes: [] }),
          }),
          { remoteAddress: "192.0.2.1" },
        );
      expect((await post({ "x-csrf-token": csrf })).status).toBe(403);
      const ok = await post({ "x-csrf-token": csrf, cookie: csrfCookie });
      expect(ok.status).toBe(201);
      const { key } = (await ok.json()) as Body;
      expect(key.createdBy).toEqual({ type: "user", id: "g-1" });
      const me: Body = await (
        await hosted(new Request(`${ORIGIN}/keys/api/me`, { headers: { "x-test-user": "g-1" } }))
      ).json();
      expect(me).toMatchObject({ org: { id: "globex" }, user: { id: "g-1", role: "member" }, session: null });
    });

    it.skipIf(!store.available)("rejects unknown options at any depth, with their path and code", () => {
      const refusal = (options: unknown) => {
        try {
          flux.portal.handler(options as never);
        } catch (error) {
          expect(error).toBeInstanceOf(FluxConfigError);
          const { code, message } = error as FluxConfigError;
          return { code, message };
        }
        return null;
      };
      expect(refusal({ basepath: "/x" })).toEqual({
        code: "unknown_option",
        message: "Unknown option 'basepath' for the portal.",
      });
      expect(refusal({ branding: { colour: "#1f6feb" } })).toEqual({
        code: "unknown_option",
        message: "Unknown option 'branding.colour' for the portal.",
      });
      expect(refusal({ branding: { accentColor: "red" } })).toMatchObject({
        code: "invalid_option",
        message: expect.stringMatching(/^branding\.accentColor /),
      });
      expect(refusal({ scopes: [{ scope: "read:events", label: "x" }] })).toMatchObject({
        code: "unknown_option",
        message: "Unknown option 'scopes[0].label' for the portal.",
      });
      expect(refusal({ sessionTtl: "8 hours" })).toMatchObject({ code: "invalid_option" });
      expect(refusal({ sessionTtl: "30s" })).toMatchObject({ code: "invalid_option" });
      expect(refusal({ allowedOrigins: ["not an origin"] })).toMatchObject({ code: "invalid_option" });
      expect(refusal({ basePath: "/portal/", sessionTtl: "1h", expiringSoon: "2w" })).toBeNull();
    });
  });
});
