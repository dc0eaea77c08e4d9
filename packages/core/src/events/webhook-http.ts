/**
 * One webhook POST through undici, on an agent whose connections check the resolved address
 * (see address-guard.ts) and time out on connect, headers and body. Redirects are not followed
 * (undici follows none unless asked); the answer's body is not read, and the connection is not
 * kept (one attempt, one socket).
 */
import { Agent, request } from "undici";
import { isPublicAddress, literalAddress, publicOnlyLookup } from "./address-guard.js";

export class BlockedAddressError extends Error {
  override readonly name = "BlockedAddressError";
}

export interface WebhookPoster {
  /** The status code of the answer; rejects on a network error, an abort, a timeout or a blocked address. */
  post(url: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<number>;
  /** Closes the agent's connections. */
  close(): Promise<void>;
}

const TIMEOUT_CODES = new Set(["UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);

export function createWebhookPoster(options: {
  allowPrivateNetworks: boolean;
  timeoutMs: number;
}): WebhookPoster {
  const agent = new Agent({
    // With the guard: every name is resolved through it. Without: the system's lookup.
    connect: options.allowPrivateNetworks
      ? { timeout: options.timeoutMs }
      : { timeout: options.timeoutMs, lookup: publicOnlyLookup },
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
  });
  return {
    async post(target, headers, body, signal) {
      const url = new URL(target);
      // An address in the URL is connected to without a lookup: it is checked here.
      const literal = literalAddress(url);
      if (!options.allowPrivateNetworks && literal !== null && !isPublicAddress(literal)) {
        throw new BlockedAddressError(`${literal} is not a public address`);
      }
      try {
        const response = await request(url, {
          method: "POST",
          headers,
          body,
          signal,
          dispatcher: agent,
          reset: true,
        });
        // The body is not ours to read: drop it rather than drain a slow one.
        response.body.destroy();
        return response.statusCode;
      } catch (error) {
        if (TIMEOUT_CODES.has((error as { code?: string })?.code ?? "")) {
          throw new DOMException("timeout", "TimeoutError");
        }
        throw error;
      }
    },
    close: () => agent.close(),
  };
}
