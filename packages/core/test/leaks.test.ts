/**
 * Leak response: the scanning kit (regex + offline checksum) and GitHub's partner alerts, signed
 * with a key pair made here, against real stores.
 */
import { generateKeyPairSync, sign } from "node:crypto";
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STORES } from "../../../test/support/services.js";
import {
  createFlux,
  createSecretScanningHandler,
  type Flux,
  findFluxKeys,
  fluxKeyPattern,
  isFluxKey,
} from "../src/index.js";
import { generateKey } from "../src/key-format.js";

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
