/**
 * One `trustProxy` for the whole instance, through every adapter: the pre-authentication limiter,
 * the portal's audit trail and `flux.limits.clientAddress()` see the same client; behind a trusted
 * TLS-terminating proxy the portal takes its scheme and host from the forwarded headers (Secure
 * cookies, same-origin POSTs pass); from an untrusted peer every forwarded header is ignored.
 *
 * The instance trusts 127.0.0.1 only; an untrusted peer is the same machine connecting from
 * 127.0.0.2 (all of 127/8 is loopback on Linux).
 */
import { createFlux, type Flux } from "@flux-keys/core";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKey } from "../packages/core/src/keys/format.js";
import { rawRequest } from "./support/adversarial-cases.js";
import { type RunningApp, TARGETS } from "./support/targets.js";
import { startTlsProxy, type TlsProxy } from "./support/tls-proxy.js";

const UNTRUSTED_PEER = "127.0.0.2";

function cookiesOf(headers: Record<string, unknown>): string[] {
  return ([] as string[]).concat((headers["set-cookie"] as string[] | string | undefined) ?? []);
}

describe.each(TARGETS)("one trustProxy through $name", (target) => {
  let flux: Flux;
  let app: RunningApp;
  const proxies: TlsProxy[] = [];

  beforeAll(async () => {
    flux = await createFlux({
      database: { pglite: true },
      redis: null,
      trustProxy: "127.0.0.1",
      limits: { preAuth: { limit: 2, window: "1m" } },
      webhooks: { interval: null },
    });
    await flux.plans.upsert({ id: "pro", name: "Pro", scopes: ["read:events"] });
    await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
    app = await target.start(flux);
    proxies.push(await startTlsProxy(app.url), await startTlsProxy(app.url, { style: "forwarded" }));
  });

  afterAll(async () => {
    for (const proxy of proxies) await proxy.close();
    await app?.close();
    await flux?.close();
  });

  const lastAuditIp = async () => (await flux.audit.list({ orgId: "acme", limit: 1 })).items[0]?.actor.ip;

  it("the pre-auth limiter, the portal and clientAddress() see the same forwarded client", async () => {
    const stranger = () => ["X-API-Key", generateKey("flux", "live").secret] as [string, string];
    const from = (address: string) => ["X-Forwarded-For", address] as [string, string];
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await rawRequest(app.url, {
        path: "/v1/events",
        headers: [stranger(), from("203.0.113.5")],
      });
      codes.push(response.status);
    }
    // Counted against the forwarded client, not against the proxy that every client shares.
    expect(codes).toEqual([401, 401, 429]);
    const other = await rawRequest(app.url, {
      path: "/v1/events",
      headers: [stranger(), from("203.0.113.6")],
    });
    expect(other.status).toBe(401);

    const { url } = await flux.portal.createSession({ orgId: "acme", userId: "u-1", role: "admin" });
    const login = await rawRequest(app.url, { path: url, headers: [from("203.0.113.5")] });
    expect(login.status).toBe(303);
    expect(await lastAuditIp()).toBe("203.0.113.5");
    expect(
      flux.limits.clientAddress({
        remoteAddress: "127.0.0.1",
        headers: { "x-forwarded-for": "203.0.113.5" },
      }),
    ).toBe("203.0.113.5");
  });

  it("ignores every forwarded header from an untrusted peer", async () => {
    const forged: Array<[string, string]> = [
      ["X-Forwarded-For", "198.51.100.77"],
      ["X-Forwarded-Proto", "https"],
      ["X-Forwarded-Host", "evil.example"],
      ["Forwarded", 'for=198.51.100.77;proto=https;host="evil.example"'],
    ];
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await rawRequest(app.url, {
        path: "/v1/events",
        localAddress: UNTRUSTED_PEER,
        headers: [["X-API-Key", generateKey("flux", "live").secret], ...forged],
      });
      codes.push(response.status);
    }
    expect(codes).toEqual([401, 401, 429]);

    const { url } = await flux.portal.createSession({ orgId: "acme", userId: "u-2", role: "admin" });
    const login = await rawRequest(app.url, { path: url, localAddress: UNTRUSTED_PEER, headers: forged });
    expect(login.status).toBe(303);
    expect(await lastAuditIp()).toBe(UNTRUSTED_PEER);
    const cookies = login.text
      .split("\r\n")
      .filter((line) => /^set-cookie:/i.test(line))
      .map((line) => line.slice(line.indexOf(":") + 1).trim());
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) expect(cookie).not.toMatch(/;\s*Secure/i);
    const session = cookies.map((c) => c.split(";")[0]).join("; ");
    const page = await rawRequest(app.url, {
      path: "/portal/",
      localAddress: UNTRUSTED_PEER,
      headers: [["Cookie", session], ...forged],
    });
    const csrf = /"csrfToken":"([^"]+)"/.exec(page.body)?.[1] as string;
    expect(csrf).toBeTruthy();
    // The forged host is not this portal's origin; the connection's own one is. (supertest
    // connects from 127.0.0.1, which is trusted: the raw client speaks for the untrusted peer.)
    const body = JSON.stringify({ name: "direct", scopes: ["read:events"] });
    const post = (origin: string) =>
      rawRequest(app.url, {
        method: "POST",
        path: "/portal/api/keys",
        localAddress: UNTRUSTED_PEER,
        headers: [
          ["Cookie", session],
          ["X-CSRF-Token", csrf],
          ["Origin", origin],
          ["Content-Type", "application/json"],
          ["Content-Length", String(Buffer.byteLength(body))],
          ...forged,
        ],
        body,
      });
    expect((await post("https://evil.example")).status).toBe(403);
    expect((await post(app.url)).status).toBe(201);
  });

  for (const style of ["x-forwarded", "forwarded"] as const) {
    it(`behind a trusted TLS proxy (${style}): Secure cookies, and a same-origin POST passes`, async () => {
      const proxy = proxies[style === "forwarded" ? 1 : 0] as TlsProxy;
      const { url } = await flux.portal.createSession({ orgId: "acme", userId: `u-${style}`, role: "admin" });
      const login = await request(proxy.url).get(url).ca(proxy.cert);
      expect(login.status).toBe(303);
      const cookies = cookiesOf(login.headers);
      expect(cookies.length).toBeGreaterThan(0);
      for (const cookie of cookies) expect(cookie).toMatch(/;\s*Secure/i);
      const session = cookies.map((c) => c.split(";")[0]).join("; ");
      const page = await request(proxy.url).get("/portal/").ca(proxy.cert).set("Cookie", session);
      expect(page.status).toBe(200);
      const csrf = /"csrfToken":"([^"]+)"/.exec(page.text)?.[1] as string;
      const created = await request(proxy.url)
        .post("/portal/api/keys")
        .ca(proxy.cert)
        .set("Cookie", session)
        .set("X-CSRF-Token", csrf)
        .set("Origin", proxy.url)
        .set("Sec-Fetch-Site", "same-origin")
        .send({ name: `through ${style}`, scopes: ["read:events"] });
      expect(created.status).toBe(201);
      // The app's own address is not the portal's origin any more: the proxy's is.
      const direct = await request(proxy.url)
        .post("/portal/api/keys")
        .ca(proxy.cert)
        .set("Cookie", session)
        .set("X-CSRF-Token", csrf)
        .set("Origin", app.url)
        .send({ name: "wrong origin", scopes: ["read:events"] });
      expect(direct.status).toBe(403);
    });
  }
});

describe("the old trustProxy options", () => {
  it("are refused with a configuration error that says what to use", async () => {
    await expect(createFlux({ limits: { trustProxy: "loopback" } as never })).rejects.toMatchObject({
      name: "FluxConfigError",
      code: "invalid_option",
      message: expect.stringContaining("createFlux({ trustProxy })"),
    });
    await expect(createFlux({ trustProxy: ["not-an-ip"] })).rejects.toMatchObject({ code: "invalid_option" });
    const flux = await createFlux({ database: { pglite: true }, redis: null, webhooks: { interval: null } });
    try {
      for (const target of TARGETS) {
        await expect(
          target.start(flux, { trustProxy: "loopback" } as never),
          target.name,
        ).rejects.toMatchObject({
          code: "invalid_option",
          message: expect.stringContaining("createFlux({ trustProxy })"),
        });
      }
    } finally {
      await flux.close();
    }
  });
});
