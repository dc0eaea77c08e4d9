/**
 * GitHub's secret-scanning partner alerts: GitHub POSTs the Flux keys it found in public code.
 * The handler verifies GitHub's ECDSA signature over the raw body against the configured public
 * keys, looks each token up by digest, applies the configured action (`revoke` or `flag`), records
 * a `key.leaked` audit event with the URL where it leaked, and answers in GitHub's feedback format.
 * Tokens that are not ours are acknowledged and left out of the answer: nothing is revealed.
 *
 * Web `Request` in, `Response` out; mount it with your adapter (see the adapters' READMEs).
 */

import { createHash, createPublicKey, verify } from "node:crypto";
import { FluxConfigError, FluxError } from "../errors.js";
import type { Flux } from "../flux.js";
import { readBodyLimited } from "../http/body.js";
import { seamsOf } from "../seams.js";
import type { Actor } from "../types.js";
import { isFluxKey } from "./secret-scanning.js";

export interface GitHubPublicKey {
  /** `key_identifier` from GitHub's `/meta/public_keys/secret_scanning`. */
  keyIdentifier: string;
  /** PEM public key (ECDSA P-256). */
  key: string;
}

export interface SecretScanningOptions {
  /**
   * GitHub's signing keys: a list, or a function that returns them (e.g. fetched from
   * `https://api.github.com/meta/public_keys/secret_scanning` and cached by you).
   */
  publicKeys: GitHubPublicKey[] | (() => Promise<GitHubPublicKey[]>);
  /** What to do with a leaked key. @default 'revoke' */
  action?: "revoke" | "flag";
  /**
   * Largest body accepted, in bytes: past it the answer is 413 `payload_too_large`, and no more
   * than this is ever read or buffered (a larger Content-Length is refused unread).
   * @default 1048576 (1 MiB)
   */
  maxBodyBytes?: number;
}

interface Match {
  token: string;
  type: string;
  url: string;
  source: string;
}

const ACTOR: Actor = Object.freeze({ type: "system", id: "github-secret-scanning" });

function problem(error: FluxError): Response {
  return new Response(JSON.stringify(error.toProblem()), {
    status: error.status,
    headers: { "Content-Type": "application/problem+json", "Cache-Control": "no-store" },
  });
}

export function createSecretScanningHandler(
  flux: Flux,
  options: SecretScanningOptions,
): (request: Request) => Promise<Response> {
  if (!options || (typeof options.publicKeys !== "function" && !Array.isArray(options.publicKeys))) {
    throw new FluxConfigError("invalid_option", "createSecretScanningHandler needs publicKeys.");
  }
  const action = options.action ?? "revoke";
  if (action !== "revoke" && action !== "flag") {
    throw new FluxConfigError("invalid_option", "action must be 'revoke' or 'flag'.");
  }
  const maxBody = options.maxBodyBytes ?? 1024 * 1024;
  if (!Number.isInteger(maxBody) || maxBody < 1) {
    throw new FluxConfigError("invalid_option", "maxBodyBytes must be a positive integer.");
  }
  const dependencies = seamsOf(flux).leaks;
  const prefix = dependencies.keyPrefix;

  return async (request) => {
    if (request.method !== "POST") {
      return new Response(null, { status: 405, headers: { Allow: "POST" } });
    }
    const identifier = request.headers.get("github-public-key-identifier");
    const signature = request.headers.get("github-public-key-signature");
    if (!identifier || !signature) {
      return problem(new FluxError("key_missing", { detail: "The GitHub signature headers are missing." }));
    }
    // Unauthenticated senders cost no more than the limit: a signing key we do not know is refused
    // before the body is read, and the body is read only up to `maxBodyBytes`.
    const keys = typeof options.publicKeys === "function" ? await options.publicKeys() : options.publicKeys;
    const publicKey = keys.find((candidate) => candidate.keyIdentifier === identifier);
    if (publicKey === undefined) {
      await request.body?.cancel().catch(() => {});
      return problem(new FluxError("key_invalid", { detail: "The GitHub signature does not verify." }));
    }
    const raw = await readBodyLimited(request, maxBody);
    if (raw === null) {
      return problem(
        new FluxError("payload_too_large", { detail: `The payload is larger than ${maxBody} bytes.` }),
      );
    }
    // The signature is checked over the raw bytes before anything parses them.
    let authentic = false;
    try {
      authentic = verify("sha256", raw, createPublicKey(publicKey.key), Buffer.from(signature, "base64"));
    } catch {
      authentic = false;
    }
    if (!authentic) {
      return problem(new FluxError("key_invalid", { detail: "The GitHub signature does not verify." }));
    }

    let matches: Match[];
    try {
      const parsed = JSON.parse(raw.toString("utf8")) as unknown;
      if (!Array.isArray(parsed)) throw new Error("not an array");
      matches = parsed.filter(
        (m): m is Match => typeof m === "object" && m !== null && typeof (m as Match).token === "string",
      );
    } catch {
      return problem(new FluxError("invalid_request", { detail: "The payload is not a list of matches." }));
    }

    const feedback: Array<{ token_hash: string; token_type: string; label: "true_positive" }> = [];
    for (const match of matches) {
      if (!isFluxKey(match.token, { prefix })) continue;
      const key = await flux.keys.findBySecret(match.token);
      if (key === null) continue;
      const url = typeof match.url === "string" ? match.url.slice(0, 2000) : "";
      const source = typeof match.source === "string" ? match.source.slice(0, 100) : "";
      if (action === "revoke" && key.revokedAt === null) {
        await flux.keys.revoke(key.id, { reason: "leaked (GitHub secret scanning)", actor: ACTOR });
      }
      await dependencies.writeAudit({
        action: "key.leaked",
        actor: ACTOR,
        orgId: key.orgId,
        keyId: key.id,
        details: { url, source, action, reporter: "github" },
        at: new Date(flux.keys.now()),
      });
      await dependencies.publish({
        type: "key.leaked",
        orgId: key.orgId,
        keyId: key.id,
        data: { keyId: key.id, orgId: key.orgId, url, source, action, reporter: "github" },
      });
      feedback.push({
        token_hash: createHash("sha256").update(match.token).digest("hex"),
        token_type: typeof match.type === "string" ? match.type : "flux_api_key",
        label: "true_positive",
      });
    }
    return new Response(JSON.stringify(feedback), {
      status: 200,
      headers: { "Content-Type": "application/json", "Cache-Control": "no-store" },
    });
  };
}
