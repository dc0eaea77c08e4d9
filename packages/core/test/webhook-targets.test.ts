/**
 * Webhooks cannot be pointed at this host's or its network's own services (SSRF): loopback,
 * private, link-local and metadata addresses are refused when an endpoint is added and, since a
 * name can resolve anywhere (DNS rebinding), again on the resolved address at connect time.
 * `webhooks.allowPrivateNetworks: true` lets them through, for development.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type Receiver, startReceiver } from "../../../test/support/webhook-receiver.js";
import { isPublicAddress } from "../src/events/address-guard.js";
import { createFlux, type Flux, FluxConfigError, type FluxOptions } from "../src/index.js";

const SECRET = "whsec_test_secret_0123456789";

describe("isPublicAddress", () => {
  it("tells public addresses from loopback, private, link-local, metadata and reserved ones", () => {
    for (const address of [
      "127.0.0.1",
      "127.255.255.254",
      "10.1.2.3",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.1",
      "169.254.169.254",
      "100.100.100.200",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.1",
      "255.255.255.255",
      "::",
      "::1",
      "fe80::1",
      "fd00:ec2::254",
      "fc00::1",
      "ff02::1",
      "::ffff:127.0.0.1",
      "::ffff:169.254.169.254",
      "::ffff:7f00:1",
      "64:ff9b::a9fe:a9fe",
      "::127.0.0.1",
      "not an address",
    ]) {
      expect(isPublicAddress(address), address).toBe(false);
    }
    for (const address of ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8"]) {
      expect(isPublicAddress(address), address).toBe(true);
    }
  });
});

describe("webhook targets", () => {
  let flux: Flux | undefined;
  let receiver: Receiver | undefined;
  afterEach(async () => {
    await flux?.close();
    flux = undefined;
    await receiver?.close();
    receiver = undefined;
  });

  async function open(webhooks: FluxOptions["webhooks"] = {}): Promise<Flux> {
    flux = await createFlux({
      database: { pglite: true },
      redis: null,
      webhooks: { interval: null, ...webhooks },
    });
    await flux.orgs.create({ id: "acme", name: "Acme" });
    return flux;
  }

  it("refuses endpoints at loopback, private, link-local and metadata addresses by default", async () => {
    for (const url of ["http://127.0.0.1:8080/hooks", "http://[::1]/", "http://169.254.169.254/latest/"]) {
      const attempt = createFlux({
        database: { pglite: true },
        redis: null,
        webhooks: { endpoints: [{ url, secret: SECRET }] },
      });
      await expect(attempt, url).rejects.toBeInstanceOf(FluxConfigError);
      await expect(attempt, url).rejects.toMatchObject({ code: "invalid_option" });
    }
    const f = await open();
    for (const url of [
      "http://127.0.0.1:8080/hooks",
      "http://127.1/",
      "http://0x7f000001/",
      "http://[::1]:9000/",
      "http://[::ffff:127.0.0.1]/",
      "http://10.0.0.5/",
      "http://192.168.0.10/",
      "http://169.254.169.254/latest/meta-data/",
      "http://[fd00:ec2::254]/",
      "http://0.0.0.0:3000/",
    ]) {
      await expect(f.webhooks.add({ url }), url).rejects.toMatchObject({
        code: "invalid_request",
        status: 400,
      });
    }
    expect(await f.webhooks.list()).toEqual([]);
    // A public address is fine (nothing is sent here: no event is recorded).
    await expect(f.webhooks.add({ url: "https://93.184.216.34/hooks" })).resolves.toBeDefined();
  });

  it("checks the resolved address at connect time: a name that resolves to loopback gets nothing", async () => {
    receiver = await startReceiver();
    const port = new URL(receiver.url).port;
    const f = await open();
    // A name passes when added: only its resolution, at connect time, can tell.
    await f.webhooks.add({ url: `http://localhost:${port}/hooks`, secret: SECRET });
    await f.keys.create().forOrg("acme").issue();
    expect(await f.webhooks.runOnce()).toMatchObject({ attempted: 1, delivered: 0 });
    expect(receiver.receipts).toHaveLength(0);
    expect((await f.webhooks.deliveries())[0]).toMatchObject({
      status: "pending",
      lastError: "blocked_address",
    });
  });

  it("delivers to loopback with allowPrivateNetworks: true (development)", async () => {
    receiver = await startReceiver();
    const port = new URL(receiver.url).port;
    const f = await open({
      allowPrivateNetworks: true,
      endpoints: [
        { url: receiver.url, secret: SECRET },
        { url: `http://localhost:${port}/by-name`, secret: SECRET },
      ],
    });
    await f.keys.create().forOrg("acme").issue();
    expect(await f.webhooks.runOnce()).toMatchObject({ attempted: 2, delivered: 2 });
    expect(receiver.receipts.map((r) => r.json.type)).toEqual(["key.created", "key.created"]);
  });

  it("refuses an allowPrivateNetworks that is not a boolean", async () => {
    await expect(
      createFlux({ database: { pglite: true }, webhooks: { allowPrivateNetworks: "yes" as never } }),
    ).rejects.toMatchObject({ code: "invalid_option" });
  });
});
