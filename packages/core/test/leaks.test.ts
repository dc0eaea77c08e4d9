/**
 * Leak response: the scanning kit (regex + offline checksum) and GitHub's partner alerts, signed
 * with a key pair made here, against real stores.
 */
import { generateKeyPairSync, sign } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STORES } from "../../../test/support/services.js";
import {
  createFlux,
  createSecretScanningHandler,
  type Flux,
  findFluxKeys,
  fluxKeyPattern,
  isFluxKey,
  toNodeListener,
} from "../src/index.js";
import { generateKey } from "../src/keys/format.js";

describe("secret-scanning kit", () => {
  it("finds keys by pattern and tells real ones from look-alikes offline", async () => {
    const real = generateKey("flux", "live").secret;
    const test = generateKey("flux", "test").secret;
    const lookAlike = `${real.slice(0, -6)}AAAAAA`;
    expect(isFluxKey(real)).toBe(true);
    expect(isFluxKey(test)).toBe(true);
    expect(isFluxKey(lookAlike)).toBe(lookAlike === real);
    expect(isFluxKey(`${real} `)).toBe(false);
    expect(isFluxKey(generateKey("acme", "live").secret, { prefix: "acme" })).toBe(true);
    const text = `const a = "${real}";\nconst b = '${lookAlike}'; // ${test}\nflux_live_short`;
    expect(findFluxKeys(text)).toEqual([real, test]);
    expect(new RegExp(fluxKeyPattern()).test(real)).toBe(true);
  });

  it("ships a gitleaks rule whose regex is the same pattern", async () => {
    const toml = await readFile(new URL("../../../secret-scanning/gitleaks.toml", import.meta.url), "utf8");
    const regex = /regex = '''(.+)'''/.exec(toml)?.[1] as string;
    const real = generateKey("flux", "live").secret;
    expect(new RegExp(regex).exec(`token=${real};`)?.[1]).toBe(real);
  });
});

describe.each(STORES)("GitHub secret-scanning alerts on $name", (store) => {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const pem = publicKey.export({ type: "spki", format: "pem" }).toString();
  const other = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  let flux: Flux;
  let teardown: () => Promise<void>;

  function alert(body: unknown, signer = privateKey, identifier = "gh-key-1") {
    const raw = JSON.stringify(body);
    return new Request("https://api.example.test/github/secret-scanning", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "Github-Public-Key-Identifier": identifier,
        "Github-Public-Key-Signature": sign("sha256", Buffer.from(raw), signer).toString("base64"),
      },
      body: raw,
    });
  }

  beforeAll(async () => {
    if (!store.available) return;
    const target = await store.setup();
    teardown = target.teardown;
    flux = await createFlux(target.options());
    await flux.orgs.create({ id: "acme", name: "Acme" });
  });
  afterAll(async () => {
    await flux?.close();
    await teardown?.();
  });

  it.skipIf(!store.available)("revokes a reported key and records where it leaked", async () => {
    const handler = createSecretScanningHandler(flux, {
      publicKeys: [{ keyIdentifier: "gh-key-1", key: pem }],
    });
    const heard: unknown[] = [];
    const stop = flux.on("key.leaked", (event) => {
      heard.push(event.data);
    });
    const { key, secret } = await flux.keys.create().forOrg("acme").issue();
    const unknown = generateKey("flux", "live").secret;
    const response = await handler(
      alert([
        {
          token: secret,
          type: "flux_api_key",
          url: "https://github.com/acme/app/blob/main/.env",
          source: "content",
        },
        { token: unknown, type: "flux_api_key", url: "https://github.com/x/y", source: "content" },
        { token: "flux_live_garbage", type: "flux_api_key", url: "", source: "content" },
      ]),
    );
    expect(response.status).toBe(200);
    const feedback = (await response.json()) as Array<Record<string, string>>;
    expect(feedback).toHaveLength(1);
    expect(feedback[0]).toMatchObject({ token_type: "flux_api_key", label: "true_positive" });
    expect(JSON.stringify(feedback)).not.toContain(secret);
    expect(await flux.keys.check(secret)).toMatchObject({ valid: false, error: { code: "key_revoked" } });
    const events = (await flux.audit.list({ keyId: key.id })).items;
    expect(events.map((e) => e.action)).toEqual(["key.leaked", "key.revoked", "key.created"]);
    expect(events[0]?.details).toMatchObject({
      url: "https://github.com/acme/app/blob/main/.env",
      action: "revoke",
    });
    expect(events[0]?.actor).toEqual({ type: "system", id: "github-secret-scanning" });
    for (let i = 0; i < 50 && heard.length === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    stop();
    expect(heard).toEqual([expect.objectContaining({ keyId: key.id, action: "revoke", reporter: "github" })]);
  });

  it.skipIf(!store.available)("only flags when told to", async () => {
    const handler = createSecretScanningHandler(flux, {
      publicKeys: async () => [{ keyIdentifier: "gh-key-1", key: pem }],
      action: "flag",
    });
    const { key, secret } = await flux.keys.create().forOrg("acme").issue();
    const response = await handler(
      alert([{ token: secret, type: "flux_api_key", url: "https://gist.github.com/x", source: "gist" }]),
    );
    expect(response.status).toBe(200);
    expect((await flux.keys.check(secret)).valid).toBe(true);
    expect((await flux.audit.list({ keyId: key.id })).items[0]).toMatchObject({
      action: "key.leaked",
      details: { action: "flag", source: "gist" },
    });
  });

  it.skipIf(!store.available)(
    "refuses unsigned, wrongly signed and unknown-key payloads, changing nothing",
    async () => {
      const handler = createSecretScanningHandler(flux, {
        publicKeys: [{ keyIdentifier: "gh-key-1", key: pem }],
      });
      const { secret } = await flux.keys.create().forOrg("acme").issue();
      const body = [{ token: secret, type: "flux_api_key", url: "", source: "content" }];
      const forged = await handler(alert(body, other.privateKey));
      expect(forged.status).toBe(401);
      expect(forged.headers.get("content-type")).toBe("application/problem+json");
      expect(await forged.text()).not.toContain(secret);
      expect((await handler(alert(body, privateKey, "unknown-id"))).status).toBe(401);
      const unsigned = new Request("https://x.test/", { method: "POST", body: JSON.stringify(body) });
      expect((await handler(unsigned)).status).toBe(401);
      // A valid signature over a tampered body fails too.
      const signed = alert(body);
      const tampered = new Request(signed.url, {
        method: "POST",
        headers: signed.headers,
        body: JSON.stringify([{ ...body[0], url: "https://evil.test" }]),
      });
      expect((await handler(tampered)).status).toBe(401);
      expect((await flux.keys.check(secret)).valid).toBe(true);
    },
  );
});

describe("GitHub secret-scanning alerts: the body limit", () => {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const publicKeys = [
    { keyIdentifier: "gh-key-1", key: publicKey.export({ type: "spki", format: "pem" }).toString() },
  ];
  const headers = {
    "Content-Type": "application/json",
    "Github-Public-Key-Identifier": "gh-key-1",
    "Github-Public-Key-Signature": sign("sha256", Buffer.from("[]"), privateKey).toString("base64"),
  };
  const CHUNK = new Uint8Array(64 * 1024).fill(0x20);
  let flux: Flux;
  let server: Server;
  let port: number;

  beforeAll(async () => {
    flux = await createFlux({ database: { pglite: true }, redis: null });
    const handler = createSecretScanningHandler(flux, { publicKeys });
    server = createServer(toNodeListener(handler));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await flux.close();
  });

  /** A body of `total` bytes made as it is read, counting what the handler pulled. */
  function endless(total: number) {
    const pulled = { bytes: 0 };
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled.bytes >= total) return controller.close();
        pulled.bytes += CHUNK.length;
        controller.enqueue(CHUNK);
      },
    });
    return { body, pulled };
  }

  it("reads at most maxBodyBytes of a stream, answers 413, and never reaches the signature or the parser", async () => {
    const handler = createSecretScanningHandler(flux, { publicKeys, maxBodyBytes: 256 * 1024 });
    const { body, pulled } = endless(400 * 1024 * 1024);
    const response = await handler(
      new Request("https://api.example.test/gh", {
        method: "POST",
        headers,
        body,
        duplex: "half",
      } as RequestInit),
    );
    expect(response.status).toBe(413);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    expect(await response.json()).toMatchObject({ code: "payload_too_large", status: 413 });
    // The limit and at most one chunk more: never the 400 MB.
    expect(pulled.bytes).toBeLessThanOrEqual(256 * 1024 + CHUNK.length);
  });

  it("answers 413 from a Content-Length past the limit without reading, and 401 for an unknown signing key", async () => {
    const handler = createSecretScanningHandler(flux, { publicKeys, maxBodyBytes: 1024 });
    const declared = endless(10 * 1024 * 1024);
    const big = await handler(
      new Request("https://api.example.test/gh", {
        method: "POST",
        headers: { ...headers, "Content-Length": String(10 * 1024 * 1024) },
        body: declared.body,
        duplex: "half",
      } as RequestInit),
    );
    expect(big.status).toBe(413);
    expect(declared.pulled.bytes).toBeLessThanOrEqual(CHUNK.length);
    const stranger = endless(10 * 1024 * 1024);
    const unknown = await handler(
      new Request("https://api.example.test/gh", {
        method: "POST",
        headers: { ...headers, "Github-Public-Key-Identifier": "not-github" },
        body: stranger.body,
        duplex: "half",
      } as RequestInit),
    );
    expect(unknown.status).toBe(401);
    expect(stranger.pulled.bytes).toBeLessThanOrEqual(CHUNK.length);
  });

  it("over real HTTP: a 256 MB unauthenticated POST gets 413 with memory bounded", async () => {
    global.gc?.();
    const before = process.memoryUsage().rss;
    let sent = 0;
    let peak = before;
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/github/secret-scanning",
        headers: { ...headers, "Github-Public-Key-Signature": "AAAA" },
      });
      let answered = false;
      req.on("response", (response) => {
        answered = true;
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      req.on("error", (error) => (answered ? undefined : reject(error)));
      const write = () => {
        while (!answered && sent < 256 * 1024 * 1024) {
          sent += CHUNK.length;
          peak = Math.max(peak, process.memoryUsage().rss);
          if (!req.write(CHUNK)) return void req.once("drain", write);
        }
        req.end();
      };
      write();
    });
    expect(status).toBe(413);
    // Answered long before the whole body was sent, and the process grew by far less than it.
    expect(sent).toBeLessThan(64 * 1024 * 1024);
    expect(peak - before).toBeLessThan(48 * 1024 * 1024);
  });
});

describe.each(STORES)("per-key network rules on $name", (store) => {
  let flux: Flux;
  let teardown: () => Promise<void>;
  beforeAll(async () => {
    if (!store.available) return;
    const target = await store.setup();
    teardown = target.teardown;
    flux = await createFlux(target.options());
    await flux.orgs.create({ id: "acme", name: "Acme" });
  });
  afterAll(async () => {
    await flux?.close();
    await teardown?.();
  });

  it.skipIf(!store.available)("admits only the allowed networks, IPv4, IPv6 and IPv4-mapped", async () => {
    const { key, secret } = await flux.keys
      .create()
      .forOrg("acme")
      .allowFrom(["203.0.113.0/24", "2001:db8::/32"])
      .issue();
    expect(key.allowFrom).toEqual(["203.0.113.0/24", "2001:db8::/32"]);
    for (const address of ["203.0.113.7", "::ffff:203.0.113.7", "2001:db8:1::42"]) {
      expect((await flux.keys.check(secret, { clientAddress: address })).valid, address).toBe(true);
    }
    for (const address of ["198.51.100.1", "2001:db9::1", "::1"]) {
      const result = await flux.keys.check(secret, { clientAddress: address });
      expect(result, address).toMatchObject({ valid: false, error: { code: "ip_not_allowed", status: 403 } });
    }
    // Without an address the rule fails closed.
    expect(await flux.keys.check(secret)).toMatchObject({ valid: false, error: { code: "ip_not_allowed" } });
    // Lifting the rule takes effect at once; rotation keeps it.
    await flux.keys.update(key.id, { allowFrom: [] });
    expect((await flux.keys.check(secret, { clientAddress: "198.51.100.1" })).valid).toBe(true);
    await flux.keys.update(key.id, { allowFrom: ["10.0.0.0/8"] });
    const rotated = await flux.keys.rotate(key.id, { gracePeriod: 0 });
    expect(rotated.key.allowFrom).toEqual(["10.0.0.0/8"]);
    expect((await flux.keys.check(rotated.secret, { clientAddress: "10.1.2.3" })).valid).toBe(true);
  });

  it.skipIf(!store.available)("refuses networks that do not parse", async () => {
    await expect(
      flux.keys.create().forOrg("acme").allowFrom(["not-a-network"]).issue(),
    ).rejects.toMatchObject({
      code: "invalid_request",
    });
    await expect(flux.keys.create().forOrg("acme").allowFrom(["10.0.0.0/33"]).issue()).rejects.toMatchObject({
      code: "invalid_request",
    });
  });
});
