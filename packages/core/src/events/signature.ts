/**
 * Webhook signatures, as Stripe and others do them: `Flux-Signature: t=<unix seconds>,v1=<hex>`
 * where the hex is HMAC-SHA-256 of `<t>.<raw body>` with the endpoint's secret. The timestamp is
 * signed too, so a captured request cannot be replayed after the tolerance.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const SIGNATURE_HEADER = "Flux-Signature";

/** The `Flux-Signature` header value for a body sent at `timestamp` (unix seconds). */
export function signWebhookPayload(secret: string, body: string, timestamp: number): string {
  return `t=${timestamp},v1=${hmac(secret, timestamp, body)}`;
}

export interface VerifyWebhookOptions {
  /** How old (or how far in the future) the signed timestamp may be. @default 300 */
  toleranceSeconds?: number;
  /** Current time in ms, for tests. @default Date.now() */
  now?: number;
}

/**
 * For receivers: whether `header` (the `Flux-Signature` value) signs `body` (the raw request body,
 * exactly as received: parse the JSON after this) with `secret`, within the tolerance. Several
 * `v1=` entries are accepted (any one matching is enough). Never throws.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | null | undefined,
  body: string | Uint8Array,
  options: VerifyWebhookOptions = {},
): boolean {
  if (typeof secret !== "string" || secret.length === 0 || typeof header !== "string") return false;
  let timestamp: number | null = null;
  const signatures: string[] = [];
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (name === "t" && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (name === "v1" && /^[0-9a-f]{64}$/.test(value)) signatures.push(value);
  }
  if (timestamp === null || signatures.length === 0) return false;
  const tolerance = options.toleranceSeconds ?? 300;
  const nowSeconds = Math.floor((options.now ?? Date.now()) / 1000);
  if (Math.abs(nowSeconds - timestamp) > tolerance) return false;
  const expected = Buffer.from(hmac(secret, timestamp, body), "hex");
  return signatures.some((signature) => timingSafeEqual(Buffer.from(signature, "hex"), expected));
}

function hmac(secret: string, timestamp: number, body: string | Uint8Array): string {
  return createHmac("sha256", secret).update(`${timestamp}.`).update(body).digest("hex");
}
