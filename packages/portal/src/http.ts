/**
 * The portal's HTTP manners: security headers on every response, problem details, the client-facing
 * URL behind a trusted proxy, and the cross-site request check (Fetch Metadata, then Origin, then a
 * CSRF token in a header). The check is ours, not hono's `csrf()`: that one looks only at requests
 * a form can send (form and text content types), and the portal's API takes JSON.
 */

import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { FluxError, readBodyLimited } from "@flux-keys/core";
import { secureHeaders } from "hono/secure-headers";

/** The strict CSP: the portal's own script and styles only, no inline code, never framed. */
export const CSP_DIRECTIVES = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", "data:"],
  connectSrc: ["'self'"],
  formAction: ["'self'"],
  baseUri: ["'none'"],
  frameAncestors: ["'none'"],
};

/**
 * Sent with every portal response (hono's secure-headers): nothing here may be framed, sniffed or
 * leak a referrer. No HSTS: the portal is mounted in the host's app, whose transport policy that is.
 */
export const portalSecureHeaders = secureHeaders({
  contentSecurityPolicy: CSP_DIRECTIVES,
  xFrameOptions: "DENY",
  xContentTypeOptions: true,
  referrerPolicy: "no-referrer",
  crossOriginOpenerPolicy: "same-origin",
  crossOriginResourcePolicy: "same-origin",
  strictTransportSecurity: false,
});

export const PROBLEM_JSON = { "Content-Type": "application/problem+json" };

export function problemBody(error: FluxError, instance?: string): string {
  return JSON.stringify(error.toProblem(instance));
}

/** An unexpected failure: a generic 500 problem, never the error's text. */
export const INTERNAL_PROBLEM = JSON.stringify({
  type: "about:blank",
  title: "Internal Server Error",
  status: 500,
  detail: "Something went wrong on our side.",
});

export function newCsrfSeed(): string {
  return `fpc_${randomBytes(32).toString("base64url")}`;
}

/**
 * The CSRF token of a seed (the session token, or the CSRF cookie in `resolveCustomer` mode). It
 * is derived rather than stored, so every instance computes the same one, and it cannot be made
 * without the HttpOnly cookie it comes from.
 */
export function csrfToken(seed: string): string {
  return createHmac("sha256", seed).update("flux-portal-csrf").digest("base64url");
}

/**
 * Refuses a state-changing request that a browser marked as cross-site, whose Origin is not ours,
 * or that lacks the page's CSRF token. SameSite=Lax already keeps the cookie off cross-site POSTs;
 * this holds even for same-site siblings and browsers without SameSite.
 */
export function checkCrossSite(
  request: Request,
  url: URL,
  seed: string | undefined,
  allowedOrigins: ReadonlySet<string>,
): FluxError | null {
  const site = request.headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin") return rejected("Sec-Fetch-Site");
  const origin = request.headers.get("origin");
  if (origin !== null && origin !== url.origin && !allowedOrigins.has(origin)) return rejected("Origin");
  const presented = request.headers.get("x-csrf-token");
  if (seed === undefined || presented === null) return rejected("token");
  const expected = Buffer.from(csrfToken(seed));
  const actual = Buffer.from(presented);
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return rejected("token");
  return null;
}

function rejected(reason: string): FluxError {
  return new FluxError("csrf_rejected", { extensions: { reason } });
}

/** Reads a JSON object body of at most 64 KiB; anything else is `invalid_request`. */
export async function readJson(request: Request): Promise<Record<string, unknown>> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new FluxError("invalid_request", { detail: "Send the body as application/json." });
  }
  const text = await readText(request, 65_536);
  let value: unknown;
  try {
    value = text.length === 0 ? {} : JSON.parse(text);
  } catch {
    throw new FluxError("invalid_request", { detail: "The body is not valid JSON." });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new FluxError("invalid_request", { detail: "The body must be a JSON object." });
  }
  return value as Record<string, unknown>;
}

async function readText(request: Request, limit: number): Promise<string> {
  const body = await readBodyLimited(request, limit);
  if (body === null) throw new FluxError("invalid_request", { detail: "The body is too large." });
  return body.toString("utf8");
}

const AUTHORITY = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The URL as the browser sees it. Behind a trusted TLS-terminating proxy the connection is plain
 * HTTP to an internal host, so the scheme and host come from `X-Forwarded-Proto` /
 * `X-Forwarded-Host` (the first, client-facing entry), else from the first element of `Forwarded`
 * (RFC 7239). They are believed only when the socket's peer is trusted (`trustProxy`), and only
 * when well-formed (`http`/`https`, a host with an optional port); otherwise the URL is unchanged.
 */
export function clientFacingUrl(
  url: URL,
  headers: Headers,
  remoteAddress: string | null | undefined,
  trust: (address: string, hop: number) => boolean,
): URL {
  if (!remoteAddress || !trust(remoteAddress, 0)) return url;
  let proto = firstEntry(headers.get("x-forwarded-proto"));
  let host = firstEntry(headers.get("x-forwarded-host"));
  if (proto === undefined && host === undefined) {
    const element = firstEntry(headers.get("forwarded"));
    for (const pair of element?.split(";") ?? []) {
      const eq = pair.indexOf("=");
      if (eq < 0) continue;
      const name = pair.slice(0, eq).trim().toLowerCase();
      const value = pair
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/, "$1");
      if (name === "proto") proto = value;
      else if (name === "host") host = value;
    }
  }
  const result = new URL(url.href);
  const scheme = proto?.toLowerCase();
  if (scheme === "https" || scheme === "http") result.protocol = `${scheme}:`;
  if (host !== undefined && AUTHORITY.test(host)) {
    try {
      const forwarded = new URL(`${result.protocol}//${host}/`);
      // Both parts: a forwarded host without a port means the scheme's default, not ours.
      result.hostname = forwarded.hostname;
      result.port = forwarded.port;
    } catch {
      // An authority the URL parser refuses (a port past 65535): keep the connection's host.
    }
  }
  return result;
}

function firstEntry(value: string | null): string | undefined {
  if (value === null) return undefined;
  const first = value.split(",")[0]?.trim();
  return first === undefined || first.length === 0 ? undefined : first;
}
