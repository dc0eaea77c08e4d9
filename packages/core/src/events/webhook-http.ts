/**
 * One webhook POST over node:http(s), through agents whose connections check the resolved address
 * (see address-guard.ts). Redirects are not followed; the answer's body is not read.
 */
import { type Agent as HttpAgent, request as httpRequest } from "node:http";
import { type Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { isPublicAddress, literalAddress, publicOnlyAgents } from "./address-guard.js";

export class BlockedAddressError extends Error {
  override readonly name = "BlockedAddressError";
}

export interface WebhookPoster {
  /** The status code of the answer; rejects on a network error, an abort or a blocked address. */
  post(url: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<number>;
}

export function createWebhookPoster(options: { allowPrivateNetworks: boolean }): WebhookPoster {
  // With the guard: every name is resolved through it. Without: Node's default agents.
  const agents: { http?: HttpAgent; https?: HttpsAgent } = options.allowPrivateNetworks
    ? {}
    : publicOnlyAgents();
  return {
    post(target, headers, body, signal) {
      const url = new URL(target);
      // An address in the URL is connected to without a lookup: it is checked here.
      const literal = literalAddress(url);
      if (!options.allowPrivateNetworks && literal !== null && !isPublicAddress(literal)) {
        return Promise.reject(new BlockedAddressError(`${literal} is not a public address`));
      }
      const https = url.protocol === "https:";
      return new Promise<number>((resolve, reject) => {
        const request = (https ? httpsRequest : httpRequest)(
          url,
          {
            method: "POST",
            headers: { ...headers, "Content-Length": String(Buffer.byteLength(body)) },
            signal,
            ...((https ? agents.https : agents.http) ? { agent: https ? agents.https : agents.http } : {}),
          },
          (response) => {
            resolve(response.statusCode ?? 0);
            // The body is not ours to read: drop the connection rather than drain a slow one.
            response.destroy();
          },
        );
        request.on("error", reject);
        request.end(body);
      });
    },
  };
}
