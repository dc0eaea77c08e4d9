/**
 * Reads the presented API key from a request's headers (and, only when allowed, its query), the
 * same way for every framework. Anything ambiguous is refused rather than guessed at.
 */
import { FluxError } from "../errors.js";

export type HeaderBag = Record<string, string | string[] | undefined>;

export interface CredentialOptions {
  /** Lowercase header carrying `Bearer <key>`. */
  authorizationHeader: string;
  /** Lowercase header carrying the bare key, or false. */
  apiKeyHeader: string | false;
  /** Query parameter allowed to carry the key, or false (keys in URLs end up in logs). */
  queryParameter: string | false;
  /** The key prefix, to spot keys in query strings under any parameter name. */
  keyPrefix: string;
}

export type CredentialResult = { ok: true; key: string | undefined } | { ok: false; error: FluxError };

export const SUSPICIOUS_PARAMETERS: ReadonlySet<string> = new Set([
  "api_key",
  "apikey",
  "api-key",
  "access_token",
  "x-api-key",
  "token",
]);

const BEARER = /^Bearer[ ]+(\S+)[ ]*$/i;
const NO_KEY: CredentialResult = Object.freeze({ ok: true, key: undefined });

function refuse(detail: string): CredentialResult {
  return { ok: false, error: new FluxError("invalid_request", { detail }) };
}

/**
 * One header value. `Authorization` and the key header are singleton fields (RFC 9110 §5.3): sent
 * twice (an array, or two lines in the raw headers) the request is refused, whatever the copies say.
 */
function single(headers: HeaderBag, name: string): string | undefined | null {
  const value = headers[name];
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.length === 1 ? value[0] : null;
  return value;
}

/**
 * A header's value from the raw header list (`req.rawHeaders`: name, value, name, value…). Node
 * keeps only the first `Authorization` in `req.headers` and joins other repeats with ", ", so a
 * second credential is visible only here. Null when the header is there twice.
 */
function fromRaw(rawHeaders: readonly string[], name: string): string | undefined | null {
  let found: string | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const header = rawHeaders[i] as string;
    if (header.length !== name.length || header.toLowerCase() !== name) continue;
    if (found !== undefined) return null;
    found = rawHeaders[i + 1] as string;
  }
  return found;
}

export function extractCredential(
  headers: HeaderBag,
  url: string | undefined,
  options: CredentialOptions,
  rawHeaders?: readonly string[],
): CredentialResult {
  // The credential found first; any other, different one makes the request ambiguous (refused
  // once every other check has run, as before).
  let key: string | undefined;
  let conflict = false;
  const read = (name: string) =>
    rawHeaders === undefined ? single(headers, name) : fromRaw(rawHeaders, name);

  const authorization = read(options.authorizationHeader);
  if (authorization === null) return refuse("Send one Authorization header.");
  if (authorization !== undefined) {
    const match = BEARER.exec(authorization);
    // Another scheme (Basic, Digest…) is not ours: treat it as no API key rather than an error.
    if (match?.[1] !== undefined) key = match[1];
    else if (/^Bearer\b/i.test(authorization)) return refuse("The Bearer credential is malformed.");
  }

  if (options.apiKeyHeader !== false) {
    const header = read(options.apiKeyHeader);
    if (header === null) return refuse(`Send one ${options.apiKeyHeader} header.`);
    if (header !== undefined) {
      const value = header.trim();
      if (key === undefined) key = value;
      else if (value !== key) conflict = true;
    }
  }

  const queryIndex = url === undefined ? -1 : url.indexOf("?");
  if (queryIndex !== -1) {
    const params = new URLSearchParams((url as string).slice(queryIndex + 1));
    const keyPrefix = `${options.keyPrefix}_`;
    for (const [name, value] of params) {
      const lower = name.toLowerCase();
      if (options.queryParameter !== false && name === options.queryParameter) {
        if (key === undefined) key = value;
        else if (value !== key) conflict = true;
      } else if (
        SUSPICIOUS_PARAMETERS.has(lower) ||
        value.startsWith(keyPrefix) ||
        name.startsWith(keyPrefix)
      ) {
        return refuse("API keys are not accepted in the URL; send them in the Authorization header.");
      }
    }
  }

  if (conflict) return refuse("Two different credentials were presented.");
  return key === undefined ? NO_KEY : { ok: true, key };
}
