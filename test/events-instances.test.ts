/**
 * Two Flux instances on one PostgreSQL, both running the webhook scheduler (their timers, and
 * manual runs at the same moments), deliver every event exactly once.
 */
import { createFlux, type Flux, type FluxOptions, verifyWebhookSignature } from "@flux-keys/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATABASE_URL, freshSchema, hasPostgres } from "./support/services.js";
import { type Receiver, startReceiver, until } from "./support/webhook-receiver.js";

const SECRET = "whsec_instances_0123456789";

describe.skipIf(!hasPostgres)("webhook scheduler on two instances", () => {
  let drop: () => Promise<void>;
  let receiver: Receiver;
  let a: Flux;
  let b: Flux;

  beforeAll(async () => {
    const fresh = await freshSchema();
    drop = fresh.drop;
    receiver = await startReceiver();
    const options = (): FluxOptions => ({
      database: { url: DATABASE_URL, schema: fresh.schema, poolSize: 8 },
      redis: null,
      webhooks: {
        endpoints: [{ url: receiver.url, secret: SECRET }],
        // The receiver is on 127.0.0.1.
        allowPrivateNetworks: true,
        interval: "20ms",
        checkInterval: "30ms",
        expiringDays: 7,
      },
    });
    a = await createFlux(options());
    b = await createFlux(options());
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await receiver?.close();
    await drop?.();
  });

  it("delivers each event exactly once", async () => {
    await a.orgs.create({ id: "acme", name: "Acme" });
    // Both instances change keys at the same time (one stream each) while both schedulers run.
    const stream = async (owner: Flux, parity: number) => {
      const ids: string[] = [];
      for (let i = parity; i < 40; i += 2) {
        const builder = owner.keys.create().forOrg("acme").named(`k${i}`);
        ids.push((await (i % 4 === 0 ? builder.expiresInDays(3) : builder).issue()).key.id);
      }
      for (const id of ids.slice(0, 5)) await owner.keys.revoke(id);
    };
    await Promise.all([stream(a, 0), stream(b, 1)]);
    // Manual runs racing the timers and each other.
    for (let i = 0; i < 5; i++)
      await Promise.all([a.webhooks.runOnce(), b.webhooks.runOnce(), a.webhooks.runOnce()]);

    const expected = 40 + 10 + 10; // created, revoked, expiring (every 4th key)
    await until(() => receiver.receipts.length >= expected, 15_000);
    // Give a duplicate, if there were one, the time to arrive.
    for (let i = 0; i < 5; i++) await Promise.all([a.webhooks.runOnce(), b.webhooks.runOnce()]);

    const ids = receiver.receipts.map((r) => r.json.id);
    expect(ids).toHaveLength(expected);
    expect(new Set(ids).size).toBe(expected);
    const byType = (type: string) => receiver.receipts.filter((r) => r.json.type === type);
    expect(byType("key.created")).toHaveLength(40);
    expect(byType("key.revoked")).toHaveLength(10);
    expect(new Set(byType("key.expiring").map((r) => r.json.data.keyId)).size).toBe(10);
    for (const receipt of receiver.receipts) {
      expect(verifyWebhookSignature(SECRET, receipt.headers["flux-signature"] as string, receipt.body)).toBe(
        true,
      );
    }
    const deliveries = await a.webhooks.deliveries({ limit: 1000 });
    expect(deliveries).toHaveLength(expected);
    expect(deliveries.every((d) => d.status === "delivered" && d.attempts === 1)).toBe(true);
  });
});
