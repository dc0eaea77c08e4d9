/** Denials as HTTP: RFC 9457 problem details plus the headers each status calls for. */
import type { FluxError, ProblemDetails } from "../errors.js";
import { rateLimitHeaders } from "../limits/headers.js";

export interface DenialResponse {
  status: number;
  headers: Record<string, string>;
  body: ProblemDetails;
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** `"` and `\` escaped for an auth-param quoted-string (RFC 9110 §5.6.4). */
function quoted(value: string): string {
  return `"${value.replace(/[\\"]/g, "\\$&").replace(/[^\x20-\x7e]/g, "")}"`;
}

/**
 * Status, headers and body for a denial. 401 carries `WWW-Authenticate: Bearer realm=…` (with
 * `error="invalid_token"` when a key was presented), 403 for scopes
 * `error="insufficient_scope", scope="…"`, 429 and 503 `Retry-After`.
 */
export function denialResponse(
  error: FluxError,
  options: { realm: string; keyPresented: boolean; instance?: string },
): DenialResponse {
  const headers: Record<string, string> = {
    "Content-Type": PROBLEM_CONTENT_TYPE,
    "Cache-Control": "no-store",
    ...rateLimitHeaders(error),
  };
  const realm = `realm=${quoted(options.realm)}`;
  if (error.status === 401) {
    headers["WWW-Authenticate"] = options.keyPresented
      ? `Bearer ${realm}, error="invalid_token", error_description=${quoted(error.title)}`
      : `Bearer ${realm}`;
  } else if (error.code === "scope_denied") {
    const required = (error.extensions as { requiredScopes?: unknown }).requiredScopes;
    const scope = Array.isArray(required) ? required.join(" ") : "";
    headers["WWW-Authenticate"] = `Bearer ${realm}, error="insufficient_scope", scope=${quoted(scope)}`;
  } else if (error.status === 400) {
    headers["WWW-Authenticate"] = `Bearer ${realm}, error="invalid_request"`;
  }
  // A quota that never refills says nothing of retrying; everything else says when.
  const neverRefills = error.code === "quota_exceeded" && error.extensions.retryAfter === null;
  if (
    (error.status === 503 || error.status === 429) &&
    headers["Retry-After"] === undefined &&
    !neverRefills
  ) {
    headers["Retry-After"] = "1";
  }
  return { status: error.status, headers, body: error.toProblem(options.instance) };
}
