/** Webhook signatures (`Flux-Signature: t=…,v1=…`): made and checked without any store. */
import { describe, expect, it } from "vitest";
import { signWebhookPayload, verifyWebhookSignature } from "../src/index.js";

const SECRET = "whsec_test_secret_0123456789";

describe("verifyWebhookSignature", () => {
  const body = JSON.stringify({ id: "evt_1", type: "key.created", createdAt: "x", data: {} });
  const now = 1_780_000_000_000;
  const t = Math.floor(now / 1000);

  it("accepts a signature made with the secret over the timestamp and body", () => {
    const header = signWebhookPayload(SECRET, body, t);
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifyWebhookSignature(SECRET, header, body, { now })).toBe(true);
    expect(verifyWebhookSignature(SECRET, header, Buffer.from(body), { now })).toBe(true);
    // Several v1 entries (secret rotation): one match is enough.
    const other = signWebhookPayload("another_secret_0123456789", body, t).split(",")[1];
    expect(verifyWebhookSignature(SECRET, `${header},${other}`, body, { now })).toBe(true);
  });

  it("refuses a tampered body, another secret, an old timestamp and garbage", () => {
    const header = signWebhookPayload(SECRET, body, t);
    expect(verifyWebhookSignature(SECRET, header, `${body} `, { now })).toBe(false);
    expect(verifyWebhookSignature("wrong_secret_0123456789", header, body, { now })).toBe(false);
    expect(verifyWebhookSignature(SECRET, header, body, { now: now + 301_000 })).toBe(false);
    expect(verifyWebhookSignature(SECRET, header, body, { now: now + 301_000, toleranceSeconds: 400 })).toBe(
      true,
    );
    for (const bad of [undefined, null, "", "t=1", "v1=abc", "t=x,v1=zz", `t=${t},v1=${"0".repeat(64)}`]) {
      expect(verifyWebhookSignature(SECRET, bad as string, body, { now })).toBe(false);
    }
  });
});
