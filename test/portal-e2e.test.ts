/**
 * The portal in a real browser (Debian's chromium through playwright-core): the handler served
 * standalone on a loopback port, next to a tiny API that verifies keys with `flux.keys.check`.
 * A customer opens a portal link, creates a key, copies the secret, calls the API with it,
 * rotates it, sees the old key in grace (and still used), revokes it, sees the API refuse it and
 * the chart change. A page on another site tries to forge a POST. Then the same behind a
 * TLS-terminating proxy (https outside, http to the portal). Screenshots go to test-results/portal/.
 *
 * Under CI a missing /usr/bin/chromium fails this file; elsewhere the suite is skipped.
 */
import { existsSync, mkdirSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";
import { createFlux, type Flux, type PortalHandler, servePortal, usageOutcomeOf } from "@flux-keys/core";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTlsProxy, type TlsProxy } from "./support/tls-proxy.js";

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = existsSync(CHROMIUM);
if (process.env.CI && !hasChromium) {
  throw new Error(
    `${CHROMIUM} is required under CI for the portal browser suite (apt-get install chromium).`,
  );
}
const SHOTS = join(process.cwd(), "test-results", "portal");

function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve({ server, port: typeof address === "object" && address ? address.port : 0 });
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

describe.skipIf(!hasChromium)("portal in a browser", () => {
  let flux: Flux;
  let portal: PortalHandler;
  let portalOrigin: string;
  let closePortal: () => Promise<void>;
  let api: Server;
  let apiOrigin: string;
  let evil: Server;
  let evilOrigin: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const portalStatuses: Array<{ method: string; path: string; status: number }> = [];
  /**
   * Usage is counted per minute, and the grace panel counts from the minute of the rotation. So
   * that the calls made before the rotation fall in an earlier minute whatever the wall clock
   * says, the API records them as made two minutes earlier.
   */
  let recordShiftMs = 0;

  /** The customer's own code calling the API with a key. */
  async function callApi(secret: string, path = "/v1/events"): Promise<number> {
    const response = await fetch(`${apiOrigin}${path}`, { headers: { authorization: `Bearer ${secret}` } });
    await response.arrayBuffer();
    return response.status;
  }

  async function shot(name: string) {
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  }

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    flux = await createFlux({ database: { pglite: true }, redis: null });
    await flux.plans.upsert({
      id: "growth",
      name: "Growth",
      scopes: ["read:events", "write:events", "read:reports"],
    });
    await flux.orgs.create({ id: "acme", name: "Acme Inc.", planId: "growth" });
    await flux.orgs.create({ id: "globex", name: "Globex", planId: "growth" });
    // A key the host's support team made earlier, so the list is not empty.
    await flux.keys
      .create()
      .forOrg("acme")
      .named("Legacy importer")
      .withScopes(["read:events"])
      .createdBy({ type: "admin", id: "support" })
      .issue();

    portal = flux.portal.handler({
      basePath: "/portal",
      title: "API keys",
      branding: { name: "Acme Cloud", accentColor: "#0b5cd5" },
      scopes: [
        { scope: "read:events", description: "Read events" },
        { scope: "write:events", description: "Send events" },
        { scope: "read:reports", description: "Download reports" },
      ],
    });
    const recorded: typeof portal = Object.assign(
      async (request: Request, ctx?: Parameters<PortalHandler>[1]) => {
        const response = await portal(request, ctx);
        portalStatuses.push({
          method: request.method,
          path: new URL(request.url).pathname,
          status: response.status,
        });
        return response;
      },
      { basePath: portal.basePath, createSession: portal.createSession },
    );
    const served = await servePortal(recorded);
    portalOrigin = served.url;
    closePortal = served.close;

    // The host's API: Bearer keys only, verified by core, usage recorded with the route template.
    const apiServer = await listen((req, res) => {
      const started = performance.now();
      const header = req.headers.authorization ?? "";
      const presented = /^Bearer (\S+)$/.exec(header)?.[1];
      void flux.keys.check(presented).then((result) => {
        if (!result.valid) {
          // A refusal of an identified key is usage too (what the adapters record), with its outcome.
          const outcome = usageOutcomeOf(result.error.code);
          if (result.key !== undefined && outcome !== null) {
            flux.usage.record({
              keyId: result.key.keyId,
              orgId: result.key.orgId,
              method: req.method ?? "GET",
              endpoint: "/v1/events",
              status: result.error.status,
              latencyMs: performance.now() - started,
              outcome,
              units: 0,
            });
          }
          res.writeHead(result.error.status, { "content-type": "application/problem+json" });
          res.end(JSON.stringify(result.error.toProblem()));
          return;
        }
        // What the adapters note for each verified call: who used a key in its rotation grace.
        flux.keys.observe(result.context, {
          clientAddress: req.socket.remoteAddress ?? null,
          userAgent: req.headers["user-agent"] ?? null,
        });
        const boom = req.url === "/v1/boom";
        const status = boom ? 500 : 200;
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(boom ? { error: "boom" } : { events: [] }));
        flux.usage.record({
          keyId: result.context.keyId,
          orgId: result.context.orgId,
          method: req.method ?? "GET",
          endpoint: boom ? "/v1/boom" : "/v1/events",
          status,
          latencyMs: performance.now() - started,
          at: Date.now() + recordShiftMs,
        });
      });
    });
    api = apiServer.server;
    apiOrigin = `http://127.0.0.1:${apiServer.port}`;

    // Another site (localhost is not the same site as 127.0.0.1) that forges a POST to the portal.
    const evilServer = await listen((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(`<!doctype html><html><body>
<form id="f" method="POST" enctype="text/plain" action="${portalOrigin}/portal/api/keys">
<input name='{"name":"forged","scopes":["write:events"],"x":"' value='"}'>
</form>
<script>
fetch("${portalOrigin}/portal/api/keys", { method: "POST", mode: "no-cors", credentials: "include",
  headers: { "content-type": "text/plain" }, body: '{"name":"forged2","scopes":[]}' })
  .finally(() => document.getElementById("f").submit());
</script></body></html>`);
    });
    evil = evilServer.server;
    evilOrigin = `http://localhost:${evilServer.port}`;

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: "en-US" });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: portalOrigin });
    page = await context.newPage();
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await closePortal?.();
    if (api) await close(api);
    if (evil) await close(evil);
    await flux?.close();
  });

  it("creates, uses, rotates and revokes a key, end to end", async () => {
    const { url } = await portal.createSession({
      orgId: "acme",
      userId: "ann@acme.test",
      role: "admin",
      returnUrl: `${apiOrigin}/`,
    });
    const landing = await page.goto(`${portalOrigin}${url}`);
    expect(landing?.status()).toBe(200);
    expect(page.url()).toBe(`${portalOrigin}/portal/`);
    expect(landing?.headers()["x-frame-options"]).toBe("DENY");
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    await page.getByText("Legacy importer").waitFor();
    await shot("01-keys");

    // The link worked once: opening it again shows the expired page, not a session.
    const reused = await context.request.get(`${portalOrigin}${url}`, { maxRedirects: 0 });
    expect(reused.status()).toBe(410);

    // Keyboard: the create dialog opens from the keyboard and Escape closes it.
    await page.getByRole("button", { name: "Create key" }).focus();
    await page.keyboard.press("Enter");
    await page.getByRole("dialog", { name: "Create an API key" }).waitFor();
    await expect
      .poll(() => page.evaluate<string | undefined>("document.activeElement?.id"))
      .toBe("create-name");
    await page.keyboard.press("Escape");
    await page.getByRole("dialog").waitFor({ state: "detached" });

    // Create a key.
    await page.getByRole("button", { name: "Create key" }).click();
    const dialog = page.getByRole("dialog", { name: "Create an API key" });
    await dialog.getByLabel("Name").fill("Production server");
    await dialog.getByLabel("read:events").check();
    await dialog.getByLabel("write:events").check();
    await dialog.getByLabel("Expires").selectOption("90");
    await shot("02-create-dialog");
    await dialog.getByRole("button", { name: "Create key" }).click();
    const secretDialog = page.getByRole("dialog", { name: /Your new key/ });
    await secretDialog.waitFor();
    const shown = await secretDialog.getByLabel("Secret key").inputValue();
    expect(shown).toMatch(/^flux_live_[0-9A-Za-z]{49}$/);
    await secretDialog.getByRole("button", { name: "Copy" }).click();
    await secretDialog.getByText("Copied to the clipboard.").waitFor();
    const secret = await page.evaluate<string>("navigator.clipboard.readText()");
    expect(secret).toBe(shown);
    await shot("03-secret-once");
    await secretDialog.getByRole("button", { name: "I have saved it" }).click();
    await page.getByRole("heading", { name: /Production server/ }).waitFor();
    const keyId = decodeURIComponent(page.url().split("#/keys/")[1] as string);
    expect(await page.getByLabel("Secret key").count()).toBe(0);
    const before = await page.locator("#usage-title-caption").textContent();
    expect(before).toContain("0 requests");

    // The customer's code uses it; the chart changes.
    recordShiftMs = -120_000;
    expect(await callApi(secret)).toBe(200);
    expect(await callApi(secret)).toBe(200);
    expect(await callApi(secret)).toBe(200);
    expect(await callApi(secret, "/v1/boom")).toBe(500);
    await flux.usage.flush();
    recordShiftMs = 0;
    await page.reload();
    await page.getByRole("heading", { name: /Production server/ }).waitFor();
    await expect
      .poll(() => page.locator("#usage-title-caption").textContent())
      .toContain("4 requests, 1 errors");
    expect(await page.locator("svg rect.chart-bar").count()).toBeGreaterThan(0);
    expect(await page.locator("svg rect.chart-err").count()).toBeGreaterThan(0);
    await shot("04-key-detail");

    // Rotate with a 24 h grace; the old key keeps working and is shown in grace, with its calls.
    await page.getByLabel("Grace period").selectOption("24h");
    await page.getByRole("button", { name: "Rotate key" }).click();
    const rotatedDialog = page.getByRole("dialog", { name: /Your rotated key/ });
    await rotatedDialog.waitFor();
    const newSecret = await rotatedDialog.getByLabel("Secret key").inputValue();
    expect(newSecret).not.toBe(secret);
    await rotatedDialog.getByRole("button", { name: "I have saved it" }).click();
    expect(await callApi(newSecret)).toBe(200);
    expect(await callApi(secret)).toBe(200); // still in grace
    expect(await callApi(secret)).toBe(200);
    await flux.usage.flush();
    await page.goto(`${portalOrigin}/portal/#/keys`);
    const oldRow = page.locator(`tr[data-key-id="${keyId}"]`);
    await oldRow.getByText("In grace period").waitFor();
    await shot("05-keys-with-grace");
    await oldRow.getByRole("link", { name: "Production server" }).click();
    await page.locator("#grace-panel").waitFor();
    await expect
      .poll(() => page.locator("#grace-calls").textContent())
      .toContain("2 calls since the rotation");
    await page.locator("#grace-panel").getByText("GET /v1/events").waitFor();
    // And from where: the client that still uses the old key.
    await page.locator("#grace-panel").getByText("127.0.0.1").waitFor();
    await shot("06-old-key-in-grace");

    // Revoke the old key (with a confirmation); the API refuses it from then on.
    await page.getByRole("button", { name: "Revoke key…" }).click();
    const confirm = page.getByRole("dialog", { name: /Revoke “Production server”/ });
    await confirm.getByLabel("Reason (optional)").fill("rotated to the new key");
    await shot("07-revoke-confirm");
    await confirm.getByRole("button", { name: "Revoke key" }).click();
    await page
      .getByRole("heading", { name: /Production server/ })
      .getByText("Revoked")
      .waitFor();
    expect(await callApi(secret)).toBe(401);
    expect(await callApi(newSecret)).toBe(200);
    const audit = await flux.audit.list({ keyId });
    expect(audit.items[0]).toMatchObject({
      action: "key.revoked",
      actor: { type: "user", id: "ann@acme.test", ip: "127.0.0.1" },
    });

    // The org's usage and audit log.
    await flux.usage.flush();
    await page.getByRole("link", { name: "Usage" }).click();
    await page.getByRole("heading", { name: "All keys" }).waitFor();
    await expect
      .poll(() => page.locator("#org-usage-title-caption").textContent())
      .toContain("9 requests, 2 errors, 1 refused (revoked key 1)");
    // The refused call (the revoked key's) is drawn as its own layer: the customer sees it.
    expect(await page.locator("svg rect.chart-refused").count()).toBeGreaterThan(0);
    await page.getByRole("cell", { name: "GET /v1/events" }).waitFor();
    await shot("08-usage");
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByRole("cell", { name: "Key revoked" }).waitFor();
    await shot("09-audit");

    // A phone-sized viewport (once the "Key revoked." notice has faded).
    await expect.poll(() => page.locator(".toast.show").count(), { timeout: 6_000 }).toBe(0);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole("link", { name: "Keys" }).click();
    await page.getByText("Legacy importer").waitFor();
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(0);
    await shot("10-phone-keys");
    await page.goto(`${portalOrigin}/portal/#/keys/${encodeURIComponent(keyId)}`);
    await page.getByRole("heading", { name: /Production server/ }).waitFor();
    await shot("11-phone-key-detail");
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  it("a page on another site cannot change anything", async () => {
    const count = async () => (await flux.keys.list({ orgId: "acme", limit: 500 })).items.length;
    const before = await count();
    const start = portalStatuses.length;
    const attacker = await context.newPage();
    await attacker.goto(`${evilOrigin}/`);
    await expect
      .poll(() => portalStatuses.slice(start).filter((s) => s.method === "POST").length, { timeout: 10_000 })
      .toBeGreaterThanOrEqual(2);
    const posts = portalStatuses.slice(start).filter((s) => s.method === "POST");
    for (const post of posts) expect([401, 403]).toContain(post.status);
    expect(await count()).toBe(before);
    await attacker.close();
  });

  it("signs out server-side and back to the app", async () => {
    await page.goto(`${portalOrigin}/portal/#/keys`);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(`${apiOrigin}/`);
    const again = await page.goto(`${portalOrigin}/portal/`);
    expect(again?.status()).toBe(401);
    await page.getByRole("heading", { name: "Please sign in" }).waitFor();
    await shot("12-signed-out");
  });
});

describe.skipIf(!hasChromium)("portal in a browser behind a TLS-terminating proxy", () => {
  let flux: Flux;
  let portal: PortalHandler;
  let closePortal: () => Promise<void>;
  let proxy: TlsProxy;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    // The proxy reaches the portal from 127.0.0.1: the only peer this instance trusts.
    flux = await createFlux({ database: { pglite: true }, redis: null, trustProxy: "127.0.0.1" });
    await flux.plans.upsert({ id: "growth", name: "Growth", scopes: ["read:events", "write:events"] });
    await flux.orgs.create({ id: "acme", name: "Acme Inc.", planId: "growth" });
    portal = flux.portal.handler({ basePath: "/portal" });
    const served = await servePortal(portal);
    closePortal = served.close;
    proxy = await startTlsProxy(served.url);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
    });
    // The proxy's certificate is self-signed for this run.
    context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 } });
    page = await context.newPage();
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await proxy?.close();
    await closePortal?.();
    await flux?.close();
  });

  it("signs in with Secure cookies, then creates, rotates and revokes a key over https", async () => {
    const { url } = await portal.createSession({ orgId: "acme", userId: "ann@acme.test", role: "admin" });
    const landing = await page.goto(`${proxy.url}${url}`);
    expect(landing?.status()).toBe(200);
    expect(page.url()).toBe(`${proxy.url}/portal/`);
    const cookies = await context.cookies(`${proxy.url}/portal/`);
    expect(cookies.find((c) => c.name === "flux_portal")).toMatchObject({ secure: true, httpOnly: true });
    await page.getByRole("heading", { name: "API keys" }).waitFor();

    // Create: a same-origin POST whose Origin is the proxy's https one.
    await page.getByRole("button", { name: "Create key" }).click();
    const dialog = page.getByRole("dialog", { name: "Create an API key" });
    await dialog.getByLabel("Name").fill("Behind the proxy");
    await dialog.getByLabel("read:events").check();
    await dialog.getByRole("button", { name: "Create key" }).click();
    const secretDialog = page.getByRole("dialog", { name: /Your new key/ });
    await secretDialog.waitFor();
    const secret = await secretDialog.getByLabel("Secret key").inputValue();
    expect(secret).toMatch(/^flux_live_[0-9A-Za-z]{49}$/);
    await secretDialog.getByRole("button", { name: "I have saved it" }).click();
    await page.getByRole("heading", { name: /Behind the proxy/ }).waitFor();
    const keyId = decodeURIComponent(page.url().split("#/keys/")[1] as string);

    // Rotate.
    await page.getByLabel("Grace period").selectOption("24h");
    await page.getByRole("button", { name: "Rotate key" }).click();
    const rotated = page.getByRole("dialog", { name: /Your rotated key/ });
    await rotated.waitFor();
    const newSecret = await rotated.getByLabel("Secret key").inputValue();
    expect(newSecret).not.toBe(secret);
    await rotated.getByRole("button", { name: "I have saved it" }).click();

    // Revoke the old key.
    await page.goto(`${proxy.url}/portal/#/keys/${encodeURIComponent(keyId)}`);
    await page.getByRole("heading", { name: /Behind the proxy/ }).waitFor();
    await page.getByRole("button", { name: "Revoke key…" }).click();
    const confirm = page.getByRole("dialog", { name: /Revoke “Behind the proxy”/ });
    await confirm.getByRole("button", { name: "Revoke key" }).click();
    await page
      .getByRole("heading", { name: /Behind the proxy/ })
      .getByText("Revoked")
      .waitFor();
    expect((await flux.keys.check(secret)).valid).toBe(false);
    expect((await flux.keys.check(newSecret)).valid).toBe(true);
    const actions = (await flux.audit.list({ orgId: "acme" })).items.map((event) => event.action);
    expect(actions).toEqual(expect.arrayContaining(["key.created", "key.rotated", "key.revoked"]));
  });
});
