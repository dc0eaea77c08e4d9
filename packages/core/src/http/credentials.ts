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
    if (!sameName(rawHeaders[i] as string, name)) continue;
    if (found !== undefined) return null;
    found = rawHeaders[i + 1] as string;
  }
  return found;
}

/** `header` is `lowerName` in any case (ASCII, as field names are), without allocating. */
function sameName(header: string, lowerName: string): boolean {
  return header.length === lowerName.length && startsWithName(header, lowerName);
}

/** `value` starts with `lowerName` in any ASCII case. */
function startsWithName(value: string, lowerName: string): boolean {
  if (value.length < lowerName.length) return false;
  for (let i = 0; i < lowerName.length; i++) {
    const c = value.charCodeAt(i);
    const expected = lowerName.charCodeAt(i);
    if (c !== expected && !(c >= 65 && c <= 90 && c + 32 === expected)) return false;
  }
  return true;
}

const SPACE = 32;
/**
 * What `\s` matches, searched from `lastIndex` by the regex engine: faster than a loop over the
 * token's characters, and `test()` builds no match array (the token is searched in the header's
 * own string, not in a slice, which the engine would first have to copy).
 */
const WHITESPACE_FROM = /\s/g;

/** What `\w` matches. */
function isWordChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

/**
 * The token of `Bearer <token>` (scheme in any case, one or more spaces, a token without
 * whitespace, optional trailing spaces): exactly `/^Bearer[ ]+(\S+)[ ]*$/i`, without a regex or a
 * match array. Undefined for another scheme (`Basic …`, `Bearerish …`), null for a malformed
 * Bearer credential (what `/^Bearer\b/i` catches beyond the first).
 */
function bearerToken(value: string): string | undefined | null {
  if (!startsWithName(value, "bearer")) return undefined;
  if (value.length > 6 && isWordChar(value.charCodeAt(6))) return undefined;
  let start = 6;
  while (start < value.length && value.charCodeAt(start) === SPACE) start++;
  let end = value.length;
  while (end > start && value.charCodeAt(end - 1) === SPACE) end--;
  if (start === 6 || start === end) return null;
  // Whitespace inside the token: the first one at or after `start`, if it comes before `end`.
  WHITESPACE_FROM.lastIndex = start;
  if (WHITESPACE_FROM.test(value) && WHITESPACE_FROM.lastIndex <= end) return null;
  return end === value.length ? value.slice(start) : value.slice(start, end);
}

/** A singleton header, from the raw list when the framework gives one (see fromRaw). */
function read(headers: HeaderBag, rawHeaders: readonly string[] | undefined, name: string) {
  return rawHeaders === undefined ? single(headers, name) : fromRaw(rawHeaders, name);
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

  const authorization = read(headers, rawHeaders, options.authorizationHeader);
  if (authorization === null) return refuse("Send one Authorization header.");
  if (authorization !== undefined) {
    // Another scheme (Basic, Digest…) is not ours: treat it as no API key rather than an error.
    const token = bearerToken(authorization);
    if (token === null) return refuse("The Bearer credential is malformed.");
    key = token;
  }

  if (options.apiKeyHeader !== false) {
    const header = read(headers, rawHeaders, options.apiKeyHeader);
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
